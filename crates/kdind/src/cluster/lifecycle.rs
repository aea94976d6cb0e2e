//! The verbs of a cluster's life: `up` (create or restore), `down`, `clean`.
//!
//! [`up`] reads as the list of actions that form a cluster; each action is a function below it.
//! Every engine call goes through the provider, every command in a node through a node handle.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::try_join_all;
use k8s_openapi::jiff::Timestamp;

use super::kubeadm_config::{self, InitOptions, JoinOptions};
use super::naming::{ClusterName, LABEL_CLUSTER};
use super::{cni, kubeconfig, wait};
use crate::image::{self, KubeVersion};
use crate::net::{AddressPlan, PlanInput};
use crate::node::{self, LABEL_ROLE, Node, NodeError, NodeSpec, ROLE_CONTROL_PLANE, ROLE_WORKER};
use crate::progress::{Progress, step};
use crate::provider::{
    Attachment, LABEL_MANAGED, Mount, NetworkSpec, Provider, ProviderError, PublishedPort,
};

/// Port the API server listens on inside the control-plane node.
pub const APISERVER_PORT: u16 = 6443;

/// Preflight checks that cannot pass in a container node and do not matter there.
const IGNORED_PREFLIGHT: &[&str] = &[
    // The kernel configuration check knows nothing of containers, and cgroup v1 is refused.
    "SystemVerification",
    "Swap",
    "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
];

/// Errors from a cluster's lifecycle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Config(#[from] kubeadm_config::ConfigError),
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
    #[error(transparent)]
    Wait(#[from] wait::WaitError),
    #[error(
        "node image {0:?} does not exist; build it with `kdind build node-image` or name another \
         with DIND_IMAGE"
    )]
    MissingImage(String),
    #[error(
        "image {0:?} is not in the Docker engine; build or tag it there first (kdind pulls \
         nothing)"
    )]
    MissingHostImage(String),
    #[error("image archive {} does not exist or is not a file", .0.display())]
    MissingArchive(PathBuf),
    #[error("image {0:?} is not a kdind node image (it has no Kubernetes version label)")]
    NotANodeImage(String),
    #[error(
        "the {what} {subnet} overlaps Docker network {network:?} ({other}); choose another with \
         {variable}, or remove that network"
    )]
    SubnetTaken {
        what: &'static str,
        subnet: String,
        network: String,
        other: String,
        variable: &'static str,
    },
    #[error(
        "cluster {context} has nodes {found}, not the {expected} asked for; give the NUM_NODES it \
         was made with, or run `kdind clean` for it first"
    )]
    Partial {
        context: String,
        expected: String,
        found: String,
    },
    #[error(
        "IP_MODE {mode} needs IPv6, which this host's kernel {problem}; turn it on, or use \
         IP_MODE=ipv4"
    )]
    NoIpv6 {
        mode: crate::net::IpMode,
        problem: &'static str,
    },
    #[error(
        "APISERVER_PORT {0} is in use on 127.0.0.1; choose a free port, or leave APISERVER_PORT \
         unset for kdind to take one"
    )]
    PortInUse(u16),
    #[error(
        "another kdind command is working on cluster {0} (up, down, clean, reup, init or join); \
         wait for it to finish"
    )]
    Busy(String),
    #[error("cannot lock cluster {context} ({path}): {source}")]
    Lock {
        context: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cluster {0} exists already; `kdind up` starts it again, `kdind join` adds a node, \
         `kdind clean` removes it"
    )]
    Exists(String),
    #[error(
        "the host allows {limit} inotify instances per user (fs.inotify.max_user_instances) and \
         kdind's nodes would need about {needed} with the new ones; their kubelets would hang. \
         Raise it, as root: sysctl -w fs.inotify.max_user_instances=1024 (scripts/start-docker \
         does), or remove clusters you no longer use"
    )]
    InotifyLimit { limit: u64, needed: u64 },
    #[error(
        "kubeconfig {} cannot take the cluster's context; mend the file, or name another with \
         KUBECONFIG or --kubeconfig",
        path.display()
    )]
    KubeconfigUnusable {
        path: PathBuf,
        #[source]
        source: kubeconfig::KubeconfigError,
    },
    #[error(
        "cluster {0} is not running (stopped or paused); `kdind up` starts it, `kdind unpause` \
         thaws it"
    )]
    NotRunning(String),
    #[error(
        "port forwarder {} failed with {status}{}",
        program.display(),
        if output.is_empty() { String::new() } else { format!(": {output}") }
    )]
    Forwarder {
        program: PathBuf,
        status: String,
        output: String,
    },
    #[error("interrupted{}", if *.0 { "; what was made so far has been removed" } else { "" })]
    Interrupted(bool),
    #[error("no cluster {0} exists; make one with `kdind up`")]
    NoCluster(String),
    #[error("{failure}\n(cleaning up after it failed too: {cleanup})")]
    CleanupFailed {
        failure: Box<ClusterError>,
        cleanup: Box<ClusterError>,
    },
}

type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// Everything `up` needs to know.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub name: ClusterName,
    pub image: String,
    pub plan: PlanInput,
    /// Host port for the API server on 127.0.0.1; `None` takes a free one.
    pub apiserver_port: Option<u16>,
    /// Keep what a failed `up` made, to look at it.
    pub retain: bool,
    /// Kubeconfig file to write the context into; `None` is `$KUBECONFIG` or ~/.kube/config.
    pub kubeconfig: Option<PathBuf>,
    /// How long to wait for nodes and CoreDNS.
    pub wait: Duration,
    /// Kubernetes feature gates, for every component.
    pub feature_gates: BTreeMap<String, bool>,
    /// Extra flags of the API server, controller manager and scheduler, without their `--`.
    pub apiserver_args: BTreeMap<String, String>,
    pub controller_manager_args: BTreeMap<String, String>,
    pub scheduler_args: BTreeMap<String, String>,
    /// Feature gates of the kubelets only, on top of `feature_gates`.
    pub kubelet_feature_gates: BTreeMap<String, bool>,
    /// Whether `plan.workers` was asked for. When it was not, an existing cluster keeps the
    /// workers it has; when it was, it must match them.
    pub workers_given: bool,
    /// Program run with the API server's host port once the cluster answers.
    pub port_forwarder: Option<PathBuf>,
    /// Extra arguments of `kubeadm init` and `kubeadm join`.
    pub kubeadm_init_args: Vec<String>,
    pub kubeadm_join_args: Vec<String>,
}

