//! Drives the real `hf-fn` binary: one-call mode, staging, the payload
//! check, fault injection, and the serve protocol over real sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hf-fn");

fn stage(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new(BIN)
        .args(["stage", name])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    dir
}

fn output_of(stdout: &[u8]) -> protocol::FunctionOutput {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn one_call_prints_a_function_output() {
    let dir = stage("W4");
    let out = Command::new(dir.path().join("hf-fn"))
        .arg("W4")
        .env("HF_TIME_SCALE", "0.01")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let o = output_of(&out.stdout);
    assert_eq!(o.result.status_code, 200);
    assert!(o.result.body.contains("\"ret\""));
    assert!(o.end_time >= o.start_time);
}

#[test]
fn a_missing_or_wrong_payload_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("W1")
        .env("HF_PAYLOAD", dir.path().join("absent"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hf-fn stage"));
    let staged = stage("I3"); // 14 KB payload, checked against W1's 9.7 MB
    let out = Command::new(BIN)
        .arg("W1")
        .env("HF_PAYLOAD", staged.path().join("payload.bin"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("catalog says 9700000"));
}

#[test]
fn unknown_function_and_fault_injection() {
    let out = Command::new(BIN).arg("W99").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown function"));
    let out = Command::new(BIN)
        .arg("noop")
        .env("HF_FAIL_FUNCTION", "noop")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed on purpose"));
}

struct Serving(Child, u16);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(name: &str) -> Serving {
    let mut child = Command::new(BIN)
        .args(["serve", "--function", name, "--port", "0"])
        .env("HF_TIME_SCALE", "0.01")
        .env("HF_PAYLOAD", "none")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let port = v["port"].as_u64().unwrap() as u16;
    Serving(child, port)
}

fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let status = all[9..12].parse().unwrap();
    let body = all.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn serve_answers_invoke_and_health_concurrently() {
    let s = serve("T1"); // 3 × 800 ms of sleep, scaled to 24 ms
    let port = s.1;
    let calls: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || get(port, "/invoke")))
        .collect();
    for c in calls {
        let (status, body) = c.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(output_of(body.as_bytes()).result.status_code, 200);
    }
    let (status, body) = get(port, "/health");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["invocations"], 8);
    assert_eq!(v["function"], "T1");
    assert_eq!(get(port, "/other").0, 404);
}

#[test]
fn serve_exits_when_stdin_closes_if_asked() {
    let mut child = Command::new(BIN)
        .args(["serve", "--function", "noop", "--exit-on-stdin-eof"])
        .env("HF_PAYLOAD", "none")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"port\""), "{line}");
    assert!(child.try_wait().unwrap().is_none(), "still serving");
    drop(child.stdin.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not exit after its stdin closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
}
