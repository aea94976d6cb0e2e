//! Go programs built from their modules through the Go module proxy.
//!
//! A program is built inside a small module of kdind's own whose `go.mod` requires the
//! program's module at the wanted version (plus whatever `replace` lines that module needs in
//! order to resolve). The output directory is keyed by that `go.mod`, the packages, the flags and
//! the Go version; Go's own build cache makes a rebuild after a small change quick.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use tokio::process::Command;

use super::cache::{Entry, Key};

/// Errors from the Go toolchain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoError {
    #[error("the Go toolchain was not found ({0}); install Go 1.25 or newer and put `go` on PATH")]
    Missing(#[source] std::io::Error),
    #[error("`{command}` failed:\n{output}")]
    Command { command: String, output: String },
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected answer from `{command}`: {message}")]
    Parse { command: String, message: String },
}

type Result<T, E = GoError> = std::result::Result<T, E>;

/// The Go toolchain found on PATH.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// `go1.26.8` and the like.
    pub version: String,
}

/// A module version as the module cache holds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModuleSource {
    pub path: String,
    pub version: String,
    /// The unpacked source.
    pub dir: PathBuf,
    /// The module's `go.mod`.
    pub go_mod: PathBuf,
}

impl Toolchain {
    /// Finds `go` and asks its version.
    ///
    /// # Errors
    ///
    /// [`GoError::Missing`] when there is no `go` to run.
    pub async fn find() -> Result<Self> {
        let output = Command::new("go")
            .args(["env", "GOVERSION"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(GoError::Missing)?;
        if !output.status.success() {
            return Err(GoError::Command {
                command: "go env GOVERSION".into(),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(Self {
            version: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        })
    }

    /// Downloads a module into the module cache (a no-op when it is there) and says where it is.
    pub async fn download(&self, module: &str, version: &str) -> Result<ModuleSource> {
        let spec = format!("{module}@{version}");
        let output = run_go(&["mod", "download", "-json", &spec], None, &[]).await?;
        serde_json::from_slice(&output).map_err(|err| GoError::Parse {
            command: format!("go mod download -json {spec}"),
            message: err.to_string(),
        })
    }

    /// Every published version of a module, oldest first. Without the module proxy, the
    /// versions already in the module cache.
    pub async fn versions(&self, module: &str) -> Result<Vec<String>> {
        let args = ["list", "-m", "-versions", module];
        let output = match run_go(&args, None, &[]).await {
            Ok(output) => output,
            Err(err) => {
                // The module cache's download directory has the layout of a module proxy.
                tracing::info!(%module, error = %err, "listing versions from the module cache");
                let cache = run_go(&["env", "GOMODCACHE"], None, &[]).await?;
                let cache = String::from_utf8_lossy(&cache).trim().to_owned();
                let proxy = format!("file://{cache}/cache/download");
                run_go(&args, None, &[("GOPROXY", &proxy)]).await?
            }
        };
        let text = String::from_utf8_lossy(&output);
        Ok(text.split_whitespace().skip(1).map(str::to_owned).collect())
    }
}

/// How to build one or more commands from Go modules.
#[derive(Debug, Clone, Default)]
pub struct GoBuild {
    /// Names the output directory, such as `kubernetes` or `etcd`.
    pub name: String,
    /// The `go` line of the build module.
    pub go_version: String,
    /// `module version` pairs to require.
    pub requires: Vec<(String, String)>,
    /// `from => to version` replacements.
    pub replaces: Vec<(String, String, String)>,
    /// Main packages to build; each gives a binary named after its last path element.
    pub packages: Vec<String>,
    /// `-X` settings, as `importpath.name=value`.
    pub variables: Vec<String>,
    pub tags: Vec<String>,
    /// Binaries renamed after the build, `(built, wanted)`.
    pub renames: Vec<(String, String)>,
}

impl GoBuild {
    /// The build module's `go.mod`.
    pub fn go_mod(&self) -> String {
        let mut text = format!(
            "module kdind.local/build/{}\n\ngo {}\n",
            self.name, self.go_version
        );
        if !self.requires.is_empty() {
            text.push_str("\nrequire (\n");
            for (module, version) in &self.requires {
                text.push_str(&format!("\t{module} {version}\n"));
            }
            text.push_str(")\n");
        }
        if !self.replaces.is_empty() {
            text.push_str("\nreplace (\n");
            for (from, to, version) in &self.replaces {
                text.push_str(&format!("\t{from} => {to} {version}\n"));
            }
            text.push_str(")\n");
        }
        text
    }

    /// Names of the binaries the build makes.
    pub fn binaries(&self) -> Vec<String> {
        self.packages
            .iter()
            .map(|p| {
                let last = p.rsplit('/').next().unwrap_or(p);
                // A major-version suffix names no binary: `.../server/v3` builds `server`.
                if last.len() > 1 && last.starts_with('v') && last[1..].parse::<u32>().is_ok() {
                    let mut parts = p.rsplit('/');
                    parts.next();
                    parts.next().unwrap_or(last).to_owned()
                } else {
                    last.to_owned()
                }
            })
            .collect()
    }

    /// Names of the binaries in the output directory, after renames.
    pub fn outputs(&self) -> Vec<String> {
        self.binaries()
            .into_iter()
            .map(|b| {
                let renamed = self.renames.iter().find(|(from, _)| *from == b);
                renamed.map(|(_, to)| to.clone()).unwrap_or(b)
            })
            .collect()
    }

    fn ldflags(&self) -> String {
        let mut flags = vec!["-s".to_owned(), "-w".to_owned()];
        for variable in &self.variables {
            flags.push(format!("-X '{variable}'"));
        }
        flags.join(" ")
    }

    /// Everything that decides the output.
    pub fn key(&self, toolchain: &Toolchain) -> Key {
        let mut key = Key::new("go-build/1");
        key.add(&toolchain.version)
            .add(self.go_mod())
            .add(self.ldflags());
        key.add(self.packages.join(" ")).add(self.tags.join(","));
        for (from, to) in &self.renames {
            key.add(from).add(to);
        }
        key
    }

    /// Builds into the cache, or reuses an earlier build with the same key; returns the
    /// directory holding the binaries.
    pub async fn build(&self, toolchain: &Toolchain, cache_root: &Path) -> Result<PathBuf> {
        let entry = Entry::new(&cache_root.join("go"), &self.name, &self.key(toolchain));
        let bin = entry.path("bin");
        if entry.is_complete() {
            tracing::debug!(name = %self.name, dir = %entry.dir.display(), "reusing Go build");
            return Ok(bin);
        }

        let io = |action: &str| {
            let action = format!("{action} in {}", entry.dir.display());
            move |source| GoError::Io { action, source }
        };
        entry.prepare().map_err(io("prepare the build directory"))?;
        let src = entry.path("src");
        std::fs::create_dir_all(&src).map_err(io("create the build module"))?;
        std::fs::write(src.join("go.mod"), self.go_mod()).map_err(io("write go.mod"))?;

        let out = format!("{}/", bin.display());
        let ldflags = self.ldflags();
        let tags = self.tags.join(",");
        let mut args = vec!["build", "-trimpath", "-ldflags", &ldflags, "-o", &out];
        if !tags.is_empty() {
            args.extend(["-tags", &tags]);
        }
        args.extend(self.packages.iter().map(String::as_str));
        run_go(&args, Some(&src), &[("CGO_ENABLED", "0")]).await?;

        for (from, to) in &self.renames {
            std::fs::rename(bin.join(from), bin.join(to)).map_err(io("rename a binary"))?;
        }
        for binary in self.outputs() {
            if !bin.join(&binary).is_file() {
                return Err(GoError::Parse {
                    command: format!("go build {}", self.packages.join(" ")),
                    message: format!("no binary {binary} was produced"),
                });
            }
        }
        entry.complete().map_err(io("mark the build complete"))?;
        Ok(bin)
    }
}

/// Runs `go`, offline from anything but the module proxy: no toolchain downloads, no VCS.
async fn run_go(args: &[&str], dir: Option<&Path>, env: &[(&str, &str)]) -> Result<Vec<u8>> {
    let command = format!("go {}", args.join(" "));
    tracing::debug!(%command, "running");
    let mut cmd = Command::new("go");
    cmd.args(args)
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .env("GOTOOLCHAIN", "local");
    for (key, value) in env {
        cmd.env(key, value);
    }
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let output = cmd.output().await.map_err(GoError::Missing)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(GoError::Command {
            command,
            output: tail.join("\n"),
        });
    }
    tracing::trace!(%command, output = %String::from_utf8_lossy(&output.stderr), "go output");
    Ok(output.stdout)
}

/// The `go` line of a `go.mod`.
pub fn go_directive(go_mod: &str) -> Option<String> {
    go_mod
        .lines()
        .find_map(|line| line.strip_prefix("go ").map(|v| v.trim().to_owned()))
}

/// `replace` lines of a `go.mod` that point into the module's own tree (`=> ./path`), as
/// (module, relative path) pairs.
pub fn local_replaces(go_mod: &str) -> Vec<(String, String)> {
    let mut replaces = Vec::new();
    let mut in_block = false;
    for line in go_mod.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let body = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if line == "replace (" {
            in_block = true;
            continue;
        } else if let Some(rest) = line.strip_prefix("replace ") {
            rest
        } else {
            continue;
        };
        if let Some((from, to)) = body.split_once("=>") {
            let from = from.split_whitespace().next().unwrap_or("");
            let to = to.trim();
            if to.starts_with("./") || to.starts_with("../") {
                replaces.push((from.to_owned(), to.to_owned()));
            }
        }
    }
    replaces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_mod_lists_requires_and_replaces() {
        let build = GoBuild {
            name: "x".into(),
            go_version: "1.26.0".into(),
            requires: vec![("example.com/a".into(), "v1.2.3".into())],
            replaces: vec![(
                "example.com/b".into(),
                "example.com/b".into(),
                "v0.3.0".into(),
            )],
            ..Default::default()
        };
        let text = build.go_mod();
        assert!(text.starts_with("module kdind.local/build/x\n\ngo 1.26.0\n"));
        assert!(text.contains("\texample.com/a v1.2.3\n"));
        assert!(text.contains("\texample.com/b => example.com/b v0.3.0\n"));
    }

    #[test]
    fn binaries_skip_major_version_suffixes() {
        let build = GoBuild {
            packages: vec![
                "k8s.io/kubernetes/cmd/kubeadm".into(),
                "go.etcd.io/etcd/etcdctl/v3".into(),
                "github.com/coredns/coredns".into(),
            ],
            ..Default::default()
        };
        assert_eq!(build.binaries(), vec!["kubeadm", "etcdctl", "coredns"]);
    }

    #[test]
    fn key_follows_every_input() {
        let toolchain = Toolchain {
            version: "go1.26.8".into(),
        };
        let base = GoBuild {
            name: "x".into(),
            go_version: "1.26".into(),
            ..Default::default()
        };
        let mut flagged = base.clone();
        flagged.variables.push("a.b=c".into());
        let newer = Toolchain {
            version: "go1.26.9".into(),
        };
        assert_ne!(
            base.key(&toolchain).finish(),
            flagged.key(&toolchain).finish()
        );
        assert_ne!(base.key(&toolchain).finish(), base.key(&newer).finish());
        assert_eq!(
            base.key(&toolchain).finish(),
            base.clone().key(&toolchain).finish()
        );
    }

    #[test]
    fn parses_local_replaces() {
        let go_mod = "module k8s.io/kubernetes\n\ngo 1.26.0\n\nrequire x v1\n\nreplace (\n\
                      \tk8s.io/api => ./staging/src/k8s.io/api\n\
                      \tk8s.io/client-go => ./staging/src/k8s.io/client-go // staging\n\
                      \tgithub.com/x/y => github.com/x/y v1.0.0\n)\n\
                      replace go.etcd.io/etcd/api/v3 => ../api\n";
        assert_eq!(go_directive(go_mod).as_deref(), Some("1.26.0"));
        assert_eq!(
            local_replaces(go_mod),
            vec![
                ("k8s.io/api".into(), "./staging/src/k8s.io/api".into()),
                (
                    "k8s.io/client-go".into(),
                    "./staging/src/k8s.io/client-go".into()
                ),
                ("go.etcd.io/etcd/api/v3".into(), "../api".into()),
            ]
        );
    }
}