impl ClusterOptions {
    pub fn new(name: ClusterName, image: String) -> Self {
        Self {
            name,
            image,
            plan: PlanInput {
                workers: 2,
                ..Default::default()
            },
            apiserver_port: None,
            retain: false,
            kubeconfig: None,
            wait: Duration::from_secs(300),
            feature_gates: BTreeMap::new(),
            apiserver_args: BTreeMap::new(),
            controller_manager_args: BTreeMap::new(),
            scheduler_args: BTreeMap::new(),
            kubelet_feature_gates: BTreeMap::new(),
            workers_given: false,
            port_forwarder: None,
            kubeadm_init_args: Vec::new(),
            kubeadm_join_args: Vec::new(),
        }
    }

    fn kubeconfig_path(&self) -> Result<PathBuf> {
        match &self.kubeconfig {
            Some(path) => Ok(path.clone()),
            None => Ok(kubeconfig::default_path()?),
        }
    }
}

/// What `up` left running.
#[derive(Debug, Clone)]
pub struct Running {
    pub context: String,
    pub kubeconfig: PathBuf,
    pub apiserver_port: u16,
    pub nodes: Vec<wait::NodeState>,
    /// True when the cluster was restored from a stopped state rather than formed anew.
    pub restored: bool,
}

/// Brings a cluster up: forms it when none exists, restores it when it was stopped, and only
/// reports when it runs already.
///
/// # Errors
///
/// Invalid options are refused before anything is made. A failure after that removes what was
/// made, unless `retain` is set.
pub async fn up<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    progress: &dyn Progress,
) -> Result<Running> {
    up_locked_unless(provider, options, false, progress, std::future::pending()).await
}

/// Forms a new cluster like [`up`], with `options.kubeadm_init_args` and
/// `options.kubeadm_join_args` added to kubeadm's command lines.
///
/// # Errors
///
/// As [`up`]; a cluster that exists already is refused.
pub async fn init<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    progress: &dyn Progress,
) -> Result<Running> {
    up_locked_unless(provider, options, true, progress, std::future::pending()).await
}

async fn up_locked<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    must_be_new: bool,
    kubeconfig_before: &kubeconfig::Before,
    progress: &dyn Progress,
) -> Result<Running> {
    let options = &settled(provider, options).await?;
    let plan = AddressPlan::new(&options.plan)?;
    if plan.mode != crate::net::IpMode::Ipv4 {
        check_host_ipv6(plan.mode)?;
    }
    let existing = provider.list(&cluster_labels(&options.name)).await?;
    if !existing.is_empty() {
        if must_be_new {
            return Err(ClusterError::Exists(options.name.context()));
        }
        let stopped = |role: &str| {
            existing
                .iter()
                .filter(|c| !c.running && c.labels.get(LABEL_ROLE).is_some_and(|r| r == role))
                .count() as u32
        };
        check_inotify_room(provider, stopped(ROLE_CONTROL_PLANE), stopped(ROLE_WORKER)).await?;
        let running = restore(provider, options, &plan, progress).await?;
        forward_port(options, running.apiserver_port, progress).await?;
        return Ok(running);
    }

    let version = node_image_version(provider, &options.image).await?;
    check_subnets_free(provider, &plan).await?;
    if let Some(port) = options.apiserver_port {
        check_port_free(port)?;
    }
    check_inotify_room(provider, 1, plan.workers).await?;

    let result = async {
        let running = create(provider, options, &plan, &version, progress).await?;
        forward_port(options, running.apiserver_port, progress).await?;
        Ok(running)
    }
    .await;
    match result {
        Ok(running) => Ok(running),
        Err(failure) if options.retain => Err(failure),
        Err(failure) => match remove_everything(provider, options, Some(kubeconfig_before)).await {
            Ok(()) => Err(failure),
            Err(cleanup) => Err(ClusterError::CleanupFailed {
                failure: Box::new(failure),
                cleanup: Box::new(cleanup),
            }),
        },
    }
}

/// [`up`], abandoned when `interrupt` completes first (a Ctrl-C, say). A cluster that did not
/// exist before is then removed, unless `retain` is set; one that existed is left as it is.
///
/// # Errors
///
/// As [`up`], and [`ClusterError::Interrupted`].
pub async fn up_unless<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    progress: &dyn Progress,
    interrupt: impl std::future::Future<Output = ()>,
) -> Result<Running> {
    up_locked_unless(provider, options, false, progress, interrupt).await
}

/// [`init`], abandoned like [`up_unless`] when `interrupt` completes first.
///
/// # Errors
///
/// As [`init`], and [`ClusterError::Interrupted`].
pub async fn init_unless<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    progress: &dyn Progress,
    interrupt: impl std::future::Future<Output = ()>,
) -> Result<Running> {
    up_locked_unless(provider, options, true, progress, interrupt).await
}

async fn up_locked_unless<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    must_be_new: bool,
    progress: &dyn Progress,
    interrupt: impl std::future::Future<Output = ()>,
) -> Result<Running> {
    let _lock = lock(&options.name)?;
    let path = options.kubeconfig_path()?;
    let before = kubeconfig::check(&path)
        .map_err(|source| ClusterError::KubeconfigUnusable { path, source })?;
    let existed = !provider
        .list(&cluster_labels(&options.name))
        .await?
        .is_empty();
    tokio::select! {
        result = up_locked(provider, options, must_be_new, &before, progress) => result,
        () = interrupt => {
            let remove = !existed && !options.retain;
            if remove {
                remove_everything(provider, options, Some(&before)).await?;
            }
            Err(ClusterError::Interrupted(remove))
        }
    }
}

