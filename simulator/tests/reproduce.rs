//! `simulator reproduce <study> --short` end to end, through the real
//! binary, into a temporary folder: every study writes `report.md` whose
//! "Published vs ours" table is a well-formed markdown table with a number
//! in every "ours" cell, whose figures exist and are PNG images, and a
//! `run.json` recording the seed and the size. The live studies
//! (`hotfunctions`, `hiku`) start real `worker-front` and `load-balancer`
//! binaries (built first by [`support::build_testbed`]).
//!
//! The studies run one at a time: the live ones measure on this machine's
//! cores, and a DES study beside them would disturb them.

mod support;

use std::path::Path;
use std::process::Command;

use support::{build_testbed, table_after, workspace_root};

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn simulator() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_simulator"));
    c.current_dir(workspace_root()).env("RUST_BACKTRACE", "0");
    c
}

/// The figure paths `![...](path)` of a report.
fn figures(report: &str) -> Vec<String> {
    report
        .match_indices("](")
        .filter(|(i, _)| {
            report[..*i]
                .rfind("![")
                .is_some_and(|s| !report[s..*i].contains('\n'))
        })
        .filter_map(|(i, _)| report[i + 2..].split(')').next().map(str::to_string))
        .collect()
}

/// Runs the study's short version into a temporary folder (returned, so
/// a caller can read more of it) and checks what every study writes.
fn reproduce_short(study: &str, seed: u64) -> tempfile::TempDir {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if matches!(study, "hotfunctions" | "hiku") {
        build_testbed();
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(study);
    let started = std::time::Instant::now();
    let status = simulator()
        .args([
            "reproduce",
            study,
            "--short",
            "--seed",
            &seed.to_string(),
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "reproduce {study} --short failed: {status}"
    );
    eprintln!(
        "reproduce {study} --short took {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let table = table_after(&report, "## Published vs ours");
    assert!(table.len() >= 2, "{study}: no rows in the table:\n{report}");
    let header = &table[0];
    // "ours", or one column per setting ("live ...", "DES ...").
    let ours: Vec<usize> = (0..header.len())
        .filter(|&i| {
            let h = header[i].as_str();
            h == "ours" || h.starts_with("live") || h.starts_with("DES")
        })
        .collect();
    assert!(
        !ours.is_empty(),
        "{study}: no \"ours\" column in {header:?}"
    );
    for row in &table[1..] {
        assert_eq!(row.len(), header.len(), "{study}: ragged row {row:?}");
        for &i in &ours {
            assert!(
                row[i].chars().any(|c| c.is_ascii_digit()) || row[i].starts_with("most "),
                "{study}: no figure in {row:?}"
            );
            assert!(!row[i].contains("NaN"), "{study}: NaN in {row:?}");
        }
    }
    let figs = figures(&report);
    assert!(!figs.is_empty(), "{study}: no figure in the report");
    for f in &figs {
        let bytes =
            std::fs::read(out.join(f)).unwrap_or_else(|e| panic!("{study}: figure {f}: {e}"));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
            "{study}: {f} is not a PNG image"
        );
    }
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["provenance"]["seed"], seed);
    assert_eq!(run["provenance"]["size"], "short");
    assert_eq!(run["provenance"]["study"], study);
    // The machine and how busy it was, in both records.
    assert!(
        run["provenance"]["machine"]
            .as_str()
            .is_some_and(|m| m.contains("cores")),
        "{study}: {}",
        run["provenance"]
    );
    assert!(run["provenance"]["load_average_at_start"].is_number());
    assert!(report.contains("1-minute load average"), "{study}");
    assert!(run["parameters"].is_object() && run["results"].is_object());
    // A study that simulates says which machine its cost profile
    // describes, in the report and in run.json.
    if study != "hotfunctions" {
        let origin = &run["parameters"]["profile_origin"];
        let text = origin["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{study}: {origin}"));
        assert!(origin["verdict"].is_string(), "{study}: {origin}");
        assert!(
            report.contains(&format!("The profile: {text}.")),
            "{study}: {report}"
        );
        assert!(!report.contains("measured on this machine"), "{study}");
    }
    dir
}

#[test]
fn hotfunctions_short() {
    reproduce_short("hotfunctions", 3);
}

