//! Content-addressed build outputs.
//!
//! Every expensive output (a set of Go binaries, a root filesystem, an image archive) lives in a
//! directory named after a hash of everything that went into it. A directory with the
//! [`COMPLETE`] stamp is reused as it is; anything else is rebuilt from scratch.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Written last into an output directory: without it the directory is an interrupted build.
pub const COMPLETE: &str = ".kdind-complete";

/// A hash of a build's inputs, fed piece by piece.
#[derive(Debug, Clone, Default)]
pub struct Key {
    hasher: Sha256,
}

impl Key {
    /// A key for one kind of output; `kind` keeps keys of different outputs apart.
    pub fn new(kind: &str) -> Self {
        let mut key = Self::default();
        key.add(kind);
        key
    }

    /// Adds one input. Inputs are length-prefixed, so ("ab", "c") and ("a", "bc") differ.
    pub fn add(&mut self, input: impl AsRef<[u8]>) -> &mut Self {
        let input = input.as_ref();
        self.hasher.update((input.len() as u64).to_le_bytes());
        self.hasher.update(input);
        self
    }

    /// The full hex digest.
    pub fn finish(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// The first 12 hex digits, for names people read.
    pub fn short(&self) -> String {
        self.finish()[..12].to_owned()
    }
}

/// The directory that holds every kdind build output.
///
/// `KDIND_CACHE_DIR`, else `$XDG_CACHE_HOME/kdind`, else `~/.cache/kdind`.
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("KDIND_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("kdind");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp".into());
    home.join(".cache").join("kdind")
}

/// An output directory for `name` and `key`, and whether it already holds a finished build.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dir: PathBuf,
}

impl Entry {
    pub fn new(root: &Path, name: &str, key: &Key) -> Self {
        Self {
            dir: root.join(format!("{name}-{}", key.short())),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.dir.join(COMPLETE).is_file()
    }

    /// Empties the directory for a fresh build.
    pub fn prepare(&self) -> std::io::Result<()> {
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir)?;
        }
        fs::create_dir_all(&self.dir)
    }

    /// Marks the build finished.
    pub fn complete(&self) -> std::io::Result<()> {
        fs::write(self.dir.join(COMPLETE), b"")
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_delimited() {
        let mut a = Key::new("t");
        a.add("ab").add("c");
        let mut b = Key::new("t");
        b.add("a").add("bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn kind_separates_keys() {
        assert_ne!(Key::new("rootfs").finish(), Key::new("etcd").finish());
        assert_eq!(Key::new("x").short().len(), 12);
    }

    #[test]
    fn entry_is_complete_only_after_stamp() {
        let root = tempfile::tempdir().unwrap();
        let entry = Entry::new(root.path(), "bin", &Key::new("k"));
        assert!(!entry.is_complete());
        entry.prepare().unwrap();
        assert!(!entry.is_complete());
        entry.complete().unwrap();
        assert!(entry.is_complete());
        entry.prepare().unwrap();
        assert!(!entry.is_complete(), "prepare starts afresh");
    }
}
