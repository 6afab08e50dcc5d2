//! `simulator replay` against the real `load-balancer` binary in fake mode
//! (the original's `load_balancer <algo> <fake_nodes>`): the log holds the
//! balancer's own replies, one line per event, readable by the analyzer.
//!
//! Builds the balancer first with the `cargo` running this test
//! (`cargo build -p load-balancer --bins`, a no-op when current).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protocol::{BalancerReply, LogLine};

struct Balancer {
    child: Child,
    url: String,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fake_balancer(algorithm: &str, nodes: u32) -> Balancer {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_simulator")).parent().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "-p", "load-balancer", "--bins"]);
    if bin_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let out = build.output().expect("run cargo");
    assert!(
        out.status.success(),
        "`cargo build -p load-balancer --bins` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = bin_dir.join("load-balancer");
    assert!(bin.is_file(), "{} missing after the build", bin.display());

    // Port 0: the balancer prints the address it got on its first line.
    let mut child = Command::new(bin)
        .args([algorithm, &nodes.to_string()])
        .args([
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--fake-delay-ms",
            "50",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start load-balancer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the balancer never printed its address");
        if let Some(pos) = line.find("http://") {
            let url: String = line[pos..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            break url;
        }
    };
    Balancer { child, url }
}

#[test]
fn replays_against_the_real_balancer_in_fake_mode() {
    let balancer = start_fake_balancer("ch", 3);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    std::fs::write(&csv, "W1,0\nW2,0\nW1,100\nW3,200\nW2,300\nW1,300\n").unwrap();
    let log = dir.path().join("fake.log");
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(["replay", &balancer.url])
        .arg(&csv)
        .arg(&log)
        .args(["--time-scale", "2", "--progress", "off"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok 6, errors 0"), "{stdout}");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<LogLine> = text.lines().map(|l| LogLine::parse(l).unwrap()).collect();
    assert_eq!(lines.len(), 6, "{text}");
    let mut node_of = std::collections::HashMap::new();
    for l in &lines {
        assert!(!l.is_error(), "{l:?}");
        let reply: BalancerReply = serde_json::from_str(&l.json).unwrap();
        assert_eq!(reply.load_balancing_info.algorithm, "ch");
        assert!((0..3).contains(&reply.load_balancing_info.worker_node_id));
        // Fake calls sleep 50 ms inside the balancer.
        assert!(l.end_ms - l.start_ms >= 50, "{l:?}");
        // Consistent hashing: one function, one node (far below the bound).
        let node = *node_of
            .entry(l.function.clone())
            .or_insert(reply.load_balancing_info.worker_node_id);
        assert_eq!(node, reply.load_balancing_info.worker_node_id, "{text}");
    }
}
