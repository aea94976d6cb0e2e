//! The last step of a node image build: the base image, plus kdind's node files and binaries,
//! plus every image kubeadm will ask for, imported into the node's containerd.
//!
//! The images are imported without unpacking: the build container's root is an overlay mount,
//! on which containerd's overlay snapshotter cannot work. The content lands in containerd's root
//! (`/kdind/containerd`), which a node gets as the initial content of a volume of its own, and
//! containerd unpacks each image the first time a container needs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cache::Key;
use super::kubernetes::{COMMANDS, ImageSet};
use super::oci::{self, Entry, Image};
use super::{ImageError, Result, files};
use crate::node::Node;
use crate::provider::{ContainerSpec, ImageConfig, Privileges, Provider};

/// Directories holding the built programs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub kubernetes: PathBuf,
    pub etcd: PathBuf,
    pub coredns: PathBuf,
    pub crictl: PathBuf,
    pub containerd: PathBuf,
    /// The pause binary itself.
    pub pause: PathBuf,
}

/// What to assemble.
#[derive(Debug, Clone)]
pub struct Plan {
    pub base: String,
    pub name: String,
    pub images: ImageSet,
    pub labels: BTreeMap<String, String>,
}

/// Labels of the build containers this process makes, so that an interrupted build can find
/// (only) its own.
pub fn build_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            crate::provider::LABEL_MANAGED.to_owned(),
            "build".to_owned(),
        ),
        (
            "io.kdind.build-process".to_owned(),
            std::process::id().to_string(),
        ),
    ])
}

/// Where images are staged inside the build container.
const STAGING: &str = "/kdind/images";

/// Programs installed on the node itself, from which directory.
fn node_programs(bin: &Binaries) -> Vec<(PathBuf, &'static str)> {
    let mut programs = vec![
        (bin.kubernetes.join("kubeadm"), "kubeadm"),
        (bin.kubernetes.join("kubelet"), "kubelet"),
        (bin.kubernetes.join("kubectl"), "kubectl"),
        (bin.crictl.join("crictl"), "crictl"),
    ];
    for program in ["containerd", "containerd-shim-runc-v2", "ctr"] {
        programs.push((bin.containerd.join(program), program));
    }
    programs
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let action = action.into();
    move |source| ImageError::Io { action, source }
}

/// Runs the assembly in a build container that is removed whatever happens.
pub async fn run<P: Provider>(
    provider: &P,
    plan: &Plan,
    bin: &Binaries,
    cache: &Path,
) -> Result<()> {
    let mut key = Key::new("assemble");
    key.add(&plan.name).add(std::process::id().to_string());
    let container = format!("kdind-build-{}", key.short());
    let spec = ContainerSpec {
        name: container.clone(),
        image: plan.base.clone(),
        entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
        cmd: Some(Vec::new()),
        labels: build_labels(),
        privileges: Privileges::Default,
        ..Default::default()
    };
    provider.run(&spec).await?;
    let result = fill_and_commit(provider, &container, plan, bin, cache).await;
    if let Err(err) = provider.remove(&container).await {
        tracing::warn!(%container, error = %err, "could not remove the build container");
    }
    result
}

async fn fill_and_commit<P: Provider>(
    provider: &P,
    container: &str,
    plan: &Plan,
    bin: &Binaries,
    cache: &Path,
) -> Result<()> {
    let node = Node::attach(provider, container);

    // kdind's own files and the node programs.
    let node_files = files::node_files_tar().map_err(io("pack the node files"))?;
    provider.copy_in(container, "/", node_files).await?;
    let programs = pack_files(
        node_programs(bin)
            .into_iter()
            .map(|(src, name)| (src, format!("usr/local/bin/{name}"))),
    )?;
    provider
        .copy_file_in(container, "/", programs.path())
        .await?;
    node.exec(&[
        "systemctl",
        "enable",
        "containerd.service",
        "kubelet.service",
        "kdind-network.service",
        "kdind-stop-pods.service",
    ])
    .await?;

    // The images, written here and imported by the node's own containerd.
    let netfilter = node
        .exec_bytes(&["/usr/local/bin/kdind-collect-netfilter"])
        .await?;
    let archives = tokio::task::spawn_blocking({
        let images = plan.images.clone();
        let bin = bin.clone();
        let dir = cache.join("images");
        move || write_images(&images, &bin, netfilter, &dir)
    })
    .await
    .map_err(|err| ImageError::Io {
        action: "write images".into(),
        source: err.into(),
    })??;
    let bundle = pack_files(archives.iter().map(|(path, file)| {
        (
            path.clone(),
            format!("{}/{file}", STAGING.trim_start_matches('/')),
        )
    }))?;
    provider.copy_file_in(container, "/", bundle.path()).await?;

    node.exec(&[
        "sh",
        "-c",
        "nohup containerd --config /etc/containerd/config.toml >/tmp/containerd.log 2>&1 &",
    ])
    .await?;
    wait_for_containerd(&node).await?;
    for (_, file) in &archives {
        let path = format!("{STAGING}/{file}");
        node.import_images(&path, false).await?;
    }
    let listed = node
        .exec(&["ctr", "--namespace", "k8s.io", "images", "list", "--quiet"])
        .await?;
    for image in plan.images.all() {
        if !listed.lines().any(|line| line == image) {
            return Err(ImageError::Images(format!(
                "{image} is missing after the import"
            )));
        }
    }
    node.exec(&[
        "sh",
        "-c",
        // `sleep` as PID 1 reaps nobody: a stopped containerd stays a zombie, so only live
        // ones count.
        "pkill -x containerd; while pgrep -r R,S,D -x containerd >/dev/null; do sleep 0.2; done",
    ])
    .await?;
    // Only the staged archives go: containerd's root (/kdind/containerd) holds the images.
    let cleanup = format!("rm -rf {STAGING} /tmp/* /var/log/*.log /run/containerd");
    node.exec(&["sh", "-c", &cleanup]).await?;

    let config = ImageConfig {
        entrypoint: vec!["/usr/local/bin/kdind-entrypoint".into()],
        cmd: vec!["/sbin/init".into()],
        env: vec!["container=docker".into()],
        labels: plan.labels.clone(),
        stop_signal: Some("SIGRTMIN+3".into()),
    };
    provider.commit(container, &plan.name, &config).await?;
    Ok(())
}

