//! The user functions' durable state: a content-addressed store of
//! packages and an SQLite database of metadata and call logs, in a data
//! directory its owner (a worker, or the balancer of a cluster) holds
//! locked. Shared by the worker (`worker_front::functions`) and the
//! balancer (`load_balancer::functions`).
//!
//! ```text
//! <data dir>/
//!     owner.lock              exclusive flock for the owner's life (a second one is refused)
//!     functions.sqlite        functions (name, version, digest, rate limit, counters), calls
//!     blobs/<sha256>.zip      each uploaded zip once, by its SHA-256
//!     code/<sha256>/          the zip unpacked (made again from the blob if missing)
//! ```
//!
//! One thread owns the SQLite connection; everyone else sends it
//! commands. Each function keeps its last [`LOG_KEEP`] calls; each call's
//! output tail is at most [`LOG_TEXT_BYTES`].
//!
//! # Calls are recorded off the call path, bounded, and never lost
//! [`Db::record_call`] only appends the call to a pending table in memory
//! (a lock, no allocation but the row's own, no channel message unless the
//! table was empty), so a call never waits for the database thread nor
//! the disk. The thread takes the whole table before each batch of
//! commands and writes it in that batch's transaction: per function, its
//! new rows (with cached prepared statements), one update of its counters
//! (calls, errors, total time, last call) and one trim of its log. The
//! table is bounded: per function it keeps the counters' sums and the last
//! [`LOG_KEEP`] rows (older ones would be trimmed from the log at once
//! anyway), so a database slower than the calls costs no memory beyond
//! that, and loses nothing that `/info` or `/logs` would show. A command
//! sees every call recorded before it was sent (`/logs` right after a
//! call lists it), and [`Db::sync`] waits until everything recorded so
//! far is committed (a clean stop calls it).
//!
//! Calls alone are written at most every [`WRITE_EVERY`]: a batch with
//! only calls to write waits until that long after the previous batch
//! (any other command ends the wait at once). Under load a transaction per
//! few calls cost a fifth of the machine's CPU (the thread's commits, WAL
//! writes and log trims, measured with `perf` under wrk's 64 connections,
//! `bench/user-functions.sh`); this way a busy function costs about
//! `1 / WRITE_EVERY` transactions a second, whatever its rate. A crash
//! loses at most the calls of that last interval, as before it lost those
//! of the batch in progress.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Calls kept per function in the log.
pub const LOG_KEEP: usize = 500;
/// Bytes of a call's output (stderr) kept in its log row.
pub const LOG_TEXT_BYTES: usize = 4096;
/// The least time between two batches written only for calls (module
/// doc).
pub const WRITE_EVERY: Duration = Duration::from_millis(50);

/// A deployed function's stored record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionRow {
    pub name: String,
    pub version: u64,
    pub digest: String,
    /// The zip's size, bytes.
    pub size: u64,
    /// Bytes unpacked.
    pub unpacked_bytes: u64,
    pub runtime: String,
    /// The manifest, as JSON.
    #[serde(skip)]
    pub manifest: String,
    pub deployed_at_ms: i64,
    pub rate_limit: f64,
}

impl FunctionRow {
    /// The row of version `version` of `name`, from its checked package
    /// (`zip_size` bytes, `digest`), deployed at `deployed_at_ms`.
    pub fn deployed(
        name: &str,
        version: u64,
        digest: &str,
        zip_size: u64,
        unpacked: &super::package::Unpacked,
        rate_limit: f64,
        deployed_at_ms: i64,
    ) -> Self {
        Self {
            name: name.to_string(),
            version,
            digest: digest.to_string(),
            size: zip_size,
            unpacked_bytes: unpacked.bytes,
            runtime: serde_json::to_value(unpacked.manifest.runtime)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            manifest: serde_json::to_string(&unpacked.manifest).unwrap_or_default(),
            deployed_at_ms,
            rate_limit,
        }
    }
}

