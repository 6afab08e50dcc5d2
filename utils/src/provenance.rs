//! Where a run came from: the source revision, read once before the run
//! touches anything (so a run's own outputs cannot make it "dirty").
//!
//! "Dirty" means the *sources* differ from `HEAD`: a tracked file changed
//! (outside `results/`, where runs write their outputs), or an untracked
//! source file exists (`.rs`, `.toml`, `Cargo.lock`). An untracked log or
//! plot a user left in the checkout does not count.

use std::path::Path;
use std::process::Command;

pub use protocol::sidecar::GitRevision;

/// A BLAKE2b-256 digest in lowercase hex, as `b2sum -l 256` prints it.
pub fn blake2b_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// BLAKE2b-256 of a file's bytes, in lowercase hex (a run's sidecar
/// records its scenario's: `scenario_blake2b`), read in 1 MiB pieces.
pub fn file_blake2b(path: &Path) -> std::io::Result<String> {
    use blake2::digest::consts::U32;
    use blake2::{Blake2b, Digest};
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Blake2b::<U32>::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(blake2b_hex(&hasher.finalize()))
}

/// A digest's first 12 hex digits, enough to tell two apart in a
/// message (the whole digest if shorter).
pub fn short_digest(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// Top-level folders whose changes are outputs, not sources.
const OUTPUT_DIRS: &[&str] = &["results/", "target/"];

/// The revision of the git checkout containing `dir` (the current
/// directory if `None`), or `None` outside a checkout or without `git`.
pub fn git_revision(dir: Option<&Path>) -> Option<GitRevision> {
    let git = |args: &[&str]| -> Option<Vec<u8>> {
        let mut c = Command::new("git");
        if let Some(d) = dir {
            c.arg("-C").arg(d);
        }
        let out = c
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    };
    let commit = String::from_utf8(git(&["rev-parse", "HEAD"])?).ok()?;
    let commit = commit.trim().to_string();
    if commit.is_empty() {
        return None;
    }
    // Paths relative to the top level (`:/`), NUL-separated.
    let status = git(&[
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--",
        ":/",
    ])?;
    Some(GitRevision {
        commit,
        dirty: status_is_dirty(&status),
    })
}

/// Reads `git status --porcelain=v1 -z` output: true if a source changed.
fn status_is_dirty(status: &[u8]) -> bool {
    let mut entries = status.split(|&b| b == 0).filter(|e| e.len() > 3);
    while let Some(entry) = entries.next() {
        let code = &entry[..2];
        let path = String::from_utf8_lossy(&entry[3..]);
        if code[0] == b'R' || code[0] == b'C' {
            // A rename's or copy's source path follows as its own entry.
            entries.next();
        }
        if OUTPUT_DIRS.iter().any(|d| path.starts_with(d)) {
            continue;
        }
        if code == b"??" {
            if is_source(&path) {
                return true;
            }
            continue;
        }
        return true;
    }
    false
}

fn is_source(path: &str) -> bool {
    path.ends_with(".rs") || path.ends_with(".toml") || path.ends_with("Cargo.lock")
}

#[cfg(test)]
mod tests {
    /// BLAKE2b-256 of known bytes (RFC 7693's "abc", 256-bit output, as
    /// `b2sum -l 256` prints it), over pieces larger than the read buffer.
    #[test]
    fn file_digests_are_blake2b_256_in_hex() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, "abc").unwrap();
        assert_eq!(
            super::file_blake2b(&p).unwrap(),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
        );
        std::fs::write(&p, vec![7u8; 3 << 20]).unwrap();
        let whole = super::file_blake2b(&p).unwrap();
        assert_eq!(whole.len(), 64);
        std::fs::write(&p, vec![7u8; (3 << 20) + 1]).unwrap();
        assert_ne!(super::file_blake2b(&p).unwrap(), whole);
        assert!(super::file_blake2b(&dir.path().join("missing")).is_err());
    }

    use super::*;

    #[test]
    fn outputs_and_stray_files_are_not_dirty() {
        assert!(!status_is_dirty(b""));
        assert!(!status_is_dirty(b" M results/default/report.md\0"));
        assert!(!status_is_dirty(b"?? run.log\0?? figs/cdf.png\0"));
        assert!(status_is_dirty(b"?? utils/src/new.rs\0"));
        assert!(status_is_dirty(b" M utils/src/lib.rs\0"));
        assert!(status_is_dirty(b"M  README.md\0"));
        assert!(status_is_dirty(b"R  b.rs\0a.rs\0"));
        assert!(!status_is_dirty(b"R  results/b\0results/a\0"));
    }

    #[test]
    fn reads_this_checkout_or_nothing() {
        // In a clone of the project this names HEAD; in an exported tree
        // without git it is None. Either way it never panics, and a
        // directory outside any checkout gives None.
        if let Some(r) = git_revision(None) {
            assert_eq!(r.commit.len(), 40, "{r:?}");
        }
        assert!(git_revision(Some(Path::new("/"))).is_none());
    }
}
