//! Bad input costs nothing: each invalid setting given to `kdind` is refused with a message that
//! names the input and what would be accepted, and the engine's containers, volumes and
//! networks and the kubeconfig file are the same afterwards as before.
//!
//! Needs a running Docker engine (`scripts/start-docker` starts one) and the default node image,
//! which the test builds (or finds built).

use std::collections::BTreeMap;
use std::process::Command;

use kdind::cluster::lifecycle;
use kdind::cluster::naming::ClusterName;
use kdind::image::{self, BuildOptions, KubeVersion};
use kdind::progress::Silent;
use kdind::provider::{Docker, NetworkSpec, Provider};

const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://192.0.2.1:6443
  name: other
contexts:
- context:
    cluster: other
    user: other
  name: other
current-context: other
users:
- name: other
  user:
    token: not-a-real-token
";

/// Held by each test while it compares the engine's state before and after, so that the tests
/// of this file do not see each other's clusters when run in parallel.
static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The engine, with the default node image built (or found built).
async fn engine_with_node_image() -> Docker {
    let docker = match Docker::connect().await {
        Ok(docker) => docker,
        Err(err) => panic!("this test needs a Docker engine (scripts/start-docker): {err}"),
    };
    let version = KubeVersion::parse(image::DEFAULT_KUBE_VERSION).unwrap();
    image::build_node_image(&docker, &BuildOptions::new(version), &Silent)
        .await
        .unwrap_or_else(|err| panic!("node image build failed: {err:#?}"));
    docker
}

/// What the engine holds: container names and states, volume names, networks and subnets.
async fn engine_state(docker: &Docker) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for container in docker.list(&BTreeMap::new()).await.unwrap() {
        let status = format!("running={} paused={}", container.running, container.paused);
        state.insert(format!("container {}", container.name), status);
    }
    for volume in docker.volumes(&BTreeMap::new()).await.unwrap() {
        state.insert(format!("volume {volume}"), String::new());
    }
    for network in docker.networks().await.unwrap() {
        state.insert(
            format!("network {}", network.name),
            network.subnets.join(","),
        );
    }
    state
}

/// One invalid input: the command line after `kdind`, its environment, an optional config file
/// and the words the error must hold.
struct Case {
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    file: Option<&'static str>,
    expect: &'static [&'static str],
}

const fn env(
    env: &'static [(&'static str, &'static str)],
    expect: &'static [&'static str],
) -> Case {
    Case {
        args: &["up"],
        env,
        file: None,
        expect,
    }
}

const fn args(args: &'static [&'static str], expect: &'static [&'static str]) -> Case {
    Case {
        args,
        env: &[],
        file: None,
        expect,
    }
}

