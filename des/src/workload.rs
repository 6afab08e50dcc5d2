//! A scenario as the simulator runs it: function names interned to dense
//! ids once, at load, and arrivals as `(time, id)` pairs sorted by time
//! (stably, so equal times keep file order).
//!
//! Memory: a row costs its `(time, id)` pair (16 bytes) once loaded, and
//! one name per distinct function. [`Workload::load`] streams the file:
//! it reads about [`LOAD_CHUNK_BYTES`] at a time, cut after a line's end,
//! checks the chunk is UTF-8 once (an error names the line), and parses
//! it with the scenario format's own parser (`protocol::scenario::parse`,
//! so the format's rules and errors stay in one place; line numbers are
//! shifted to the file's), so neither the file's text nor a `String` per
//! row is ever held whole. A chunk whose lines are all plainly
//! `Name,StartTimeMs`, or with the per-invocation columns
//! `,DurationMs[,MemoryMb]` (what the generators and importers write), is
//! read directly, byte by byte, with no `String` or field vector per row;
//! anything else in a chunk sends the whole chunk through the parser,
//! which reads plain rows the same way (a test checks both paths agree).
//! (Reading lines one by one and splitting them as strings cost about a
//! thousand instructions a row, a fifth of a 1M-call simulation.)
//!
//! Plain chunks are parsed on up to `MAX_LOAD_THREADS` (4) threads (as many
//! as the machine has cores), each chunk whole with names local to it,
//! while the calling thread reads the file and merges the chunks in file
//! order: names get their ids in first-seen order and their first rows
//! as one pass would give them (a test compares with one parse of the
//! whole text). At most two chunks per thread are in flight, so memory
//! stays a few MiB above the rows kept. On two cores the Azure day's 12
//! million rows load in 0.9 s instead of 1.4 s.
//!
//! Per-invocation columns (`DurationMs`, `MemoryMb`: a row's
//! `ScenarioEvent::shape`) are kept in [`Workload::shapes`], beside the
//! arrivals and in their order, only when the scenario has them (16 bytes
//! a row more; nothing for a two-column scenario). Every row of a file
//! has the same columns (the format's rule, checked across chunks too).

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;

use rustc_hash::FxHashMap;

use policy::Time;
use protocol::scenario::{self, CallShape};
use protocol::ScenarioEvent;

/// A scenario with function names interned to ids, arrivals sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workload {
    pub names: Vec<String>,
    /// (arrival, function id), by time then file order.
    pub arrivals: Vec<(Time, u32)>,
    /// Per-invocation columns of each arrival, in the arrivals' order;
    /// empty when no row has them.
    pub shapes: Vec<Option<CallShape>>,
    /// 1-based scenario row of each function's first call.
    first_row: Vec<usize>,
}

/// Bytes read and parsed at a time by [`Workload::load`] (a chunk ends
/// after the last whole line; a longer line makes a longer chunk).
pub const LOAD_CHUNK_BYTES: usize = 1 << 20;

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] protocol::scenario::ScenarioError),
    #[error("{path}:{line}: not UTF-8 text")]
    NotUtf8 { path: String, line: usize },
    #[error("{path}:{line}: this row's columns differ from the first row's: every row of a scenario has the same columns (2, 3 or 4)")]
    MixedColumns { path: String, line: usize },
}