/// One call's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallRow {
    pub time_ms: i64,
    pub version: u64,
    pub duration_ms: f64,
    pub status: u16,
    pub cold: bool,
    pub node: String,
    /// What the function wrote (stderr, and stdout of a warm instance)
    /// during the call, at most [`LOG_TEXT_BYTES`] (its end). For a warm
    /// instance: what the worker had read of its output between the
    /// call's start and its reply (calls running at once share it).
    pub output: String,
}

/// Counters of a function, kept across its versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Counters {
    pub calls: u64,
    pub errors: u64,
    pub total_ms: f64,
    pub last_call_ms: Option<i64>,
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, String>>;

enum Command {
    Load(Reply<Vec<(FunctionRow, Counters)>>),
    Put(FunctionRow, Reply<()>),
    Delete(String, Reply<()>),
    SetRate(String, f64, Reply<()>),
    /// Calls are pending: write them.
    Flush,
    /// Replies once the pending calls are committed.
    Sync(Reply<()>),
    /// Commits the pending calls, closes the database and ends the
    /// thread; replies once it is closed.
    Close(Reply<()>),
    Logs(String, usize, Reply<Vec<CallRow>>),
}

/// The calls of one function recorded and not yet written.
#[derive(Debug, Default)]
struct PendingCalls {
    /// The last [`LOG_KEEP`] rows, oldest first.
    rows: VecDeque<CallRow>,
    calls: u64,
    errors: u64,
    total_ms: f64,
    last_call_ms: Option<i64>,
}

/// Calls recorded and not yet written, by function (module doc).
#[derive(Debug, Default)]
struct Pending {
    by_name: HashMap<String, PendingCalls>,
    /// A [`Command::Flush`] is on its way to the thread.
    queued: bool,
    /// Tables taken by the thread (its batches), so far.
    batches: u64,
}

type SharedPending = Arc<Mutex<Pending>>;

fn lock(p: &SharedPending) -> std::sync::MutexGuard<'_, Pending> {
    // The table stays consistent whatever a panicking holder did.
    p.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The handle of the database thread.
