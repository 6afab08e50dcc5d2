//! The `utils` binary, end to end: generation determinism by seed, the
//! analyzer's outputs, comparisons, and figures written as PNG and SVG.

mod support;
use support::{ok, utils};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sample() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.log").to_string()
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[test]
fn generation_is_deterministic_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let a = path(dir.path(), "a.csv");
    let b = path(dir.path(), "b.csv");
    let c = path(dir.path(), "c.csv");
    for (out, seed) in [(&a, "42"), (&b, "42"), (&c, "43")] {
        let stdout = ok(&[
            "generate",
            out.to_str().unwrap(),
            "--seed",
            seed,
            "--duration",
            "60",
            "--arrivals",
            "poisson",
        ]);
        assert!(stdout.contains("W1: "), "{stdout}");
    }
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(read(&a), read(&b), "same seed, same bytes");
    assert_ne!(read(&a), read(&c), "another seed, another scenario");

    // The CSV stays in the original format and parses; the sidecar records
    // the seed and the counts.
    let text = String::from_utf8(read(&a)).unwrap();
    let events = protocol::scenario::parse(&text, "a.csv").unwrap();
    assert!(events.windows(2).all(|w| w[0].start_ms <= w[1].start_ms));
    assert!(events.iter().all(|e| e.start_ms < 60_000));
    let meta: serde_json::Value =
        serde_json::from_slice(&read(&path(dir.path(), "a.csv.meta.json"))).unwrap();
    assert_eq!(meta["config"]["seed"], 42);
    assert_eq!(meta["config"]["arrivals"]["kind"], "poisson");
    assert_eq!(meta["total_events"], events.len());

    // The sidecar alone regenerates the same bytes.
    let again = path(dir.path(), "again.csv");
    let meta_path = path(dir.path(), "a.csv.meta.json");
    ok(&[
        "generate",
        again.to_str().unwrap(),
        "--from-meta",
        meta_path.to_str().unwrap(),
    ]);
    assert_eq!(read(&again), read(&a));
}

