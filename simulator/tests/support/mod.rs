//! Helpers shared by the tests that run the real binaries: building them,
//! staging directories in memory, child processes that are always stopped
//! (SIGTERM, so that they remove what they made, then SIGKILL), free
//! ports, waiting for `/health`, one-shot HTTP GETs.

#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `simulator des ARGS`, run to its end, with the environment variables
/// it reads for defaults removed (so the machine's do not leak in).
pub fn des(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_simulator"))
        .arg("des")
        .args(args)
        .env_remove("HF_TIME_SCALE")
        .env_remove("HF_PACKAGE_SCALE")
        .env_remove("HF_DES_PROFILE")
        .env_remove("SEED")
        .output()
        .expect("run simulator")
}

/// Fails with the command's standard error unless it succeeded.
pub fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a process cost profile measured on a machine no host has
/// (`Imaginary CPU 9000`, 96 cores, on 2026-01-02 03:04:05 UTC).
pub fn write_profile_of_another_machine(path: &Path) {
    std::fs::write(
        path,
        r#"{"runtime": "process", "measured_on": {"at": "2026-01-02 03:04:05 UTC", "cpu_model": "Imaginary CPU 9000", "cores": 96, "simulator": "0.1.0"}}"#,
    )
    .unwrap();
}

/// A JSON file's value.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_simulator"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the workspace's binaries (a no-op when current) with the cargo
/// running this test, so the test never runs stale binaries, and returns
/// their directory. Once per test process.
///
/// `--workspace`, as `scripts/test.sh` builds, never a subset (`-p X`):
/// Cargo resolves features over the packages a build asks for, so a
/// subset would compile shared dependencies with other features (the
/// `feature-pins` crate aligns the workspace's normal and dev builds, not
/// subsets), recompile much of the graph, and swap the binaries in
/// `target/` for differently built ones under the other tests' feet.
pub fn workspace_bins() -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "--workspace", "--bins"]);
        if bin_dir().file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = result {
        panic!("building the workspace's binaries failed (`cargo build --workspace --bins`):\n{e}");
    }
    bin_dir()
}

/// [`workspace_bins`], checked to hold each of `names`.
pub fn workspace_bins_with(names: &[&str]) -> PathBuf {
    let bins = workspace_bins();
    for name in names {
        assert!(
            bins.join(name).is_file(),
            "{} missing after the build",
            bins.join(name).display()
        );
    }
    bins
}

/// The testbed's binaries ([`workspace_bins`]), checked to be there.
pub fn build_testbed() -> PathBuf {
    workspace_bins_with(&["load-balancer", "worker-front", "hf-fn"])
}

/// The `utils` binary ([`workspace_bins`]).
pub fn utils_bin() -> PathBuf {
    workspace_bins().join("utils")
}