impl Workload {
    /// Reads a scenario CSV (`FunctionName,StartTimeMs`), streaming (see
    /// the module docs); errors name the file and line.
    pub fn load(path: &Path) -> Result<Self, WorkloadError> {
        let shown = path.display().to_string();
        let read_err = |source| WorkloadError::Read {
            path: shown.clone(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read_err)?;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_LOAD_THREADS);
        std::thread::scope(|scope| {
            // Chunk i goes to parser i % threads, whose results come back
            // in its order: the merge takes them in file order.
            let mut jobs = Vec::with_capacity(threads);
            let mut results = Vec::with_capacity(threads);
            for _ in 0..threads {
                let (job_tx, job_rx) = mpsc::channel::<Vec<u8>>();
                let (result_tx, result_rx) = mpsc::channel();
                scope.spawn(move || {
                    for bytes in job_rx {
                        if result_tx.send(PlainChunk::parse(bytes)).is_err() {
                            break;
                        }
                    }
                });
                jobs.push(job_tx);
                results.push(result_rx);
            }
            let mut b = Builder::default();
            // Bytes read and not parsed yet (a line's start, at the front).
            let mut buf: Vec<u8> = Vec::with_capacity(2 * LOAD_CHUNK_BYTES);
            let mut eof = false;
            // Lines of the file before the next chunk merged.
            let mut before = 0usize;
            let (mut sent, mut merged) = (0usize, 0usize);
            loop {
                while sent - merged < 2 * threads {
                    let Some(chunk) =
                        next_chunk(&mut file, &mut buf, &mut eof).map_err(read_err)?
                    else {
                        break;
                    };
                    if jobs[sent % threads].send(chunk).is_err() {
                        // (A parser thread is gone only if it panicked,
                        // which the scope reports.)
                        break;
                    }
                    sent += 1;
                }
                if merged == sent {
                    break;
                }
                let parsed = results[merged % threads].recv().ok();
                merged += 1;
                let bytes = match parsed {
                    Some(Ok(chunk)) => match b.merge(&chunk) {
                        true => {
                            before += chunk.lines;
                            continue;
                        }
                        false => chunk.bytes,
                    },
                    Some(Err(bytes)) => bytes,
                    None => break,
                };
                before += b.parse_chunk(&bytes, &shown, before)?;
            }
            Ok(b.finish())
        })
    }

    /// A workload from interned names and `(arrival, function id)` pairs
    /// (sorted here, stably, by time). Ids must index `names`.
    pub fn from_parts(names: Vec<String>, mut arrivals: Vec<(Time, u32)>) -> Self {
        arrivals.sort_by_key(|&(t, _)| t);
        let mut first_row = vec![0; names.len()];
        for (row, &(_, f)) in arrivals.iter().enumerate().rev() {
            if let Some(r) = first_row.get_mut(f as usize) {
                *r = row + 1;
            }
        }
        Self {
            names,
            arrivals,
            shapes: Vec::new(),
            first_row,
        }
    }

    /// A workload from parsed scenario events (with their per-invocation
    /// columns, if any has them).
    pub fn from_events(events: &[ScenarioEvent]) -> Self {
        let mut b = Builder {
            columns: if events.iter().any(|e| e.shape.is_some()) {
                3
            } else {
                2
            },
            ..Builder::default()
        };
        b.arrivals.reserve_exact(events.len());
        for e in events {
            b.push(&e.function, e.start_ms, e.shape);
        }
        b.finish()
    }

    /// The per-invocation columns of the `i`-th arrival, if any.
    pub fn shape(&self, i: usize) -> Option<CallShape> {
        self.shapes.get(i).copied().flatten()
    }

    /// Only the arrivals before `cap` (scenario time).
    pub fn truncated(mut self, cap: Time) -> Self {
        let keep = self.arrivals.partition_point(|&(t, _)| t < cap);
        self.arrivals.truncate(keep);
        self.shapes.truncate(keep);
        self
    }

    /// The 1-based scenario row of function `f`'s first call (0 if none).
    pub fn first_row(&self, f: u32) -> usize {
        self.first_row.get(f as usize).copied().unwrap_or(0)
    }

    /// The scenario's span: the last arrival's time.
    pub fn span(&self) -> Time {
        self.arrivals.last().map_or(Time::ZERO, |&(t, _)| t)
    }
}

/// Interns names row by row (one hash lookup per row, one `String` per
/// distinct name).
#[derive(Default)]
struct Builder {
    ids: FxHashMap<Box<str>, u32>,
    names: Vec<String>,
    first_row: Vec<usize>,
    arrivals: Vec<(Time, u32)>,
    /// The rows' columns (2, or 3 and 4 with per-invocation columns, kept
    /// in `shapes`); 0 before the first row.
    columns: u8,
    shapes: Vec<Option<CallShape>>,
}