async fn wait_for_containerd<P: Provider>(node: &Node<'_, P>) -> Result<()> {
    for _ in 0..100 {
        if node.exec_output(&["ctr", "version"]).await?.success() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = node
        .exec_output(&["cat", "/tmp/containerd.log"])
        .await?
        .combined();
    Err(ImageError::Command {
        command: "containerd (in the build container)".into(),
        output: log,
    })
}

/// Packs host files into a temporary tar archive at the given paths.
fn pack_files(
    files: impl IntoIterator<Item = (PathBuf, String)>,
) -> Result<tempfile::NamedTempFile> {
    let archive = tempfile::NamedTempFile::new().map_err(io("create a temporary archive"))?;
    let mut builder = tar::Builder::new(archive.reopen().map_err(io("open the archive"))?);
    for (source, path) in files {
        let mut file =
            std::fs::File::open(&source).map_err(io(format!("open {}", source.display())))?;
        builder
            .append_file(&path, &mut file)
            .map_err(io(format!("pack {}", source.display())))?;
    }
    builder.finish().map_err(io("finish the archive"))?;
    Ok(archive)
}

/// Writes an OCI archive for every image kubeadm wants; returns (path, file name) pairs.
fn write_images(
    images: &ImageSet,
    bin: &Binaries,
    netfilter: Vec<u8>,
    dir: &Path,
) -> Result<Vec<(PathBuf, String)>> {
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let path_env = vec!["PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()];
    let program = |dir: &Path, name: &str| Entry::File {
        path: format!("/usr/local/bin/{name}"),
        source: dir.join(name),
        mode: 0o755,
    };

    let mut wanted = Vec::new();
    for (reference, command) in [
        (&images.apiserver, "kube-apiserver"),
        (&images.controller_manager, "kube-controller-manager"),
        (&images.scheduler, "kube-scheduler"),
    ] {
        debug_assert!(COMMANDS.contains(&command));
        wanted.push(Image {
            reference: reference.clone(),
            layers: vec![vec![program(&bin.kubernetes, command)]],
            entrypoint: vec![format!("/usr/local/bin/{command}")],
            env: path_env.clone(),
        });
    }
    wanted.push(Image {
        reference: images.proxy.clone(),
        layers: vec![
            vec![Entry::Archive { data: netfilter }],
            vec![program(&bin.kubernetes, "kube-proxy")],
        ],
        entrypoint: vec!["/usr/local/bin/kube-proxy".into()],
        env: path_env.clone(),
    });
    wanted.push(Image {
        reference: images.etcd.clone(),
        layers: vec![vec![
            program(&bin.etcd, "etcd"),
            program(&bin.etcd, "etcdctl"),
            program(&bin.etcd, "etcdutl"),
        ]],
        entrypoint: vec!["/usr/local/bin/etcd".into()],
        env: path_env.clone(),
    });
    wanted.push(Image {
        reference: images.coredns.clone(),
        layers: vec![vec![Entry::File {
            path: "/coredns".into(),
            source: bin.coredns.join("coredns"),
            mode: 0o755,
        }]],
        entrypoint: vec!["/coredns".into()],
        env: Vec::new(),
    });
    wanted.push(Image {
        reference: images.pause.clone(),
        layers: vec![vec![Entry::File {
            path: "/pause".into(),
            source: bin.pause.clone(),
            mode: 0o755,
        }]],
        entrypoint: vec!["/pause".into()],
        env: Vec::new(),
    });

    let mut written = Vec::new();
    for image in wanted {
        let file = format!("{}.tar", archive_name(&image.reference));
        let path = dir.join(&file);
        oci::write_archive(&image, &path).map_err(io(format!("write {}", path.display())))?;
        written.push((path, file));
    }
    Ok(written)
}

/// A file name for an image reference.
fn archive_name(reference: &str) -> String {
    reference
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
