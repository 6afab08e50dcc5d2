//! A user function's package: its name, its manifest, and the checks and
//! unpacking of its zip (issue 14 §2 and §3).
//!
//! # The manifest (`hf-function.json`, at the zip's root)
//! ```json
//! {"runtime": "http", "entry": "bin/server", "args": [], "timeout_ms": 30000}
//! ```
//! - `runtime`: `http` (a native executable serving HTTP/1.1 on
//!   `127.0.0.1:$PORT`, kept warm and reused), `oneshot` (a native
//!   executable run once per call, CGI/1.1 style: RFC 3875's environment,
//!   the body on stdin, a CGI reply on stdout), or `node` (a Glambdar
//!   handler: `entry` exports `handler(req)`, run by the worker's
//!   bootstrap with the machine's `node`).
//! - `entry`: the file to run, relative to the package root (default
//!   `index.js` for `node`; required otherwise).
//! - `args`: extra arguments for a native entry (default none).
//! - `timeout_ms`: how long one call may take (default
//!   [`DEFAULT_TIMEOUT_MS`], at most [`MAX_TIMEOUT_MS`]).
//! - `idempotent`: whether a call may safely run twice (default `false`).
//!   When a worker dies with a call in flight (its connection closes or
//!   is reset before the reply), the balancer sends the call once more to
//!   another node if the function is `idempotent` or the method is `GET`
//!   or `HEAD`; otherwise the client gets a 502 saying so, since the
//!   function may have run (part of) the call already.
//!
//! A zip without a manifest whose root holds `index.js` is a Glambdar
//! function: `{"runtime": "node", "entry": "index.js"}`.
//!
//! # What is refused (a 400 naming the problem; nothing is stored)
//! More than [`Limits::max_entries`] entries; more than
//! [`Limits::max_unpacked_bytes`] unpacked (counted on the bytes actually
//! inflated, not on the sizes the zip declares); an entry whose path
//! leaves the package (`../`, absolute: "zip slip"); a symlink whose
//! target is absolute or has a `..` component (so every symlink resolves
//! inside the package, chains included); a missing or malformed manifest;
//! an entry file that is missing or not a regular file. The upload's own
//! size limit is the HTTP edge's (413).

use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The manifest's file name, at the package root.
pub const MANIFEST_FILE: &str = "hf-function.json";
/// The handler file of a Glambdar function.
pub const GLAMBDAR_HANDLER: &str = "index.js";
/// A call's time limit when the manifest gives none.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The largest `timeout_ms` a manifest may ask for (5 minutes).
pub const MAX_TIMEOUT_MS: u64 = 300_000;
/// The largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// The longest symlink target read.
const MAX_LINK_BYTES: u64 = 4096;

/// Bounds on a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Limits {
    /// The largest upload (the zip), bytes: 413 over it.
    pub max_upload_bytes: u64,
    /// The most entries a zip may hold.
    pub max_entries: usize,
    /// The most bytes a zip may unpack to.
    pub max_unpacked_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 32 * 1024 * 1024,
            max_entries: 2_000,
            max_unpacked_bytes: 64 * 1024 * 1024,
        }
    }
}

/// How a function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeSpec {
    /// A native executable serving HTTP on `$PORT` (warm, reused).
    Http,
    /// A native executable run once per call (CGI/1.1 on stdin/stdout).
    Oneshot,
    /// A Glambdar Node.js handler, served by the worker's bootstrap.
    Node,
}

/// The manifest, as written in `hf-function.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub runtime: RuntimeSpec,
    #[serde(default)]
    pub entry: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Whether a call may safely run twice (module doc).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotent: bool,
}

impl Manifest {
    /// A Glambdar zip's implied manifest.
    pub fn glambdar() -> Self {
        Self {
            runtime: RuntimeSpec::Node,
            entry: Some(GLAMBDAR_HANDLER.into()),
            args: Vec::new(),
            timeout_ms: None,
            idempotent: false,
        }
    }

