//! The node's root filesystem: Debian from debootstrap, made into the base image.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::cache::{Entry, Key};
use super::files::MKROOTFS;
use super::{ImageError, io};

/// Debian release the root filesystem is made from.
pub const SUITE: &str = "bookworm";

/// The Debian mirror to use: `KDIND_DEBIAN_MIRROR`, else the first one apt is set up with,
/// else Debian's own.
pub fn mirror() -> String {
    if let Ok(mirror) = std::env::var("KDIND_DEBIAN_MIRROR") {
        return mirror;
    }
    let mut sources = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        sources.extend(more);
    }
    sources
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|text| first_debian_mirror(&text))
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_owned())
}

/// The first archive URL of a one-line or deb822 sources file that serves Debian itself (not
/// its security archive).
fn first_debian_mirror(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .flat_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first() {
                Some(&"deb") => words.iter().skip(1).find(|w| w.contains("://")).copied(),
                Some(&"URIs:") => words.get(1).copied(),
                _ => None,
            }
        })
        .find(|url| !url.contains("security") && url.trim_end_matches('/').ends_with("/debian"))
        .map(|url| url.trim_end_matches('/').to_owned())
}

/// The cache key of the root filesystem: the script and the Debian release.
pub fn key() -> Key {
    let mut key = Key::new("rootfs/1");
    key.add(SUITE).add(MKROOTFS).add(std::env::consts::ARCH);
    key
}

/// Makes the root filesystem tarball, or reuses the one made from the same inputs.
pub async fn build(cache_root: &Path) -> Result<PathBuf, ImageError> {
    let entry = Entry::new(&cache_root.join("rootfs"), "debian", &key());
    let tarball = entry.path("rootfs.tar");
    if entry.is_complete() {
        return Ok(tarball);
    }
    if !is_root() {
        return Err(ImageError::NeedsRoot);
    }

    entry
        .prepare()
        .map_err(io("prepare the root filesystem directory"))?;
    let script = entry.path("mkrootfs");
    std::fs::write(&script, MKROOTFS).map_err(io("write mkrootfs"))?;
    let target = entry.path("root");

    let mirror = mirror();
    tracing::info!(%mirror, "making the root filesystem with debootstrap");
    run_logged(
        Command::new("bash").arg(&script).arg(&target).arg(&mirror),
        "mkrootfs",
    )
    .await?;
    run_logged(
        Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "--acls", "-C"])
            .arg(&target)
            .args(["-cf"])
            .arg(&tarball)
            .arg("."),
        "tar",
    )
    .await?;
    // The tarball is all later steps need; the tree only costs disk.
    std::fs::remove_dir_all(&target).map_err(io("remove the root filesystem tree"))?;
    entry
        .complete()
        .map_err(io("mark the root filesystem complete"))?;
    Ok(tarball)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command, sending each line it prints to the debug log and keeping the last ones for
/// the error.
pub(crate) async fn run_logged(command: &mut Command, name: &str) -> Result<(), ImageError> {
    command
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| ImageError::Io {
        action: format!("start {name}"),
        source,
    })?;

    let tail = Mutex::new(VecDeque::new());
    let drain = |stream: Option<Box<dyn AsyncRead + Unpin + Send>>| {
        let tail = &tail;
        async move {
            let Some(stream) = stream else { return };
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "kdind::output", "{name}: {line}");
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                tail.push_back(line);
                if tail.len() > 40 {
                    tail.pop_front();
                }
            }
        }
    };
    let stdout = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>);
    let stderr = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>);
    tokio::join!(drain(stdout), drain(stderr));

    let status = child.wait().await.map_err(|source| ImageError::Io {
        action: format!("wait for {name}"),
        source,
    })?;
    if !status.success() {
        let tail = tail.into_inner().unwrap_or_else(|e| e.into_inner());
        return Err(ImageError::Command {
            command: name.to_owned(),
            output: tail.into_iter().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_debian_mirror() {
        let one_line = "# comment\ndeb http://mirror.example/debian bookworm main\n\
                        deb http://mirror.example/debian-security bookworm-security main\n";
        assert_eq!(
            first_debian_mirror(one_line).as_deref(),
            Some("http://mirror.example/debian")
        );
        let deb822 = "Types: deb\nURIs: http://m.example/debian/\nSuites: bookworm\n";
        assert_eq!(
            first_debian_mirror(deb822).as_deref(),
            Some("http://m.example/debian")
        );
        let signed = "deb [signed-by=/k.gpg] https://m.example/debian bookworm main";
        assert_eq!(
            first_debian_mirror(signed).as_deref(),
            Some("https://m.example/debian")
        );
        assert_eq!(
            first_debian_mirror("deb http://x/debian-security b main"),
            None
        );
    }
}
