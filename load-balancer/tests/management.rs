//! Management is not open to the network (issue 13, part 2): who may use
//! `/configure`, `/clear`, `/prepare` and `PUT`/`DELETE /1/lb/nodes`, the
//! separate management listener, the token carried to the workers, and
//! what a registered node may make the balancer say or call.
//!
//! A "network peer" is this machine seen through a non-loopback address of
//! its own (`support::non_loopback_ip`): the balancer (or stub) binds that
//! address, and the client connects from it, so the server sees a peer
//! that is not on loopback, without a second host. Where the machine has
//! no such address, those tests say so and pass; the token path is then
//! still covered on loopback by `require_token`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use load_balancer::BalancerConfig;
use support::{client, client_from, config, non_loopback_ip, wait_for, Balancer, StubWorker};

const TOKEN: &str = "test-token-0123456789abcdef";

fn with_token(mut config: BalancerConfig, require: bool) -> BalancerConfig {
    config.mgmt = protocol::mgmt::ManagementConfig {
        token: Some(TOKEN.into()),
        require_token: require,
    };
    config
}

/// (status, JSON body) of `method url` from `client`, with `token` as a
/// bearer if given.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}

fn no_address() {
    eprintln!("no non-loopback address on this machine: the network-peer case is not exercised");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_peer_needs_the_token_to_manage_and_none_to_call() {
    let Some(ip) = non_loopback_ip() else {
        return no_address();
    };
    let stub = StubWorker::start("a", &[]);
    for token in [None, Some(TOKEN)] {
        let mut cfg = config("rr", &[&stub]);
        if token.is_some() {
            cfg = with_token(cfg, false);
        }
        let balancer = Balancer::start_on(TcpListener::bind((ip, 0)).unwrap(), None, cfg);
        let peer = client_from(ip);
        let url = |path: &str| format!("{}{path}", balancer.url);
        // Data and read-only routes stay open.
        for path in ["/execute?name=W1", "/health", "/1/lb/nodes", "/status"] {
            let (status, body) = call(&peer, reqwest::Method::GET, &url(path), None, None).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
        let node = r#"{"node":"http://127.0.0.1:9"}"#.to_string();
        let management = [
            (reqwest::Method::GET, "/configure?T=4", None),
            (reqwest::Method::GET, "/clear", None),
            (reqwest::Method::GET, "/prepare", None),
            (reqwest::Method::PUT, "/1/lb/nodes", Some(node.as_str())),
            (reqwest::Method::DELETE, "/1/lb/nodes", Some(node.as_str())),
        ];
        for (method, path, body) in &management {
            let (status, reply) = call(&peer, method.clone(), &url(path), None, *body).await;
            let expected = if token.is_some() { 401 } else { 403 };
            assert_eq!(status, expected, "{method} {path}: {reply}");
            assert_eq!(reply["Error"], true, "{reply}");
            assert!(reply["Message"].as_str().unwrap().contains("management"));
            let (status, _) = call(
                &peer,
                method.clone(),
                &url(path),
                Some("wrong-token-0123456789"),
                *body,
            )
            .await;
            assert_eq!(status, expected, "{method} {path} with a wrong token");
        }
        // Nothing changed: the node list is the one configured.
        assert_eq!(balancer.node_states().await.len(), 1);
        assert_eq!(stub.stats().await["clear"], 0);
        if token.is_some() {
            for (method, path, body) in &management {
                let (status, reply) =
                    call(&peer, method.clone(), &url(path), Some(TOKEN), *body).await;
                assert_eq!(status, 200, "{method} {path}: {reply}");
            }
            assert_eq!(stub.stats().await["clear"], 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_peers_manage_freely_unless_the_token_is_required() {
    let stub = StubWorker::start("a", &[]);
    let open = Balancer::start(with_token(config("rr", &[&stub]), false));
    let (status, reply) = call(
        &client(),
        reqwest::Method::GET,
        &format!("{}/clear", open.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{reply}");

    let strict = Balancer::start(with_token(config("rr", &[&stub]), true));
    let url = |path: &str| format!("{}{path}", strict.url);
    let (status, reply) = call(&client(), reqwest::Method::GET, &url("/clear"), None, None).await;
    assert_eq!(status, 401, "{reply}");
    assert!(
        reply["Message"].as_str().unwrap().contains("token"),
        "{reply}"
    );
    let response = client().get(url("/configure")).send().await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer",
        "a 401 names its scheme"
    );
    let (status, _) = call(
        &client(),
        reqwest::Method::GET,
        &url("/clear"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &client(),
        reqwest::Method::GET,
        &url("/execute?name=W1"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "calls need no token");
    assert_eq!(stub.stats().await["clear"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fan_out_carries_the_token_to_workers_that_need_it() {
    let Some(ip) = non_loopback_ip() else {
        return no_address();
    };
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    // A worker on the network address, which needs the token there.
    let stub = StubWorker::start(
        "a",
        &[
            "--host",
            &ip.to_string(),
            "--mgmt-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let with = Balancer::start(with_token(config("rr", &[&stub]), false));
    for path in ["/clear", "/prepare", "/configure?container_pool_num=2"] {
        let (status, reply) = call(
            &client(),
            reqwest::Method::GET,
            &format!("{}{path}", with.url),
            None,
            None,
        )
        .await;
        assert_eq!(status, 200, "{path}: {reply}");
    }
    let stats = stub.stats().await;
    assert_eq!(
        (stats["clear"].as_u64(), stats["prepare"].as_u64()),
        (Some(1), Some(1))
    );
    // A balancer without the token is refused by that worker, and says so.
    let without = Balancer::start(config("rr", &[&stub]));
    let (status, reply) = call(
        &client(),
        reqwest::Method::GET,
        &format!("{}/clear", without.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 502, "{reply}");
    assert_eq!(reply["nodes"][0]["status"], 401, "{reply}");
}

/// The binary with `--mgmt-listen`: management there only; data routes on
/// the data port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_management_listener_takes_the_management_routes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_load-balancer"))
        .args([
            "rr",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--fake-delay-ms",
            "1",
            "--mgmt-listen",
            "127.0.0.1:0",
        ])
        .env_remove(protocol::mgmt::TOKEN_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let data = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let management = banner
        .split("management on ")
        .nth(1)
        .and_then(|rest| rest.split([')', ',']).next())
        .unwrap_or_else(|| panic!("no management address in {banner:?}"))
        .to_string();
    assert!(management.starts_with("http://127.0.0.1:"), "{banner}");
    let (status, reply) = call(
        &client(),
        reqwest::Method::GET,
        &format!("{data}/configure?lb=ll"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 403, "{reply}");
    assert!(
        reply["Message"]
            .as_str()
            .unwrap()
            .contains(&management[7..]),
        "{reply}"
    );
    let (status, reply) = call(
        &client(),
        reqwest::Method::GET,
        &format!("{management}/configure?lb=ll"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = call(
        &client(),
        reqwest::Method::GET,
        &format!("{data}/execute?name=W1"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["LoadBalancingInfo"]["Algorithm"], "ll");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_management_settings_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    for (args, needle) in [
        (vec!["--mgmt-require-token"], "needs a token".to_string()),
        (
            vec!["--mgmt-token-file", short.to_str().unwrap()],
            short.display().to_string(),
        ),
        (
            vec!["--mgmt-token-file", "/nonexistent/token"],
            "/nonexistent/token".to_string(),
        ),
        (vec!["--node-allow", "10.0.0.0/99"], "prefix".to_string()),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_load-balancer"))
            .args(["rr", "1", "--host", "127.0.0.1", "--port", "0"])
            .args(&args)
            .env_remove(protocol::mgmt::TOKEN_ENV)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&needle), "{args:?}: {stderr}");
    }
}

/// A service that is not a worker: answers every request with 200 and a
/// body of its own, then closes.
fn internal_service() -> (
    String,
    std::thread::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::spawn(move || {
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let body = "SECRET internal page";
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    });
    (url, thread, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_make_the_balancer_relay_another_services_page() {
    let stub = StubWorker::start("a", &[]);
    let (service, thread, stop) = internal_service();
    let mut cfg = config("rr", &[&stub]);
    cfg.health.interval_ms = 100;
    let balancer = Balancer::start(cfg);
    let url = |path: &str| format!("{}{path}", balancer.url);
    let add = format!(r#"{{"node":"{service}/"}}"#);
    let (status, reply) = call(
        &client(),
        reqwest::Method::PUT,
        &url("/1/lb/nodes"),
        None,
        Some(&add),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    // Its /health answers 200: it comes online, and /configure calls it.
    wait_for("the service online", || async {
        balancer
            .node_states()
            .await
            .get(&service)
            .and_then(|s| s.as_str())
            == Some("online")
    })
    .await;
    let response = client()
        .get(url("/configure?container_pool_num=2"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("SECRET"), "relayed: {text}");
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        reply[&service], "status 200, 20 bytes, not a worker's reply",
        "{reply}"
    );
    assert_eq!(reply[&stub.url]["Message"], "configure changed", "{reply}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_urls_are_checked_strictly_and_spelled_once() {
    let stub = StubWorker::start("a", &[]);
    let port = stub.port;
    let balancer = Balancer::start(config("rr", &[&stub]));
    let url = format!("{}/1/lb/nodes", balancer.url);
    for (body, expected) in [
        // The configured node under other spellings.
        (format!(r#"{{"node":"http://localhost:{port}/"}}"#), 409),
        (format!(r#"{{"node":"HTTP://127.0.0.1:{port}"}}"#), 409),
        (
            format!(r#"{{"node":"http://[::ffff:127.0.0.1]:{port}"}}"#),
            409,
        ),
        (format!(r#"{{"node":"http://u:p@127.0.0.1:{port}"}}"#), 400),
        (
            format!(r#"{{"node":"http://127.0.0.1:{port}/admin"}}"#),
            400,
        ),
        (format!(r#"{{"node":"http://127.0.0.1:{port}?x=1"}}"#), 400),
        (r#"{"node":"http://::1:8222"}"#.to_string(), 400),
        (r#"{"node":"http://127.1:8222"}"#.to_string(), 400),
        (r#"{"node":"ftp://w1:21"}"#.to_string(), 400),
        (format!(r#"["http://127.0.0.1:{port}"]"#), 400),
    ] {
        let (status, reply) = call(&client(), reqwest::Method::PUT, &url, None, Some(&body)).await;
        assert_eq!(status, expected, "{body}: {reply}");
        assert_eq!(reply["Error"], true, "{reply}");
    }
    assert_eq!(balancer.node_states().await.len(), 1);

    // An allow-list: a node elsewhere is refused, one on it is taken.
    let mut cfg = config("rr", &[&stub]);
    cfg.node_allow = vec!["10.0.0.0/8".parse().unwrap()];
    let fenced = Balancer::start(cfg);
    let other = StubWorker::start("b", &[]);
    let body = format!(r#"{{"node":"{}"}}"#, other.url);
    let (status, reply) = call(
        &client(),
        reqwest::Method::PUT,
        &format!("{}/1/lb/nodes", fenced.url),
        None,
        Some(&body),
    )
    .await;
    assert_eq!(status, 403, "{reply}");
    assert!(
        reply["Message"].as_str().unwrap().contains("10.0.0.0/8"),
        "{reply}"
    );
    let mut cfg = config("rr", &[&stub]);
    cfg.node_allow = vec!["127.0.0.0/8".parse().unwrap()];
    let loopback_only = Balancer::start(cfg);
    let (status, reply) = call(
        &client(),
        reqwest::Method::PUT,
        &format!("{}/1/lb/nodes", loopback_only.url),
        None,
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_and_its_address_are_one_node() {
    use std::net::ToSocketAddrs;
    let stub = StubWorker::start("a", &[]);
    let balancer = Balancer::start(config("rr", &[&stub]));
    let url = format!("{}/1/lb/nodes", balancer.url);
    // The machine's own name, and the address it resolves to (its
    // /etc/hosts line on these machines). Nothing needs to listen there:
    // registering does not call the node.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the machine's host name")
        .trim()
        .to_string();
    let addr = (host.as_str(), 9)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("{host} must resolve for this test: {e}"))
        .next()
        .unwrap_or_else(|| panic!("{host} resolves to no address"));
    let by_ip = match addr.ip().to_canonical() {
        std::net::IpAddr::V4(ip) => format!("http://{ip}:41999"),
        std::net::IpAddr::V6(ip) => format!("http://[{ip}]:41999"),
    };
    let by_name = format!("http://{host}:41999");
    assert_ne!(by_ip, by_name, "{host} is an address, not a name");
    let nodes = |method: reqwest::Method, node: &str| {
        let (url, body) = (url.clone(), format!(r#"{{"node":"{node}"}}"#));
        async move { call(&client(), method, &url, None, Some(&body)).await }
    };
    let (status, reply) = nodes(reqwest::Method::PUT, &by_ip).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = nodes(reqwest::Method::PUT, &by_name).await;
    assert_eq!(status, 409, "a second name for {by_ip}: {reply}");
    let message = reply["Message"].as_str().unwrap();
    assert!(
        message.contains(&by_ip),
        "names the registered node: {message}"
    );
    // Once the first is gone, the name may be registered.
    let (status, reply) = nodes(reqwest::Method::DELETE, &by_ip).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = nodes(reqwest::Method::PUT, &by_name).await;
    assert_eq!(status, 200, "{reply}");
    assert!(balancer.node_states().await.contains_key(&by_name));
}
