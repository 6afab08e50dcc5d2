//! Users' own functions in a cluster (issue 14 §2, "In a cluster"): the
//! balancer holds the store, the workers fetch from it.
//!
//! The balancer serves the Glambdar routes a lone worker serves
//! (`worker_front::functions::http`): `POST /deploy`, `ANY /invoke/:name`,
//! `GET /info[/:name]`, `GET /logs/:name`, `DELETE /del/:name`,
//! `POST /config/:name`, with the same shapes, and one route of its own,
//! `GET /packages/<sha256>` (management), from which workers fetch a
//! package.
//!
//! # Where things are
//! - The packages and their metadata: here, in the store shared with the
//!   worker (`sample_functions::user::store`: `blobs/<sha256>.zip` and
//!   `functions.sqlite`) in the balancer's `--data-dir` (without it, a
//!   temporary directory removed at exit, or by the next balancer
//!   started without one when this one was killed), locked while the balancer
//!   runs; a restarted balancer knows every function. A deploy is checked
//!   (`sample_functions::user::package::unpack` into a scratch directory,
//!   removed at once) before anything is stored, so a bad package is a 400
//!   that keeps the previous version.
//! - Versions are the balancer's: each deploy of a name is the next
//!   version. A call through the balancer tells the chosen worker the
//!   version and digest it must run (`X-Hf-Function-Version`,
//!   `X-Hf-Function-Digest`); a worker that has not that version fetches
//!   `GET /packages/<digest>` from its `--functions-from` (default: its
//!   `--join`) URL, checks the SHA-256, and deploys it under that version
//!   (`worker_front::functions::Functions::ensure`). So a worker added
//!   later runs every function, and a redeploy reaches each worker on its
//!   next call there; calls in flight on a worker finish on the version
//!   they started on.
//! - Rate limits (`rateLimit`: a token bucket at r/s, burst max(1, r/10),
//!   `sample_functions::user::rate`) are enforced here for calls through
//!   the balancer (429 JSON); the workers run fetched functions unlimited.
//! - Counters: the balancer records every call it forwarded (calls,
//!   errors, mean duration, last call) in its database; `/info` adds each
//!   node's own counters (fanned out to the online nodes) and the calls
//!   refused by the rate limit since the balancer started (`Throttled`);
//!   `/logs/:name` merges the nodes' logs (with what the function wrote).
//! - `DELETE /del/:name` removes the function here and fans `DELETE
//!   /del/:name` out to every online node (a node that never ran it
//!   answers 404, which is fine).

pub mod http;

use bytes::Bytes;
use sample_functions::user::package::{self, Limits, PackageError};
use sample_functions::user::rate::{self, TokenBucket};
use sample_functions::user::store::{self, CallRow, Counters, Db, FunctionRow};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Failures of the Glambdar routes on the balancer (statuses in
/// [`FunctionError::status`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FunctionError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("no function named {0:?}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("function {name:?} is over its rate limit of {rate} calls per second")]
    RateLimited { name: String, rate: f64 },
    #[error("the functions' store failed: {0}")]
    Store(String),
}

impl FunctionError {
    /// The HTTP status (the worker's choices).
    pub fn status(&self) -> u16 {
        match self {
            Self::Package(PackageError::TooLarge(_)) => 413,
            Self::Package(PackageError::Io(_)) | Self::Store(_) => 500,
            Self::Package(PackageError::NoSpace(_)) => 507,
            Self::Package(_) | Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::RateLimited { .. } => 429,
        }
    }
}

/// One function as the balancer knows it (its current version).
#[derive(Debug)]
pub struct Entry {
    pub row: FunctionRow,
    /// Its manifest's `idempotent` (`sample_functions::user::package`):
    /// a call may be sent again when its worker died with it in flight.
    pub idempotent: bool,
    rate: Arc<Mutex<TokenBucket>>,
    counters: Arc<Mutex<Counters>>,
    throttled: Arc<AtomicU64>,
}

