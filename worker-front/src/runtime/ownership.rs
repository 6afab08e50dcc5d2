//! What a worker owns, and how another worker proves that something is
//! nobody's (issue 13 §1, "never touch what is not ours").
//!
//! A worker id (`--worker-id`, default `worker-<port>`) names a worker for
//! people and logs, but two workers may share one: the same port in two
//! network namespaces, two users, a copy-pasted command line. So ownership
//! never goes by the worker id. Each runtime, when made, draws an
//! [`InstanceId`] (64 random bits) and claims a [`WorkArea`]: a fresh
//! directory of its own under the work base dir,
//!
//! ```text
//! <work_dir>/hotfunctions-<uid>/          namespace: one per user, never another's
//!     <escaped worker id>.<instance id>/  one per runtime (worker process), made with mkdir
//!         owner.lock                      exclusive flock, held for the runtime's life
//!         owner.json                      worker id, instance id, runtime, pid, start time
//!         ...                             the runtime's files (process: staged packages)
//! ```
//!
//! - The directory name escapes the worker id injectively (`[A-Za-z0-9-]`
//!   kept, every other byte `_XX`), so `a.x` and `a_x` differ even before
//!   the instance id makes every area unique.
//! - The lock is taken before the record is written, and the record is
//!   what marks a directory as an area at all: a directory without a
//!   readable record is never touched (it may be an area being made),
//!   but for what a removal cut short after its record went leaves: a
//!   directory holding nothing but a lock file nobody holds, or nothing,
//!   made at least [`STRANDED_AFTER`] ago (an area being made is in that
//!   state for microseconds), which [`claim_orphans`] removes.
//! - The lock is an `flock` on an open file: the kernel drops it when its
//!   owner dies, however it dies (`kill -9` included), and it is not
//!   inherited by function processes (Rust opens files close-on-exec).
//!   So "the lock is free" is the proof that the owner is gone:
//!   [`claim_orphans`] takes the lock of every area in the namespace whose
//!   lock is free, and hands it to the caller, who removes what the record
//!   says the dead owner had (Docker objects labelled with its instance
//!   id; its files) while holding that lock, then the area
//!   ([`Orphan::remove`]).
//! - Nothing is ever chosen by a name pattern, and nothing outside the
//!   namespace directory of the worker's own base dir is looked at.
//!
//! A runtime that is dropped without [`WorkArea::remove`] (a crash, a
//! panic) leaves its area behind, unlocked: exactly the orphan the next
//! worker sharing the base dir removes.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The lock file of an area.
pub const LOCK_FILE: &str = "owner.lock";
/// The ownership record of an area.
pub const RECORD_FILE: &str = "owner.json";

/// 64 random bits, in hex: unique to one runtime (one worker process).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstanceId(String);

impl InstanceId {
    /// A fresh id. Its randomness is the standard library's per-process
    /// random hash keys, mixed with the pid and the time (no extra crate).
    #[allow(clippy::disallowed_methods)] // the time only adds entropy
    pub fn generate() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        h.write_u128(now.as_nanos());
        Self(format!("{:016x}", h.finish()))
    }

    /// The id as text (16 hex digits).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An area's ownership record (`owner.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OwnerRecord {
    /// The worker id, as given (for people; never used to decide).
    pub worker_id: String,
    /// The owner's [`InstanceId`]: its Docker objects carry it as a label.
    pub instance_id: InstanceId,
    /// `process` or `docker`: who can remove what the owner left.
    pub runtime: String,
    /// The owner's pid (for people: the lock is the proof).
    pub pid: u32,
    /// When the area was claimed, ms since the Unix epoch.
    pub started_unix_ms: u64,
}