#[derive(Debug, Clone)]
pub struct Db {
    tx: mpsc::Sender<Command>,
    pending: SharedPending,
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Db {
    /// Opens (creating) the database at `path` and starts its thread.
    pub fn open(path: &Path) -> Result<Self, String> {
        let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS functions(
                 name TEXT PRIMARY KEY, version INTEGER NOT NULL, digest TEXT NOT NULL,
                 size INTEGER NOT NULL, unpacked INTEGER NOT NULL, runtime TEXT NOT NULL,
                 manifest TEXT NOT NULL, deployed_at_ms INTEGER NOT NULL, rate_limit REAL NOT NULL,
                 calls INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
                 total_ms REAL NOT NULL DEFAULT 0, last_call_ms INTEGER);
             CREATE TABLE IF NOT EXISTS calls(
                 id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version INTEGER NOT NULL,
                 time_ms INTEGER NOT NULL, duration_ms REAL NOT NULL, status INTEGER NOT NULL,
                 cold INTEGER NOT NULL, node TEXT NOT NULL, output TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS calls_by_name ON calls(name, id);",
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel();
        let pending = SharedPending::default();
        let thread_pending = pending.clone();
        std::thread::Builder::new()
            .name("functions-db".into())
            .spawn(move || serve(conn, rx, thread_pending))
            .map_err(text)?;
        Ok(Self { tx, pending })
    }

    async fn ask<T>(&self, f: impl FnOnce(Reply<T>) -> Command) -> Result<T, String> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(f(reply))
            .map_err(|_| "the database thread is gone".to_string())?;
        rx.await
            .map_err(|_| "the database thread is gone".to_string())?
    }

    pub async fn load(&self) -> Result<Vec<(FunctionRow, Counters)>, String> {
        self.ask(Command::Load).await
    }

    /// Inserts or replaces a function's record (its counters kept).
    pub async fn put(&self, row: FunctionRow) -> Result<(), String> {
        self.ask(|r| Command::Put(row, r)).await
    }

    /// Removes a function and its call log.
    pub async fn delete(&self, name: &str) -> Result<(), String> {
        let name = name.to_string();
        self.ask(|r| Command::Delete(name, r)).await
    }

    pub async fn set_rate(&self, name: &str, rate: f64) -> Result<(), String> {
        let name = name.to_string();
        self.ask(|r| Command::SetRate(name, rate, r)).await
    }

    /// Records a call (pending until the thread's next batch; never
    /// waits: module doc).
    pub fn record_call(&self, name: &str, call: CallRow, error: bool) {
        let mut pending = lock(&self.pending);
        let calls = match pending.by_name.get_mut(name) {
            Some(calls) => calls,
            None => pending.by_name.entry(name.to_string()).or_default(),
        };
        calls.calls += 1;
        calls.errors += u64::from(error);
        calls.total_ms += call.duration_ms;
        calls.last_call_ms = Some(call.time_ms);
        if calls.rows.len() == LOG_KEEP {
            calls.rows.pop_front();
        }
        calls.rows.push_back(call);
        if !pending.queued {
            pending.queued = true;
            drop(pending);
            let _ = self.tx.send(Command::Flush);
        }
    }

    /// Waits until every call recorded so far is committed.
    pub async fn sync(&self) -> Result<(), String> {
        self.ask(Command::Sync).await
    }

    /// Commits every call recorded so far and closes the database: once
    /// this returns, SQLite has checkpointed and removed its `-wal` and
    /// `-shm` files and holds nothing open in the directory, so its owner
    /// may remove it (a connection still open would make them again
    /// under a removal). Later commands of any handle fail ("the database
    /// thread is gone"); calls recorded later are not written.
    pub async fn close(&self) -> Result<(), String> {
        self.ask(Command::Close).await
    }

    /// The last `limit` calls of `name`, newest first (every call recorded
    /// before this is included).
    pub async fn logs(&self, name: &str, limit: usize) -> Result<Vec<CallRow>, String> {
        let name = name.to_string();
        self.ask(|r| Command::Logs(name, limit, r)).await
    }
}

fn serve(mut conn: Connection, rx: mpsc::Receiver<Command>, pending: SharedPending) {
    // The calls of a batch whose transaction failed, tried again with the
    // next one.
    let mut unwritten: Option<HashMap<String, PendingCalls>> = None;
    let mut last_batch: Option<Instant> = None;
    loop {
        let (batch, last) = match rx.recv() {
            Ok(first) => {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                    if batch.len() >= 4096 {
                        break;
                    }
                }
                let last = match last_batch {
                    Some(at) if only_calls(&batch) => {
                        wait_for_command(&rx, &mut batch, at + WRITE_EVERY)
                    }
                    _ => false,
                };
                (batch, last)
            }
            // Every handle is gone: write what is pending, and end.
            Err(_) => (Vec::new(), true),
        };
        #[allow(clippy::disallowed_methods)] // the pace of writes, not a measurement
        let now = Instant::now();
        last_batch = Some(now);
        // Taken after the batch, so that each command sees the calls
        // recorded before it was sent.
        let mut calls = {
            let mut p = lock(&pending);
            p.queued = false;
            p.batches += 1;
            std::mem::take(&mut p.by_name)
        };
        if let Some(earlier) = unwritten.take() {
            merge_pending(&mut calls, earlier);
        }
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!("functions database: {e}");
                unwritten = Some(calls);
                if last {
                    return;
                }
                continue;
            }
        };
        let mut replies: Vec<Box<dyn FnOnce(Option<String>)>> = Vec::new();
        let mut closing: Vec<Reply<()>> = Vec::new();
        // Written first: the commands of the batch see them.
        for (name, c) in &calls {
            if let Err(e) = record_calls(&tx, name, c) {
                tracing::warn!("recording the calls of {name}: {e}");
            }
        }
        for cmd in batch {
            match cmd {
                Command::Load(r) => {
                    let out = load(&tx).map_err(text);
                    replies.push(Box::new(move |fail| {
                        let _ = r.send(match fail {
                            Some(e) => Err(e),
                            None => out,
                        });
                    }));
                }
                Command::Put(row, r) => {
                    let out = put(&tx, &row).map_err(text);
                    replies.push(done(r, out));
                }
                Command::Delete(name, r) => {
                    let out = tx
                        .execute("DELETE FROM functions WHERE name = ?1", [&name])
                        .and_then(|_| tx.execute("DELETE FROM calls WHERE name = ?1", [&name]))
                        .map(|_| ())
                        .map_err(text);
                    replies.push(done(r, out));
                }
                Command::SetRate(name, rate, r) => {
                    let out = tx
                        .execute(
                            "UPDATE functions SET rate_limit = ?2 WHERE name = ?1",
                            params![name, rate],
                        )
                        .map(|_| ())
                        .map_err(text);
                    replies.push(done(r, out));
                }
                Command::Flush => {}
                Command::Sync(r) => replies.push(done(r, Ok(()))),
                Command::Close(r) => closing.push(r),
                Command::Logs(name, limit, r) => {
                    // Earlier calls of this batch are in the transaction.
                    let out = logs(&tx, &name, limit).map_err(text);
                    replies.push(Box::new(move |fail| {
                        let _ = r.send(match fail {
                            Some(e) => Err(e),
                            None => out,
                        });
                    }));
                }
            }
        }
        let fail = tx.commit().err().map(text);
        if let Some(e) = &fail {
            tracing::warn!("functions database: {e}");
            unwritten = Some(calls);
        }
        for r in replies {
            r(fail.clone());
        }
        if !closing.is_empty() {
            let closed = conn.close().map_err(|(_, e)| text(e));
            let out = match fail {
                Some(e) => Err(format!("writing the last calls: {e}")),
                None => closed,
            };
            for r in closing {
                let _ = r.send(out.clone());
            }
            return;
        }
        if last {
            return;
        }
    }
}

