//! The durable store of asynchronous calls: one SQLite database in WAL
//! mode (rusqlite, SQLite bundled), one row per accepted call.
//!
//! A call is `queued` (waiting, `next_at_ms` says from when), `running`
//! (an attempt was sent to a worker; written before it is sent), then
//! `done` (final reply recorded, any status) or `failed` (retries spent,
//! or interrupted and not safe to repeat). A `202` is answered only once
//! the row is committed, so an accepted call survives `kill -9` of the
//! balancer (WAL, `synchronous=NORMAL`: a committed transaction survives
//! the process dying; the last ones may be lost if the machine itself
//! loses power). Finished calls are kept for the retention time, then
//! deleted.
//!
//! Times are wall-clock milliseconds since the Unix epoch (they outlive
//! the process).
//!
//! A database file belongs to one balancer at a time: [`Store::open`]
//! takes an exclusive flock on `<file>-lock` beside it and holds it while
//! the store lives. A second balancer on the same file is refused at its
//! start: it would take the first one's running calls for interrupted
//! ones and send them again, and both would run the queued calls.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

/// A stored call.
#[derive(Debug, Clone)]
pub struct StoredCall {
    pub id: i64,
    pub function: String,
    pub method: String,
    pub path: String,
    pub query: String,
    /// The headers passed to a user function (`super::user::encode_headers`).
    pub headers: Vec<u8>,
    pub body: Vec<u8>,
    pub state: String,
    pub attempts: u32,
    pub next_at_ms: i64,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
    pub status: Option<u16>,
    pub result: Option<Vec<u8>>,
    pub error: Option<String>,
}

/// An accepted call's request, as stored.
#[derive(Debug, Clone, Copy)]
pub struct NewCall<'a> {
    pub method: &'a str,
    /// The route's path (`/async-function/<fn>/...`).
    pub path: &'a str,
    pub query: &'a str,
    /// `super::user::encode_headers`'s form.
    pub headers: &'a [u8],
    pub body: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("queue store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// Another process holds the database's lock, or it cannot be taken.
    #[error("{0}")]
    Claim(String),
}

impl StoreError {
    /// Whether the database could not grow: its disk is full, or it
    /// reached its size bound ([`Store::open`]'s `max_bytes`).
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Sql(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DiskFull)
    }
}

/// The store (one connection; callers serialise access).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// The flock on `<file>-lock` (module doc); None in memory.
    _lock: Option<std::fs::File>,
    /// The size bound in pages: (for new calls, for every other write).
    bound: Option<(i64, i64)>,
}

/// Pages of a bounded database kept for the writes of calls already
/// stored (their states and results), beyond what new calls may take: at
/// least this many, or a tenth of the bound. Without them a database full
/// of queued calls could not record that any of them ran.
const RESERVED_PAGES: i64 = 16;

/// The lock file of the database at `path`: `<path>-lock`, beside the
/// `-wal` and `-shm` files SQLite keeps there.
pub fn lock_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-lock");
    name.into()
}

const COLUMNS: &str = "id, function, method, path, query, body, state, attempts, next_at_ms, \
                       created_ms, finished_ms, status, result, error, headers";

