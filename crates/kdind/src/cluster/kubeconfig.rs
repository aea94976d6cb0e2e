//! The user's kubeconfig: adding a cluster to it, and taking the cluster out again.
//!
//! The file is handled as plain YAML rather than through a typed kubeconfig, so that whatever
//! kdind does not touch (other entries, extensions, fields newer than any library) is written
//! back as it was read. Writes go through a temporary file renamed into place, under the same
//! `<file>.lock` that kubectl takes, so that a reader never sees half a file and concurrent
//! writers do not undo each other.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_norway::{Mapping, Value};

/// How long to wait for another writer's lock before giving up.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors from reading or writing a kubeconfig.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeconfigError {
    #[error("neither KUBECONFIG nor HOME is set, so there is no kubeconfig to write; set one")]
    NoPath,
    #[error("failed to {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is locked by another writer; remove it if no kubectl or kdind is running",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error("{what} is not a kubeconfig")]
    Parse {
        what: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{what} cannot be used: {problem}")]
    Shape { what: String, problem: String },
    #[error("failed to write the kubeconfig as YAML")]
    Write(#[source] serde_norway::Error),
}

type Result<T, E = KubeconfigError> = std::result::Result<T, E>;

/// The kubeconfig kdind writes to: the first entry of `KUBECONFIG`, else `~/.kube/config`.
///
/// kubectl reads every file `KUBECONFIG` lists; the first is where kdind's entries go, as it is
/// the one kubectl gives precedence to.
///
/// # Errors
///
/// Fails when neither `KUBECONFIG` nor `HOME` is set.
pub fn default_path() -> Result<PathBuf> {
    path_from(
        std::env::var_os("KUBECONFIG"),
        std::env::var_os("HOME").map(PathBuf::from),
    )
    .ok_or(KubeconfigError::NoPath)
}

fn path_from(kubeconfig: Option<OsString>, home: Option<PathBuf>) -> Option<PathBuf> {
    let listed = kubeconfig
        .and_then(|list| std::env::split_paths(&list).find(|path| !path.as_os_str().is_empty()));
    listed.or_else(|| home.map(|home| home.join(".kube").join("config")))
}

/// The address of an API server published on the local host at `port`.
pub fn local_server(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// Adds a cluster to the kubeconfig at `path` under the name `context`, from `admin` (the text
/// of the control plane's `/etc/kubernetes/admin.conf`) with its API server reached at
/// `server`.
///
/// The cluster, user and context are all named `context`, and replace any entries of that name
/// where they stand; every other entry and field is kept. The current context becomes the new
/// one, whatever it was: the user just asked for this cluster, and the next `kubectl` is meant
/// for it. The file and its directory are made when missing; the file is
/// left readable by its owner only, as it holds the cluster's admin key.
///
/// # Errors
///
/// Fails when `admin` or the existing file is not a kubeconfig, or the file cannot be written.
pub fn merge(path: &Path, admin: &str, context: &str, server: &str) -> Result<()> {
    let entries = Entries::from_admin(admin, context, server)?;
    let _lock = Lock::take(path)?;

    let mut config = read(path)?.unwrap_or_else(empty_config);
    let what = path.display().to_string();
    let root = as_mapping(&mut config, &what)?;
    for (list, entry) in [
        ("clusters", entries.cluster),
        ("users", entries.user),
        ("contexts", entries.context),
    ] {
        upsert(list_of(root, list, &what)?, context, entry);
    }
    root.insert("current-context".into(), context.into());

    write(path, &config)
}

/// A kubeconfig file as it was before kdind wrote a cluster's context into it, so that [`undo`]
/// can put back what that changed when the cluster is removed again after a failure.
#[derive(Debug, Clone, Default)]
pub struct Before {
    existed: bool,
    current_context: Option<String>,
}

/// Checks that [`merge`] could write to `path`: that the file, when there is one, is a
/// kubeconfig, and that its directory is one or can be made. Nothing is written; what the file
/// holds now is returned for [`undo`].
///
/// # Errors
///
/// Fails when the file is not a kubeconfig, cannot be read, or lies below something that is not
/// a directory.
pub fn check(path: &Path) -> Result<Before> {
    let target = real_path(path);
    let mut dir = parent(&target);
    loop {
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(KubeconfigError::Shape {
                    what: path.display().to_string(),
                    problem: format!("{} is not a directory", dir.display()),
                });
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => match dir.parent() {
                Some(up) if !up.as_os_str().is_empty() => dir = up,
                _ => break,
            },
            Err(source) => return Err(io_error("read", dir, source)),
        }
    }

    let mut before = Before {
        existed: target.exists(),
        current_context: None,
    };
    if let Some(mut config) = read(path)? {
        let what = path.display().to_string();
        let root = as_mapping(&mut config, &what)?;
        for list in ["clusters", "users", "contexts"] {
            list_of(root, list, &what)?;
        }
        before.current_context = root
            .get("current-context")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
    }
    Ok(before)
}

/// Takes the cluster `name` out of the kubeconfig at `path` after a failed `up`, leaving the
/// file as `before` found it: the cluster's entries go, the current context goes back to the
/// one it was (when that context is still there), and a file that did not exist before and
/// now holds no entries is removed.
///
/// # Errors
///
/// Fails when the file is not a kubeconfig or cannot be written.
pub fn undo(path: &Path, name: &str, before: &Before) -> Result<()> {
    let _lock = Lock::take(path)?;
    let Some(mut config) = read(path)? else {
        return Ok(());
    };
    let what = path.display().to_string();
    let root = as_mapping(&mut config, &what)?;
    let mut empty = true;
    let mut previous_kept = false;
    for list in ["clusters", "users", "contexts"] {
        let entries = list_of(root, list, &what)?;
        entries.retain(|entry| entry_name(entry) != Some(name));
        empty &= entries.is_empty();
        if list == "contexts" {
            previous_kept = entries
                .iter()
                .any(|entry| entry_name(entry) == before.current_context.as_deref());
        }
    }
    if root.get("current-context").and_then(Value::as_str) == Some(name) {
        let previous = before.current_context.clone().filter(|_| previous_kept);
        root.insert(
            "current-context".into(),
            previous.unwrap_or_default().into(),
        );
    }
    if !before.existed && empty {
        let target = real_path(path);
        return match fs::remove_file(&target) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(io_error("remove", &target, err))
            }
            _ => Ok(()),
        };
    }
    write(path, &config)
}

