//! Images from the host into every node's containerd, so that pods find them without pulling.

use std::path::Path;

use futures_util::future::try_join_all;

use super::lifecycle::{ClusterError, cluster_labels};
use super::naming::ClusterName;
use crate::node::Node;
use crate::provider::{Provider, ProviderError};

/// Where archives are staged inside a node while they are imported.
// Not under /tmp: the engine cannot copy files into a tmpfs mount.
const STAGING: &str = "/kdind/load";

/// Imports an image archive (OCI layout or `docker save` format) into the containerd of every
/// node of a cluster. Returns the nodes it went to.
///
/// # Errors
///
/// Fails when the cluster has no running node, or an import fails in any node.
pub async fn load_archive<P: Provider>(
    provider: &P,
    name: &ClusterName,
    archive: &Path,
) -> Result<Vec<String>, ClusterError> {
    if !archive.is_file() {
        return Err(ClusterError::MissingArchive(archive.to_owned()));
    }
    let nodes = running_nodes(provider, name).await?;
    import_into(provider, &nodes, archive).await?;
    Ok(nodes)
}

/// Copies images of the engine kdind talks to (built, tagged or pulled there) into the
/// containerd of every node of a cluster, under the same names. Returns the nodes they went to.
///
/// # Errors
///
/// Fails when the cluster has no running node, an image is not in the engine, or an import
/// fails in any node.
pub async fn load_images<P: Provider>(
    provider: &P,
    name: &ClusterName,
    images: &[String],
) -> Result<Vec<String>, ClusterError> {
    for image in images {
        if provider.image_id(image).await?.is_none() {
            return Err(ClusterError::MissingHostImage(image.clone()));
        }
    }
    let nodes = running_nodes(provider, name).await?;
    let dir = tempfile::tempdir().map_err(|source| ProviderError::Io {
        action: "create a temporary directory".into(),
        source,
    })?;
    let archive = dir.path().join("images.tar");
    provider.save_images(images, &archive).await?;
    import_into(provider, &nodes, &archive).await?;
    Ok(nodes)
}

/// The node containers of a cluster, which must all be running (and not paused).
async fn running_nodes<P: Provider>(
    provider: &P,
    name: &ClusterName,
) -> Result<Vec<String>, ClusterError> {
    let containers = provider.list(&cluster_labels(name)).await?;
    if containers.is_empty() {
        return Err(ClusterError::NoCluster(name.context()));
    }
    if containers.iter().any(|c| !c.running || c.paused) {
        return Err(ClusterError::NotRunning(name.context()));
    }
    Ok(containers.into_iter().map(|c| c.name).collect())
}

/// Imports the archive at `archive` into the containerd of each of `nodes`, at once.
async fn import_into<P: Provider>(
    provider: &P,
    nodes: &[String],
    archive: &Path,
) -> Result<(), ClusterError> {
    // The engine takes files as tar archives: wrap the archive in one.
    let file_name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("image.tar")
        .to_owned();
    let wrapped = tempfile::NamedTempFile::new().map_err(|source| ProviderError::Io {
        action: "create a temporary archive".into(),
        source,
    })?;
    let mut builder = tar::Builder::new(wrapped.reopen().map_err(|source| ProviderError::Io {
        action: "open the temporary archive".into(),
        source,
    })?);
    builder
        .append_path_with_name(archive, &file_name)
        .and_then(|()| builder.finish())
        .map_err(|source| ProviderError::Io {
            action: format!("pack {}", archive.display()),
            source,
        })?;

    let staged = format!("{STAGING}/{file_name}");
    try_join_all(nodes.iter().map(|node_name| {
        let node = Node::attach(provider, node_name);
        let staged = staged.clone();
        let wrapped = wrapped.path().to_owned();
        async move {
            node.exec(&["mkdir", "-p", STAGING]).await?;
            provider.copy_file_in(node_name, STAGING, &wrapped).await?;
            node.import_images(&staged, true).await?;
            node.exec(&["rm", "-f", &staged]).await?;
            Ok::<_, ClusterError>(())
        }
    }))
    .await?;
    Ok(())
}
