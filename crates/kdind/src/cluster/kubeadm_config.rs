//! kubeadm's configuration: one file for `kubeadm init` on the control plane, one for
//! `kubeadm join` on each worker.
//!
//! The documents are built from typed structs rather than text templates, so every value is
//! quoted as YAML needs. Only the fields kdind decides are written; kubeadm defaults the rest.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::image::KubeVersion;
use crate::net::{AddressPlan, Cidr, comma_list};

/// Where containerd's CRI listens in a node.
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
/// Port of the API server on the control plane.
pub const API_SERVER_PORT: u16 = 6443;
/// DNS domain of the cluster's Services.
pub const DNS_DOMAIN: &str = "cluster.local";
/// Oldest Kubernetes minor kdind configures: the first whose kubeadm reads nothing before
/// v1beta3.
pub const MIN_MINOR: u32 = 26;
/// First Kubernetes minor whose kubeadm reads v1beta4, and whose kubelet has `failCgroupV1` and
/// kube-proxy a beta nftables mode.
const V1BETA4_MINOR: u32 = 31;

/// Errors from writing kubeadm configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("kdind supports Kubernetes 1.{MIN_MINOR} and newer, not {0}")]
    TooOld(String),
    #[error(
        "the nftables proxy mode needs Kubernetes 1.{V1BETA4_MINOR} or newer, not {0}; use the \
         iptables mode"
    )]
    NftablesTooOld(String),
    #[error("failed to write the kubeadm configuration as YAML")]
    Yaml(#[source] serde_norway::Error),
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// The version of kubeadm's configuration API a release reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeadmApi {
    /// Kubernetes 1.26 to 1.30.
    V1beta3,
    /// Kubernetes 1.31 and newer; from 1.37 kubeadm reads nothing older.
    V1beta4,
}

impl KubeadmApi {
    /// The API to write for `version`.
    ///
    /// # Errors
    ///
    /// Fails for releases older than 1.26, whose kubeadm kdind does not know.
    pub fn for_version(version: &KubeVersion) -> Result<Self> {
        match version.minor {
            minor if minor < MIN_MINOR => Err(ConfigError::TooOld(version.to_string())),
            minor if minor < V1BETA4_MINOR => Ok(Self::V1beta3),
            _ => Ok(Self::V1beta4),
        }
    }

    /// The `apiVersion` of its documents.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::V1beta3 => "kubeadm.k8s.io/v1beta3",
            Self::V1beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }
}

/// How kube-proxy programs Services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProxyMode {
    #[default]
    Iptables,
    Nftables,
}

impl ProxyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
        }
    }
}

/// Everything `kubeadm init` is told.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub version: KubeVersion,
    pub cluster_name: String,
    /// Name of the control-plane node; also written into the API server's certificate.
    pub node_name: String,
    /// The control plane's addresses, primary family first; the API server listens on the first.
    pub node_ips: Vec<IpAddr>,
    pub token: String,
    pub pod_subnets: Vec<Cidr>,
    pub service_subnets: Vec<Cidr>,
    /// The cluster DNS Service's address.
    pub dns_ip: IpAddr,
    pub dns_domain: String,
    /// Names of preflight checks that may fail, such as `Swap` or `SystemVerification`.
    pub ignore_preflight_errors: Vec<String>,
    /// Kubernetes feature gates, given alike to the API server, controller manager, scheduler,
    /// kubelet and kube-proxy so that they agree.
    pub feature_gates: BTreeMap<String, bool>,
    /// Feature gates of the kubelets alone; they win over `feature_gates` there.
    pub kubelet_feature_gates: BTreeMap<String, bool>,
    /// kubeadm's own feature gates, which are a different set from Kubernetes's.
    pub kubeadm_feature_gates: BTreeMap<String, bool>,
    /// Extra flags, without their `--`; they win over any kdind sets itself.
    pub apiserver_args: BTreeMap<String, String>,
    pub controller_manager_args: BTreeMap<String, String>,
    pub scheduler_args: BTreeMap<String, String>,
    pub proxy_mode: ProxyMode,
    /// The resolver configuration the kubelet gives pods. On a user-defined Docker network a
    /// node's own `/etc/resolv.conf` names 127.0.0.11, which pods cannot reach, so the caller
    /// points this at a file naming servers they can.
    pub resolv_conf: String,
    /// Whether the kubelet enforces ephemeral-storage limits; that needs filesystem statistics
    /// of the node's root, which a container node may not be able to give.
    pub local_storage_capacity_isolation: bool,
    /// Leaves the control plane without its `NoSchedule` taint, so that a cluster without
    /// workers still runs pods.
    pub schedule_on_control_plane: bool,
}