const fn file(text: &'static str, expect: &'static [&'static str]) -> Case {
    Case {
        args: &["up", "--config", "@FILE"],
        env: &[],
        file: Some(text),
        expect,
    }
}

const CASES: &[Case] = &[
    // Worker counts.
    env(
        &[("NUM_NODES", "two")],
        &["NUM_NODES=\"two\"", "whole number"],
    ),
    env(
        &[("NUM_NODES", "-1")],
        &["NUM_NODES=\"-1\"", "whole number"],
    ),
    env(&[("NUM_NODES", "300")], &["NUM_NODES", "fewer workers"]),
    args(&["up", "--num-nodes", "x"], &["--num-nodes"]),
    // Cluster IDs and labels.
    env(
        &[("CLUSTER_ID", "255")],
        &["CLUSTER_ID 255 is out of range", "1 to 254"],
    ),
    env(
        &[("CLUSTER_ID", "1000")],
        &["CLUSTER_ID 1000 is out of range"],
    ),
    env(
        &[("CLUSTER_ID", "abc")],
        &["CLUSTER_ID=\"abc\"", "1 to 254"],
    ),
    args(
        &["up", "--cluster-id", "300"],
        &["--cluster-id 300 is out of range"],
    ),
    env(
        &[("DIND_LABEL", "Third")],
        &["DIND_LABEL \"Third\"", "lower-case letters"],
    ),
    env(
        &[("DIND_LABEL", "a_b")],
        &["DIND_LABEL \"a_b\"", "lower-case letters"],
    ),
    env(
        &[("DIND_LABEL", "-x")],
        &["DIND_LABEL \"-x\"", "starting and ending"],
    ),
    env(&[("DIND_LABEL", "a b")], &["DIND_LABEL \"a b\""]),
    env(
        &[(
            "DIND_LABEL",
            "a-label-that-is-far-too-long-to-fit-into-a-host-name-x",
        )],
        &["DIND_LABEL", "at most 50 characters"],
    ),
    args(&["up", "--label", "x.y"], &["--label \"x.y\""]),
    env(
        &[("DIND_LABEL", "cluster-20")],
        &["DIND_LABEL \"cluster-20\"", "CLUSTER_ID"],
    ),
    // Address families and CNI plugins.
    env(
        &[("IP_MODE", "ipv5")],
        &["IP_MODE \"ipv5\"", "ipv4, ipv6 or dual-stack"],
    ),
    env(
        &[("IP_MODE", "ipv6"), ("MGMT_CIDRS", "10.192.0.0/24")],
        &[
            "MGMT_CIDRS",
            "is IPv4, but the cluster is IPv6-only",
            "fd00:20::/64",
        ],
    ),
    env(
        &[("IP_MODE", "ipv6"), ("SERVICE_CIDR", "fd00:30::/64")],
        &["SERVICE_CIDR", "/108 or longer"],
    ),
    env(
        &[
            ("IP_MODE", "dual-stack"),
            ("POD_NETWORK_CIDR", "10.244.0.0/16"),
        ],
        &[
            "dual-stack",
            "POD_NETWORK_CIDR",
            "10.244.0.0/16,fd00:40::/64",
        ],
    ),
    env(
        &[
            ("IP_MODE", "dual-stack"),
            ("MGMT_CIDRS", "fd00:20::/64,fd00:21::/64"),
        ],
        &["one IPv4 and one IPv6", "MGMT_CIDRS"],
    ),
    env(
        &[("CNI_PLUGIN", "flannel")],
        &["CNI_PLUGIN \"flannel\"", "bridge"],
    ),
    env(
        &[("CNI_PLUGIN", "calico")],
        &["CNI_PLUGIN \"calico\"", "bridge"],
    ),
    // Networks.
    env(
        &[("MGMT_CIDRS", "10.192.0.0")],
        &["management network (MGMT_CIDRS)"],
    ),
    env(
        &[("MGMT_CIDRS", "10.192.0.0/33")],
        &["management network (MGMT_CIDRS)"],
    ),
    env(
        &[("MGMT_CIDRS", "fd00:20::/64")],
        &["MGMT_CIDRS", "is IPv6", "IPv4 CIDR"],
    ),
    env(
        &[("MGMT_CIDRS", "10.192.0.0/30")],
        &["MGMT_CIDRS", "fewer workers"],
    ),
    env(
        &[("MGMT_CIDRS", "10.192.0.0/24,10.193.0.0/24")],
        &["MGMT_CIDRS", "more than one CIDR"],
    ),
    env(
        &[("POD_NETWORK_CIDR", "banana")],
        &["pod network (POD_NETWORK_CIDR)"],
    ),
    env(
        &[("POD_NETWORK_CIDR", "10.244.0.0/24")],
        &["POD_NETWORK_CIDR", "fewer workers"],
    ),
    env(
        &[("POD_NETWORK_CIDR", "fd00:40::/64")],
        &["POD_NETWORK_CIDR", "is IPv6"],
    ),
    env(
        &[("POD_NETWORK_CIDR", "10.192.0.0/16")],
        &["MGMT_CIDRS", "overlaps", "POD_NETWORK_CIDR"],
    ),
    env(
        &[("SERVICE_CIDR", "172.0.0.0/8")],
        &["SERVICE_CIDR", "larger than the API server"],
    ),
    env(
        &[("SERVICE_CIDR", "10.96.0.0/8")],
        &["SERVICE_CIDR", "bits set past its prefix", "10.0.0.0/8"],
    ),
    env(
        &[("SERVICE_CIDR", "10.96.0.0/30")],
        &["SERVICE_CIDR", "too small"],
    ),
    env(
        &[("SERVICE_CIDR", "10.244.0.0/16")],
        &["SERVICE_CIDR", "overlaps"],
    ),
    env(
        &[("SERVICE_CIDR", "fd00:30::/112")],
        &["SERVICE_CIDR", "is IPv6"],
    ),
    // The API server's port and its forwarder.
    env(
        &[("APISERVER_PORT", "70000")],
        &["APISERVER_PORT 70000 is out of range"],
    ),
    env(
        &[("APISERVER_PORT", "0")],
        &["APISERVER_PORT 0 is out of range"],
    ),
    env(
        &[("APISERVER_PORT", "https")],
        &["APISERVER_PORT=\"https\"", "port number"],
    ),
    env(
        &[("APISERVER_PORT", "@BUSY_PORT")],
        &["is in use", "APISERVER_PORT"],
    ),
    env(
        &[("DIND_PORT_FORWARDER", "/nonexistent/forward")],
        &["DIND_PORT_FORWARDER \"/nonexistent/forward\"", "executable"],
    ),
    env(
        &[("DIND_PORT_FORWARDER", "kdind-test-no-such-forwarder")],
        &["DIND_PORT_FORWARDER", "$PATH"],
    ),
    env(
        &[("DIND_PORT_FORWARDER", "@PLAIN_FILE")],
        &["DIND_PORT_FORWARDER", "executable"],
    ),
    // Images.
    env(
        &[("DIND_IMAGE", "kdind/node:no-such-version")],
        &["no-such-version", "does not exist"],
    ),
    env(
        &[("DIND_IMAGE", "not an image")],
        &["DIND_IMAGE \"not an image\""],
    ),
    // Feature gates and component flags.
    env(&[("FEATURE_GATES", "Foo")], &["FEATURE_GATES", "Name=true"]),
    env(
        &[("FEATURE_GATES", "Foo=maybe")],
        &["FEATURE_GATES", "Name=true"],
    ),
    env(
        &[("KUBELET_FEATURE_GATES", "A-b=true")],
        &["KUBELET_FEATURE_GATES", "Name=true"],
    ),
    env(&[("APISERVER_", "x")], &["APISERVER_", "names no flag"]),
    args(
        &["up", "--apiserver-arg", "v"],
        &["--apiserver-arg \"v\"", "flag-name=value"],
    ),
    args(&["up", "--wait", "0"], &["--wait 0 is out of range"]),
    // Config files.
    file(
        "numNode: 3\n",
        &[
            "not a valid kdind configuration",
            "unknown field",
            "numNodes",
        ],
    ),
    file(
        "numNodes: three\n",
        &["not a valid kdind configuration", "numNodes"],
    ),
    file("{ numNodes: 3\n", &["not a valid kdind configuration"]),
    file("- numNodes\n", &["not a valid kdind configuration"]),
    file("label: Bad\n", &["label (in ", "lower-case letters"]),
    file(
        "featureGates: {A-b: true}\n",
        &["featureGates (in ", "letters and digits"],
    ),
    file(
        "apiserverPort: 99999\n",
        &["apiserverPort (in ", "out of range"],
    ),
    file("cniPlugin: weave\n", &["cniPlugin (in ", "bridge"]),
    args(
        &["up", "--config", "/nonexistent/kdind.yaml"],
        &["cannot read config file"],
    ),
    // Kubeconfig files kdind cannot write its context into.
    env(
        &[("KUBECONFIG", "@BROKEN_KUBECONFIG")],
        &["cannot take the cluster's context", "is not a kubeconfig"],
    ),
    env(
        &[("KUBECONFIG", "@LIST_KUBECONFIG")],
        &[
            "cannot take the cluster's context",
            "KUBECONFIG or --kubeconfig",
        ],
    ),
    args(
        &["up", "--kubeconfig", "@PLAIN_FILE/config"],
        &["cannot take the cluster's context", "is not a directory"],
    ),
    // Images and archives that are not there.
    args(
        &["copy-image", "kdind-test/no-such-image:1"],
        &["\"kdind-test/no-such-image:1\" is not in the Docker engine"],
    ),
    args(
        &["load", "docker-image", "kdind-test/no-such-image:1"],
        &["is not in the Docker engine", "pulls nothing"],
    ),
    args(
        &["load", "image-archive", "/nonexistent/images.tar"],
        &["/nonexistent/images.tar does not exist"],
    ),
    args(&["copy-image"], &["IMAGE"]),
    args(
        &["export", "kubeconfig", "--cluster-id", "99"],
        &["no cluster dind-cluster-99"],
    ),
    // Clusters that are not there, or taken.
    env(
        &[("CLUSTER_ID", "77")],
        &["overlaps Docker network", "kdind-test-taken"],
    ),
    args(
        &["join", "--cluster-id", "99"],
        &["no cluster dind-cluster-99"],
    ),
    args(
        &["down", "--cluster-id", "99"],
        &["no cluster dind-cluster-99"],
    ),
    env(
        &[("CLUSTER_ID", "98")],
        &["another kdind command", "dind-cluster-98"],
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn docker_bad_input_is_refused_and_leaves_nothing() {
    let docker = engine_with_node_image().await;
    let _engine = ENGINE.lock().await;

    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = scratch.path().join("kubeconfig");
    std::fs::write(&kubeconfig, KUBECONFIG).unwrap();
    let plain_file = scratch.path().join("not-executable");
    std::fs::write(&plain_file, "#!/bin/sh\n").unwrap();
    let broken_kubeconfig = scratch.path().join("broken-kubeconfig");
    std::fs::write(&broken_kubeconfig, "clusters: [\n").unwrap();
    let list_kubeconfig = scratch.path().join("list-kubeconfig");
    std::fs::write(&list_kubeconfig, "- a\n- b\n").unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();

    // A network holding cluster 77's management subnet, and cluster 98 locked by this process.
    let taken = NetworkSpec {
        name: "kdind-test-taken".into(),
        subnets: vec![("10.192.77.0/24".into(), "10.192.77.1".into())],
        labels: BTreeMap::new(),
    };
    docker.remove_network(&taken.name).await.unwrap();
    docker.create_network(&taken).await.unwrap();
    let lock = lifecycle::lock(&ClusterName {
        id: 98,
        label: None,
    })
    .unwrap();

    let before = engine_state(&docker).await;
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let config = scratch.path().join(format!("case-{i}.yaml"));
        if let Some(text) = case.file {
            std::fs::write(&config, text).unwrap();
        }
        let substitute = |text: &str| match text {
            "@FILE" => config.display().to_string(),
            "@BROKEN_KUBECONFIG" => broken_kubeconfig.display().to_string(),
            "@LIST_KUBECONFIG" => list_kubeconfig.display().to_string(),
            "@PLAIN_FILE/config" => plain_file.join("config").display().to_string(),
            "@BUSY_PORT" => busy_port.clone(),
            "@PLAIN_FILE" => plain_file.display().to_string(),
            other => other.to_owned(),
        };
        let mut command = kdind_command(scratch.path(), &kubeconfig);
        command.args(case.args.iter().map(|a| substitute(a)));
        for (key, value) in case.env {
            command.env(key, substitute(value));
        }
        let output = command.output().expect("kdind runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let described = format!("case {i} ({:?} {:?})", case.args, case.env);
        if output.status.success() {
            failures.push(format!("{described}: accepted\n{stderr}"));
        } else if let Some(missing) = case.expect.iter().find(|e| !stderr.contains(**e)) {
            failures.push(format!("{described}: error lacks {missing:?}:\n{stderr}"));
        }
        if std::fs::read_to_string(&kubeconfig).unwrap() != KUBECONFIG {
            failures.push(format!("{described}: changed the kubeconfig file"));
            std::fs::write(&kubeconfig, KUBECONFIG).unwrap();
        }
        let after = engine_state(&docker).await;
        if after != before {
            failures.push(format!(
                "{described}: changed the engine:\n before {before:?}\n after {after:?}"
            ));
        }
    }
    drop(lock);
    docker.remove_network(&taken.name).await.unwrap();
    drop(busy);

    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases went wrong:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

#[test]
fn cases_use_known_markers() {
    // The loop substitutes these markers; a typo would silently test something else.
    for case in CASES {
        for arg in case.args.iter().chain(case.env.iter().map(|(_, v)| v)) {
            if let Some(marker) = arg.strip_prefix('@') {
                assert!(
                    [
                        "FILE",
                        "BUSY_PORT",
                        "PLAIN_FILE",
                        "PLAIN_FILE/config",
                        "BROKEN_KUBECONFIG",
                        "LIST_KUBECONFIG"
                    ]
                    .contains(&marker),
                    "unknown marker {arg}"
                );
            }
        }
    }
}

/// `kdind` with a clean environment: the test's home and kubeconfig, the shared build cache,
/// plain progress lines, its output piped.
fn kdind_command(home: &std::path::Path, kubeconfig: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kdind"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CI", "true")
        .env("KUBECONFIG", kubeconfig)
        .env("KDIND_CACHE_DIR", image::cache::root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(host) = std::env::var_os("DOCKER_HOST") {
        command.env("DOCKER_HOST", host);
    }
    command
}

/// A new cluster's `up` that fails late (its port forwarder fails) or is stopped by SIGTERM in
/// the middle removes what it made and puts the kubeconfig back as it was, current context
/// included.
#[tokio::test(flavor = "multi_thread")]
async fn docker_failed_or_terminated_up_leaves_nothing() {
    use std::io::{BufRead, BufReader};

    let docker = engine_with_node_image().await;
    let _engine = ENGINE.lock().await;
    let name = ClusterName {
        id: 97,
        label: None,
    };
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = scratch.path().join("kubeconfig");
    lifecycle::clean(&docker, &name, Some(kubeconfig.clone()), &Silent)
        .await
        .unwrap();
    std::fs::write(&kubeconfig, KUBECONFIG).unwrap();
    let before = engine_state(&docker).await;

    // The forwarder runs once the cluster answers, after its context is written.
    let output = kdind_command(scratch.path(), &kubeconfig)
        .args(["up", "--cluster-id", "97", "--num-nodes", "1"])
        .env("DIND_PORT_FORWARDER", "false")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("Writing kubeconfig context"), "{stderr}");
    assert!(stderr.contains("port forwarder"), "{stderr}");
    let failed_kubeconfig = std::fs::read_to_string(&kubeconfig).unwrap();
    let failed_state = engine_state(&docker).await;

    // SIGTERM while the nodes boot.
    let mut child = kdind_command(scratch.path(), &kubeconfig)
        .args(["up", "--cluster-id", "97", "--num-nodes", "1"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let booting = line.contains("Connecting the pod network");
        seen.push(line);
        if booting {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    seen.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    let seen = seen.join("\n");
    let terminated_state = engine_state(&docker).await;
    let terminated_kubeconfig = std::fs::read_to_string(&kubeconfig).unwrap();
    lifecycle::clean(&docker, &name, Some(kubeconfig.clone()), &Silent)
        .await
        .unwrap();

    let parse = |text: &str| serde_norway::from_str::<serde_norway::Value>(text).unwrap();
    assert_eq!(parse(&failed_kubeconfig), parse(KUBECONFIG));
    assert_eq!(failed_state, before, "after the failed forwarder");
    assert!(!status.success(), "{seen}");
    assert!(
        seen.contains("interrupted; what was made so far has been removed"),
        "{seen}"
    );
    assert_eq!(terminated_state, before, "after SIGTERM");
    assert_eq!(parse(&terminated_kubeconfig), parse(KUBECONFIG));
}
