//! The DES never reads the host: a run pinned to one core (`taskset -c 0`,
//! so `available_parallelism` and the scheduler of the OS see one CPU)
//! writes the same log, sidecar and summary as a plain run on every core,
//! but for the wall clock (`performance`, the start time). Nodes' cores
//! are parameters, and the summary records them.
//!
//! Each run gets its own empty directory as its current directory and
//! writes `run.log`, `run.log.meta.json` and `run.json` there by relative
//! paths, so the two command lines are identical too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn small() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/small.csv")
        .canonicalize()
        .unwrap()
}

fn taskset_present() {
    let found = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs `taskset` (util-linux; `apt-get install util-linux`)"
    );
}

struct Outputs {
    log: Vec<u8>,
    sidecar: serde_json::Value,
    summary: serde_json::Value,
}

/// `simulator des <small> <args>` in `dir`, under `taskset -c 0` if
/// `pinned`, with none of the environment variables it reads.
fn des_command(dir: &Path, pinned: bool, args: &[&str]) -> Command {
    let exe = env!("CARGO_BIN_EXE_simulator");
    let mut c = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", exe]);
        c
    } else {
        Command::new(exe)
    };
    c.current_dir(dir).arg("des").arg(small()).args(args);
    for var in [
        "HF_TIME_SCALE",
        "HF_PACKAGE_SCALE",
        "HF_DES_PROFILE",
        "SEED",
        "USING_REST_MODE",
    ] {
        c.env_remove(var);
    }
    c
}

/// Runs `simulator des <small> <args> --log run.log --summary-json
/// run.json` in `dir`, under `taskset -c 0` if `pinned`.
fn run(dir: &Path, pinned: bool, args: &[&str]) -> Outputs {
    let mut c = des_command(dir, pinned, args);
    c.args(["--log", "run.log", "--summary-json", "run.json", "-q"]);
    let out = c.output().expect("run simulator");
    assert!(
        out.status.success(),
        "pinned={pinned} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let json = |name: &str| -> serde_json::Value { serde_json::from_slice(&read(name)).unwrap() };
    Outputs {
        log: read("run.log"),
        sidecar: json("run.log.meta.json"),
        summary: json("run.json"),
    }
}

/// The summary of `simulator des <small> <args> --summary-json run.json`
/// run in `dir` (under `taskset -c 0` if `pinned`), with a log or not.
fn summary(dir: &Path, pinned: bool, log: bool, args: &[&str]) -> serde_json::Value {
    let mut c = des_command(dir, pinned, args);
    c.args(["--summary-json", "run.json", "-q"]);
    if log {
        c.args(["--log", "run.log"]);
    }
    let out = c.output().expect("run simulator");
    assert!(
        out.status.success(),
        "pinned={pinned} log={log} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    strip(&mut v, &["performance"]);
    strip(&mut v, &["run"]);
    v
}

/// Removes `key` (a path of object keys), failing if it is absent.
fn strip(v: &mut serde_json::Value, key: &[&str]) {
    let (last, parents) = key.split_last().unwrap();
    let mut at = v;
    for k in parents {
        at = at.get_mut(*k).unwrap_or_else(|| panic!("{key:?} missing"));
    }
    at.as_object_mut()
        .unwrap()
        .remove(*last)
        .unwrap_or_else(|| panic!("{key:?} missing"));
}

#[test]
fn pinned_to_one_core_or_not_the_results_are_the_same() {
    taskset_present();
    let cases: [&[&str]; 4] = [
        &["--algorithm", "rr", "--nodes", "50", "--cores", "4"],
        &["--algorithm", "ch", "--nodes", "50", "--machine-cores", "3"],
        &[
            "--algorithm",
            "ours",
            "--nodes",
            "50",
            "--cores",
            "1",
            "--USING_REST_MODE",
            "true",
        ],
        &[
            "--algorithm",
            "tradeoff",
            "--nodes",
            "48",
            "--seed",
            "5",
            "--instance-model",
            "lambda",
        ],
    ];
    for args in cases {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut pinned = run(a.path(), true, args);
        let mut plain = run(b.path(), false, args);
        assert!(
            !pinned.log.is_empty() && pinned.log == plain.log,
            "{args:?}: byte-identical logs"
        );
        for s in [&mut pinned.sidecar, &mut plain.sidecar] {
            strip(s, &["started_utc"]);
        }
        assert_eq!(pinned.sidecar, plain.sidecar, "{args:?}: sidecars");
        for s in [&mut pinned.summary, &mut plain.summary] {
            strip(s, &["performance"]);
            strip(s, &["run", "started_utc"]);
            // This machine as the process sees it ("1 cores (of 2)"
            // pinned); the verdict on the profile's machine stays.
            strip(s, &["run", "profile_origin", "this_machine"]);
            strip(s, &["run", "profile_origin", "text"]);
        }
        assert_eq!(pinned.summary, plain.summary, "{args:?}: summaries");

        // The cores are parameters, recorded where they were given.
        let config = &plain.summary["config"];
        let nodes = args[args.iter().position(|a| *a == "--nodes").unwrap() + 1];
        assert_eq!(config["nodes"].to_string(), nodes);
        assert_eq!(plain.sidecar["cluster"]["size"].to_string(), nodes);
        let given = |flag: &str| {
            args.iter()
                .position(|a| *a == flag)
                .map(|i| args[i + 1].parse::<u64>().unwrap())
        };
        match (given("--cores"), given("--machine-cores")) {
            (_, Some(m)) => {
                assert_eq!(config["machine_cores"], m);
                assert_eq!(plain.sidecar["extra"]["machine_cores"], m);
            }
            (Some(c), None) => {
                assert_eq!(config["cores"], c);
                assert_eq!(config["machine_cores"], serde_json::Value::Null);
                assert_eq!(plain.sidecar["extra"]["cores_per_node"], c);
            }
            (None, None) => {
                // The profile's cores, not the host's.
                assert_eq!(config["cores"], config["profile"]["cores"]);
                assert_eq!(
                    plain.sidecar["extra"]["cores_per_node"],
                    config["profile"]["cores"]
                );
            }
        }
    }
}

/// Without a log, an `rr` or `random` run of the Lambda model simulates
/// its nodes apart, on every core the host gives it, and says so
/// (`partitioned`); its summary is the one-queue run's (made with a log)
/// in every other field, on one core or all.
#[test]
fn a_run_simulated_node_by_node_finds_the_one_queue_runs_figures() {
    taskset_present();
    for algorithm in ["rr", "random"] {
        let args = [
            "--algorithm",
            algorithm,
            "--nodes",
            "40",
            "--cores",
            "2",
            "--instance-model",
            "lambda",
            "--keep-alive-s",
            "20",
            "--seed",
            "3",
        ];
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let one_queue = summary(dirs[0].path(), false, true, &args);
        let mut all_cores = summary(dirs[1].path(), false, false, &args);
        let mut one_core = summary(dirs[2].path(), true, false, &args);
        assert!(
            one_queue.get("partitioned").is_none(),
            "{algorithm}: with a log"
        );
        for s in [&mut all_cores, &mut one_core] {
            assert_eq!(s["partitioned"], true, "{algorithm}");
            strip(s, &["partitioned"]);
        }
        assert!(one_queue["completed"].as_u64().unwrap() > 0);
        assert_eq!(all_cores, one_queue, "{algorithm}: all cores");
        assert_eq!(one_core, one_queue, "{algorithm}: one core");
    }
}