async fn create<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    plan: &AddressPlan,
    version: &KubeVersion,
    progress: &dyn Progress,
) -> Result<Running> {
    let name = &options.name;
    let network = name.network();
    let node_names: Vec<String> = (0..plan.node_count()).map(|i| name.node(i)).collect();
    let token = kubeadm_config::token();

    // The network the nodes share.
    let subnet = plan.primary().management;
    step(
        progress,
        &format!("Creating network {network} ({subnet})"),
        async {
            let subnets = plan
                .families
                .iter()
                .map(|f| (f.management.to_string(), f.gateway.to_string()))
                .collect();
            let spec = NetworkSpec {
                name: network.clone(),
                subnets,
                labels: cluster_labels(name),
            };
            provider.create_network(&spec).await
        },
    )
    .await?;

    // The node containers, all at once.
    let nodes = step(
        progress,
        &format!("Starting nodes {}", node_names.join(", ")),
        async {
            let specs: Vec<NodeSpec> = (0..plan.node_count())
                .map(|i| node_spec(options, plan, i))
                .collect();
            try_join_all(specs.iter().map(|spec| start_node(provider, spec))).await
        },
    )
    .await?;
    let (control_plane, workers) = nodes.split_first().expect("a plan has a control plane");

    // Pod network plumbing: bridge configuration, routes between nodes, masquerading.
    step(
        progress,
        "Connecting the pod network",
        connect_pod_network(&nodes, plan),
    )
    .await?;

    // The control plane.
    step(
        progress,
        &format!("Running kubeadm init on {}", control_plane.name()),
        async {
            let mut init = InitOptions::new(
                version.clone(),
                plan,
                "kubernetes",
                control_plane.name(),
                &token,
            );
            init.ignore_preflight_errors =
                IGNORED_PREFLIGHT.iter().map(|s| (*s).to_owned()).collect();
            init.resolv_conf = RESOLV_CONF.to_owned();
            init.feature_gates = options.feature_gates.clone();
            init.kubelet_feature_gates = options.kubelet_feature_gates.clone();
            init.apiserver_args = options.apiserver_args.clone();
            init.controller_manager_args = options.controller_manager_args.clone();
            init.scheduler_args = options.scheduler_args.clone();
            let config = kubeadm_config::init_config(&init)?;
            tracing::debug!(target: "kdind::config", "kubeadm init configuration:\n{config}");
            control_plane
                .write_file(KUBEADM_CONFIG, config.as_bytes(), 0o600)
                .await?;
            let mut command: Vec<&str> = vec![
                "kubeadm",
                "init",
                "--config",
                KUBEADM_CONFIG,
                "--skip-token-print",
                "--v=1",
            ];
            command.extend(options.kubeadm_init_args.iter().map(String::as_str));
            control_plane.exec(&command).await?;
            // At once, while CoreDNS's first pods are barely scheduled: the change rolls them
            // out anew.
            let admin = admin_kubeconfig(provider, &options.name).await?;
            wait::quicken_coredns_readiness(&wait::client(&admin).await?).await?;
            Ok::<_, ClusterError>(())
        },
    )
    .await?;

    // The workers, all at once.
    if !workers.is_empty() {
        step(
            progress,
            &format!("Joining {} worker nodes", workers.len()),
            async {
                try_join_all(workers.iter().enumerate().map(|(i, worker)| {
                    let mut join = JoinOptions::new(
                        version.clone(),
                        plan,
                        i as u32 + 1,
                        worker.name(),
                        &token,
                    );
                    join.ignore_preflight_errors =
                        IGNORED_PREFLIGHT.iter().map(|s| (*s).to_owned()).collect();
                    async move { run_kubeadm_join(worker, &join, options).await }
                }))
                .await
            },
        )
        .await?;
    }

    // The user's kubeconfig, then the wait until the cluster works.
    let (kubeconfig_path, port, admin) = step(
        progress,
        &format!("Writing kubeconfig context {}", name.context()),
        async { export_kubeconfig(provider, options).await },
    )
    .await?;
    let nodes = wait_until_ready(&admin, plan, None, options.wait, progress).await?;

    Ok(Running {
        context: name.context(),
        kubeconfig: kubeconfig_path,
        apiserver_port: port,
        nodes,
        restored: false,
    })
}

/// Writes a worker's join configuration and runs `kubeadm join` with the caller's extra
/// arguments.
async fn run_kubeadm_join<P: Provider>(
    worker: &Node<'_, P>,
    join: &JoinOptions,
    options: &ClusterOptions,
) -> Result<()> {
    let config = kubeadm_config::join_config(join)?;
    worker
        .write_file(KUBEADM_CONFIG, config.as_bytes(), 0o600)
        .await?;
    let mut command: Vec<&str> = vec!["kubeadm", "join", "--config", KUBEADM_CONFIG, "--v=1"];
    command.extend(options.kubeadm_join_args.iter().map(String::as_str));
    worker.exec(&command).await?;
    Ok(())
}

/// Where kdind keeps a node's kubeadm configuration.
const KUBEADM_CONFIG: &str = "/etc/kdind/kubeadm.yaml";
/// The resolver configuration pods get from the kubelet (see [`configure_pod_network`]).
const RESOLV_CONF: &str = "/etc/kdind/resolv.conf";

/// Starts the stopped nodes of a cluster again and waits until it works.
async fn restore<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    plan: &AddressPlan,
    progress: &dyn Progress,
) -> Result<Running> {
    let name = &options.name;
    let containers = provider.list(&cluster_labels(name)).await?;
    require_planned_nodes(name, plan, &containers)?;

    // A paused cluster is thawed first; `up` means "make it answer".
    if containers.iter().any(|c| c.paused) {
        set_paused(provider, name, false, progress).await?;
    }

    let since = Timestamp::now();
    let stopped: Vec<&str> = containers
        .iter()
        .filter(|c| !c.running)
        .map(|c| c.name.as_str())
        .collect();
    if !stopped.is_empty() {
        step(
            progress,
            &format!("Starting nodes {}", stopped.join(", ")),
            async {
                try_join_all(stopped.iter().map(|n| provider.start(n))).await?;
                let nodes: Vec<Node<'_, P>> =
                    stopped.iter().map(|n| Node::attach(provider, n)).collect();
                try_join_all(nodes.iter().map(wait_for_systemd)).await?;
                Ok::<_, ClusterError>(())
            },
        )
        .await?;
    }

    let (kubeconfig_path, port, admin) = step(
        progress,
        &format!("Writing kubeconfig context {}", name.context()),
        async { export_kubeconfig(provider, options).await },
    )
    .await?;
    // Nodes that ran all along need no fresh report.
    let since = (!stopped.is_empty()).then_some(since);
    let nodes = wait_until_ready(&admin, plan, since, options.wait, progress).await?;
    Ok(Running {
        context: name.context(),
        kubeconfig: kubeconfig_path,
        apiserver_port: port,
        nodes,
        restored: true,
    })
}

