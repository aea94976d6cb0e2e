//! kdind: real multi-node Kubernetes clusters made of Docker containers, built offline.
//!
//! Every node is a container running systemd, containerd and a kubelet; clusters are formed with
//! kubeadm. Everything a node needs is built here from source: see [`image`].

pub mod cluster;
pub mod config;
pub mod dump;
pub mod image;
pub mod net;
pub mod node;
pub mod progress;
pub mod provider;
