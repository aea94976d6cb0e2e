//! `kdind up` end to end on the real engine: a default cluster of three nodes, pods talking
//! across nodes and through a Service name, kubectl from the host, `down` and a restore, and
//! `clean` leaving nothing behind; then IPv6-only and dual-stack clusters, their pods talking
//! in every family they have.
//!
//! Needs a running Docker engine (`scripts/start-docker` starts one) and `/bin/busybox`
//! (Debian's busybox-static), which the test pods run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kdind::cluster::lifecycle::{self, ClusterOptions, cluster_labels};
use kdind::cluster::naming::ClusterName;
use kdind::cluster::{load, wait};
use kdind::dump::{collect, format};
use kdind::image::oci::{self, Entry, Image};
use kdind::image::{self, BuildOptions, BuiltImage, KubeVersion};
use kdind::net::IpMode;
use kdind::progress::Silent;
use kdind::provider::{Docker, Provider};

const TEST_IMAGE: &str = "kdind.test/busybox:1";

async fn engine() -> Docker {
    match Docker::connect().await {
        Ok(docker) => docker,
        Err(err) => panic!("these tests need a Docker engine: {err}"),
    }
}

/// kubectl from the Kubernetes build, pointed at the test's kubeconfig and context.
struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    context: String,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--context")
            .arg(&self.context)
            .args(args)
            .output()
            .expect("kubectl runs");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Retries `args` until it succeeds; panics with the last failure after `timeout`.
    fn eventually(&self, args: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self.run(args) {
                Ok(out) => return out,
                Err(err) if Instant::now() >= deadline => panic!("{err}"),
                Err(_) => std::thread::sleep(Duration::from_secs(2)),
            }
        }
    }
}

/// An image holding a static busybox, written as an OCI archive.
fn busybox_archive(dir: &Path) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox is missing: install Debian's busybox-static"
    );
    let image = Image {
        reference: TEST_IMAGE.into(),
        layers: vec![vec![Entry::File {
            path: "/bin/busybox".into(),
            source: busybox.to_owned(),
            mode: 0o755,
        }]],
        entrypoint: vec!["/bin/busybox".into()],
        env: vec!["PATH=/bin".into()],
    };
    let path = dir.join("busybox.tar");
    oci::write_archive(&image, &path).unwrap();
    path
}

fn pod_manifest(name: &str, node: &str) -> String {
    let serve = format!(
        "mkdir -p /www && echo {name} > /www/index.html && \
         exec /bin/busybox httpd -f -p 8080 -h /www"
    );
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "tolerations": [{ "operator": "Exists" }],
            "containers": [{
                "name": "web",
                "image": TEST_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["/bin/busybox", "sh", "-c", serve],
                "ports": [{ "containerPort": 8080 }],
            }],
        },
    })
    .to_string()
}

/// Asks pod `from` for the page its web server at `host` serves. A plain HTTP request through
/// nc: busybox's own wget, linked statically against glibc, crashes resolving addresses here.
fn fetch(kubectl: &Kubectl, from: &str, host: &str) -> Result<String, String> {
    let request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'";
    let script = format!("{request} | /bin/busybox nc -w 5 {host} 8080 | /bin/busybox tail -n 1");
    let out = kubectl.run(&["exec", from, "--", "/bin/busybox", "sh", "-c", &script])?;
    Ok(out.trim().to_owned())
}

/// Every address of each pod: one per address family of the cluster.
fn pod_ips(kubectl: &Kubectl, pods: &[&str]) -> Vec<Vec<String>> {
    pods.iter()
        .map(|pod| {
            let ips = kubectl.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIPs[*].ip}"]);
            ips.split_whitespace().map(str::to_owned).collect()
        })
        .collect()
}

/// Every pod reaches every other pod by each of its IPs.
fn check_mesh(kubectl: &Kubectl, pods: &[&str]) {
    let ips = pod_ips(kubectl, pods);
    for from in pods {
        for (to, addresses) in pods.iter().zip(&ips) {
            if from == to {
                continue;
            }
            for ip in addresses {
                let answer = fetch(kubectl, from, ip);
                assert_eq!(answer.as_deref(), Ok(*to), "{from} -> {to} ({ip})");
            }
        }
    }
}