/// Replaces the node containers of a cluster with new ones made from `options.image`, keeping
/// the cluster's state: certificates and static pod manifests (`/etc/kubernetes`), etcd's data
/// and the kubelets' state (`/var`) stay in their volumes; only containerd's images are made anew
/// from the new image. The cluster is not formed again: no kubeadm runs.
///
/// # Errors
///
/// Fails when the cluster does not exist in full or the image is not a node image; a failure
/// while replacing leaves the volumes, so `reup` can be run again.
pub async fn reup<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    progress: &dyn Progress,
) -> Result<Running> {
    let _lock = lock(&options.name)?;
    let options = &settled(provider, options).await?;
    let name = &options.name;
    let plan = AddressPlan::new(&options.plan)?;
    let containers = provider.list(&cluster_labels(name)).await?;
    if containers.is_empty() {
        return Err(ClusterError::NoCluster(name.context()));
    }
    require_planned_nodes(name, &plan, &containers)?;
    node_image_version(provider, &options.image).await?;

    let since = Timestamp::now();
    let specs: Vec<NodeSpec> = (0..plan.node_count())
        .map(|i| node_spec(options, &plan, i))
        .collect();
    let nodes = step(
        progress,
        &format!("Replacing nodes with {}", options.image),
        async {
            let replaced = specs.iter().map(|spec| async move {
                provider.remove(&spec.name).await?;
                provider.remove_volume(&spec.containerd_volume).await?;
                start_node(provider, spec).await
            });
            try_join_all(replaced).await
        },
    )
    .await?;
    step(
        progress,
        "Connecting the pod network",
        connect_pod_network(&nodes, &plan),
    )
    .await?;

    let (kubeconfig_path, port, admin) = step(
        progress,
        &format!("Writing kubeconfig context {}", name.context()),
        async { export_kubeconfig(provider, options).await },
    )
    .await?;
    let states = wait_until_ready(&admin, &plan, Some(since), options.wait, progress).await?;
    forward_port(options, port, progress).await?;
    Ok(Running {
        context: name.context(),
        kubeconfig: kubeconfig_path,
        apiserver_port: port,
        nodes: states,
        restored: true,
    })
}

/// Adds a worker node to a running cluster: the next `kube-node-N`, at the next address of the
/// management network, joined with `kubeadm join` and `options.kubeadm_join_args`. Every node's
/// routes are extended to the new node's pod subnet.
///
/// # Errors
///
/// Fails when the cluster does not exist or is not running, or when its networks have no room
/// for another node; a failure after the node was started removes it again (unless `retain`),
/// leaving the cluster as it was.
pub async fn join<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    progress: &dyn Progress,
) -> Result<Running> {
    join_unless(provider, options, progress, std::future::pending()).await
}

/// [`join`], abandoned when `interrupt` completes first: the new node is then removed, unless
/// `retain` is set.
///
/// # Errors
///
/// As [`join`], and [`ClusterError::Interrupted`].
pub async fn join_unless<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    progress: &dyn Progress,
    interrupt: impl std::future::Future<Output = ()>,
) -> Result<Running> {
    let _lock = lock(&options.name)?;
    let mut options = settled(
        provider,
        &ClusterOptions {
            workers_given: false,
            ..options.clone()
        },
    )
    .await?;
    let name = options.name.clone();
    let containers = provider.list(&cluster_labels(&name)).await?;
    if containers.is_empty() {
        return Err(ClusterError::NoCluster(name.context()));
    }
    let current = AddressPlan::new(&options.plan)?;
    require_planned_nodes(&name, &current, &containers)?;
    if containers.iter().any(|c| !c.running || c.paused) {
        return Err(ClusterError::NotRunning(name.context()));
    }
    options.plan.workers += 1;
    let plan = AddressPlan::new(&options.plan)?;
    let version = node_image_version(provider, &options.image).await?;
    check_inotify_room(provider, 0, 1).await?;

    let index = plan.workers;
    let spec = node_spec(&options, &plan, index);
    let result = async {
        let node = step(
            progress,
            &format!("Starting node {}", spec.name),
            start_node(provider, &spec),
        )
        .await?;
        let nodes: Vec<Node<'_, P>> = (0..plan.node_count())
            .map(|i| Node::attach(provider, &name.node(i)))
            .collect();
        step(
            progress,
            "Extending the pod network",
            connect_pod_network(&nodes, &plan),
        )
        .await?;
        step(
            progress,
            &format!("Running kubeadm join on {}", spec.name),
            async {
                let control_plane = Node::attach(provider, &name.control_plane());
                let token = kubeadm_config::token();
                control_plane
                    .exec(&["kubeadm", "token", "create", &token, "--ttl", "15m"])
                    .await?;
                let mut join = JoinOptions::new(version.clone(), &plan, index, node.name(), &token);
                join.ignore_preflight_errors =
                    IGNORED_PREFLIGHT.iter().map(|s| (*s).to_owned()).collect();
                run_kubeadm_join(&node, &join, &options).await
            },
        )
        .await?;
        let (kubeconfig_path, port, admin) = step(
            progress,
            &format!("Writing kubeconfig context {}", name.context()),
            async { export_kubeconfig(provider, &options).await },
        )
        .await?;
        let nodes = wait_until_ready(&admin, &plan, None, options.wait, progress).await?;
        Ok(Running {
            context: name.context(),
            kubeconfig: kubeconfig_path,
            apiserver_port: port,
            nodes,
            restored: false,
        })
    };
    let result = tokio::select! {
        result = result => result,
        () = interrupt => Err(ClusterError::Interrupted(!options.retain)),
    };
    match result {
        Ok(running) => Ok(running),
        Err(failure) if options.retain => Err(failure),
        Err(failure) => match remove_joined_node(provider, &name, &spec).await {
            Ok(()) => Err(failure),
            Err(cleanup) => Err(ClusterError::CleanupFailed {
                failure: Box::new(failure),
                cleanup: Box::new(cleanup),
            }),
        },
    }
}

