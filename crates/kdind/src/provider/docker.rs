//! [`Provider`] over the Docker Engine API (bollard). Podman's compatible API works too.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::errors::Error as BollardError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerConfig, ContainerCreateBody, EndpointIpamConfig, EndpointSettings, ExecConfig,
    HostConfig, HostConfigCgroupnsModeEnum, Ipam, IpamConfig, MountType, MountVolumeOptions,
    NetworkCreateRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, CreateImageOptions, InspectContainerOptions,
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveImageOptions, RemoveVolumeOptions, StopContainerOptions, UploadToContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use super::{
    ContainerInfo, ContainerSpec, ExecOutput, ImageConfig, Mount, NetworkInfo, NetworkSpec,
    Privileges, Provider, ProviderError, Result,
};

/// A Docker (or Podman) engine, found the way the Docker CLI finds it: `DOCKER_HOST`, else the
/// local socket.
#[derive(Debug, Clone)]
pub struct Docker {
    client: bollard::Docker,
}

impl Docker {
    /// Connects and agrees on an API version with the engine.
    ///
    /// # Errors
    ///
    /// [`ProviderError::Unreachable`] when no engine answers.
    pub async fn connect() -> Result<Self> {
        let endpoint = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
        let unreachable = |source| ProviderError::Unreachable {
            endpoint: endpoint.clone(),
            source,
        };

        let client = bollard::Docker::connect_with_defaults().map_err(unreachable)?;
        let client = client.negotiate_version().await.map_err(unreachable)?;
        client.ping().await.map_err(unreachable)?;
        Ok(Self { client })
    }
}

fn engine(action: impl Into<String>) -> impl FnOnce(BollardError) -> ProviderError {
    let action = action.into();
    move |source| ProviderError::Engine { action, source }
}