impl Entry {
    /// Takes a token of the rate limit at `now`; Err: the 429.
    pub fn admit(&self, now: std::time::Instant) -> Result<(), FunctionError> {
        let mut bucket = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        if bucket.try_take(now) {
            return Ok(());
        }
        self.throttled.fetch_add(1, Ordering::Relaxed);
        Err(FunctionError::RateLimited {
            name: self.row.name.clone(),
            rate: bucket.rate(),
        })
    }
}

/// What `/info` says of a function at the balancer (before the nodes').
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredInfo {
    #[serde(flatten)]
    pub row: FunctionRow,
    pub entry: String,
    pub calls: u64,
    pub errors: u64,
    pub mean_duration_ms: f64,
    pub last_call_ms: Option<i64>,
    /// Calls refused by the rate limit since the balancer started.
    pub throttled: u64,
}

pub use sample_functions::user::wire::DeployReport;

/// The balancer's store of user functions. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct FunctionStore {
    dir: PathBuf,
    /// Removed at [`FunctionStore::close`] (no `--data-dir`).
    temporary: bool,
    _lock: std::fs::File,
    db: Db,
    table: RwLock<HashMap<String, Arc<Entry>>>,
    /// Deploys, deletes and rate changes, one at a time.
    changes: tokio::sync::Mutex<()>,
    limits: Limits,
    sequence: AtomicU64,
}