/// Failures to claim or inspect areas.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a directory owned by this user (refusing to keep files there)")]
    Foreign(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OwnershipError + '_ {
    move |source| OwnershipError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `id` made safe and injective as a file name: `[A-Za-z0-9-]` kept,
/// every other byte `_` + two hex digits; at most 96 bytes kept (the
/// instance id keeps truncated names apart).
pub fn escape_id(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if out.len() >= 96 {
            break;
        }
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// The namespace directory of this user under `work_dir`; made if missing,
/// refused if it is not a directory of this user (a symlink included).
pub fn namespace(work_dir: &Path) -> Result<PathBuf, OwnershipError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // /proc/self belongs to the process's effective uid (no libc call).
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(io(Path::new("/proc/self")))?;
    let dir = work_dir.join(format!("hotfunctions-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(work_dir).map_err(io(work_dir))?;
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(&dir)(e)),
            }
        }
        Err(e) => return Err(io(&dir)(e)),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(io(&dir))?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(OwnershipError::Foreign(dir));
    }
    Ok(dir)
}

/// A directory this runtime made and holds locked for its life.
#[derive(Debug)]
pub struct WorkArea {
    dir: PathBuf,
    namespace: PathBuf,
    record: OwnerRecord,
    /// Holds the flock; closed (unlocked) on drop.
    _lock: File,
}

impl WorkArea {
    /// Makes and locks a fresh area under `work_dir` for `worker_id`.
    #[allow(clippy::disallowed_methods)] // the record's start time
    pub fn claim(work_dir: &Path, worker_id: &str, runtime: &str) -> Result<Self, OwnershipError> {
        // A namespace removed by another worker (when it looked empty)
        // between our mkdirs: try again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let namespace = namespace(work_dir)?;
            let instance_id = InstanceId::generate();
            let dir = namespace.join(format!("{}.{instance_id}", escape_id(worker_id)));
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e)
                    if attempt < 5
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::AlreadyExists
                        ) =>
                {
                    continue
                }
                Err(e) => return Err(io(&dir)(e)),
            }
            let lock_path = dir.join(LOCK_FILE);
            let lock = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock_path)
                .map_err(io(&lock_path))?;
            lock.try_lock().map_err(|e| {
                io(&lock_path)(match e {
                    std::fs::TryLockError::Error(e) => e,
                    std::fs::TryLockError::WouldBlock => std::io::ErrorKind::WouldBlock.into(),
                })
            })?;
            let record = OwnerRecord {
                worker_id: worker_id.to_string(),
                instance_id,
                runtime: runtime.to_string(),
                pid: std::process::id(),
                started_unix_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or_default(),
            };
            // Written whole, then renamed: a reader sees all of it or none.
            let tmp = dir.join(".owner.json.tmp");
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(
                serde_json::to_string(&record)
                    .unwrap_or_default()
                    .as_bytes(),
            )
            .map_err(io(&tmp))?;
            drop(f);
            let record_path = dir.join(RECORD_FILE);
            std::fs::rename(&tmp, &record_path).map_err(io(&record_path))?;
            return Ok(Self {
                dir,
                namespace,
                record,
                _lock: lock,
            });
        }
    }

    /// The area's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record written in it.
    pub fn record(&self) -> &OwnerRecord {
        &self.record
    }

    /// Removes the area and everything in it (the lock is held until its
    /// file is gone), then the namespace directory if it is empty.
    pub fn remove(self) -> Result<(), OwnershipError> {
        remove_locked_dir(&self.dir)?;
        drop(self._lock);
        // Fails harmlessly when another worker's area is there.
        let _ = std::fs::remove_dir(&self.namespace);
        Ok(())
    }
}

/// Removes everything in `dir` but the lock file and the record, then the
/// record, then the lock file, then `dir` (whose lock the caller holds).
/// The record goes last: an area whose removal fails midway keeps it, so
/// it is still an area, which the next sweep removes (a directory without
/// a record is never touched). A file that appears meanwhile (a database
/// of the owner writing on as it closes) is removed on a second pass.
fn remove_locked_dir(dir: &Path) -> Result<(), OwnershipError> {
    for _ in 0..REMOVAL_PASSES {
        if remove_entries_but_lock_and_record(dir)? == 0 {
            break;
        }
    }
    remove_file_if_present(&dir.join(RECORD_FILE))?;
    remove_file_if_present(&dir.join(LOCK_FILE))?;
    std::fs::remove_dir(dir).map_err(io(dir))
}