/// A batch of nothing but calls to write.
fn only_calls(batch: &[Command]) -> bool {
    batch.iter().all(|c| matches!(c, Command::Flush))
}

/// Waits until `deadline` for a command other than [`Command::Flush`],
/// adding what arrives to `batch`; true when every handle is gone.
fn wait_for_command(
    rx: &mpsc::Receiver<Command>,
    batch: &mut Vec<Command>,
    deadline: Instant,
) -> bool {
    loop {
        #[allow(clippy::disallowed_methods)] // the pace of writes, not a measurement
        let now = Instant::now();
        let Some(left) = deadline
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
        else {
            return false;
        };
        match rx.recv_timeout(left) {
            Ok(cmd) => {
                let flush = matches!(cmd, Command::Flush);
                batch.push(cmd);
                if !flush {
                    return false;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return false,
            Err(mpsc::RecvTimeoutError::Disconnected) => return true,
        }
    }
}

/// Adds `earlier` (not yet written) to `calls`, keeping the bound.
fn merge_pending(
    calls: &mut HashMap<String, PendingCalls>,
    earlier: HashMap<String, PendingCalls>,
) {
    for (name, mut old) in earlier {
        let new = calls.remove(&name).unwrap_or_default();
        old.calls += new.calls;
        old.errors += new.errors;
        old.total_ms += new.total_ms;
        old.last_call_ms = new.last_call_ms.or(old.last_call_ms);
        old.rows.extend(new.rows);
        let over = old.rows.len().saturating_sub(LOG_KEEP);
        old.rows.drain(..over);
        calls.insert(name, old);
    }
}

fn done(r: Reply<()>, out: Result<(), String>) -> Box<dyn FnOnce(Option<String>)> {
    Box::new(move |fail| {
        let _ = r.send(match fail {
            Some(e) => Err(e),
            None => out,
        });
    })
}

fn load(c: &Connection) -> rusqlite::Result<Vec<(FunctionRow, Counters)>> {
    let mut st = c.prepare(
        "SELECT name, version, digest, size, unpacked, runtime, manifest, deployed_at_ms,
                rate_limit, calls, errors, total_ms, last_call_ms FROM functions ORDER BY name",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            FunctionRow {
                name: r.get(0)?,
                version: r.get::<_, i64>(1)? as u64,
                digest: r.get(2)?,
                size: r.get::<_, i64>(3)? as u64,
                unpacked_bytes: r.get::<_, i64>(4)? as u64,
                runtime: r.get(5)?,
                manifest: r.get(6)?,
                deployed_at_ms: r.get(7)?,
                rate_limit: r.get(8)?,
            },
            Counters {
                calls: r.get::<_, i64>(9)? as u64,
                errors: r.get::<_, i64>(10)? as u64,
                total_ms: r.get(11)?,
                last_call_ms: r.get(12)?,
            },
        ))
    })?;
    rows.collect()
}