/// Takes a node that failed to join out of the cluster again: its Node object, when kubeadm got
/// that far, then its container and volumes.
async fn remove_joined_node<P: Provider>(
    provider: &P,
    name: &ClusterName,
    spec: &NodeSpec,
) -> Result<()> {
    let control_plane = Node::attach(provider, &name.control_plane());
    let delete = [
        "kubectl",
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
        "delete",
        "node",
        &spec.name,
        "--ignore-not-found",
        "--wait=false",
    ];
    if let Err(err) = control_plane.exec(&delete).await {
        tracing::warn!(
            "could not delete node {} from the cluster: {err}",
            spec.name
        );
    }
    remove_node(provider, spec).await
}

/// Removes one node container and its volumes.
async fn remove_node<P: Provider>(provider: &P, spec: &NodeSpec) -> Result<()> {
    provider.remove(&spec.name).await?;
    for volume in [
        &spec.var_volume,
        &spec.containerd_volume,
        &ClusterName::etc_volume(&spec.name),
    ] {
        provider.remove_volume(volume).await?;
    }
    Ok(())
}

/// The clusters kdind finds on the engine, by context name, with their node containers.
pub async fn clusters<P: Provider>(provider: &P) -> Result<BTreeMap<String, Vec<String>>> {
    let managed = BTreeMap::from([(LABEL_MANAGED.to_owned(), "true".to_owned())]);
    let mut clusters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for container in provider.list(&managed).await? {
        if let Some(context) = container.labels.get(LABEL_CLUSTER) {
            clusters
                .entry(context.clone())
                .or_default()
                .push(container.name);
        }
    }
    Ok(clusters)
}

/// The node containers of a cluster, control plane first.
pub async fn nodes<P: Provider>(
    provider: &P,
    name: &ClusterName,
) -> Result<Vec<crate::provider::ContainerInfo>> {
    let mut containers = provider.list(&cluster_labels(name)).await?;
    if containers.is_empty() {
        return Err(ClusterError::NoCluster(name.context()));
    }
    let control_plane = name.control_plane();
    containers.sort_by_key(|c| (c.name != control_plane, c.name.clone()));
    Ok(containers)
}

/// The host port the cluster's API server is published on.
pub async fn apiserver_port<P: Provider>(provider: &P, name: &ClusterName) -> Result<u16> {
    let info = match provider.inspect(&name.control_plane()).await {
        Err(ProviderError::NotFound { .. }) => return Err(ClusterError::NoCluster(name.context())),
        other => other?,
    };
    info.ports.get(&APISERVER_PORT).copied().ok_or_else(|| {
        ProviderError::Failed {
            action: format!("find the API server port of {}", name.control_plane()),
            message: "the node is not running, or publishes no port; `kdind up` starts it".into(),
        }
        .into()
    })
}

/// An admin kubeconfig for the cluster, its server at the published port on 127.0.0.1.
pub async fn admin_kubeconfig<P: Provider>(provider: &P, name: &ClusterName) -> Result<String> {
    let (admin, port) = admin_and_port(provider, name).await?;
    Ok(admin_with_server(&admin, &kubeconfig::local_server(port)))
}

/// The control plane's admin kubeconfig as it is in the node, and the API server's port on the
/// host.
async fn admin_and_port<P: Provider>(provider: &P, name: &ClusterName) -> Result<(String, u16)> {
    let port = apiserver_port(provider, name).await?;
    let control_plane = Node::attach(provider, &name.control_plane());
    let admin = control_plane
        .exec(&["cat", "/etc/kubernetes/admin.conf"])
        .await?;
    Ok((admin, port))
}

/// Writes the cluster's context into the kubeconfig at `path` (`None`: the first file of
/// `$KUBECONFIG`, else ~/.kube/config) and makes it the current one, as `up` does; for a file
/// that lost it, or another file. Returns the file written.
pub async fn write_kubeconfig<P: Provider>(
    provider: &P,
    name: &ClusterName,
    path: Option<PathBuf>,
) -> Result<PathBuf> {
    let (admin, port) = admin_and_port(provider, name).await?;
    let path = match path {
        Some(path) => path,
        None => kubeconfig::default_path()?,
    };
    kubeconfig::merge(
        &path,
        &admin,
        &name.context(),
        &kubeconfig::local_server(port),
    )?;
    Ok(path)
}

/// Freezes (`freeze`) or thaws every node of a cluster. Paused nodes keep their memory and
/// state but use no CPU; the cluster answers again after the thaw.
pub async fn set_paused<P: Provider>(
    provider: &P,
    name: &ClusterName,
    freeze: bool,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    let containers = nodes(provider, name).await?;
    let wanted: Vec<&str> = containers
        .iter()
        .filter(|c| c.running && c.paused != freeze)
        .map(|c| c.name.as_str())
        .collect();
    let verb = if freeze { "Pausing" } else { "Unpausing" };
    step(
        progress,
        &format!("{verb} nodes {}", wanted.join(", ")),
        async {
            let changes = wanted.iter().map(|n| async move {
                if freeze {
                    provider.pause(n).await
                } else {
                    provider.unpause(n).await
                }
            });
            try_join_all(changes).await
        },
    )
    .await?;
    Ok(wanted.iter().map(|n| (*n).to_owned()).collect())
}

