//! Where the Docker runtime finds the statically linked `hf-fn` that every
//! `FROM scratch` function image carries, found at run time (never a path
//! fixed when the worker was compiled, so installed or copied binaries
//! work too).
//!
//! In this order:
//! 1. `HF_FN_STATIC` (or its older name `HF_FN_STATIC_BINARY`), if set:
//!    that file, which must exist (a configured path that is missing is an
//!    error, not a reason to look elsewhere). `worker-front --fn-binary`
//!    overrides all of this.
//! 2. From the directory of the executables (`bin_dir`, default: the
//!    running executable's) and each directory above it, where
//!    `scripts/build-static-hf-fn.sh` leaves it:
//!    `static/x86_64-unknown-linux-gnu/release/hf-fn` under a `target`
//!    directory (`target/release/worker-front` finds
//!    `target/static/...`) and `target/static/...` under a workspace root;
//!    then a static build in the shared target dir
//!    (`target/x86_64-unknown-linux-gnu/release/hf-fn`).
//! 3. `hf-fn-static`, or `hf-fn` if it is statically linked, beside the
//!    executables (an installed layout).
//!
//! A candidate that exists but is not a statically linked x86-64 ELF is
//! skipped and named in the error.

use std::path::{Path, PathBuf};

/// The environment variable naming the static `hf-fn`.
pub const HF_FN_STATIC_ENV: &str = "HF_FN_STATIC";
/// Its older name, still read.
pub const HF_FN_STATIC_ENV_OLD: &str = "HF_FN_STATIC_BINARY";
/// The command (from the workspace root) that builds it.
pub const BUILD_COMMAND: &str = "scripts/build-static-hf-fn.sh";

const TARGET_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Finds the static `hf-fn` (see the module doc); `bin_dir` is where the
/// testbed's executables are (default: the running executable's
/// directory). The error says what was looked for and how to build it.
pub fn locate_static_hf_fn(bin_dir: Option<&Path>) -> Result<PathBuf, String> {
    for var in [HF_FN_STATIC_ENV, HF_FN_STATIC_ENV_OLD] {
        if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            return match static_check(&path) {
                Ok(()) => Ok(path),
                Err(reason) => Err(format!(
                    "{var} names {}, which {reason}; build the static hf-fn with \
                     `{BUILD_COMMAND}` (run from the workspace root; it prints the path) \
                     and point {var} at it",
                    path.display()
                )),
            };
        }
    }
    let bin_dir = match bin_dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
            .ok_or_else(|| {
                format!(
                    "cannot find this executable's directory to look for the static hf-fn; \
                     set {HF_FN_STATIC_ENV} (build it with `{BUILD_COMMAND}`)"
                )
            })?,
    };
    let mut looked = Vec::new();
    for path in candidates(&bin_dir) {
        match static_check(&path) {
            Ok(()) => return Ok(path),
            Err(reason) => looked.push(format!("{} ({reason})", path.display())),
        }
    }
    Err(format!(
        "the statically linked hf-fn that Docker images carry was not found; \
         {HF_FN_STATIC_ENV} is not set, and none of these is usable: {}. \
         Build it with `{BUILD_COMMAND}` (run from the workspace root; it prints the path), \
         or set {HF_FN_STATIC_ENV}=PATH (worker-front: --fn-binary PATH)",
        looked.join(", ")
    ))
}

/// The places looked at from `bin_dir`, in order.
fn candidates(bin_dir: &Path) -> Vec<PathBuf> {
    let built = Path::new("static")
        .join(TARGET_TRIPLE)
        .join("release/hf-fn");
    let mut out = Vec::new();
    for dir in bin_dir.ancestors() {
        if dir.file_name().is_some_and(|n| n == "target") {
            out.push(dir.join(&built));
            out.push(dir.join(TARGET_TRIPLE).join("release/hf-fn"));
        } else if dir.join("Cargo.toml").is_file() {
            // A workspace root whose target dir is not above bin_dir.
            let target = dir.join("target");
            out.push(target.join(&built));
        }
    }
    out.push(bin_dir.join("hf-fn-static"));
    out.push(bin_dir.join("hf-fn"));
    out.dedup();
    out
}

/// The most of a binary read to check it (its dynamic section may lie
/// anywhere in the file, so the whole file is read, within this bound).
const MAX_BINARY_BYTES: u64 = 1 << 30;

/// Ok if `path` is a statically linked x86-64 ELF; else why not.
fn static_check(path: &Path) -> Result<(), String> {
    use std::io::Read as _;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BINARY_BYTES).read_to_end(&mut head))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist".to_string(),
            _ => format!("cannot be read: {e}"),
        })?;
    super::context::check_static_elf(&head)
        .map_err(|reason| format!("is not a statically linked x86-64 executable: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_the_executable_not_the_build_machine() {
        let c = candidates(Path::new("/opt/hf/target/release"));
        assert_eq!(
            c[0],
            Path::new("/opt/hf/target/static/x86_64-unknown-linux-gnu/release/hf-fn")
        );
        assert_eq!(
            c[1],
            Path::new("/opt/hf/target/x86_64-unknown-linux-gnu/release/hf-fn")
        );
        assert_eq!(c[c.len() - 1], Path::new("/opt/hf/target/release/hf-fn"));
        let installed = candidates(Path::new("/usr/local/bin"));
        assert_eq!(
            installed,
            [
                PathBuf::from("/usr/local/bin/hf-fn-static"),
                PathBuf::from("/usr/local/bin/hf-fn")
            ]
        );
    }

    #[test]
    fn a_missing_binary_names_the_places_and_the_build_command() {
        let dir = tempfile::tempdir().unwrap();
        // A dynamically linked executable is not taken for the static one.
        std::fs::copy(std::env::current_exe().unwrap(), dir.path().join("hf-fn")).unwrap();
        // Only when the variables are not set by whoever runs the tests.
        if std::env::var_os(HF_FN_STATIC_ENV).is_some()
            || std::env::var_os(HF_FN_STATIC_ENV_OLD).is_some()
        {
            return;
        }
        let err = locate_static_hf_fn(Some(dir.path())).unwrap_err();
        assert!(err.contains(BUILD_COMMAND), "{err}");
        assert!(err.contains("hf-fn-static (does not exist)"), "{err}");
        assert!(err.contains("hf-fn (is not a statically linked"), "{err}");
    }
}
