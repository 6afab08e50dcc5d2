//! `utils import`, end to end through the binary, on hand-written fixtures
//! in the published schemas (`tests/fixtures/azure2019/`, day 1, and
//! `tests/fixtures/azure2021/`).
//!
//! The 2019 fixture (ids are SHA-256 of the names below):
//!
//! | fn | app (owner) | trigger | calls by minute column | durations (p0..p100) |
//! |----|-------------|---------|------------------------|----------------------|
//! | f1 | a1 (o1) | http    | 1:3, 3:2, 5:1 | 100 everywhere |
//! | f2 | a1 (o1) | timer   | 1:1, 2:1, 3:1 | 0,10,20,30,40,50,60 |
//! | f3 | a2 (o1) | queue   | 2:4           | 1000,1000,1000,2000,3000,3000,3000 |
//! | f4 | a3 (o2) | http    | 1:10          | 50 everywhere |
//! | f5 | a3 (o2) | event   | 1:7           | (no durations row) |
//! | f6 | a4 (o2) | storage | 4:2           | 5 everywhere |
//! | f7 | a1 (o1) | others  | none          | 1 everywhere |
//!
//! Memory (pct1..pct100): a1 768 everywhere (3 functions: 256 each), a2
//! 100,110,...,170 (1 function), a3 64 everywhere (2 functions: 32 each),
//! a4 no row (default 256).

mod support;
use support::{ok, utils};

use std::path::{Path, PathBuf};

use protocol::scenario::{parse, ScenarioEvent};
use sample_functions::catalog::Catalog;
use serde_json::Value;

const F1: &str = "3f524cdc07a11d7c6220bdb049fe8dd41b27483c96cc59b581e022d547290d69";
const F3: &str = "625e0f649de27800fc3bcf4c118ef79f69dcb762c2e73fbb1cfce0e7a86f6b80";
const F4: &str = "608cdb524384f5ee06edc2830d6b13a92047229398768ff88e28ad68d02569e8";
const F6: &str = "3efda6ee78c31bab6995b1122ec13f6adf73e55fb20b18be11027cba91bcc254";
const A1: &str = "f55ff16f66f43360266b95db6f8fec01d76031054306ae4a4b380598f6cfd114";
const A2_2021: &str = "2c3a4249d77070058649dbd822dcaf7957586fce428cfb2ca88b94741eda8b07";
const INVOCATIONS: &str = "invocations_per_function_md.anon.d01.csv";
const DURATIONS: &str = "function_durations_percentiles.anon.d01.csv";
const MEMORY: &str = "app_memory_percentiles.anon.d01.csv";
const TRACE_2021: &str = "AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt";

fn fixtures(which: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(which)
}

