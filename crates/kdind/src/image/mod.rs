//! The node image, built from source with nothing but Go's module proxy and Debian's archive.
//!
//! [`build_node_image`] is the whole pipeline, one step per line: Kubernetes from the
//! `k8s.io/kubernetes` module, then etcd, CoreDNS, crictl, containerd and pause at the versions
//! the built kubeadm asks for, a Debian root filesystem from debootstrap (or a base image the
//! user names), and finally the node image itself, with every image kubeadm needs preloaded into
//! its containerd. Each output is cached by a hash of its inputs, and the final image carries its
//! hash as a label, so a rebuild with nothing changed costs seconds.

mod assemble;
pub mod cache;
pub mod components;
pub mod files;
pub mod gobuild;
pub mod kubernetes;
pub mod oci;
pub mod rootfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::progress::{Progress, step};
use crate::provider::{ImageConfig, LABEL_MANAGED, Provider, ProviderError};
use cache::Key;
use gobuild::{GoBuild, GoError, Toolchain};
pub use kubernetes::{ImageSet, KubeVersion};

/// The Kubernetes release built when none is asked for: the newest that forms a working cluster
/// on a cgroup v1 host with the containerd kdind builds.
pub const DEFAULT_KUBE_VERSION: &str = "v1.37.2";

/// Revision of the assembly step (what goes where in the image); part of every image's key.
const ASSEMBLY_REVISION: &str = "node-image/2";

/// Repository of the node images kdind builds.
pub const NODE_REPOSITORY: &str = "kdind/node";

/// Label holding the hash of everything a kdind image was made from.
pub const LABEL_BUILD_KEY: &str = "io.kdind.build-key";
/// Label holding the Kubernetes version of a node image.
pub const LABEL_KUBE_VERSION: &str = "io.kdind.kubernetes-version";
/// Label holding the images preloaded into a node image, one per line.
pub const LABEL_IMAGES: &str = "io.kdind.images";

/// Errors from building images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    #[error(transparent)]
    Go(#[from] GoError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed:\n{output}")]
    Command { command: String, output: String },
    #[error(
        "{0:?} is not a Kubernetes version; give one like v1.37.2 (releases of k8s.io/kubernetes)"
    )]
    BadVersion(String),
    #[error("base image {0:?} does not exist; build or pull it first, or leave out --base-image")]
    MissingBaseImage(String),
    #[error(
        "making the root filesystem needs root (debootstrap); run kdind as root or give \
         --base-image"
    )]
    NeedsRoot,
    #[error("interrupted; finished parts stay cached for the next build")]
    Interrupted,
    #[error("kubeadm listed images kdind cannot build: {0}")]
    Images(String),
}

type Result<T, E = ImageError> = std::result::Result<T, E>;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub kube_version: KubeVersion,
    /// Name of the image to make; `kdind/node:<version>` when not given.
    pub image: Option<String>,
    /// An existing image to start from instead of a fresh Debian root filesystem.
    pub base_image: Option<String>,
    /// Where build outputs are cached.
    pub cache_dir: PathBuf,
}

impl BuildOptions {
    /// Options for `version` with the default image name and cache.
    pub fn new(version: KubeVersion) -> Self {
        Self {
            kube_version: version,
            image: None,
            base_image: None,
            cache_dir: cache::root(),
        }
    }

    pub fn image_name(&self) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| default_image(&self.kube_version))
    }
}

/// The default node image name for a Kubernetes version.
pub fn default_image(version: &KubeVersion) -> String {
    format!("{NODE_REPOSITORY}:{version}")
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub name: String,
    pub key: String,
    pub images: ImageSet,
    /// Directory holding the built Kubernetes commands (kubectl among them), for the host.
    pub kubernetes_bin: PathBuf,
    /// True when an image with the same key already existed and nothing was built.
    pub reused: bool,
}