/// The largest number of calls in flight at once, from the log lines'
/// `[start, end]` ms (a call ending at the ms another starts is counted
/// as done first: a client's next call starts after its last one ended).
pub fn max_in_flight(lines: &[protocol::LogLine]) -> usize {
    let mut events: Vec<(i64, i32)> = Vec::new();
    for l in lines {
        events.push((l.start_ms, 1));
        events.push((l.end_ms, -1));
    }
    events.sort(); // at equal times, -1 (an end) before +1 (a start)
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// Checks the log of a closed loop of `--functions zipf:1 --names
/// W1,W2,W3,W4` (`simulator load` live or `simulator des --clients`):
/// one successful line per call of `per_client` (calls by client), the
/// functions the clients' sequences under `seed` (each cut at its
/// client's number of calls), and `utils analyze` (the real binary) reads
/// it, on `nodes` nodes. Returns the most calls in flight at once.
pub fn check_closed_loop_log(log: &Path, seed: u64, per_client: &[usize], nodes: u64) -> usize {
    use simulator::load::mix::{client_sequence, FunctionMix, MixSpec};
    let text_log = std::fs::read_to_string(log).unwrap();
    let lines: Vec<protocol::LogLine> = text_log
        .lines()
        .map(|l| protocol::LogLine::parse(l).unwrap())
        .collect();
    let calls: usize = per_client.iter().sum();
    assert_eq!(lines.len(), calls);
    assert!(lines.iter().all(|l| !l.is_error()), "{text_log}");

    let mix = FunctionMix::from_spec(&MixSpec::Zipf(1.0), Some("W1,W2,W3,W4")).unwrap();
    let mut expected: Vec<&str> = (0..per_client.len())
        .flat_map(|c| client_sequence(&mix, seed, c as u32, per_client[c]))
        .collect();
    let mut logged: Vec<&str> = lines.iter().map(|l| l.function.as_str()).collect();
    expected.sort_unstable();
    logged.sort_unstable();
    assert_eq!(logged, expected);

    let out = Command::new(utils_bin())
        .args(["analyze", "--json"])
        .arg(log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let analyses: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(analyses[0]["calls"], calls, "{analyses}");
    assert_eq!(analyses[0]["ok_calls"], calls);
    assert_eq!(analyses[0]["nodes"], nodes);
    assert_eq!(analyses[0]["unparseable_lines"], 0);
    max_in_flight(&lines)
}

/// Checks a closed loop's parameters as its sidecar records them
/// (`extra.load`), for `zipf:1` over W1..W4.
pub fn check_load_parameters(
    params: &serde_json::Value,
    clients: usize,
    seed: u64,
    duration_s: f64,
    think: &str,
) {
    assert_eq!(params["clients"], clients);
    assert_eq!(params["seed"], seed);
    assert_eq!(params["duration_s"], duration_s);
    assert_eq!(params["functions"], "zipf:1");
    assert_eq!(params["think"], think);
    assert_eq!(params["function_count"], 4);
    assert!((params["probabilities"]["W1"].as_f64().unwrap() - 0.48).abs() < 0.001);
}

/// Where the workers stage their packages ("images"): memory (`/dev/shm`)
/// where there is one, see the module doc.
pub fn staging_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("des-live-").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// How long a child may take to exit after SIGTERM: the experiment's
/// own grace (the servers' shutdown time-out and their clean-up).
pub use simulator::experiment::children::STOP_GRACE;

/// The names in `dir` of balancers' temporary stores of users' functions
/// (`hf-balancer-functions.<pid>.…`): every balancer's, or `pid`'s only.
pub fn balancer_stores_in(dir: &Path, pid: Option<u32>) -> Vec<String> {
    let prefix = match pid {
        Some(pid) => format!("hf-balancer-functions.{pid}."),
        None => "hf-balancer-functions".to_string(),
    };
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Stops `child` as a user would: SIGTERM, so that it removes what it
/// made (a balancer its temporary store of users' functions, a worker its
/// instances and work area), SIGKILL if it has not exited within
/// [`STOP_GRACE`]; then reaps it. Returns whether it exited by itself.
pub fn stop(child: &mut Child) -> bool {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    let Ok(pid) = i32::try_from(child.id()) else {
        let _ = child.kill();
        let _ = child.wait();
        return false;
    };
    if kill(Pid::from_raw(pid), Signal::SIGTERM).is_ok() {
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// A child process stopped ([`stop`]) and reaped when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `GET /health` until it answers 200 (deadline 60 s).
pub fn wait_healthy(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            let mut reply = String::new();
            if s.write_all(req.as_bytes()).is_ok()
                && s.read_to_string(&mut reply).is_ok()
                && reply.starts_with("HTTP/1.1 200")
            {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("worker exited before it was healthy: {status}");
        }
        assert!(Instant::now() < deadline, "worker on {port} never healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.1, one connection): the status
/// and the body.
pub fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A child serving at `url`, stopped ([`stop`]) and reaped when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

impl Server {
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }
}

/// Starts `program` with `args`; the first URL it prints on stdout is where
/// it serves (port 0: it prints the address it got).
pub fn start_printing_url(program: &Path, args: &[&str], stderr: Stdio) -> Server {
    let mut child = Command::new(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            // Ours to stop: a child left running would outlive the test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} never printed its address", program.display());
        };
        if let Some(pos) = line.find("http://") {
            break line[pos..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect::<String>()
                .trim_end_matches('/')
                .to_string();
        }
    };
    Server { child, url }
}

/// True while a process with this pid exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A compose cluster owned by a test (the deploy tests).
pub mod compose;

/// The markdown table that follows `heading` in a report: header and
/// rows, as cells.
pub fn table_after(report: &str, heading: &str) -> Vec<Vec<String>> {
    let start = report
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in the report:\n{report}"));
    report[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| !l.starts_with("|---"))
        .map(|l| {
            l.trim()
                .trim_start_matches('|')
                .trim_end_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}