impl InitOptions {
    /// Options for the control plane of `plan`, with kdind's defaults for the rest.
    pub fn new(
        version: KubeVersion,
        plan: &AddressPlan,
        cluster_name: &str,
        node_name: &str,
        token: &str,
    ) -> Self {
        Self {
            version,
            cluster_name: cluster_name.to_owned(),
            node_name: node_name.to_owned(),
            node_ips: plan.node_ips(0),
            token: token.to_owned(),
            pod_subnets: plan.pod_networks(),
            service_subnets: plan.service_networks(),
            dns_ip: plan.dns_ip(),
            dns_domain: DNS_DOMAIN.to_owned(),
            ignore_preflight_errors: Vec::new(),
            feature_gates: BTreeMap::new(),
            kubelet_feature_gates: BTreeMap::new(),
            kubeadm_feature_gates: BTreeMap::new(),
            apiserver_args: BTreeMap::new(),
            controller_manager_args: BTreeMap::new(),
            scheduler_args: BTreeMap::new(),
            proxy_mode: ProxyMode::default(),
            resolv_conf: "/etc/resolv.conf".to_owned(),
            local_storage_capacity_isolation: false,
            schedule_on_control_plane: plan.workers == 0,
        }
    }
}

/// Everything `kubeadm join` is told on a worker.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub version: KubeVersion,
    pub node_name: String,
    /// The worker's addresses, primary family first.
    pub node_ips: Vec<IpAddr>,
    /// Where the API server listens: the control plane's primary address.
    pub api_server: IpAddr,
    pub token: String,
    pub ignore_preflight_errors: Vec<String>,
}

impl JoinOptions {
    /// Options for node `node` of `plan` (1 for the first worker).
    ///
    /// # Panics
    ///
    /// Panics when `node` is not a node of the plan.
    pub fn new(
        version: KubeVersion,
        plan: &AddressPlan,
        node: u32,
        node_name: &str,
        token: &str,
    ) -> Self {
        Self {
            version,
            node_name: node_name.to_owned(),
            node_ips: plan.node_ips(node),
            api_server: plan.control_plane_ip(),
            token: token.to_owned(),
            ignore_preflight_errors: Vec::new(),
        }
    }
}

/// The configuration for `kubeadm init --config`: init, cluster, kubelet and kube-proxy
/// documents.
///
/// # Errors
///
/// Fails for a release kdind does not support, or a proxy mode the release lacks.
pub fn init_config(options: &InitOptions) -> Result<String> {
    let api = KubeadmApi::for_version(&options.version)?;
    let modern = options.version.minor >= V1BETA4_MINOR;
    if options.proxy_mode == ProxyMode::Nftables && !modern {
        return Err(ConfigError::NftablesTooOld(options.version.to_string()));
    }

    let endpoint = api_endpoint(options.node_ips[0]);
    let init = InitConfiguration {
        api_version: api.api_version(),
        kind: "InitConfiguration",
        bootstrap_tokens: vec![BootstrapToken {
            token: &options.token,
            // Never expires, so that nodes can join a long-lived test cluster at any time.
            ttl: "0s",
        }],
        local_api_endpoint: LocalApiEndpoint {
            advertise_address: options.node_ips[0].to_string(),
            bind_port: API_SERVER_PORT,
        },
        node_registration: NodeRegistration::new(
            api,
            &options.node_name,
            &options.node_ips,
            &options.ignore_preflight_errors,
            options.schedule_on_control_plane,
        ),
    };
    let cluster = cluster_configuration(api, options, endpoint);
    let kubelet = kubelet_configuration(options, modern);
    let proxy = KubeProxyConfiguration {
        api_version: "kubeproxy.config.k8s.io/v1alpha1",
        kind: "KubeProxyConfiguration",
        mode: options.proxy_mode.as_str(),
        cluster_cidr: comma_list(&options.pod_subnets),
        conntrack: Conntrack::LEAVE_HOST_ALONE,
        feature_gates: &options.feature_gates,
    };

    Ok([
        yaml(&init)?,
        yaml(&cluster)?,
        yaml(&kubelet)?,
        yaml(&proxy)?,
    ]
    .join("---\n"))
}

