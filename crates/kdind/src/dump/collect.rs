//! Gathering a cluster's state into dump files: what each node runs and logs, and what the
//! cluster's API says.
//!
//! Every command runs where the thing it looks at lives (in the node, through the engine), and
//! every failure becomes the content of its file: a dump of a sick cluster is the one that
//! matters, so nothing stops it early.

use futures_util::future::join_all;

use super::format::{DumpFile, redact};
use crate::cluster::lifecycle::{ClusterError, cluster_labels};
use crate::cluster::naming::ClusterName;
use crate::node::Node;
use crate::provider::{ContainerInfo, Provider};

/// Commands whose output describes a node, and the file each goes to.
const NODE_COMMANDS: &[(&str, &[&str])] = &[
    (
        "kubelet.status",
        &["systemctl", "status", "--no-pager", "--full", "kubelet"],
    ),
    (
        "kubelet.log",
        &["journalctl", "--no-pager", "--unit", "kubelet"],
    ),
    (
        "containerd.status",
        &["systemctl", "status", "--no-pager", "--full", "containerd"],
    ),
    (
        "containerd.log",
        &["journalctl", "--no-pager", "--unit", "containerd"],
    ),
    ("ps.txt", &["ps", "auxww"]),
    ("containers.txt", &["crictl", "ps", "--all"]),
    ("ip-addr.txt", &["ip", "address"]),
    ("ip-route.txt", &["ip", "route"]),
];

/// Listings of the whole cluster, run with the control plane's admin credentials.
const CLUSTER_COMMANDS: &[(&str, &[&str])] = &[
    (
        "get-all.txt",
        &["get", "all", "--all-namespaces", "-o", "wide"],
    ),
    ("describe-all.txt", &["describe", "all", "--all-namespaces"]),
    ("nodes.txt", &["get", "nodes", "-o", "wide"]),
];

/// Collects the dump of a cluster. Only a cluster with no node at all is an error; anything
/// that fails on the way is written into the dump instead.
pub async fn collect<P: Provider>(
    provider: &P,
    name: &ClusterName,
) -> Result<Vec<DumpFile>, ClusterError> {
    let containers = provider.list(&cluster_labels(name)).await?;
    if containers.is_empty() {
        return Err(ClusterError::NoCluster(name.context()));
    }

    let per_node = join_all(containers.iter().map(|c| node_files(provider, c))).await;
    let mut files: Vec<DumpFile> = per_node.into_iter().flatten().collect();
    files.extend(cluster_files(provider, name, &containers).await);
    for file in &mut files {
        file.content = redact(&String::from_utf8_lossy(&file.content)).into_bytes();
    }
    Ok(files)
}

fn file(name: String, content: impl Into<Vec<u8>>) -> DumpFile {
    DumpFile {
        name,
        content: content.into(),
    }
}

/// Runs a command in a node; its output, or why there is none.
async fn output_of<P: Provider>(node: &Node<'_, P>, cmd: &[&str]) -> Vec<u8> {
    match node.exec_output(cmd).await {
        Ok(output) if output.success() => output.stdout,
        Ok(output) => format!(
            "`{}` exited with {}:\n{}",
            cmd.join(" "),
            output.exit_code,
            output.combined()
        )
        .into_bytes(),
        Err(err) => format!("`{}` could not run: {err}\n", cmd.join(" ")).into_bytes(),
    }
}

async fn node_files<P: Provider>(provider: &P, container: &ContainerInfo) -> Vec<DumpFile> {
    let node_name = &container.name;
    if !container.running {
        let why = format!("node {node_name} is not running; nothing could be collected from it\n");
        return vec![file(format!("{node_name}/unreachable.txt"), why)];
    }

    let node = Node::attach(provider, node_name);
    let outputs = join_all(NODE_COMMANDS.iter().map(|(_, cmd)| output_of(&node, cmd))).await;
    let mut files: Vec<DumpFile> = NODE_COMMANDS
        .iter()
        .zip(outputs)
        .map(|((name, _), content)| file(format!("{node_name}/{name}"), content))
        .collect();
    files.extend(container_logs(&node).await);
    files
}

/// The logs of every container the node's containerd knows, running or exited.
async fn container_logs<P: Provider>(node: &Node<'_, P>) -> Vec<DumpFile> {
    let listing = output_of(node, &["crictl", "ps", "--all", "--output", "json"]).await;
    let Ok(listing) = serde_json::from_slice::<serde_json::Value>(&listing) else {
        let why = String::from_utf8_lossy(&listing).into_owned();
        return vec![file(format!("{}/pods/unlisted.txt", node.name()), why)];
    };

    let containers = listing["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let logs = containers.iter().map(|container| async move {
        let id = container["id"].as_str().unwrap_or_default();
        let labels = &container["labels"];
        let namespace = labels["io.kubernetes.pod.namespace"]
            .as_str()
            .unwrap_or("unknown");
        let pod = labels["io.kubernetes.pod.name"]
            .as_str()
            .unwrap_or("unknown");
        let name = container["metadata"]["name"].as_str().unwrap_or("unknown");
        let attempt = container["metadata"]["attempt"].as_u64().unwrap_or(0);
        let path = format!(
            "{}/pods/{namespace}_{pod}/{name}-{attempt}.log",
            node.name()
        );
        file(path, output_of(node, &["crictl", "logs", id]).await)
    });
    join_all(logs).await
}

async fn cluster_files<P: Provider>(
    provider: &P,
    name: &ClusterName,
    containers: &[ContainerInfo],
) -> Vec<DumpFile> {
    let control_plane = name.control_plane();
    let running = containers
        .iter()
        .any(|c| c.name == control_plane && c.running);
    if !running {
        let why =
            format!("the control plane {control_plane} is not running: no cluster listings\n");
        return vec![file("cluster/unreachable.txt".into(), why)];
    }

    let node = Node::attach(provider, &control_plane);
    let runs = CLUSTER_COMMANDS.iter().map(|(_, args)| {
        let mut cmd = vec!["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];
        cmd.extend_from_slice(args);
        let node = &node;
        async move { output_of(node, &cmd).await }
    });
    let outputs = join_all(runs).await;
    CLUSTER_COMMANDS
        .iter()
        .zip(outputs)
        .map(|((name, _), content)| file(format!("cluster/{name}"), content))
        .collect()
}
