//! The layout of a cluster dump and the transformations it goes through.
//!
//! A dump is one text holding many files, each introduced by a header line `@@@ <name> @@@`.
//! To survive being printed into a CI log it is xz-compressed and base64-encoded between two
//! marker lines ("dump64"); [`decode64`] finds that block again in the whole log. Names are
//! checked by [`safe_path`] before [`split_into`] writes anything, because a dump is read from
//! a log that anyone who can push to CI can write into.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// First line of a dump64 block.
pub const START_MARKER: &str = "-----BEGIN KDIND CLUSTER DUMP-----";
/// Last line of a dump64 block.
pub const END_MARKER: &str = "-----END KDIND CLUSTER DUMP-----";

/// What replaces every secret found by [`redact`].
pub const REDACTED: &str = "[redacted]";

const HEADER_START: &[u8] = b"@@@ ";
const HEADER_END: &[u8] = b" @@@";
const LINE_WIDTH: usize = 76;

/// Why a dump cannot be read or unpacked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    #[error(
        "the text has no `@@@ <name> @@@` file header; give a dump, or decode a dump64 block first"
    )]
    NoHeader,
    #[error(
        "no `{START_MARKER}` line in the log; give the whole log of the run that printed the dump"
    )]
    NoStart,
    #[error(
        "the dump starting on line {line} has no `{END_MARKER}` line; the log was cut short, give \
         all of it"
    )]
    NoEnd { line: usize },
    #[error(
        "line {line} inside the dump is not base64 ({token:?}); copy the lines between the markers \
         unchanged"
    )]
    NotBase64Line { line: usize, token: String },
    #[error("the dump is not valid base64; copy every line between the markers unchanged")]
    Base64(#[source] base64::DecodeError),
    #[error("the dump's xz data is damaged; copy the block again from the original log")]
    Decompress(#[source] lzma_rs::error::Error),
    #[error("dump file name {name:?} {reason}; nothing was written")]
    UnsafeName { name: String, reason: &'static str },
    #[error("dump file {name:?} appears twice or is also used as a directory; nothing was written")]
    Conflict { name: String },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One file of a dump: its name (`/`-separated, relative) and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpFile {
    pub name: String,
    pub content: Vec<u8>,
}

/// Writes `files` as one dump text.
///
/// A newline is added after content that lacks one, so the next header starts its own line;
/// such a file reads back with that newline.
///
/// # Errors
///
/// Fails with [`io::ErrorKind::InvalidInput`] for a name holding a line break, which no header
/// could carry, and otherwise with the errors of `out`.
pub fn write_dump(files: &[DumpFile], out: &mut impl Write) -> io::Result<()> {
    for file in files {
        if file.name.contains(['\n', '\r']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("dump file name {:?} holds a line break", file.name),
            ));
        }

        out.write_all(HEADER_START)?;
        out.write_all(file.name.as_bytes())?;
        out.write_all(HEADER_END)?;
        out.write_all(b"\n")?;

        out.write_all(&file.content)?;
        if !file.content.is_empty() && !file.content.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Reads a dump text back into its files.
///
/// Lines before the first header are ignored, so a dump may carry a preamble. A content line
/// that looks exactly like a header cannot be told from one; node logs do not hold such lines.
///
/// # Errors
///
/// [`DumpError::NoHeader`] when a non-blank text has no header at all: it is then most likely
/// something else, such as a still encoded dump64 block. A blank text is an empty dump.
pub fn parse_dump(text: &[u8]) -> Result<Vec<DumpFile>, DumpError> {
    let mut files: Vec<DumpFile> = Vec::new();

    for line in text.split_inclusive(|&b| b == b'\n') {
        if let Some(name) = header_name(line) {
            files.push(DumpFile {
                name,
                content: Vec::new(),
            });
        } else if let Some(file) = files.last_mut() {
            file.content.extend_from_slice(line);
        }
    }

    if files.is_empty() && !text.iter().all(u8::is_ascii_whitespace) {
        return Err(DumpError::NoHeader);
    }
    Ok(files)
}

/// The file name if `line` (with its newline, if any) is a header.
fn header_name(line: &[u8]) -> Option<String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let name = line.strip_prefix(HEADER_START)?.strip_suffix(HEADER_END)?;
    String::from_utf8(name.to_vec()).ok()
}

/// Encodes a dump as a dump64 block: the markers around xz-compressed base64 lines.
///
/// xz rather than raw LZMA because its checksum turns a mangled copy into an error instead of
/// a silently wrong dump. The block ends with a newline.
pub fn encode64(dump: &[u8]) -> String {
    let mut compressed = Vec::new();
    lzma_rs::xz_compress(&mut &dump[..], &mut compressed)
        .expect("compressing into memory cannot fail");
    let encoded = STANDARD.encode(&compressed);

    let mut block = String::with_capacity(encoded.len() + encoded.len() / LINE_WIDTH + 80);
    block.push_str(START_MARKER);
    block.push('\n');
    // Base64 output is ASCII, so cutting it at any byte keeps whole characters.
    for chunk in encoded.as_bytes().chunks(LINE_WIDTH) {
        block.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        block.push('\n');
    }
    block.push_str(END_MARKER);
    block.push('\n');
    block
}

/// Finds the dump64 block in a log and returns the dump inside it.
///
/// The log may hold anything before and after the block. Lines may carry `\r` and surrounding
/// whitespace, and CI runners often put a timestamp before every line: inside the block only
/// the last whitespace-separated token of each line is kept, which base64 never contains
/// spaces to confuse. When a log holds several blocks (a retried job) the last one is read,
/// as it describes the latest state.
///
/// # Errors
///
/// [`DumpError::NoStart`], [`DumpError::NoEnd`], [`DumpError::NotBase64Line`],
/// [`DumpError::Base64`] and [`DumpError::Decompress`], each saying what to give instead.
pub fn decode64(log: &[u8]) -> Result<Vec<u8>, DumpError> {
    let lines: Vec<&[u8]> = log.split(|&b| b == b'\n').collect();
    let start = lines
        .iter()
        .rposition(|line| contains(line, START_MARKER.as_bytes()))
        .ok_or(DumpError::NoStart)?;

    let mut encoded = Vec::new();
    let mut end_found = false;
    for (index, line) in lines.iter().enumerate().skip(start + 1) {
        if contains(line, END_MARKER.as_bytes()) {
            end_found = true;
            break;
        }

        let Some(token) = line
            .split(|b| b.is_ascii_whitespace())
            .rfind(|t| !t.is_empty())
        else {
            continue;
        };
        if !token
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            return Err(DumpError::NotBase64Line {
                line: index + 1,
                token: String::from_utf8_lossy(token).into_owned(),
            });
        }
        encoded.extend_from_slice(token);
    }
    if !end_found {
        return Err(DumpError::NoEnd { line: start + 1 });
    }

    let compressed = STANDARD.decode(&encoded).map_err(DumpError::Base64)?;
    let mut dump = Vec::new();
    lzma_rs::xz_decompress(&mut &compressed[..], &mut dump).map_err(DumpError::Decompress)?;
    Ok(dump)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Where the dump file `name` goes under `root`.
///
/// Names are refused, never cleaned up: a name that needs cleaning did not come from kdind.
/// Besides absolute names, `..`, NUL and the empty name, empty and `.` components (`a//b`,
/// `a/./b`) and backslashes are refused too, so each accepted name has exactly one spelling
/// and means the same on every platform.
///
/// # Errors
///
/// [`DumpError::UnsafeName`] saying what is wrong with the name.
pub fn safe_path(root: &Path, name: &str) -> Result<PathBuf, DumpError> {
    let refuse = |reason| {
        Err(DumpError::UnsafeName {
            name: name.to_owned(),
            reason,
        })
    };

    if name.is_empty() {
        return refuse("is empty");
    }
    if name.contains('\0') {
        return refuse("holds a NUL byte");
    }
    if name.contains('\\') {
        return refuse("holds a backslash; names are separated by `/`");
    }
    if name.starts_with('/') {
        return refuse("is absolute");
    }

    let mut path = root.to_path_buf();
    for part in name.split('/') {
        match part {
            "" => return refuse("has an empty component"),
            "." => return refuse("has a `.` component"),
            ".." => return refuse("has a `..` component"),
            _ => {}
        }
        // Catches what the checks above cannot know about, such as a Windows drive prefix.
        if !matches!(
            Path::new(part).components().next(),
            Some(Component::Normal(_))
        ) {
            return refuse("escapes the dump directory");
        }
        path.push(part);
    }
    Ok(path)
}

/// Writes every file of a dump under `root`, creating directories as needed, and returns the
/// paths written in the order of `files`.
///
/// All names are checked before anything is written, so a dump with one bad name leaves no
/// trace. Existing files are overwritten.
///
/// # Errors
///
/// [`DumpError::UnsafeName`] and [`DumpError::Conflict`] before writing; [`DumpError::Write`]
/// when the file system refuses.
pub fn split_into(files: &[DumpFile], root: &Path) -> Result<Vec<PathBuf>, DumpError> {
    let paths = files
        .iter()
        .map(|file| safe_path(root, &file.name))
        .collect::<Result<Vec<_>, _>>()?;

    // A name used twice, or used both as a file and as a directory, would fail or be lost
    // half way through writing.
    let mut seen = HashSet::new();
    for (file, path) in files.iter().zip(&paths) {
        if !seen.insert(path.as_path()) {
            return Err(DumpError::Conflict {
                name: file.name.clone(),
            });
        }
    }
    for (file, path) in files.iter().zip(&paths) {
        let mut parent = path.parent();
        while let Some(dir) = parent.filter(|dir| *dir != root) {
            if seen.contains(dir) {
                return Err(DumpError::Conflict {
                    name: file.name.clone(),
                });
            }
            parent = dir.parent();
        }
    }

    for (file, path) in files.iter().zip(&paths) {
        let write = |path: &Path| {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::write(path, &file.content)
        };
        write(path).map_err(|source| DumpError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(paths)
}

/// Replaces the secrets a dump may hold with [`REDACTED`].
///
/// Covered: PEM private key blocks of any key type (the markers stay, to show a key was
/// there); the values of `client-certificate-data`, `client-key-data`, `token`, `id-token` and
/// `refresh-token` keys in YAML such as a kubeconfig; bootstrap tokens anywhere; and the
/// values of `--token` style flags (`--token`, `--discovery-token`, `--tls-bootstrap-token`),
/// given as `--flag value` or `--flag=value`. This is a safety net, not a guarantee.
pub fn redact(text: &str) -> String {
    let text = redact_private_keys(text);
    let text = redact_yaml_values(&text);
    let text = redact_token_flags(&text);
    redact_bootstrap_tokens(&text)
}

fn redact_private_keys(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";

    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(BEGIN) {
        let after_begin = &rest[at + BEGIN.len()..];
        let Some(label_len) = after_begin.find(DASHES) else {
            break;
        };
        let label = &after_begin[..label_len];
        let body_start = at + BEGIN.len() + label_len + DASHES.len();

        // The label must sit on one line, or two unrelated runs of dashes were paired up.
        if !label.ends_with("PRIVATE KEY") || label.contains('\n') {
            out.push_str(&rest[..body_start]);
            rest = &rest[body_start..];
            continue;
        }

        out.push_str(&rest[..body_start]);
        out.push('\n');
        out.push_str(REDACTED);
        out.push('\n');

        let end = format!("-----END {label}-----");
        match rest[body_start..].find(&end) {
            Some(end_at) => {
                out.push_str(&end);
                rest = &rest[body_start + end_at + end.len()..];
            }
            // A log cut inside the key: everything after the start may be key material.
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

fn redact_yaml_values(text: &str) -> String {
    const SECRET_KEYS: &[&str] = &[
        "client-certificate-data",
        "client-key-data",
        "token",
        "id-token",
        "refresh-token",
    ];

    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match yaml_secret_value(line, SECRET_KEYS) {
            Some((start, end)) => {
                out.push_str(&line[..start]);
                out.push_str(REDACTED);
                out.push_str(&line[end..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The byte range of the value if `line` is `key: value` for one of `keys`, possibly indented,
/// as a list item (`- key: value`) or with the key quoted.
fn yaml_secret_value(line: &str, keys: &[&str]) -> Option<(usize, usize)> {
    let indent = line.len() - line.trim_start().len();
    let mut rest = &line[indent..];
    if let Some(item) = rest.strip_prefix("- ") {
        rest = item.trim_start();
    }

    let (key, after_key) = rest.split_once(':')?;
    let key = key.trim_matches(|c| c == '"' || c == '\'');
    if !keys.contains(&key) {
        return None;
    }

    let value = after_key.trim();
    if value.is_empty() {
        return None;
    }
    let start = line.len() - after_key.len() + (after_key.len() - after_key.trim_start().len());
    Some((start, start + value.len()))
}

fn redact_token_flags(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;

    while let Some(offset) = text[i..].find("--") {
        let at = i + offset;
        let name_start = at + 2;
        let name_end = name_start
            + text[name_start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(text.len() - name_start);
        let name = &text[name_start..name_end];
        i = name_end.max(at + 2);

        let bounded = at == 0 || matches!(bytes[at - 1], b' ' | b'\t' | b'\n' | b'"' | b'\'');
        if !bounded || !(name == "token" || name.ends_with("-token")) {
            continue;
        }

        let value_start = match bytes.get(name_end) {
            Some(b'=') => name_end + 1,
            Some(b' ' | b'\t') => {
                let skipped = text[name_end..].find(|c| c != ' ' && c != '\t');
                name_end + skipped.unwrap_or(text.len() - name_end)
            }
            _ => continue,
        };
        let value_end = value_start
            + text[value_start..]
                .find(char::is_whitespace)
                .unwrap_or(text.len() - value_start);
        // `--token --other-flag` has no value to hide.
        if value_start == value_end || text[value_start..].starts_with('-') {
            continue;
        }

        out.push_str(&text[copied..value_start]);
        out.push_str(REDACTED);
        copied = value_end;
        i = value_end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Replaces bootstrap tokens, `[a-z0-9]{6}\.[a-z0-9]{16}` standing as a word of their own.
fn redact_bootstrap_tokens(text: &str) -> String {
    const ID: usize = 6;
    const SECRET: usize = 16;
    const LEN: usize = ID + 1 + SECRET;

    let token_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let word_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_';

    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + LEN <= bytes.len() {
        let candidate = &bytes[i..i + LEN];
        let is_token = candidate[..ID].iter().all(|&b| token_char(b))
            && candidate[ID] == b'.'
            && candidate[ID + 1..].iter().all(|&b| token_char(b))
            && (i == 0 || !word_char(bytes[i - 1]))
            && bytes.get(i + LEN).is_none_or(|&b| !word_char(b));

        if is_token {
            // Every byte of a token is ASCII, so `i` and `i + LEN` are character boundaries.
            out.push_str(&text[copied..i]);
            out.push_str(REDACTED);
            copied = i + LEN;
            i += LEN;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &str) -> DumpFile {
        DumpFile {
            name: name.to_owned(),
            content: content.as_bytes().to_vec(),
        }
    }

    fn sample() -> Vec<DumpFile> {
        vec![
            file("kube-master/kubelet.log", "I0101 started\nI0102 running\n"),
            file("kube-master/empty", ""),
            file(
                "kube-node-1/containerd.log",
                "level=info msg=\"@@@ not a header\"\n",
            ),
            file("cluster/pods.yaml", "apiVersion: v1\nkind: List\n"),
        ]
    }

    fn dump_bytes(files: &[DumpFile]) -> Vec<u8> {
        let mut out = Vec::new();
        write_dump(files, &mut out).unwrap();
        out
    }

    #[test]
    fn dump_round_trips() {
        let files = sample();
        assert_eq!(parse_dump(&dump_bytes(&files)).unwrap(), files);
    }

    #[test]
    fn content_without_final_newline_gains_one() {
        let text = dump_bytes(&[file("a", "no newline"), file("b", "x\n")]);
        assert_eq!(text, b"@@@ a @@@\nno newline\n@@@ b @@@\nx\n");
        assert_eq!(parse_dump(&text).unwrap()[0].content, b"no newline\n");
    }

    #[test]
    fn preamble_is_ignored_and_headers_are_exact() {
        let text = b"collected by kdind\n@@@ a @@@\n @@@ b @@@\n@@@ c @@@ \n";
        assert_eq!(
            parse_dump(text).unwrap(),
            vec![file("a", " @@@ b @@@\n@@@ c @@@ \n")]
        );
    }

    #[test]
    fn text_without_headers_is_refused_unless_blank() {
        assert!(matches!(
            parse_dump(b"just a log\n"),
            Err(DumpError::NoHeader)
        ));
        assert_eq!(parse_dump(b"\n").unwrap(), vec![]);
    }

    #[test]
    fn name_with_line_break_is_not_written() {
        let error = write_dump(&[file("a\nb", "")], &mut Vec::new()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn dump64_lines_are_76_wide_between_markers() {
        let dump: Vec<u8> = (0..20_000u32).flat_map(|n| n.to_le_bytes()).collect();
        let block = encode64(&dump);
        let lines: Vec<&str> = block.lines().collect();

        assert_eq!(lines[0], START_MARKER);
        assert_eq!(*lines.last().unwrap(), END_MARKER);
        let body = &lines[1..lines.len() - 1];
        assert!(body[..body.len() - 1].iter().all(|line| line.len() == 76));
        assert!(body.last().unwrap().len() <= 76);
    }

    #[test]
    fn dump64_is_found_in_a_longer_log() {
        let dump = dump_bytes(&sample());
        let log = format!(
            "Run cargo test\n  some output\r\n{}\r\nPost job cleanup.\n",
            encode64(&dump).replace('\n', "\r\n  ")
        );
        assert_eq!(decode64(log.as_bytes()).unwrap(), dump);
    }

    #[test]
    fn dump64_survives_timestamp_prefixes() {
        let dump = dump_bytes(&sample());
        let log: String = format!("starting\n{}done\n", encode64(&dump))
            .lines()
            .enumerate()
            .map(|(n, line)| format!("2024-05-01T12:00:{:02}.1234567Z {line}\n", n % 60))
            .collect();
        assert_eq!(decode64(log.as_bytes()).unwrap(), dump);
    }

    #[test]
    fn last_dump64_block_wins() {
        let log = format!("{}{}", encode64(b"first"), encode64(b"second"));
        assert_eq!(decode64(log.as_bytes()).unwrap(), b"second");
    }

    #[test]
    fn broken_dump64_says_what_is_wrong() {
        let block = encode64(b"@@@ a @@@\nhello\n");

        assert!(matches!(
            decode64(b"no dump here\n"),
            Err(DumpError::NoStart)
        ));

        let cut = block.replace(END_MARKER, "");
        assert!(matches!(
            decode64(cut.as_bytes()),
            Err(DumpError::NoEnd { line: 1 })
        ));

        let garbled = block.replacen('\n', "\nnot*base64\n", 1);
        assert!(matches!(
            decode64(garbled.as_bytes()),
            Err(DumpError::NotBase64Line { line: 2, .. })
        ));

        let unpadded = format!("{START_MARKER}\nQUJD=\n{END_MARKER}\n");
        assert!(matches!(
            decode64(unpadded.as_bytes()),
            Err(DumpError::Base64(_))
        ));

        let not_xz = format!(
            "{START_MARKER}\n{}\n{END_MARKER}\n",
            STANDARD.encode(b"plain")
        );
        assert!(matches!(
            decode64(not_xz.as_bytes()),
            Err(DumpError::Decompress(_))
        ));
    }

    #[test]
    fn safe_path_accepts_plain_relative_names() {
        let root = Path::new("cluster-dump");
        assert_eq!(
            safe_path(root, "kube-master/kubelet.log").unwrap(),
            root.join("kube-master").join("kubelet.log")
        );
        assert_eq!(
            safe_path(root, "..hidden/a..b").unwrap(),
            root.join("..hidden").join("a..b")
        );
    }

    #[test]
    fn safe_path_refuses_escaping_names() {
        let root = Path::new("cluster-dump");
        for name in [
            "",
            "../x",
            "/etc/passwd",
            "a/../../b",
            "a/..",
            "a/./b",
            "./a",
            "a//b",
            "a/",
            "a\0b",
            "a\\b",
        ] {
            assert!(
                matches!(safe_path(root, name), Err(DumpError::UnsafeName { .. })),
                "{name:?} was accepted"
            );
        }
    }

    #[test]
    fn split_into_writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cluster-dump");
        let files = sample();

        let paths = split_into(&files, &root).unwrap();

        assert_eq!(paths.len(), files.len());
        for (file, path) in files.iter().zip(&paths) {
            assert_eq!(fs::read(path).unwrap(), file.content);
        }
    }

    #[test]
    fn split_into_writes_nothing_for_a_bad_name() {
        for bad in ["../x", "/etc/passwd", "a/../../b"] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("cluster-dump");
            let files = vec![file("good/first.log", "ok\n"), file(bad, "evil\n")];

            assert!(matches!(
                split_into(&files, &root),
                Err(DumpError::UnsafeName { .. })
            ));
            assert!(!root.exists(), "{bad:?} left files behind");
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn split_into_refuses_conflicting_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("d");
        for files in [
            vec![file("a", "1\n"), file("a", "2\n")],
            vec![file("a", "1\n"), file("a/b", "2\n")],
            vec![file("a/b/c", "1\n"), file("a", "2\n")],
        ] {
            assert!(matches!(
                split_into(&files, &root),
                Err(DumpError::Conflict { .. })
            ));
            assert!(!root.exists());
        }
    }

    #[test]
    fn redacts_private_key_blocks_of_any_type() {
        for kind in [
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
        ] {
            let text = format!(
                "before\n-----BEGIN {kind}-----\nMIIEsecret\nmore\n-----END {kind}-----\nafter\n"
            );
            assert_eq!(
                redact(&text),
                format!(
                    "before\n-----BEGIN {kind}-----\n[redacted]\n-----END {kind}-----\nafter\n"
                )
            );
        }
    }

    #[test]
    fn redacts_a_cut_off_private_key_to_the_end() {
        let text = "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\n";
        assert_eq!(
            redact(text),
            "x\n-----BEGIN RSA PRIVATE KEY-----\n[redacted]\n"
        );
    }

    #[test]
    fn keeps_certificates_and_public_keys_outside_secret_fields() {
        let text = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n\
                    -----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
        assert_eq!(redact(text), text);
    }

    #[test]
    fn redacts_kubeconfig_fields() {
        let text = "\
users:
- name: kubernetes-admin
  user:
    client-certificate-data: LS0tLS1CRUdJTi==
    client-key-data: LS0tLS1CRUdJTiBSU0E=\r
- name: bot
  user:
    token: eyJhbGciOiJSUzI1NiJ9.payload.sig
    \"token\": 'quoted'
clusters:
- cluster:
    certificate-authority-data: LS0tLS1DQQ==
";
        let expected = "\
users:
- name: kubernetes-admin
  user:
    client-certificate-data: [redacted]
    client-key-data: [redacted]\r
- name: bot
  user:
    token: [redacted]
    \"token\": [redacted]
clusters:
- cluster:
    certificate-authority-data: LS0tLS1DQQ==
";
        assert_eq!(redact(text), expected);
    }

    #[test]
    fn redacts_bootstrap_tokens_anywhere() {
        assert_eq!(
            redact("kubeadm join 10.0.0.2:6443 with abcdef.0123456789abcdef, ok"),
            "kubeadm join 10.0.0.2:6443 with [redacted], ok"
        );
        assert_eq!(redact("\"abcdef.0123456789abcdef\""), "\"[redacted]\"");
        // Not standing alone, or not the right shape: left as they are.
        for text in [
            "xabcdef.0123456789abcdef",
            "abcdef.0123456789abcdefg",
            "ABCDEF.0123456789ABCDEF",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn redacts_token_flags() {
        assert_eq!(
            redact("kubeadm join --token s3cr3t --discovery-token-ca-cert-hash sha256:ab\n"),
            "kubeadm join --token [redacted] --discovery-token-ca-cert-hash sha256:ab\n"
        );
        assert_eq!(redact("run --token=s3cr3t -v"), "run --token=[redacted] -v");
        assert_eq!(
            redact("--discovery-token  s3cr3t\t--tls-bootstrap-token=x"),
            "--discovery-token  [redacted]\t--tls-bootstrap-token=[redacted]"
        );
        assert_eq!(
            redact("--token-ttl 24h --token --v=5"),
            "--token-ttl 24h --token --v=5"
        );
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let text = "\
I0501 12:00:00.000000 kubelet.go:1 \"Started kubelet\" node=\"kube-master\" --- ok
kind: Config
tokenizer: none
description: the token: field is documented elsewhere
server: https://10.192.0.2:6443
version v1.31.0-alpha.3.123+abcdef0123456789 é ünïcode
-----BEGIN something odd
";
        assert_eq!(redact(text), text);
    }
}
