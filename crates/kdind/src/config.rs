//! A cluster's settings, gathered from three layers: a YAML file (`--config`), environment
//! variables with kubeadm-dind-cluster's names, and command-line flags. A later layer wins over
//! an earlier one key by key, and the maps (feature gates, component flags) entry by entry; what
//! no layer sets takes kdind's default.
//!
//! [`Layers::resolve`] merges the layers and remembers where each value came from, so that an
//! error can name the input to change (`NUM_NODES`, `--num-nodes` or `numNodes in FILE`) and
//! `kdind config` can print the effective settings with their sources. [`Resolved::options`]
//! checks everything that can be checked without the engine and gives the [`ClusterOptions`]
//! for the lifecycle verbs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::lifecycle::ClusterOptions;
use crate::cluster::naming::ClusterName;
use crate::cluster::settings;
use crate::image::{self, KubeVersion};
use crate::net::{AddressPlan, IpMode, MAX_CLUSTER_ID, PlanInput};

/// Default number of worker nodes.
pub const DEFAULT_NUM_NODES: u32 = 2;
/// Default seconds to wait for nodes and CoreDNS.
pub const DEFAULT_WAIT_SECONDS: u64 = 300;
/// The CNI plugins kdind can set up.
pub const CNI_PLUGINS: &[&str] = &["bridge"];
/// Longest cluster label: `kube-master-LABEL` must stay a 63-character host name.
pub const MAX_LABEL_LEN: usize = 50;

/// The settings of one layer; `None` leaves a key to the layers below. This is also the schema
/// of the YAML file, which refuses keys it does not know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_nodes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mgmt_cidrs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_network_cidr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_cidr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni_plugin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apiserver_port: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_forwarder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_gates: Option<BTreeMap<String, bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_feature_gates: Option<BTreeMap<String, bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apiserver_args: Option<BTreeMap<String, Scalar>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller_manager_args: Option<BTreeMap<String, Scalar>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_args: Option<BTreeMap<String, Scalar>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u64>,
}

/// A flag value as YAML may write it: `v: 2` and `v: "2"` both give `--v=2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env,
    Flag,
}

/// Errors in the settings, each naming the input to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "config file {path} is not a valid kdind configuration: {message}\n(the keys it may hold \
         are: {keys})"
    )]
    Parse {
        path: PathBuf,
        message: String,
        keys: String,
    },
    #[error("{variable}={value:?} is not {expected}")]
    Variable {
        variable: String,
        value: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("{input} {value} is out of range; {accepted}")]
    OutOfRange {
        input: String,
        value: String,
        accepted: String,
    },
    #[error("{input} {value:?} is not accepted: {accepted}")]
    Invalid {
        input: String,
        value: String,
        accepted: String,
    },
    #[error(transparent)]
    Plan(#[from] crate::net::NetError),
}

/// Every key of the file, in the order `kdind config` prints them, with the environment
/// variable and flag that set it too.
pub const KEYS: &[(&str, Option<&str>, &str)] = &[
    ("numNodes", Some("NUM_NODES"), "--num-nodes"),
    ("clusterId", Some("CLUSTER_ID"), "--cluster-id"),
    ("label", Some("DIND_LABEL"), "--label"),
    ("ipMode", Some("IP_MODE"), "--ip-mode"),
    ("mgmtCidrs", Some("MGMT_CIDRS"), "--mgmt-cidrs"),
    (
        "podNetworkCidr",
        Some("POD_NETWORK_CIDR"),
        "--pod-network-cidr",
    ),
    ("serviceCidr", Some("SERVICE_CIDR"), "--service-cidr"),
    ("cniPlugin", Some("CNI_PLUGIN"), "--cni-plugin"),
    ("apiserverPort", Some("APISERVER_PORT"), "--apiserver-port"),
    (
        "portForwarder",
        Some("DIND_PORT_FORWARDER"),
        "--port-forwarder",
    ),
    ("image", Some("DIND_IMAGE"), "--image"),
    ("featureGates", Some("FEATURE_GATES"), "--feature-gates"),
    (
        "kubeletFeatureGates",
        Some("KUBELET_FEATURE_GATES"),
        "--kubelet-feature-gates",
    ),
    ("apiserverArgs", Some("APISERVER_<flag>"), "--apiserver-arg"),
    (
        "controllerManagerArgs",
        Some("CONTROLLER_MANAGER_<flag>"),
        "--controller-manager-arg",
    ),
    ("schedulerArgs", Some("SCHEDULER_<flag>"), "--scheduler-arg"),
    ("kubeconfig", None, "--kubeconfig"),
    ("waitSeconds", None, "--wait"),
];

