//! The git revision of the sources a binary was built from, so that what
//! a run records is the code that ran: not the revision of whatever
//! checkout it was started in (a researcher's own repository, say), and
//! not a newer one checked out after the binary was built.
//!
//! Two halves. A crate's build script calls [`build::emit`], which reads
//! `HEAD` and `git status` over the sources the crate is built from (the
//! `src/` folder and the files beside it, not tests, benches or Markdown,
//! of the crate and of the workspace crates it links, transitively, plus
//! the root manifest and lock file), sets
//! `HF_SOURCE_COMMIT` and `HF_SOURCE_DIRTY` for the crate, and asks Cargo
//! to rerun it when any of those sources or `HEAD` change: a crate is
//! rebuilt then anyway, so the record cannot go stale and costs no extra
//! build. The crate's code then calls [`built_from!`], which returns what
//! its own build script read.
//!
//! "Dirty" means a source differed from `HEAD` when the crate was built
//! ([`status::status_is_dirty`]): commit, then build, to record a clean
//! revision.

pub mod build;
pub mod status;

/// A crate's sources' revision, as its build script read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    /// Full commit hash of `HEAD`.
    pub commit: &'static str,
    /// True if a source differed from `HEAD` at build time.
    pub dirty: bool,
}

impl Revision {
    /// From the two variables [`build::emit`] sets (`None` if it set
    /// none: built outside a git checkout or without `git`).
    pub fn from_env(commit: Option<&'static str>, dirty: Option<&'static str>) -> Option<Self> {
        commit.map(|commit| Self {
            commit,
            dirty: dirty == Some("1"),
        })
    }
}

/// The revision the calling crate's build script read
/// ([`build::emit`]), as an `Option<`[`Revision`]`>`. A macro, so that it
/// reads the caller's build-time variables, not this crate's.
#[macro_export]
macro_rules! built_from {
    () => {
        $crate::Revision::from_env(
            option_env!("HF_SOURCE_COMMIT"),
            option_env!("HF_SOURCE_DIRTY"),
        )
    };
}