    /// The entry file (relative to the package root).
    pub fn entry(&self) -> &str {
        match (&self.entry, self.runtime) {
            (Some(e), _) => e,
            (None, _) => GLAMBDAR_HANDLER,
        }
    }

    /// A call's time limit.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }

    /// Checks the fields against their bounds.
    fn check(&self) -> Result<(), PackageError> {
        if let Some(t) = self.timeout_ms {
            if t == 0 || t > MAX_TIMEOUT_MS {
                return Err(PackageError::Manifest(format!(
                    "timeout_ms {t} is outside 1..={MAX_TIMEOUT_MS}"
                )));
            }
        }
        if self.entry.is_none() && self.runtime != RuntimeSpec::Node {
            return Err(PackageError::Manifest(
                "\"entry\" is required for the http and oneshot runtimes".into(),
            ));
        }
        if self.args.len() > 64 || self.args.iter().any(|a| a.len() > 4096) {
            return Err(PackageError::Manifest(
                "\"args\": at most 64 arguments of at most 4096 bytes".into(),
            ));
        }
        inner_path(self.entry()).map(|_| ()).ok_or_else(|| {
            PackageError::Manifest(format!(
                "entry {:?} is not a relative path inside the package",
                self.entry()
            ))
        })
    }
}

/// Why a package is refused (each a 400, the upload size a 413).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    #[error("function name {0:?} is not [A-Za-z0-9_-]{{1,64}}")]
    BadName(String),
    #[error("function name {0:?} is reserved (a sample function's)")]
    Reserved(String),
    #[error("upload too large: more than {0} bytes")]
    TooLarge(u64),
    #[error("not a readable zip: {0}")]
    NotZip(String),
    #[error("zip bomb: more than {0} entries")]
    TooManyEntries(usize),
    #[error("zip bomb: unpacks to more than {0} bytes")]
    TooBig(u64),
    #[error("zip slip: entry {0:?} leaves the package (absolute or `..` path)")]
    Slip(String),
    #[error("symlink {name:?} points outside the package (target {target:?})")]
    SymlinkOut { name: String, target: String },
    #[error("no manifest: the zip has neither {MANIFEST_FILE} nor {GLAMBDAR_HANDLER} at its root")]
    NoManifest,
    #[error("malformed manifest {MANIFEST_FILE}: {0}")]
    Manifest(String),
    #[error("entry file {0:?} named by the manifest is missing from the package (or not a regular file)")]
    MissingEntry(String),
    #[error("writing the package: {0}")]
    Io(String),
    /// The server's disk (or its quota) is full: not the package's fault.
    #[error("no space left on the server's disk for the package: {0}")]
    NoSpace(String),
}

/// A failure of the server's own disk while it handles a package:
/// [`PackageError::NoSpace`] when the disk or a quota is full, else
/// [`PackageError::Io`]; `what` says what was being written.
pub fn disk_error(what: &str, e: std::io::Error) -> PackageError {
    /// Linux's "disk quota exceeded".
    const EDQUOT: i32 = 122;
    if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(EDQUOT) {
        PackageError::NoSpace(format!("{what}: {e}"))
    } else {
        PackageError::Io(format!("{what}: {e}"))
    }
}

/// Copies at most `limit` bytes of a zip entry into `to`: a read error is
/// the zip's (a corrupt entry), a write error the server's disk's.
fn copy_entry(
    from: &mut impl Read,
    to: &mut impl std::io::Write,
    limit: u64,
    name: &str,
) -> Result<u64, PackageError> {
    let mut buf = [0u8; 16 * 1024];
    let mut copied: u64 = 0;
    while copied < limit {
        let want = usize::try_from(limit - copied).map_or(buf.len(), |left| left.min(buf.len()));
        let n = match from.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PackageError::NotZip(format!("entry {name:?}: {e}"))),
        };
        to.write_all(&buf[..n]).map_err(|e| disk_error(name, e))?;
        copied += n as u64;
    }
    Ok(copied)
}

