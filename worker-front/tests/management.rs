//! Management is not open to the network, and every option has a bound
//! (issue 13, part 2), on the real `worker-front` binary (process
//! runtime) over real sockets.
//!
//! A "network peer" is this machine seen through a non-loopback address
//! of its own: the worker binds that address and the client connects from
//! it (`non_loopback_ip`). Where the machine has none, that test says so
//! and passes; the token path is still covered on loopback with
//! `--mgmt-require-token`.

// Tests read the clock for their deadlines.
#![allow(clippy::disallowed_methods)]

mod process_support;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use process_support::{hf_fn_binary, unique_id};

const BIN: &str = env!("CARGO_BIN_EXE_worker-front");
const TOKEN: &str = "worker-token-0123456789abcdef";

/// A non-loopback address of this machine that a server can bind (the
/// source address the kernel would use towards a few documentation and
/// private addresses; UDP `connect` sends nothing).
fn non_loopback_ip() -> Option<IpAddr> {
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
        (usable && std::net::TcpListener::bind((ip, 0)).is_ok()).then_some(ip)
    })
}

/// The worker binary, stopped with SIGTERM (so that it removes what it
/// created) when dropped.
struct Worker {
    child: Child,
    /// `http://ADDR` of the data listener.
    data: String,
    /// `http://ADDR` of the management listener, if any.
    management: Option<String>,
    _work_dir: tempfile::TempDir,
}

impl Worker {
    fn start(host: &str, extra: &[&str]) -> Self {
        let work_dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(["start", "0", "--host", host, "--time-scale", "0.01"])
            .arg("--worker-id")
            .arg(unique_id("mgmt"))
            .arg("--fn-binary")
            .arg(hf_fn_binary())
            .arg("--work-dir")
            .arg(work_dir.path())
            .args(extra)
            .env_remove(protocol::mgmt::TOKEN_ENV)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let after = |marker: &str| {
            line.split(marker).nth(1).map(|rest| {
                let addr: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != ',' && *c != ')')
                    .collect();
                format!("http://{addr}")
            })
        };
        let data = after(" listening on ").unwrap_or_else(|| panic!("no address in {line:?}"));
        let management = after("management on ");
        Self {
            child,
            data,
            management,
            _work_dir: work_dir,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (status, JSON body) of `GET url`, with `token` as a bearer if given.
async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    (status, value)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn token_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path.to_str().unwrap().to_string()
}

const MANAGEMENT: [&str; 3] = ["/configure?container_pool_num=2", "/clear", "/prepare"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_peer_needs_the_token_to_manage_and_none_to_call() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!(
            "no non-loopback address on this machine: the network-peer case is not exercised"
        );
        return;
    };
    let peer = reqwest::Client::builder()
        .no_proxy()
        .local_address(ip)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    // No token: a network peer may not manage at all.
    let open = Worker::start(&ip.to_string(), &[]);
    for path in MANAGEMENT {
        let (status, reply) = get(&peer, &format!("{}{path}", open.data), Some(TOKEN)).await;
        assert_eq!(status, 403, "{path}: {reply}");
        assert!(
            reply["Message"].as_str().unwrap().contains("loopback"),
            "{reply}"
        );
    }
    let (status, reply) = get(&peer, &format!("{}/execute?name=W1", open.data), None).await;
    assert_eq!(status, 200, "{reply}");
    let (status, _) = get(&peer, &format!("{}/health", open.data), None).await;
    assert_eq!(status, 200);

