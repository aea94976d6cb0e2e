//! Small container images written directly as OCI image archives.
//!
//! The control-plane images hold one static binary each (kube-proxy also the iptables and
//! nftables tools), so no engine build is needed: kdind writes the layers, config, manifest and
//! index itself and `ctr images import` reads the archive inside the node. Timestamps are fixed,
//! so the same files give byte-identical archives.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

/// One thing to put in a layer.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A file from the host, at `path` in the image, with `mode`.
    File {
        path: String,
        source: PathBuf,
        mode: u32,
    },
    /// A whole tar archive, appended as it is (its entries keep their own metadata).
    Archive { data: Vec<u8> },
}

/// An image to write.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// Full reference, such as `registry.k8s.io/pause:3.10.2`.
    pub reference: String,
    pub layers: Vec<Vec<Entry>>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
}

/// Architecture name as image configs spell it.
pub fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

struct Blob {
    digest: String,
    size: u64,
}

fn blob(data: &[u8]) -> Blob {
    Blob {
        digest: format!("sha256:{}", hex::encode(Sha256::digest(data))),
        size: data.len() as u64,
    }
}

fn layer_tar(entries: &[Entry]) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        match entry {
            Entry::File { path, source, mode } => {
                let mut data = Vec::new();
                File::open(source)?.read_to_end(&mut data)?;
                let path = path.trim_start_matches('/');
                // Parent directories first, so the runtime sees ordinary ones.
                let mut parent = String::new();
                for part in path
                    .split('/')
                    .rev()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    parent.push_str(part);
                    parent.push('/');
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    header.set_mtime(0);
                    header.set_cksum();
                    builder.append_data(&mut header, &parent, io::empty())?;
                }
                let mut header = tar::Header::new_gnu();
                header.set_size(data.len() as u64);
                header.set_mode(*mode);
                header.set_mtime(0);
                header.set_cksum();
                builder.append_data(&mut header, path, data.as_slice())?;
            }
            Entry::Archive { data } => {
                let mut archive = tar::Archive::new(data.as_slice());
                for item in archive.entries()? {
                    let mut item = item?;
                    let mut header = item.header().clone();
                    let path = item.path()?.into_owned();
                    let mut contents = Vec::new();
                    item.read_to_end(&mut contents)?;
                    if header.entry_type().is_symlink() || header.entry_type().is_hard_link() {
                        let target = item
                            .link_name()?
                            .map(|t| t.into_owned())
                            .unwrap_or_default();
                        builder.append_link(&mut header, &path, &target)?;
                    } else {
                        builder.append_data(&mut header, &path, contents.as_slice())?;
                    }
                }
            }
        }
    }
    builder.into_inner()
}

/// Writes `image` as an OCI archive at `out`.
pub fn write_archive(image: &Image, out: &Path) -> io::Result<()> {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();

    for entries in &image.layers {
        let tar = layer_tar(entries)?;
        diff_ids.push(blob(&tar).digest);
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&tar)?;
        let gz = gz.finish()?;
        let desc = blob(&gz);
        layer_descs.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": desc.digest,
            "size": desc.size,
        }));
        blobs.push((desc.digest, gz));
    }

    let config = serde_json::to_vec(&json!({
        "architecture": architecture(),
        "os": "linux",
        "config": {
            "Entrypoint": image.entrypoint,
            "Env": image.env,
            "User": "0",
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": [{ "created_by": "kdind", "comment": "built from source by kdind" }],
    }))?;
    let config_desc = blob(&config);
    blobs.push((config_desc.digest.clone(), config));

    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_desc.digest,
            "size": config_desc.size,
        },
        "layers": layer_descs,
    }))?;
    let manifest_desc = blob(&manifest);
    blobs.push((manifest_desc.digest.clone(), manifest));

    let tag = super::kubernetes::image_tag(&image.reference);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_desc.digest,
            "size": manifest_desc.size,
            "platform": { "architecture": architecture(), "os": "linux" },
            "annotations": {
                "io.containerd.image.name": image.reference,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))?;

    let mut archive = tar::Builder::new(File::create(out)?);
    let mut add = |name: &str, data: &[u8]| -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, name, data)
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    for (digest, data) in &blobs {
        add(
            &format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")),
            data,
        )?;
    }
    archive.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_json(archive: &[u8], name: &str) -> serde_json::Value {
        let mut tar = tar::Archive::new(archive);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().to_str() == Some(name) {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                return serde_json::from_slice(&data).unwrap();
            }
        }
        panic!("{name} not in archive");
    }

    #[test]
    fn writes_a_named_reproducible_archive() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("pause");
        std::fs::write(&bin, b"\x7fELF not really").unwrap();
        let image = Image {
            reference: "registry.k8s.io/pause:3.10.2".into(),
            layers: vec![vec![Entry::File {
                path: "/pause".into(),
                source: bin,
                mode: 0o755,
            }]],
            entrypoint: vec!["/pause".into()],
            env: vec![],
        };
        let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
        write_archive(&image, &a).unwrap();
        write_archive(&image, &b).unwrap();
        let a = std::fs::read(a).unwrap();
        assert_eq!(a, std::fs::read(b).unwrap(), "same input, same bytes");

        let index = read_json(&a, "index.json");
        let manifest = &index["manifests"][0];
        assert_eq!(
            manifest["annotations"]["io.containerd.image.name"],
            "registry.k8s.io/pause:3.10.2"
        );
        let digest = manifest["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let manifest = read_json(&a, &format!("blobs/sha256/{digest}"));
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    }
}