#[test]
fn the_original_generator_prints_counts_of_rate_times_duration() {
    let dir = tempfile::tempdir().unwrap();
    let out = path(dir.path(), "events.csv");
    let stdout = ok(&["generate", out.to_str().unwrap(), "--seed", "1"]);
    // round(1.6355 * 300) = 491; round(0.0012 * 300) = 0 (D8 absent).
    assert!(stdout.lines().any(|l| l == "W1: 491"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "D8: 0"), "{stdout}");
    let total: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("total: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((2150..2300).contains(&total), "{total}");
}

#[test]
fn zipf_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let out = path(dir.path(), "z.csv");
    let stdout = ok(&[
        "generate",
        out.to_str().unwrap(),
        "--seed",
        "5",
        "--zipf",
        "50",
        "--arrivals",
        "bursty",
        "--duration",
        "120",
    ]);
    assert!(stdout.starts_with("F001: "), "{stdout}");
    let other = path(dir.path(), "other.csv");
    let bad = utils(&[
        "generate",
        other.to_str().unwrap(),
        "--functions",
        "W1,NOPE",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("NOPE"));
    let bad = utils(&["analyze", "/nonexistent/run.log"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("/nonexistent/run.log"), "{stderr}");
    // One line, the cause said once, named as the other binaries do.
    assert!(stderr.starts_with("utils: error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

#[test]
fn analyze_prints_text_json_and_csv() {
    let log = sample();
    let text = ok(&["analyze", &log]);
    assert!(text.contains("CV: 0.220"), "{text}");
    assert!(text.contains("avg algorithm latency: 20.0µs"), "{text}");
    assert!(text.contains("sample.log:4:"), "{text}");
    assert!(text.contains("calls: 9 (8 ok, 1 failed = 11.1%)"), "{text}");
    assert!(
        text.contains("nodes: 3 (inferred: max WorkerNodeId + 1)"),
        "{text}"
    );
    assert!(
        text.contains("worker error          1  e.g. worker"),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(&ok(&["analyze", "--json", &log])).unwrap();
    assert_eq!(json[0]["calls"], 9);
    assert_eq!(json[0]["ok_calls"], 8);
    assert_eq!(json[0]["failed"], 1);
    assert_eq!(json[0]["errors_by_class"]["worker error"]["count"], 1);
    assert_eq!(json[0]["unparseable_lines"], 1);
    assert_eq!(json[0]["cache"]["image_reuse"]["hits"], 5);

    let csv = ok(&["analyze", "--csv", "--nodes", "4", &log]);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("label,source,calls,"));
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row[0], "ch");
    assert_eq!(&row[2..5], ["9", "8", "1"], "calls, ok_calls, failed");
    assert_eq!(row[7], "4", "nodes column");
    assert_eq!(row[8], "given", "node count rule");
    assert_eq!(row[9], "0.5", "locality with an idle 4th node");
}

#[test]
fn compare_makes_one_table() {
    let dir = tempfile::tempdir().unwrap();
    // A second run: the same calls relabelled as rr, all on node 0.
    let rr = std::fs::read_to_string(sample())
        .unwrap()
        .replace("\"ch\"", "\"rr\"")
        .replace("\"WorkerNodeId\":1", "\"WorkerNodeId\":0")
        .replace("\"WorkerNodeId\":2", "\"WorkerNodeId\":0");
    let rr_path = path(dir.path(), "rr.log");
    std::fs::write(&rr_path, rr).unwrap();
    let table = ok(&["compare", &sample(), rr_path.to_str().unwrap()]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("run "), "{table}");
    assert!(lines[1].starts_with("ch "), "{table}");
    assert!(lines[2].starts_with("rr "), "{table}");
    // The footnote follows the table, after a blank line.
    assert_eq!(lines[3], "", "{table}");
    assert!(
        lines[4].starts_with("* over successful calls only"),
        "{table}"
    );
    let md = ok(&[
        "compare",
        "--markdown",
        &sample(),
        rr_path.to_str().unwrap(),
    ]);
    assert!(md.lines().nth(1).unwrap().starts_with("|---|"), "{md}");

    // A run whose every call was rejected still has its row: 100 % failed,
    // no metric of successful calls.
    let rejected = path(dir.path(), "rejected.log");
    let line = "2020/09/13 12:26:41 1600000000000 1600000000002 W1 {\"Error\":true,\"Message\":\"HTTP 503 from balancer: every node is at its load bound (2 in-flight calls)\"}\n";
    std::fs::write(&rejected, line.repeat(3)).unwrap();
    let table = ok(&["compare", &sample(), rejected.to_str().unwrap()]);
    let row = table.lines().nth(2).unwrap();
    assert!(row.starts_with("rejected "), "{table}");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["3", "3", "100.0%"], "{table}");
    assert!(row.contains("failed") && row.contains(" - "), "{table}");
    let text = ok(&["analyze", rejected.to_str().unwrap()]);
    assert!(text.contains("load bound            3"), "{text}");
}

/// `utils compare` warns (on stderr, the table unchanged on stdout) when
/// the runs' sidecars differ in more than the algorithm, its parameters
/// and the seed: comparing algorithms across two scenarios or two cluster
/// sizes went unremarked.
#[test]
fn compare_warns_when_runs_differ_beyond_their_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = |algorithm: &str, seed: u64, scenario: &str, cores: u32| {
        serde_json::json!({
            "format": 1,
            "producer": "simulator des",
            "version": "0.1.0",
            "started_utc": "2026-12-07 01:00:00 UTC",
            "cluster": {"size": 3},
            "algorithm": algorithm,
            "seed": seed,
            "scenario": scenario,
            "scales": {"time_scale": 1.0},
            "extra": {"cores_per_node": cores, "capacity": 64},
        })
        .to_string()
    };
    let run = |name: &str, algorithm: &str, meta: String| {
        let log = path(dir.path(), &format!("{name}.log"));
        let text = std::fs::read_to_string(sample())
            .unwrap()
            .replace("\"ch\"", &format!("\"{algorithm}\""));
        std::fs::write(&log, text).unwrap();
        std::fs::write(path(dir.path(), &format!("{name}.log.meta.json")), meta).unwrap();
        log.to_str().unwrap().to_string()
    };
    let compare = |logs: &[&str]| {
        let out = utils(&[&["compare"], logs].concat());
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ch = run("ch", "ch", sidecar("ch", 1, "s.csv", 2));
    // Another algorithm, seed and parameters: nothing to say.
    let rr = run("rr", "rr", sidecar("rr", 2, "s.csv", 2));
    let (table, warning) = compare(&[&ch, &rr]);
    assert_eq!(warning, "", "{warning}");
    // Another scenario and other cores: each named, with both values.
    let other = run("other", "rr", sidecar("rr", 1, "t.csv", 8));
    let (other_table, warning) = compare(&[&ch, &other]);
    assert!(warning.starts_with("warning: the runs differ"), "{warning}");
    assert!(
        warning.contains("scenario: ch: s.csv; rr: t.csv"),
        "{warning}"
    );
    assert!(
        warning.contains("cores_per_node: ch: 2; rr: 8"),
        "{warning}"
    );
    assert!(!warning.contains("capacity"), "{warning}");
    assert_eq!(other_table, table, "the table itself is unchanged");
    // Scenarios by digest where the sidecars have one: the same bytes by
    // two paths are one scenario; other bytes by one path are two.
    let with_digest = |name: &str, scenario: &str, digest: &str| {
        let mut meta: serde_json::Value =
            serde_json::from_str(&sidecar("rr", 1, scenario, 2)).unwrap();
        meta["scenario_blake2b"] = digest.into();
        run(name, "rr", meta.to_string())
    };
    let ab = "ab".repeat(32);
    let cd = "cd".repeat(32);
    let (x, y) = (
        with_digest("x", "one/s.csv", &ab),
        with_digest("y", "two/s.csv", &ab),
    );
    let (_, warning) = compare(&[&x, &y]);
    assert_eq!(warning, "", "{warning}");
    let z = with_digest("z", "one/s.csv", &cd);
    let (_, warning) = compare(&[&x, &z]);
    assert!(
        warning.contains("scenario: rr (x): one/s.csv (blake2b abababababab); rr (z): one/s.csv (blake2b cdcdcdcdcdcd)"),
        "{warning}"
    );
    // Another version or source revision: two programs, not only two
    // algorithms; a run built from uncommitted changes is named.
    let built = |name: &str, version: &str, commit: &str, dirty: bool| {
        let mut meta: serde_json::Value =
            serde_json::from_str(&sidecar("rr", 1, "s.csv", 2)).unwrap();
        meta["version"] = version.into();
        meta["git"] = serde_json::json!({"commit": commit, "dirty": dirty});
        run(name, "rr", meta.to_string())
    };
    let (a1, a2) = (
        built("a1", "0.1.0", &"a".repeat(40), false),
        built("a2", "0.1.0", &"a".repeat(40), false),
    );
    let (_, warning) = compare(&[&a1, &a2]);
    assert_eq!(warning, "", "{warning}");
    let b = built("b", "0.2.0", &"b".repeat(40), true);
    let (_, warning) = compare(&[&a1, &b]);
    assert!(
        warning.contains("version: rr (a1): 0.1.0; rr (b): 0.2.0"),
        "{warning}"
    );
    assert!(
        warning.contains("source revision: rr (a1): aaaaaaaaaaaa; rr (b): bbbbbbbbbbbb-dirty"),
        "{warning}"
    );
    assert!(
        warning.contains("built from uncommitted changes (their code may differ unseen): rr (b)"),
        "{warning}"
    );
    // A run without a sidecar: its settings are unknown, and said so.
    let bare = path(dir.path(), "bare.log");
    std::fs::copy(sample(), &bare).unwrap();
    let (_, warning) = compare(&[&ch, &rr, bare.to_str().unwrap()]);
    assert!(
        warning.contains("no sidecar (settings unknown): ch (bare)"),
        "{warning}"
    );
}

fn assert_png(p: &Path) {
    let bytes = std::fs::read(p).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        p.display()
    );
    assert!(bytes.len() > 5_000, "{} is suspiciously small", p.display());
}

fn assert_svg_with(p: &Path, texts: &[&str]) {
    let svg = std::fs::read_to_string(p).unwrap();
    assert!(svg.contains("<svg"), "{} is not an SVG", p.display());
    for t in texts {
        assert!(svg.contains(t), "{} lacks {t:?}", p.display());
    }
}

#[test]
fn plots_are_written_as_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let log = sample();
    let png = path(dir.path(), "timeline.png");
    let svg = path(dir.path(), "timeline.svg");
    ok(&[
        "plot",
        "timeline",
        &log,
        "-o",
        png.to_str().unwrap(),
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert_png(&png);
    assert_svg_with(
        &svg,
        &[
            "node 0",
            "node 2",
            "time since the first call (s)",
            "W1 (4)",
        ],
    );

    // A window of the run: only the calls overlapping 3..4 s (calls 5 and 6
    // of W1, 7 and 8 of T1; W2's calls end by 2.9 s).
    let window = path(dir.path(), "window.svg");
    ok(&[
        "plot",
        "timeline",
        &log,
        "--from",
        "3",
        "--to",
        "4",
        "-o",
        window.to_str().unwrap(),
    ]);
    assert_svg_with(&window, &["T1 (2)", "W1 (2)"]);
    assert!(!std::fs::read_to_string(&window).unwrap().contains("W2"));

    let cdf = path(dir.path(), "cdf.svg");
    ok(&["plot", "cdf", &log, "-o", cdf.to_str().unwrap()]);
    assert_svg_with(
        &cdf,
        &[
            "ch (1 of 9 failed; ok: n=8, p99=1000 ms)",
            "fraction of all calls",
        ],
    );
    let cdf_png = path(dir.path(), "cdf.png");
    ok(&[
        "plot",
        "cdf",
        &log,
        "--metric",
        "duration",
        "-o",
        cdf_png.to_str().unwrap(),
    ]);
    assert_png(&cdf_png);

    let bars = path(dir.path(), "bars.svg");
    let bars_png = path(dir.path(), "bars.png");
    ok(&[
        "plot",
        "bars",
        &log,
        "-o",
        bars.to_str().unwrap(),
        "-o",
        bars_png.to_str().unwrap(),
    ]);
    assert_svg_with(
        &bars,
        &["Locality", "p99 latency", "62.5", "Failed calls", "11.1"],
    );
    assert_png(&bars_png);

    let bad = utils(&[
        "plot",
        "timeline",
        &log,
        "-o",
        path(dir.path(), "x.jpg").to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown image format"));
}

#[test]
fn a_missing_font_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_utils"))
        .args(["plot", "cdf", &sample(), "-o"])
        .arg(path(dir.path(), "cdf.png"))
        .env("HF_PLOT_FONT", path(dir.path(), "no-such-font.ttf"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-font.ttf"), "{stderr}");
    assert!(stderr.contains("fonts-dejavu-core"), "{stderr}");
    assert!(!path(dir.path(), "cdf.png").exists());
}

#[test]
fn plot_all_writes_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = path(dir.path(), "figures");
    ok(&[
        "plot",
        "all",
        &sample(),
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    for name in [
        "comparison.png",
        "comparison.svg",
        "latency-cdf.png",
        "latency-cdf.svg",
        "duration-cdf.png",
        "duration-cdf.svg",
        "timeline-ch.png",
        "timeline-ch.svg",
    ] {
        assert!(out_dir.join(name).exists(), "{name} missing");
    }
    assert_png(&out_dir.join("timeline-ch.png"));
}

/// Runs utils with its stdout a pipe whose reading end is already closed
/// (as `utils ... | head` ends up once head has exited).
fn utils_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_utils"))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run utils")
}

#[test]
fn a_closed_stdout_is_a_quiet_end() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = path(dir.path(), "s.csv");
    let log = sample();
    for args in [
        vec!["generate", scenario.to_str().unwrap(), "--seed", "1"],
        vec!["analyze", &log],
        vec!["analyze", "--json", &log],
        vec!["compare", &log, &log],
        vec!["compare", "--csv", &log],
    ] {
        let out = utils_into_closed_pipe(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "utils {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "utils {args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "utils {args:?}: {stderr}");
    }
    // The scenario was still written before the counts were printed.
    assert!(scenario.exists());
}

#[test]
fn generate_does_not_replace_files_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let csv = path(dir.path(), "s.csv");
    let meta = path(dir.path(), "s.csv.meta.json");
    let csv_s = csv.to_str().unwrap();
    ok(&["generate", csv_s, "--seed", "1", "--duration", "10"]);
    let (csv_before, meta_before) = (std::fs::read(&csv).unwrap(), std::fs::read(&meta).unwrap());

    let out = utils(&["generate", csv_s, "--seed", "2", "--duration", "10"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s.csv exists; pass --overwrite to replace it"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&csv).unwrap(), csv_before);
    assert_eq!(std::fs::read(&meta).unwrap(), meta_before);

    // Only the sidecar left: still refused, and the sidecar kept.
    std::fs::remove_file(&csv).unwrap();
    let out = utils(&["generate", csv_s, "--seed", "2", "--duration", "10"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("s.csv.meta.json exists"));
    assert!(!csv.exists(), "nothing written when refusing");
    assert_eq!(std::fs::read(&meta).unwrap(), meta_before);

    ok(&[
        "generate",
        csv_s,
        "--seed",
        "2",
        "--duration",
        "10",
        "--overwrite",
    ]);
    assert_ne!(std::fs::read(&meta).unwrap(), meta_before);

    // A configuration asking for more calls than memory holds: a clear
    // error, not an abort; `--overwrite` keeps the files it would have
    // replaced (before, this aborted on a 1.3-exabyte allocation).
    let (csv_before, meta_before) = (std::fs::read(&csv).unwrap(), std::fs::read(&meta).unwrap());
    let out = utils(&[
        "generate",
        csv_s,
        "--rate-scale",
        "1e15",
        "--duration",
        "100",
        "--overwrite",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("7.3895e17 calls") && stderr.contains("limit of 250000000"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&csv).unwrap(), csv_before);
    assert_eq!(std::fs::read(&meta).unwrap(), meta_before);
}