/// Stops every node of a cluster, keeping all its state for the next `up`.
pub async fn down<P: Provider>(
    provider: &P,
    name: &ClusterName,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    let _lock = lock(name)?;
    let containers = provider.list(&cluster_labels(name)).await?;
    if containers.is_empty() {
        return Err(ClusterError::NoCluster(name.context()));
    }
    let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    step(
        progress,
        &format!("Stopping nodes {}", names.join(", ")),
        async { try_join_all(containers.iter().map(|c| provider.stop(&c.name, 60))).await },
    )
    .await?;
    Ok(names)
}

/// Removes every trace of a cluster: nodes, their volumes, the network and the kubeconfig
/// entries. Nothing to remove is not an error.
pub async fn clean<P: Provider>(
    provider: &P,
    name: &ClusterName,
    kubeconfig_file: Option<PathBuf>,
    progress: &dyn Progress,
) -> Result<()> {
    let _lock = lock(name)?;
    let mut options = ClusterOptions::new(name.clone(), String::new());
    options.kubeconfig = kubeconfig_file;
    step(
        progress,
        &format!("Removing cluster {}", name.context()),
        async { remove_everything(provider, &options, None).await },
    )
    .await
}

/// Removes a cluster's containers, volumes, network and kubeconfig entries. After a failed `up`,
/// `kubeconfig_before` puts the kubeconfig back as that `up` found it.
async fn remove_everything<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
    kubeconfig_before: Option<&kubeconfig::Before>,
) -> Result<()> {
    let labels = cluster_labels(&options.name);
    let containers = provider.list(&labels).await?;
    try_join_all(containers.iter().map(|c| provider.remove(&c.name))).await?;
    for volume in provider.volumes(&labels).await? {
        provider.remove_volume(&volume).await?;
    }
    provider.remove_network(&options.name.network()).await?;
    let path = options.kubeconfig_path()?;
    match kubeconfig_before {
        Some(before) => kubeconfig::undo(&path, &options.name.context(), before)?,
        None => {
            kubeconfig::remove_context(&path, &options.name.context())?;
        }
    }
    Ok(())
}

/// Labels that mark the resources of one cluster.
pub fn cluster_labels(name: &ClusterName) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_CLUSTER.to_owned(), name.context()),
    ])
}

/// Refuses a cluster whose node containers are not exactly the ones the plan names: some
/// missing, or more of them than the options ask for (another `NUM_NODES`).
fn require_planned_nodes(
    name: &ClusterName,
    plan: &AddressPlan,
    containers: &[crate::provider::ContainerInfo],
) -> Result<()> {
    let expected: Vec<String> = (0..plan.node_count()).map(|i| name.node(i)).collect();
    let found: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    if found.len() != expected.len() || expected.iter().any(|n| !found.contains(n)) {
        return Err(ClusterError::Partial {
            context: name.context(),
            expected: expected.join(", "),
            found: found.join(", "),
        });
    }
    Ok(())
}

/// Label holding the cluster ID a cluster was made with (its management network follows it).
pub const LABEL_CLUSTER_ID: &str = "io.kdind.cluster-id";

/// The options settled against what exists. The cluster ID: the one an existing cluster was
/// made with, else for a cluster with a label and no ID the lowest free one, so that labelled
/// clusters get management networks of their own; otherwise as given. The workers: an existing
/// cluster keeps the ones it has (`kdind join` may have added some) unless a number was asked
/// for.
///
/// Drawing an ID is not locked across clusters: two labelled clusters made at the same moment
/// may draw the same ID, and the second then fails when the engine refuses its overlapping
/// network (and removes what it made). Made one after the other, they never collide.
async fn settled<P: Provider>(provider: &P, options: &ClusterOptions) -> Result<ClusterOptions> {
    let mut settled = options.clone();
    let existing = provider.list(&cluster_labels(&options.name)).await?;
    if !existing.is_empty() && !options.workers_given {
        settled.plan.workers = existing
            .iter()
            .filter(|c| c.labels.get(LABEL_ROLE).is_some_and(|r| r == ROLE_WORKER))
            .count() as u32;
    }
    let recorded = existing.iter().find_map(|c| c.labels.get(LABEL_CLUSTER_ID));
    if let Some(id) = recorded.and_then(|id| id.parse().ok()) {
        settled.plan.cluster_id = id;
        return Ok(settled);
    }
    if options.name.label.is_none() || options.plan.cluster_id != 0 || !existing.is_empty() {
        return Ok(settled);
    }

    let taken: Vec<crate::net::Cidr> = provider
        .networks()
        .await?
        .iter()
        .flat_map(|n| {
            n.subnets
                .iter()
                .filter_map(|s| crate::net::Cidr::parse(s).ok())
        })
        .collect();
    for id in 1..=crate::net::MAX_CLUSTER_ID {
        settled.plan.cluster_id = id;
        let plan = AddressPlan::new(&settled.plan)?;
        let free = plan
            .families
            .iter()
            .all(|f| !taken.iter().any(|t| t.overlaps(&f.management)));
        if free {
            return Ok(settled);
        }
    }
    Ok(settled)
}

fn node_spec(options: &ClusterOptions, plan: &AddressPlan, index: u32) -> NodeSpec {
    let container = options.name.node(index);
    let mut labels = cluster_labels(&options.name);
    labels.insert(LABEL_CLUSTER_ID.to_owned(), plan.cluster_id.to_string());
    let role = if index == 0 {
        ROLE_CONTROL_PLANE
    } else {
        ROLE_WORKER
    };
    labels.insert(LABEL_ROLE.to_owned(), role.to_owned());

    let ips = plan.node_ips(index);
    let attachment = Attachment {
        network: options.name.network(),
        ipv4: ips.iter().find(|ip| ip.is_ipv4()).map(|ip| ip.to_string()),
        ipv6: ips.iter().find(|ip| ip.is_ipv6()).map(|ip| ip.to_string()),
        aliases: Vec::new(),
    };
    let ports = if index == 0 {
        vec![PublishedPort {
            host_ip: "127.0.0.1".into(),
            host_port: options.apiserver_port.unwrap_or(0),
            container_port: APISERVER_PORT,
        }]
    } else {
        Vec::new()
    };
    NodeSpec {
        name: container.clone(),
        hostname: container.clone(),
        image: options.image.clone(),
        labels,
        var_volume: ClusterName::var_volume(&container),
        containerd_volume: ClusterName::containerd_volume(&container),
        extra_mounts: vec![Mount::Volume {
            name: ClusterName::etc_volume(&container),
            target: "/etc/kubernetes".into(),
        }],
        attachment: Some(attachment),
        ports,
        cmd: Vec::new(),
    }
}

