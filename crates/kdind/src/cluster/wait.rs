//! Waiting on the cluster through its API (kube-rs): nodes Ready, deployments available; and
//! the one change kdind makes to an add-on kubeadm installs, CoreDNS's readiness period.
//!
//! Each wait polls one condition until it holds or the caller's deadline passes; a timeout says
//! what was last seen, which is usually the first clue to what went wrong.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::time::Instant;

/// Errors from waiting on a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    #[error("failed to read the cluster's kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("failed to make a Kubernetes client")]
    Client(#[source] kube::Error),
    #[error("timed out after {secs} s waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        secs: u64,
        last: String,
    },
}

/// How often the kubelet asks CoreDNS whether it is ready, in seconds. kubeadm keeps the default
/// of 10 s, and a kubelet that has just started waits a random part of the period before its
/// first probe: after `down` and `up`, CoreDNS reported Ready 5-10 s later than it could.
pub const COREDNS_READINESS_PERIOD_SECS: i32 = 2;

/// Sets CoreDNS's readiness period to [`COREDNS_READINESS_PERIOD_SECS`], trying again for up to
/// half a minute while the API server is still settling. A cluster without the CoreDNS
/// deployment (kubeadm told to skip it) is left as it is.
pub async fn quicken_coredns_readiness(client: &kube::Client) -> Result<(), WaitError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    let patch = Patch::Strategic(serde_json::json!({
        "spec": { "template": { "spec": { "containers": [{
            "name": "coredns",
            "readinessProbe": { "periodSeconds": COREDNS_READINESS_PERIOD_SECS },
        }]}}}
    }));
    let params = PatchParams::apply("kdind");
    poll(
        "the readiness period of deployment kube-system/coredns to change".into(),
        Duration::from_secs(30),
        || async {
            match deployments.patch("coredns", &params, &patch).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(err) => Err(err.to_string()),
            }
        },
    )
    .await
}

/// A client for the cluster that an admin kubeconfig describes.
pub async fn client(kubeconfig_yaml: &str) -> Result<kube::Client, WaitError> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml).map_err(WaitError::Kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(WaitError::Kubeconfig)?;
    kube::Client::try_from(config).map_err(WaitError::Client)
}

/// One node's name and whether its kubelet reports Ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub name: String,
    pub ready: bool,
}

/// Whether a node is Ready, counting only reports newer than `since` when given (a restored
/// cluster still shows the Ready status it had when it stopped).
fn node_ready(node: &Node, since: Option<Timestamp>) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().any(|c| {
        c.type_ == "Ready"
            && c.status == "True"
            && since
                .is_none_or(|since| c.last_heartbeat_time.as_ref().is_some_and(|t| t.0 >= since))
    })
}

/// Asks `check` every second until it gives a value or `timeout` has passed; `check` answers
/// what it saw when the condition does not hold yet, for the timeout error.
async fn poll<T, F, Fut>(what: String, timeout: Duration, mut check: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            return Err(WaitError::Timeout {
                what,
                secs: timeout.as_secs(),
                last,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until exactly `expected` nodes are registered and every one is Ready.
pub async fn nodes_ready(
    client: &kube::Client,
    expected: usize,
    since: Option<Timestamp>,
    timeout: Duration,
) -> Result<Vec<NodeState>, WaitError> {
    let nodes: Api<Node> = Api::all(client.clone());
    poll(format!("{expected} Ready nodes"), timeout, || async {
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let states: Vec<NodeState> = list
            .items
            .iter()
            .map(|n| NodeState {
                name: n.metadata.name.clone().unwrap_or_default(),
                ready: node_ready(n, since),
            })
            .collect();
        if states.len() == expected && states.iter().all(|s| s.ready) {
            Ok(states)
        } else {
            Err(describe_nodes(&states))
        }
    })
    .await
}

fn describe_nodes(states: &[NodeState]) -> String {
    if states.is_empty() {
        return "no nodes".to_owned();
    }
    let parts: Vec<String> = states
        .iter()
        .map(|s| format!("{} {}", s.name, if s.ready { "Ready" } else { "NotReady" }))
        .collect();
    parts.join(", ")
}

/// Waits until a deployment has all its replicas updated and available.
pub async fn deployment_available(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), WaitError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    poll(
        format!("deployment {namespace}/{name}"),
        timeout,
        || async {
            let deployment = deployments.get_opt(name).await.map_err(|e| e.to_string())?;
            let deployment = deployment.ok_or_else(|| "not created yet".to_owned())?;
            let wanted = deployment.spec.replicas.unwrap_or(1);
            let status = deployment.status.unwrap_or_default();
            let available = status.available_replicas.unwrap_or(0);
            let updated = status.updated_replicas.unwrap_or(0);
            if available >= wanted && updated >= wanted {
                Ok(())
            } else {
                Err(format!("{available}/{wanted} available, {updated} updated"))
            }
        },
    )
    .await
}

/// Whether a pod is Ready, counting only a readiness reached after `since` when given.
fn pod_ready(pod: &Pod, since: Option<Timestamp>) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().any(|c| {
        c.type_ == "Ready"
            && c.status == "True"
            && since.is_none_or(|since| {
                c.last_transition_time
                    .as_ref()
                    .is_some_and(|t| t.0 >= since)
            })
    })
}

/// Waits until at least one pod matches `selector` and every matching pod is Ready (freshly,
/// after `since`, when given).
pub async fn pods_ready(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    since: Option<Timestamp>,
    timeout: Duration,
) -> Result<(), WaitError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(selector);
    poll(
        format!("pods {selector} in {namespace}"),
        timeout,
        || async {
            let list = pods.list(&params).await.map_err(|e| e.to_string())?;
            let ready = list.items.iter().filter(|p| pod_ready(p, since)).count();
            if ready > 0 && ready == list.items.len() {
                Ok(())
            } else {
                Err(format!("{ready}/{} pods Ready", list.items.len()))
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn node(status: &str, heartbeat: i64) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    last_heartbeat_time: Some(Time(Timestamp::from_second(heartbeat).unwrap())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn readiness_can_require_a_fresh_report() {
        let since = Timestamp::from_second(1_000).unwrap();
        assert!(node_ready(&node("True", 900), None));
        assert!(!node_ready(&node("True", 900), Some(since)), "stale report");
        assert!(node_ready(&node("True", 1_100), Some(since)));
        assert!(!node_ready(&node("False", 1_100), Some(since)));
    }
}