/// Removes the cluster, user and context named `name` from the kubeconfig at `path`, and clears
/// the current context if it was that one. Returns whether anything was removed; a file with
/// nothing of that name (or no file) is left untouched.
///
/// # Errors
///
/// Fails when the file is not a kubeconfig or cannot be written.
pub fn remove_context(path: &Path, name: &str) -> Result<bool> {
    let _lock = Lock::take(path)?;
    let Some(mut config) = read(path)? else {
        return Ok(false);
    };

    let what = path.display().to_string();
    let root = as_mapping(&mut config, &what)?;
    let mut removed = false;
    for list in ["clusters", "users", "contexts"] {
        let entries = list_of(root, list, &what)?;
        let before = entries.len();
        entries.retain(|entry| entry_name(entry) != Some(name));
        removed |= entries.len() != before;
    }
    if root.get("current-context").and_then(Value::as_str) == Some(name) {
        root.insert("current-context".into(), "".into());
        removed = true;
    }

    if removed {
        write(path, &config)?;
    }
    Ok(removed)
}

/// A cluster's three entries, named and ready to go into a kubeconfig.
struct Entries {
    cluster: Value,
    user: Value,
    context: Value,
}

impl Entries {
    /// The entries of the admin kubeconfig's current context (or its only one), renamed to
    /// `name` and pointed at `server`.
    fn from_admin(admin: &str, name: &str, server: &str) -> Result<Self> {
        let what = "the cluster's admin kubeconfig";
        let shape = |problem: &str| KubeconfigError::Shape {
            what: what.into(),
            problem: problem.into(),
        };
        let config: Value =
            serde_norway::from_str(admin).map_err(|source| KubeconfigError::Parse {
                what: what.into(),
                source,
            })?;

        let context = admin_context(&config).ok_or_else(|| shape("it has no context"))?;
        let field = |key: &str| context.get(key).and_then(Value::as_str).unwrap_or_default();
        let mut cluster = find(&config, "clusters", field("cluster"), "cluster")
            .ok_or_else(|| shape("its context names no cluster it has"))?;
        let user = find(&config, "users", field("user"), "user")
            .ok_or_else(|| shape("its context names no user it has"))?;

        let Value::Mapping(cluster_fields) = &mut cluster else {
            return Err(shape("its cluster is not a mapping"));
        };
        cluster_fields.insert("server".into(), server.into());

        let mut context = context.clone();
        if let Value::Mapping(fields) = &mut context {
            fields.insert("cluster".into(), name.into());
            fields.insert("user".into(), name.into());
        }
        Ok(Self {
            cluster: named(name, "cluster", cluster),
            user: named(name, "user", user),
            context: named(name, "context", context),
        })
    }
}

