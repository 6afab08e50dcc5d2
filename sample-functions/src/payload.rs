//! A function's package payload: deterministic bytes standing in for the
//! original's dependencies (14 KB up to 131 MB, `package_bytes` in the
//! catalog), so that building, caching and cold-starting an image costs what
//! the original's did.
//!
//! The payload is generated, never checked in: [`PayloadReader`] yields
//! exactly `len` bytes of a fixed xorshift stream (the same for every
//! function, so builds are reproducible and compress as badly as real
//! binaries). Image builders stage it as [`PAYLOAD_FILE_NAME`] beside the
//! `hf-fn` binary; `hf-fn` reads it completely on every cold start (one
//! call, or the start of a warm instance) and checks its length against the
//! catalog, which is what makes large packages slow to start.
//!
//! A package scale (`HF_PACKAGE_SCALE`, default 1.0; [`scaled_bytes`])
//! multiplies every package's size, as `HF_TIME_SCALE` multiplies work and
//! sleeps: builders write, instances read and image caches count
//! `package_bytes × scale` bytes. Quick experiments and tests use it to keep
//! cold paths in proportion to scaled-down work, and to stay within the
//! memory a machine can touch quickly (see the simulator's README on
//! virtual machines whose first touch of memory is slow).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// File name of the payload beside the `hf-fn` binary.
pub const PAYLOAD_FILE_NAME: &str = "payload.bin";

/// Environment variable overriding the payload's path (`none` = skip).
pub const PAYLOAD_ENV: &str = "HF_PAYLOAD";

/// Environment variable: package scale (default 1.0), see the module doc.
pub const PACKAGE_SCALE_ENV: &str = "HF_PACKAGE_SCALE";

/// Whether `scale` is a usable package scale: finite and >= 0.
pub fn valid_package_scale(scale: f64) -> bool {
    scale.is_finite() && scale >= 0.0
}

/// Parses a package scale (the value of [`PACKAGE_SCALE_ENV`] or a
/// `--package-scale` flag): a finite number >= 0; absent or empty is 1.0.
pub fn parse_package_scale(value: Option<&str>) -> Result<f64, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(1.0),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| valid_package_scale(*x))
            .ok_or_else(|| format!("{PACKAGE_SCALE_ENV}={v:?} is not a non-negative number")),
    }
}

/// Payload bytes of a package of `package_bytes` at package scale `scale`.
pub fn scaled_bytes(package_bytes: u64, scale: f64) -> u64 {
    (package_bytes as f64 * scale).round() as u64
}

/// An endless deterministic byte stream, cut at `len` bytes.
#[derive(Debug, Clone)]
pub struct PayloadReader {
    remaining: u64,
    state: u64,
}

impl PayloadReader {
    pub fn new(len: u64) -> Self {
        Self {
            remaining: len,
            state: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

impl Read for PayloadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        for chunk in buf[..n].chunks_mut(8) {
            let mut x = self.state;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.state = x;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Writes a payload of `len` bytes to `out`.
pub fn write_payload(out: &mut impl Write, len: u64) -> io::Result<u64> {
    io::copy(&mut PayloadReader::new(len), out)
}

/// Writes a payload of `len` bytes to the file `path` (created or replaced).
pub fn write_payload_file(path: &Path, len: u64) -> io::Result<()> {
    let mut f = io::BufWriter::with_capacity(1 << 20, File::create(path)?);
    write_payload(&mut f, len)?;
    f.flush()?;
    f.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// A payload that is missing or has the wrong size.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("payload {path}: {source} (stage it with `hf-fn stage <NAME> <DIR>`, or set HF_PAYLOAD=none to skip)")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("payload {path} has {found} bytes, the catalog says {expected}")]
    WrongSize {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
}

/// Reads the whole payload at `path` (1 MiB at a time) and checks that it
/// has `expected` bytes. Returns a checksum of what was read, so the read
/// cannot be skipped.
pub fn read_payload(path: &Path, expected: u64) -> Result<u64, PayloadError> {
    let io_err = |source| PayloadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io_err)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut sum = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        // One word per 4 KiB page keeps the checksum cheap but touches every page.
        for page in buf[..n].chunks(4096) {
            sum = sum.wrapping_add(u64::from(page[0]));
        }
    }
    if total != expected {
        return Err(PayloadError::WrongSize {
            path: path.to_path_buf(),
            found: total,
            expected,
        });
    }
    Ok(sum)
}

/// Where `hf-fn` looks for its payload: `HF_PAYLOAD` if set (`None` when
/// it is `none`), else [`PAYLOAD_FILE_NAME`] beside the running binary.
pub fn payload_path(env_value: Option<&str>, exe: &Path) -> Option<PathBuf> {
    match env_value {
        Some("none") => None,
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => Some(
            exe.parent()
                .unwrap_or_else(|| Path::new("/"))
                .join(PAYLOAD_FILE_NAME),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_scale_parses_and_scales() {
        assert_eq!(parse_package_scale(None), Ok(1.0));
        assert_eq!(parse_package_scale(Some(" ")), Ok(1.0));
        assert_eq!(parse_package_scale(Some("0.25")), Ok(0.25));
        for bad in ["-1", "x", "inf", "NaN"] {
            let e = parse_package_scale(Some(bad)).unwrap_err();
            assert!(e.contains(PACKAGE_SCALE_ENV) && e.contains(bad), "{e}");
        }
        assert_eq!(scaled_bytes(131_000_000, 1.0), 131_000_000);
        assert_eq!(scaled_bytes(131_000_000, 0.25), 32_750_000);
        assert_eq!(scaled_bytes(14_000, 0.0), 0);
    }

    #[test]
    fn exact_length_and_deterministic() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_payload(&mut a, 1003).unwrap();
        write_payload(&mut b, 1003).unwrap();
        assert_eq!(a.len(), 1003);
        assert_eq!(a, b);
        assert_ne!(a[..8], a[8..16]);
    }

    #[test]
    fn read_checks_the_size() {
        let dir = std::env::temp_dir().join(format!("hf-payload-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(PAYLOAD_FILE_NAME);
        write_payload_file(&p, 3 << 20).unwrap();
        assert!(read_payload(&p, 3 << 20).is_ok());
        let e = read_payload(&p, 5).unwrap_err();
        assert!(e.to_string().contains("catalog says 5"), "{e}");
        let e = read_payload(&dir.join("absent"), 5).unwrap_err();
        assert!(e.to_string().contains("hf-fn stage"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn path_resolution() {
        let exe = Path::new("/img/hf-fn");
        assert_eq!(
            payload_path(None, exe),
            Some(PathBuf::from("/img/payload.bin"))
        );
        assert_eq!(payload_path(Some("none"), exe), None);
        assert_eq!(payload_path(Some("/x"), exe), Some(PathBuf::from("/x")));
    }
}
