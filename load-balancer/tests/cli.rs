//! The `load-balancer` binary itself: help, clear start-up errors, and a
//! fake-mode run with parameters from flags and the original's
//! environment variables.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_load-balancer");

/// The balancer binary in fake mode on a free port, killed on drop.
struct FakeBalancer {
    child: Child,
    url: String,
    /// The first line it printed.
    banner: String,
}

impl FakeBalancer {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_with(args, env, Stdio::null())
    }

    fn start_with(args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--fake-delay-ms",
                "10",
            ])
            .stdout(Stdio::piped())
            .stderr(stderr);
        for var in ["T", "T1", "T2", "T3", "ALPHA", "BETA", "SEED"] {
            command.env_remove(var);
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        let url = banner
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {banner:?}"))
            .to_string();
        Self { child, url, banner }
    }

    async fn get(&self, path: &str) -> serde_json::Value {
        support::get_json(&format!("{}{path}", self.url)).await
    }
}

impl Drop for FakeBalancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn help_lists_the_algorithms_and_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "rr, ll, ch",
        "--nodes",
        "--config",
        "--port",
        "--seed",
        "--health-interval-ms",
        "--fake-delay-ms",
        "--param <KEY=VALUE>",
        "ch.T (default 8, 1..=10000)",
        "tradeoff.ALPHA",
        "--T <VALUE>",
        "[env: T1=]",
    ] {
        assert!(text.contains(needle), "help lacks {needle}: {text}");
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("T")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    };
    assert!(run(&["nope", "2"]).contains("unknown algorithm \"nope\""));
    for (args, needle) in [
        (&["ch", "2", "--param", "T=0"][..], "T=\"0\""),
        (&["ch", "2", "--param", "ch.T1=3"], "\"ch.T1\""),
        (&["ch", "2", "--param", "T"], "<key>=<value>"),
        (&["ch", "2", "--T", "x"], "T=\"x\""),
        (
            &["ch", "2", "--param", "tradeoff.BETA=1.5"],
            "tradeoff.BETA",
        ),
    ] {
        let err = run(args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(run(&["rr", "x"]).contains("invalid value 'x'"));
    assert!(run(&["rr", "--nodes", "10.0.0.1:8222"]).contains("must start with http://"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nodes.config.json");
    std::fs::write(&file, "[\n\"http://a:1\",\n 7\n]").unwrap();
    let err = run(&["rr", "--config", file.to_str().unwrap()]);
    assert!(err.contains("nodes.config.json:3:"), "{err}");
    let err = run(&["rr", "--config", "/nonexistent/nodes.json"]);
    assert!(err.contains("/nonexistent/nodes.json"), "{err}");
    // One line, each cause once.
    assert!(
        err.starts_with("load-balancer: error: ") && err.lines().count() == 1,
        "{err}"
    );
    // A byte that is not UTF-8: named by line.
    std::fs::write(&file, b"[\n\"http://a:1\",\n\"http://\xff:2\"\n]").unwrap();
    let err = run(&["rr", "--config", file.to_str().unwrap()]);
    assert!(err.contains("line 3: not UTF-8 text"), "{err}");
}

/// Issue 13: every count, size and duration a flag sets has a bound; beyond
/// it the start is a clear error (exit 1), not an abort on an allocation
/// sized by the value (`ll 4294967295` asked for 103 GB of fake nodes).
#[test]
fn values_beyond_their_bounds_are_clear_errors_not_aborts() {
    for (args, needle) in [
        (
            &["ll", "4294967295"][..],
            "nodes (worker URLs and fake nodes) is 4294967295, outside its bounds 1..=10000",
        ),
        (&["ll", "2", "--threads", "100000"], "threads is 100000"),
        (
            &["ll", "2", "--health-interval-ms", "18446744073709551615"],
            "health interval_ms is 18446744073709551615",
        ),
        (&["ll", "2", "--health-fall", "4294967295"], "health fall"),
        (
            &["ll", "2", "--node-capacity", "4294967295"],
            "node_capacity",
        ),
        (&["ll", "2", "--node-cores", "0"], "node_cores is 0"),
        (
            &["ll", "2", "--node-memory-mb", "4294967295"],
            "node_memory_mb",
        ),
    ] {
        let out = Command::new(BIN)
            .args(args)
            .args(["--port", "0", "--host", "127.0.0.1"])
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn fake_mode_binary_serves_with_recorded_seed_and_env_params() {
    let balancer = FakeBalancer::start(
        &["ch", "3", "--seed", "42"],
        &[("T", "3"), ("BETA", "0.75")],
    );
    assert!(balancer.banner.contains("seed 42"), "{}", balancer.banner);
    let status = balancer.get("/status").await;
    assert_eq!(status["seed"], 42);
    assert_eq!(status["params"]["T"], 3);
    assert_eq!(status["params"]["BETA"], 0.75);
    let reply = balancer.get("/execute?name=W1").await;
    assert_eq!(reply["LoadBalancingInfo"]["Algorithm"], "ch");
    assert_eq!(reply["ExecutionTime"], 10);
}

/// `--param` sets one algorithm's parameter (or a bare name everywhere),
/// after the environment variables and flags.
#[tokio::test]
async fn param_flags_set_one_algorithm_after_the_environment() {
    let balancer = FakeBalancer::start(
        &[
            "hash", "2", "--param", "ch.T=4", "--param", "seed=5", "--T1", "6",
        ],
        &[("T", "3")],
    );
    let status = balancer.get("/status").await;
    assert_eq!(status["params"]["ch.T"], 4);
    assert_eq!(status["params"]["pasch.T"], 3);
    assert_eq!(status["params"]["T1"], 6);
    assert_eq!(
        status["scheduler"],
        serde_json::json!({"algorithm": "ch", "params": {"T": 4}, "seed": 5})
    );
}

/// Output to files, as in an experiment's process logs: the start-up line
/// whatever `RUST_LOG` says, and log events without colour codes.
#[tokio::test]
async fn output_to_a_file_has_the_start_line_and_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("balancer.stderr");
    let balancer = FakeBalancer::start_with(
        &["ch", "2", "--seed", "9"],
        &[("RUST_LOG", "info")],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    for needle in [
        concat!(
            "load-balancer ",
            env!("CARGO_PKG_VERSION"),
            " listening on http://"
        ),
        "algorithm ch (T=8)",
        "seed 9",
        "2 fake nodes",
    ] {
        assert!(
            balancer.banner.contains(needle),
            "{needle}: {}",
            balancer.banner
        );
    }
    let reply = balancer.get("/configure?T=4").await;
    assert_eq!(reply["lb"], "ch");
    let read = || std::fs::read_to_string(&log).unwrap();
    support::wait_for("the reconfiguration in the log", || async {
        read().contains("scheduler reconfigured")
    })
    .await;
    let text = read();
    assert!(!text.contains('\x1b'), "escape codes in {text:?}");

    let quiet = FakeBalancer::start(&["rr", "1"], &[("RUST_LOG", "warn")]);
    assert!(
        quiet.banner.contains("listening on http://") && quiet.banner.contains("algorithm rr,"),
        "{}",
        quiet.banner
    );
}

/// A log pipe whose reader has gone (`load-balancer ... 2>&1 | head`, a
/// `tee` that was stopped) loses the events, not the balancer: tracing
/// reported the failed write with an `eprintln!`, which panicked on the
/// same closed stderr, at the first event (exit status 101, and the
/// temporary store of users' functions left behind).
#[tokio::test]
async fn a_closed_stderr_loses_the_log_not_the_balancer() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut balancer =
        FakeBalancer::start_with(&["ch", "2"], &[("RUST_LOG", "info")], Stdio::from(writer));
    // Each logs at least one event ("scheduler reconfigured").
    for t in ["4", "6", "8"] {
        let reply = balancer.get(&format!("/configure?T={t}")).await;
        assert_eq!(reply["lb"], "ch");
        let reply = balancer.get("/execute?name=W1").await;
        assert_eq!(reply["LoadBalancingInfo"]["Algorithm"], "ch", "{reply}");
    }
    assert!(
        balancer.child.try_wait().unwrap().is_none(),
        "the balancer ended"
    );
}
