//! Replay, discrete-event simulation and experiments.
//!
//! # Layout
//! - [`replay`]: real-time replay of a scenario against a live balancer;
//!   [`replay::replay`] is the library entry point (with
//!   [`replay::ReplayOptions`] and a [`replay::StopHandle`]).
//! - [`des`]: discrete-event simulation over the same scheduler and worker
//!   policy code.
//! - [`load`]: closed-loop load (virtual clients, each sending its next
//!   call when the last returns) against a live balancer, in replay's log
//!   format; [`load::load`] with [`load::LoadOptions`].
//! - [`calibrate`]: measures a live worker's cost profile for [`des`];
//!   [`profile_origin`] says which machine a profile describes.
//! - [`experiment`]: one command that runs a whole comparison (workers and
//!   balancers as child processes, or the DES), then writes
//!   `results/<name>/report.md`; [`experiment::run_experiment`].
//! - [`reproduce`]: one command per published study (`hotfunctions`,
//!   `chrlu`, `hiku`, `keepalive`), each writing `results/<study>/`.

/// `eprintln!` that never panics: where stderr is closed or fails (a log
/// pipe whose reader ended, a terminal gone), the line is lost, not the
/// run (`eprintln!` panicked there, in the middle of an experiment).
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that never panics, as [`note!`] for stdout (a run's
/// summary piped into `head`).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod calibrate;
pub mod des;
pub mod experiment;
pub mod load;
pub mod profile_origin;
pub mod replay;
pub mod reproduce;

/// The revision of the sources this simulator was built from (every
/// crate of the workspace it links), as its runs record it; `None` if
/// built outside a git checkout or without `git`
/// ([`mod@source_revision`]).
pub fn source_revision() -> Option<protocol::sidecar::GitRevision> {
    utils::provenance::git_revision_of(source_revision::built_from!())
}

/// This run's command line as recorded in reports (`simulator ...`, an
/// argument quoted where it holds a space or a quote).
pub fn command_line() -> String {
    std::iter::once("simulator".to_string())
        .chain(std::env::args().skip(1))
        .map(|a| {
            if a.contains([' ', '"', '\'']) {
                format!("{a:?}")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An error and its causes in one line (shared with `utils`).
pub use utils::error_text;

/// Makes the output directory `dir` if missing and takes an exclusive
/// flock on the directory itself, held while the returned handle lives
/// (the kernel drops it when the process ends, even by `kill -9`; no
/// file is left behind). A second run into the same directory is refused
/// (`Ok(None)`) instead of mixing its outputs with the first one's, or,
/// with `--overwrite`, deleting them while the first still writes.
pub fn claim_output_dir(dir: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
    std::fs::create_dir_all(dir)?;
    let handle = std::fs::File::open(dir)?;
    match handle.try_lock() {
        Ok(()) => Ok(Some(handle)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
