//! The user functions' durable state: a content-addressed store of
//! packages and an SQLite database of metadata and call logs, in a data
//! directory the worker holds locked.
//!
//! ```text
//! <data dir>/
//!     owner.lock              exclusive flock for the worker's life (a second worker is refused)
//!     functions.sqlite        functions (name, version, digest, rate limit, counters), calls
//!     blobs/<sha256>.zip      each uploaded zip once, by its SHA-256
//!     code/<sha256>/          the zip unpacked (made again from the blob if missing)
//! ```
//!
//! One thread owns the SQLite connection; everyone else sends it
//! commands. Call records are batched: the thread takes every command
//! waiting and commits them in one transaction, so the call path never
//! waits for the disk. Each function keeps its last [`LOG_KEEP`] calls;
//! each call's output tail is at most [`LOG_TEXT_BYTES`].

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Calls kept per function in the log.
pub const LOG_KEEP: usize = 500;
/// Bytes of a call's output (stderr) kept in its log row.
pub const LOG_TEXT_BYTES: usize = 4096;

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
    Call(String, CallRow, bool),
    Logs(String, usize, Reply<Vec<CallRow>>),
}

/// The handle of the database thread.
#[derive(Debug, Clone)]
pub struct Db {
    tx: mpsc::Sender<Command>,
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
        std::thread::Builder::new()
            .name("functions-db".into())
            .spawn(move || serve(conn, rx))
            .map_err(text)?;
        Ok(Self { tx })
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

    /// Records a call (batched; never waits for the disk).
    pub fn record_call(&self, name: &str, call: CallRow, error: bool) {
        let _ = self.tx.send(Command::Call(name.to_string(), call, error));
    }

    /// The last `limit` calls of `name`, newest first (every call recorded
    /// before this is included).
    pub async fn logs(&self, name: &str, limit: usize) -> Result<Vec<CallRow>, String> {
        let name = name.to_string();
        self.ask(|r| Command::Logs(name, limit, r)).await
    }
}

fn serve(mut conn: Connection, rx: mpsc::Receiver<Command>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 4096 {
                break;
            }
        }
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!("functions database: {e}");
                continue;
            }
        };
        let mut replies: Vec<Box<dyn FnOnce(Option<String>)>> = Vec::new();
        let mut trimmed: Vec<String> = Vec::new();
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
                Command::Call(name, c, error) => {
                    if let Err(e) = record(&tx, &name, &c, error) {
                        tracing::warn!("recording a call of {name}: {e}");
                    }
                    if !trimmed.contains(&name) {
                        trimmed.push(name);
                    }
                }
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
        for name in &trimmed {
            if let Err(e) = trim(&tx, name) {
                tracing::warn!("trimming the log of {name}: {e}");
            }
        }
        let fail = tx.commit().err().map(text);
        for r in replies {
            r(fail.clone());
        }
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

fn record(c: &Connection, name: &str, call: &CallRow, error: bool) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO calls(name, version, time_ms, duration_ms, status, cold, node, output)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            name,
            call.version as i64,
            call.time_ms,
            call.duration_ms,
            call.status,
            call.cold,
            call.node,
            call.output
        ],
    )?;
    c.execute(
        "UPDATE functions SET calls = calls + 1, errors = errors + ?2,
             total_ms = total_ms + ?3, last_call_ms = ?4 WHERE name = ?1",
        params![name, error as i64, call.duration_ms, call.time_ms],
    )?;
    Ok(())
}

fn trim(c: &Connection, name: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM calls WHERE name = ?1 AND id <= (SELECT id FROM calls WHERE name = ?1
             ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![name, LOG_KEEP as i64],
    )?;
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

/// The data directory, held locked.
#[derive(Debug)]
pub struct DataDir {
    dir: PathBuf,
    /// The flock of a kept data dir (a temporary area holds its own).
    _lock: Option<std::fs::File>,
    /// A temporary area removed at shutdown (no `--data-dir` given).
    area: Option<crate::runtime::ownership::WorkArea>,
}

impl DataDir {
    /// Claims `dir` (made if missing): refused when another worker holds it.
    pub fn claim(dir: &Path) -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("data dir {}: {e}", dir.display()))?;
        let lock_path = dir.join("owner.lock");
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        lock.try_lock().map_err(|_| {
            format!(
                "data dir {} is in use by another worker (its lock {} is held)",
                dir.display(),
                lock_path.display()
            )
        })?;
        Self::layout(dir)?;
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
        let area =
            crate::runtime::ownership::WorkArea::claim(work_dir, &id, "process").map_err(text)?;
        let dir = area.dir().to_path_buf();
        Self::layout(&dir)?;
        Ok(Self {
            dir,
            _lock: None,
            area: Some(area),
        })
    }

    fn layout(dir: &Path) -> Result<(), String> {
        for sub in ["blobs", "code", "tmp"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        // Half-written uploads of an earlier life.
        if let Ok(rd) = std::fs::read_dir(dir.join("tmp")) {
            for e in rd.flatten() {
                let _ =
                    std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether it goes with the worker.
    pub fn is_temporary(&self) -> bool {
        self.area.is_some()
    }

    pub fn blob(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{digest}.zip"))
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

/// SHA-256 of `bytes`, in hex.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
