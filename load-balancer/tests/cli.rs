//! The `load-balancer` binary itself: help, clear start-up errors, and a
//! fake-mode run with parameters from flags and the original's
//! environment variables.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_load-balancer");

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
    assert!(run(&["rr", "x"]).contains("invalid value 'x'"));
    assert!(run(&["rr", "--nodes", "10.0.0.1:8222"]).contains("must start with http://"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nodes.config.json");
    std::fs::write(&file, "[\n\"http://a:1\",\n 7\n]").unwrap();
    let err = run(&["rr", "--config", file.to_str().unwrap()]);
    assert!(err.contains("nodes.config.json:3:"), "{err}");
    let err = run(&["rr", "--config", "/nonexistent/nodes.json"]);
    assert!(err.contains("/nonexistent/nodes.json"), "{err}");
}

#[tokio::test]
async fn fake_mode_binary_serves_with_recorded_seed_and_env_params() {
    let mut child = Command::new(BIN)
        .args([
            "ch",
            "3",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--fake-delay-ms",
            "10",
            "--seed",
            "42",
        ])
        .env("T", "3")
        .env("BETA", "0.75")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("seed 42"), "{line}");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let http = support::client();
    let status: serde_json::Value = http
        .get(format!("{url}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["seed"], 42);
    assert_eq!(status["params"]["T"], 3);
    assert_eq!(status["params"]["BETA"], 0.75);
    let reply: serde_json::Value = http
        .get(format!("{url}/execute?name=W1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["LoadBalancingInfo"]["Algorithm"], "ch");
    assert_eq!(reply["ExecutionTime"], 10);
    let _ = child.kill();
    let _ = child.wait();
}