/// Asks `from` for the page behind `host` until it answers `expected`, for up to a minute (a
/// new Service takes a moment to reach kube-proxy and CoreDNS).
fn fetch_eventually(kubectl: &Kubectl, from: &str, host: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answer = fetch(kubectl, from, host);
    while answer.as_deref() != Ok(expected) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        answer = fetch(kubectl, from, host);
    }
    assert_eq!(answer.as_deref(), Ok(expected), "{from} -> {host}");
}

fn wait_pods_running(kubectl: &Kubectl, pods: &[&str]) {
    for pod in pods {
        kubectl.eventually(
            &[
                "wait",
                "--for=condition=Ready",
                &format!("pod/{pod}"),
                "--timeout=5s",
            ],
            Duration::from_secs(120),
        );
    }
}

/// The node image of the default Kubernetes version, built unless it is already.
async fn default_node_image(docker: &Docker) -> BuiltImage {
    let version = KubeVersion::parse(image::DEFAULT_KUBE_VERSION).unwrap();
    image::build_node_image(docker, &BuildOptions::new(version), &Silent)
        .await
        .unwrap_or_else(|err| panic!("node image build failed: {err:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_cluster_up_down_restore_reup_clean() {
    let docker = engine().await;
    let built = default_node_image(&docker).await;

    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = scratch.path().join("kube").join("config");
    // Another context in the file must come through untouched.
    std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
    std::fs::write(&kubeconfig, OTHER_KUBECONFIG).unwrap();

    // The scenario runs as a task so that a failed assertion still reaches the clean-up below.
    let name = ClusterName::default();
    let scenario = tokio::spawn(scenario(
        docker.clone(),
        built,
        kubeconfig.clone(),
        scratch.path().to_owned(),
    ));
    let outcome = scenario.await;
    let cleanup = lifecycle::clean(&docker, &name, Some(kubeconfig), &Silent).await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
    cleanup.unwrap();
}

async fn scenario(docker: Docker, built: BuiltImage, kubeconfig: PathBuf, scratch: PathBuf) {
    let name = ClusterName::default();
    let mut options = ClusterOptions::new(name.clone(), built.name.clone());
    options.kubeconfig = Some(kubeconfig.clone());
    lifecycle::clean(&docker, &name, Some(kubeconfig.clone()), &Silent)
        .await
        .unwrap();

    // Up with defaults: three Ready nodes on the classic addresses.
    let running = lifecycle::up(&docker, &options, &Silent).await.expect("up");
    assert!(!running.restored);
    let names: Vec<&str> = running.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["kube-master", "kube-node-1", "kube-node-2"]);
    assert!(running.nodes.iter().all(|n| n.ready));
    let master = docker.inspect("kube-master").await.unwrap();
    assert_eq!(
        master.addresses["kubeadm-dind-net"].0.as_deref(),
        Some("10.192.0.2")
    );

    let kubectl = Kubectl {
        binary: built.kubernetes_bin.join("kubectl"),
        kubeconfig: kubeconfig.clone(),
        context: "dind".into(),
    };
    let nodes = kubectl.ok(&["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    // CoreDNS is probed for readiness more often than kubeadm sets it, for quick restores.
    let period = kubectl.ok(&[
        "--namespace=kube-system",
        "get",
        "deployment",
        "coredns",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].readinessProbe.periodSeconds}",
    ]);
    assert_eq!(
        period.trim(),
        wait::COREDNS_READINESS_PERIOD_SECS.to_string()
    );
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        config.contains("name: other"),
        "other context kept:\n{config}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A pod on each node; each reaches the others across nodes, and a Service by name.
    let archive = busybox_archive(&scratch);
    load::load_archive(&docker, &name, &archive).await.unwrap();
    let pods = ["web-0", "web-1", "web-2"];
    for (pod, node) in pods
        .iter()
        .zip(["kube-master", "kube-node-1", "kube-node-2"])
    {
        let manifest = scratch.join(format!("{pod}.json"));
        std::fs::write(&manifest, pod_manifest(pod, node)).unwrap();
        kubectl.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    }
    wait_pods_running(&kubectl, &pods);
    check_mesh(&kubectl, &pods);
    kubectl.ok(&["expose", "pod", "web-2", "--name", "web", "--port", "8080"]);
    fetch_eventually(&kubectl, "web-1", "web.default.svc.cluster.local", "web-2");

    // What kdind tells of the running cluster, and a pause that the cluster survives.
    let clusters = lifecycle::clusters(&docker).await.unwrap();
    assert_eq!(clusters.get("dind").map(Vec::len), Some(3), "{clusters:?}");
    let port = lifecycle::apiserver_port(&docker, &name).await.unwrap();
    assert_eq!(port, running.apiserver_port);
    let admin = lifecycle::admin_kubeconfig(&docker, &name).await.unwrap();
    assert!(admin.contains(&format!("server: https://127.0.0.1:{port}")));
    let paused = lifecycle::set_paused(&docker, &name, true, &Silent)
        .await
        .unwrap();
    assert_eq!(paused.len(), 3);
    assert!(
        lifecycle::nodes(&docker, &name)
            .await
            .unwrap()
            .iter()
            .all(|n| n.paused)
    );
    lifecycle::set_paused(&docker, &name, false, &Silent)
        .await
        .unwrap();
    assert!(
        lifecycle::nodes(&docker, &name)
            .await
            .unwrap()
            .iter()
            .all(|n| !n.paused)
    );
    kubectl.eventually(
        &[
            "wait",
            "--for=condition=Ready",
            "nodes",
            "--all",
            "--timeout=5s",
        ],
        Duration::from_secs(60),
    );
    wait_pods_running(&kubectl, &pods);

    // Dumps, plain and encoded, split back into the same files.
    check_dumps(&docker, &name, &scratch).await;

    // Down keeps the state; up restores it without kubeadm, pods included.
    let stopped = lifecycle::down(&docker, &name, &Silent).await.unwrap();
    assert_eq!(stopped.len(), 3);
    for node in &stopped {
        assert!(
            !docker.inspect(node).await.unwrap().running,
            "{node} still running"
        );
    }
    let restored = lifecycle::up(&docker, &options, &Silent)
        .await
        .expect("restore");
    assert!(restored.restored);
    assert!(restored.nodes.iter().all(|n| n.ready));
    wait_pods_running(&kubectl, &pods);
    check_mesh(&kubectl, &pods);

    // Reup replaces every node container from the image and keeps the cluster: same nodes,
    // same certificates, the pods come back where they were.
    let ca_before = std::fs::read_to_string(&kubeconfig).unwrap();
    let reupped = lifecycle::reup(&docker, &options, &Silent)
        .await
        .expect("reup");
    assert!(reupped.nodes.iter().all(|n| n.ready));
    for node in ["kube-master", "kube-node-1", "kube-node-2"] {
        let info = docker.inspect(node).await.unwrap();
        assert!(info.running, "{node} runs after reup");
    }
    let ca_after = std::fs::read_to_string(&kubeconfig).unwrap();
    let ca = |text: &str| {
        text.lines()
            .find(|l| l.contains("certificate-authority-data"))
            .map(str::to_owned)
    };
    assert_eq!(
        ca(&ca_before),
        ca(&ca_after),
        "the cluster CA survives reup"
    );
    // Images loaded by hand live with containerd's images, which reup makes anew.
    load::load_archive(&docker, &name, &archive).await.unwrap();
    wait_pods_running(&kubectl, &pods);
    check_mesh(&kubectl, &pods);

    // Clean leaves nothing of the cluster: containers, volumes, network, context.
    lifecycle::clean(&docker, &name, Some(kubeconfig.clone()), &Silent)
        .await
        .unwrap();
    let labels = cluster_labels(&name);
    assert!(docker.list(&labels).await.unwrap().is_empty());
    assert!(docker.volumes(&labels).await.unwrap().is_empty());
    let networks = docker.networks().await.unwrap();
    assert!(!networks.iter().any(|n| n.name == "kubeadm-dind-net"));
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(!config.contains("dind"), "dind entries left:\n{config}");
    assert!(config.contains("name: other"));
}

/// Names and contents of the files under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

async fn check_dumps(docker: &Docker, name: &ClusterName, scratch: &Path) {
    let files = collect::collect(docker, name).await.unwrap();
    let mut text = Vec::new();
    format::write_dump(&files, &mut text).unwrap();

    let plain = scratch.join("plain");
    format::split_into(&format::parse_dump(&text).unwrap(), &plain).unwrap();
    let log = format!(
        "2026-12-03T10:00:00Z step 4 of 9\nunrelated output\n{}\nmore unrelated output\n",
        format::encode64(&text)
    );
    let encoded = scratch.join("encoded");
    let decoded = format::decode64(log.as_bytes()).unwrap();
    format::split_into(&format::parse_dump(&decoded).unwrap(), &encoded).unwrap();

    let (plain, encoded) = (tree(&plain), tree(&encoded));
    assert_eq!(
        plain, encoded,
        "split-dump and split-dump64 give the same files"
    );
    let kubelet = String::from_utf8_lossy(&plain["kube-node-1/kubelet.log"]).into_owned();
    assert!(kubelet.contains("kubelet"), "kubelet log: {kubelet:.200}");
    assert!(
        plain
            .keys()
            .any(|f| f.starts_with("kube-master/pods/kube-system_kube-apiserver"))
    );
    assert!(
        plain
            .keys()
            .any(|f| f.starts_with("kube-node-2/pods/default_web-2/"))
    );
    let listing = String::from_utf8_lossy(&plain["cluster/get-all.txt"]).into_owned();
    assert!(
        listing.contains("kube-system") && listing.contains("web-2"),
        "{listing:.400}"
    );
    let everything = String::from_utf8_lossy(&text).into_owned();
    assert!(
        !everything.contains("PRIVATE KEY-----\nMI"),
        "a private key leaked"
    );

    // A dump whose names climb out of the directory writes nothing.
    let evil = b"@@@ kube-master/ok.txt @@@\nfine\n@@@ ../../escaped.txt @@@\nbad\n";
    let target = scratch.join("evil");
    assert!(format::split_into(&format::parse_dump(evil).unwrap(), &target).is_err());
    assert!(!target.join("kube-master/ok.txt").exists());
    assert!(!scratch.join("escaped.txt").exists());

    // A node that is down gives a file saying so, and the dump completes.
    docker.stop("kube-node-2", 30).await.unwrap();
    let files = collect::collect(docker, name).await.unwrap();
    assert!(
        files
            .iter()
            .any(|f| f.name == "kube-node-2/unreachable.txt")
    );
    assert!(files.iter().any(|f| f.name == "kube-node-1/kubelet.log"));
}

const OTHER_KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://127.0.0.1:1
  name: other
users:
- name: other
  user:
    token: abc
contexts:
- context:
    cluster: other
    user: other
  name: other
current-context: other
";

fn family_clusters() -> [(ClusterName, IpMode); 2] {
    let labelled = |label: &str| ClusterName {
        id: 0,
        label: Some(label.into()),
    };
    [
        (labelled("v6"), IpMode::Ipv6),
        (labelled("dual"), IpMode::DualStack),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_ipv6_and_dual_stack_clusters() {
    let docker = engine().await;
    let built = default_node_image(&docker).await;
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = scratch.path().join("kubeconfig");
    for (name, _) in family_clusters() {
        lifecycle::clean(&docker, &name, Some(kubeconfig.clone()), &Silent)
            .await
            .unwrap();
    }

    let scenario = tokio::spawn(families_scenario(
        docker.clone(),
        built,
        kubeconfig.clone(),
        scratch.path().to_owned(),
    ));
    let outcome = scenario.await;
    let mut cleanup = Ok(());
    for (name, _) in family_clusters() {
        let result = lifecycle::clean(&docker, &name, Some(kubeconfig.clone()), &Silent).await;
        cleanup = cleanup.and(result);
    }
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
    cleanup.unwrap();
}

async fn families_scenario(
    docker: Docker,
    built: BuiltImage,
    kubeconfig: PathBuf,
    scratch: PathBuf,
) {
    let archive = busybox_archive(&scratch);
    for (name, mode) in family_clusters() {
        let mut options = ClusterOptions::new(name.clone(), built.name.clone());
        options.kubeconfig = Some(kubeconfig.clone());
        options.plan.mode = mode;
        options.plan.workers = 1;
        let running = lifecycle::up(&docker, &options, &Silent)
            .await
            .unwrap_or_else(|err| panic!("up {mode}: {err}"));
        assert!(running.nodes.iter().all(|n| n.ready), "{mode}");

        // The nodes have the planned address in each family of the cluster, and Kubernetes
        // knows them by those alone. (The engine gives an IPv6 network an IPv4 subnet of its
        // own too; the nodes keep that address for the published API server port only.)
        let node = docker.inspect(&name.node(1)).await.unwrap();
        let (v4, v6) = &node.addresses[&name.network()];
        let v6 = v6
            .as_deref()
            .unwrap_or_else(|| panic!("{mode}: no IPv6 address"));
        assert!(
            v6.starts_with("fd00:20:") && v6.ends_with("::3"),
            "{mode}: {v6}"
        );
        let kubectl = Kubectl {
            binary: built.kubernetes_bin.join("kubectl"),
            kubeconfig: kubeconfig.clone(),
            context: name.context(),
        };
        let jsonpath = "jsonpath={.status.addresses[?(@.type=='InternalIP')].address}";
        let internal = kubectl.ok(&["get", "node", &name.node(1), "-o", jsonpath]);
        let mut expected = vec![v6.to_owned()];
        if mode == IpMode::DualStack {
            let v4 = v4.clone().expect("a dual-stack node has an IPv4 address");
            assert!(v4.starts_with("10.192."), "{v4}");
            expected.insert(0, v4);
        }
        let internal: Vec<&str> = internal.split_whitespace().collect();
        assert_eq!(internal, expected, "{mode}: node addresses");

        load::load_archive(&docker, &name, &archive).await.unwrap();
        let pods = ["web-a", "web-b"];
        for (pod, node) in pods.iter().zip([name.control_plane(), name.node(1)]) {
            let manifest = scratch.join(format!("{}-{pod}.json", name.context()));
            std::fs::write(&manifest, pod_manifest(pod, &node)).unwrap();
            kubectl.ok(&["apply", "-f", manifest.to_str().unwrap()]);
        }
        wait_pods_running(&kubectl, &pods);
        let families = if mode == IpMode::DualStack { 2 } else { 1 };
        let ips = pod_ips(&kubectl, &pods);
        assert!(ips.iter().all(|a| a.len() == families), "{mode}: {ips:?}");
        check_mesh(&kubectl, &pods);

        // A Service in every family of the cluster, by address and by name.
        let service = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": "web" },
            "spec": {
                "ipFamilyPolicy": "PreferDualStack",
                "selector": { "app": "web-b" },
                "ports": [{ "port": 8080 }],
            },
        });
        let manifest = scratch.join(format!("{}-service.json", name.context()));
        std::fs::write(&manifest, service.to_string()).unwrap();
        kubectl.ok(&["apply", "-f", manifest.to_str().unwrap()]);
        let cluster_ips = kubectl.ok(&[
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.spec.clusterIPs[*]}",
        ]);
        let cluster_ips: Vec<&str> = cluster_ips.split_whitespace().collect();
        assert_eq!(cluster_ips.len(), families, "{mode}: {cluster_ips:?}");
        assert!(
            cluster_ips.iter().any(|ip| ip.starts_with("fd00:30::")),
            "{cluster_ips:?}"
        );
        for ip in cluster_ips {
            fetch_eventually(&kubectl, "web-a", ip, "web-b");
        }
        fetch_eventually(&kubectl, "web-a", "web.default.svc.cluster.local", "web-b");

        // Down and up again: the nodes keep their addresses in every family, and the pods come
        // back and reach each other and the Service as before.
        lifecycle::down(&docker, &name, &Silent).await.unwrap();
        let restored = lifecycle::up(&docker, &options, &Silent)
            .await
            .unwrap_or_else(|err| panic!("restore {mode}: {err}"));
        assert!(restored.restored, "{mode}");
        assert!(restored.nodes.iter().all(|n| n.ready), "{mode}");
        let after = docker.inspect(&name.node(1)).await.unwrap();
        assert_eq!(
            after.addresses[&name.network()].1.as_deref(),
            Some(v6),
            "{mode}: address after restore"
        );
        wait_pods_running(&kubectl, &pods);
        let ips = pod_ips(&kubectl, &pods);
        assert!(ips.iter().all(|a| a.len() == families), "{mode}: {ips:?}");
        check_mesh(&kubectl, &pods);
        fetch_eventually(&kubectl, "web-a", "web.default.svc.cluster.local", "web-b");

        lifecycle::clean(&docker, &name, Some(kubeconfig.clone()), &Silent)
            .await
            .unwrap();
    }
}