fn put(c: &Connection, f: &FunctionRow) -> rusqlite::Result<()> {
    let exists: Option<i64> = c
        .query_row(
            "SELECT version FROM functions WHERE name = ?1",
            [&f.name],
            |r| r.get(0),
        )
        .optional()?;
    let values = params![
        f.name,
        f.version as i64,
        f.digest,
        f.size as i64,
        f.unpacked_bytes as i64,
        f.runtime,
        f.manifest,
        f.deployed_at_ms,
        f.rate_limit
    ];
    if exists.is_some() {
        c.execute(
            "UPDATE functions SET version=?2, digest=?3, size=?4, unpacked=?5, runtime=?6,
                 manifest=?7, deployed_at_ms=?8, rate_limit=?9 WHERE name=?1",
            values,
        )?;
    } else {
        c.execute(
            "INSERT INTO functions(name, version, digest, size, unpacked, runtime, manifest,
                 deployed_at_ms, rate_limit) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            values,
        )?;
    }
    Ok(())
}

/// Writes one function's pending calls: its rows, its counters, the
/// trim of its log.
fn record_calls(c: &Connection, name: &str, calls: &PendingCalls) -> rusqlite::Result<()> {
    let mut insert = c.prepare_cached(
        "INSERT INTO calls(name, version, time_ms, duration_ms, status, cold, node, output)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for call in &calls.rows {
        insert.execute(params![
            name,
            call.version as i64,
            call.time_ms,
            call.duration_ms,
            call.status,
            call.cold,
            call.node,
            call.output
        ])?;
    }
    c.prepare_cached(
        "UPDATE functions SET calls = calls + ?2, errors = errors + ?3,
             total_ms = total_ms + ?4, last_call_ms = COALESCE(?5, last_call_ms) WHERE name = ?1",
    )?
    .execute(params![
        name,
        calls.calls as i64,
        calls.errors as i64,
        calls.total_ms,
        calls.last_call_ms
    ])?;
    trim(c, name)
}

fn trim(c: &Connection, name: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "DELETE FROM calls WHERE name = ?1 AND id <= (SELECT id FROM calls WHERE name = ?1
             ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![name, LOG_KEEP as i64])?;
    Ok(())
}