/// Whether `name` may name a user function: `[A-Za-z0-9_-]{1,64}` and
/// not one of the catalog's (sample) functions.
pub fn check_name(name: &str) -> Result<(), PackageError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(PackageError::BadName(name.chars().take(80).collect()));
    }
    if crate::catalog().get(name).is_some() {
        return Err(PackageError::Reserved(name.into()));
    }
    Ok(())
}

/// `p` as a path inside a root: relative, no `..`, no root or prefix,
/// at least one normal component.
fn inner_path(p: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// What a checked, unpacked package holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub manifest: Manifest,
    /// Bytes unpacked.
    pub bytes: u64,
    pub entries: usize,
}

/// Checks `zip` and unpacks it into `dest` (a fresh directory the caller
/// made and removes on error). Never trusts a size the zip declares:
/// every entry is read through a bound.
pub fn unpack(zip: &[u8], dest: &Path, limits: &Limits) -> Result<Unpacked, PackageError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| PackageError::NotZip(e.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(PackageError::TooManyEntries(limits.max_entries));
    }
    let io = |e: std::io::Error| disk_error("unpacking", e);
    let mut total: u64 = 0;
    let mut manifest_text: Option<String> = None;
    for i in 0..archive.len() {
        let mut file = archive
            .by_index(i)
            .map_err(|e| PackageError::NotZip(e.to_string()))?;
        let raw = file
            .name()
            .map(|n| n.into_owned())
            .map_err(|e| PackageError::NotZip(e.to_string()))?;
        let Some(rel) = inner_path(&raw).filter(|_| file.enclosed_name().is_some()) else {
            // The root itself ("./") is harmless; anything else is a slip.
            if raw
                .trim_end_matches('/')
                .trim_start_matches("./")
                .is_empty()
            {
                continue;
            }
            return Err(PackageError::Slip(raw));
        };
        let target = dest.join(&rel);
        if file.is_dir() {
            std::fs::create_dir_all(&target).map_err(io)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        if file.is_symlink() {
            let mut link = String::new();
            (&mut file)
                .take(MAX_LINK_BYTES)
                .read_to_string(&mut link)
                .map_err(|e| PackageError::NotZip(format!("symlink {raw:?}: {e}")))?;
            let safe = !link.is_empty()
                && Path::new(&link)
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !safe {
                return Err(PackageError::SymlinkOut {
                    name: raw,
                    target: link,
                });
            }
            std::os::unix::fs::symlink(&link, &target).map_err(io)?;
            continue;
        }
        let remaining = limits.max_unpacked_bytes - total;
        if file.size() > remaining {
            return Err(PackageError::TooBig(limits.max_unpacked_bytes));
        }
        let mode = file.unix_mode().unwrap_or(0o644);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| disk_error(&raw, e))?;
        let written = copy_entry(&mut file, &mut out, remaining + 1, &raw)?;
        if written > remaining {
            return Err(PackageError::TooBig(limits.max_unpacked_bytes));
        }
        total += written;
        use std::os::unix::fs::PermissionsExt;
        let perm = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(perm)).map_err(io)?;
        if rel == Path::new(MANIFEST_FILE) {
            let mut text = String::new();
            std::fs::File::open(&target)
                .and_then(|f| f.take(MAX_MANIFEST_BYTES).read_to_string(&mut text))
                .map_err(|e| PackageError::Manifest(e.to_string()))?;
            manifest_text = Some(text);
        }
    }
    let manifest = match manifest_text {
        Some(text) => {
            let m: Manifest = protocol::strict::from_json_str(&text)
                .map_err(|e| PackageError::Manifest(e.to_string()))?;
            m.check()?;
            m
        }
        None if dest.join(GLAMBDAR_HANDLER).is_file() => Manifest::glambdar(),
        None => return Err(PackageError::NoManifest),
    };
    let entry = dest.join(manifest.entry());
    // symlink_metadata: an entry that is a symlink is refused too.
    if !std::fs::symlink_metadata(&entry).is_ok_and(|m| m.is_file()) {
        return Err(PackageError::MissingEntry(manifest.entry().to_string()));
    }
    if manifest.runtime != RuntimeSpec::Node {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    Ok(Unpacked {
        manifest,
        bytes: total,
        entries: archive.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_samples_reserved() {
        assert!(check_name("my-fn_1").is_ok());
        for bad in ["", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(
                matches!(check_name(bad), Err(PackageError::BadName(_))),
                "{bad}"
            );
        }
        assert_eq!(check_name("W1"), Err(PackageError::Reserved("W1".into())));
    }

    #[test]
    fn inner_paths_stay_inside() {
        assert_eq!(inner_path("a/./b"), Some(PathBuf::from("a/b")));
        for bad in ["../a", "/etc/passwd", "a/../../b", ".", ""] {
            assert_eq!(inner_path(bad), None, "{bad}");
        }
    }

    /// A reader or writer failing with `kind`.
    struct Failing(std::io::ErrorKind);

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }
    }

    impl std::io::Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A full disk was reported as "not a readable zip" (a 400: the
    /// user's fault); the zip's own read errors still are.
    #[test]
    fn a_full_disk_is_the_servers_failure_not_the_zips() {
        let mut out = Vec::new();
        let data = vec![7u8; 40_000];
        assert_eq!(
            copy_entry(&mut &data[..], &mut out, 100_000, "a").unwrap(),
            40_000
        );
        assert_eq!(out, data);
        out.clear();
        assert_eq!(
            copy_entry(&mut &data[..], &mut out, 30_001, "a").unwrap(),
            30_001
        );
        assert_eq!(out.len(), 30_001);
        let full = std::io::ErrorKind::StorageFull;
        let e = copy_entry(&mut &data[..], &mut Failing(full), 100_000, "big.bin").unwrap_err();
        assert!(matches!(e, PackageError::NoSpace(_)), "{e:?}");
        assert!(e.to_string().contains("big.bin"), "{e}");
        let denied = std::io::ErrorKind::PermissionDenied;
        let e = copy_entry(&mut &data[..], &mut Failing(denied), 100_000, "a").unwrap_err();
        assert!(matches!(e, PackageError::Io(_)), "{e:?}");
        let bad = std::io::ErrorKind::InvalidData;
        let e = copy_entry(&mut Failing(bad), &mut out, 100_000, "a").unwrap_err();
        assert!(matches!(e, PackageError::NotZip(_)), "{e:?}");
        let quota = std::io::Error::from_raw_os_error(122);
        assert!(matches!(disk_error("x", quota), PackageError::NoSpace(_)));
    }

    #[test]
    fn manifests_are_bounded() {
        let m: Manifest = serde_json::from_str(r#"{"runtime":"node"}"#).unwrap();
        assert_eq!(m.entry(), "index.js");
        assert!(m.check().is_ok());
        let m: Manifest = serde_json::from_str(r#"{"runtime":"http"}"#).unwrap();
        assert!(m.check().is_err());
        let m: Manifest =
            serde_json::from_str(r#"{"runtime":"http","entry":"x","timeout_ms":300001}"#).unwrap();
        assert!(m.check().is_err());
        let m: Manifest = serde_json::from_str(r#"{"runtime":"http","entry":"../x"}"#).unwrap();
        assert!(m.check().is_err());
        assert!(serde_json::from_str::<Manifest>(r#"{"runtime":"python"}"#).is_err());
        assert!(serde_json::from_str::<Manifest>(r#"{"runtime":"node","x":1}"#).is_err());
    }

    #[test]
    fn idempotent_defaults_to_false_and_is_stored_only_when_set() {
        let m: Manifest = serde_json::from_str(r#"{"runtime":"node"}"#).unwrap();
        assert!(!m.idempotent);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"runtime":"node","entry":null,"args":[],"timeout_ms":null}"#,
            "a manifest stored before the field existed reads the same"
        );
        let m: Manifest = serde_json::from_str(r#"{"runtime":"node","idempotent":true}"#).unwrap();
        assert!(m.idempotent);
        let again: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(again, m);
        assert!(
            serde_json::from_str::<Manifest>(r#"{"runtime":"node","idempotent":"yes"}"#).is_err()
        );
    }
}