/// The configuration for `kubeadm join --config` on a worker.
///
/// # Errors
///
/// Fails for a release kdind does not support.
pub fn join_config(options: &JoinOptions) -> Result<String> {
    let api = KubeadmApi::for_version(&options.version)?;
    let join = JoinConfiguration {
        api_version: api.api_version(),
        kind: "JoinConfiguration",
        discovery: Discovery {
            bootstrap_token: BootstrapTokenDiscovery {
                api_server_endpoint: api_endpoint(options.api_server),
                token: &options.token,
                // Test clusters are made and trusted by the same hand; pinning the CA would
                // mean reading its hash back from the control plane first.
                unsafe_skip_ca_verification: true,
            },
        },
        node_registration: NodeRegistration::new(
            api,
            &options.node_name,
            &options.node_ips,
            &options.ignore_preflight_errors,
            false,
        ),
    };
    yaml(&join)
}

/// A fresh bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
///
/// It is hashed from the process's random hasher keys (which std seeds from the operating
/// system), the time, the process id and a counter: unpredictable enough for a test cluster's
/// join token, without a random number crate.
pub fn token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);

    let mut seed = Vec::new();
    seed.extend(RandomState::new().hash_one(count).to_le_bytes());
    seed.extend(nanos.to_le_bytes());
    seed.extend(std::process::id().to_le_bytes());
    seed.extend(count.to_le_bytes());
    token_from(&seed)
}

/// Whether `text` has the form of a bootstrap token.
pub fn is_token(text: &str) -> bool {
    let ok = |part: &str, len| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    text.split_once('.')
        .is_some_and(|(id, secret)| ok(id, 6) && ok(secret, 16))
}

fn token_from(seed: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let digest = Sha256::digest(seed);
    // 256 is not a multiple of 36, so the first few letters come up slightly more often; a
    // token stays unguessable all the same.
    let mut chars = digest
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
    let id: String = chars.by_ref().take(6).collect();
    let secret: String = chars.take(16).collect();
    format!("{id}.{secret}")
}

/// `host:port` of the API server, bracketing an IPv6 host.
fn api_endpoint(ip: IpAddr) -> String {
    SocketAddr::new(ip, API_SERVER_PORT).to_string()
}

fn yaml<T: Serialize>(document: &T) -> Result<String> {
    serde_norway::to_string(document).map_err(ConfigError::Yaml)
}

fn cluster_configuration<'a>(
    api: KubeadmApi,
    options: &'a InitOptions,
    endpoint: String,
) -> ClusterConfiguration<'a> {
    let gates = &options.feature_gates;
    let mut cert_sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    cert_sans.extend(options.node_ips.iter().map(ToString::to_string));
    cert_sans.push(options.node_name.clone());

    ClusterConfiguration {
        api_version: api.api_version(),
        kind: "ClusterConfiguration",
        kubernetes_version: options.version.to_string(),
        cluster_name: &options.cluster_name,
        control_plane_endpoint: endpoint,
        api_server: ApiServer {
            cert_sans,
            extra_args: component_args(api, &[], gates, &options.apiserver_args),
        },
        controller_manager: Component {
            // kdind hands out the nodes' pod subnets itself, and writes them into each node's
            // CNI configuration; the controller manager's own would disagree with them.
            extra_args: component_args(
                api,
                &[("allocate-node-cidrs", "false")],
                gates,
                &options.controller_manager_args,
            ),
        },
        scheduler: Component {
            extra_args: component_args(api, &[], gates, &options.scheduler_args),
        },
        networking: Networking {
            pod_subnet: comma_list(&options.pod_subnets),
            service_subnet: comma_list(&options.service_subnets),
            dns_domain: &options.dns_domain,
        },
        feature_gates: &options.kubeadm_feature_gates,
    }
}

