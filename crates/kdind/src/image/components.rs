//! The node's other programs: etcd, CoreDNS, crictl, containerd and the pause container.
//!
//! Versions follow what the built kubeadm asks for (`kubeadm config images list`), so that the
//! images kubeadm expects exist under exactly those names. containerd is pinned here: Debian's
//! is too old for the kubelets kdind builds.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::cache::{Entry, Key};
use super::gobuild::{GoBuild, Toolchain};
use super::{ImageError, io};

/// containerd built for every node. 2.x is what current kubelets expect (they read the cgroup
/// driver from the runtime).
pub const CONTAINERD_VERSION: &str = "v2.2.9";

/// The Go version the small build modules declare.
const GO_LINE: &str = "1.25.0";

/// etcd at `version` (`v3.7.0`): the server, etcdctl and etcdutl.
pub fn etcd(version: &str) -> GoBuild {
    let modules = ["server", "etcdctl", "etcdutl"];
    GoBuild {
        name: format!("etcd-{version}"),
        go_version: GO_LINE.into(),
        requires: modules
            .iter()
            .map(|m| (format!("go.etcd.io/etcd/{m}/v3"), version.into()))
            .collect(),
        replaces: Vec::new(),
        packages: modules
            .iter()
            .map(|m| format!("go.etcd.io/etcd/{m}/v3"))
            .collect(),
        variables: vec![format!("go.etcd.io/etcd/api/v3/version.GitSHA={version}")],
        tags: Vec::new(),
        renames: vec![("server".into(), "etcd".into())],
    }
}

/// CoreDNS at `version` (`v1.14.6`).
pub fn coredns(version: &str) -> GoBuild {
    GoBuild {
        name: format!("coredns-{version}"),
        go_version: GO_LINE.into(),
        requires: vec![("github.com/coredns/coredns".into(), version.into())],
        replaces: Vec::new(),
        packages: vec!["github.com/coredns/coredns".into()],
        variables: vec![format!(
            "github.com/coredns/coredns/coremain.GitCommit={version}"
        )],
        tags: vec!["grpcnotrace".into()],
        renames: Vec::new(),
    }
}

/// crictl at `version`.
pub fn crictl(version: &str) -> GoBuild {
    GoBuild {
        name: format!("crictl-{version}"),
        go_version: GO_LINE.into(),
        requires: vec![("sigs.k8s.io/cri-tools".into(), version.into())],
        replaces: Vec::new(),
        packages: vec!["sigs.k8s.io/cri-tools/cmd/crictl".into()],
        // crictl prints its version as given, and its releases print it without the `v`.
        variables: vec![format!(
            "sigs.k8s.io/cri-tools/pkg/version.Version={}",
            version.trim_start_matches('v')
        )],
        tags: Vec::new(),
        renames: Vec::new(),
    }
}

/// containerd, its runc shim and ctr, static.
pub fn containerd(version: &str) -> GoBuild {
    let module = "github.com/containerd/containerd/v2";
    GoBuild {
        name: format!("containerd-{version}"),
        go_version: GO_LINE.into(),
        requires: vec![(module.into(), version.into())],
        replaces: Vec::new(),
        packages: ["containerd", "containerd-shim-runc-v2", "ctr"]
            .iter()
            .map(|c| format!("{module}/cmd/{c}"))
            .collect(),
        variables: vec![
            format!("{module}/version.Version={version}"),
            format!("{module}/version.Revision={version}"),
            format!("{module}/version.Package=github.com/containerd/containerd/v2"),
        ],
        tags: ["no_btrfs", "no_devmapper", "no_zfs", "urfave_cli_no_docs"]
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
        renames: Vec::new(),
    }
}

/// The newest crictl release of the same minor as Kubernetes, else the newest older one.
pub fn pick_crictl(available: &[String], kube_minor: u32) -> Option<String> {
    let mut best: Option<(u32, u32, &String)> = None;
    for version in available {
        let Some(core) = version.strip_prefix("v1.") else {
            continue;
        };
        if core.contains('-') {
            continue;
        }
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let (Some(Some(minor)), Some(Some(patch))) = (parts.next(), parts.next()) else {
            continue;
        };
        if minor > kube_minor {
            continue;
        }
        if best.is_none_or(|(m, p, _)| (minor, patch) > (m, p)) {
            best = Some((minor, patch, version));
        }
    }
    best.map(|(_, _, v)| v.clone())
}

/// The pause binary, compiled static from the C source in the Kubernetes module.
pub async fn pause(
    toolchain: &Toolchain,
    kube_version: &str,
    pause_version: &str,
    cache_root: &Path,
) -> Result<PathBuf, ImageError> {
    let source = toolchain
        .download(super::kubernetes::MODULE, kube_version)
        .await?;
    let c_file = source.dir.join("build/pause/linux/pause.c");
    let code = std::fs::read(&c_file).map_err(|source| ImageError::Io {
        action: format!("read {}", c_file.display()),
        source,
    })?;

    let mut key = Key::new("pause/1");
    key.add(&code).add(pause_version);
    let entry = Entry::new(
        &cache_root.join("go"),
        &format!("pause-{pause_version}"),
        &key,
    );
    let binary = entry.path("pause");
    if entry.is_complete() {
        return Ok(binary);
    }
    entry
        .prepare()
        .map_err(io("prepare the pause build directory"))?;
    super::rootfs::run_logged(
        Command::new("cc")
            .args(["-Os", "-Wall", "-static", "-o"])
            .arg(&binary)
            .arg(format!("-DVERSION=v{pause_version}"))
            .arg(&c_file),
        "cc pause.c",
    )
    .await?;
    let _ = Command::new("strip").arg(&binary).status().await;
    entry
        .complete()
        .map_err(io("mark the pause build complete"))?;
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crictl_follows_the_kubernetes_minor() {
        let versions: Vec<String> = [
            "v1.34.0",
            "v1.35.0",
            "v1.35.1",
            "v1.36.0-rc.1",
            "v1.36.0",
            "v1.38.0",
        ]
        .iter()
        .map(|v| (*v).to_owned())
        .collect();
        assert_eq!(pick_crictl(&versions, 35).as_deref(), Some("v1.35.1"));
        assert_eq!(pick_crictl(&versions, 37).as_deref(), Some("v1.36.0"));
        assert_eq!(pick_crictl(&versions, 33), None);
    }

    #[test]
    fn etcd_server_binary_is_named_etcd() {
        let build = etcd("v3.7.0");
        assert!(
            build
                .packages
                .contains(&"go.etcd.io/etcd/server/v3".to_owned())
        );
        assert_eq!(build.outputs(), vec!["etcd", "etcdctl", "etcdutl"]);
    }
}
