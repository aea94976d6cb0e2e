//! `kdind build node-image`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kdind::image::{self, BuildOptions, KubeVersion};
use kdind::provider::Docker;

use crate::status::Status;

#[derive(Debug, Subcommand)]
pub enum Build {
    /// Build the node image from source: Kubernetes, etcd, CoreDNS, containerd and a Debian root
    /// filesystem, with every image kubeadm needs preloaded.
    NodeImage(NodeImage),
}

#[derive(Debug, Args)]
pub struct NodeImage {
    /// Kubernetes release to build (a version of the k8s.io/kubernetes Go module).
    #[arg(long, env = "KUBE_VERSION", default_value = image::DEFAULT_KUBE_VERSION)]
    kube_version: String,

    /// Name of the image to make [default: kdind/node:<kube-version>].
    #[arg(long)]
    image: Option<String>,

    /// Start from this existing image instead of a Debian root filesystem made with debootstrap.
    #[arg(long)]
    base_image: Option<String>,

    /// Where build outputs are cached [default: $XDG_CACHE_HOME/kdind or ~/.cache/kdind].
    #[arg(long, env = "KDIND_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

impl Build {
    pub async fn run(self, status: &Status) -> anyhow::Result<()> {
        match self {
            Build::NodeImage(args) => args.run(status).await,
        }
    }
}

impl NodeImage {
    async fn run(self, status: &Status) -> anyhow::Result<()> {
        let version = KubeVersion::parse(&self.kube_version)
            .ok_or_else(|| image::ImageError::BadVersion(self.kube_version.clone()))?;
        let mut options = BuildOptions::new(version);
        options.image = self.image;
        options.base_image = self.base_image;
        if let Some(dir) = self.cache_dir {
            options.cache_dir = dir;
        }

        let docker = Docker::connect().await?;
        let built = image::build_node_image_unless(&docker, &options, status, super::interrupted())
            .await
            .with_context(|| format!("failed to build node image {}", options.image_name()))?;
        println!("{}", built.name);
        Ok(())
    }
}