    // A token: the peer manages with it, not without it.
    let guarded = Worker::start(&ip.to_string(), &["--mgmt-token-file", &token]);
    for path in MANAGEMENT {
        let url = format!("{}{path}", guarded.data);
        let (status, reply) = get(&peer, &url, None).await;
        assert_eq!(status, 401, "{path}: {reply}");
        let (status, _) = get(&peer, &url, Some("wrong-token-0123456789")).await;
        assert_eq!(status, 401, "{path}");
        let (status, reply) = get(&peer, &url, Some(TOKEN)).await;
        assert_eq!(status, 200, "{path}: {reply}");
    }
    let (status, reply) = get(&peer, &format!("{}/configure", guarded.data), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(reply["State"]["ContainerPoolNum"], 2, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_manages_freely_unless_the_token_is_required() {
    let open = Worker::start("127.0.0.1", &[]);
    let (status, reply) = get(&client(), &format!("{}/clear", open.data), None).await;
    assert_eq!(status, 200, "{reply}");

    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir);
    let strict = Worker::start(
        "127.0.0.1",
        &["--mgmt-token-file", &token, "--mgmt-require-token"],
    );
    for path in MANAGEMENT {
        let url = format!("{}{path}", strict.data);
        let (status, reply) = get(&client(), &url, None).await;
        assert_eq!(status, 401, "{path}: {reply}");
        let (status, reply) = get(&client(), &url, Some(TOKEN)).await;
        assert_eq!(status, 200, "{path}: {reply}");
    }
    let (status, reply) = get(&client(), &format!("{}/execute?name=W1", strict.data), None).await;
    assert_eq!(status, 200, "calls need no token: {reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_management_listener_takes_the_management_routes() {
    let w = Worker::start("127.0.0.1", &["--mgmt-listen", "127.0.0.1:0"]);
    let management = w.management.clone().expect("a management address");
    let (status, reply) = get(&client(), &format!("{}/clear", w.data), None).await;
    assert_eq!(status, 403, "{reply}");
    assert!(
        reply["Message"]
            .as_str()
            .unwrap()
            .contains(&management[7..]),
        "{reply}"
    );
    let (status, reply) = get(&client(), &format!("{management}/clear"), None).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = get(&client(), &format!("{}/execute?name=W1", w.data), None).await;
    assert_eq!(status, 200, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_values_beyond_their_bounds_are_a_400_that_changes_nothing() {
    let w = Worker::start("127.0.0.1", &[]);
    for query in [
        "container_pool_limit=1&container_pool_num=150",
        "container_pool_num=4294967295",
        "container_pool_limit=100000",
        "rest_container_life_time=99999999999",
        "image_limit=9999999999999999",
    ] {
        let (status, reply) = get(&client(), &format!("{}/configure?{query}", w.data), None).await;
        assert_eq!(status, 400, "{query}: {reply}");
        assert!(
            reply["Message"].as_str().unwrap().contains("bound"),
            "{reply}"
        );
    }
    let (status, reply) = get(&client(), &format!("{}/configure", w.data), None).await;
    assert_eq!(status, 200);
    assert_eq!(reply["Message"], "nothing changed");
    assert_eq!(reply["State"]["ContainerPoolNum"], 6, "{reply}");
    assert_eq!(reply["State"]["ContainerPoolLimit"], -1, "{reply}");
    let (status, reply) = get(
        &client(),
        &format!("{}/configure?container_pool_num=64", w.data),
        None,
    )
    .await;
    assert_eq!(status, 200, "the bound itself is allowed: {reply}");
}

#[test]
fn flags_and_environment_beyond_their_bounds_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc").unwrap();
    let short = short.to_str().unwrap();
    for (args, env, needle) in [
        (
            &["--container-pool-num", "4294967295"][..],
            None,
            "container_pool_num",
        ),
        (
            &[][..],
            Some(("CONTAINER_POOL_NUM", "100")),
            "container_pool_num",
        ),
        (
            &["--rest-container-life-time", "99999999999"][..],
            None,
            "rest_container_life_time",
        ),
        (&["--http-workers", "100000"][..], None, "http workers"),
        (&["--node-memory-mb", "4294967295"][..], None, "node memory"),
        (&["--mgmt-require-token"][..], None, "needs a token"),
        (&["--mgmt-token-file", short][..], None, short),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["start", "0", "--host", "127.0.0.1"])
            .args(args)
            .arg("--work-dir")
            .arg(dir.path())
            .env_remove(protocol::mgmt::TOKEN_ENV)
            .stdout(Stdio::null());
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{args:?} {env:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?} {env:?}: {stderr}");
    }
}
