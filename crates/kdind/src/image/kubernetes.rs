//! Kubernetes itself, built from the `k8s.io/kubernetes` module.
//!
//! That module pins its staging modules (`k8s.io/api`, `k8s.io/client-go`, ...) at `v0.0.0` and
//! points them into its own tree with `replace` lines, which a consuming module cannot use. The
//! build module maps each of them to its published `v0.<minor>.<patch>` twin instead; the list
//! comes from the release's own `go.mod`, so it follows the release.

use super::gobuild::{self, GoBuild, GoError, Toolchain};

/// The module every Kubernetes command is built from.
pub const MODULE: &str = "k8s.io/kubernetes";

/// Commands built for the node: the ones that run on it and the ones baked into its images.
pub const COMMANDS: &[&str] = &[
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];

/// Packages whose variables carry the version that `kubeadm version` and friends print.
const VERSION_PACKAGES: &[&str] = &[
    "k8s.io/component-base/version",
    "k8s.io/client-go/pkg/version",
];

/// A Kubernetes release version, `v1.37.2` or `v1.38.0-beta.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// `-beta.0` and the like, with its dash; empty for a release.
    pub pre: String,
}

impl KubeVersion {
    /// Parses `v1.37.2` (the leading `v` may be left out).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let (core, pre) = match text.find('-') {
            Some(i) => (&text[..i], &text[i..]),
            None => (text, ""),
        };
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() || major != 1 {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
            pre: pre.to_owned(),
        })
    }

    /// The staging modules' twin version: `v0.37.2` for `v1.37.2`.
    pub fn staging(&self) -> String {
        format!("v0.{}.{}{}", self.minor, self.patch, self.pre)
    }
}

impl std::fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "v{}.{}.{}{}",
            self.major, self.minor, self.patch, self.pre
        )
    }
}

/// The build of every command in [`COMMANDS`] at `version`.
///
/// # Errors
///
/// Fails when the module cannot be downloaded or its `go.mod` read.
pub async fn recipe(toolchain: &Toolchain, version: &KubeVersion) -> Result<GoBuild, GoError> {
    let source = toolchain.download(MODULE, &version.to_string()).await?;
    let go_mod = std::fs::read_to_string(&source.go_mod).map_err(|source_err| GoError::Io {
        action: format!("read {}", source.go_mod.display()),
        source: source_err,
    })?;
    Ok(recipe_from_go_mod(&go_mod, version))
}

fn recipe_from_go_mod(go_mod: &str, version: &KubeVersion) -> GoBuild {
    let replaces = gobuild::local_replaces(go_mod)
        .into_iter()
        .filter(|(_, path)| path.starts_with("./staging/"))
        .map(|(module, _)| (module.clone(), module, version.staging()))
        .collect();

    let mut variables = Vec::new();
    for package in VERSION_PACKAGES {
        variables.extend([
            format!("{package}.gitVersion={version}"),
            format!("{package}.gitMajor={}", version.major),
            format!("{package}.gitMinor={}", version.minor),
            format!("{package}.gitTreeState=clean"),
            // Fixed, so that the same sources give the same binaries.
            format!("{package}.buildDate=1970-01-01T00:00:00Z"),
        ]);
    }

    GoBuild {
        name: format!("kubernetes-{version}"),
        go_version: gobuild::go_directive(go_mod).unwrap_or_else(|| "1.24.0".into()),
        requires: vec![(MODULE.into(), version.to_string())],
        replaces,
        packages: COMMANDS
            .iter()
            .map(|c| format!("{MODULE}/cmd/{c}"))
            .collect(),
        variables,
        tags: Vec::new(),
        renames: Vec::new(),
    }
}

/// The images a kubeadm release asks for, as `kubeadm config images list` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    pub apiserver: String,
    pub controller_manager: String,
    pub scheduler: String,
    pub proxy: String,
    pub etcd: String,
    pub coredns: String,
    pub pause: String,
}