impl Builder {
    /// The id of `function`, interned with `row` (1-based) as its first
    /// row if it is new.
    fn intern(&mut self, function: &str, row: usize) -> u32 {
        match self.ids.get(function) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.ids.insert(function.into(), id);
                self.names.push(function.to_string());
                self.first_row.push(row);
                id
            }
        }
    }

    fn push(&mut self, function: &str, start_ms: u64, shape: Option<CallShape>) {
        let id = self.intern(function, self.arrivals.len() + 1);
        if self.columns > 2 {
            self.shapes.push(shape);
        }
        self.arrivals.push((Time::from_millis(start_ms), id));
    }

    /// Adds a chunk read by [`PlainChunk::parse`], as pushing its rows
    /// one by one would; false (nothing added) when its columns are not
    /// the file's so far (the parser then names the line).
    fn merge(&mut self, chunk: &PlainChunk) -> bool {
        if chunk.columns != 0 && self.columns != 0 && chunk.columns != self.columns {
            return false;
        }
        if self.columns == 0 {
            self.columns = chunk.columns;
        }
        let base = self.arrivals.len();
        let mut ids = Vec::with_capacity(chunk.names.len());
        for &(start, end, first) in &chunk.names {
            // ASCII (checked by the parse), so UTF-8.
            let Ok(name) = std::str::from_utf8(&chunk.bytes[start as usize..end as usize]) else {
                return false;
            };
            ids.push(self.intern(name, base + first as usize + 1));
        }
        self.arrivals.extend(
            chunk
                .rows
                .iter()
                .map(|&(ms, local)| (Time::from_millis(ms), ids[local as usize])),
        );
        if self.columns > 2 {
            self.shapes.extend_from_slice(&chunk.shapes);
        }
        true
    }

    /// Reads a chunk that is not all plain rows through the scenario
    /// parser (its rules and its errors, at the file's lines: `before`
    /// lines precede the chunk); returns the chunk's lines.
    fn parse_chunk(
        &mut self,
        bytes: &[u8],
        shown: &str,
        before: usize,
    ) -> Result<usize, WorkloadError> {
        let chunk = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = &bytes[..e.valid_up_to()];
                let line = before + 1 + valid.iter().filter(|&&c| c == b'\n').count();
                return Err(WorkloadError::NotUtf8 {
                    path: shown.to_owned(),
                    line,
                });
            }
        };
        let mut lines = chunk.bytes().filter(|&c| c == b'\n').count();
        if !chunk.ends_with('\n') {
            lines += 1;
        }
        let events = protocol::scenario::parse(chunk, shown).map_err(|mut e| {
            e.line += before;
            e
        })?;
        if let Some(first) = events.first() {
            // The parser checks the columns within a chunk.
            let columns = match first.shape {
                None => 2,
                Some(CallShape {
                    memory_mb: None, ..
                }) => 3,
                Some(_) => 4,
            };
            if self.columns == 0 {
                self.columns = columns;
            } else if columns != self.columns {
                // The parser skips blank lines: find the event's line.
                let line = before + nth_row_line(chunk, 0);
                return Err(WorkloadError::MixedColumns {
                    path: shown.to_owned(),
                    line,
                });
            }
        }
        for e in &events {
            self.push(&e.function, e.start_ms, e.shape);
        }
        Ok(lines)
    }

    fn finish(mut self) -> Workload {
        self.arrivals.shrink_to_fit();
        if self.arrivals.is_sorted_by_key(|&(t, _)| t) {
            // What the generators and importers write: nothing to move
            // (and no second copy of the rows at the peak).
            self.shapes.shrink_to_fit();
        } else if self.shapes.is_empty() {
            // Stable: equal times keep file order.
            self.arrivals.sort_by_key(|&(t, _)| t);
        } else {
            self.shapes.shrink_to_fit();
            // Rows sorted with their shapes: by an order of row indices
            // (4 bytes a row while sorting), stable.
            let mut order: Vec<u32> = (0..self.arrivals.len() as u32).collect();
            order.sort_by_key(|&i| self.arrivals[i as usize].0);
            self.arrivals = order.iter().map(|&i| self.arrivals[i as usize]).collect();
            self.shapes = order.iter().map(|&i| self.shapes[i as usize]).collect();
        }
        Workload {
            names: self.names,
            arrivals: self.arrivals,
            shapes: self.shapes,
            first_row: self.first_row,
        }
    }
}

