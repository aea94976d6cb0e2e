//! Builds the default node image on the real engine and boots a node from it.
//!
//! Needs a running Docker engine (`scripts/start-docker` starts one). The first build on a fresh
//! machine compiles Kubernetes and takes a while; later runs reuse the cache.

use std::collections::BTreeMap;
use std::time::Duration;

use kdind::image::{self, BuildOptions, BuiltImage, KubeVersion};
use kdind::node::{self, NodeSpec};
use kdind::progress::Silent;
use kdind::provider::{Docker, LABEL_MANAGED, Provider};

async fn engine() -> Docker {
    match Docker::connect().await {
        Ok(docker) => docker,
        Err(err) => panic!("these tests need a Docker engine: {err}"),
    }
}

async fn default_image(docker: &Docker) -> BuiltImage {
    let version = KubeVersion::parse(image::DEFAULT_KUBE_VERSION).unwrap();
    image::build_node_image(docker, &BuildOptions::new(version), &Silent)
        .await
        .unwrap_or_else(|err| panic!("node image build failed: {err:#?}"))
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Waits for systemd to settle; the error says what it settled in and which units failed.
async fn system_state<P: Provider>(node: &node::Node<'_, P>) -> String {
    match node.wait_for_systemd(Duration::from_secs(180)).await {
        Ok(()) => "running".to_owned(),
        Err(err) => err.to_string(),
    }
}

async fn failed_units<P: Provider>(node: &node::Node<'_, P>) -> String {
    node.exec_output(&["systemctl", "--failed", "--no-legend"])
        .await
        .unwrap()
        .combined()
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_node_image_boots_with_everything_kubeadm_needs() {
    let docker = engine().await;
    let built = default_image(&docker).await;

    let name = unique("kdind-test-node");
    let spec = NodeSpec {
        name: name.clone(),
        hostname: "kdind-test".into(),
        image: built.name.clone(),
        labels: BTreeMap::from([(LABEL_MANAGED.to_owned(), "test".to_owned())]),
        var_volume: format!("{name}-var"),
        containerd_volume: format!("{name}-containerd"),
        ..Default::default()
    };

    // The checks run as a task so that a failed assertion still reaches the clean-up below.
    let checks = tokio::spawn({
        let docker = docker.clone();
        let spec = spec.clone();
        let name = name.clone();
        async move {
            let node = node::start(&docker, &spec).await.expect("node starts");
            let state = system_state(&node).await;
            assert_eq!(
                state,
                "running",
                "systemd state; failed units:\n{}",
                failed_units(&node).await
            );

            // containerd answers CRI and holds every image kubeadm will ask for.
            let listing = node
                .exec(&["crictl", "images", "--output", "json"])
                .await
                .unwrap();
            let kubeadm_list = node
                .exec(&[
                    "kubeadm",
                    "config",
                    "images",
                    "list",
                    "--kubernetes-version",
                    image::DEFAULT_KUBE_VERSION,
                ])
                .await
                .unwrap();
            let wanted: Vec<&str> = kubeadm_list.lines().filter(|l| !l.is_empty()).collect();
            assert_eq!(
                wanted.len(),
                7,
                "kubeadm lists seven images: {kubeadm_list}"
            );
            for image in wanted {
                assert!(
                    listing.contains(&format!("\"{image}\"")),
                    "{image} missing from:\n{listing}"
                );
            }

            let version = node
                .exec(&["kubeadm", "version", "-o", "short"])
                .await
                .unwrap();
            assert_eq!(version.trim(), image::DEFAULT_KUBE_VERSION);
            let kubelet = node.exec(&["kubelet", "--version"]).await.unwrap();
            assert_eq!(
                kubelet.trim(),
                format!("Kubernetes {}", image::DEFAULT_KUBE_VERSION)
            );

            // A stopped node boots again.
            docker.stop(&name, 30).await.unwrap();
            docker.start(&name).await.unwrap();
            let state = system_state(&node).await;
            assert_eq!(
                state,
                "running",
                "after restart; failed units:\n{}",
                failed_units(&node).await
            );
            node.exec(&["crictl", "info"])
                .await
                .expect("CRI answers after a restart");
        }
    });
    let outcome = checks.await;

    docker.remove(&name).await.unwrap();
    docker.remove_volume(&spec.var_volume).await.unwrap();
    docker.remove_volume(&spec.containerd_volume).await.unwrap();
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_node_image_rebuild_with_nothing_changed_is_reused() {
    let docker = engine().await;
    let first = default_image(&docker).await;
    let second = default_image(&docker).await;
    assert!(second.reused, "second build of {} rebuilt", second.name);
    assert_eq!(first.key, second.key);
    let labels = docker
        .image_labels(&second.name)
        .await
        .unwrap()
        .expect("image exists");
    assert_eq!(labels.get(image::LABEL_BUILD_KEY), Some(&second.key));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_missing_base_image_is_refused_before_building_anything() {
    let docker = engine().await;
    let mut options = BuildOptions::new(KubeVersion::parse(image::DEFAULT_KUBE_VERSION).unwrap());
    options.base_image = Some(unique("kdind-no-such-image"));
    options.image = Some(format!("{}:x", unique("kdind-never-made")));
    let err = image::build_node_image(&docker, &options, &Silent)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(
        docker
            .image_labels(options.image.as_ref().unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_node_image_builds_from_a_given_base_image() {
    let docker = engine().await;
    let default = default_image(&docker).await;

    // The Debian base kdind made for the default image stands in for a user's own base.
    let base = format!("kdind/base:{}", image::rootfs::key().short());
    assert!(
        docker.image_labels(&base).await.unwrap().is_some(),
        "{base} exists"
    );

    let mut options = BuildOptions::new(KubeVersion::parse(image::DEFAULT_KUBE_VERSION).unwrap());
    options.base_image = Some(base);
    options.image = Some(format!("{}:from-base", unique("kdind-test-node")));
    let built = image::build_node_image(&docker, &options, &Silent)
        .await
        .unwrap();
    assert!(!built.reused);
    // Same base content, same inputs: the same key, under another name.
    assert_eq!(built.key, default.key);
    let labels = docker
        .image_labels(&built.name)
        .await
        .unwrap()
        .expect("image made");
    assert_eq!(
        labels.get(image::LABEL_KUBE_VERSION).map(String::as_str),
        Some(image::DEFAULT_KUBE_VERSION)
    );
    docker.remove_image(&built.name).await.unwrap();
}