/// The `context` body of the admin kubeconfig's current context, or of its first.
fn admin_context(config: &Value) -> Option<&Value> {
    let contexts = config.get("contexts")?.as_sequence()?;
    let current = config.get("current-context").and_then(Value::as_str);
    let entry = match current {
        Some(current) => contexts.iter().find(|c| entry_name(c) == Some(current)),
        None => contexts.first(),
    };
    entry?.get("context")
}

/// The body under `key` of the entry called `name` in the list `list`.
fn find(config: &Value, list: &str, name: &str, key: &str) -> Option<Value> {
    let entries = config.get(list)?.as_sequence()?;
    let entry = entries.iter().find(|e| entry_name(e) == Some(name))?;
    entry.get(key).cloned()
}

fn named(name: &str, key: &str, body: Value) -> Value {
    let mut entry = Mapping::new();
    entry.insert("name".into(), name.into());
    entry.insert(key.into(), body);
    Value::Mapping(entry)
}

fn entry_name(entry: &Value) -> Option<&str> {
    entry.get("name").and_then(Value::as_str)
}

/// Replaces the entry called `name` where it stands, or adds it at the end.
fn upsert(entries: &mut Vec<Value>, name: &str, entry: Value) {
    match entries.iter().position(|e| entry_name(e) == Some(name)) {
        Some(i) => {
            entries[i] = entry;
            // Hand-edited files may hold the name twice; kubectl would take the first.
            let mut seen = 0;
            entries.retain(|e| {
                seen += usize::from(entry_name(e) == Some(name));
                entry_name(e) != Some(name) || seen == 1
            });
        }
        None => entries.push(entry),
    }
}

fn empty_config() -> Value {
    let mut root = Mapping::new();
    root.insert("apiVersion".into(), "v1".into());
    root.insert("kind".into(), "Config".into());
    root.insert("preferences".into(), Value::Mapping(Mapping::new()));
    Value::Mapping(root)
}

fn as_mapping<'a>(config: &'a mut Value, what: &str) -> Result<&'a mut Mapping> {
    match config {
        Value::Mapping(root) => Ok(root),
        _ => Err(KubeconfigError::Shape {
            what: what.into(),
            problem: "its top level is not a mapping".into(),
        }),
    }
}

/// The list `key` of the kubeconfig, made empty when missing or null (as kubectl writes it).
fn list_of<'a>(root: &'a mut Mapping, key: &str, what: &str) -> Result<&'a mut Vec<Value>> {
    let value = root
        .entry(key.into())
        .or_insert(Value::Sequence(Vec::new()));
    if value.is_null() {
        *value = Value::Sequence(Vec::new());
    }
    match value {
        Value::Sequence(list) => Ok(list),
        _ => Err(KubeconfigError::Shape {
            what: what.into(),
            problem: format!("its {key} are not a list"),
        }),
    }
}

/// The kubeconfig at `path`; `None` when there is no file, or only an empty one.
fn read(path: &Path) -> Result<Option<Value>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error("read", path, source)),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_norway::from_str(&text)
        .map(Some)
        .map_err(|source| KubeconfigError::Parse {
            what: path.display().to_string(),
            source,
        })
}

