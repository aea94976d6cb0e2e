//! Node containers: how they are started, and a handle to work inside one.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::provider::{
    Attachment, ContainerSpec, ExecOutput, Mount, Privileges, Provider, ProviderError,
    PublishedPort,
};

/// Label naming the role of a node container: [`ROLE_CONTROL_PLANE`] or [`ROLE_WORKER`].
pub const LABEL_ROLE: &str = "io.kdind.role";
pub const ROLE_CONTROL_PLANE: &str = "control-plane";
pub const ROLE_WORKER: &str = "worker";

/// Capabilities a node gives up where the engine cannot grant them. CAP_SYS_RESOURCE is the one
/// known to be missing on hosts whose own bounding set lacks it; without it nothing in the node
/// can lower an `oom_score_adj`, which containerd is told to tolerate.
pub const CAPS_MAYBE_MISSING: &[&str] = &["SYS_RESOURCE"];

/// containerd's root directory in a node (see the node's containerd configuration).
pub const CONTAINERD_ROOT: &str = "/kdind/containerd";

/// Errors from working with one node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("command `{command}` failed in node {node} with exit code {code}:\n{output}")]
    Command {
        node: String,
        command: String,
        code: i64,
        output: String,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// What a node container is made of, before it exists.
#[derive(Debug, Clone, Default)]
pub struct NodeSpec {
    pub name: String,
    pub hostname: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// Named volume holding the node's `/var`, so that its state outlives the container.
    pub var_volume: String,
    /// Named volume holding containerd's images and snapshots (`/kdind/containerd`), filled
    /// from the image when it is first mounted.
    pub containerd_volume: String,
    /// More mounts, such as volumes for state that must outlive the container.
    pub extra_mounts: Vec<Mount>,
    pub attachment: Option<Attachment>,
    pub ports: Vec<PublishedPort>,
    /// Command given to the image's entrypoint; empty means the image's own (`/sbin/init`).
    pub cmd: Vec<String>,
}

/// How a node container may use the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    /// `--privileged`, where the engine can grant it.
    Privileged,
    /// Every capability but those in [`CAPS_MAYBE_MISSING`], unconfined, all devices.
    Unconfined,
}

impl NodeSpec {
    /// The container that runs this node.
    pub fn container_spec(&self, confinement: Confinement) -> ContainerSpec {
        let privileges = match confinement {
            Confinement::Privileged => Privileges::Privileged,
            Confinement::Unconfined => Privileges::Unconfined {
                drop: CAPS_MAYBE_MISSING.iter().map(|c| (*c).to_owned()).collect(),
            },
        };
        let mut mounts = vec![
            Mount::Tmpfs {
                target: "/run".into(),
                options: "rw,nosuid,nodev,exec,mode=755".into(),
            },
            Mount::Tmpfs {
                target: "/tmp".into(),
                options: "rw,nosuid,nodev,exec,mode=1777".into(),
            },
        ];
        // kubeadm's preflight looks at the host's modules; a host without them (everything
        // built in) has no such directory, and binding a missing path fails.
        if std::path::Path::new("/lib/modules").is_dir() {
            mounts.push(Mount::Bind {
                source: "/lib/modules".into(),
                target: "/lib/modules".into(),
                read_only: true,
            });
        }
        if !self.var_volume.is_empty() {
            mounts.push(Mount::Volume {
                name: self.var_volume.clone(),
                target: "/var".into(),
            });
        }
        if !self.containerd_volume.is_empty() {
            mounts.push(Mount::Volume {
                name: self.containerd_volume.clone(),
                target: CONTAINERD_ROOT.into(),
            });
        }
        mounts.extend(self.extra_mounts.iter().cloned());
        ContainerSpec {
            name: self.name.clone(),
            image: self.image.clone(),
            hostname: Some(self.hostname.clone()),
            cmd: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            labels: self.labels.clone(),
            privileges,
            private_cgroupns: true,
            mounts,
            attachment: self.attachment.clone(),
            ports: self.ports.clone(),
            stop_signal: Some("SIGRTMIN+3".into()),
            env: vec!["container=docker".into()],
            ..Default::default()
        }
    }
}

/// Starts a node container: privileged where the engine allows it, else unconfined with every
/// capability the engine can grant.
pub async fn start<'p, P: Provider>(
    provider: &'p P,
    spec: &NodeSpec,
) -> Result<Node<'p, P>, NodeError> {
    let id = match provider
        .run(&spec.container_spec(Confinement::Privileged))
        .await
    {
        Ok(id) => id,
        Err(err) if is_capability_refusal(&err) => {
            tracing::debug!(node = %spec.name, "engine refused --privileged, running unconfined");
            provider
                .run(&spec.container_spec(Confinement::Unconfined))
                .await?
        }
        Err(err) => return Err(err.into()),
    };
    Ok(Node {
        provider,
        name: spec.name.clone(),
        id,
    })
}