async fn wait_for_systemd<P: Provider>(node: &Node<'_, P>) -> Result<()> {
    Ok(node.wait_for_systemd(Duration::from_secs(120)).await?)
}

/// Creates and starts a node container, and waits for its systemd to finish booting.
async fn start_node<'p, P: Provider>(provider: &'p P, spec: &NodeSpec) -> Result<Node<'p, P>> {
    let node = node::start(provider, spec).await?;
    wait_for_systemd(&node).await?;
    Ok(node)
}

/// Configures the pod network on every node of `plan`, given in the plan's order.
async fn connect_pod_network<P: Provider>(nodes: &[Node<'_, P>], plan: &AddressPlan) -> Result<()> {
    try_join_all(
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| configure_pod_network(n, plan, i as u32)),
    )
    .await?;
    Ok(())
}

/// Writes the bridge configuration and the routes and rules every boot applies, then applies
/// them now.
///
/// Pods get a resolver file naming their node: on a user-defined Docker network the node's own
/// `/etc/resolv.conf` names the engine's resolver at 127.0.0.11, which only the node itself can
/// reach. Nothing answers DNS on the node's address, so names outside the cluster fail at once
/// instead of reaching past the machine; cluster names are CoreDNS's and work as usual.
async fn configure_pod_network<P: Provider>(
    node: &Node<'_, P>,
    plan: &AddressPlan,
    index: u32,
) -> Result<()> {
    let conflist = cni::conflist(&plan.node_pod_subnets(index));
    node.write_file(
        &format!("{}/{}", cni::CONFIG_DIR, cni::CONFLIST_NAME),
        conflist.as_bytes(),
        0o644,
    )
    .await?;

    let mut script = String::from(
        "#!/bin/bash\n# Written by kdind: this node's pod network routes and rules.\nset -e\n",
    );
    for route in cni::routes(plan, index) {
        script.push_str(&shell_line(&route));
    }
    for rule in cni::masquerade_rules(plan) {
        script.push_str(&format!(
            "{} || {}",
            shell_line(&rule.check()).trim_end(),
            shell_line(&rule.append())
        ));
    }
    node.write_file("/etc/kdind/network.sh", script.as_bytes(), 0o755)
        .await?;
    node.exec(&["systemctl", "restart", "kdind-network.service"])
        .await?;

    let resolvers: String = plan
        .node_ips(index)
        .iter()
        .map(|ip| format!("nameserver {ip}\n"))
        .collect();
    node.write_file(RESOLV_CONF, resolvers.as_bytes(), 0o644)
        .await?;
    Ok(())
}

/// One shell command line, each word quoted.
fn shell_line(words: &[String]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect();
    format!("{}\n", quoted.join(" "))
}

/// Reads the admin kubeconfig from the control plane and merges it into the user's file, with
/// the server at the port the engine published. Returns the file, the port and a kubeconfig
/// for kdind's own client.
async fn export_kubeconfig<P: Provider>(
    provider: &P,
    options: &ClusterOptions,
) -> Result<(PathBuf, u16, String)> {
    let (admin, port) = admin_and_port(provider, &options.name).await?;
    let server = kubeconfig::local_server(port);
    let path = options.kubeconfig_path()?;
    kubeconfig::merge(&path, &admin, &options.name.context(), &server)?;

    let local = admin_with_server(&admin, &server);
    Ok((path, port, local))
}

/// The admin kubeconfig with its server line pointing at `server`.
fn admin_with_server(admin: &str, server: &str) -> String {
    admin
        .lines()
        .map(|line| match line.trim_start().strip_prefix("server: ") {
            Some(_) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}server: {server}")
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn wait_until_ready(
    admin: &str,
    plan: &AddressPlan,
    since: Option<Timestamp>,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<Vec<wait::NodeState>> {
    let client = wait::client(admin).await?;
    let expected = plan.node_count() as usize;
    let nodes = step(
        progress,
        &format!("Waiting for {expected} nodes to be Ready"),
        async { wait::nodes_ready(&client, expected, since, timeout).await },
    )
    .await?;
    step(progress, "Waiting for CoreDNS", async {
        wait::deployment_available(&client, "kube-system", "coredns", timeout).await?;
        wait::pods_ready(&client, "kube-system", "k8s-app=kube-dns", since, timeout).await
    })
    .await?;
    Ok(nodes)
}

/// The Kubernetes version of a node image, from its label; refuses images that are missing or
/// not kdind's.
async fn node_image_version<P: Provider>(provider: &P, image: &str) -> Result<KubeVersion> {
    let labels = provider
        .image_labels(image)
        .await?
        .ok_or_else(|| ClusterError::MissingImage(image.to_owned()))?;
    labels
        .get(image::LABEL_KUBE_VERSION)
        .and_then(|v| KubeVersion::parse(v))
        .ok_or_else(|| ClusterError::NotANodeImage(image.to_owned()))
}

/// Refuses a host port for the API server that something on the machine listens on already.
fn check_port_free(port: u16) -> Result<()> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
            Err(ClusterError::PortInUse(port))
        }
        // Not ours to bind (a privileged port, say); the engine, which runs as root, may.
        Err(_) => Ok(()),
    }
}

/// Refuses IPv6 modes on a host whose kernel has IPv6 off, where the engine would make the
/// network and the nodes would then have no addresses in it. Checked only for a local engine.
fn check_host_ipv6(mode: crate::net::IpMode) -> Result<()> {
    if !engine_is_local() {
        return Ok(());
    }
    let problem = if !std::path::Path::new("/proc/net/if_inet6").exists() {
        "lacks (no /proc/net/if_inet6)"
    } else if std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        .is_ok_and(|v| v.trim() == "1")
    {
        "has turned off (net.ipv6.conf.all.disable_ipv6=1; as root: sysctl -w \
         net.ipv6.conf.all.disable_ipv6=0)"
    } else {
        return Ok(());
    };
    Err(ClusterError::NoIpv6 { mode, problem })
}

