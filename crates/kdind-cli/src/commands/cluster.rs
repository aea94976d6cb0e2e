//! `kdind up`, `reup`, `init`, `join`, `down`, `clean` and `config`.
//!
//! Every cluster verb reads its settings in three layers, each winning over the one before: the
//! YAML file of `--config` (or `$KDIND_CONFIG`), kubeadm-dind-cluster's environment variables,
//! then the flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use kdind::cluster::lifecycle::{self, ClusterOptions};
use kdind::cluster::naming::ClusterName;
use kdind::cluster::settings;
use kdind::config::{self, Config, Layers, Resolved, Scalar, Source};
use kdind::image;
use kdind::provider::Docker;

use crate::status::Status;

/// Which cluster a command is about.
#[derive(Debug, Args)]
pub struct Which {
    /// YAML file of settings; environment variables and flags win over it [env: KDIND_CONFIG].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Cluster ID, 1-254: names get `-cluster-N`, the management network's third octet is N
    /// [env: CLUSTER_ID] [default: 0, the default cluster].
    #[arg(long)]
    cluster_id: Option<u32>,

    /// Label of the cluster: names get `-LABEL` and the context is `dind-LABEL`
    /// [env: DIND_LABEL].
    #[arg(long)]
    label: Option<String>,

    /// Kubeconfig file to write [default: the first file of $KUBECONFIG, else ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

impl Which {
    fn flags(&self) -> Config {
        Config {
            cluster_id: self.cluster_id,
            label: self.label.clone(),
            kubeconfig: self.kubeconfig.clone(),
            ..Config::default()
        }
    }

    fn resolve(&self, flags: Config) -> anyhow::Result<Resolved> {
        let file = self
            .config
            .clone()
            .or_else(|| std::env::var_os("KDIND_CONFIG").map(PathBuf::from))
            .filter(|p| !p.as_os_str().is_empty());
        resolve(file.as_deref(), flags)
    }

    /// The cluster named by the file, the environment and the flags.
    pub fn name(&self) -> anyhow::Result<ClusterName> {
        Ok(self.resolve(self.flags())?.cluster_name()?)
    }

