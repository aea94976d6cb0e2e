//! Three clusters side by side, made through the `kdind` command as a user would: the default
//! one, `CLUSTER_ID=20` and a labelled one from a config file. Each answers on its own context;
//! `join` adds a node to a running cluster; cleaning one leaves the other two Ready.
//!
//! Needs a running Docker engine (`scripts/start-docker` starts one) and the default node image,
//! which the test builds (or finds built).

use std::path::{Path, PathBuf};
use std::process::Command;

use kdind::cluster::lifecycle;
use kdind::cluster::naming::ClusterName;
use kdind::image::{self, BuildOptions, KubeVersion};
use kdind::node::Node;
use kdind::progress::Silent;
use kdind::provider::{Docker, ImageConfig, Provider};

/// Runs `kdind` with `args` and `env` on the test's kubeconfig; returns stdout and stderr.
fn kdind(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kdind"));
    command.args(args).env("KUBECONFIG", kubeconfig);
    for name in [
        "NUM_NODES",
        "CLUSTER_ID",
        "DIND_LABEL",
        "KDIND_CONFIG",
        "DIND_PORT_FORWARDER",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("kdind runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("kdind {}: {text}", args.join(" ")))
    }
}

fn kdind_ok(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    kdind(kubeconfig, args, env).unwrap_or_else(|err| panic!("{err}"))
}

/// `kubectl --context CONTEXT ARGS` on the test's kubeconfig.
fn kubectl(bin: &Path, kubeconfig: &Path, context: &str, args: &[&str]) -> String {
    let output = Command::new(bin.join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--context", context])
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl --context {context} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The names of a cluster's nodes, after waiting until all of them are Ready.
fn ready_nodes(bin: &Path, kubeconfig: &Path, context: &str) -> Vec<String> {
    let wait = [
        "wait",
        "--for=condition=Ready",
        "nodes",
        "--all",
        "--timeout=120s",
    ];
    kubectl(bin, kubeconfig, context, &wait);
    let names = kubectl(bin, kubeconfig, context, &["get", "nodes", "-o", "name"]);
    let mut names: Vec<String> = names
        .lines()
        .map(|l| l.trim_start_matches("node/").to_owned())
        .collect();
    names.sort();
    names
}

/// An image made in the engine by the test, copied into nodes.
const HOST_IMAGE: &str = "kdind-test/busybox:parallel";

/// Runs a pod of [`HOST_IMAGE`] on `node`, never pulling, and waits until it is Ready.
fn run_pod(bin: &Path, kubeconfig: &Path, context: &str, pod: &str, node: &str) {
    let overrides = format!(r#"{{"spec":{{"nodeName":"{node}"}}}}"#);
    let run = [
        "run",
        pod,
        "--image",
        HOST_IMAGE,
        "--image-pull-policy=Never",
        "--overrides",
        &overrides,
        "--",
        "sleep",
        "3600",
    ];
    kubectl(bin, kubeconfig, context, &run);
    let wait = format!("pod/{pod}");
    kubectl(
        bin,
        kubeconfig,
        context,
        &["wait", "--for=condition=Ready", &wait, "--timeout=90s"],
    );
}

fn clusters() -> [ClusterName; 3] {
    [
        ClusterName::default(),
        ClusterName {
            id: 20,
            label: None,
        },
        ClusterName {
            id: 0,
            label: Some("third".into()),
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_three_clusters_side_by_side() {
    let docker = match Docker::connect().await {
        Ok(docker) => docker,
        Err(err) => panic!("this test needs a Docker engine (scripts/start-docker): {err}"),
    };
    let version = KubeVersion::parse(image::DEFAULT_KUBE_VERSION).unwrap();
    let built = image::build_node_image(&docker, &BuildOptions::new(version), &Silent)
        .await
        .unwrap_or_else(|err| panic!("node image build failed: {err:#?}"));
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = scratch.path().join("kubeconfig");
    for name in clusters() {
        lifecycle::clean(&docker, &name, Some(kubeconfig.clone()), &Silent)
            .await
            .unwrap();
    }

    // The scenario runs as a task so that a failed assertion still reaches the clean-up below.
    let scenario = tokio::spawn(scenario(
        docker.clone(),
        built.kubernetes_bin.clone(),
        kubeconfig.clone(),
        scratch.path().to_owned(),
    ));
    let outcome = scenario.await;
    let mut cleanup = Ok(());
    for name in clusters() {
        let result = lifecycle::clean(&docker, &name, Some(kubeconfig.clone()), &Silent).await;
        cleanup = cleanup.and(result);
    }
    cleanup = cleanup.and(docker.remove_image(HOST_IMAGE).await.map_err(Into::into));
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
    cleanup.unwrap();
}

async fn scenario(docker: Docker, bin: PathBuf, kubeconfig: PathBuf, scratch: PathBuf) {
    let kc = kubeconfig.as_path();
    let forwarded = scratch.join("forwarded-port");
    let forwarder = scratch.join("forward");
    std::fs::write(
        &forwarder,
        format!("#!/bin/sh\necho \"$1\" > '{}'\n", forwarded.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&forwarder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let third_config = scratch.join("third.yaml");
    std::fs::write(&third_config, "label: third\nnumNodes: 1\n").unwrap();

    // Three clusters: by environment, by environment with an ID, by config file.
    kdind_ok(kc, &["up"], &[("NUM_NODES", "1")]);
    let forwarder_text = forwarder.display().to_string();
    kdind_ok(
        kc,
        &["up"],
        &[
            ("CLUSTER_ID", "20"),
            ("NUM_NODES", "1"),
            ("DIND_PORT_FORWARDER", &forwarder_text),
        ],
    );
    let third_text = third_config.display().to_string();
    kdind_ok(kc, &["up", "--config", &third_text], &[]);

    let listed = kdind_ok(kc, &["get", "clusters"], &[]);
    for context in ["dind", "dind-cluster-20", "dind-third"] {
        assert!(
            listed
                .lines()
                .any(|l| l.split('\t').next() == Some(context)),
            "{context} in:\n{listed}"
        );
    }
    let expected = [
        (
            "dind",
            ["kube-master", "kube-node-1"],
            "kubeadm-dind-net",
            "10.192.0.2",
        ),
        (
            "dind-cluster-20",
            ["kube-master-cluster-20", "kube-node-1-cluster-20"],
            "kubeadm-dind-net-cluster-20",
            "10.192.20.2",
        ),
        // A label without an ID draws the lowest free one: 1.
        (
            "dind-third",
            ["kube-master-third", "kube-node-1-third"],
            "kubeadm-dind-net-third",
            "10.192.1.2",
        ),
    ];
    for (context, nodes, network, master_ip) in expected {
        assert_eq!(ready_nodes(&bin, kc, context), nodes, "{context}");
        let master = docker.inspect(nodes[0]).await.unwrap();
        assert_eq!(
            master.addresses[network].0.as_deref(),
            Some(master_ip),
            "{context}"
        );
    }

    // The forwarder got cluster 20's API server port.
    let port = kdind_ok(kc, &["apiserver-port"], &[("CLUSTER_ID", "20")]);
    let told = std::fs::read_to_string(&forwarded).expect("the forwarder ran");
    assert_eq!(told.trim(), port.trim());

    // The effective settings say where each came from.
    let shown = kdind_ok(
        kc,
        &["config", "--config", &third_text],
        &[("CLUSTER_ID", "20")],
    );
    assert!(shown.contains("clusterId: 20  # CLUSTER_ID"), "{shown}");
    assert!(shown.contains("label: third  # file "), "{shown}");
    assert!(shown.contains("numNodes: 1  # file "), "{shown}");
    assert!(
        shown.contains("mgmtCidrs: 10.192.20.0/24  # default"),
        "{shown}"
    );

    // `init` forms clusters only; the default one exists.
    let refused = kdind(kc, &["init"], &[]).unwrap_err();
    assert!(refused.contains("exists already"), "{refused}");

    // `join` adds a third node to cluster 20, with an argument for kubeadm.
    kdind_ok(kc, &["join", "--cluster-id", "20", "--", "--v=2"], &[]);
    let nodes = ready_nodes(&bin, kc, "dind-cluster-20");
    assert_eq!(
        nodes,
        [
            "kube-master-cluster-20",
            "kube-node-1-cluster-20",
            "kube-node-2-cluster-20"
        ]
    );
    let joined = docker.inspect("kube-node-2-cluster-20").await.unwrap();
    assert_eq!(
        joined.addresses["kubeadm-dind-net-cluster-20"].0.as_deref(),
        Some("10.192.20.4")
    );
    // Every node routes to the new node's pod subnet, and the new node to the others'.
    let master = Node::attach(&docker, "kube-master-cluster-20");
    let routes = master.exec(&["ip", "route"]).await.unwrap();
    assert!(routes.contains("10.244.3.0/24 via 10.192.20.4"), "{routes}");
    let new_node = Node::attach(&docker, "kube-node-2-cluster-20");
    let routes = new_node.exec(&["ip", "route"]).await.unwrap();
    assert!(routes.contains("10.244.1.0/24 via 10.192.20.2"), "{routes}");

    // An image of the engine reaches every node of cluster 20, the joined one too, and a pod
    // runs it there without pulling.
    let rootfs = scratch.join("busybox-rootfs.tar");
    let packed = Command::new("tar")
        .args(["-C", "/", "-cf"])
        .arg(&rootfs)
        .arg("bin/busybox")
        .status()
        .unwrap();
    assert!(packed.success(), "tar of /bin/busybox (busybox-static)");
    let config = ImageConfig {
        entrypoint: vec!["/bin/busybox".into()],
        ..ImageConfig::default()
    };
    docker
        .import_rootfs(&rootfs, HOST_IMAGE, &config)
        .await
        .unwrap();
    let loaded = kdind_ok(kc, &["copy-image", HOST_IMAGE, "--cluster-id", "20"], &[]);
    assert!(loaded.contains("kube-node-2-cluster-20"), "{loaded}");
    run_pod(
        &bin,
        kc,
        "dind-cluster-20",
        "copied",
        "kube-node-2-cluster-20",
    );

    // An archive in `docker save` form reaches the default cluster's nodes.
    let archive = scratch.join("saved.tar");
    docker
        .save_images(&[HOST_IMAGE.to_owned()], &archive)
        .await
        .unwrap();
    let archive_text = archive.display().to_string();
    kdind_ok(kc, &["load", "image-archive", &archive_text], &[]);
    run_pod(&bin, kc, "dind", "archived", "kube-node-1");

    // `export kubeconfig` writes a context into another file, current there.
    let exported = scratch.join("exported");
    let exported_text = exported.display().to_string();
    kdind_ok(
        kc,
        &[
            "export",
            "kubeconfig",
            "--cluster-id",
            "20",
            "--kubeconfig",
            &exported_text,
        ],
        &[],
    );
    let nodes = kubectl(
        &bin,
        &exported,
        "dind-cluster-20",
        &["get", "nodes", "-o", "name"],
    );
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(text.contains("current-context: dind-cluster-20"), "{text}");

    // Down and up again keeps the joined node, with no NUM_NODES given.
    kdind_ok(kc, &["down", "--cluster-id", "20"], &[]);
    kdind_ok(kc, &["up", "--cluster-id", "20"], &[]);
    assert_eq!(ready_nodes(&bin, kc, "dind-cluster-20").len(), 3);

    // Cleaning the third leaves the other two Ready.
    kdind_ok(kc, &["clean"], &[("DIND_LABEL", "third")]);
    let left = docker
        .list(&lifecycle::cluster_labels(&clusters()[2]))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let config = std::fs::read_to_string(kc).unwrap();
    assert!(!config.contains("dind-third"), "{config}");
    assert_eq!(ready_nodes(&bin, kc, "dind").len(), 2);
    assert_eq!(ready_nodes(&bin, kc, "dind-cluster-20").len(), 3);
}
