//! Reads `git status --porcelain=v1 -z`: did a source differ from `HEAD`?
//!
//! "Dirty" means the *sources* differ from `HEAD`: a tracked file changed
//! (outside `results/`, where runs write their outputs, and `target/`), or
//! an untracked source file exists (`.rs`, `.toml`, `Cargo.lock`). An
//! untracked log or plot left in the checkout does not count.

/// Top-level folders whose changes are outputs, not sources.
const OUTPUT_DIRS: &[&str] = &["results/", "target/"];

/// True if an entry of `git status --porcelain=v1 -z` output (paths
/// relative to the top level) is a changed source.
pub fn status_is_dirty(status: &[u8]) -> bool {
    let mut entries = status.split(|&b| b == 0).filter(|e| e.len() > 3);
    while let Some(entry) = entries.next() {
        let code = &entry[..2];
        let path = String::from_utf8_lossy(&entry[3..]);
        if code[0] == b'R' || code[0] == b'C' {
            // A rename's or copy's source path follows as its own entry.
            entries.next();
        }
        if OUTPUT_DIRS.iter().any(|d| path.starts_with(d)) {
            continue;
        }
        if code == b"??" {
            if is_source(&path) {
                return true;
            }
            continue;
        }
        return true;
    }
    false
}

fn is_source(path: &str) -> bool {
    path.ends_with(".rs") || path.ends_with(".toml") || path.ends_with("Cargo.lock")
}

#[cfg(test)]
mod tests {
    use super::status_is_dirty;

    #[test]
    fn outputs_and_stray_files_are_not_dirty() {
        assert!(!status_is_dirty(b""));
        assert!(!status_is_dirty(b" M results/default/report.md\0"));
        assert!(!status_is_dirty(b"?? run.log\0?? figs/cdf.png\0"));
        assert!(status_is_dirty(b"?? utils/src/new.rs\0"));
        assert!(status_is_dirty(b" M utils/src/lib.rs\0"));
        assert!(status_is_dirty(b"M  README.md\0"));
        assert!(status_is_dirty(b"R  b.rs\0a.rs\0"));
        assert!(!status_is_dirty(b"R  results/b\0results/a\0"));
    }
}