#[allow(clippy::disallowed_methods)] // deploy and call times (the edge)
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl FunctionStore {
    /// Opens (claiming) `data_dir`, or a fresh temporary directory when
    /// None, and loads the functions deployed before.
    pub async fn open(data_dir: Option<&Path>) -> Result<Self, String> {
        let (dir, temporary) = match data_dir {
            Some(d) => (d.to_path_buf(), false),
            None => {
                remove_orphaned_temporary_stores();
                (new_temporary_store()?, true)
            }
        };
        let lock = store::claim_dir(&dir, "balancer")?;
        store::layout(&dir)?;
        let db = Db::open(&dir.join("functions.sqlite"))?;
        let mut table = HashMap::new();
        for (row, counters) in db.load().await? {
            if !store::blob_path(&dir, &row.digest).is_file() {
                tracing::warn!(
                    "function {}: its package {} is missing; skipped",
                    row.name,
                    row.digest
                );
                continue;
            }
            table.insert(
                row.name.clone(),
                Arc::new(Entry {
                    idempotent: idempotent(&row),
                    rate: Arc::new(Mutex::new(TokenBucket::new(row.rate_limit))),
                    counters: Arc::new(Mutex::new(counters)),
                    throttled: Arc::default(),
                    row,
                }),
            );
        }
        Ok(Self {
            dir,
            temporary,
            _lock: lock,
            db,
            table: RwLock::new(table),
            changes: tokio::sync::Mutex::new(()),
            limits: Limits::default(),
            sequence: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The current version of `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Entry>, FunctionError> {
        self.read()
            .get(name)
            .cloned()
            .ok_or_else(|| FunctionError::NotFound(name.into()))
    }

    /// The stored zip of `digest`, if a deployed version uses it.
    pub fn package(&self, digest: &str) -> Option<PathBuf> {
        if !store::is_digest(digest) || !self.read().values().any(|e| e.row.digest == digest) {
            return None;
        }
        Some(store::blob_path(&self.dir, digest)).filter(|p| p.is_file())
    }

    /// Checks `zip` and stores it as the next version of `name`.
    pub async fn deploy(
        &self,
        name: &str,
        zip: Bytes,
        rate_limit: Option<f64>,
    ) -> Result<DeployReport, FunctionError> {
        package::check_name(name)?;
        if let Some(r) = rate_limit {
            check_rate(r)?;
        }
        let limits = self.limits;
        if zip.len() as u64 > limits.max_upload_bytes {
            return Err(PackageError::TooLarge(limits.max_upload_bytes).into());
        }
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let scratch = self.dir.join("tmp").join(format!("check-{seq}"));
        let blob = {
            let zip = zip.clone();
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir(&scratch).map_err(|e| package::disk_error("unpacking", e))?;
                let checked = package::unpack(&zip, &scratch, &limits);
                let _ = std::fs::remove_dir_all(&scratch);
                let unpacked = checked?;
                let digest = store::digest(&zip);
                store::store_blob(&dir, &digest, &zip, seq)
                    .map_err(|e| package::disk_error("storing the package", e))?;
                Ok::<_, PackageError>((unpacked, digest))
            })
            .await
            .map_err(|e| FunctionError::Store(e.to_string()))??
        };
        let (unpacked, digest) = blob;
        let _changing = self.changes.lock().await;
        let old = self.read().get(name).cloned();
        let rate = rate_limit
            .or_else(|| {
                old.as_ref()
                    .map(|o| o.rate.lock().unwrap_or_else(|e| e.into_inner()).rate())
            })
            .unwrap_or(0.0);
        let row = FunctionRow::deployed(
            name,
            old.as_ref().map_or(1, |o| o.row.version + 1),
            &digest,
            zip.len() as u64,
            &unpacked,
            rate,
            unix_ms(),
        );
        self.db
            .put(row.clone())
            .await
            .map_err(FunctionError::Store)?;
        let entry = match &old {
            Some(o) => {
                if rate_limit.is_some() {
                    *o.rate.lock().unwrap_or_else(|e| e.into_inner()) =
                        TokenBucket::new(row.rate_limit);
                }
                Entry {
                    idempotent: unpacked.manifest.idempotent,
                    row: row.clone(),
                    rate: o.rate.clone(),
                    counters: o.counters.clone(),
                    throttled: o.throttled.clone(),
                }
            }
            None => Entry {
                idempotent: unpacked.manifest.idempotent,
                row: row.clone(),
                rate: Arc::new(Mutex::new(TokenBucket::new(row.rate_limit))),
                counters: Arc::default(),
                throttled: Arc::default(),
            },
        };
        self.table
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(entry));
        if let Some(o) = &old {
            self.forget_blob_if_unused(&o.row.digest);
        }
        tracing::info!(
            "deployed function {name} v{} ({} bytes, {}, sha256 {digest})",
            row.version,
            row.size,
            row.runtime
        );
        Ok(DeployReport {
            message: "deployed".into(),
            name: name.into(),
            version: row.version,
            digest,
            size: row.size,
            unpacked_bytes: unpacked.bytes,
            entries: unpacked.entries,
            runtime: row.runtime,
            rate_limit: row.rate_limit,
            replaced: old.map(|o| o.row.version),
        })
    }

    fn forget_blob_if_unused(&self, digest: &str) {
        if !self.read().values().any(|e| e.row.digest == digest) {
            let _ = std::fs::remove_file(store::blob_path(&self.dir, digest));
        }
    }

    /// Removes `name` from the store (its record, calls and package).
    pub async fn delete(&self, name: &str) -> Result<u64, FunctionError> {
        let _changing = self.changes.lock().await;
        let old = self.get(name)?;
        self.db.delete(name).await.map_err(FunctionError::Store)?;
        self.table
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.forget_blob_if_unused(&old.row.digest);
        tracing::info!("deleted function {name} (v{})", old.row.version);
        Ok(old.row.version)
    }

    /// Sets the rate limit of `name` (0 = unlimited).
    pub async fn set_rate(&self, name: &str, rate: f64) -> Result<(), FunctionError> {
        check_rate(rate)?;
        let _changing = self.changes.lock().await;
        let e = self.get(name)?;
        self.db
            .set_rate(name, rate)
            .await
            .map_err(FunctionError::Store)?;
        *e.rate.lock().unwrap_or_else(|e| e.into_inner()) = TokenBucket::new(rate);
        Ok(())
    }

    /// Records a call forwarded to a node (batched, never waits).
    pub fn record_call(&self, entry: &Entry, call: CallRow) {
        let failed = call.status >= 500;
        {
            let mut c = entry.counters.lock().unwrap_or_else(|e| e.into_inner());
            c.calls += 1;
            c.errors += failed as u64;
            c.total_ms += call.duration_ms;
            c.last_call_ms = Some(call.time_ms);
        }
        self.db.record_call(&entry.row.name, call, failed);
    }

    /// The balancer's view of `entry`.
    pub fn info_of(entry: &Entry) -> StoredInfo {
        let c = *entry.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut row = entry.row.clone();
        row.rate_limit = entry.rate.lock().unwrap_or_else(|e| e.into_inner()).rate();
        let entry_file = serde_json::from_str::<package::Manifest>(&row.manifest)
            .map(|m| m.entry().to_string())
            .unwrap_or_default();
        StoredInfo {
            row,
            entry: entry_file,
            calls: c.calls,
            errors: c.errors,
            mean_duration_ms: if c.calls > 0 {
                c.total_ms / c.calls as f64
            } else {
                0.0
            },
            last_call_ms: c.last_call_ms,
            throttled: entry.throttled.load(Ordering::Relaxed),
        }
    }

    /// Every function, by name.
    pub fn all(&self) -> Vec<Arc<Entry>> {
        let mut all: Vec<Arc<Entry>> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.row.name.cmp(&b.row.name));
        all
    }

    /// Every function's name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Commits the calls recorded so far and closes the database; removes
    /// a temporary store (a `--data-dir` stays).
    pub async fn close(&self) {
        if let Err(e) = self.db.close().await {
            tracing::warn!("closing the functions database: {e}");
        }
        if self.temporary {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!("removing {}: {e}", self.dir.display());
            }
        }
    }
}

/// The name of a temporary store (no `--data-dir`) starts so, under the
/// system's temporary directory.
const TEMPORARY_PREFIX: &str = "hf-balancer-functions.";

/// Makes a fresh temporary store directory, its own even when balancers
/// in one process (tests) start in the same millisecond: the name has the
/// pid, the time and a count, and the directory is made exclusively.
fn new_temporary_store() -> Result<PathBuf, String> {
    static MADE: AtomicU64 = AtomicU64::new(0);
    // A `FROM scratch` image has no temporary directory until one is made.
    let base = std::env::temp_dir();
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    loop {
        let dir = base.join(format!(
            "{TEMPORARY_PREFIX}{}.{}.{}",
            std::process::id(),
            unix_ms(),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("temporary store {}: {e}", dir.display())),
        }
    }
}

/// Removes the temporary stores of balancers that ended without removing
/// theirs (killed): those whose `owner.lock` nobody holds, and that have
/// their database (made only after the lock was taken, so a store being
/// made, between its `mkdir` and its lock, is never taken for an orphan).
/// A store whose lock is held belongs to a running balancer and is left
/// alone.
fn remove_orphaned_temporary_stores() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(TEMPORARY_PREFIX) {
            continue;
        }
        let dir = e.path();
        if !dir.join("functions.sqlite").is_file() {
            continue;
        }
        let Ok(lock) = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("owner.lock"))
        else {
            continue;
        };
        if lock.try_lock().is_ok() {
            tracing::info!(
                "removing an ended balancer's temporary store {}",
                dir.display()
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// The `idempotent` of a stored row's manifest (false when unreadable).
fn idempotent(row: &FunctionRow) -> bool {
    serde_json::from_str::<package::Manifest>(&row.manifest).is_ok_and(|m| m.idempotent)
}

fn check_rate(r: f64) -> Result<(), FunctionError> {
    if rate::valid_rate(r) {
        Ok(())
    } else {
        Err(FunctionError::BadRequest(format!(
            "rateLimit {r} is not a number from 0 to {}",
            rate::MAX_RATE
        )))
    }
}