fn kubelet_configuration(options: &InitOptions, modern: bool) -> KubeletConfiguration<'_> {
    // A test node shares the host's disks and should run its pods however full they are. Signals
    // left out are not defaulted but turned off, so memory eviction is off too; the kernel's OOM
    // killer still acts.
    let eviction_hard = ["imagefs.available", "nodefs.available", "nodefs.inodesFree"]
        .into_iter()
        .map(|signal| (signal, "0%"))
        .collect();

    KubeletConfiguration {
        api_version: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        cgroup_driver: "cgroupfs",
        cgroups_per_qos: true,
        // Hosts kdind runs on may still mount cgroup v1, which kubelets from 1.35 refuse unless
        // told otherwise. Kubelets older than the field would only warn about it; they are
        // spared the warning.
        fail_cgroup_v1: modern.then_some(false),
        fail_swap_on: false,
        cluster_dns: vec![options.dns_ip.to_string()],
        cluster_domain: &options.dns_domain,
        resolv_conf: &options.resolv_conf,
        eviction_hard,
        // Images are preloaded and cannot be pulled again, so they must never be collected.
        image_gc_high_threshold_percent: 100,
        protect_kernel_defaults: false,
        local_storage_capacity_isolation: options.local_storage_capacity_isolation,
        feature_gates: options
            .feature_gates
            .iter()
            .chain(&options.kubelet_feature_gates)
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    }
}

/// A component's flags: kdind's `defaults`, the feature gates, then the caller's `extra`.
fn component_args(
    api: KubeadmApi,
    defaults: &[(&str, &str)],
    gates: &BTreeMap<String, bool>,
    extra: &BTreeMap<String, String>,
) -> Args {
    let mut args: BTreeMap<String, String> = defaults
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if !gates.is_empty() {
        let gates = gates.iter().map(|(gate, on)| format!("{gate}={on}"));
        args.insert("feature-gates".into(), gates.collect::<Vec<_>>().join(","));
    }
    args.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    Args::new(api, args)
}

/// Flags of a component or the kubelet: a map in v1beta3, a list of name and value in v1beta4
/// (where a flag may repeat, though kdind never repeats one).
#[derive(Serialize)]
#[serde(untagged)]
enum Args {
    Map(BTreeMap<String, String>),
    List(Vec<Arg>),
}

#[derive(Serialize)]
struct Arg {
    name: String,
    value: String,
}

