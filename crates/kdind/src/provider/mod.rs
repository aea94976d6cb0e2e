//! The container engine, seen through the few operations kdind needs.
//!
//! Everything above this module speaks of containers, images, networks and volumes in kdind's
//! own terms; only [`docker`] knows the Engine API. Podman answers the same API, so it is reached
//! through the same implementation.

pub mod docker;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

pub use docker::Docker;

/// Label every kdind-made resource carries, so that kdind finds (and only touches) its own.
pub const LABEL_MANAGED: &str = "io.kdind.managed";

/// Errors from the container engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    #[error(
        "no container engine answers at {endpoint}; start one (for example `dockerd &`, or \
         `scripts/start-docker`) or point DOCKER_HOST at it"
    )]
    Unreachable {
        endpoint: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{what} {name:?} was not found")]
    NotFound { what: &'static str, name: String },
    #[error("{what} {name:?} already exists")]
    Conflict { what: &'static str, name: String },
    #[error("failed to {action}")]
    Engine {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to {action}: {message}")]
    Failed { action: String, message: String },
}

pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// A mount of a named volume, a host path or a tmpfs into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    Volume {
        name: String,
        target: String,
    },
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
    Tmpfs {
        target: String,
        options: String,
    },
}

/// Attachment of a container to a network, with fixed addresses when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    pub network: String,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub aliases: Vec<String>,
}

/// A port of the container published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    pub host_ip: String,
    /// 0 lets the engine pick a free port.
    pub host_port: u16,
    pub container_port: u16,
}

/// How much of the kernel a container may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Privileges {
    /// Ordinary container: the engine's defaults.
    #[default]
    Default,
    /// `--privileged`: every capability, every device, no confinement.
    Privileged,
    /// What a node needs where `--privileged` cannot be granted: every capability but those in
    /// `drop`, no seccomp or AppArmor profile, unmasked system paths and access to every device.
    Unconfined { drop: Vec<String> },
}

/// Everything needed to create a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub hostname: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub privileges: Privileges,
    pub private_cgroupns: bool,
    pub mounts: Vec<Mount>,
    pub attachment: Option<Attachment>,
    pub ports: Vec<PublishedPort>,
    pub sysctls: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

/// The state of a container, as far as kdind cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub running: bool,
    /// Frozen by `pause`; a paused container also counts as running.
    pub paused: bool,
    pub labels: BTreeMap<String, String>,
    /// Addresses on each network, by network name.
    pub addresses: BTreeMap<String, (Option<String>, Option<String>)>,
    /// Published ports: container port to host port.
    pub ports: BTreeMap<u16, u16>,
}

/// What a command run in a container left behind.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Both streams, for error messages.
    pub fn combined(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.stdout).into_owned();
        if !self.stderr.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&String::from_utf8_lossy(&self.stderr));
        }
        text
    }
}

/// The image settings a committed or imported image starts with.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

/// A bridge network to create.
#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    pub name: String,
    /// (subnet, gateway) pairs: one per address family.
    pub subnets: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
}

/// A network as the engine reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    pub subnets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// The operations kdind needs from a container engine.
pub trait Provider: Send + Sync {
    /// A human-readable name of the engine and its version, answered by the engine itself.
    fn describe(&self) -> impl Future<Output = Result<String>> + Send;

    /// Labels of an image, or `None` when no image has that name.
    fn image_labels(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>>> + Send;

    /// Makes an image out of a root filesystem tarball.
    fn import_rootfs(
        &self,
        tarball: &Path,
        image: &str,
        config: &ImageConfig,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Saves a container's filesystem as an image.
    fn commit(
        &self,
        container: &str,
        image: &str,
        config: &ImageConfig,
    ) -> impl Future<Output = Result<()>> + Send;

    fn remove_image(&self, image: &str) -> impl Future<Output = Result<()>> + Send;

    /// The ID of an image, or `None` when no image has that name.
    fn image_id(&self, image: &str) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Removes an image unless a container uses it; says whether it was removed.
    fn remove_unused_image(&self, image: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Creates and starts a container; returns its id.
    fn run(&self, spec: &ContainerSpec) -> impl Future<Output = Result<String>> + Send;

    fn start(&self, container: &str) -> impl Future<Output = Result<()>> + Send;

    /// Freezes every process of a running container.
    fn pause(&self, container: &str) -> impl Future<Output = Result<()>> + Send;

    /// Thaws a paused container.
    fn unpause(&self, container: &str) -> impl Future<Output = Result<()>> + Send;

    fn stop(&self, container: &str, timeout_secs: i32) -> impl Future<Output = Result<()>> + Send;

    /// Removes a container, running or not, with its anonymous volumes. Missing is not an error.
    fn remove(&self, container: &str) -> impl Future<Output = Result<()>> + Send;

    /// Creates a bridge network. One that exists already is [`ProviderError::Conflict`].
    fn create_network(&self, spec: &NetworkSpec) -> impl Future<Output = Result<()>> + Send;

    /// Removes a network. Missing is not an error.
    fn remove_network(&self, name: &str) -> impl Future<Output = Result<()>> + Send;

    /// Every network of the engine, kdind's or not.
    fn networks(&self) -> impl Future<Output = Result<Vec<NetworkInfo>>> + Send;

    /// Names of the volumes that carry every one of these labels.
    fn volumes(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Removes a named volume. Missing is not an error.
    fn remove_volume(&self, volume: &str) -> impl Future<Output = Result<()>> + Send;

    fn inspect(&self, container: &str) -> impl Future<Output = Result<ContainerInfo>> + Send;

    /// Containers (running or not) that carry every one of these labels.
    fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send;

    /// Runs a command in a running container and collects its output, feeding `stdin` if given.
    fn exec(
        &self,
        container: &str,
        cmd: &[String],
        stdin: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<ExecOutput>> + Send;

    /// Unpacks a tar archive into a directory of the container.
    fn copy_in(
        &self,
        container: &str,
        dir: &str,
        tar: Vec<u8>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Streams a tar archive from a file into a directory of the container.
    fn copy_file_in(
        &self,
        container: &str,
        dir: &str,
        tarball: &Path,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Writes images of the engine, with their names, into one archive at `to` (the format of
    /// `docker save`).
    fn save_images(&self, images: &[String], to: &Path) -> impl Future<Output = Result<()>> + Send;
}
