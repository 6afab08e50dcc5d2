//! Where a run came from: the revision of the sources its binary was
//! built from ([`mod@source_revision`]: each crate's build script reads `HEAD`
//! and `git status` over the sources it compiles, and reruns whenever one
//! of them or `HEAD` changes). A run started in any directory (a paper's
//! own repository, `/tmp`) so records the code that ran: neither the
//! revision of whatever checkout it was started in, nor a newer one
//! checked out after the binary was built. "Dirty": a source differed
//! from `HEAD` when the binary was built; commit, then build, to record a
//! clean revision.

use std::path::Path;

pub use protocol::sidecar::GitRevision;

/// The revision of the sources `utils` was built from (its importers
/// record it), or `None` if built outside a git checkout or without
/// `git`. A binary records its own: `git_revision_of(source_revision::built_from!())`.
pub fn source_revision() -> Option<GitRevision> {
    git_revision_of(source_revision::built_from!())
}

/// A [`source_revision::Revision`] as a run's record holds it.
pub fn git_revision_of(r: Option<source_revision::Revision>) -> Option<GitRevision> {
    r.map(|r| GitRevision {
        commit: r.commit.to_string(),
        dirty: r.dirty,
    })
}

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

    /// The build script's revision is this checkout's `HEAD` (cargo
    /// reran it on the last commit): a clone of the project names it, an
    /// exported tree without git gives `None`.
    #[test]
    fn the_recorded_revision_is_the_checkouts_head_at_build_time() {
        let head =
            source_revision::build::head_commit(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
        let recorded = super::source_revision();
        assert_eq!(recorded.as_ref().map(|r| r.commit.clone()), head);
        if let Some(r) = recorded {
            assert_eq!(r.commit.len(), 40, "{r:?}");
        }
    }
}