fn row_to_call(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCall> {
    Ok(StoredCall {
        id: row.get(0)?,
        function: row.get(1)?,
        method: row.get(2)?,
        path: row.get(3)?,
        query: row.get(4)?,
        body: row.get(5)?,
        state: row.get(6)?,
        attempts: row.get(7)?,
        next_at_ms: row.get(8)?,
        created_ms: row.get(9)?,
        finished_ms: row.get(10)?,
        status: row.get(11)?,
        result: row.get(12)?,
        error: row.get(13)?,
        headers: row.get(14)?,
    })
}

impl Store {
    /// Opens (creating if needed) the database at `path`, or an in-memory
    /// one (not durable) when `path` is None. With `max_bytes`, the
    /// database grows to about that size at most (SQLite's
    /// `max_page_count`, never below its size now): past it a write fails
    /// as on a full disk ([`StoreError::is_full`]).
    pub fn open(path: Option<&Path>, max_bytes: Option<u64>) -> Result<Self, StoreError> {
        let (conn, lock) = match path {
            Some(p) => {
                // Claimed before SQLite opens it: a second balancer must
                // not even recover the first one's calls.
                let lock = sample_functions::user::store::claim_lock(
                    &lock_path(p),
                    "queue database",
                    "balancer",
                )
                .map_err(StoreError::Claim)?;
                (Connection::open(p)?, Some(lock))
            }
            None => (Connection::open_in_memory()?, None),
        };
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS calls (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                function TEXT NOT NULL,
                method TEXT NOT NULL,
                path TEXT NOT NULL,
                query TEXT NOT NULL,
                body BLOB NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_at_ms INTEGER NOT NULL DEFAULT 0,
                created_ms INTEGER NOT NULL,
                finished_ms INTEGER,
                status INTEGER,
                result BLOB,
                error TEXT,
                headers BLOB NOT NULL DEFAULT x''
            );
            CREATE INDEX IF NOT EXISTS calls_by_state ON calls (state, id);
            CREATE INDEX IF NOT EXISTS calls_by_function ON calls (function, state);",
        )?;
        // A store written before calls kept their headers.
        let has_headers: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('calls') WHERE name = 'headers'",
            [],
            |r| r.get(0),
        )?;
        if !has_headers {
            conn.execute_batch("ALTER TABLE calls ADD COLUMN headers BLOB NOT NULL DEFAULT x''")?;
        }
        let bound = match max_bytes {
            Some(bytes) => {
                let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
                let page = u64::try_from(page).unwrap_or(1).max(1);
                let all = i64::try_from(bytes / page).unwrap_or(i64::MAX).max(1);
                let reserved = (all / 10).max(RESERVED_PAGES);
                conn.pragma_update(None, "max_page_count", all)?;
                Some(((all - reserved).max(1), all))
            }
            None => None,
        };
        Ok(Self {
            conn,
            _lock: lock,
            bound,
        })
    }

    /// Stores an accepted call of `function`; returns its id. A bounded
    /// database takes new calls only below its bound less the pages
    /// reserved for the calls it holds (`RESERVED_PAGES`).
    pub fn insert(
        &self,
        function: &str,
        call: &NewCall<'_>,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let Some((for_new, all)) = self.bound else {
            return self.insert_row(function, call, now_ms);
        };
        // SQLite keeps max_page_count at least the pages in use.
        self.conn.pragma_update(None, "max_page_count", for_new)?;
        let inserted = self.insert_row(function, call, now_ms);
        self.conn.pragma_update(None, "max_page_count", all)?;
        inserted
    }

    fn insert_row(
        &self,
        function: &str,
        call: &NewCall<'_>,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO calls (function, method, path, query, headers, body, state, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7)",
            params![
                function,
                call.method,
                call.path,
                call.query,
                call.headers,
                call.body,
                now_ms
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn get(&self, id: i64) -> Result<Option<StoredCall>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM calls WHERE id = ?1"),
                [id],
                row_to_call,
            )
            .optional()?)
    }

    /// Queued calls due at `now_ms` with an id above `after`, oldest
    /// first, at most `limit`.
    pub fn due(&self, now_ms: i64, after: i64, limit: u32) -> Result<Vec<StoredCall>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM calls WHERE state = 'queued' AND id > ?1 AND next_at_ms <= ?2 \
             ORDER BY id LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![after, now_ms, limit], row_to_call)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Earliest `next_at_ms` of a queued call, if any.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT MIN(next_at_ms) FROM calls WHERE state = 'queued'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Marks an attempt as sent (before it is sent).
    pub fn start_attempt(&self, id: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE calls SET state = 'running', attempts = attempts + 1 WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// Back to the queue, due at `next_at_ms`; `undo_attempt` when the
    /// attempt never left the balancer.
    pub fn requeue(
        &self,
        id: i64,
        next_at_ms: i64,
        undo_attempt: bool,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE calls SET state = 'queued', next_at_ms = ?2, \
             attempts = attempts - ?3, error = COALESCE(?4, error) WHERE id = ?1",
            params![id, next_at_ms, i64::from(undo_attempt), error],
        )?;
        Ok(())
    }

    /// Records a call's final outcome (`done` or `failed`).
    pub fn finish(
        &self,
        id: i64,
        state: &str,
        status: Option<u16>,
        result: Option<&[u8]>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE calls SET state = ?2, status = ?3, result = ?4, error = ?5, finished_ms = ?6 \
             WHERE id = ?1",
            params![id, state, status, result, error, now_ms],
        )?;
        Ok(())
    }

    /// After a restart: the calls that were `running` when the balancer
    /// stopped (their outcome is unknown).
    pub fn interrupted(&self) -> Result<Vec<StoredCall>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM calls WHERE state = 'running' ORDER BY id"
        ))?;
        let rows = stmt.query_map([], row_to_call)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes the calls finished before `before_ms`; returns how many.
    pub fn purge(&self, before_ms: i64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM calls WHERE finished_ms IS NOT NULL AND finished_ms < ?1",
            [before_ms],
        )?)
    }

    /// Calls queued or running: (of `function`, in all).
    pub fn pending(&self, function: &str) -> Result<(u64, u64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(function = ?1), 0), COUNT(*) FROM calls \
             WHERE state IN ('queued', 'running')",
            [function],
            |r| {
                let (mine, all): (i64, i64) = (r.get(0)?, r.get(1)?);
                Ok((
                    u64::try_from(mine).unwrap_or(0),
                    u64::try_from(all).unwrap_or(0),
                ))
            },
        )?)
    }

    /// Calls by (function, state).
    pub fn counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT function, state, COUNT(*) FROM calls GROUP BY function, state",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_call<'a>(
        path: &'a str,
        query: &'a str,
        headers: &'a [u8],
        body: &'a [u8],
    ) -> NewCall<'a> {
        NewCall {
            method: "GET",
            path,
            query,
            headers,
            body,
        }
    }

    #[test]
    fn a_call_goes_through_its_states_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite3");
        let id = {
            let s = Store::open(Some(&path), None).unwrap();
            let id = s
                .insert("W1", &new_call("/x", "a=1", b"x-a: 1\r\n", b"body"), 1000)
                .unwrap();
            assert_eq!(s.due(1000, 0, 10).unwrap().len(), 1);
            s.start_attempt(id).unwrap();
            assert!(s.due(1000, 0, 10).unwrap().is_empty());
            id
        };
        let s = Store::open(Some(&path), None).unwrap();
        let interrupted = s.interrupted().unwrap();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(interrupted[0].attempts, 1);
        s.requeue(id, 3000, false, Some("interrupted")).unwrap();
        assert!(s.due(2999, 0, 10).unwrap().is_empty());
        assert_eq!(s.next_due().unwrap(), Some(3000));
        s.start_attempt(id).unwrap();
        s.finish(id, "done", Some(200), Some(b"ok"), None, 4000)
            .unwrap();
        let call = s.get(id).unwrap().unwrap();
        assert_eq!(
            (call.state.as_str(), call.attempts, call.status),
            ("done", 2, Some(200))
        );
        assert_eq!(s.purge(4000).unwrap(), 0);
        assert_eq!(s.purge(4001).unwrap(), 1);
        assert!(s.get(id).unwrap().is_none());
        // Ids are never reused.
        assert!(s.insert("W1", &new_call("/", "", b"", b""), 5000).unwrap() > id);
    }

    #[test]
    fn a_database_belongs_to_one_store_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite3");
        let first = Store::open(Some(&path), None).unwrap();
        let id = first
            .insert("W1", &new_call("/", "", b"", b""), 1000)
            .unwrap();
        first.start_attempt(id).unwrap();
        let err = Store::open(Some(&path), None).unwrap_err().to_string();
        assert!(
            err.contains("queue database is in use by another balancer")
                && err.contains("q.sqlite3-lock"),
            "{err}"
        );
        // The refused opener touched nothing: the call is still running.
        assert_eq!(first.get(id).unwrap().unwrap().state, "running");
        drop(first);
        let second = Store::open(Some(&path), None).unwrap();
        assert_eq!(second.interrupted().unwrap().len(), 1);
        // Two in-memory stores never conflict.
        let _a = Store::open(None, None).unwrap();
        let _b = Store::open(None, None).unwrap();
    }

    #[test]
    fn a_bounded_database_fails_as_a_full_disk_and_keeps_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite3");
        let s = Store::open(Some(&path), Some(256 * 1024)).unwrap();
        let body = vec![b'x'; 8 * 1024];
        let mut stored = Vec::new();
        let full = loop {
            match s.insert("W1", &new_call("/", "", b"", &body), 1000) {
                Ok(id) => stored.push(id),
                Err(e) => break e,
            }
            assert!(stored.len() < 64, "the bound never held");
        };
        assert!(full.is_full(), "{full}");
        assert!(full.to_string().contains("full"), "{full}");
        assert!(!stored.is_empty());
        // What it held is still there, and every call it holds can still
        // run and record its result (the reserved pages).
        assert_eq!(s.due(1000, 0, 100).unwrap().len(), stored.len());
        for &id in &stored {
            s.start_attempt(id).unwrap();
            s.finish(id, "done", Some(200), Some(b"a short result"), None, 1000)
                .unwrap();
        }
        // Space freed is used again.
        assert_eq!(s.purge(1001).unwrap(), stored.len());
        s.insert("W1", &new_call("/", "", b"", &body), 1000)
            .unwrap();
        // An unbounded one takes them all.
        let free = Store::open(None, None).unwrap();
        for _ in 0..=stored.len() {
            free.insert("W1", &new_call("/", "", b"", &body), 1000)
                .unwrap();
        }
    }
}
