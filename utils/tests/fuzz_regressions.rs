//! Every input that the fuzz targets (`fuzz/`, `scripts/fuzz-ci.sh`) or
//! the mutation test (`fuzz_mutations.rs`) found breaking a promise, kept
//! in `fuzz/regressions/<target>/` and checked here on stable Rust with the
//! promises of `support/checks.rs`: each stays fixed. The fuzz run seeds
//! its corpora with them too.

mod support;

use std::path::{Path, PathBuf};

use support::checks::{check_log, check_log_line, check_scenario};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    files.sort();
    files
}

fn check_all(target: &str, check: impl Fn(&str, &str) -> Result<(), String>) -> usize {
    let files = inputs(target);
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = check(&text, "fuzz/x") {
            panic!("{}: {e}", path.display());
        }
    }
    files.len()
}

#[test]
fn scenario_regressions_stay_fixed() {
    assert!(check_all("scenario", check_scenario) >= 1);
}

#[test]
fn log_regressions_stay_fixed() {
    check_all("analyze", check_log);
    check_all("log_line", |text, _| check_log_line(text));
}