/// Threads that parse a scenario's chunks at most (each parses whole
/// chunks; the calling thread reads the file and merges them in order).
const MAX_LOAD_THREADS: usize = 4;

/// A chunk whose lines are all blank or plainly
/// `Name,StartTimeMs[,DurationMs[,MemoryMb]]` with the same columns (an
/// ASCII name of visible characters, then decimal digits, a duration of
/// digits and one point in the format's range, a memory of digits in its
/// range: what the generators and importers write), which the scenario
/// parser would read the same way (a duration's text by the same rule),
/// read without a `String` or a field vector per row. Names are local to
/// the chunk; [`Builder::merge`] maps them to the file's ids.
#[derive(Debug)]
struct PlainChunk {
    bytes: Vec<u8>,
    /// Distinct names as ranges of `bytes`, first seen first, with the
    /// chunk's row (0-based) of their first call.
    names: Vec<(u32, u32, u32)>,
    /// (start ms, local name id) per row.
    rows: Vec<(u64, u32)>,
    /// Per-invocation columns, per row (empty for 2 columns).
    shapes: Vec<Option<CallShape>>,
    /// The rows' columns (0: no row).
    columns: u8,
    /// Lines (blank ones included; a last line without its end counts).
    lines: usize,
}

impl PlainChunk {
    /// Reads `bytes` if every line is plain; anything else (a BOM,
    /// spaces, `\r`, a sign, other or mixed columns, a bad row, a byte
    /// that is not ASCII): gives the bytes back for the scenario parser.
    fn parse(bytes: Vec<u8>) -> Result<Self, Vec<u8>> {
        let mut local: FxHashMap<&[u8], u32> = FxHashMap::default();
        let mut names = Vec::new();
        let mut rows = Vec::new();
        let mut shapes = Vec::new();
        let mut columns = 0;
        let mut pieces = 0;
        let mut offset = 0usize;
        for line in bytes.split(|&c| c == b'\n') {
            let at = offset;
            offset += line.len() + 1;
            pieces += 1;
            if line.is_empty() {
                continue;
            }
            let Some((name, ms, n, shape)) = plain_row(line) else {
                return Err(bytes);
            };
            if columns == 0 {
                columns = n;
            } else if n != columns {
                return Err(bytes);
            }
            let name = name.as_bytes();
            let id = match local.get(name) {
                Some(&id) => id,
                None => {
                    let id = names.len() as u32;
                    local.insert(name, id);
                    // Offsets fit: a chunk is far below 4 GiB (see
                    // next_chunk; a longer line is not plain).
                    let (Ok(start), Ok(end), Ok(row)) = (
                        u32::try_from(at),
                        u32::try_from(at + name.len()),
                        u32::try_from(rows.len()),
                    ) else {
                        return Err(bytes);
                    };
                    names.push((start, end, row));
                    id
                }
            };
            rows.push((ms, id));
            if n > 2 {
                shapes.push(shape);
            }
        }
        drop(local);
        // After a last line end, `split` gives one empty piece more.
        let lines = pieces - usize::from(bytes.ends_with(b"\n"));
        Ok(Self {
            bytes,
            names,
            rows,
            shapes,
            columns,
            lines,
        })
    }
}