fn status_of(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn to_hash(labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn image_container_config(config: &ImageConfig) -> ContainerConfig {
    ContainerConfig {
        entrypoint: Some(config.entrypoint.clone()),
        cmd: Some(config.cmd.clone()),
        env: Some(config.env.clone()),
        labels: Some(to_hash(&config.labels)),
        stop_signal: config.stop_signal.clone(),
        ..Default::default()
    }
}

/// Dockerfile instructions for an import, in the engine's JSON-array forms.
fn image_changes(config: &ImageConfig) -> Vec<String> {
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_default();
    let mut changes = Vec::new();
    if !config.entrypoint.is_empty() {
        changes.push(format!("ENTRYPOINT {}", json(&config.entrypoint)));
    }
    if !config.cmd.is_empty() {
        changes.push(format!("CMD {}", json(&config.cmd)));
    }
    for env in &config.env {
        changes.push(format!("ENV {env}"));
    }
    for (key, value) in &config.labels {
        changes.push(format!("LABEL {}={}", json_str(key), json_str(value)));
    }
    if let Some(signal) = &config.stop_signal {
        changes.push(format!("STOPSIGNAL {signal}"));
    }
    changes
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn host_config(spec: &ContainerSpec) -> HostConfig {
    let mut host = HostConfig::default();

    match &spec.privileges {
        Privileges::Default => {}
        Privileges::Privileged => host.privileged = Some(true),
        Privileges::Unconfined { drop } => {
            host.cap_add = Some(vec!["ALL".to_owned()]);
            host.cap_drop = Some(drop.clone());
            host.security_opt = Some(vec![
                "seccomp=unconfined".to_owned(),
                "apparmor=unconfined".to_owned(),
                "label=disable".to_owned(),
            ]);
            // Empty lists, not missing ones: the engine then masks no /proc or /sys path.
            host.masked_paths = Some(Vec::new());
            host.readonly_paths = Some(Vec::new());
            host.device_cgroup_rules = Some(vec!["a *:* rwm".to_owned()]);
        }
    }
    if spec.private_cgroupns {
        host.cgroupns_mode = Some(HostConfigCgroupnsModeEnum::PRIVATE);
    }

    let mut tmpfs = HashMap::new();
    let mut mounts = Vec::new();
    for mount in &spec.mounts {
        match mount {
            Mount::Tmpfs { target, options } => {
                tmpfs.insert(target.clone(), options.clone());
            }
            Mount::Volume { name, target } => mounts.push(bollard::models::Mount {
                target: Some(target.clone()),
                source: Some(name.clone()),
                typ: Some(MountType::VOLUME),
                // Volumes carry their container's labels, so that they are found with it.
                volume_options: Some(MountVolumeOptions {
                    labels: Some(to_hash(&spec.labels)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            Mount::Bind {
                source,
                target,
                read_only,
            } => mounts.push(bollard::models::Mount {
                target: Some(target.clone()),
                source: Some(source.clone()),
                typ: Some(MountType::BIND),
                read_only: Some(*read_only),
                ..Default::default()
            }),
        }
    }
    host.tmpfs = (!tmpfs.is_empty()).then_some(tmpfs);
    host.mounts = (!mounts.is_empty()).then_some(mounts);

    if !spec.ports.is_empty() {
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for port in &spec.ports {
            let binding = PortBinding {
                host_ip: Some(port.host_ip.clone()),
                host_port: Some(if port.host_port == 0 {
                    String::new()
                } else {
                    port.host_port.to_string()
                }),
            };
            bindings
                .entry(format!("{}/tcp", port.container_port))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(binding);
        }
        host.port_bindings = Some(bindings);
    }
    if !spec.sysctls.is_empty() {
        host.sysctls = Some(to_hash(&spec.sysctls));
    }
    if let Some(attachment) = &spec.attachment {
        host.network_mode = Some(attachment.network.clone());
    }
    host
}

impl Provider for Docker {
    async fn describe(&self) -> Result<String> {
        let version = self
            .client
            .version()
            .await
            .map_err(engine("read the engine version"))?;
        Ok(format!(
            "{} {} (API {})",
            version
                .platform
                .map(|p| p.name)
                .unwrap_or_else(|| "engine".to_owned()),
            version.version.unwrap_or_default(),
            version.api_version.unwrap_or_default()
        ))
    }

    async fn image_labels(&self, image: &str) -> Result<Option<BTreeMap<String, String>>> {
        match self.client.inspect_image(image).await {
            Ok(inspect) => Ok(Some(
                inspect
                    .config
                    .and_then(|c| c.labels)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            )),
            Err(err) if status_of(&err) == Some(404) => Ok(None),
            Err(err) => Err(engine(format!("inspect image {image}"))(err)),
        }
    }

    async fn import_rootfs(&self, tarball: &Path, image: &str, config: &ImageConfig) -> Result<()> {
        let action = format!("import {} as image {image}", tarball.display());
        let file = tokio::fs::File::open(tarball)
            .await
            .map_err(|source| ProviderError::Io {
                action: action.clone(),
                source,
            })?;
        let (repo, tag) = split_reference(image);
        let options = CreateImageOptions {
            from_src: Some("-".to_owned()),
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
            changes: image_changes(config),
            ..Default::default()
        };
        let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
        let mut progress = self.client.create_image(Some(options), Some(body), None);
        while let Some(item) = progress.next().await {
            let item = item.map_err(engine(action.clone()))?;
            if let Some(detail) = item.error_detail {
                return Err(ProviderError::Failed {
                    action,
                    message: detail.message.unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    async fn commit(&self, container: &str, image: &str, config: &ImageConfig) -> Result<()> {
        let (repo, tag) = split_reference(image);
        let options = CommitContainerOptions {
            container: Some(container.to_owned()),
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
            pause: true,
            ..Default::default()
        };
        self.client
            .commit_container(options, image_container_config(config))
            .await
            .map_err(engine(format!("commit container {container} as {image}")))?;
        Ok(())
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        let options = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        match self.client.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(err) if status_of(&err) == Some(404) => Ok(()),
            Err(err) => Err(engine(format!("remove image {image}"))(err)),
        }
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.client.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.id),
            Err(err) if status_of(&err) == Some(404) => Ok(None),
            Err(err) => Err(engine(format!("inspect image {image}"))(err)),
        }
    }

    async fn remove_unused_image(&self, image: &str) -> Result<bool> {
        let options = RemoveImageOptions {
            force: false,
            ..Default::default()
        };
        match self.client.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(true),
            // 404: gone already; 409: a container still uses it.
            Err(err) if matches!(status_of(&err), Some(404 | 409)) => Ok(false),
            Err(err) => Err(engine(format!("remove image {image}"))(err)),
        }
    }

    async fn run(&self, spec: &ContainerSpec) -> Result<String> {
        let networking_config = spec.attachment.as_ref().map(|a| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                a.network.clone(),
                EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: a.ipv4.clone(),
                        ipv6_address: a.ipv6.clone(),
                        ..Default::default()
                    }),
                    aliases: (!a.aliases.is_empty()).then(|| a.aliases.clone()),
                    ..Default::default()
                },
            )])),
        });
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: spec.hostname.clone(),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            labels: Some(to_hash(&spec.labels)),
            stop_signal: spec.stop_signal.clone(),
            // Bindings alone publish nothing on some engines: the port must be exposed too.
            exposed_ports: (!spec.ports.is_empty()).then(|| {
                spec.ports
                    .iter()
                    .map(|p| format!("{}/tcp", p.container_port))
                    .collect()
            }),
            host_config: Some(host_config(spec)),
            networking_config,
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };

        let created = match self.client.create_container(Some(options), body).await {
            Ok(created) => created,
            Err(err) if status_of(&err) == Some(409) => {
                return Err(ProviderError::Conflict {
                    what: "container",
                    name: spec.name.clone(),
                });
            }
            Err(err) if status_of(&err) == Some(404) => {
                return Err(ProviderError::NotFound {
                    what: "image",
                    name: spec.image.clone(),
                });
            }
            Err(err) => return Err(engine(format!("create container {}", spec.name))(err)),
        };
        if let Err(err) = self.start(&created.id).await {
            // A container that never ran is of no use to anybody: do not leave it behind.
            let _ = self.remove(&created.id).await;
            return Err(err);
        }
        Ok(created.id)
    }

    async fn start(&self, container: &str) -> Result<()> {
        self.client
            .start_container(container, None)
            .await
            .map_err(engine(format!("start container {container}")))
    }

    async fn pause(&self, container: &str) -> Result<()> {
        self.client
            .pause_container(container)
            .await
            .map_err(engine(format!("pause container {container}")))
    }

    async fn unpause(&self, container: &str) -> Result<()> {
        self.client
            .unpause_container(container)
            .await
            .map_err(engine(format!("unpause container {container}")))
    }

    async fn stop(&self, container: &str, timeout_secs: i32) -> Result<()> {
        let options = StopContainerOptions {
            t: Some(timeout_secs),
            ..Default::default()
        };
        match self.client.stop_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(err) if status_of(&err) == Some(304) => Ok(()),
            Err(err) => Err(engine(format!("stop container {container}"))(err)),
        }
    }

    async fn remove(&self, container: &str) -> Result<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.client.remove_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if status_of(&err) == Some(404) => Ok(()),
            Err(err) => Err(engine(format!("remove container {container}"))(err)),
        }
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<()> {
        let config = spec
            .subnets
            .iter()
            .map(|(subnet, gateway)| IpamConfig {
                subnet: Some(subnet.clone()),
                gateway: Some(gateway.clone()),
                ..Default::default()
            })
            .collect();
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some("bridge".to_owned()),
            enable_ipv6: Some(spec.subnets.iter().any(|(subnet, _)| subnet.contains(':'))),
            ipam: Some(Ipam {
                config: Some(config),
                ..Default::default()
            }),
            labels: Some(to_hash(&spec.labels)),
            ..Default::default()
        };
        match self.client.create_network(request).await {
            Ok(_) => Ok(()),
            Err(err) if status_of(&err) == Some(409) => Err(ProviderError::Conflict {
                what: "network",
                name: spec.name.clone(),
            }),
            Err(err) => Err(engine(format!("create network {}", spec.name))(err)),
        }
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        match self.client.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(err) if status_of(&err) == Some(404) => Ok(()),
            Err(err) => Err(engine(format!("remove network {name}"))(err)),
        }
    }

    async fn networks(&self) -> Result<Vec<NetworkInfo>> {
        let networks = self
            .client
            .list_networks(None::<ListNetworksOptions>)
            .await
            .map_err(engine("list networks"))?;
        Ok(networks
            .into_iter()
            .map(|n| NetworkInfo {
                name: n.name.unwrap_or_default(),
                subnets: n
                    .ipam
                    .and_then(|ipam| ipam.config)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.subnet)
                    .collect(),
                labels: n.labels.unwrap_or_default().into_iter().collect(),
            })
            .collect())
    }

    async fn volumes(&self, labels: &BTreeMap<String, String>) -> Result<Vec<String>> {
        let filter = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let options = ListVolumesOptions {
            filters: Some(HashMap::from([("label".to_owned(), filter)])),
        };
        let listing = self
            .client
            .list_volumes(Some(options))
            .await
            .map_err(engine("list volumes"))?;
        let mut names: Vec<String> = listing
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        names.sort();
        Ok(names)
    }

    async fn remove_volume(&self, volume: &str) -> Result<()> {
        let options = RemoveVolumeOptions { force: true };
        match self.client.remove_volume(volume, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if status_of(&err) == Some(404) => Ok(()),
            Err(err) => Err(engine(format!("remove volume {volume}"))(err)),
        }
    }

    async fn inspect(&self, container: &str) -> Result<ContainerInfo> {
        let inspect = match self
            .client
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspect) => inspect,
            Err(err) if status_of(&err) == Some(404) => {
                return Err(ProviderError::NotFound {
                    what: "container",
                    name: container.into(),
                });
            }
            Err(err) => return Err(engine(format!("inspect container {container}"))(err)),
        };

        let config = inspect.config.unwrap_or_default();
        let network = inspect.network_settings.unwrap_or_default();
        let addresses = network
            .networks
            .unwrap_or_default()
            .into_iter()
            .map(|(name, endpoint)| {
                let v4 = endpoint.ip_address.filter(|a| !a.is_empty());
                let v6 = endpoint.global_ipv6_address.filter(|a| !a.is_empty());
                (name, (v4, v6))
            })
            .collect();
        let mut ports = BTreeMap::new();
        for (key, bindings) in network.ports.unwrap_or_default() {
            let Some(container_port) = key.split('/').next().and_then(|p| p.parse().ok()) else {
                continue;
            };
            let host_port = bindings
                .unwrap_or_default()
                .into_iter()
                .find_map(|b| b.host_port.and_then(|p| p.parse().ok()));
            if let Some(host_port) = host_port {
                ports.insert(container_port, host_port);
            }
        }

        Ok(ContainerInfo {
            id: inspect.id.unwrap_or_default(),
            name: inspect
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            image: config.image.unwrap_or_default(),
            running: inspect
                .state
                .as_ref()
                .and_then(|s| s.running)
                .unwrap_or(false),
            paused: inspect.state.and_then(|s| s.paused).unwrap_or(false),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            addresses,
            ports,
        })
    }

    async fn list(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ContainerInfo>> {
        let filter = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), filter)])),
            ..Default::default()
        };
        let summaries = self
            .client
            .list_containers(Some(options))
            .await
            .map_err(engine("list containers"))?;

        let mut infos = Vec::new();
        for summary in summaries {
            let Some(id) = summary.id else { continue };
            match self.inspect(&id).await {
                Ok(info) => infos.push(info),
                // Removed between the listing and now.
                Err(ProviderError::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    async fn exec(
        &self,
        container: &str,
        cmd: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput> {
        let action = || format!("run `{}` in {container}", cmd.join(" "));
        let config = ExecConfig {
            cmd: Some(cmd.to_vec()),
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = self
            .client
            .create_exec(container, config)
            .await
            .map_err(engine(action()))?;
        let started = self
            .client
            .start_exec(&created.id, Some(StartExecOptions::default()))
            .await
            .map_err(engine(action()))?;

        let mut out = ExecOutput::default();
        if let StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        {
            if let Some(data) = stdin {
                input
                    .write_all(&data)
                    .await
                    .map_err(|source| ProviderError::Io {
                        action: action(),
                        source,
                    })?;
                let _ = input.shutdown().await;
            }
            drop(input);
            while let Some(chunk) = output.next().await {
                match chunk.map_err(engine(action()))? {
                    bollard::container::LogOutput::StdErr { message } => {
                        out.stderr.extend_from_slice(&message)
                    }
                    other => out.stdout.extend_from_slice(&other.into_bytes()),
                }
            }
        }
        let inspect = self
            .client
            .inspect_exec(&created.id)
            .await
            .map_err(engine(action()))?;
        out.exit_code = inspect.exit_code.unwrap_or(-1);
        Ok(out)
    }

    async fn copy_in(&self, container: &str, dir: &str, tar: Vec<u8>) -> Result<()> {
        let options = UploadToContainerOptions {
            path: dir.to_owned(),
            ..Default::default()
        };
        self.client
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(engine(format!("copy files into {container}:{dir}")))
    }

    async fn copy_file_in(&self, container: &str, dir: &str, tarball: &Path) -> Result<()> {
        let action = format!("copy {} into {container}:{dir}", tarball.display());
        let file = tokio::fs::File::open(tarball)
            .await
            .map_err(|source| ProviderError::Io {
                action: action.clone(),
                source,
            })?;
        let options = UploadToContainerOptions {
            path: dir.to_owned(),
            ..Default::default()
        };
        let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
        self.client
            .upload_to_container(container, Some(options), body)
            .await
            .map_err(engine(action))
    }

    async fn save_images(&self, images: &[String], to: &Path) -> Result<()> {
        let action = format!("save {} into {}", images.join(", "), to.display());
        let io = |source| ProviderError::Io {
            action: action.clone(),
            source,
        };
        let mut file = tokio::fs::File::create(to).await.map_err(io)?;
        let names: Vec<&str> = images.iter().map(String::as_str).collect();
        let mut chunks = self.client.export_images(&names);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(engine(action.clone()))?;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)
    }
}

/// Splits `name:tag` (the name may hold a registry port) into its parts; no tag means `latest`.
fn split_reference(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

// The stream helpers above need this in scope for `try_next` on some bollard versions.
#[allow(unused_imports)]
use TryStreamExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_references() {
        assert_eq!(
            split_reference("kdind/node:v1.37.2"),
            ("kdind/node", "v1.37.2")
        );
        assert_eq!(
            split_reference("localhost:5000/node"),
            ("localhost:5000/node", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/node:x"),
            ("localhost:5000/node", "x")
        );
    }

    #[test]
    fn import_changes_use_json_forms() {
        let config = ImageConfig {
            entrypoint: vec!["/init".into()],
            cmd: vec!["a b".into()],
            labels: BTreeMap::from([("k".into(), "v".into())]),
            stop_signal: Some("SIGRTMIN+3".into()),
            ..Default::default()
        };
        assert_eq!(
            image_changes(&config),
            vec![
                r#"ENTRYPOINT ["/init"]"#,
                r#"CMD ["a b"]"#,
                r#"LABEL "k"="v""#,
                "STOPSIGNAL SIGRTMIN+3"
            ]
        );
    }
}
