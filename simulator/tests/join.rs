//! Workers that join a balancer by themselves (`worker-front start --join`):
//! the real binaries on loopback. They register, serve calls, register
//! again after the balancer restarts with no memory of them, and leave on
//! SIGTERM (the balancer stops listing them at once, which its health
//! check alone would not do: it only marks a node offline).

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{build_testbed, free_port, get, start_printing_url, Server};

/// The balancer's members: URL -> "online" | "offline".
fn members(port: u16) -> BTreeMap<String, String> {
    let (status, body) = get(port, "/1/lb/nodes");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["nodes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.trim_end_matches('/').to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Polls the balancer's members until `ok` holds (deadline 60 s).
fn wait_members(port: u16, what: &str, ok: impl Fn(&BTreeMap<String, String>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = members(port);
        if ok(&m) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: members {m:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn balancer(bins: &std::path::Path, port: u16) -> Server {
    let port = port.to_string();
    start_printing_url(
        &bins.join("load-balancer"),
        &[
            "rr",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--health-interval-ms",
            "100",
            "--start-empty",
        ],
        Stdio::null(),
    )
}

/// Starts a worker and reads its address from its start-up line
/// (`... listening on 127.0.0.1:PORT ...`).
fn start_worker(program: &std::path::Path, args: &[&str]) -> Server {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let Some(addr) = line
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_string)
    else {
        // Ours to stop: a child left running would outlive the test.
        let _ = child.kill();
        let _ = child.wait();
        panic!("no address in the start-up line {line:?}");
    };
    Server {
        child,
        url: format!("http://{addr}"),
    }
}

#[test]
fn workers_join_rejoin_after_a_balancer_restart_and_leave_on_sigterm() {
    let bins = build_testbed();
    let lb_port = free_port();
    let mut lb = balancer(&bins, lb_port);
    let join = format!("http://127.0.0.1:{lb_port}");
    let worker = |_: usize| {
        start_worker(
            &bins.join("worker-front"),
            &[
                "start",
                "0",
                "--host",
                "127.0.0.1",
                "--time-scale",
                "0.01",
                "--join",
                &join,
                "--join-interval-ms",
                "100",
            ],
        )
    };
    let mut w1 = worker(1);
    let w2 = worker(2);
    let (u1, u2) = (w1.url.clone(), w2.url.clone());
    let both_online = |m: &BTreeMap<String, String>| {
        m.get(&u1).is_some_and(|s| s == "online") && m.get(&u2).is_some_and(|s| s == "online")
    };
    wait_members(lb_port, "both workers join", both_online);

    // Calls reach them.
    for _ in 0..4 {
        let (status, body) = get(lb_port, "/execute?name=W3");
        assert_eq!(status, 200, "{body}");
    }

    // A new balancer on the same port knows nothing: the workers register
    // again by themselves. (Stopped, not killed: it removes its temporary
    // store of users' functions.)
    assert!(
        support::stop(&mut lb.child),
        "the balancer did not exit on SIGTERM"
    );
    let lb2 = balancer(&bins, lb_port);
    assert_eq!(lb2.port(), lb_port);
    drop(lb);
    wait_members(
        lb_port,
        "both workers join the restarted balancer",
        both_online,
    );

    // SIGTERM: the worker leaves before it exits.
    kill(Pid::from_raw(w1.child.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = w1.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let m = members(lb_port);
    assert!(
        !m.contains_key(&u1),
        "the stopped worker is still a member: {m:?}"
    );
    assert_eq!(m.get(&u2).map(String::as_str), Some("online"), "{m:?}");
    let (status, body) = get(lb_port, "/execute?name=W3");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn bad_join_urls_are_clear_errors() {
    let bins = build_testbed();
    for (args, word) in [
        (vec!["--join", "127.0.0.1:8111"], "--join"),
        (
            vec!["--join", "http://127.0.0.1:8111", "--advertise-url", "w1"],
            "--advertise-url",
        ),
    ] {
        let out = std::process::Command::new(bins.join("worker-front"))
            .args(["start", "0", "--host", "127.0.0.1"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(word) && stderr.contains("http://HOST:PORT"),
            "{stderr}"
        );
    }
}
