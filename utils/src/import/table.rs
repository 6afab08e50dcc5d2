//! Reading a trace's CSV files row by row, with errors that name the file,
//! the 1-based line and the column (1-based number and header name), and a
//! BLAKE2b-256 digest of the bytes read, computed on the way.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use csv::ByteRecord;

use super::ImportError;

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Blake2b<U32>,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A CSV file with a fixed header, read one row at a time.
pub struct Table {
    file: String,
    reader: csv::Reader<Hashing<BufReader<File>>>,
    columns: Vec<String>,
    record: ByteRecord,
    line: u64,
    /// Data rows read so far.
    pub rows: u64,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("file", &self.file)
            .field("line", &self.line)
            .finish()
    }
}

impl Table {
    /// Opens `path` and checks its header against `columns` (exactly, in
    /// order; a UTF-8 byte-order mark is skipped).
    pub fn open(path: &Path, columns: Vec<String>) -> Result<Self, ImportError> {
        let file = path.display().to_string();
        let handle = File::open(path).map_err(|source| ImportError::Io {
            file: file.clone(),
            source,
        })?;
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(Hashing {
                inner: BufReader::with_capacity(1 << 20, handle),
                hasher: Blake2b::new(),
                bytes: 0,
            });
        let header = columns.join(",");
        let mut table = Self {
            file,
            reader,
            columns,
            record: ByteRecord::new(),
            line: 0,
            rows: 0,
        };
        if !table.read_record()? {
            return Err(table.error(1, None, format!("empty file: expected the header {header}")));
        }
        for i in 0..table.columns.len() {
            let expected = table.columns[i].as_str();
            let found = match table.record.get(i) {
                Some(f) => f,
                None => {
                    return Err(table.error(
                        table.line,
                        Some(i),
                        "missing from the header".to_string(),
                    ))
                }
            };
            let found = if i == 0 {
                found.strip_prefix(b"\xef\xbb\xbf").unwrap_or(found)
            } else {
                found
            };
            if found != expected.as_bytes() {
                return Err(table.error(
                    table.line,
                    Some(i),
                    format!(
                        "wrong header: expected {expected:?}, found {:?}",
                        String::from_utf8_lossy(found)
                    ),
                ));
            }
        }
        let n = table.columns.len();
        if table.record.len() > n {
            return Err(table.error(
                table.line,
                None,
                format!(
                    "wrong header: {} columns, expected {} (column {} is {:?})",
                    table.record.len(),
                    n,
                    n + 1,
                    String::from_utf8_lossy(&table.record[n])
                ),
            ));
        }
        Ok(table)
    }

    fn read_record(&mut self) -> Result<bool, ImportError> {
        let more = self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(|e| {
                let line = e.position().map_or(self.line + 1, |p| p.line());
                ImportError::Format {
                    file: self.file.clone(),
                    line,
                    column: None,
                    message: format!("unreadable CSV: {e}"),
                }
            })?;
        if more {
            self.line = self.record.position().map_or(self.line + 1, |p| p.line());
        }
        Ok(more)
    }

    /// Advances to the next data row (blank lines skipped); false at the
    /// end. A row with fewer or more fields than the header is an error.
    pub fn next_row(&mut self) -> Result<bool, ImportError> {
        loop {
            if !self.read_record()? {
                return Ok(false);
            }
            if self.record.len() == 1 && self.record[0].is_empty() {
                continue;
            }
            let n = self.columns.len();
            if self.record.len() < n {
                return Err(self.error(
                    self.line,
                    Some(self.record.len()),
                    format!("missing ({} of {n} fields)", self.record.len()),
                ));
            }
            if self.record.len() > n {
                return Err(self.error(
                    self.line,
                    None,
                    format!("{} fields where the header has {n}", self.record.len()),
                ));
            }
            self.rows += 1;
            return Ok(true);
        }
    }

    /// The raw field `index` (0-based) of the current row.
    pub fn raw(&self, index: usize) -> &[u8] {
        &self.record[index]
    }

    /// Field `index` as text (an identifier such as a hash).
    pub fn text(&self, index: usize) -> Result<&str, ImportError> {
        std::str::from_utf8(&self.record[index])
            .map_err(|_| self.cell_error(index, "not UTF-8 text".to_string()))
    }

    /// Field `index` as a whole, non-negative number.
    pub fn count(&self, index: usize) -> Result<u64, ImportError> {
        parse_count(&self.record[index]).ok_or_else(|| {
            self.cell_error(
                index,
                format!(
                    "{:?} is not a whole, non-negative number",
                    String::from_utf8_lossy(&self.record[index])
                ),
            )
        })
    }

    /// Field `index` as a finite, non-negative number.
    pub fn non_negative(&self, index: usize) -> Result<f64, ImportError> {
        std::str::from_utf8(&self.record[index])
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                self.cell_error(
                    index,
                    format!(
                        "{:?} is not a finite, non-negative number",
                        String::from_utf8_lossy(&self.record[index])
                    ),
                )
            })
    }

    /// An error about field `index` of the current row.
    pub fn cell_error(&self, index: usize, message: String) -> ImportError {
        self.error(self.line, Some(index), message)
    }

    fn error(&self, line: u64, column: Option<usize>, message: String) -> ImportError {
        ImportError::Format {
            file: self.file.clone(),
            line,
            column: column.map(|i| (i + 1, self.columns[i].clone())),
            message,
        }
    }

    /// Reads to the end (checking nothing more) and returns the size and
    /// the BLAKE2b-256 of the whole file, lowercase hex.
    pub fn finish(mut self) -> Result<(u64, String), ImportError> {
        let hashing = self.reader.get_mut();
        std::io::copy(hashing, &mut std::io::sink()).map_err(|source| ImportError::Io {
            file: self.file.clone(),
            source,
        })?;
        let Hashing { hasher, bytes, .. } = self.reader.into_inner();
        Ok((bytes, crate::provenance::blake2b_hex(&hasher.finalize())))
    }
}

/// A whole non-negative number of ASCII digits (surrounding spaces allowed),
/// or None (empty, a sign, a fraction, or more than u64 holds).
pub fn parse_count(field: &[u8]) -> Option<u64> {
    let field = field.trim_ascii();
    if field.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_whole_non_negative_numbers() {
        assert_eq!(parse_count(b"0"), Some(0));
        assert_eq!(parse_count(b" 42 "), Some(42));
        assert_eq!(parse_count(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"-1",
            b"1.5",
            b"1e3",
            b"x",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_count(bad), None, "{bad:?}");
        }
    }
}