/// Writes `config` to `path` by renaming a finished file over it, so that readers see the old
/// file or the new one and nothing between.
fn write(path: &Path, config: &Value) -> Result<()> {
    let text = serde_norway::to_string(config).map_err(KubeconfigError::Write)?;
    let target = real_path(path);
    let dir = parent(&target);
    fs::create_dir_all(dir).map_err(|source| io_error("create", dir, source))?;

    // The temporary file is made readable by its owner only, which the rename keeps.
    let mut file = tempfile::Builder::new()
        .prefix(".kdind-kubeconfig-")
        .tempfile_in(dir)
        .map_err(|source| io_error("create a temporary file in", dir, source))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|source| io_error("write", file.path(), source))?;
    restrict(file.path())?;
    file.persist(&target)
        .map_err(|err| io_error("replace", &target, err.error))?;
    Ok(())
}

/// The file a symbolic link at `path` leads to, so that the rename replaces the file and not the
/// link; `path` itself otherwise.
fn real_path(path: &Path) -> PathBuf {
    let link = path.is_symlink();
    match fs::canonicalize(path) {
        Ok(real) if link => real,
        _ => path.to_owned(),
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(unix)]
fn restrict(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|source| io_error("restrict the mode of", path, source))
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> Result<()> {
    Ok(())
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> KubeconfigError {
    KubeconfigError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// `<kubeconfig>.lock`, made exclusively and removed when dropped: the lock kubectl takes
/// around its own writes.
struct Lock {
    path: PathBuf,
}

impl Lock {
    fn take(kubeconfig: &Path) -> Result<Self> {
        let target = real_path(kubeconfig);
        let mut path = target.clone().into_os_string();
        path.push(".lock");
        let path = PathBuf::from(path);

        let dir = parent(&target);
        fs::create_dir_all(dir).map_err(|source| io_error("create", dir, source))?;
        let start = Instant::now();
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(Self { path }),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    if start.elapsed() > LOCK_TIMEOUT {
                        return Err(KubeconfigError::Locked { path });
                    }
                    thread::sleep(Duration::from_millis(50));
                }
                Err(source) => return Err(io_error("create", &path, source)),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // A lock left behind only delays the next writer until someone removes it; there is
        // nothing better to do with the error here.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    certificate-authority-data: Q0EtREFUQQ==
    server: https://10.192.0.2:6443
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
contexts:
- name: kubernetes-admin@kubernetes
  context:
    cluster: kubernetes
    user: kubernetes-admin
current-context: kubernetes-admin@kubernetes
preferences: {}
";

    /// A user's kubeconfig with fields kdind knows nothing of, which must all survive.
    const EXISTING: &str = "\
apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: prod
  cluster:
    server: https://prod.example.com
    certificate-authority: /etc/prod/ca.crt
    extensions:
    - name: client.authentication.k8s.io/exec
      extension:
        audience: prod
    some-future-field: [1, 2, 3]
- name: dind
  cluster:
    server: https://127.0.0.1:1111
users:
- name: prod-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: get-token
      args: [--cluster, prod]
      interactiveMode: Never
- name: dind
  user:
    token: stale
contexts:
- name: prod
  context:
    cluster: prod
    user: prod-user
    namespace: payments
    extensions:
    - name: note
      extension: keep me
- name: dind
  context:
    cluster: dind
    user: dind
current-context: prod
extensions:
- name: top-level
  extension:
    anything: goes
";

    fn parse(text: &str) -> Value {
        serde_norway::from_str(text).unwrap()
    }

    fn load(path: &Path) -> Value {
        parse(&fs::read_to_string(path).unwrap())
    }

    fn entry<'a>(config: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
        config[list]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| entry_name(e) == Some(name))
    }

    fn names(config: &Value, list: &str) -> Vec<String> {
        config[list]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| entry_name(e).unwrap().to_owned())
            .collect()
    }

    #[test]
    fn finds_the_file_to_write() {
        let home = Some(PathBuf::from("/home/me"));
        assert_eq!(
            path_from(None, home.clone()),
            Some(PathBuf::from("/home/me/.kube/config"))
        );
        assert_eq!(
            path_from(Some("/a/one:/b/two".into()), home.clone()),
            Some(PathBuf::from("/a/one"))
        );
        assert_eq!(
            path_from(Some(":/b/two".into()), home.clone()),
            Some(PathBuf::from("/b/two"))
        );
        assert_eq!(
            path_from(Some("".into()), home),
            Some(PathBuf::from("/home/me/.kube/config"))
        );
        assert_eq!(path_from(None, None), None);
        assert_eq!(local_server(32768), "https://127.0.0.1:32768");
    }

    #[test]
    fn creates_a_missing_file_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/.kube/config");
        merge(&path, ADMIN, "dind", "https://127.0.0.1:40000").unwrap();

        let config = load(&path);
        assert_eq!(config["kind"], "Config");
        assert_eq!(config["current-context"], "dind");
        assert_eq!(
            config["clusters"][0],
            parse(
                "name: dind\ncluster:\n  certificate-authority-data: Q0EtREFUQQ==\n  \
                 server: https://127.0.0.1:40000\n"
            )
        );
        assert_eq!(
            config["users"][0],
            parse(
                "name: dind\nuser:\n  client-certificate-data: Q0VSVA==\n  client-key-data: S0VZ\n"
            )
        );
        assert_eq!(
            config["contexts"][0],
            parse("name: dind\ncontext:\n  cluster: dind\n  user: dind\n")
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary or lock file is left");
    }

    #[test]
    fn replaces_its_own_entries_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, EXISTING).unwrap();
        merge(&path, ADMIN, "dind", "https://127.0.0.1:40000").unwrap();

        let before = parse(EXISTING);
        let after = load(&path);
        for (list, name) in [
            ("clusters", "prod"),
            ("users", "prod-user"),
            ("contexts", "prod"),
        ] {
            assert_eq!(
                entry(&after, list, name),
                entry(&before, list, name),
                "{list} {name}"
            );
        }
        for key in ["preferences", "extensions", "apiVersion", "kind"] {
            assert_eq!(after[key], before[key], "{key}");
        }

        // Replaced where it stood, not duplicated.
        assert_eq!(names(&after, "clusters"), ["prod", "dind"]);
        assert_eq!(names(&after, "users"), ["prod-user", "dind"]);
        assert_eq!(names(&after, "contexts"), ["prod", "dind"]);
        assert_eq!(
            entry(&after, "clusters", "dind").unwrap()["cluster"]["server"],
            "https://127.0.0.1:40000"
        );
        assert_eq!(
            entry(&after, "users", "dind").unwrap()["user"]["client-key-data"],
            "S0VZ"
        );
        assert!(
            entry(&after, "users", "dind").unwrap()["user"]
                .get("token")
                .is_none()
        );
        assert_eq!(after["current-context"], "dind");
    }

    #[test]
    fn adds_a_second_cluster_beside_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        merge(&path, ADMIN, "dind", "https://127.0.0.1:1").unwrap();
        merge(&path, ADMIN, "dind-cluster-20", "https://127.0.0.1:2").unwrap();

        let config = load(&path);
        assert_eq!(names(&config, "contexts"), ["dind", "dind-cluster-20"]);
        assert_eq!(
            entry(&config, "clusters", "dind").unwrap()["cluster"]["server"],
            "https://127.0.0.1:1"
        );
        assert_eq!(config["current-context"], "dind-cluster-20");
    }

    #[test]
    fn accepts_null_lists_and_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters: null\nusers: null\n",
        )
        .unwrap();
        merge(&path, ADMIN, "dind", "https://127.0.0.1:1").unwrap();
        assert_eq!(names(&load(&path), "users"), ["dind"]);

        fs::write(&path, "").unwrap();
        merge(&path, ADMIN, "dind", "https://127.0.0.1:1").unwrap();
        assert_eq!(names(&load(&path), "clusters"), ["dind"]);
    }

    #[cfg(unix)]
    #[test]
    fn writes_through_a_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real-config");
        let link = dir.path().join("config");
        fs::write(&real, EXISTING).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();

        merge(&link, ADMIN, "dind", "https://127.0.0.1:1").unwrap();
        assert!(link.is_symlink(), "the link stays a link");
        assert_eq!(load(&real)["current-context"], "dind");
    }

    #[test]
    fn refuses_what_is_not_a_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, "clusters: {a: b}\n").unwrap();
        let err = merge(&path, ADMIN, "dind", "https://127.0.0.1:1").unwrap_err();
        assert!(matches!(err, KubeconfigError::Shape { .. }), "{err}");
        assert!(
            err.to_string().ends_with("its clusters are not a list"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "clusters: {a: b}\n");

        fs::write(&path, "{{{").unwrap();
        assert!(matches!(
            merge(&path, ADMIN, "dind", "https://127.0.0.1:1"),
            Err(KubeconfigError::Parse { .. })
        ));

        let err = merge(&path, "apiVersion: v1\n", "dind", "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cluster's admin kubeconfig cannot be used: it has no context"
        );
    }

    #[test]
    fn removes_exactly_one_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, EXISTING).unwrap();
        merge(&path, ADMIN, "dind-cluster-20", "https://127.0.0.1:2").unwrap();

        assert!(remove_context(&path, "dind-cluster-20").unwrap());
        let config = load(&path);
        let before = parse(EXISTING);
        for list in ["clusters", "users", "contexts"] {
            assert_eq!(config[list], before[list], "{list}");
        }
        assert_eq!(
            config["current-context"], "",
            "it pointed at the removed cluster"
        );
        assert_eq!(config["extensions"], before["extensions"]);
    }

    #[test]
    fn keeps_the_current_context_when_it_is_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, EXISTING).unwrap();

        assert!(remove_context(&path, "dind").unwrap());
        let config = load(&path);
        assert_eq!(config["current-context"], "prod");
        assert_eq!(names(&config, "clusters"), ["prod"]);
        assert_eq!(names(&config, "users"), ["prod-user"]);
        assert_eq!(names(&config, "contexts"), ["prod"]);
    }

    #[test]
    fn leaves_the_file_alone_when_nothing_matches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, EXISTING).unwrap();
        let modified = fs::metadata(&path).unwrap().modified().unwrap();

        assert!(!remove_context(&path, "dind-nothing").unwrap());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            EXISTING,
            "byte for byte"
        );
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), modified);

        assert!(!remove_context(&dir.path().join("missing"), "dind").unwrap());
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn waits_for_and_then_gives_up_on_a_held_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let held = Lock::take(&path).unwrap();
        let lock_path = held.path.clone();
        assert_eq!(lock_path, dir.path().join("config.lock"));

        let waiter = {
            let path = path.clone();
            thread::spawn(move || merge(&path, ADMIN, "dind", "https://127.0.0.1:1"))
        };
        thread::sleep(Duration::from_millis(200));
        assert!(!path.exists(), "the writer waits for the lock");
        drop(held);
        waiter.join().unwrap().unwrap();
        assert!(path.exists());
        assert!(!lock_path.exists());
    }

    #[test]
    fn check_refuses_what_merge_could_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, "- a\n").unwrap();
        assert!(matches!(check(&path), Err(KubeconfigError::Shape { .. })));
        fs::write(&path, "clusters: [\n").unwrap();
        assert!(matches!(check(&path), Err(KubeconfigError::Parse { .. })));
        let err = check(&path.join("below-a-file")).unwrap_err();
        assert!(err.to_string().ends_with("is not a directory"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "clusters: [\n");

        check(&dir.path().join("new/dirs/config")).unwrap();
        assert!(!dir.path().join("new").exists(), "check makes nothing");
    }

    #[test]
    fn undo_puts_the_file_back_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, EXISTING).unwrap();
        let before = check(&path).unwrap();
        merge(&path, ADMIN, "dind-new", "https://127.0.0.1:1").unwrap();
        assert_eq!(load(&path)["current-context"], "dind-new");
        undo(&path, "dind-new", &before).unwrap();
        let config = load(&path);
        assert_eq!(config["current-context"], "prod");
        assert_eq!(names(&config, "contexts"), ["prod", "dind"]);

        // A file that was not there is not left behind, empty.
        let missing = dir.path().join("missing/config");
        let before = check(&missing).unwrap();
        merge(&missing, ADMIN, "dind", "https://127.0.0.1:1").unwrap();
        undo(&missing, "dind", &before).unwrap();
        assert!(!missing.exists());
    }
}