impl Args {
    fn new(api: KubeadmApi, args: BTreeMap<String, String>) -> Self {
        match api {
            KubeadmApi::V1beta3 => Self::Map(args),
            KubeadmApi::V1beta4 => Self::List(
                args.into_iter()
                    .map(|(name, value)| Arg { name, value })
                    .collect(),
            ),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::Map(map) => map.is_empty(),
            Self::List(list) => list.is_empty(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    bootstrap_tokens: Vec<BootstrapToken<'a>>,
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: LocalApiEndpoint,
    node_registration: NodeRegistration<'a>,
}

#[derive(Serialize)]
struct BootstrapToken<'a> {
    token: &'a str,
    ttl: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LocalApiEndpoint {
    advertise_address: String,
    bind_port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeRegistration<'a> {
    name: &'a str,
    cri_socket: &'static str,
    /// `Some` and empty clears kubeadm's default taint; `None` keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    taints: Option<[(); 0]>,
    kubelet_extra_args: Args,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    ignore_preflight_errors: &'a [String],
    image_pull_policy: &'static str,
}

impl<'a> NodeRegistration<'a> {
    fn new(
        api: KubeadmApi,
        name: &'a str,
        ips: &[IpAddr],
        ignore_preflight_errors: &'a [String],
        untainted: bool,
    ) -> Self {
        let kubelet_args = BTreeMap::from([("node-ip".to_owned(), comma_list(ips))]);
        Self {
            name,
            cri_socket: CRI_SOCKET,
            taints: untainted.then_some([]),
            kubelet_extra_args: Args::new(api, kubelet_args),
            ignore_preflight_errors,
            // Every image a node needs is preloaded; nothing may reach a registry.
            image_pull_policy: "Never",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    kubernetes_version: String,
    cluster_name: &'a str,
    control_plane_endpoint: String,
    api_server: ApiServer,
    controller_manager: Component,
    scheduler: Component,
    networking: Networking<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    feature_gates: &'a BTreeMap<String, bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiServer {
    #[serde(rename = "certSANs")]
    cert_sans: Vec<String>,
    #[serde(skip_serializing_if = "Args::is_empty")]
    extra_args: Args,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    #[serde(skip_serializing_if = "Args::is_empty")]
    extra_args: Args,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Networking<'a> {
    pod_subnet: String,
    service_subnet: String,
    dns_domain: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    cgroup_driver: &'static str,
    #[serde(rename = "cgroupsPerQOS")]
    cgroups_per_qos: bool,
    #[serde(rename = "failCgroupV1", skip_serializing_if = "Option::is_none")]
    fail_cgroup_v1: Option<bool>,
    fail_swap_on: bool,
    #[serde(rename = "clusterDNS")]
    cluster_dns: Vec<String>,
    cluster_domain: &'a str,
    resolv_conf: &'a str,
    eviction_hard: BTreeMap<&'static str, &'static str>,
    #[serde(rename = "imageGCHighThresholdPercent")]
    image_gc_high_threshold_percent: u8,
    protect_kernel_defaults: bool,
    local_storage_capacity_isolation: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    feature_gates: BTreeMap<String, bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeProxyConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    mode: &'static str,
    #[serde(rename = "clusterCIDR")]
    cluster_cidr: String,
    conntrack: Conntrack,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    feature_gates: &'a BTreeMap<String, bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Conntrack {
    max_per_core: u32,
    tcp_established_timeout: &'static str,
    tcp_close_wait_timeout: &'static str,
}

impl Conntrack {
    /// Zeroes tell kube-proxy to leave the conntrack table size and timeouts as they are: they
    /// are host-wide sysctls, read-only inside a node container.
    const LEAVE_HOST_ALONE: Self = Self {
        max_per_core: 0,
        tcp_established_timeout: "0s",
        tcp_close_wait_timeout: "0s",
    };
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    discovery: Discovery<'a>,
    node_registration: NodeRegistration<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Discovery<'a> {
    bootstrap_token: BootstrapTokenDiscovery<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapTokenDiscovery<'a> {
    api_server_endpoint: String,
    token: &'a str,
    #[serde(rename = "unsafeSkipCAVerification")]
    unsafe_skip_ca_verification: bool,
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::*;
    use crate::net::{IpMode, PlanInput};

    const TOKEN: &str = "abcdef.0123456789abcdef";

    fn version(text: &str) -> KubeVersion {
        KubeVersion::parse(text).unwrap()
    }

    fn plan(mode: IpMode, workers: u32) -> AddressPlan {
        AddressPlan::new(&PlanInput {
            mode,
            workers,
            ..Default::default()
        })
        .unwrap()
    }

    /// The documents of a multi-document YAML text, by kind.
    fn documents(text: &str) -> BTreeMap<String, Value> {
        serde_norway::Deserializer::from_str(text)
            .map(|doc| {
                let value = Value::deserialize(doc).unwrap();
                (value["kind"].as_str().unwrap().to_owned(), value)
            })
            .collect()
    }

    fn init(version_text: &str, workers: u32) -> BTreeMap<String, Value> {
        let options = InitOptions::new(
            version(version_text),
            &plan(IpMode::Ipv4, workers),
            "kdind",
            "kdind-control-plane",
            TOKEN,
        );
        documents(&init_config(&options).unwrap())
    }

    #[test]
    fn picks_the_api_by_release() {
        let api = |v| KubeadmApi::for_version(&version(v));
        assert_eq!(api("v1.26.0").unwrap(), KubeadmApi::V1beta3);
        assert_eq!(api("v1.30.9").unwrap(), KubeadmApi::V1beta3);
        assert_eq!(api("v1.31.0").unwrap(), KubeadmApi::V1beta4);
        assert_eq!(api("v1.37.2").unwrap(), KubeadmApi::V1beta4);
        let err = api("v1.25.16").unwrap_err();
        assert_eq!(
            err.to_string(),
            "kdind supports Kubernetes 1.26 and newer, not v1.25.16"
        );
    }

    #[test]
    fn writes_init_for_v1beta4() {
        let docs = init("v1.37.2", 2);
        assert_eq!(
            docs.keys().collect::<Vec<_>>(),
            [
                "ClusterConfiguration",
                "InitConfiguration",
                "KubeProxyConfiguration",
                "KubeletConfiguration"
            ]
        );

        let init = &docs["InitConfiguration"];
        assert_eq!(init["apiVersion"], "kubeadm.k8s.io/v1beta4");
        assert_eq!(
            init["bootstrapTokens"],
            json!([{"token": TOKEN, "ttl": "0s"}])
        );
        assert_eq!(
            init["localAPIEndpoint"],
            json!({"advertiseAddress": "10.192.0.2", "bindPort": 6443})
        );
        assert_eq!(
            init["nodeRegistration"],
            json!({
                "name": "kdind-control-plane",
                "criSocket": "unix:///run/containerd/containerd.sock",
                "kubeletExtraArgs": [{"name": "node-ip", "value": "10.192.0.2"}],
                "imagePullPolicy": "Never",
            })
        );

        let cluster = &docs["ClusterConfiguration"];
        assert_eq!(cluster["apiVersion"], "kubeadm.k8s.io/v1beta4");
        assert_eq!(cluster["kubernetesVersion"], "v1.37.2");
        assert_eq!(cluster["clusterName"], "kdind");
        assert_eq!(cluster["controlPlaneEndpoint"], "10.192.0.2:6443");
        assert_eq!(
            cluster["apiServer"],
            json!({"certSANs": ["127.0.0.1", "localhost", "10.192.0.2", "kdind-control-plane"]})
        );
        assert_eq!(
            cluster["controllerManager"]["extraArgs"],
            json!([{"name": "allocate-node-cidrs", "value": "false"}])
        );
        assert_eq!(cluster["scheduler"], json!({}));
        assert_eq!(
            cluster["networking"],
            json!({
                "podSubnet": "10.244.0.0/16",
                "serviceSubnet": "10.96.0.0/12",
                "dnsDomain": "cluster.local",
            })
        );
        assert!(cluster.get("featureGates").is_none());
    }

    #[test]
    fn writes_kubelet_and_proxy_configuration() {
        let docs = init("v1.37.2", 1);
        assert_eq!(
            docs["KubeletConfiguration"],
            json!({
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "cgroupDriver": "cgroupfs",
                "cgroupsPerQOS": true,
                "failCgroupV1": false,
                "failSwapOn": false,
                "clusterDNS": ["10.96.0.10"],
                "clusterDomain": "cluster.local",
                "resolvConf": "/etc/resolv.conf",
                "evictionHard": {
                    "imagefs.available": "0%",
                    "nodefs.available": "0%",
                    "nodefs.inodesFree": "0%",
                },
                "imageGCHighThresholdPercent": 100,
                "protectKernelDefaults": false,
                "localStorageCapacityIsolation": false,
            })
        );
        assert_eq!(
            docs["KubeProxyConfiguration"],
            json!({
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "mode": "iptables",
                "clusterCIDR": "10.244.0.0/16",
                "conntrack": {
                    "maxPerCore": 0,
                    "tcpEstablishedTimeout": "0s",
                    "tcpCloseWaitTimeout": "0s",
                },
            })
        );
    }

    #[test]
    fn writes_init_for_v1beta3() {
        let docs = init("v1.30.4", 1);
        let init = &docs["InitConfiguration"];
        assert_eq!(init["apiVersion"], "kubeadm.k8s.io/v1beta3");
        assert_eq!(
            init["nodeRegistration"]["kubeletExtraArgs"],
            json!({"node-ip": "10.192.0.2"})
        );
        let cluster = &docs["ClusterConfiguration"];
        assert_eq!(cluster["apiVersion"], "kubeadm.k8s.io/v1beta3");
        assert_eq!(
            cluster["controllerManager"]["extraArgs"],
            json!({"allocate-node-cidrs": "false"})
        );
        assert!(
            docs["KubeletConfiguration"].get("failCgroupV1").is_none(),
            "1.30's kubelet has no such field"
        );
    }

    #[test]
    fn passes_gates_and_flags_to_every_component() {
        let mut options = InitOptions::new(
            version("v1.37.2"),
            &plan(IpMode::Ipv4, 1),
            "kdind",
            "cp",
            TOKEN,
        );
        options.feature_gates = BTreeMap::from([("A".into(), true), ("B".into(), false)]);
        options.kubeadm_feature_gates =
            BTreeMap::from([("ControlPlaneKubeletLocalMode".into(), true)]);
        options.kubelet_feature_gates = BTreeMap::from([("B".into(), true), ("K".into(), true)]);
        options.apiserver_args = BTreeMap::from([("v".into(), "4".into())]);
        options.controller_manager_args =
            BTreeMap::from([("allocate-node-cidrs".into(), "true".into())]);
        options.scheduler_args = BTreeMap::from([("feature-gates".into(), "C=true".into())]);
        options.ignore_preflight_errors = vec!["Swap".into(), "SystemVerification".into()];
        options.proxy_mode = ProxyMode::Nftables;
        options.resolv_conf = "/etc/kdind/resolv.conf".into();
        let docs = documents(&init_config(&options).unwrap());

        let cluster = &docs["ClusterConfiguration"];
        assert_eq!(
            cluster["apiServer"]["extraArgs"],
            json!([
                {"name": "feature-gates", "value": "A=true,B=false"},
                {"name": "v", "value": "4"},
            ])
        );
        assert_eq!(
            cluster["controllerManager"]["extraArgs"],
            json!([
                {"name": "allocate-node-cidrs", "value": "true"},
                {"name": "feature-gates", "value": "A=true,B=false"},
            ]),
            "the caller's flags win"
        );
        assert_eq!(
            cluster["scheduler"]["extraArgs"],
            json!([{"name": "feature-gates", "value": "C=true"}])
        );
        assert_eq!(
            cluster["featureGates"],
            json!({"ControlPlaneKubeletLocalMode": true})
        );

        let gates = json!({"A": true, "B": false});
        assert_eq!(
            docs["KubeletConfiguration"]["featureGates"],
            json!({"A": true, "B": true, "K": true}),
            "the kubelet's own gates win there"
        );
        assert_eq!(
            docs["KubeletConfiguration"]["resolvConf"],
            "/etc/kdind/resolv.conf"
        );
        assert_eq!(docs["KubeProxyConfiguration"]["featureGates"], gates);
        assert_eq!(docs["KubeProxyConfiguration"]["mode"], "nftables");
        assert_eq!(
            docs["InitConfiguration"]["nodeRegistration"]["ignorePreflightErrors"],
            json!(["Swap", "SystemVerification"])
        );
    }

    #[test]
    fn refuses_nftables_before_it_was_beta() {
        let mut options = InitOptions::new(
            version("v1.29.0"),
            &plan(IpMode::Ipv4, 1),
            "kdind",
            "cp",
            TOKEN,
        );
        options.proxy_mode = ProxyMode::Nftables;
        assert!(matches!(
            init_config(&options),
            Err(ConfigError::NftablesTooOld(_))
        ));
    }

    #[test]
    fn untaints_a_lone_control_plane() {
        let docs = init("v1.37.2", 0);
        assert_eq!(
            docs["InitConfiguration"]["nodeRegistration"]["taints"],
            json!([])
        );
        let docs = init("v1.37.2", 1);
        assert!(
            docs["InitConfiguration"]["nodeRegistration"]
                .get("taints")
                .is_none()
        );
    }

    #[test]
    fn lists_both_families_for_dual_stack() {
        let options = InitOptions::new(
            version("v1.37.2"),
            &plan(IpMode::DualStack, 1),
            "kdind",
            "cp",
            TOKEN,
        );
        let docs = documents(&init_config(&options).unwrap());
        assert_eq!(
            docs["ClusterConfiguration"]["networking"]["podSubnet"],
            "10.244.0.0/16,fd00:40::/64"
        );
        assert_eq!(
            docs["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"],
            json!([{"name": "node-ip", "value": "10.192.0.2,fd00:20::2"}])
        );
        assert_eq!(
            docs["KubeletConfiguration"]["clusterDNS"],
            json!(["10.96.0.10"])
        );
    }

    #[test]
    fn brackets_an_ipv6_endpoint() {
        let options = InitOptions::new(
            version("v1.37.2"),
            &plan(IpMode::Ipv6, 1),
            "kdind",
            "cp",
            TOKEN,
        );
        let docs = documents(&init_config(&options).unwrap());
        assert_eq!(
            docs["ClusterConfiguration"]["controlPlaneEndpoint"],
            "[fd00:20::2]:6443"
        );
        assert_eq!(
            docs["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"],
            "fd00:20::2"
        );
    }

    #[test]
    fn writes_join_for_both_apis() {
        let plan = plan(IpMode::Ipv4, 2);
        for (release, api, kubelet_args) in [
            (
                "v1.37.2",
                "kubeadm.k8s.io/v1beta4",
                json!([{"name": "node-ip", "value": "10.192.0.4"}]),
            ),
            (
                "v1.28.0",
                "kubeadm.k8s.io/v1beta3",
                json!({"node-ip": "10.192.0.4"}),
            ),
        ] {
            let mut options = JoinOptions::new(version(release), &plan, 2, "kdind-worker2", TOKEN);
            options.ignore_preflight_errors = vec!["all".into()];
            let docs = documents(&join_config(&options).unwrap());
            assert_eq!(docs.len(), 1);
            assert_eq!(
                docs["JoinConfiguration"],
                json!({
                    "apiVersion": api,
                    "kind": "JoinConfiguration",
                    "discovery": {"bootstrapToken": {
                        "apiServerEndpoint": "10.192.0.2:6443",
                        "token": TOKEN,
                        "unsafeSkipCAVerification": true,
                    }},
                    "nodeRegistration": {
                        "name": "kdind-worker2",
                        "criSocket": "unix:///run/containerd/containerd.sock",
                        "kubeletExtraArgs": kubelet_args,
                        "ignorePreflightErrors": ["all"],
                        "imagePullPolicy": "Never",
                    },
                })
            );
        }
    }

    #[test]
    fn makes_valid_distinct_tokens() {
        let a = token();
        let b = token();
        assert!(is_token(&a), "{a}");
        assert!(is_token(&b), "{b}");
        assert_ne!(a, b);
        assert_eq!(token_from(b"seed"), token_from(b"seed"));

        assert!(is_token(TOKEN));
        for bad in [
            "",
            "abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef-0123456789abcdef",
        ] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }
}
