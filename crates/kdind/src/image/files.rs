//! The files kdind puts into node images, compiled into the binary so that `kdind` needs
//! nothing beside itself.

/// One file of the node, with where it goes and its mode.
#[derive(Debug, Clone, Copy)]
pub struct NodeFile {
    /// Name under `images/node/` in the source tree.
    pub name: &'static str,
    /// Where it goes in the node.
    pub path: &'static str,
    pub mode: u32,
    pub content: &'static [u8],
}

macro_rules! node_file {
    ($name:literal, $path:literal, $mode:literal) => {
        NodeFile {
            name: $name,
            path: $path,
            mode: $mode,
            content: include_bytes!(concat!("../../../../images/node/", $name)),
        }
    };
}

/// Everything that makes a Debian root filesystem a kdind node.
pub const NODE_FILES: &[NodeFile] = &[
    node_file!("entrypoint", "/usr/local/bin/kdind-entrypoint", 0o755),
    node_file!(
        "containerd.service",
        "/etc/systemd/system/containerd.service",
        0o644
    ),
    node_file!(
        "kubelet.service",
        "/etc/systemd/system/kubelet.service",
        0o644
    ),
    node_file!(
        "10-kubeadm.conf",
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        0o644
    ),
    node_file!(
        "containerd-config.toml",
        "/etc/containerd/config.toml",
        0o644
    ),
    node_file!("crictl.yaml", "/etc/crictl.yaml", 0o644),
    node_file!(
        "registry-default-hosts.toml",
        "/etc/containerd/certs.d/_default/hosts.toml",
        0o644
    ),
    node_file!(
        "kdind-network.service",
        "/etc/systemd/system/kdind-network.service",
        0o644
    ),
    node_file!(
        "kdind-stop-pods.service",
        "/etc/systemd/system/kdind-stop-pods.service",
        0o644
    ),
    node_file!("stop-pods", "/usr/local/bin/kdind-stop-pods", 0o755),
    node_file!(
        "collect-netfilter",
        "/usr/local/bin/kdind-collect-netfilter",
        0o755
    ),
];

/// The script that makes the Debian root filesystem with debootstrap.
pub const MKROOTFS: &[u8] = include_bytes!("../../../../images/rootfs/mkrootfs");

/// Packs the node files into a tar archive rooted at `/`.
pub fn node_files_tar() -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in NODE_FILES {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.content.len() as u64);
        header.set_mode(file.mode);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, file.path.trim_start_matches('/'), file.content)?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_file_has_content_and_an_absolute_path() {
        for file in NODE_FILES {
            assert!(!file.content.is_empty(), "{} is empty", file.name);
            assert!(
                file.path.starts_with('/'),
                "{} goes to a relative path",
                file.name
            );
        }
        assert!(MKROOTFS.starts_with(b"#!"));
    }

    #[test]
    fn tar_holds_every_file() {
        let tar = node_files_tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names.len(), NODE_FILES.len());
        assert!(names.contains(&"usr/local/bin/kdind-entrypoint".to_owned()));
    }
}