/// The runtime says `unable to apply caps: operation not permitted` when the engine's own
/// bounding set is smaller than what `--privileged` asks for.
fn is_capability_refusal(err: &ProviderError) -> bool {
    let text = format!("{err:?}");
    text.contains("apply caps") || text.contains("operation not permitted")
}

/// A running node: something that runs commands and takes files.
#[derive(Debug, Clone)]
pub struct Node<'p, P> {
    provider: &'p P,
    name: String,
    id: String,
}

impl<'p, P: Provider> Node<'p, P> {
    /// A handle to an existing node container.
    pub fn attach(provider: &'p P, name: &str) -> Self {
        Self {
            provider,
            name: name.to_owned(),
            id: name.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs a command and returns its output, whatever its exit code.
    pub async fn exec_output(&self, cmd: &[&str]) -> Result<ExecOutput, NodeError> {
        let cmd: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
        tracing::debug!(node = %self.name, command = %cmd.join(" "), "exec");
        Ok(self.provider.exec(&self.id, &cmd, None).await?)
    }

    /// Runs a command that must succeed; its standard output is returned.
    ///
    /// # Errors
    ///
    /// [`NodeError::Command`] with the command line and all it printed when it exits non-zero.
    pub async fn exec(&self, cmd: &[&str]) -> Result<String, NodeError> {
        self.exec_with_input(cmd, None).await
    }

    /// Like [`Node::exec`], for output that is not text.
    pub async fn exec_bytes(&self, cmd: &[&str]) -> Result<Vec<u8>, NodeError> {
        let owned: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
        let output = self.provider.exec(&self.id, &owned, None).await?;
        if !output.success() {
            return Err(NodeError::Command {
                node: self.name.clone(),
                command: owned.join(" "),
                code: output.exit_code,
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(output.stdout)
    }

    /// Like [`Node::exec`], with bytes fed to the command's standard input.
    pub async fn exec_with_input(
        &self,
        cmd: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> Result<String, NodeError> {
        let owned: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
        tracing::debug!(node = %self.name, command = %owned.join(" "), "exec");
        let output = self.provider.exec(&self.id, &owned, stdin).await?;
        tracing::trace!(node = %self.name, output = %output.combined(), "exec output");
        if !output.success() {
            return Err(NodeError::Command {
                node: self.name.clone(),
                command: owned.join(" "),
                code: output.exit_code,
                output: output.combined(),
            });
        }
        Ok(output.stdout_text())
    }

    /// Imports an image archive (OCI layout or `docker save` format) that is in the node into
    /// the containerd namespace the kubelet uses. Without `unpack`, containerd unpacks each image
    /// when a container first needs it.
    pub async fn import_images(&self, archive: &str, unpack: bool) -> Result<(), NodeError> {
        let mut cmd = vec![
            "ctr",
            "--namespace",
            "k8s.io",
            "images",
            "import",
            "--all-platforms",
        ];
        if !unpack {
            cmd.extend(["--no-unpack", "--digests"]);
        }
        cmd.push(archive);
        self.exec(&cmd).await.map(drop)
    }

    /// Waits until systemd in the node reports `running`.
    ///
    /// # Errors
    ///
    /// [`NodeError::Command`] with the failed units when systemd settles in another state or
    /// does not settle within `timeout`.
    pub async fn wait_for_systemd(&self, timeout: Duration) -> Result<(), NodeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut state = String::new();
        while tokio::time::Instant::now() < deadline {
            // Until the entrypoint hands over to systemd, systemctl answers "offline" at once.
            let wait = self.exec_output(&["systemctl", "is-system-running", "--wait"]);
            state = match tokio::time::timeout_at(deadline, wait).await {
                Ok(output) => output?.stdout_text().trim().to_owned(),
                Err(_) => format!("still starting after {} s", timeout.as_secs()),
            };
            match state.as_str() {
                "running" => return Ok(()),
                "offline" | "" => tokio::time::sleep(Duration::from_millis(200)).await,
                _ => break,
            }
        }
        let failed = self
            .exec_output(&["systemctl", "--failed", "--no-legend"])
            .await?;
        Err(NodeError::Command {
            node: self.name.clone(),
            command: "systemctl is-system-running --wait".into(),
            code: 1,
            output: format!("systemd is {state}; failed units:\n{}", failed.combined()),
        })
    }

    /// Writes one file, creating its directory.
    pub async fn write_file(&self, path: &str, content: &[u8], mode: u32) -> Result<(), NodeError> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("/", path));
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        builder
            .append_data(&mut header, name, content)
            .map_err(|source| ProviderError::Io {
                action: format!("pack {path}"),
                source,
            })?;
        let tar = builder.into_inner().map_err(|source| ProviderError::Io {
            action: format!("pack {path}"),
            source,
        })?;
        let dir = if dir.is_empty() { "/" } else { dir };
        self.exec(&["mkdir", "-p", dir]).await?;
        Ok(self.provider.copy_in(&self.id, dir, tar).await?)
    }
}