fn logs(c: &Connection, name: &str, limit: usize) -> rusqlite::Result<Vec<CallRow>> {
    let mut st = c.prepare(
        "SELECT time_ms, version, duration_ms, status, cold, node, output FROM calls
         WHERE name = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![name, limit.min(LOG_KEEP) as i64], |r| {
        Ok(CallRow {
            time_ms: r.get(0)?,
            version: r.get::<_, i64>(1)? as u64,
            duration_ms: r.get(2)?,
            status: r.get(3)?,
            cold: r.get(4)?,
            node: r.get(5)?,
            output: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Makes `dir` (mode 0700) and takes its `owner.lock` (an exclusive
/// flock held as long as the returned file lives): refused when another
/// process holds it. `who` names the owner in the error.
pub fn claim_dir(dir: &Path, who: &str) -> Result<std::fs::File, String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("data dir {}: {e}", dir.display()))?;
    claim_lock(
        &dir.join("owner.lock"),
        &format!("data dir {}", dir.display()),
        who,
    )
}

/// Takes an exclusive flock on `lock_path` (made if missing, never
/// removed: removing it would let a second process lock a new file while
/// the first still holds the old one), held as long as the returned file
/// lives; refused when another process holds it. `what` names what the
/// lock guards and `who` its owner, in the error. The kernel drops the
/// lock when its holder dies, even by `kill -9`.
pub fn claim_lock(lock_path: &Path, what: &str, who: &str) -> Result<std::fs::File, String> {
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => format!(
            "{what} is in use by another {who} (its lock {} is held)",
            lock_path.display()
        ),
        std::fs::TryLockError::Error(e) => format!("{}: {e}", lock_path.display()),
    })?;
    Ok(lock)
}

/// Makes `blobs/`, `code/` and `tmp/` under `dir`, and empties `tmp/`
/// (half-written uploads of an earlier life).
pub fn layout(dir: &Path) -> Result<(), String> {
    for sub in ["blobs", "code", "tmp"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Ok(rd) = std::fs::read_dir(dir.join("tmp")) {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
    }
    Ok(())
}

/// Where the zip of `digest` is kept under a data dir.
pub fn blob_path(dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join("blobs").join(format!("{digest}.zip"))
}

/// Stores `zip` as the blob of `digest` in `dir`, unless it is there: the
/// bytes go to a part file of this deploy's own (`seq`: two deploys of one
/// zip may race), renamed into place, and removed when writing fails.
pub fn store_blob(dir: &Path, digest: &str, zip: &[u8], seq: u64) -> std::io::Result<()> {
    let blob = blob_path(dir, digest);
    if blob.is_file() {
        return Ok(());
    }
    let part = blob.with_extension(format!("part{seq}"));
    let written = std::fs::write(&part, zip).and_then(|()| std::fs::rename(&part, &blob));
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written
}

/// Whether `s` looks like a digest of [`digest`] (64 lowercase hex).
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// SHA-256 of `bytes`, in hex.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A successful warm call's record, at `time_ms`.
    fn ok_call(time_ms: i64) -> CallRow {
        CallRow {
            time_ms,
            version: 1,
            duration_ms: 1.0,
            status: 200,
            cold: false,
            node: "n".into(),
            output: String::new(),
        }
    }

    /// A deployed `http` function's record, named `name`.
    fn http_row(name: &str) -> FunctionRow {
        FunctionRow {
            name: name.into(),
            version: 1,
            digest: "d".into(),
            size: 1,
            unpacked_bytes: 1,
            runtime: "http".into(),
            manifest: "{}".into(),
            deployed_at_ms: 1,
            rate_limit: 0.0,
        }
    }

    #[test]
    fn digests_are_sha256() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn functions_and_bounded_logs_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.sqlite");
        let db = Db::open(&path).unwrap();
        let row = FunctionRow {
            name: "f".into(),
            version: 1,
            digest: "d".into(),
            size: 10,
            unpacked_bytes: 20,
            runtime: "node".into(),
            manifest: "{}".into(),
            deployed_at_ms: 5,
            rate_limit: 0.0,
        };
        db.put(row.clone()).await.unwrap();
        for i in 0..(LOG_KEEP + 20) {
            let call = CallRow {
                time_ms: i as i64,
                version: 1,
                duration_ms: 1.0,
                status: 200,
                cold: i == 0,
                node: "n".into(),
                output: String::new(),
            };
            db.record_call("f", call, i % 2 == 0);
        }
        let logs = db.logs("f", usize::MAX).await.unwrap();
        assert_eq!(logs.len(), LOG_KEEP);
        assert_eq!(logs[0].time_ms, (LOG_KEEP + 19) as i64);
        db.set_rate("f", 4.0).await.unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        let all = db.load().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0.rate_limit, 4.0);
        assert_eq!(all[0].1.calls, (LOG_KEEP + 20) as u64);
        assert_eq!(all[0].1.errors, ((LOG_KEEP + 20) / 2) as u64);
        db.delete("f").await.unwrap();
        assert!(db.load().await.unwrap().is_empty());
        assert!(db.logs("f", 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_closed_database_holds_nothing_open_and_kept_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.sqlite");
        let db = Db::open(&path).unwrap();
        let other = db.clone();
        db.put(http_row("h")).await.unwrap();
        for i in 0..7 {
            db.record_call("h", ok_call(i), false);
        }
        let names = |dir: &Path| {
            let mut n: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        // Open (in WAL mode): its -wal and -shm files are there.
        db.sync().await.unwrap();
        assert_eq!(
            names(dir.path()),
            ["f.sqlite", "f.sqlite-shm", "f.sqlite-wal"]
        );
        db.close().await.unwrap();
        // Closed while another handle lives: only the database is left.
        assert_eq!(names(dir.path()), ["f.sqlite"]);
        let gone = other.logs("h", 10).await.unwrap_err();
        assert!(gone.contains("gone"), "{gone}");
        drop((db, other));
        let db = Db::open(&path).unwrap();
        let all = db.load().await.unwrap();
        assert_eq!(all[0].1.calls, 7, "every call was committed");
    }

    #[tokio::test]
    async fn pending_calls_are_bounded_and_lose_no_count() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("f.sqlite")).unwrap();
        db.put(http_row("g")).await.unwrap();
        // As if the thread were busy: no flush is sent, calls pile up.
        lock(&db.pending).queued = true;
        let n = 3 * LOG_KEEP;
        for i in 0..n {
            let call = CallRow {
                time_ms: i as i64,
                version: 1,
                duration_ms: 2.0,
                status: if i % 3 == 0 { 500 } else { 200 },
                cold: false,
                node: "n".into(),
                output: String::new(),
            };
            db.record_call("g", call, i % 3 == 0);
        }
        {
            let p = lock(&db.pending);
            let g = &p.by_name["g"];
            assert_eq!(g.rows.len(), LOG_KEEP, "bounded");
            assert_eq!(g.rows[0].time_ms, (n - LOG_KEEP) as i64, "the newest kept");
            assert_eq!((g.calls, g.errors), (n as u64, (n / 3) as u64));
        }
        db.sync().await.unwrap();
        assert!(lock(&db.pending).by_name.is_empty());
        let (_, counters) = db.load().await.unwrap().remove(0);
        assert_eq!(
            (counters.calls, counters.errors),
            (n as u64, (n / 3) as u64)
        );
        assert_eq!(counters.total_ms, 2.0 * n as f64);
        assert_eq!(counters.last_call_ms, Some((n - 1) as i64));
        let logs = db.logs("g", LOG_KEEP).await.unwrap();
        assert_eq!(logs.len(), LOG_KEEP);
        assert_eq!(logs[0].time_ms, (n - 1) as i64);
    }

    #[tokio::test]
    async fn calls_alone_are_written_at_most_every_interval() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("f.sqlite")).unwrap();
        db.sync().await.unwrap();
        let before = lock(&db.pending).batches;
        // A call every millisecond for a while: without the interval the
        // thread writes about once per call.
        let start = Instant::now();
        let n = 200;
        for i in 0..n {
            db.record_call("h", ok_call(i), false);
            std::thread::sleep(Duration::from_millis(1));
        }
        let elapsed = start.elapsed();
        db.sync().await.unwrap();
        let batches = lock(&db.pending).batches - before;
        // One at once, then one per interval, and the sync's.
        let bound = 2 + (elapsed.as_millis() / WRITE_EVERY.as_millis()) as u64;
        assert!(
            batches <= bound,
            "{batches} batches for {n} calls in {elapsed:?} (at most {bound})"
        );
        let logs = db.logs("h", usize::MAX).await.unwrap();
        assert_eq!(logs.len(), n as usize, "no call lost");
    }

    #[test]
    fn unwritten_calls_merge_within_the_bound() {
        let call = |t| CallRow {
            time_ms: t,
            version: 1,
            duration_ms: 1.0,
            status: 200,
            cold: false,
            node: String::new(),
            output: String::new(),
        };
        let batch = |from: i64, count: i64| {
            let mut p = PendingCalls::default();
            for t in from..from + count {
                p.rows.push_back(call(t));
                p.calls += 1;
                p.total_ms += 1.0;
                p.last_call_ms = Some(t);
            }
            HashMap::from([("f".to_string(), p)])
        };
        let mut now = batch(1000, 10);
        merge_pending(&mut now, batch(0, LOG_KEEP as i64));
        let f = &now["f"];
        assert_eq!(f.rows.len(), LOG_KEEP);
        assert_eq!(f.rows.back().unwrap().time_ms, 1009, "newest last");
        assert_eq!(f.rows[0].time_ms, 10, "oldest dropped first");
        assert_eq!(
            (f.calls, f.last_call_ms),
            (LOG_KEEP as u64 + 10, Some(1009))
        );
    }
}
