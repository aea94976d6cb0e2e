//! `kdind copy-image` and `kdind load ...`: images from the host into every node, so that pods
//! run them without pulling.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kdind::cluster::load;
use kdind::provider::Docker;

use super::cluster::Which;
use crate::status::Status;

/// `kdind copy-image IMAGE...`, the same as `kdind load docker-image`.
#[derive(Debug, Args)]
pub struct CopyImage {
    /// Images in the Docker engine, by name or ID.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,

    #[command(flatten)]
    which: Which,
}

#[derive(Debug, Subcommand)]
pub enum Load {
    /// Copy images of the Docker engine into every node.
    DockerImage(CopyImage),
    /// Import image archives (`docker save` or OCI layout tarballs) into every node.
    ImageArchive(ImageArchive),
}

#[derive(Debug, Args)]
pub struct ImageArchive {
    /// Archive files.
    #[arg(required = true, value_name = "FILE")]
    archives: Vec<PathBuf>,

    #[command(flatten)]
    which: Which,
}

impl CopyImage {
    pub async fn run(self, status: &Status) -> anyhow::Result<()> {
        let name = self.which.name()?;
        let docker = Docker::connect().await?;
        let title = format!("Loading {} into {}", self.images.join(", "), name.context());
        let nodes = kdind::progress::step(
            status,
            &title,
            load::load_images(&docker, &name, &self.images),
        )
        .await
        .with_context(|| format!("failed to load images into {}", name.context()))?;
        println!(
            "Loaded {} into {}",
            self.images.join(", "),
            nodes.join(", ")
        );
        Ok(())
    }
}

impl Load {
    pub async fn run(self, status: &Status) -> anyhow::Result<()> {
        let args = match self {
            Load::DockerImage(copy) => return copy.run(status).await,
            Load::ImageArchive(args) => args,
        };
        let name = args.which.name()?;
        let docker = Docker::connect().await?;
        for archive in &args.archives {
            let title = format!("Loading {} into {}", archive.display(), name.context());
            let nodes =
                kdind::progress::step(status, &title, load::load_archive(&docker, &name, archive))
                    .await
                    .with_context(|| {
                        format!(
                            "failed to load {} into {}",
                            archive.display(),
                            name.context()
                        )
                    })?;
            println!("Loaded {} into {}", archive.display(), nodes.join(", "));
        }
        Ok(())
    }
}