/// Builds (or finds up to date) the node image.
///
/// # Errors
///
/// Any failing step, with the command and its output where one failed. A failed build leaves
/// no container behind; finished outputs stay cached for the next try.
pub async fn build_node_image<P: Provider>(
    provider: &P,
    options: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuiltImage> {
    let version = &options.kube_version;
    let cache = options.cache_dir.as_path();

    // Refuse what cannot work before building anything.
    let given_base = match &options.base_image {
        Some(base) => {
            let labels = provider.image_labels(base).await?;
            let labels = labels.ok_or_else(|| ImageError::MissingBaseImage(base.clone()))?;
            Some(
                labels
                    .get(LABEL_BUILD_KEY)
                    .cloned()
                    .unwrap_or_else(|| base.clone()),
            )
        }
        None => None,
    };
    let toolchain = Toolchain::find().await?;
    let _lock = lock_cache(cache).await?;
    tracing::info!(go = %toolchain.version, cache = %cache.display(), "building the node image");

    // The root filesystem.
    let base = match (&options.base_image, given_base) {
        (Some(base), Some(id)) => (base.clone(), id),
        _ => {
            step(
                progress,
                "Making the Debian root filesystem",
                base_image(provider, cache),
            )
            .await?
        }
    };

    // Kubernetes, and the image list its kubeadm asks for.
    let kube = step(
        progress,
        &format!("Preparing the Kubernetes {version} build"),
        async { kubernetes::recipe(&toolchain, version).await },
    )
    .await?;
    let kube_bin = build_go(
        progress,
        &format!("Building Kubernetes {version}"),
        &kube,
        &toolchain,
        cache,
    )
    .await?;
    let images = list_images(&kube_bin, version).await?;

    // The programs the node and its images need beside Kubernetes.
    let etcd_version = format!("v{}", etcd_release(kubernetes::image_tag(&images.etcd)));
    let coredns_version = kubernetes::image_tag(&images.coredns).to_owned();
    let pause_version = kubernetes::image_tag(&images.pause).to_owned();
    let crictl_versions = toolchain.versions("sigs.k8s.io/cri-tools").await?;
    let crictl_version = components::pick_crictl(&crictl_versions, version.minor)
        .ok_or_else(|| ImageError::Images(format!("no crictl release for {version}")))?;

    let etcd = components::etcd(&etcd_version);
    let coredns = components::coredns(&coredns_version);
    let crictl = components::crictl(&crictl_version);
    let containerd = components::containerd(components::CONTAINERD_VERSION);
    let etcd_bin = build_go(
        progress,
        &format!("Building etcd {etcd_version}"),
        &etcd,
        &toolchain,
        cache,
    )
    .await?;
    let coredns_bin = build_go(
        progress,
        &format!("Building CoreDNS {coredns_version}"),
        &coredns,
        &toolchain,
        cache,
    )
    .await?;
    let crictl_bin = build_go(
        progress,
        &format!("Building crictl {crictl_version}"),
        &crictl,
        &toolchain,
        cache,
    )
    .await?;
    let containerd_bin = build_go(
        progress,
        &format!("Building containerd {}", components::CONTAINERD_VERSION),
        &containerd,
        &toolchain,
        cache,
    )
    .await?;
    let pause_bin = step(
        progress,
        &format!("Building pause {pause_version}"),
        async { components::pause(&toolchain, &version.to_string(), &pause_version, cache).await },
    )
    .await?;

    // Everything above decides the node image.
    // The revision names how kdind assembles images; it changes when that code does.
    let mut key = Key::new(ASSEMBLY_REVISION);
    key.add(env!("CARGO_PKG_VERSION"));
    key.add(&base.1).add(version.to_string());
    for build in [&kube, &etcd, &coredns, &crictl, &containerd] {
        key.add(build.key(&toolchain).finish());
    }
    key.add(&pause_version)
        .add(files::node_files_tar().map_err(io("pack the node files"))?);
    key.add(images.all().join("\n"));
    let key = key.finish();

    let name = options.image_name();
    if let Some(labels) = provider.image_labels(&name).await?
        && labels.get(LABEL_BUILD_KEY) == Some(&key)
    {
        progress.note(&format!("Image {name} is up to date"));
        return Ok(BuiltImage {
            name,
            key,
            images,
            kubernetes_bin: kube_bin,
            reused: true,
        });
    }

    let binaries = assemble::Binaries {
        kubernetes: kube_bin.clone(),
        etcd: etcd_bin,
        coredns: coredns_bin,
        crictl: crictl_bin,
        containerd: containerd_bin,
        pause: pause_bin,
    };
    let mut labels = BTreeMap::from([
        (LABEL_BUILD_KEY.to_owned(), key.clone()),
        (LABEL_KUBE_VERSION.to_owned(), version.to_string()),
        (LABEL_IMAGES.to_owned(), images.all().join("\n")),
    ]);
    labels.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
    let plan = assemble::Plan {
        base: base.0,
        name: name.clone(),
        images: images.clone(),
        labels,
    };
    // The image this build replaces under the same name, removed after it unless still in use.
    let previous = provider.image_id(&name).await?;
    step(
        progress,
        &format!("Assembling {name}"),
        assemble::run(provider, &plan, &binaries, cache),
    )
    .await?;
    if let Some(previous) = previous
        && provider.image_id(&name).await?.as_ref() != Some(&previous)
    {
        let removed = provider.remove_unused_image(&previous).await?;
        tracing::debug!(%previous, removed, "image replaced by the build");
    }
    Ok(BuiltImage {
        name,
        key,
        images,
        kubernetes_bin: kube_bin,
        reused: false,
    })
}

/// [`build_node_image`], abandoned when `interrupt` completes first (a Ctrl-C, say); the build
/// container of this process is then removed. Finished outputs stay cached.
///
/// # Errors
///
/// As [`build_node_image`], and [`ImageError::Interrupted`].
pub async fn build_node_image_unless<P: Provider>(
    provider: &P,
    options: &BuildOptions,
    progress: &dyn Progress,
    interrupt: impl std::future::Future<Output = ()>,
) -> Result<BuiltImage> {
    tokio::select! {
        result = build_node_image(provider, options, progress) => result,
        () = interrupt => {
            for container in provider.list(&assemble::build_labels()).await? {
                provider.remove(&container.name).await?;
            }
            Err(ImageError::Interrupted)
        }
    }
}

/// Builds `image` again from its sources when kdind made it (it carries kdind's build labels),
/// so that it is up to date; other images are left alone and give `None`.
///
/// # Errors
///
/// As [`build_node_image`].
pub async fn rebuild<P: Provider>(
    provider: &P,
    image: &str,
    progress: &dyn Progress,
) -> Result<Option<BuiltImage>> {
    let Some(labels) = provider.image_labels(image).await? else {
        return Ok(None);
    };
    let version = labels
        .get(LABEL_KUBE_VERSION)
        .filter(|_| labels.contains_key(LABEL_BUILD_KEY))
        .and_then(|v| KubeVersion::parse(v));
    let Some(version) = version else {
        return Ok(None);
    };
    let mut options = BuildOptions::new(version);
    options.image = Some(image.to_owned());
    Ok(Some(build_node_image(provider, &options, progress).await?))
}

async fn build_go(
    progress: &dyn Progress,
    title: &str,
    build: &GoBuild,
    toolchain: &Toolchain,
    cache: &Path,
) -> Result<PathBuf> {
    Ok(step(progress, title, build.build(toolchain, cache)).await?)
}

fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> ImageError {
    move |source| ImageError::Io {
        action: action.into(),
        source,
    }
}

/// Holds the cache for one build at a time, across threads and processes; released on drop.
async fn lock_cache(cache: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(cache).map_err(io("create the cache directory"))?;
    let file = std::fs::File::create(cache.join(".lock")).map_err(io("open the cache lock"))?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|err| ImageError::Io {
            action: "lock the cache".into(),
            source: err.into(),
        })?
        .map_err(io("lock the cache"))
}