    pub fn kubeconfig(&self) -> anyhow::Result<Option<PathBuf>> {
        Ok(self.resolve(self.flags())?.kubeconfig())
    }
}

/// Merges the config file, the environment and the flags.
fn resolve(file: Option<&Path>, flags: Config) -> anyhow::Result<Resolved> {
    let mut layers = Layers::default();
    if let Some(path) = file {
        layers
            .layers
            .push((Source::File(path.to_owned()), config::read_file(path)?));
    }
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let env = config::from_env(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    layers.layers.push((Source::Env, env));
    layers.layers.push((Source::Flag, flags));
    Ok(layers.resolve())
}

/// The settings of a cluster.
#[derive(Debug, Args)]
pub struct Settings {
    #[command(flatten)]
    which: Which,

    /// Number of worker nodes [env: NUM_NODES] [default: 2; an existing cluster keeps its own].
    #[arg(long)]
    num_nodes: Option<u32>,

    /// Node image [env: DIND_IMAGE] [default: kdind/node:<default Kubernetes version>].
    #[arg(long)]
    image: Option<String>,

    /// Address families: ipv4, ipv6 or dual-stack; only ipv4 forms clusters yet
    /// [env: IP_MODE] [default: ipv4].
    #[arg(long)]
    ip_mode: Option<String>,

    /// Management network of the nodes [env: MGMT_CIDRS] [default: 10.192.0.0/24, with the
    /// cluster ID as third octet].
    #[arg(long)]
    mgmt_cidrs: Option<String>,

    /// Pod network; each node gets a /24 of it [env: POD_NETWORK_CIDR]
    /// [default: 10.244.0.0/16].
    #[arg(long)]
    pod_network_cidr: Option<String>,

    /// Service network [env: SERVICE_CIDR] [default: 10.96.0.0/12].
    #[arg(long)]
    service_cidr: Option<String>,

    /// How pods are connected: bridge [env: CNI_PLUGIN] [default: bridge].
    #[arg(long)]
    cni_plugin: Option<String>,

    /// Host port of the API server on 127.0.0.1 [env: APISERVER_PORT] [default: a free one].
    #[arg(long)]
    apiserver_port: Option<u32>,

    /// Program run with the API server's host port once the cluster answers
    /// [env: DIND_PORT_FORWARDER].
    #[arg(long, value_name = "PROGRAM")]
    port_forwarder: Option<String>,

    /// Kubernetes feature gates of every component: Name=true,Other=false
    /// [env: FEATURE_GATES].
    #[arg(long, value_name = "GATES")]
    feature_gates: Option<String>,

    /// Feature gates of the kubelets alone, winning over --feature-gates there
    /// [env: KUBELET_FEATURE_GATES].
    #[arg(long, value_name = "GATES")]
    kubelet_feature_gates: Option<String>,

    /// Extra API server flag, flag=value; repeatable [env: APISERVER_<flag>=value].
    #[arg(long = "apiserver-arg", value_name = "FLAG=VALUE")]
    apiserver_args: Vec<String>,

    /// Extra controller manager flag, flag=value; repeatable
    /// [env: CONTROLLER_MANAGER_<flag>=value].
    #[arg(long = "controller-manager-arg", value_name = "FLAG=VALUE")]
    controller_manager_args: Vec<String>,

    /// Extra scheduler flag, flag=value; repeatable [env: SCHEDULER_<flag>=value].
    #[arg(long = "scheduler-arg", value_name = "FLAG=VALUE")]
    scheduler_args: Vec<String>,

    /// Seconds to wait for the nodes and CoreDNS [default: 300].
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,

    /// Keep what a failed command made, to look at it.
    #[arg(long)]
    retain: bool,
}

impl Settings {
    fn resolved(&self) -> anyhow::Result<Resolved> {
        let gates = |flag: &str, text: &Option<String>| -> anyhow::Result<_> {
            text.as_deref()
                .map(|t| settings::feature_gates(flag, t))
                .transpose()
                .map_err(Into::into)
        };
        let flags = |flag: &str, pairs: &[String]| -> anyhow::Result<_> {
            if pairs.is_empty() {
                return Ok(None);
            }
            let mut map = BTreeMap::new();
            for pair in pairs {
                let (name, value) = pair.split_once('=').with_context(|| {
                    format!("{flag} {pair:?} has no '='; write {flag} flag-name=value")
                })?;
                map.insert(name.to_owned(), Scalar::Text(value.to_owned()));
            }
            Ok(Some(map))
        };
        let flags = Config {
            num_nodes: self.num_nodes,
            ip_mode: self.ip_mode.clone(),
            mgmt_cidrs: self.mgmt_cidrs.clone(),
            pod_network_cidr: self.pod_network_cidr.clone(),
            service_cidr: self.service_cidr.clone(),
            cni_plugin: self.cni_plugin.clone(),
            apiserver_port: self.apiserver_port,
            port_forwarder: self.port_forwarder.clone(),
            image: self.image.clone(),
            feature_gates: gates("--feature-gates", &self.feature_gates)?,
            kubelet_feature_gates: gates("--kubelet-feature-gates", &self.kubelet_feature_gates)?,
            apiserver_args: flags("--apiserver-arg", &self.apiserver_args)?,
            controller_manager_args: flags(
                "--controller-manager-arg",
                &self.controller_manager_args,
            )?,
            scheduler_args: flags("--scheduler-arg", &self.scheduler_args)?,
            wait_seconds: self.wait,
            ..self.which.flags()
        };
        self.which.resolve(flags)
    }

    fn options(&self) -> anyhow::Result<ClusterOptions> {
        let mut options = self.resolved()?.options()?;
        options.retain = self.retain;
        Ok(options)
    }
}

#[derive(Debug, Args)]
pub struct Up {
    #[command(flatten)]
    settings: Settings,
}

impl Up {
    pub async fn run(self, status: &Status) -> anyhow::Result<()> {
        let options = self.settings.options()?;
        let docker = Docker::connect().await?;
        let running = lifecycle::up_unless(&docker, &options, status, super::interrupted())
            .await
            .with_context(|| format!("failed to bring up cluster {}", options.name.context()))?;
        report(&running);
        Ok(())
    }

    /// Rebuilds the node image when kdind built it, then replaces the cluster's nodes with it.
    pub async fn reup(self, status: &Status) -> anyhow::Result<()> {
        let options = self.settings.options()?;
        let docker = Docker::connect().await?;
        image::rebuild(&docker, &options.image, status)
            .await
            .with_context(|| format!("failed to rebuild node image {}", options.image))?;
        let running = lifecycle::reup(&docker, &options, status)
            .await
            .with_context(|| {
                format!(
                    "failed to replace the nodes of cluster {}",
                    options.name.context()
                )
            })?;
        report(&running);
        Ok(())
    }
}

/// `kdind init` and `kdind join`.
#[derive(Debug, Args)]
pub struct Kubeadm {
    #[command(flatten)]
    settings: Settings,

    /// Arguments added to kubeadm's command line, after `--`. kubeadm accepts few flags
    /// beside a configuration file: --ignore-preflight-errors, --skip-phases, --v and the like.
    #[arg(last = true, value_name = "KUBEADM_ARGS")]
    kubeadm_args: Vec<String>,
}

impl Kubeadm {
    /// Forms a new cluster, adding the arguments to `kubeadm init`.
    pub async fn init(self, status: &Status) -> anyhow::Result<()> {
        let mut options = self.settings.options()?;
        options.kubeadm_init_args = self.kubeadm_args;
        let docker = Docker::connect().await?;
        let running = lifecycle::init_unless(&docker, &options, status, super::interrupted())
            .await
            .with_context(|| format!("failed to form cluster {}", options.name.context()))?;
        report(&running);
        Ok(())
    }

    /// Adds a worker node to a running cluster, adding the arguments to `kubeadm join`.
    pub async fn join(self, status: &Status) -> anyhow::Result<()> {
        let mut options = self.settings.options()?;
        options.kubeadm_join_args = self.kubeadm_args;
        let docker = Docker::connect().await?;
        let running = lifecycle::join_unless(&docker, &options, status, super::interrupted())
            .await
            .with_context(|| {
                format!("failed to add a node to cluster {}", options.name.context())
            })?;
        report(&running);
        Ok(())
    }
}

/// `kdind config`: the effective settings.
#[derive(Debug, Args)]
pub struct ShowConfig {
    #[command(flatten)]
    settings: Settings,
}

impl ShowConfig {
    pub fn run(self) -> anyhow::Result<()> {
        let resolved = self.settings.resolved()?;
        print!("{}", resolved.to_yaml());
        resolved.options()?;
        Ok(())
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
        let kubeconfig = self.which.kubeconfig()?;
        let docker = Docker::connect().await?;
        lifecycle::clean(&docker, &name, kubeconfig, status)
            .await
            .with_context(|| format!("failed to remove cluster {}", name.context()))?;
        Ok(())
    }
}