/// Whether the engine runs on this host, so that what this host's kernel allows is what its
/// nodes get.
fn engine_is_local() -> bool {
    std::env::var("DOCKER_HOST").map_or(true, |h| h.is_empty() || h.starts_with("unix://"))
}

/// inotify instances a node holds, measured on kdind's nodes: systemd, containerd, the kubelet
/// and on a control plane the API server and controller manager each keep several.
const INOTIFY_PER_CONTROL_PLANE: u64 = 32;
const INOTIFY_PER_WORKER: u64 = 20;
/// Left for the host's own processes.
const INOTIFY_HOST_SHARE: u64 = 16;

/// Refuses to add nodes past the host's limit of inotify instances, which every node container
/// shares (they run as the same user): past it kubelets start but never report Ready. Checked
/// only for a local engine, whose host is this one.
async fn check_inotify_room<P: Provider>(
    provider: &P,
    control_planes: u32,
    workers: u32,
) -> Result<()> {
    if !engine_is_local() {
        return Ok(());
    }
    let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    let Some(limit) = limit else {
        return Ok(());
    };
    let managed = BTreeMap::from([(LABEL_MANAGED.to_owned(), "true".to_owned())]);
    let mut needed = INOTIFY_HOST_SHARE
        + u64::from(control_planes) * INOTIFY_PER_CONTROL_PLANE
        + u64::from(workers) * INOTIFY_PER_WORKER;
    for container in provider.list(&managed).await? {
        if !container.running {
            continue;
        }
        needed += match container.labels.get(LABEL_ROLE).map(String::as_str) {
            Some(ROLE_CONTROL_PLANE) => INOTIFY_PER_CONTROL_PLANE,
            Some(ROLE_WORKER) => INOTIFY_PER_WORKER,
            _ => 0,
        };
    }
    if needed > limit {
        return Err(ClusterError::InotifyLimit { limit, needed });
    }
    Ok(())
}

/// Runs the port forwarder, if one is set, with the API server's host port.
async fn forward_port(options: &ClusterOptions, port: u16, progress: &dyn Progress) -> Result<()> {
    let Some(program) = &options.port_forwarder else {
        return Ok(());
    };
    step(
        progress,
        &format!("Running port forwarder {} {port}", program.display()),
        async {
            let output = tokio::process::Command::new(program)
                .arg(port.to_string())
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .map_err(|err| ClusterError::Forwarder {
                    program: program.clone(),
                    status: "an error starting it".into(),
                    output: err.to_string(),
                })?;
            if output.status.success() {
                return Ok(());
            }
            let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if text.is_empty() {
                text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            }
            Err(ClusterError::Forwarder {
                program: program.clone(),
                status: output.status.to_string(),
                output: text,
            })
        },
    )
    .await
}

/// A held lock on one cluster; dropping it lets the next command in.
#[derive(Debug)]
pub struct ClusterLock {
    _file: std::fs::File,
}

/// Takes the lock that keeps two commands that change a cluster from running at once: a file
/// lock under kdind's cache directory, freed by the system when the holder exits however it
/// does.
///
/// # Errors
///
/// [`ClusterError::Busy`] when another command holds it.
pub fn lock(name: &ClusterName) -> Result<ClusterLock> {
    let dir = image::cache::root().join("locks");
    let path = dir.join(format!("{}.lock", name.context()));
    let failed = |source| ClusterError::Lock {
        context: name.context(),
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let file = std::fs::File::create(&path).map_err(failed)?;
    match file.try_lock() {
        Ok(()) => Ok(ClusterLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(ClusterError::Busy(name.context())),
        Err(std::fs::TryLockError::Error(err)) => Err(failed(err)),
    }
}

/// Refuses a management network that overlaps a network the engine already has.
async fn check_subnets_free<P: Provider>(provider: &P, plan: &AddressPlan) -> Result<()> {
    let networks = provider.networks().await?;
    for family in &plan.families {
        for network in &networks {
            for subnet in &network.subnets {
                let Ok(other) = crate::net::Cidr::parse(subnet) else {
                    continue;
                };
                if other.overlaps(&family.management) {
                    return Err(ClusterError::SubnetTaken {
                        what: "management network",
                        subnet: family.management.to_string(),
                        network: network.name.clone(),
                        other: subnet.clone(),
                        variable: "MGMT_CIDRS or CLUSTER_ID",
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_kubeconfig_is_pointed_at_the_published_port() {
        let admin = "clusters:\n- cluster:\n    certificate-authority-data: X\n    \
                     server: https://10.192.0.2:6443\n  name: kubernetes\n";
        let local = admin_with_server(admin, "https://127.0.0.1:40000");
        assert!(local.contains("    server: https://127.0.0.1:40000"));
        assert!(!local.contains("10.192.0.2"));
    }

    #[test]
    fn shell_lines_quote_every_word() {
        let words = vec![
            "iptables".to_owned(),
            "--comment".to_owned(),
            "it's".to_owned(),
        ];
        assert_eq!(shell_line(&words), "'iptables' '--comment' 'it'\\''s'\n");
    }

    #[test]
    fn control_plane_publishes_the_api_server_on_loopback_only() {
        let mut options = ClusterOptions::new(ClusterName::default(), "kdind/node:v1.37.2".into());
        options.apiserver_port = Some(8443);
        let plan = AddressPlan::new(&options.plan).unwrap();
        let master = node_spec(&options, &plan, 0);
        assert_eq!(master.name, "kube-master");
        assert_eq!(master.ports[0].host_ip, "127.0.0.1");
        assert_eq!(master.ports[0].host_port, 8443);
        let worker = node_spec(&options, &plan, 2);
        assert_eq!(worker.name, "kube-node-2");
        assert!(worker.ports.is_empty());
        let attachment = worker.attachment.unwrap();
        assert_eq!(attachment.ipv4.as_deref(), Some("10.192.0.4"));
        assert_eq!(attachment.network, "kubeadm-dind-net");
    }
}