/// Removes the file at `path`; one already gone is no error.
fn remove_file_if_present(path: &Path) -> Result<(), OwnershipError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Passes over an area's files, at most, before its record goes
/// ([`remove_locked_dir`]): until one finds none.
const REMOVAL_PASSES: usize = 3;

/// Removes every entry of `dir` but the lock file and the record; returns
/// how many it found.
fn remove_entries_but_lock_and_record(dir: &Path) -> Result<usize, OwnershipError> {
    let mut found = 0;
    for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let p = e.path();
        if e.file_name() == LOCK_FILE || e.file_name() == RECORD_FILE {
            continue;
        }
        found += 1;
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p)(e)),
        }
    }
    Ok(found)
}

/// An area whose owner is proven gone; its lock is now held by us.
#[derive(Debug)]
pub struct Orphan {
    /// The area's directory.
    pub dir: PathBuf,
    /// What its owner recorded.
    pub record: OwnerRecord,
    _lock: File,
}

impl Orphan {
    /// Removes the area (after the caller removed its engine objects).
    pub fn remove(self) -> Result<(), OwnershipError> {
        remove_locked_dir(&self.dir)
    }
}

/// Every area in the namespace of `work_dir` (other than `own`) whose
/// owner is proven gone: a readable record, and a lock nobody holds. The
/// returned orphans hold their locks, so no other worker removes them at
/// the same time. Unreadable entries are skipped, never guessed at; what a
/// removal cut short after its record went left is removed
/// ([`STRANDED_AFTER`]).
pub fn claim_orphans(work_dir: &Path, own: &Path) -> Result<Vec<Orphan>, OwnershipError> {
    let namespace = namespace(work_dir)?;
    let mut out = Vec::new();
    for e in std::fs::read_dir(&namespace)
        .map_err(io(&namespace))?
        .flatten()
    {
        let dir = e.path();
        if dir == own || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join(RECORD_FILE)) else {
            remove_if_stranded(&dir);
            continue;
        };
        let Ok(record) = serde_json::from_str::<OwnerRecord>(&text) else {
            continue;
        };
        let Ok(lock) = OpenOptions::new().write(true).open(dir.join(LOCK_FILE)) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue; // alive
        }
        // The area may have been removed by its owner's clean stop
        // between our reads: only a lock file still in place counts.
        if !dir.join(LOCK_FILE).exists() {
            continue;
        }
        out.push(Orphan {
            dir,
            record,
            _lock: lock,
        });
    }
    Ok(out)
}