/// Runs an import expected to fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = utils(args);
    assert!(!out.status.success(), "utils {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `import azure2019` on `dir` into `out` with extra arguments.
fn import2019(dir: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["import", "azure2019", "--dir", s(dir), "--out", s(out)];
    args.extend_from_slice(extra);
    ok(&args)
}

fn read_scenario(path: &Path) -> Vec<ScenarioEvent> {
    let text = std::fs::read_to_string(path).unwrap();
    let events = parse(&text, s(path)).unwrap();
    assert!(
        events.windows(2).all(|w| w[0].start_ms <= w[1].start_ms),
        "not sorted by start"
    );
    assert!(
        text.lines().all(|l| l.split(',').count() == 4),
        "every row has 4 columns"
    );
    events
}

fn meta(scenario: &Path) -> Value {
    let mut p = scenario.as_os_str().to_owned();
    p.push(".meta.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn catalog(scenario: &Path) -> Catalog {
    let mut p = scenario.as_os_str().to_owned();
    p.push(".catalog.csv");
    Catalog::parse(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn azure2019_even_spread_is_exactly_the_hand_worked_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.csv");
    let stdout = import2019(
        &fixtures("azure2019"),
        &out,
        &["--minutes", "0..3", "--functions", "2", "--spread", "even"],
    );
    // Window counts: f4 10, f1 3+0+2 = 5, f3 4, f2 3 (f5 has no
    // durations, f6 and f7 no call in minutes 0..3): top 2 = f4, f1.
    assert_eq!(
        stdout,
        "F001: 10\nF002: 5\ntotal: 15 calls of 2 functions (of 4 candidates)\n"
    );
    // Minute 0: f4's 10 calls every 6 s, f1's 3 every 20 s (equal times:
    // F001 first); minute 2: f1's 2 every 30 s. Durations 50 and 100 ms;
    // memory: a3's 64 MB over 2 functions, a1's 768 over 3.
    let expected = "\
F001,0,50,32
F002,0,100,256
F001,6000,50,32
F001,12000,50,32
F001,18000,50,32
F002,20000,100,256
F001,24000,50,32
F001,30000,50,32
F001,36000,50,32
F002,40000,100,256
F001,42000,50,32
F001,48000,50,32
F001,54000,50,32
F002,120000,100,256
F002,150000,100,256
";
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
    assert_eq!(read_scenario(&out).len(), 15);

    let m = meta(&out);
    assert_eq!(m["generator"], "utils import azure2019");
    assert_eq!(m["seed"], 0);
    assert_eq!(m["parameters"]["day"], 1);
    assert_eq!(m["parameters"]["spread"], "even");
    assert_eq!(m["parameters"]["window"]["end"], 3);
    assert_eq!(m["total_events"], 15);
    assert_eq!(m["functions"][0]["azure"]["function"], F4);
    assert_eq!(m["functions"][0]["azure"]["trigger"], "http");
    assert_eq!(m["functions"][0]["app_functions"], 2);
    assert_eq!(m["functions"][1]["azure"]["function"], F1);
    assert_eq!(m["functions"][1]["azure"]["app"], A1);
    assert_eq!(m["functions"][1]["app_functions"], 3);
    assert_eq!(m["notes"]["candidates"], 4);
    assert_eq!(m["notes"]["without_durations"], 1);
    assert!(m["command"]
        .as_str()
        .unwrap()
        .starts_with("utils import azure2019"));
    let sources = m["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3);
    assert!(sources[0]["path"].as_str().unwrap().ends_with(INVOCATIONS));
    assert_eq!(sources[0]["rows"], 7);
    let size = std::fs::metadata(fixtures("azure2019").join(INVOCATIONS))
        .unwrap()
        .len();
    assert_eq!(sources[0]["bytes"], size);
    assert_eq!(sources[0]["blake2b_256"].as_str().unwrap().len(), 64);

    let c = catalog(&out);
    assert_eq!(c.functions.len(), 2);
    let f = c.get("F001").unwrap();
    assert_eq!(f.kind, "azure2019-http");
    // 10 calls in 180 s; median 50 ms: half CPU, half sleep (--cpu-share
    // 0.5); memory: a3's pct100 64 MB over 2 functions.
    assert!((f.rate_per_s - 10.0 / 180.0).abs() < 1e-12);
    assert_eq!((f.cpu_ms_per_round, f.sleep_ms_total()), (25, 25));
    assert_eq!((f.memory_mb, f.package_bytes), (32, 9_700_000));
}

#[test]
fn azure2019_uniform_spread_keeps_counts_and_draws_from_the_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.csv");
    import2019(&fixtures("azure2019"), &out, &["--seed", "7"]);
    let events = read_scenario(&out);
    // The whole day: f4 10, f1 6, f3 4, f2 3, f6 2 (f7 has no call).
    let m = meta(&out);
    let names: Vec<&str> = m["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["azure"]["function"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 5);
    assert_eq!((names[0], names[1], names[2], names[4]), (F4, F1, F3, F6));
    assert_eq!(events.len(), 25);
    // Calls per minute per function, as the invocations file says.
    let per_minute = |f: &str, minute: u64| {
        events
            .iter()
            .filter(|e| e.function == f && e.start_ms / 60_000 == minute)
            .count()
    };
    assert_eq!(
        [0, 1, 2, 3, 4].map(|m| per_minute("F002", m)),
        [3, 0, 2, 0, 1],
        "f1: columns 1, 3 and 5"
    );
    assert_eq!(per_minute("F001", 0), 10);
    assert_eq!(per_minute("F003", 1), 4);
    assert_eq!(per_minute("F005", 3), 2);
    for e in &events {
        let shape = e.shape.unwrap();
        let (ms, mb) = (shape.duration_ms(), shape.memory_mb.unwrap());
        match e.function.as_str() {
            "F001" => assert_eq!((ms, mb), (50.0, 32)),
            "F002" => assert_eq!((ms, mb), (100.0, 256)),
            // f3: durations 1000..3000; a2's memory 100..170, 1 function.
            "F003" => assert!(
                (1000.0..=3000.0).contains(&ms) && (100..=170).contains(&mb),
                "{e:?}"
            ),
            // f2: durations 0..60 ms; a1: 768 / 3.
            "F004" => assert!((0.0..=60.0).contains(&ms) && mb == 256, "{e:?}"),
            // f6: app a4 has no memory row: the default.
            "F005" => assert_eq!((ms, mb), (5.0, 256)),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(m["functions"][4]["memory_source"], "default");
    assert_eq!(m["notes"]["without_memory"], 1);
    assert_eq!(m["functions"][2]["duration_ms"][3], 2000.0);
    let c = catalog(&out);
    let f3 = c.get("F003").unwrap();
    // Median 2000 ms (class ~3s), memory the app's pct100 (one function).
    assert_eq!(
        (f3.duration_class.as_str(), f3.expected_ms()),
        ("~3s", 2000)
    );
    assert_eq!(f3.memory_mb, 170);
    assert_eq!(c.get("F005").unwrap().memory_mb, 256);
    assert_eq!(c.get("F005").unwrap().kind, "azure2019-storage");
}

#[test]
fn azure2019_is_deterministic_per_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str, pick: &str| {
        let out = dir.path().join(name);
        import2019(
            &fixtures("azure2019"),
            &out,
            &["--seed", seed, "--pick", pick, "--functions", "3"],
        );
        std::fs::read(&out).unwrap()
    };
    assert_eq!(run("a.csv", "1", "top"), run("b.csv", "1", "top"));
    assert_ne!(run("c.csv", "1", "top"), run("d.csv", "2", "top"));
    assert_eq!(run("e.csv", "5", "random"), run("f.csv", "5", "random"));
    // Random picks differ across seeds.
    let picks: std::collections::HashSet<Vec<String>> = (0..12)
        .map(|seed| {
            let out = dir.path().join(format!("r{seed}.csv"));
            import2019(
                &fixtures("azure2019"),
                &out,
                &[
                    "--seed",
                    &seed.to_string(),
                    "--pick",
                    "random",
                    "--functions",
                    "2",
                ],
            );
            meta(&out)["functions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["azure"]["function"].as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert!(picks.len() > 1, "{picks:?}");
}

#[test]
fn azure2019_stratified_pick_follows_the_decades() {
    let dir = tempfile::tempdir().unwrap();
    // Minutes 0..3: decade 0 holds f1 (5), f3 (4), f2 (3); decade 1 holds
    // f4 (10). 3 places: 3 × 3 / 4 = 2.25 and 3 × 1 / 4 = 0.75: floors 2
    // and 0, the last place to the larger remainder (decade 1).
    for seed in 0..6 {
        let out = dir.path().join(format!("s{seed}.csv"));
        import2019(
            &fixtures("azure2019"),
            &out,
            &[
                "--minutes",
                "0..3",
                "--pick",
                "stratified",
                "--functions",
                "3",
                "--seed",
                &seed.to_string(),
            ],
        );
        let m = meta(&out);
        let f = m["functions"].as_array().unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0]["azure"]["function"], F4, "seed {seed}");
        assert!(f[1]["count"].as_u64().unwrap() < 10);
        // 2 places: 1.5 and 0.5, the tie to the lower decade: no f4.
        let out2 = dir.path().join(format!("t{seed}.csv"));
        import2019(
            &fixtures("azure2019"),
            &out2,
            &[
                "--minutes",
                "0..3",
                "--pick",
                "stratified",
                "--functions",
                "2",
                "--seed",
                &seed.to_string(),
            ],
        );
        let m = meta(&out2);
        assert!(m["functions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["azure"]["function"] != F4));
    }
}

#[test]
fn azure2019_without_a_memory_file_uses_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_fixture(&data);
    std::fs::remove_file(data.join(MEMORY)).unwrap();
    let out = dir.path().join("s.csv");
    import2019(
        &data,
        &out,
        &["--default-memory-mb", "128", "--functions", "1"],
    );
    let events = read_scenario(&out);
    assert!(events
        .iter()
        .all(|e| e.shape.unwrap().memory_mb == Some(128)));
    assert_eq!(meta(&out)["sources"].as_array().unwrap().len(), 2);
}

fn copy_fixture(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in [INVOCATIONS, DURATIONS, MEMORY] {
        std::fs::copy(fixtures("azure2019").join(f), to.join(f)).unwrap();
    }
}

/// Replaces the `col`-th field (0-based) of line `line` (1-based) of a file.
fn edit_cell(path: &Path, line: usize, col: usize, value: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut fields: Vec<&str> = lines[line - 1].split(',').collect();
    fields[col] = value;
    lines[line - 1] = fields.join(",");
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Drops the last field of line `line` (1-based).
fn drop_last_field(path: &Path, line: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let cut = lines[line - 1].rfind(',').unwrap();
    lines[line - 1].truncate(cut);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn azure2019_bad_input_names_file_line_and_column() {
    type Corrupt = fn(&Path);
    let cases: [(&str, Corrupt, &str); 8] = [
        (
            INVOCATIONS,
            |p| drop_last_field(p, 1),
            ":1: column 1444 (1440): missing from the header",
        ),
        (
            INVOCATIONS,
            |p| edit_cell(p, 1, 2, "HashFunc"),
            ":1: column 3 (HashFunction): wrong header: expected \"HashFunction\", found \"HashFunc\"",
        ),
        (
            INVOCATIONS,
            |p| edit_cell(p, 3, 5, "x"),
            ":3: column 6 (2): \"x\" is not a whole, non-negative number",
        ),
        (
            INVOCATIONS,
            |p| edit_cell(p, 4, 4, "1000000000000"),
            ":4: column 5 (1): 1000000000000 calls in one minute is above the importer's cap",
        ),
        (
            INVOCATIONS,
            |p| drop_last_field(p, 5),
            ":5: column 1444 (1440): missing (1443 of 1444 fields)",
        ),
        (
            DURATIONS,
            |p| edit_cell(p, 2, 10, "abc"),
            ":2: column 11 (percentile_Average_50): \"abc\" is not a finite, non-negative number",
        ),
        (
            MEMORY,
            |p| edit_cell(p, 3, 11, "-5"),
            ":3: column 12 (AverageAllocatedMb_pct100): \"-5\" is not a finite",
        ),
        (
            MEMORY,
            |p| std::fs::write(p, "").unwrap(),
            ":1: empty file: expected the header HashOwner,HashApp,SampleCount",
        ),
    ];
    for (i, (file, corrupt, expected)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        copy_fixture(&data);
        corrupt(&data.join(file));
        let out = dir.path().join("s.csv");
        let err = fails(&["import", "azure2019", "--dir", s(&data), "--out", s(&out)]);
        let want = format!("{}{expected}", data.join(file).display());
        assert!(err.contains(&want), "case {i}: {err}\nwanted: {want}");
        assert!(!err.contains("panicked"), "{err}");
        // Nothing is left behind.
        assert!(!out.exists(), "case {i}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "case {i}"
        );
    }
    // A missing invocations file names it.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_fixture(&data);
    let out = dir.path().join("s.csv");
    let err = fails(&[
        "import",
        "azure2019",
        "--dir",
        s(&data),
        "--day",
        "2",
        "--out",
        s(&out),
    ]);
    assert!(
        err.contains("function_durations_percentiles.anon.d02.csv"),
        "{err}"
    );
    for (flag, value) in [
        ("--day", "15"),
        ("--minutes", "0..1441"),
        ("--functions", "0"),
    ] {
        let err = fails(&[
            "import",
            "azure2019",
            "--dir",
            s(&data),
            flag,
            value,
            "--out",
            s(&out),
        ]);
        assert!(err.contains(flag), "{flag}: {err}");
    }
}

#[test]
fn existing_outputs_are_not_replaced_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.csv");
    import2019(&fixtures("azure2019"), &out, &["--functions", "1"]);
    let err = fails(&[
        "import",
        "azure2019",
        "--dir",
        s(&fixtures("azure2019")),
        "--out",
        s(&out),
    ]);
    assert!(err.contains("--overwrite"), "{err}");
    import2019(
        &fixtures("azure2019"),
        &out,
        &["--functions", "2", "--overwrite"],
    );
    assert_eq!(meta(&out)["functions"].as_array().unwrap().len(), 2);
    // An explicit catalog path.
    let cat = dir.path().join("cat/functions.csv");
    import2019(
        &fixtures("azure2019"),
        &dir.path().join("t.csv"),
        &["--catalog", s(&cat)],
    );
    assert_eq!(
        Catalog::parse(&std::fs::read_to_string(&cat).unwrap())
            .unwrap()
            .functions
            .len(),
        5
    );
}

fn import2021(file: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["import", "azure2021", "--file", s(file), "--out", s(out)];
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn azure2021_starts_are_end_minus_duration_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.csv");
    let trace = fixtures("azure2021").join(TRACE_2021);
    let stdout = import2021(&trace, &out, &[]);
    // a1/f1: starts 60, 10, 20, 199.5 s; a2/f1: 30, 69 (and one at -5,
    // before the origin); a1/f2: 120.
    assert_eq!(
        stdout,
        "F001: 4\nF002: 2\nF003: 1\ntotal: 7 calls of 3 functions (of 3 candidates)\n"
    );
    let expected = "\
F001,10000,250,256
F001,20000,125,256
F002,30000,500,256
F001,60000,1500,256
F002,69000,1000,256
F003,120000,5000,256
F001,199500,500,256
";
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
    read_scenario(&out);
    let m = meta(&out);
    assert_eq!(m["generator"], "utils import azure2021");
    assert_eq!(m["functions"][1]["azure"]["app"], A2_2021);
    assert_eq!(m["notes"]["started_before_origin"], 1);
    // The last start, 199.5 s, is in minute 3: the window is 0..4.
    assert_eq!(
        (m["window"]["start"].clone(), m["window"]["end"].clone()),
        (0.into(), 4.into())
    );
    // BLAKE2b-256 of the fixture (Python: hashlib.blake2b(data, digest_size=32)).
    assert_eq!(
        m["sources"][0]["blake2b_256"],
        "0109a8015125bd193c860d63e3829aa82041bf77d0100f566ebb22dab9b86825"
    );
    assert_eq!(m["sources"][0]["rows"], 8);
    let c = catalog(&out);
    // Medians: F001 of 125, 250, 500, 1500 is 250 (the lower middle).
    assert_eq!(c.get("F001").unwrap().expected_ms(), 250);
    assert_eq!(c.get("F002").unwrap().expected_ms(), 500);
    assert_eq!(c.get("F003").unwrap().expected_ms(), 5000);
    assert!((c.get("F001").unwrap().rate_per_s - 4.0 / 240.0).abs() < 1e-12);

    // A window: starts in [60 s, 180 s), from its start; one call each, so
    // the names follow the first row: a1/f1, a1/f2, a2/f1.
    let out = dir.path().join("w.csv");
    import2021(&trace, &out, &["--minutes", "1..3", "--memory-mb", "512"]);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "F001,0,1500,512\nF003,9000,1000,512\nF002,60000,5000,512\n"
    );
}

#[test]
fn azure2021_bad_input_names_file_line_and_column() {
    let cases = [
        (
            "app,func,end,duration\n",
            ":1: column 3 (end_timestamp): wrong header",
        ),
        (
            "app,func,end_timestamp,duration\nx,y,61.5,-1\n",
            ":2: column 4 (duration): \"-1\" is not a finite, non-negative number",
        ),
        (
            "app,func,end_timestamp,duration\nx,y,1,1\nx,y,abc,1\n",
            ":3: column 3 (end_timestamp): \"abc\"",
        ),
        (
            "app,func,end_timestamp,duration\nx,y,1\n",
            ":2: column 4 (duration): missing (3 of 4 fields)",
        ),
        (
            "app,func,end_timestamp,duration\nx,y,1,1,9\n",
            ":2: 5 fields where the header has 4",
        ),
    ];
    for (text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("trace.txt");
        std::fs::write(&trace, text).unwrap();
        let out = dir.path().join("t.csv");
        let err = fails(&["import", "azure2021", "--file", s(&trace), "--out", s(&out)]);
        let want = format!("{}{expected}", trace.display());
        assert!(err.contains(&want), "{err}\nwanted: {want}");
        assert!(!out.exists());
    }
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    std::fs::write(
        &trace,
        "\u{feff}app,func,end_timestamp,duration\r\nx,y,2.5,0.5\r\nx,z,3,3\r\n",
    )
    .unwrap();
    let out = dir.path().join("t.csv");
    import2021(&trace, &out, &[]);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "F002,0,3000,256\nF001,2000,500,256\n"
    );
}