impl ImageSet {
    /// Reads the output of `kubeadm config images list`.
    pub fn parse(listing: &str) -> Result<Self, String> {
        let refs: Vec<&str> = listing
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let find = |name: &str| {
            refs.iter()
                .find(|r| image_name(r) == name)
                .map(|r| (*r).to_owned())
                .ok_or_else(|| format!("kubeadm named no {name} image in:\n{listing}"))
        };
        Ok(Self {
            apiserver: find("kube-apiserver")?,
            controller_manager: find("kube-controller-manager")?,
            scheduler: find("kube-scheduler")?,
            proxy: find("kube-proxy")?,
            etcd: find("etcd")?,
            coredns: find("coredns")?,
            pause: find("pause")?,
        })
    }

    pub fn all(&self) -> [&str; 7] {
        [
            &self.apiserver,
            &self.controller_manager,
            &self.scheduler,
            &self.proxy,
            &self.etcd,
            &self.coredns,
            &self.pause,
        ]
    }
}

/// The last path element of an image reference, without its tag.
fn image_name(reference: &str) -> &str {
    let path = reference.rsplit('/').next().unwrap_or(reference);
    path.split(':').next().unwrap_or(path)
}

/// The tag of an image reference.
pub fn image_tag(reference: &str) -> &str {
    let path = reference.rsplit('/').next().unwrap_or(reference);
    path.split_once(':').map(|(_, tag)| tag).unwrap_or("latest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v = KubeVersion::parse("v1.37.2").unwrap();
        assert_eq!((v.minor, v.patch), (37, 2));
        assert_eq!(v.staging(), "v0.37.2");
        assert_eq!(v.to_string(), "v1.37.2");
        let beta = KubeVersion::parse("1.38.0-beta.0").unwrap();
        assert_eq!(beta.staging(), "v0.38.0-beta.0");
        assert_eq!(beta.to_string(), "v1.38.0-beta.0");
        for bad in ["", "v1.37", "v2.0.0", "v1.x.0", "v1.2.3.4", "latest"] {
            assert!(KubeVersion::parse(bad).is_none(), "{bad} must be refused");
        }
    }

    #[test]
    fn maps_staging_modules_to_published_twins() {
        let go_mod = "module k8s.io/kubernetes\n\ngo 1.26.0\n\nreplace (\n\
                      \tk8s.io/api => ./staging/src/k8s.io/api\n\
                      \tk8s.io/client-go => ./staging/src/k8s.io/client-go\n)\n";
        let build = recipe_from_go_mod(go_mod, &KubeVersion::parse("v1.37.2").unwrap());
        assert_eq!(build.go_version, "1.26.0");
        assert_eq!(
            build.replaces,
            vec![
                ("k8s.io/api".into(), "k8s.io/api".into(), "v0.37.2".into()),
                (
                    "k8s.io/client-go".into(),
                    "k8s.io/client-go".into(),
                    "v0.37.2".into()
                ),
            ]
        );
        assert!(
            build
                .variables
                .contains(&"k8s.io/component-base/version.gitVersion=v1.37.2".into())
        );
        assert!(
            build
                .variables
                .contains(&"k8s.io/client-go/pkg/version.gitMinor=37".into())
        );
        assert_eq!(build.binaries().len(), COMMANDS.len());
    }

    #[test]
    fn reads_kubeadm_image_list() {
        let listing = "registry.k8s.io/kube-apiserver:v1.37.2\n\
                       registry.k8s.io/kube-controller-manager:v1.37.2\n\
                       registry.k8s.io/kube-scheduler:v1.37.2\n\
                       registry.k8s.io/kube-proxy:v1.37.2\n\
                       registry.k8s.io/coredns/coredns:v1.14.6\n\
                       registry.k8s.io/pause:3.10.2\n\
                       registry.k8s.io/etcd:3.7.0-0\n";
        let set = ImageSet::parse(listing).unwrap();
        assert_eq!(set.coredns, "registry.k8s.io/coredns/coredns:v1.14.6");
        assert_eq!(image_tag(&set.etcd), "3.7.0-0");
        assert_eq!(image_tag(&set.pause), "3.10.2");
        assert!(ImageSet::parse("registry.k8s.io/pause:3.10.2").is_err());
    }
}
