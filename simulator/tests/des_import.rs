//! An imported Azure scenario runs through `simulator des --catalog` end
//! to end (issue 12 part 2): the 2021 fixture is imported by the importer's
//! own library code (as `utils import azure2021 --functions 3` does), then
//! the real `simulator des` binary runs the scenario with the catalog the
//! import wrote. On the ideal platform, with calls far apart, every call
//! lasts exactly its row's `DurationMs`; the rows' memory reaches the
//! nodes (a node too small for one call rejects every call under
//! `--overflow reject`); without `--catalog` the functions are unknown.

mod support;

use std::path::{Path, PathBuf};

use support::des;
use utils::import::azure2021::{import, Azure2021Config};
use utils::import::Outputs;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../utils/tests/fixtures/azure2021/AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt",
    )
}

/// The fixture imported into `dir`: (scenario, catalog).
fn imported(dir: &Path) -> (PathBuf, PathBuf) {
    let scenario = dir.join("2021.csv");
    let outputs = Outputs::new(scenario.clone(), None);
    let config = Azure2021Config {
        functions: 3,
        ..Azure2021Config::new(fixture())
    };
    import(&config, &outputs).unwrap();
    (scenario, outputs.catalog)
}

#[test]
fn an_imported_azure_scenario_runs_with_its_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let (scenario, catalog) = imported(dir.path());
    let rows =
        protocol::scenario::parse(&std::fs::read_to_string(&scenario).unwrap(), "s").unwrap();
    assert!(rows.len() >= 5 && rows.iter().all(|r| r.shape.is_some()));
    let (log, summary) = (dir.path().join("des.log"), dir.path().join("des.json"));
    let out = des(&[
        scenario.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
        "--ideal",
        "--instance-model",
        "lambda",
        "--epoch-ms",
        "0",
        "-q",
        "--log",
        log.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each call took its row's duration (whole ms), rows matched by start
    // and function.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<(i64, String, i64)> = text
        .lines()
        .map(|l| {
            let l = protocol::LogLine::parse(l).unwrap();
            (l.start_ms, l.function.clone(), l.end_ms - l.start_ms)
        })
        .collect();
    lines.sort();
    let mut want: Vec<(i64, String, i64)> = rows
        .iter()
        .map(|r| {
            let ms = r.shape.unwrap().duration_us / 1000;
            (r.start_ms as i64, r.function.clone(), ms as i64)
        })
        .collect();
    want.sort();
    assert_eq!(lines, want);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["completed"], rows.len());
    assert_eq!(s["config"]["catalog_file"], catalog.to_str().unwrap());
    let sidecar: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("des.log.meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["extra"]["catalog"], catalog.to_str().unwrap());

    // The rows ask 256 MB: a 200 MB node rejecting what does not fit
    // serves none of them.
    let out = des(&[
        scenario.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
        "--ideal",
        "--instance-model",
        "lambda",
        "--node-memory-mb",
        "200",
        "--overflow",
        "reject",
        "-q",
        "--summary-json",
        "-",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let s: serde_json::Value = serde_json::from_str(&err).unwrap();
    assert_eq!(
        (s["completed"].as_u64(), s["failed"].as_u64()),
        (Some(0), Some(rows.len() as u64))
    );
    assert_eq!(s["config"]["admission"]["overflow"], "reject");

    // Without the catalog, the imported functions are unknown.
    let out = des(&[scenario.to_str().unwrap(), "--ideal", "-q"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("F001") && err.contains("--catalog"), "{err}");
}

#[test]
fn semantics_options_need_the_lambda_model_and_are_checked() {
    let small = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.csv");
    let small = small.to_str().unwrap();
    let out = des(&[small, "--ideal", "-q", "--max-running", "2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Lambda model"), "{err}");
    for bad in [
        ["--overflow", "drop"],
        ["--reuse", "lifo"],
        ["--max-running", "0"],
        ["--default-function", "pct:p50=3"],
    ] {
        let out = des(&[
            small,
            "--ideal",
            "-q",
            "--instance-model",
            "lambda",
            bad[0],
            bad[1],
        ]);
        assert!(!out.status.success(), "{bad:?}");
    }
    // Every option together runs, and is recorded in the summary.
    let out = des(&[
        small,
        "--ideal",
        "-q",
        "--instance-model",
        "lambda",
        "--reuse",
        "oldest",
        "--no-keep-alive-extension",
        "--max-running",
        "4",
        "--overflow",
        "elsewhere",
        "--summary-json",
        "-",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    let c = &s["config"];
    assert_eq!(c["reuse"]["order"], "oldest");
    assert_eq!(c["reuse"]["extend_on_reuse"], false);
    assert_eq!(c["admission"]["max_running"], 4);
    assert_eq!(c["reroute"], true);
    assert_eq!(
        s["completed"].as_u64().unwrap() + s["failed"].as_u64().unwrap(),
        s["invocations"].as_u64().unwrap()
    );
}
