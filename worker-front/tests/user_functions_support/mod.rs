//! Shared by the user-function tests: starts the real `worker-front`
//! binary on a loopback port with a data dir, builds zips, deploys them
//! with a multipart form as Glambdar's clients do.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub mod cluster;

pub const WORKER: &str = env!("CARGO_BIN_EXE_worker-front");
pub const USER_FN: &str = env!("CARGO_BIN_EXE_hf-user-fn");

/// A worker process of the test, killed when dropped.
pub struct Worker {
    pub child: Child,
    pub port: u16,
    pub base: String,
    pub client: reqwest::Client,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the worker with `data_dir` (and its work area under
/// `work_dir`); Err with its stderr when it does not start.
pub fn try_start(data_dir: &Path, work_dir: &Path) -> Result<Worker, String> {
    try_start_with(data_dir, work_dir, &[])
}

/// [`try_start`] with more flags. The worker runs in REST mode (one warm
/// instance per function, as Glambdar's warm pool) unless `extra` names
/// `--using-rest-mode` or a Lambda model: user functions follow the
/// worker's instance model like the samples.
pub fn try_start_with(data_dir: &Path, work_dir: &Path, extra: &[&str]) -> Result<Worker, String> {
    let chosen = extra.iter().any(|a| {
        [
            "--using-rest-mode",
            "--keep-alive-policy",
            "--instance-model",
        ]
        .contains(a)
    });
    let rest: &[&str] = if chosen {
        &[]
    } else {
        &["--using-rest-mode", "true"]
    };
    try_start_exactly(data_dir, work_dir, &[rest, extra].concat())
}

/// [`try_start`] with exactly the flags `extra` (the worker's defaults
/// otherwise: HotFunctions without REST mode, every call in an instance
/// of its own).
pub fn try_start_exactly(
    data_dir: &Path,
    work_dir: &Path,
    extra: &[&str],
) -> Result<Worker, String> {
    try_start_in(None, data_dir, work_dir, extra)
}

/// [`try_start_exactly`], the worker started in `cwd` (the test's own
/// working directory if None): where relative dirs are taken from.
pub fn try_start_in(
    cwd: Option<&Path>,
    data_dir: &Path,
    work_dir: &Path,
    extra: &[&str],
) -> Result<Worker, String> {
    let mut cmd = Command::new(WORKER);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let mut child = cmd
        .args(["start", "0", "--host", "127.0.0.1"])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--work-dir")
        .arg(work_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let Some(Ok(line)) = lines.next() else {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            return Err(err);
        };
        if let Some(rest) = line.split(" on 127.0.0.1:").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || for _ in BufReader::new(err).lines() {});
    }
    Ok(Worker {
        child,
        port,
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    })
}

pub fn start(data_dir: &Path, work_dir: &Path) -> Worker {
    try_start(data_dir, work_dir).expect("worker did not start")
}

impl Worker {
    /// Stops it with SIGTERM and waits for a clean exit.
    #[allow(clippy::disallowed_methods)]
    pub fn stop(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
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

    /// `POST /deploy` of `zip` as a multipart form.
    pub async fn deploy(
        &self,
        file_name: &str,
        zip: &[u8],
        func_name: Option<&str>,
        rate: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut fields = Vec::new();
        if let Some(n) = func_name {
            fields.push(("funcName", n));
        }
        if let Some(r) = rate {
            fields.push(("rateLimit", r));
        }
        let r = shared::post_deploy(&self.client, &self.base, &fields, file_name, zip).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    /// A JSON route.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")),
        )
    }

    /// `GET /invoke/<name><rest>`: status, headers, body.
    pub async fn call(&self, name: &str, rest: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let r = self
            .client
            .get(format!("{}/invoke/{name}{rest}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    }

    /// `/instances?name=F`: (ready, starting).
    pub async fn instances(&self, name: &str) -> (u64, u64) {
        let (s, v) = self
            .json("GET", &format!("/instances?name={name}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        (
            v["Ready"].as_u64().unwrap(),
            v["Starting"].as_u64().unwrap(),
        )
    }

    /// A call of `name` that must succeed: its `Meta` and its body's `pid`.
    pub async fn call_ok(&self, name: &str) -> (serde_json::Value, u64) {
        let (s, h, text) = self.call(name, "").await;
        assert_eq!(s, 200, "{name}: {text}");
        let meta: serde_json::Value = serde_json::from_str(h["x-meta"].to_str().unwrap()).unwrap();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        (meta, body["pid"].as_u64().unwrap_or_default())
    }
}

/// One entry of a test zip.
pub enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
}

/// A zip of `entries` (deflated).
pub fn zip_of(entries: &[Entry]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for e in entries {
        match e {
            Entry::File(name, data, mode) => {
                let o = SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .unix_permissions(*mode);
                w.start_file(*name, o).unwrap();
                w.write_all(data).unwrap();
            }
            Entry::Symlink(name, target) => {
                w.add_symlink(*name, *target, SimpleFileOptions::default())
                    .unwrap();
            }
        }
    }
    w.finish().unwrap().into_inner()
}

/// The native test function's bytes.
pub fn user_fn_binary() -> Vec<u8> {
    std::fs::read(USER_FN).unwrap()
}

/// A native HTTP function labelled `label` (its manifest passes it).
pub fn native_zip(label: &str, timeout_ms: Option<u64>) -> Vec<u8> {
    let timeout = timeout_ms
        .map(|t| format!(", \"timeout_ms\": {t}"))
        .unwrap_or_default();
    native_zip_with(label, &timeout)
}

/// [`native_zip`] with more manifest fields (`extra`: `, "key": value`...).
pub fn native_zip_with(label: &str, extra: &str) -> Vec<u8> {
    let manifest =
        format!("{{\"runtime\": \"http\", \"entry\": \"bin/fn\", \"args\": [\"{label}\"]{extra}}}");
    let bin = user_fn_binary();
    zip_of(&[
        Entry::File("hf-function.json", manifest.as_bytes(), 0o644),
        Entry::File("bin/fn", &bin, 0o755),
    ])
}

/// A Glambdar zip: only `index.js`.
pub fn glambdar_zip(source: &str) -> Vec<u8> {
    zip_of(&[Entry::File("index.js", source.as_bytes(), 0o644)])
}

/// The data and work dirs of a test.
pub struct Dirs {
    pub root: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
        }
    }
    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }
    pub fn work(&self) -> PathBuf {
        let w = self.root.path().join("work");
        std::fs::create_dir_all(&w).unwrap();
        w
    }
}

/// Whether process `pid` is alive (and not a zombie).
pub fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

/// Polls `cond` every 20 ms for up to 20 s.
#[allow(clippy::disallowed_methods)]
pub async fn await_true(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[path = "shared.rs"]
mod shared;

/// `user_functions_support/static_echo.rs` linked statically
/// ([`shared::static_echo`]), checked to be a static ELF.
pub fn static_user_fn() -> PathBuf {
    let out = shared::static_echo();
    let bytes = std::fs::read(&out).unwrap();
    worker_front::runtime::docker::context::check_static_elf(&bytes)
        .expect("static-echo is statically linked");
    out
}

/// A native HTTP function: `binary` as `bin/fn`, labelled `label`.
pub fn native_zip_of(binary: &[u8], label: &str) -> Vec<u8> {
    let manifest =
        format!("{{\"runtime\": \"http\", \"entry\": \"bin/fn\", \"args\": [\"{label}\"]}}");
    zip_of(&[
        Entry::File("hf-function.json", manifest.as_bytes(), 0o644),
        Entry::File("bin/fn", binary, 0o755),
    ])
}
