//! `kdind get ...`, `apiserver-port`, `pause` and `unpause`: looking at and freezing clusters.

use anyhow::Context;
use clap::{Args, Subcommand};
use kdind::cluster::lifecycle;
use kdind::provider::Docker;

use super::cluster::Which;
use crate::status::Status;

#[derive(Debug, Subcommand)]
pub enum Get {
    /// List the clusters kdind made, by context name.
    Clusters,
    /// List a cluster's node containers and their state.
    Nodes(Which),
    /// Print an admin kubeconfig for a cluster, its server on 127.0.0.1.
    Kubeconfig(Which),
}

impl Get {
    pub async fn run(self) -> anyhow::Result<()> {
        let docker = Docker::connect().await?;
        match self {
            Get::Clusters => {
                let clusters = lifecycle::clusters(&docker).await?;
                if clusters.is_empty() {
                    eprintln!("No kdind clusters found.");
                }
                for (context, nodes) in clusters {
                    println!("{context}\t{} nodes", nodes.len());
                }
            }
            Get::Nodes(which) => {
                let name = which.name()?;
                for node in lifecycle::nodes(&docker, &name).await? {
                    let state = match (node.running, node.paused) {
                        (true, true) => "paused",
                        (true, false) => "running",
                        (false, _) => "stopped",
                    };
                    println!("{}\t{state}", node.name);
                }
            }
            Get::Kubeconfig(which) => {
                let name = which.name()?;
                let text = lifecycle::admin_kubeconfig(&docker, &name)
                    .await
                    .with_context(|| {
                        format!("failed to read the kubeconfig of {}", name.context())
                    })?;
                println!("{}", text.trim_end());
            }
        }
        Ok(())
    }
}

/// `kdind apiserver-port`.
#[derive(Debug, Args)]
pub struct ApiserverPort {
    #[command(flatten)]
    which: Which,
}

impl ApiserverPort {
    pub async fn run(self) -> anyhow::Result<()> {
        let name = self.which.name()?;
        let docker = Docker::connect().await?;
        println!("{}", lifecycle::apiserver_port(&docker, &name).await?);
        Ok(())
    }
}

/// `kdind pause` and `kdind unpause`.
#[derive(Debug, Args)]
pub struct Pause {
    #[command(flatten)]
    which: Which,
}

impl Pause {
    pub async fn run(self, status: &Status, freeze: bool) -> anyhow::Result<()> {
        let name = self.which.name()?;
        let docker = Docker::connect().await?;
        lifecycle::set_paused(&docker, &name, freeze, status)
            .await
            .with_context(|| {
                let verb = if freeze { "pause" } else { "unpause" };
                format!("failed to {verb} cluster {}", name.context())
            })?;
        Ok(())
    }
}
