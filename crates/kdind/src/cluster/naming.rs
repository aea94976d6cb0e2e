//! Names of a cluster's resources, in the scheme kubeadm-dind-cluster users know.
//!
//! The default cluster is `kube-master`, `kube-node-1`, ... on `kubeadm-dind-net`, with the
//! kubeconfig context `dind`. A cluster ID N adds `-cluster-N` to each name (context
//! `dind-cluster-N`); a label L adds `-L` (context `dind-L`).

/// Label carried by every container, volume and network of a cluster: its context name.
pub const LABEL_CLUSTER: &str = "io.kdind.cluster";

/// Which cluster: the default one, a numbered one, or a labelled one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterName {
    /// 0 for the default cluster, else 1..=254.
    pub id: u8,
    /// Custom name part; takes precedence over the ID in names.
    pub label: Option<String>,
}

impl ClusterName {
    /// What goes after every resource name.
    pub fn suffix(&self) -> String {
        match (&self.label, self.id) {
            (Some(label), _) => format!("-{label}"),
            (None, 0) => String::new(),
            (None, id) => format!("-cluster-{id}"),
        }
    }

    /// The kubeconfig context, also the value of [`LABEL_CLUSTER`].
    pub fn context(&self) -> String {
        format!("dind{}", self.suffix())
    }

    pub fn network(&self) -> String {
        format!("kubeadm-dind-net{}", self.suffix())
    }

    pub fn control_plane(&self) -> String {
        format!("kube-master{}", self.suffix())
    }

    /// Worker `n`, counted from 1.
    pub fn worker(&self, n: u32) -> String {
        format!("kube-node-{n}{}", self.suffix())
    }

    /// Node `index`: 0 is the control plane, n the n-th worker.
    pub fn node(&self, index: u32) -> String {
        if index == 0 {
            self.control_plane()
        } else {
            self.worker(index)
        }
    }

    /// Volume holding a node's `/var`.
    pub fn var_volume(node: &str) -> String {
        format!("kdind-{node}-var")
    }

    /// Volume holding a node's containerd images and snapshots.
    pub fn containerd_volume(node: &str) -> String {
        format!("kdind-{node}-containerd")
    }

    /// Volume holding a node's `/etc/kubernetes`.
    pub fn etc_volume(node: &str) -> String {
        format!("kdind-{node}-etc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cluster_keeps_the_classic_names() {
        let name = ClusterName::default();
        assert_eq!(name.network(), "kubeadm-dind-net");
        assert_eq!(name.control_plane(), "kube-master");
        assert_eq!(name.node(2), "kube-node-2");
        assert_eq!(name.context(), "dind");
    }

    #[test]
    fn id_and_label_suffix_every_name() {
        let numbered = ClusterName {
            id: 20,
            label: None,
        };
        assert_eq!(numbered.control_plane(), "kube-master-cluster-20");
        assert_eq!(numbered.worker(1), "kube-node-1-cluster-20");
        assert_eq!(numbered.network(), "kubeadm-dind-net-cluster-20");
        assert_eq!(numbered.context(), "dind-cluster-20");

        let labelled = ClusterName {
            id: 7,
            label: Some("third".into()),
        };
        assert_eq!(labelled.control_plane(), "kube-master-third");
        assert_eq!(labelled.context(), "dind-third");
    }
}