/// Reads a YAML config file.
///
/// # Errors
///
/// A file that cannot be read, is not YAML, or holds a key or value kdind does not know.
pub fn read_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(path, &text)
}

/// Parses the text of a config file; `path` only names it in errors.
///
/// # Errors
///
/// As [`read_file`].
pub fn parse_file(path: &Path, text: &str) -> Result<Config, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    serde_norway::from_str(text).map_err(|err| ConfigError::Parse {
        path: path.to_owned(),
        message: without_expected_keys(&err.to_string()),
        keys: KEYS.iter().map(|k| k.0).collect::<Vec<_>>().join(", "),
    })
}

/// Drops the list of expected keys from the parser's message for an unknown key: the error
/// lists them itself, once, for every kind of mistake.
fn without_expected_keys(message: &str) -> String {
    match message.split_once(", expected one of ") {
        Some((head, tail)) => match tail.find(" at line ") {
            Some(at) => format!("{head}{}", &tail[at..]),
            None => head.to_owned(),
        },
        None => message.to_owned(),
    }
}

/// The layer set by environment variables. Empty variables count as unset, as scripts often
/// export them empty.
///
/// # Errors
///
/// A variable whose value cannot be what it names, such as `NUM_NODES=two`.
pub fn from_env<'a>(
    variables: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
) -> Result<Config, ConfigError> {
    let get = |name: &str| {
        variables
            .clone()
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.trim().is_empty())
    };
    let number = |name: &str, expected: &'static str| -> Result<Option<u64>, ConfigError> {
        get(name)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| ConfigError::Variable {
                    variable: name.to_owned(),
                    value: v.clone(),
                    expected,
                })
            })
            .transpose()
    };
    let small = |value: Option<u64>| value.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    let gates = |name: &str| -> Result<Option<BTreeMap<String, bool>>, ConfigError> {
        Ok(match get(name) {
            Some(text) => Some(settings::feature_gates(name, &text)?),
            None => None,
        })
    };
    let flags = |prefix: &str| -> Result<Option<BTreeMap<String, Scalar>>, ConfigError> {
        let flags = settings::component_flags(prefix, variables.clone())?;
        Ok((!flags.is_empty()).then(|| {
            flags
                .into_iter()
                .map(|(k, v)| (k, Scalar::Text(v)))
                .collect()
        }))
    };
    Ok(Config {
        num_nodes: small(number(
            "NUM_NODES",
            "a whole number of worker nodes, such as 2",
        )?),
        cluster_id: small(number(
            "CLUSTER_ID",
            "a cluster ID: a whole number from 1 to 254, or 0 for the default cluster",
        )?),
        label: get("DIND_LABEL"),
        ip_mode: get("IP_MODE"),
        mgmt_cidrs: get("MGMT_CIDRS"),
        pod_network_cidr: get("POD_NETWORK_CIDR"),
        service_cidr: get("SERVICE_CIDR"),
        cni_plugin: get("CNI_PLUGIN"),
        apiserver_port: small(number("APISERVER_PORT", "a port number from 1 to 65535")?),
        port_forwarder: get("DIND_PORT_FORWARDER"),
        image: get("DIND_IMAGE"),
        feature_gates: gates("FEATURE_GATES")?,
        kubelet_feature_gates: gates("KUBELET_FEATURE_GATES")?,
        apiserver_args: flags("APISERVER_")?,
        controller_manager_args: flags("CONTROLLER_MANAGER_")?,
        scheduler_args: flags("SCHEDULER_")?,
        kubeconfig: None,
        wait_seconds: None,
    })
}

/// The layers, lowest first.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub layers: Vec<(Source, Config)>,
}

