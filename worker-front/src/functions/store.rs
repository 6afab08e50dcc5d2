//! The worker's data directory of user functions (the store itself,
//! shared with the balancer, is [`sample_functions::user::store`], whose
//! items are re-exported here).

use sample_functions::user::store;
pub use sample_functions::user::store::*;
use std::path::{Path, PathBuf};

/// The data directory, held locked.
#[derive(Debug)]
pub struct DataDir {
    dir: PathBuf,
    /// The flock of a kept data dir (a temporary area holds its own).
    _lock: Option<std::fs::File>,
    /// A temporary area removed at shutdown (no `--data-dir` given).
    area: Option<crate::runtime::ownership::WorkArea>,
}

/// `dir` made absolute (against the worker's working directory, without
/// resolving links): an instance runs in its version's code directory,
/// so a path relative to the worker's would not name its entry there.
fn absolute(dir: &Path) -> Result<PathBuf, String> {
    std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

impl DataDir {
    /// Claims `dir` (made if missing): refused when another worker holds it.
    pub fn claim(dir: &Path) -> Result<Self, String> {
        let dir = &absolute(dir)?;
        let lock = store::claim_dir(dir, "worker")?;
        store::layout(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: Some(lock),
            area: None,
        })
    }

    /// A fresh area of the worker's own under `work_dir` (its functions
    /// go with the worker).
    pub fn temporary(work_dir: &Path, worker_id: &str) -> Result<Self, String> {
        // Recorded as a process-runtime area: it holds only files (the
        // functions' processes end with the worker), so the next worker of
        // either runtime removes it if this one dies without cleaning up.
        // Its own name (`<id>+functions`), beside the runtime's area.
        let id = format!("{worker_id}+functions");
        let area = crate::runtime::ownership::WorkArea::claim(work_dir, &id, "process")
            .map_err(|e| e.to_string())?;
        let dir = absolute(area.dir())?;
        store::layout(&dir)?;
        Ok(Self {
            dir,
            _lock: None,
            area: Some(area),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether it goes with the worker.
    pub fn is_temporary(&self) -> bool {
        self.area.is_some()
    }

    pub fn blob(&self, digest: &str) -> PathBuf {
        store::blob_path(&self.dir, digest)
    }

    pub fn code(&self, digest: &str) -> PathBuf {
        self.dir.join("code").join(digest)
    }

    pub fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub fn database(&self) -> PathBuf {
        self.dir.join("functions.sqlite")
    }

    /// Removes a temporary area (a kept data dir stays).
    pub fn remove_if_temporary(&mut self) {
        if let Some(area) = self.area.take() {
            if let Err(e) = area.remove() {
                tracing::warn!("removing the functions' area: {e}");
            }
        }
    }
}