/// `3.7.0` from etcd's image tag `3.7.0-0`.
fn etcd_release(tag: &str) -> &str {
    tag.split_once('-').map(|(v, _)| v).unwrap_or(tag)
}

/// Asks the built kubeadm which images it will want.
async fn list_images(kube_bin: &Path, version: &KubeVersion) -> Result<ImageSet> {
    let kubeadm = kube_bin.join("kubeadm");
    let output = Command::new(&kubeadm)
        .args([
            "config",
            "images",
            "list",
            "--kubernetes-version",
            &version.to_string(),
        ])
        .output()
        .await
        .map_err(io("run kubeadm config images list"))?;
    if !output.status.success() {
        return Err(ImageError::Command {
            command: format!("{} config images list", kubeadm.display()),
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    ImageSet::parse(&String::from_utf8_lossy(&output.stdout)).map_err(ImageError::Images)
}

/// The Debian base image, imported from the cached root filesystem when missing. Returns its
/// name and its key.
async fn base_image<P: Provider>(provider: &P, cache: &Path) -> Result<(String, String)> {
    let key = rootfs::key();
    let name = format!("kdind/base:{}", key.short());
    if let Some(labels) = provider.image_labels(&name).await?
        && labels.get(LABEL_BUILD_KEY) == Some(&key.finish())
    {
        return Ok((name, key.finish()));
    }
    let tarball = rootfs::build(cache).await?;
    let config = ImageConfig {
        cmd: vec!["/sbin/init".into()],
        labels: BTreeMap::from([
            (LABEL_BUILD_KEY.to_owned(), key.finish()),
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
        ]),
        ..Default::default()
    };
    provider.import_rootfs(&tarball, &name, &config).await?;
    Ok((name, key.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_tags_lose_their_image_revision() {
        assert_eq!(etcd_release("3.7.0-0"), "3.7.0");
        assert_eq!(etcd_release("3.6.5"), "3.6.5");
    }

    #[test]
    fn default_image_names_the_version() {
        let options = BuildOptions::new(KubeVersion::parse(DEFAULT_KUBE_VERSION).unwrap());
        assert_eq!(options.image_name(), "kdind/node:v1.37.2");
    }
}
