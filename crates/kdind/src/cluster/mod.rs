//! What forming a cluster writes: the kubeadm configuration of each node, the CNI configuration
//! and routes that connect their pods, and the user's kubeconfig entry for the result.
//!
//! Everything here is pure text and argument vectors; running them in nodes is the caller's.

pub mod cni;
pub mod kubeadm_config;
pub mod kubeconfig;
pub mod lifecycle;
pub mod load;
pub mod naming;
pub mod settings;
pub mod wait;