impl Layers {
    /// Merges the layers: a later one wins key by key, maps entry by entry.
    pub fn resolve(&self) -> Resolved {
        let mut merged = serde_json::Map::new();
        let mut sources: BTreeMap<String, Source> = BTreeMap::new();
        for (source, config) in &self.layers {
            let serde_json::Value::Object(values) =
                serde_json::to_value(config).expect("settings serialize")
            else {
                unreachable!("settings serialize to an object");
            };
            for (key, value) in values {
                match (merged.get_mut(&key), value) {
                    (Some(serde_json::Value::Object(old)), serde_json::Value::Object(new)) => {
                        old.extend(new);
                    }
                    (_, value) => {
                        merged.insert(key.clone(), value);
                    }
                }
                sources.insert(key, source.clone());
            }
        }
        let config = serde_json::from_value(serde_json::Value::Object(merged))
            .expect("merged settings deserialize");
        Resolved { config, sources }
    }
}

/// The merged settings and the source of each.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub config: Config,
    sources: BTreeMap<String, Source>,
}

impl Resolved {
    /// Where `key` (a file key such as `numNodes`) came from.
    pub fn source(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }

    /// How an error names the input behind `key`: the variable, flag or file key that set it.
    pub fn input(&self, key: &str) -> String {
        let (_, variable, flag) = KEYS
            .iter()
            .find(|k| k.0 == key)
            .copied()
            .unwrap_or((key, None, key));
        match self.source(key) {
            Source::File(path) => format!("{key} (in {})", path.display()),
            Source::Flag => flag.to_owned(),
            Source::Env | Source::Default => variable.unwrap_or(flag).to_owned(),
        }
    }

    /// Which cluster the settings name.
    ///
    /// # Errors
    ///
    /// An ID out of range or a label names cannot carry.
    pub fn cluster_name(&self) -> Result<ClusterName, ConfigError> {
        let id = self.config.cluster_id.unwrap_or(0);
        if id > MAX_CLUSTER_ID {
            return Err(ConfigError::OutOfRange {
                input: self.input("clusterId"),
                value: id.to_string(),
                accepted: format!(
                    "give 1 to {MAX_CLUSTER_ID}, or 0 (or nothing) for the default cluster"
                ),
            });
        }
        let label = self.config.label.clone().filter(|l| !l.is_empty());
        if let Some(label) = &label {
            check_label(label).map_err(|accepted| ConfigError::Invalid {
                input: self.input("label"),
                value: label.clone(),
                accepted,
            })?;
        }
        Ok(ClusterName {
            id: id as u8,
            label,
        })
    }

    /// The kubeconfig file named, if any.
    pub fn kubeconfig(&self) -> Option<PathBuf> {
        self.config.kubeconfig.clone()
    }

    /// The node image: the one named, else kdind's default.
    pub fn image(&self) -> String {
        self.config.image.clone().unwrap_or_else(|| {
            let version = KubeVersion::parse(image::DEFAULT_KUBE_VERSION)
                .expect("the default Kubernetes version parses");
            image::default_image(&version)
        })
    }

