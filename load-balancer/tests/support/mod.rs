//! Test support: real stub-worker processes, the balancer's `run` on port
//! 0, and polling with deadlines. No mocks: everything talks over real
//! loopback sockets.
#![allow(dead_code)]
// Tests read the wall clock for their deadlines.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use load_balancer::BalancerConfig;

/// Generous deadline for conditions on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A running `stub-worker` process, killed on drop.
#[derive(Debug)]
pub struct StubWorker {
    child: Child,
    pub url: String,
    pub port: u16,
    pub id: String,
}

impl StubWorker {
    /// Starts a stub on a free port.
    pub fn start(id: &str, extra: &[&str]) -> Self {
        Self::start_on(id, 0, extra)
    }

    /// Starts a stub on `port` (0: any free one), retrying while the port
    /// is still held by a stopped predecessor.
    pub fn start_on(id: &str, port: u16, extra: &[&str]) -> Self {
        let deadline = Instant::now() + PATIENCE;
        loop {
            // Loopback unless `extra` names a host.
            let host = if extra.contains(&"--host") {
                &[][..]
            } else {
                &["--host", "127.0.0.1"][..]
            };
            let mut child = Command::new(env!("CARGO_BIN_EXE_stub-worker"))
                .args(host)
                .args(["--port", &port.to_string(), "--id", id])
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn stub-worker");
            let stdout = child.stdout.take().unwrap();
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            if let Some(url) = line.trim().strip_prefix("stub-worker listening on ") {
                let port = url.rsplit(':').next().unwrap().parse().unwrap();
                return Self {
                    child,
                    url: url.to_string(),
                    port,
                    id: id.to_string(),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "stub-worker {id} did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id (for signals the test sends itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to this process with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Stops the process (and waits for it to exit).
    pub fn stop(&mut self) {
        // Not reaped yet, so the pid is still this child's: SIGCONT first
        // (a SIGSTOPped process dies of SIGKILL too, but nothing is left
        // suspended even if the kill were refused).
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-CONT".to_string(), self.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The stub's `/stats`.
    pub async fn stats(&self) -> serde_json::Value {
        get_json(&format!("{}/stats", self.url)).await
    }
}

impl Drop for StubWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The balancer served by `load_balancer::run` on its own thread.
#[derive(Debug)]
pub struct Balancer {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Balancer {
    pub fn start(config: BalancerConfig) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                load_balancer::run(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .expect("balancer run");
            });
        });
        Self {
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        client()
            .get(format!("{}{path_and_query}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path_and_query: &str) -> (u16, serde_json::Value) {
        let r = self.get(path_and_query).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path_and_query}: not JSON ({e}): {text}"));
        (status, value)
    }

    /// `GET /execute?name=F`: (status, JSON body).
    pub async fn execute(&self, function: &str) -> (u16, serde_json::Value) {
        self.get_json(&format!("/execute?name={function}")).await
    }

    /// The node id that served a successful call of `function`.
    pub async fn execute_node(&self, function: &str) -> u32 {
        let (status, reply) = self.execute(function).await;
        assert_eq!(status, 200, "{reply}");
        reply["LoadBalancingInfo"]["WorkerNodeId"].as_u64().unwrap() as u32
    }

    /// `/1/lb/nodes` as (url, status) pairs.
    pub async fn node_states(&self) -> serde_json::Map<String, serde_json::Value> {
        let (status, v) = self.get_json("/1/lb/nodes").await;
        assert_eq!(status, 200);
        v["nodes"].as_object().unwrap().clone()
    }

    /// In-flight loads from `/status`, by node id.
    pub async fn loads(&self) -> Vec<(u64, u64)> {
        let (_, v) = self.get_json("/status").await;
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["id"].as_u64().unwrap(), n["load"].as_u64().unwrap_or(0)))
            .collect()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A config for `nodes` with the given algorithm and a slow health check
/// (the first check a minute in), so that membership only
/// changes when a test makes it change.
pub fn config(algorithm: &str, nodes: &[&StubWorker]) -> BalancerConfig {
    let mut config = BalancerConfig {
        algorithm: algorithm.into(),
        nodes: nodes.iter().map(|s| s.url.clone()).collect(),
        threads: 2,
        ..Default::default()
    };
    config.health.interval_ms = 60_000;
    config
}

/// `GET url`, read as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Starts `n` calls of `function`, each once the previous ones are counted
/// in flight (so their order is known); returns the running calls.
pub async fn calls_in_flight(
    balancer: &std::sync::Arc<Balancer>,
    function: &str,
    n: u64,
) -> Vec<tokio::task::JoinHandle<(u16, serde_json::Value)>> {
    let mut calls = Vec::new();
    for in_flight in 1..=n {
        let b = balancer.clone();
        let function = function.to_string();
        calls.push(tokio::spawn(async move { b.execute(&function).await }));
        wait_for("the calls in flight", || async {
            balancer.loads().await.iter().map(|(_, l)| l).sum::<u64>() == in_flight
        })
        .await;
    }
    calls
}

/// Polls `condition` until it holds or `PATIENCE` runs out.
pub async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_within(what, PATIENCE, &mut condition).await;
}

/// Polls `condition` until it holds; panics after `limit`. Returns the time
/// it took.
pub async fn wait_within<F, Fut>(what: &str, limit: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port with nothing listening on it.
pub fn dead_url() -> DeadNode {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("a TCP socket");
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any_port.into()).expect("bind 127.0.0.1:0");
    let port = socket
        .local_addr()
        .unwrap()
        .as_socket()
        .expect("an IP address")
        .port();
    DeadNode {
        url: format!("http://127.0.0.1:{port}"),
        _socket: socket,
    }
}

/// A worker URL where nothing answers: its port is bound by a socket that
/// never listens, so connections are refused, and no other server (another
/// test's, started meanwhile) can take the port while this value lives.
pub struct DeadNode {
    pub url: String,
    _socket: socket2::Socket,
}

impl std::ops::Deref for DeadNode {
    type Target = String;
    fn deref(&self) -> &String {
        &self.url
    }
}

impl std::fmt::Display for DeadNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// A non-loopback address of this machine, to test what a peer on the
/// network sees: a client on this machine that connects to a server bound
/// to this address arrives from it (not from 127.0.0.1). Found by asking
/// the kernel which source address a UDP socket would use towards a few
/// documentation and private addresses (`connect` on UDP sends nothing);
/// None on a machine without a route (then the tests that need one say so
/// and cover the token path on loopback with `require_token`).
pub fn non_loopback_ip() -> Option<std::net::IpAddr> {
    [
        "192.0.2.1:9",
        "10.255.255.1:9",
        "198.51.100.1:9",
        "172.31.255.1:9",
    ]
    .iter()
    .find_map(|target| {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect(target).ok()?;
        let ip = socket.local_addr().ok()?.ip();
        let usable = !ip.is_loopback() && !ip.is_unspecified();
        // Usable only if a server can bind it.
        (usable && std::net::TcpListener::bind((ip, 0)).is_ok()).then_some(ip)
    })
}

/// A client that connects from `ip` (to a server on this machine bound
/// to `ip`, the kernel picks `ip` as the source anyway).
pub fn client_from(ip: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip)
        .build()
        .unwrap()
}

impl Balancer {
    /// The balancer on `listener` (and `management`, when given).
    pub fn start_on(
        listener: std::net::TcpListener,
        management: Option<std::net::TcpListener>,
        config: BalancerConfig,
    ) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                load_balancer::run_with_management(listener, management, config, async {
                    let _ = stopped.await;
                })
                .await
                .expect("balancer run");
            });
        });
        Self {
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

/// Starts the `load-balancer` binary (`rr`, loopback, port 0, 2 threads,
/// `RUST_LOG=warn`) with `args` added, and reads its URL from the start-up
/// line. The caller owns the child.
pub fn spawn_balancer(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_load-balancer"))
        .args(["rr", "--host", "127.0.0.1", "--port", "0", "--threads", "2"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn load-balancer");
    let mut line = String::new();
    let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in the balancer's start-up line: {line:?}"))
        .to_string();
    (child, url)
}

/// A real `worker-front` process (process runtime, loopback, time scale
/// 0.05, work area in a temporary directory of its own), killed on drop.
/// Built with the cargo running the test when missing (a no-op when
/// current).
pub struct RealWorker {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl RealWorker {
    /// Starts one with `extra` arguments and waits until `/health`
    /// answers.
    pub async fn start(extra: &[&str]) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        Self::start_on(port, extra).await
    }

    /// [`RealWorker::start`] on `port` (e.g. a restart where a stopped one
    /// was), with a new work area.
    pub async fn start_on(port: u16, extra: &[&str]) -> Self {
        let bins = std::path::Path::new(env!("CARGO_BIN_EXE_load-balancer"))
            .parent()
            .unwrap();
        let worker_bin = bins.join("worker-front");
        if !worker_bin.is_file() || !bins.join("hf-fn").is_file() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            // The whole workspace, as scripts/test.sh builds it: a subset
            // (`-p worker-front`) would resolve other features and
            // recompile shared dependencies.
            build.args(["build", "--workspace", "--bins"]);
            if bins.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            assert!(
                build.status().unwrap().success(),
                "building worker-front failed"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(&worker_bin)
            .args(["start", "--port", &port.to_string(), "--host", "127.0.0.1"])
            .args(["--runtime", "process", "--time-scale", "0.05"])
            .arg("--work-dir")
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start worker-front");
        let worker = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        wait_within("worker-front healthy", Duration::from_secs(60), || async {
            worker.health().await.is_some()
        })
        .await;
        worker
    }

    /// Its `/health` reply, if it answers 2xx.
    pub async fn health(&self) -> Option<serde_json::Value> {
        match client().get(format!("{}/health", self.url)).send().await {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            _ => None,
        }
    }
}

impl RealWorker {
    /// Kills it (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for RealWorker {
    fn drop(&mut self) {
        self.kill();
    }
}