/// The next chunk of `file`: about [`LOAD_CHUNK_BYTES`], cut after the
/// last line's end (at the end of the file, after its last byte; a line
/// longer than a chunk makes a longer chunk); None at the end. `buf`
/// keeps what follows the cut.
fn next_chunk(
    file: &mut std::fs::File,
    buf: &mut Vec<u8>,
    eof: &mut bool,
) -> std::io::Result<Option<Vec<u8>>> {
    if !*eof {
        *eof = fill(file, buf, LOAD_CHUNK_BYTES)?;
    }
    let end = loop {
        if *eof {
            break buf.len();
        }
        match buf.iter().rposition(|&c| c == b'\n') {
            Some(i) => break i + 1,
            // A line longer than a chunk: read on.
            None => {
                let want = buf.len() + LOAD_CHUNK_BYTES;
                *eof = fill(file, buf, want)?;
            }
        }
    };
    if end == 0 {
        return Ok(None);
    }
    let rest = buf.split_off(end);
    Ok(Some(std::mem::replace(buf, rest)))
}

/// Reads from `file` onto `buf` until it holds `want` bytes or the file
/// ends; true at the end.
fn fill(file: &mut std::fs::File, buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    let missing = want.saturating_sub(buf.len());
    let n = file.by_ref().take(missing as u64).read_to_end(buf)?;
    Ok(n < missing)
}

/// `Name,StartTimeMs[,DurationMs[,MemoryMb]]` with nothing around or
/// between (see [`PlainChunk`]): the name, the start, the
/// number of columns and the per-invocation ones; None for anything else.
fn plain_row(line: &[u8]) -> Option<(&str, u64, u8, Option<CallShape>)> {
    let mut fields = line.split(|&c| c == b',');
    let name = fields.next()?;
    if name.is_empty() || !name.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    // ASCII, so UTF-8.
    let name = std::str::from_utf8(name).ok()?;
    let start_ms = plain_digits(fields.next()?, 19).filter(|&ms| ms <= scenario::MAX_START_MS)?;
    let Some(duration) = fields.next() else {
        return Some((name, start_ms, 2, None));
    };
    // Digits with at most one point (no sign, exponent or spaces), its
    // value by the scenario parser's own rule.
    if duration.is_empty()
        || duration.len() > 24
        || duration.iter().filter(|&&c| c == b'.').count() > 1
        || !duration.iter().all(|&c| c.is_ascii_digit() || c == b'.')
    {
        return None;
    }
    let duration_us = match plain_duration_us(duration) {
        Some(us) => us,
        None => scenario::duration_us(std::str::from_utf8(duration).ok()?)?,
    };
    let (columns, memory_mb) = match fields.next() {
        None => (3, None),
        Some(m) => {
            // Digits only (at most 10: a `u32` parse of them fails
            // exactly when the value is over `u32::MAX`, which the range
            // excludes), then the parser's range.
            let mb = plain_digits(m, 10)?;
            let mb = u32::try_from(mb)
                .ok()
                .filter(|v| (1..=scenario::MAX_MEMORY_MB).contains(v))?;
            (4, Some(mb))
        }
    };
    if fields.next().is_some() {
        return None;
    }
    let shape = CallShape {
        duration_us,
        memory_mb,
    };
    Some((name, start_ms, columns, Some(shape)))
}

/// A duration of 1 to 12 whole digits and at most 3 decimals (`77.238`,
/// what the importers write), in µs, computed exactly in integers; None
/// for any other text (it goes through [`scenario::duration_us`]). The
/// same value as [`scenario::duration_us`]'s `f64` route: the text is
/// N / 1000 ms for an integer N < 2^51, whose double times 1000 lies
/// within N * 2^-52 < 0.5 of N, so it rounds to N; and N is within the
/// format's range exactly when N / 1000 is (the range's end is a whole
/// number of ms, and doubles near it are far closer together than 1 µs).
fn plain_duration_us(text: &[u8]) -> Option<u64> {
    let (whole, fraction_us) = match text.iter().position(|&c| c == b'.') {
        None => (text, 0),
        Some(dot) => {
            let decimals = &text[dot + 1..];
            // 1 to 3 decimals: tenths, hundredths or thousandths of a ms.
            let scale = [100, 10, 1].get(decimals.len().checked_sub(1)?)?;
            (&text[..dot], plain_digits(decimals, 3)? * scale)
        }
    };
    let us = plain_digits(whole, 12)? * 1000 + fraction_us;
    const MAX_US: u64 = scenario::MAX_DURATION_MS as u64 * 1000;
    (us <= MAX_US).then_some(us)
}