    /// Checks every setting that can be checked here and gives the options of the lifecycle
    /// verbs. Nothing is made; the engine is not asked.
    ///
    /// # Errors
    ///
    /// The first invalid setting, named as the user gave it, with what would be accepted.
    pub fn options(&self) -> Result<ClusterOptions, ConfigError> {
        let config = &self.config;
        let name = self.cluster_name()?;
        let mut options = ClusterOptions::new(name.clone(), self.image());
        if options.image.trim().is_empty() || options.image.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                input: self.input("image"),
                value: options.image.clone(),
                accepted: "name an image such as kdind/node:v1.37.2".into(),
            });
        }

        let mode = match config.ip_mode.as_deref().unwrap_or("ipv4") {
            "ipv4" => IpMode::Ipv4,
            "ipv6" => IpMode::Ipv6,
            "dual-stack" | "dualstack" => IpMode::DualStack,
            other => {
                return Err(ConfigError::Invalid {
                    input: self.input("ipMode"),
                    value: other.into(),
                    accepted: "use ipv4, ipv6 or dual-stack".into(),
                });
            }
        };
        let cni = config.cni_plugin.as_deref().unwrap_or(CNI_PLUGINS[0]);
        if !CNI_PLUGINS.contains(&cni) {
            return Err(ConfigError::Invalid {
                input: self.input("cniPlugin"),
                value: cni.into(),
                accepted: format!(
                    "kdind connects pods with {}: the CNI bridge plugin on each node and routes \
                     between nodes (the host kernel has no IPIP or IPVS for the others)",
                    CNI_PLUGINS.join(", ")
                ),
            });
        }

        let workers = config.num_nodes.unwrap_or(DEFAULT_NUM_NODES);
        options.plan = PlanInput {
            mode,
            cluster_id: u32::from(name.id),
            management: config.mgmt_cidrs.clone(),
            pods: config.pod_network_cidr.clone(),
            services: config.service_cidr.clone(),
            workers,
        };
        AddressPlan::new(&options.plan)?;
        options.workers_given = config.num_nodes.is_some();

        options.apiserver_port = match config.apiserver_port {
            None => None,
            Some(port @ 1..=65535) => Some(port as u16),
            Some(port) => {
                return Err(ConfigError::OutOfRange {
                    input: self.input("apiserverPort"),
                    value: port.to_string(),
                    accepted: "give a port from 1 to 65535, or leave it unset for a free one"
                        .into(),
                });
            }
        };
        if let Some(program) = &config.port_forwarder {
            options.port_forwarder =
                Some(
                    find_program(program).map_err(|accepted| ConfigError::Invalid {
                        input: self.input("portForwarder"),
                        value: program.clone(),
                        accepted,
                    })?,
                );
        }

        for (key, gates) in [
            ("featureGates", &config.feature_gates),
            ("kubeletFeatureGates", &config.kubelet_feature_gates),
        ] {
            for gate in gates.iter().flat_map(|g| g.keys()) {
                if gate.is_empty() || !gate.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(ConfigError::Invalid {
                        input: self.input(key),
                        value: gate.clone(),
                        accepted: "feature gate names are letters and digits, such as \
                                   InPlacePodVerticalScaling"
                            .into(),
                    });
                }
            }
        }
        options.feature_gates = config.feature_gates.clone().unwrap_or_default();
        options.kubelet_feature_gates = config.kubelet_feature_gates.clone().unwrap_or_default();

        let flags = |key: &str, map: &Option<BTreeMap<String, Scalar>>| {
            let mut flags = BTreeMap::new();
            for (flag, value) in map.iter().flatten() {
                let flag = flag.trim_start_matches('-');
                let fine = !flag.is_empty()
                    && flag
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !fine {
                    return Err(ConfigError::Invalid {
                        input: self.input(key),
                        value: flag.to_owned(),
                        accepted: "flag names are letters, digits and '-', such as \
                                   service-node-port-range"
                            .into(),
                    });
                }
                flags.insert(flag.replace('_', "-"), value.to_string());
            }
            Ok(flags)
        };
        options.apiserver_args = flags("apiserverArgs", &config.apiserver_args)?;
        options.controller_manager_args =
            flags("controllerManagerArgs", &config.controller_manager_args)?;
        options.scheduler_args = flags("schedulerArgs", &config.scheduler_args)?;

        options.kubeconfig = config.kubeconfig.clone();
        let wait = config.wait_seconds.unwrap_or(DEFAULT_WAIT_SECONDS);
        if wait == 0 {
            return Err(ConfigError::OutOfRange {
                input: self.input("waitSeconds"),
                value: "0".into(),
                accepted: "give a number of seconds above 0".into(),
            });
        }
        options.wait = Duration::from_secs(wait);
        Ok(options)
    }

    /// The effective settings as YAML a config file may hold, each key followed by where its
    /// value came from; unset keys are comments. The networks show what the address plan
    /// makes of the settings.
    pub fn to_yaml(&self) -> String {
        let mut shown = self.config.clone();
        shown.num_nodes.get_or_insert(DEFAULT_NUM_NODES);
        shown.cluster_id.get_or_insert(0);
        shown.ip_mode.get_or_insert_with(|| "ipv4".into());
        shown
            .cni_plugin
            .get_or_insert_with(|| CNI_PLUGINS[0].into());
        shown.image.get_or_insert_with(|| self.image());
        shown.wait_seconds.get_or_insert(DEFAULT_WAIT_SECONDS);
        if let Ok(options) = self.options()
            && let Ok(plan) = AddressPlan::new(&options.plan)
        {
            let join = |cidrs: Vec<crate::net::Cidr>| {
                cidrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let management = plan.families.iter().map(|f| f.management).collect();
            shown.mgmt_cidrs.get_or_insert_with(|| join(management));
            shown
                .pod_network_cidr
                .get_or_insert_with(|| join(plan.pod_networks()));
            shown
                .service_cidr
                .get_or_insert_with(|| join(plan.service_networks()));
        }

        let serde_json::Value::Object(values) =
            serde_json::to_value(&shown).expect("settings serialize")
        else {
            unreachable!("settings serialize to an object");
        };
        let mut out = String::from(
            "# kdind's effective settings; after each key, where its value came from.\n",
        );
        for (key, variable, flag) in KEYS {
            let origin = match self.source(key) {
                Source::Default => "default".to_owned(),
                Source::File(path) => format!("file {}", path.display()),
                Source::Env => variable.unwrap_or(flag).to_owned(),
                Source::Flag => (*flag).to_owned(),
            };
            let Some(value) = values.get(*key) else {
                let meaning = match *key {
                    "label" => "none",
                    "apiserverPort" => "a free port",
                    "portForwarder" => "none",
                    "kubeconfig" => "$KUBECONFIG's first file, else ~/.kube/config",
                    _ => "unset",
                };
                out.push_str(&format!("# {key}: {meaning}\n"));
                continue;
            };
            let one = BTreeMap::from([(*key, value)]);
            let text = serde_norway::to_string(&one).expect("settings serialize to YAML");
            let mut lines = text.lines();
            let first = lines.next().unwrap_or_default();
            out.push_str(&format!("{first}  # {origin}\n"));
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Why `label` cannot name a cluster, if it cannot: it goes into container, volume and host
/// names and Kubernetes node names, which allow lower-case letters, digits and `-`.
fn check_label(label: &str) -> Result<(), String> {
    let chars_fine = label
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_fine = !label.starts_with('-') && !label.ends_with('-');
    let id_like = label
        .strip_prefix("cluster-")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()));
    if id_like {
        return Err(
            "cluster-N names the cluster with CLUSTER_ID N: give that ID instead, or another label"
                .into(),
        );
    }
    if chars_fine && ends_fine && label.len() <= MAX_LABEL_LEN {
        Ok(())
    } else {
        Err(format!(
            "a label goes into node and host names: use lower-case letters, digits and '-', \
             starting and ending with a letter or digit, at most {MAX_LABEL_LEN} characters"
        ))
    }
}

/// The executable `program` names: a path, or a name looked up in `$PATH`.
fn find_program(program: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let accepted = "name an executable file, by path or in $PATH; it is run with the API \
                    server's host port as its one argument";
    if program.contains('/') {
        let path = PathBuf::from(program);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(format!("no executable file is there; {accepted}"))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| executable(path))
        .ok_or_else(|| format!("no such program in $PATH; {accepted}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(file: &str, env: &[(&str, &str)], flags: Config) -> Resolved {
        let file = parse_file(Path::new("kdind.yaml"), file).unwrap();
        let env = from_env(env.iter().copied()).unwrap();
        Layers {
            layers: vec![
                (Source::File("kdind.yaml".into()), file),
                (Source::Env, env),
                (Source::Flag, flags),
            ],
        }
        .resolve()
    }

    #[test]
    fn later_layers_win_key_by_key_and_maps_entry_by_entry() {
        let file = "numNodes: 4\nlabel: lab\nfeatureGates: {A: true, B: true}\n\
                    apiserverArgs: {v: 2}\n";
        let env = [
            ("NUM_NODES", "3"),
            ("FEATURE_GATES", "B=false"),
            ("IP_MODE", ""),
        ];
        let flags = Config {
            num_nodes: Some(1),
            ..Default::default()
        };
        let resolved = layers(file, &env, flags);
        assert_eq!(resolved.config.num_nodes, Some(1));
        assert_eq!(resolved.source("numNodes"), Source::Flag);
        assert_eq!(resolved.config.label.as_deref(), Some("lab"));
        assert_eq!(resolved.source("label"), Source::File("kdind.yaml".into()));
        assert_eq!(
            resolved.config.feature_gates,
            Some(BTreeMap::from([("A".into(), true), ("B".into(), false)]))
        );
        assert_eq!(resolved.source("ipMode"), Source::Default);

        let options = resolved.options().unwrap();
        assert_eq!(options.plan.workers, 1);
        assert_eq!(options.name.context(), "dind-lab");
        assert_eq!(options.apiserver_args["v"], "2");
    }

    #[test]
    fn errors_name_the_input_as_it_was_given() {
        let resolved = layers("label: Bad_Label\n", &[], Config::default());
        let err = resolved.options().unwrap_err().to_string();
        assert!(
            err.starts_with("label (in kdind.yaml) \"Bad_Label\""),
            "{err}"
        );

        let resolved = layers("", &[("DIND_LABEL", "-x")], Config::default());
        let err = resolved.options().unwrap_err().to_string();
        assert!(err.starts_with("DIND_LABEL \"-x\""), "{err}");

        let flags = Config {
            apiserver_port: Some(70000),
            ..Default::default()
        };
        let err = layers("", &[], flags).options().unwrap_err().to_string();
        assert!(
            err.starts_with("--apiserver-port 70000 is out of range"),
            "{err}"
        );
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values_in_the_file() {
        for bad in [
            "numNode: 3\n",
            "numNodes: two\n",
            "- a\n",
            "clusterId: -1\n",
            "{",
        ] {
            let err = parse_file(Path::new("f.yaml"), bad)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("f.yaml is not a valid kdind configuration"),
                "{bad}: {err}"
            );
            assert!(err.contains("numNodes, clusterId"), "{bad}: {err}");
        }
        assert_eq!(parse_file(Path::new("f"), "\n").unwrap(), Config::default());

        // An unknown key is named once, with its place, and the keys are listed once.
        let err = parse_file(Path::new("f.yaml"), "numNodes: 1\nfoo: 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `foo` at line 2"), "{err}");
        assert_eq!(err.matches("kubeletFeatureGates").count(), 1, "{err}");
    }

    #[test]
    fn bad_variables_say_what_they_should_hold() {
        let err = from_env([("NUM_NODES", "two")]).unwrap_err().to_string();
        assert_eq!(
            err,
            "NUM_NODES=\"two\" is not a whole number of worker nodes, such as 2"
        );
        let err = from_env([("KUBELET_FEATURE_GATES", "A")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("KUBELET_FEATURE_GATES:"), "{err}");
    }

    #[test]
    fn refuses_what_kdind_cannot_make() {
        for (env, input) in [
            (("CNI_PLUGIN", "flannel"), "CNI_PLUGIN"),
            (("IP_MODE", "ipv5"), "IP_MODE"),
            (("CLUSTER_ID", "255"), "CLUSTER_ID"),
            (
                ("DIND_PORT_FORWARDER", "/nonexistent/forward"),
                "DIND_PORT_FORWARDER",
            ),
            (
                ("DIND_PORT_FORWARDER", "kdind-no-such-forwarder"),
                "DIND_PORT_FORWARDER",
            ),
            (("APISERVER_PORT", "0"), "APISERVER_PORT"),
        ] {
            let err = layers("", &[env], Config::default())
                .options()
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(input), "{env:?}: {err}");
        }
    }

    #[test]
    fn printed_settings_read_back_as_the_same_file() {
        let resolved = layers(
            "clusterId: 20\nfeatureGates: {A: true}\n",
            &[("APISERVER_v", "3")],
            Config::default(),
        );
        let text = resolved.to_yaml();
        assert!(text.contains("clusterId: 20  # file kdind.yaml"), "{text}");
        assert!(
            text.contains("mgmtCidrs: 10.192.20.0/24  # default"),
            "{text}"
        );
        assert!(
            text.contains("apiserverArgs:  # APISERVER_<flag>"),
            "{text}"
        );
        let again = parse_file(Path::new("printed"), &text).unwrap();
        assert_eq!(again.cluster_id, Some(20));
        assert_eq!(again.num_nodes, Some(DEFAULT_NUM_NODES));
        assert_eq!(
            again.apiserver_args,
            Some(BTreeMap::from([("v".into(), Scalar::Text("3".into()))]))
        );
    }

    #[test]
    fn labels_follow_host_name_rules() {
        assert!(check_label("third").is_ok());
        assert!(check_label("a-1").is_ok());
        assert!(check_label("cluster-x").is_ok());
        let long = "x".repeat(51);
        for bad in [
            "Third",
            "a_b",
            "a.b",
            "-a",
            "a-",
            "a b",
            &long,
            "cluster-5",
            "cluster-020",
        ] {
            assert!(check_label(bad).is_err(), "{bad}");
        }
    }
}
