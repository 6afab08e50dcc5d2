//! Shared by the ownership tests: the `worker-front` binary started as a
//! user starts it, on a port of its choice (read from its start-up line),
//! stopped by SIGTERM or SIGKILL, and GETs against it.

#![allow(dead_code)]
// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_worker-front");

/// A worker binary started by a test; killed (and reaped) when dropped.
pub struct Running {
    pub child: Child,
    pub port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then waits (120 s at most: a Docker worker removes its
    /// containers first) for a successful exit.
    pub fn terminate(&mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "{st}");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the worker has no chance to clean up.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Starts `cmd` (a `worker-front start 0 --host 127.0.0.1 ...` command
/// line, maybe wrapped) with REST mode on (a warm instance per function,
/// kept 600 s) and functions at 1 % of their work, and reads the bound
/// port from its start-up line.
pub fn spawn(mut cmd: Command) -> Running {
    cmd.env("RUST_LOG", "warn")
        .env("HF_TIME_SCALE", "0.01")
        .env("USING_REST_MODE", "true")
        .env("REST_CONTAINER_LIFE_TIME", "600")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = match lines.next() {
        Some(Ok(line)) => line,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("worker exited before listening: {other:?}");
        }
    };
    let port = line
        .split(" on 127.0.0.1:")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    std::thread::spawn(move || for _ in lines {});
    Running { child, port }
}

/// GET `http://127.0.0.1:<port><path>`: (status, JSON body).
pub async fn get(port: u16, path: &str) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"));
    (status, v)
}