/// A whole number of at most `max_len` decimal digits (19 always fit a
/// `u64`), nothing else.
fn plain_digits(digits: &[u8], max_len: usize) -> Option<u64> {
    if digits.is_empty() || digits.len() > max_len.min(19) {
        return None;
    }
    let mut value = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(d - b'0');
    }
    Some(value)
}

/// The 1-based line, within `chunk`, of its `n`-th (0-based) non-blank
/// line: the parser's `n`-th event.
fn nth_row_line(chunk: &str, n: usize) -> usize {
    chunk
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            let l = if *i == 0 {
                l.strip_prefix('\u{feff}').unwrap_or(l)
            } else {
                l
            };
            !l.trim().is_empty()
        })
        .nth(n)
        .map_or(1, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_interned_and_arrivals_sorted_stably() {
        let events = protocol::scenario::parse("B,20\nA,10\nB,10\nA,0\n", "t.csv").unwrap();
        let w = Workload::from_events(&events);
        assert_eq!(w.names, ["B", "A"]);
        let ms = |x| Time::from_millis(x);
        assert_eq!(
            w.arrivals,
            vec![(ms(0), 1), (ms(10), 1), (ms(10), 0), (ms(20), 0)]
        );
        assert_eq!((w.first_row(0), w.first_row(1), w.first_row(9)), (1, 2, 0));
        assert_eq!(w.span(), ms(20));
        assert_eq!(w.clone().truncated(ms(10)).arrivals.len(), 1);
    }

    #[test]
    fn files_are_read_with_errors_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, "W1,0\nW2,x\n").unwrap();
        let e = Workload::load(&p).unwrap_err().to_string();
        assert!(e.contains("s.csv:2"), "{e}");
        assert!(Workload::load(&dir.path().join("none.csv")).is_err());
        std::fs::write(&p, "W1,0\nW2,5\n").unwrap();
        assert_eq!(Workload::load(&p).unwrap().arrivals.len(), 2);
    }

    /// Rows enough to fill several chunks.
    const MANY: usize = LOAD_CHUNK_BYTES / 4;

    #[test]
    fn loading_streams_in_chunks_and_errors_name_the_files_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("long.csv");
        // Rows past the first chunk, a blank line, then a bad row.
        let mut text = String::from("\u{feff}");
        for i in 0..MANY + 10 {
            text.push_str(&format!("F{},{}\n", i % 3, MANY + 10 - i));
        }
        assert!(text.len() > 2 * LOAD_CHUNK_BYTES);
        std::fs::write(&p, &text).unwrap();
        let w = Workload::load(&p).unwrap();
        assert_eq!(w.arrivals.len(), MANY + 10);
        assert_eq!(w.names, ["F0", "F1", "F2"]);
        assert_eq!(
            w.arrivals[0],
            (Time::from_millis(1), ((MANY + 9) % 3) as u32)
        );
        assert_eq!(
            w,
            Workload::from_events(&protocol::scenario::parse(&text, "x").unwrap())
        );
        text.push_str("\nF1,x\n");
        std::fs::write(&p, &text).unwrap();
        let e = Workload::load(&p).unwrap_err().to_string();
        let line = MANY + 12;
        assert!(e.contains(&format!("long.csv:{line}")), "{e}");
    }

    #[test]
    fn a_line_longer_than_a_chunk_and_bytes_that_are_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("odd.csv");
        // A name of two chunks' length, between plain rows, and no line
        // end at the end of the file.
        let long = "L".repeat(2 * LOAD_CHUNK_BYTES + 3);
        let text = format!("A,1\n{long},2\nB,3");
        std::fs::write(&p, &text).unwrap();
        let w = Workload::load(&p).unwrap();
        assert_eq!(w.names, ["A", long.as_str(), "B"]);
        assert_eq!(w.arrivals.len(), 3);
        // A byte that is not UTF-8 past the first chunk: named by line.
        let mut bytes = Vec::new();
        for i in 0..MANY {
            bytes.extend_from_slice(format!("F,{i}\n").as_bytes());
        }
        bytes.extend_from_slice(b"F,1\nG\xff,2\n");
        std::fs::write(&p, &bytes).unwrap();
        let e = Workload::load(&p).unwrap_err().to_string();
        let line = MANY + 2;
        assert!(e.contains(&format!("odd.csv:{line}: not UTF-8")), "{e}");
    }

    #[test]
    fn plain_rows_read_as_the_parser_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.csv");
        // Plain rows, then rows only the parser reads (spaces, a sign, a
        // CR line end, a BOM): both paths agree with the parser.
        for text in [
            "B,20\nA,10\n\nB,007\nA,0",
            "B,20\nA,10\nB , +7\r\nC,1\n",
            "\u{feff}B,20\nA,10\n",
            "F,3155760000000\nG,00003155760000000\n",
            // Per-invocation columns: plain, then parser-only ones.
            "B,20,1.0005,128\nA,10,5.,1\nB,7,.5,1048576\nA,0,0,64\n",
            "B,20,12.5\nA,10,86400000\nA,3,0.0001\n",
            "B,20,1.5,64\nA,10, 2,64\nA,3,1e3,+8\n",
        ] {
            std::fs::write(&p, text).unwrap();
            let parsed = protocol::scenario::parse(text, "x").unwrap();
            assert_eq!(
                Workload::load(&p).unwrap(),
                Workload::from_events(&parsed),
                "{text:?}"
            );
        }
        assert_eq!(plain_row(b"F,12"), Some(("F", 12, 2, None)));
        let shape = |duration_us, memory_mb| {
            Some(CallShape {
                duration_us,
                memory_mb,
            })
        };
        assert_eq!(
            plain_row(b"F,12,2.5"),
            Some(("F", 12, 3, shape(2500, None)))
        );
        assert_eq!(
            plain_row(b"F,12,0.0015,256"),
            Some(("F", 12, 4, shape(2, Some(256))))
        );
        for bad in [
            "F,",
            ",1",
            "F 1,2",
            "F,+1",
            "F,99999999999999999999",
            "F,3155760000001",
            "F,18446744073709551615",
            "Ä,1",
            "F,1,",
            "F,1,1.2.3",
            "F,1,-2",
            "F,1,1e3",
            "F,1,86400000.5",
            "F,1,2,0",
            "F,1,2,1048577",
            "F,1,2,3,4",
            "F,1,2, 3",
        ] {
            assert_eq!(plain_row(bad.as_bytes()), None, "{bad:?}");
        }
        // Bad rows are still the parser's errors, by line.
        std::fs::write(&p, "A,1\nB,2\nC,-3\n").unwrap();
        let e = Workload::load(&p).unwrap_err().to_string();
        assert!(e.contains("p.csv:3") && e.contains("StartTimeMs"), "{e}");
        // A start past the format's century, on the plain path's rows.
        std::fs::write(&p, "A,1\nB,18446744073709551\n").unwrap();
        let e = Workload::load(&p).unwrap_err().to_string();
        assert!(e.contains("p.csv:2") && e.contains("100 years"), "{e}");
    }

    /// Chunks parsed on several threads and merged in order give what
    /// one parse of the whole text gives: ids in first-seen order, first
    /// rows, arrivals and shapes, with a chunk the parser reads (spaces)
    /// between plain ones and names first seen in later chunks.
    #[test]
    fn chunks_parsed_apart_merge_as_one_parse() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("many.csv");
        let rows = 3 * MANY;
        for shaped in [false, true] {
            let mut text = String::new();
            for i in 0..rows {
                // A new name every so often, the rest from the names seen.
                let f = if i % 997 == 0 {
                    i / 997
                } else {
                    (i * 7) % (1 + i / 997)
                };
                let t = (i * 13) % 100_000;
                if i == rows / 2 {
                    text.push_str(" G ,5\n"); // only the parser reads it
                    continue;
                }
                match shaped {
                    false => text.push_str(&format!("F{f},{t}\n")),
                    true => text.push_str(&format!("F{f},{t},{}.5,{}\n", i % 90, 1 + i % 512)),
                }
            }
            if shaped {
                text = text.replace(" G ,5\n", " G ,5,1,64\n");
            }
            std::fs::write(&p, &text).unwrap();
            let parsed = protocol::scenario::parse(&text, "x").unwrap();
            let loaded = Workload::load(&p).unwrap();
            assert_eq!(loaded, Workload::from_events(&parsed), "shaped: {shaped}");
            assert!(loaded.names.len() > 100, "{}", loaded.names.len());
        }
    }

    /// The integer route of durations gives what the `f64` route gives,
    /// wherever it answers, and answers for what the importers write.
    #[test]
    fn plain_durations_are_the_parser_s_to_the_microsecond() {
        let mut texts: Vec<String> = [
            "0",
            "0.001",
            "0.5",
            "77.238",
            "1.000",
            "007.10",
            "86400000",
            "86400000.000",
            "86399999.999",
            "86400000.001",
            "999999999999.999",
            "1.2345",
            "5.",
            ".5",
            "1..2",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        // Pseudo-random values of 0 to 3 decimals over the whole range.
        let mut x = crate::test_values::SEED;
        for i in 0..20_000u64 {
            crate::test_values::xorshift(&mut x);
            let us = x % 90_000_000_000;
            let text = match i % 4 {
                0 => format!("{}", us / 1000),
                1 => format!("{}.{}", us / 1000, (us % 1000) / 100),
                2 => format!("{}.{:02}", us / 1000, (us % 1000) / 10),
                _ => format!("{}.{:03}", us / 1000, us % 1000),
            };
            texts.push(text);
        }
        let mut answered = 0;
        for text in &texts {
            if let Some(us) = plain_duration_us(text.as_bytes()) {
                answered += 1;
                assert_eq!(Some(us), scenario::duration_us(text), "{text}");
            }
        }
        assert!(answered > 19_000, "{answered}");
        assert_eq!(plain_duration_us(b"77.238"), Some(77_238));
        assert_eq!(plain_duration_us(b"86400000.001"), None);
        for other in ["1.2345", "5.", ".5", "1..2", "1e3", ""] {
            assert_eq!(plain_duration_us(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn per_invocation_columns_are_kept_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shaped.csv");
        std::fs::write(&p, "\nW1,10,12.5,128\nW2,5,1,64\nW1,10,2,32\n").unwrap();
        let w = Workload::load(&p).unwrap();
        let ms = |x| Time::from_millis(x);
        assert_eq!(w.arrivals, vec![(ms(5), 1), (ms(10), 0), (ms(10), 0)]);
        let shape = |us, mb| {
            Some(CallShape {
                duration_us: us,
                memory_mb: mb,
            })
        };
        assert_eq!(
            w.shapes,
            vec![
                shape(1000, Some(64)),
                shape(12_500, Some(128)),
                shape(2000, Some(32))
            ]
        );
        assert_eq!(w.shape(1), shape(12_500, Some(128)));
        assert_eq!(w.clone().truncated(ms(6)).shapes.len(), 1);
        let events = protocol::scenario::parse("W1,0,12.5\nW2,5,1\n", "t").unwrap();
        assert_eq!(Workload::from_events(&events).shape(0), shape(12_500, None));
        let plain = protocol::scenario::parse("W1,0\n", "t").unwrap();
        let plain = Workload::from_events(&plain);
        assert!(plain.shapes.is_empty() && plain.shape(0).is_none());
        // Columns that change past the first chunk: named by line.
        let mut text = String::new();
        for i in 0..MANY {
            text.push_str(&format!("F,{i},1\n"));
        }
        for other in ["F,1\n", "F,1,2,64\n"] {
            let mut text = text.clone();
            text.push_str(other);
            std::fs::write(&p, &text).unwrap();
            let e = Workload::load(&p).unwrap_err().to_string();
            let line = MANY + 1;
            assert!(e.contains(&format!("shaped.csv:{line}")), "{other:?}: {e}");
        }
    }
}
