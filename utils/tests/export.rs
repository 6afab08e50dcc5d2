//! `utils export`: a log with a failed call, read back with pandas (the
//! Debian package python3-pandas; CI installs it), and the refusal to
//! replace an existing output.

mod support;
use support::utils;

use std::path::{Path, PathBuf};
use std::process::Command;

use protocol::sidecar::{sidecar_path, Cluster, RunSidecar};

fn sample() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.log").to_string()
}

/// A Python 3 that can import pandas: `python3` on the PATH, else the
/// system's `/usr/bin/python3` (where Debian's python3-pandas installs).
fn python_with_pandas() -> PathBuf {
    for python in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(python)
            .args(["-c", "import pandas"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return PathBuf::from(python);
        }
    }
    panic!(
        "this test reads the export with pandas, and no python3 can import it: \
         install python3-pandas (apt-get install python3-pandas; .ci/run does)"
    );
}

fn pandas(script: &str, csv: &Path) -> String {
    let out = Command::new(python_with_pandas())
        .args(["-c", script, csv.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn export_reads_back_with_pandas() {
    let dir = tempfile::tempdir().unwrap();
    // The sample (8 calls, 1 failed, 1 unreadable line) with a sidecar, and
    // a copy without.
    let log = dir.path().join("ch.log");
    std::fs::copy(sample(), &log).unwrap();
    let mut sidecar = RunSidecar::new("test", "0", "t".into(), Cluster::of_size(3));
    sidecar.algorithm = Some("ch".into());
    sidecar.seed = Some(42);
    std::fs::write(sidecar_path(&log), sidecar.to_json()).unwrap();
    let plain = dir.path().join("plain.log");
    std::fs::copy(sample(), &plain).unwrap();
    let csv = dir.path().join("calls.csv");
    let (log_s, plain_s, csv_s) = (
        log.to_str().unwrap(),
        plain.to_str().unwrap(),
        csv.to_str().unwrap(),
    );

    let out = utils(&["export", log_s, plain_s, "--out", csv_s]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("18 calls, 2 failed"), "{stderr}");
    assert!(stderr.contains("1 unreadable lines skipped"), "{stderr}");

    let script = r#"
import sys, pandas
df = pandas.read_csv(sys.argv[1])
print(len(df))
print(df["start_ms"].dtype, df["end_ms"].dtype)
print(df["LoadBalancingInfo.WorkerNodeId"].max())
failed = df[~df["ok"]]
print(len(failed), failed["error_class"].iloc[0])
print(df["Meta.ImageBuilt"].sum())
print(df["run"].unique().tolist())
print(df["seed"].iloc[0], df["algorithm"].iloc[0], pandas.isna(df["seed"].iloc[-1]))
print(df["end_ms"].iloc[0] - df["start_ms"].iloc[0])
"#;
    let lines: Vec<String> = pandas(script, &csv).lines().map(String::from).collect();
    assert_eq!(
        lines[0], "18",
        "rows: 9 calls per log, failed ones included"
    );
    assert_eq!(lines[1], "int64 int64");
    assert_eq!(
        lines[2], "2.0",
        "WorkerNodeId (NaN in the failed rows: float)"
    );
    assert_eq!(lines[3], "2 worker error");
    // 3 image builds per log (calls 1, 3, 5): 5 reuses of 8, so 3 True.
    assert_eq!(lines[4], "6");
    assert_eq!(lines[5], "['ch (ch)', 'ch (plain)']");
    assert_eq!(lines[6], "42.0 ch True");
    assert_eq!(lines[7], "1200", "first call: 1200 ms");

    // An existing output is not replaced without --overwrite.
    let before = std::fs::read(&csv).unwrap();
    let out = utils(&["export", log_s, "--out", csv_s]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("calls.csv exists; pass --overwrite"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&csv).unwrap(), before, "left untouched");
    let out = utils(&["export", log_s, "--out", csv_s, "--overwrite"]);
    assert!(out.status.success());
    assert_eq!(
        pandas(
            "import sys, pandas; print(len(pandas.read_csv(sys.argv[1])))",
            &csv
        )
        .trim(),
        "9"
    );
    // Not even with --overwrite onto one of its own inputs.
    let out = utils(&["export", plain_s, "--out", plain_s, "--overwrite"]);
    assert!(!out.status.success());
    assert!(std::fs::read_to_string(&plain).unwrap().contains("W1"));
}