#[test]
fn chrlu_short() {
    let dir = reproduce_short("chrlu", 3);
    let out = dir.path().join("chrlu");
    // The same calls on two variants of the cost profile: each headline
    // figure's range over them, and whether the order held.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let table = table_after(&report, "## Published vs ours");
    let column = table[0]
        .iter()
        .position(|h| h == "over 2 profile variants")
        .unwrap_or_else(|| panic!("{:?}", table[0]));
    for row in &table[1..] {
        let (low, high) = row[column]
            .trim_end_matches('x')
            .split_once('-')
            .unwrap_or_else(|| panic!("not a range: {row:?}"));
        let (low, high): (f64, f64) = (low.parse().unwrap(), high.parse().unwrap());
        assert!(low <= high, "{row:?}");
    }
    assert!(
        report.contains("ran again on the same calls on 2 variants of the profile")
            && report.contains(" held on "),
        "{report}"
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let v = &run["results"]["profile_variants"];
    assert_eq!(v["variants"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(
        v["variants"][1]["outcomes"].as_array().map(Vec::len),
        Some(4),
        "{v}"
    );
    assert!(v["varied"].as_array().is_some_and(|f| !f.is_empty()), "{v}");
}

#[test]
fn hiku_short() {
    let dir = reproduce_short("hiku", 3);
    let out = dir.path().join("hiku");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    // Published vs live vs the DES at the paper's scale.
    let table = table_after(&report, "## Published vs ours");
    assert!(
        table[0].iter().any(|h| h.starts_with("live"))
            && table[0].iter().any(|h| h.starts_with("DES")),
        "{:?}",
        table[0]
    );
    // The cross-check of live against the DES at the live run's scale:
    // a row per algorithm, both figures in each cell.
    let cross = table_after(&report, "## Live vs simulated at the same scale");
    assert_eq!(cross.len(), 5, "{report}");
    for row in &cross[1..] {
        let (live, des) = row[1].split_once(" / ").expect("live / DES");
        assert!(live.parse::<f64>().unwrap() > 0.0, "{row:?}");
        assert!(des.parse::<f64>().unwrap() > 0.0, "{row:?}");
    }
    // The live part: per algorithm one closed loop of the paper's three
    // stages scaled down (2, 5 and 10 clients in the short version). The
    // by-stage table has a row per stage per algorithm, and each
    // algorithm's calls by stage add up to its whole-run calls.
    let whole = table_after(&report, "Live, this machine, the three stages");
    let by_stage = table_after(&report, "Live, this machine, by stage");
    let col = |t: &[Vec<String>], name: &str| {
        t[0].iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name:?} in {:?}", t[0]))
    };
    let (calls, clients) = (col(&by_stage, "calls"), col(&by_stage, "clients"));
    assert_eq!(whole.len(), 5, "{report}");
    assert_eq!(by_stage.len(), 1 + 4 * 3, "{report}");
    for row in &whole[1..] {
        let rows: Vec<&Vec<String>> = by_stage[1..].iter().filter(|r| r[0] == row[0]).collect();
        let counts: Vec<&str> = rows.iter().map(|r| r[clients].as_str()).collect();
        assert_eq!(counts, ["2", "5", "10"], "{row:?}: {rows:?}");
        let sum: u64 = rows.iter().map(|r| r[calls].parse::<u64>().unwrap()).sum();
        assert!(sum > 0, "{rows:?}");
        assert_eq!(
            sum.to_string(),
            row[col(&whole, "calls")],
            "{}: calls by stage against the whole run",
            row[0]
        );
    }
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    // The same in run.json, with the machine's state before each
    // algorithm, and the same stages in the DES at the live run's scale.
    for (load, des) in run["results"]["load_summaries"]
        .as_array()
        .unwrap()
        .iter()
        .zip(run["results"]["des_live_scale"].as_array().unwrap())
    {
        let summary = &load["summary"];
        let stages = summary["stages"].as_array().unwrap();
        let per_stage: u64 = stages.iter().map(|s| s["calls"].as_u64().unwrap()).sum();
        assert_eq!(Some(per_stage), summary["calls"].as_u64(), "{load}");
        assert!(load["machine_before"]["load_average"].is_number(), "{load}");
        let clients = |st: &serde_json::Value| -> Vec<u64> {
            st.as_array()
                .unwrap()
                .iter()
                .map(|s| s["clients"].as_u64().unwrap())
                .collect()
        };
        assert_eq!(clients(&summary["stages"]), [2, 5, 10], "{load}");
        assert_eq!(clients(&des["stages"]), [2, 5, 10], "{des}");
    }
    let paper = &run["results"]["des_paper_scale"];
    assert_eq!(paper.as_array().unwrap().len(), 4);
    // One run of three stages of 20, 50 and 100 clients on 5 nodes; its
    // per-stage calls add up to the run's.
    let stages = paper[0]["stages"].as_array().unwrap();
    let clients: Vec<u64> = stages
        .iter()
        .map(|s| s["clients"].as_u64().unwrap())
        .collect();
    assert_eq!(clients, [20, 50, 100]);
    let per_stage: u64 = stages.iter().map(|s| s["calls"].as_u64().unwrap()).sum();
    assert_eq!(Some(per_stage), paper[0]["combined"]["calls"].as_u64());
    assert_eq!(
        paper[0]["combined"]["requests_per_worker"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert!(paper[0]["combined"]["calls"].as_u64().unwrap() > 0);
    assert_eq!(run["parameters"]["paper_scale"]["workers"], 5);
}

#[test]
fn keepalive_short() {
    let dir = reproduce_short("keepalive", 3);
    let out = dir.path().join("keepalive");
    // FaasCache's ratio on two variants of the cost profile.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("On 2 variants of the profile, each calibrated figure moved within")
            && report.contains("the best ratio ranged "),
        "{report}"
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let best = &run["results"]["faascache_profile_variants"]["best_ratio_lru_over_gd"];
    assert_eq!(best.as_array().map(Vec::len), Some(2), "{best}");
    assert!(best[0][1].as_f64().is_some_and(f64::is_finite), "{best}");
}

#[test]
fn an_earlier_report_is_kept_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.md"), "earlier\n").unwrap();
    let out = simulator()
        .args(["reproduce", "chrlu", "--short", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--overwrite") && err.contains("report.md"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("report.md")).unwrap(),
        "earlier\n"
    );
    assert!(!Path::new(&dir.path().join("run.json")).exists());
}

/// A folder another run writes into (it holds the folder's flock, as a
/// running study does) is refused, even with --overwrite, untouched.
#[test]
fn a_folder_in_use_is_refused_even_with_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.md"), "running\n").unwrap();
    let writer = std::fs::File::open(dir.path()).unwrap();
    writer.try_lock().unwrap();
    let out = simulator()
        .args(["reproduce", "chrlu", "--short", "--overwrite", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("being written by another run"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("report.md")).unwrap(),
        "running\n"
    );
    assert!(!Path::new(&dir.path().join("run.json")).exists());
}
