//! 2,000 mutated scenarios and 2,000 mutated logs through the parsers and
//! the analyzer (issue 13, part 5: "0 panics and 0 aborts in 2,000 mutated
//! scenarios and 2,000 mutated logs"; 17 of 2,000 logs aborted before).
//!
//! Seeded and deterministic (SplitMix64, `support/mutate.rs`), stable
//! Rust, no libFuzzer: it runs in every `cargo test`. A rejected scenario
//! must be an error naming the file and a line of it, once (not
//! `x.csv:2: ...: x.csv:2: ...`); an unreadable log line is counted with a
//! line number of the file; an analysis that cannot be made is an error
//! naming the log. A sample of the mutated files also goes through the
//! real `utils analyze` binary, which must exit 0 or 1, never abort.

mod support;

use std::path::Path;

use support::checks::{check_log, check_scenario};
use support::mutate::{mutate, SplitMix64};

const FILES: usize = 2_000;
/// Mutated files of each kind also run through the `utils` binary.
const THROUGH_BINARY: usize = 40;

fn workspace(path: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs the whole sample; returns the broken cases (index, mutations,
/// what broke).
fn run_sample(
    seeds: &[Vec<u8>],
    seed: u64,
    suffix: &str,
    check: fn(&str, &str) -> Result<(), String>,
    dir: &Path,
) -> Vec<String> {
    let mut rng = SplitMix64::new(seed);
    let mut broken = Vec::new();
    for i in 0..FILES {
        let base = &seeds[i % seeds.len()];
        let (bytes, done) = mutate(&mut rng, base);
        let name = format!("m/{i}.{suffix}");
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = check(&text, &name) {
            // Kept for the regression tests (fuzz/regressions/).
            let keep = dir.join(format!("{i}.{suffix}"));
            std::fs::write(&keep, &bytes).unwrap();
            broken.push(format!("#{i} {done:?} ({}): {e}", keep.display()));
        }
    }
    broken
}

#[test]
fn two_thousand_mutated_scenarios_are_parsed_or_rejected_with_file_and_line() {
    let seeds = vec![
        workspace("scenarios/small.csv"),
        workspace("scenarios/events.csv")[..4_000].to_vec(),
        b"F1,0,12.5,256\nF2,7,0.001,128\nF1,9,86400000,1048576\n".to_vec(),
        b"W1,0,3\r\n\r\nW2,10,4\r\n".to_vec(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let broken = run_sample(&seeds, 0x5ce7a210, "csv", check_scenario, dir.path());
    assert!(
        broken.is_empty(),
        "{} of {FILES} scenarios broke a promise:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn two_thousand_mutated_logs_are_read_and_analyzed_without_a_panic() {
    let seeds = vec![
        workspace("utils/tests/data/rr-small.log"),
        workspace("utils/tests/data/sample.log"),
        workspace("utils/tests/data/rr-small.log")[..12_000].to_vec(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let broken = run_sample(&seeds, 0x1a9f11e5, "log", check_log, dir.path());
    assert!(
        broken.is_empty(),
        "{} of {FILES} logs broke a promise:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn mutated_logs_through_utils_analyze_exit_0_or_1_and_name_the_file() {
    let seeds = [
        workspace("utils/tests/data/rr-small.log"),
        workspace("utils/tests/data/sample.log"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(0xb1a5);
    for i in 0..THROUGH_BINARY {
        let (bytes, done) = mutate(&mut rng, &seeds[i % seeds.len()]);
        let path = dir.path().join(format!("m{i}.log"));
        std::fs::write(&path, &bytes).unwrap();
        let path = path.to_str().unwrap();
        let args: &[&str] = if i % 2 == 0 {
            &["analyze", "--per-slot", path]
        } else {
            &["analyze", "--json", path]
        };
        let out = support::utils(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1)) && !stderr.contains("panicked"),
            "#{i} {done:?}: utils {args:?} exited {:?}: {stderr}",
            out.status
        );
        if code == Some(1) {
            assert!(stderr.contains(&format!("m{i}.log")), "#{i}: {stderr}");
        }
    }
}