/// How old a directory holding nothing but a lock file (the file's age),
/// or nothing (the directory's), must be before [`claim_orphans`] takes it
/// for what a removal cut short leaves: an area being made is in that
/// state for microseconds.
pub const STRANDED_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Removes `dir` if it is what an area's removal cut short after its
/// record went leaves (its owner killed then): nothing in it but a lock
/// file nobody holds, or nothing at all, for at least [`STRANDED_AFTER`].
/// No sweep would touch it otherwise, having no record to read; there is
/// nothing in it to lose. Anything else is left alone.
#[allow(clippy::disallowed_methods)] // a file's age, not a measurement
fn remove_if_stranded(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    if names.iter().any(|n| n != LOCK_FILE) {
        return; // files, or a record being written: not debris
    }
    let lock_path = dir.join(LOCK_FILE);
    let dated = if names.is_empty() { dir } else { &lock_path };
    let old = std::fs::metadata(dated)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= STRANDED_AFTER);
    if !old {
        return; // being made
    }
    if !names.is_empty() {
        let Ok(lock) = OpenOptions::new().write(true).open(&lock_path) else {
            return;
        };
        if lock.try_lock().is_err() || remove_file_if_present(&lock_path).is_err() {
            return; // held
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_injective_and_file_name_safe() {
        assert_eq!(escape_id("worker-8222"), "worker-8222");
        assert_ne!(escape_id("a.x"), escape_id("a_x"));
        assert_eq!(escape_id("a.x"), "a_2Ex");
        assert_eq!(escape_id("a_x"), "a_5Fx");
        assert_eq!(escape_id("../x"), "_2E_2E_2Fx");
        assert!(escape_id(&"é".repeat(200)).len() <= 99);
    }

    #[test]
    fn instance_ids_differ() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| InstanceId::generate()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn a_removal_cut_short_after_its_record_is_swept_and_nothing_else() {
        let base = tempfile::tempdir().unwrap();
        let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        // Its lock file made long ago.
        let age = |dir: &Path| {
            let lock = File::options()
                .write(true)
                .open(dir.join(LOCK_FILE))
                .unwrap();
            lock.set_modified(long_ago).unwrap();
        };
        // An area dropped (its owner gone), then its record removed.
        let cut = |id: &str| {
            let area = WorkArea::claim(base.path(), id, "process").unwrap();
            let dir = area.dir().to_path_buf();
            drop(area);
            std::fs::remove_file(dir.join(RECORD_FILE)).unwrap();
            dir
        };
        let stranded = cut("x+functions");
        age(&stranded);
        let with_files = cut("x+functions");
        age(&with_files);
        std::fs::write(with_files.join("data"), b"x").unwrap();
        let fresh = cut("y");
        let live = WorkArea::claim(base.path(), "x+functions", "process").unwrap();
        std::fs::remove_file(live.dir().join(RECORD_FILE)).unwrap();
        age(live.dir());
        // Cut short after the lock file went too: an empty directory.
        let empty = cut("z");
        std::fs::remove_file(empty.join(LOCK_FILE)).unwrap();
        File::open(&empty).unwrap().set_modified(long_ago).unwrap();

        assert!(claim_orphans(base.path(), Path::new("/"))
            .unwrap()
            .is_empty());
        assert!(!stranded.exists());
        assert!(!empty.exists());
        // One with files, one just made, one held: left.
        assert!(with_files.join("data").exists());
        assert!(fresh.join(LOCK_FILE).exists());
        assert!(live.dir().join(LOCK_FILE).exists());
        // Once its lock file is old enough, the one just made goes too.
        age(&fresh);
        assert!(claim_orphans(base.path(), Path::new("/"))
            .unwrap()
            .is_empty());
        assert!(!fresh.exists());
        assert!(live.dir().join(LOCK_FILE).exists());
    }

    #[test]
    fn a_live_area_is_never_an_orphan_a_dropped_one_is() {
        let base = tempfile::tempdir().unwrap();
        let a = WorkArea::claim(base.path(), "same", "process").unwrap();
        let b = WorkArea::claim(base.path(), "same", "process").unwrap();
        assert_ne!(a.dir(), b.dir());
        std::fs::write(a.dir().join("staged"), b"x").unwrap();
        // Both alive: neither sees the other as an orphan.
        assert!(claim_orphans(base.path(), b.dir()).unwrap().is_empty());
        // A directory without a record is not an area: left alone.
        let stranger = namespace(base.path()).unwrap().join("not-an-area");
        std::fs::create_dir(&stranger).unwrap();
        let a_dir = a.dir().to_path_buf();
        drop(a); // as a crash: the area stays, unlocked
        assert!(a_dir.join("staged").exists());
        let orphans = claim_orphans(base.path(), b.dir()).unwrap();
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].dir, a_dir);
        assert_eq!(orphans[0].record.worker_id, "same");
        // While claimed, nobody else can claim it.
        assert!(claim_orphans(base.path(), Path::new("/"))
            .unwrap()
            .is_empty());
        for o in orphans {
            o.remove().unwrap();
        }
        assert!(!a_dir.exists());
        assert!(stranger.exists());
        std::fs::remove_dir(&stranger).unwrap();
        b.remove().unwrap();
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }
}
