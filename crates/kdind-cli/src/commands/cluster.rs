//! `kdind up`, `down` and `clean`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use kdind::cluster::lifecycle::{self, ClusterOptions};
use kdind::cluster::naming::ClusterName;
use kdind::cluster::settings;
use kdind::image::{self, KubeVersion};
use kdind::net::IpMode;
use kdind::provider::Docker;

use crate::status::Status;

/// Which cluster a command is about.
#[derive(Debug, Args)]
pub struct Which {
    /// Cluster ID, 1-254: names get `-cluster-N` and the management network's third octet is N.
    #[arg(long, env = "CLUSTER_ID", default_value_t = 0)]
    cluster_id: u8,

    /// Label of the cluster: names get `-LABEL` and the context is `dind-LABEL`.
    #[arg(long, env = "DIND_LABEL")]
    label: Option<String>,

    /// Kubeconfig file to write [default: first of $KUBECONFIG, else ~/.kube/config].
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

impl Which {
    pub fn name(&self) -> anyhow::Result<ClusterName> {
        if self.cluster_id == 255 {
            bail!("CLUSTER_ID 255 is out of range; use 1-254 (or 0 for the default cluster)");
        }
        let label = self.label.clone().filter(|l| !l.is_empty());
        Ok(ClusterName {
            id: self.cluster_id,
            label,
        })
    }
}

#[derive(Debug, Args)]
pub struct Up {
    #[command(flatten)]
    which: Which,

    /// Number of worker nodes.
    #[arg(long, env = "NUM_NODES", default_value_t = 2)]
    num_nodes: u32,

    /// Node image [default: kdind/node:<default Kubernetes version>].
    #[arg(long, env = "DIND_IMAGE")]
    image: Option<String>,

    /// Address families: ipv4 (the only one that forms clusters yet), ipv6, dual-stack.
    #[arg(long, env = "IP_MODE", default_value = "ipv4")]
    ip_mode: String,

    /// Management network of the nodes.
    #[arg(long, env = "MGMT_CIDRS")]
    mgmt_cidrs: Option<String>,

    /// Pod network; each node gets a /24 of it.
    #[arg(long, env = "POD_NETWORK_CIDR")]
    pod_network_cidr: Option<String>,

    /// Service network.
    #[arg(long, env = "SERVICE_CIDR")]
    service_cidr: Option<String>,

    /// Host port of the API server on 127.0.0.1 [default: a free one].
    #[arg(long, env = "APISERVER_PORT")]
    apiserver_port: Option<u16>,

    /// Kubernetes feature gates for every component: Name=true,Other=false.
    #[arg(long, env = "FEATURE_GATES", default_value = "")]
    feature_gates: String,

    /// Keep what a failed `up` made, to look at it.
    #[arg(long)]
    retain: bool,

    /// Seconds to wait for the nodes and CoreDNS.
    #[arg(long, default_value_t = 300)]
    wait: u64,
}

fn ip_mode(text: &str) -> anyhow::Result<IpMode> {
    match text {
        "ipv4" => Ok(IpMode::Ipv4),
        "ipv6" => Ok(IpMode::Ipv6),
        "dual-stack" | "dualstack" => Ok(IpMode::DualStack),
        other => bail!("IP_MODE {other:?} is not known; use ipv4, ipv6 or dual-stack"),
    }
}

impl Up {
    pub async fn run(self, status: &Status) -> anyhow::Result<()> {
        let (name, options) = self.options()?;
        let docker = Docker::connect().await?;
        let interrupt = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let running = lifecycle::up_unless(&docker, &options, status, interrupt)
            .await
            .with_context(|| format!("failed to bring up cluster {}", name.context()))?;
        report(&running);
        Ok(())
    }

    /// Rebuilds the node image when kdind built it, then replaces the cluster's nodes with it.
    pub async fn reup(self, status: &Status) -> anyhow::Result<()> {
        let (name, options) = self.options()?;
        let docker = Docker::connect().await?;
        image::rebuild(&docker, &options.image, status)
            .await
            .with_context(|| format!("failed to rebuild node image {}", options.image))?;
        let running = lifecycle::reup(&docker, &options, status)
            .await
            .with_context(|| {
                format!("failed to replace the nodes of cluster {}", name.context())
            })?;
        report(&running);
        Ok(())
    }

    fn options(self) -> anyhow::Result<(ClusterName, ClusterOptions)> {
        let name = self.which.name()?;
        let image = self.image.clone().unwrap_or_else(|| {
            image::default_image(&KubeVersion::parse(image::DEFAULT_KUBE_VERSION).unwrap())
        });
        let mut options = ClusterOptions::new(name.clone(), image);
        options.plan.mode = ip_mode(&self.ip_mode)?;
        options.plan.cluster_id = u32::from(name.id);
        options.plan.workers = self.num_nodes;
        options.plan.management = self.mgmt_cidrs.filter(|s| !s.is_empty());
        options.plan.pods = self.pod_network_cidr.filter(|s| !s.is_empty());
        options.plan.services = self.service_cidr.filter(|s| !s.is_empty());
        options.apiserver_port = self.apiserver_port.filter(|p| *p != 0);
        options.retain = self.retain;
        options.kubeconfig = self.which.kubeconfig;
        options.wait = Duration::from_secs(self.wait);
        options.feature_gates = settings::feature_gates("FEATURE_GATES", &self.feature_gates)?;
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let vars = || vars.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        options.apiserver_args = settings::component_flags("APISERVER_", vars())?;
        options.controller_manager_args = settings::component_flags("CONTROLLER_MANAGER_", vars())?;
        options.scheduler_args = settings::component_flags("SCHEDULER_", vars())?;

        Ok((name, options))
    }
}

fn report(running: &lifecycle::Running) {
    let verb = if running.restored { "is back" } else { "is up" };
    println!(
        "Cluster {} {verb}: API server at https://127.0.0.1:{}",
        running.context, running.apiserver_port
    );
    for node in &running.nodes {
        println!(
            "  {:<24} {}",
            node.name,
            if node.ready { "Ready" } else { "NotReady" }
        );
    }
    println!(
        "Use it with: kubectl --context {} get nodes",
        running.context
    );
    let default = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".kube/config");
    if running.kubeconfig != default {
        println!("(context written to {})", running.kubeconfig.display());
    }
}

#[derive(Debug, Args)]
pub struct Down {
    #[command(flatten)]
    which: Which,
}

impl Down {
    pub async fn run(self, status: &Status) -> anyhow::Result<()> {
        let name = self.which.name()?;
        let docker = Docker::connect().await?;
        lifecycle::down(&docker, &name, status)
            .await
            .with_context(|| format!("failed to stop cluster {}", name.context()))?;
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct Clean {
    #[command(flatten)]
    which: Which,
}

impl Clean {
    pub async fn run(self, status: &Status) -> anyhow::Result<()> {
        let name = self.which.name()?;
        let docker = Docker::connect().await?;
        lifecycle::clean(&docker, &name, self.which.kubeconfig, status)
            .await
            .with_context(|| format!("failed to remove cluster {}", name.context()))?;
        Ok(())
    }
}
