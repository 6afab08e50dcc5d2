//! A compose cluster of the testbed (`deploy/compose/docker-compose.yml`)
//! owned by one test: its images (built by `deploy/build-images.sh` with a
//! tag and label of its own), its compose project (containers, network),
//! all removed when the [`Cluster`] is dropped, pass or fail. Plus what the
//! deploy tests share: the balancer's members (`GET /1/lb/nodes`), waits
//! on them with a deadline, and a replay run in the background.
//!
//! Nothing here sleeps to synchronise: every wait polls an observable
//! state (the balancer's members, a child's exit) until a deadline.

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, workspace_root};

/// The management token of every test cluster.
pub const TOKEN: &str = "compose-test-token-0123456789";

/// The compose file, relative to the workspace root.
pub const COMPOSE_FILE: &str = "deploy/compose/docker-compose.yml";

/// The balancer's members: node URL -> `online` / `offline`.
pub type Members = BTreeMap<String, String>;

/// A compose project, its images and the settings every `docker-compose`
/// call needs; `down` and `rmi` when dropped.
pub struct Cluster {
    pub project: String,
    pub tag: String,
    /// The balancer's port published on 127.0.0.1.
    pub port: u16,
    /// Environment of every `docker-compose` call (the file's settings).
    pub env: Vec<(String, String)>,
    /// Override files given after [`COMPOSE_FILE`] (relative to the
    /// workspace root), e.g. the Docker runtime's.
    pub overrides: Vec<String>,
}

impl Cluster {
    /// A cluster named after `name` and this process, with the images
    /// built (`deploy/build-images.sh --tag test-<name>-<pid> --label
    /// hotfunctions.test=<project>`). `settings` override the defaults
    /// (`HF_ALGORITHM` rr, `HF_TIME_SCALE` 0.05, `HF_PACKAGE_SCALE` 0.25,
    /// `HF_WORKER_CPUS` 0.5, `HF_WORKER_MEMORY` 512m). The guard exists
    /// before the build, so a failed build is cleaned up too.
    pub fn build(name: &str, settings: &[(&str, &str)]) -> Self {
        let pid = std::process::id();
        let project = format!("hftest{name}{pid}");
        let tag = format!("test-{name}-{pid}");
        let port = free_port();
        let mut env: Vec<(String, String)> = [
            ("HF_ALGORITHM", "rr"),
            ("HF_TIME_SCALE", "0.05"),
            ("HF_PACKAGE_SCALE", "0.25"),
            ("HF_WORKER_CPUS", "0.5"),
            ("HF_WORKER_MEMORY", "512m"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in settings {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        env.push(("HF_TAG".into(), tag.clone()));
        env.push(("HF_MGMT_TOKEN".into(), TOKEN.into()));
        env.push(("HF_BALANCER_PORT".into(), port.to_string()));
        let cluster = Self {
            project,
            tag,
            port,
            env,
            overrides: Vec::new(),
        };
        build_images(&cluster.tag, &cluster.project);
        cluster
    }

    /// `docker-compose -f <file> -p <project> <args>`, which must succeed.
    pub fn compose(&self, args: &[&str]) -> Output {
        let out = self.try_compose(args);
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn try_compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .current_dir(workspace_root())
            .args(["-f", COMPOSE_FILE])
            .args(self.overrides.iter().flat_map(|f| ["-f", f.as_str()]))
            .args(["-p", &self.project])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("docker-compose runs")
    }

    /// `up -d --scale worker=N` (creates the balancer on first use).
    pub fn scale(&self, workers: u32) {
        self.compose(&["up", "-d", "--scale", &format!("worker={workers}")]);
    }

    /// The ids of `service`'s containers (running or not).
    pub fn containers(&self, service: &str) -> Vec<String> {
        let out = self.compose(&["ps", "-q", service]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The project's network (compose names it `<project>_testbed`).
    pub fn network(&self) -> String {
        format!("{}_testbed", self.project)
    }

    /// The balancer's URL from the host.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The balancer's members, or none while it does not answer.
    pub fn members(&self) -> Option<Members> {
        members(self.port)
    }

    /// Polls the members (every 50 ms) until `done` holds, at most
    /// `timeout`; returns them and the time it took. Panics with `what`
    /// and the last members seen at the deadline.
    pub fn wait_members(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Members) -> bool,
    ) -> (Members, Duration) {
        let start = Instant::now();
        let mut last = None;
        loop {
            if let Some(m) = self.members() {
                if done(&m) {
                    return (m, start.elapsed());
                }
                last = Some(m);
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: not within {timeout:?}; members {last:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (deadline 120 s) until the balancer has `n` members, all
    /// online.
    pub fn wait_online(&self, n: usize) -> Members {
        self.wait_members(
            &format!("{n} online members"),
            Duration::from_secs(120),
            |m| m.len() == n && online(m) == n,
        )
        .0
    }

    /// The worker container's node URL as it registers it
    /// (`http://<its address on the testbed network>:8222`).
    pub fn node_url(&self, container: &str) -> String {
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            self.network()
        );
        let out = docker(&["inspect", "--format", &format, container]);
        format!(
            "http://{}:8222",
            String::from_utf8_lossy(&out.stdout).trim()
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = self.try_compose(&["down", "--volumes", "--remove-orphans", "--timeout", "20"]);
        if !out.status.success() {
            eprintln!(
                "docker-compose down ({}): {}",
                self.project,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        remove_images(&self.tag);
    }
}

/// `deploy/build-images.sh --tag TAG --label hotfunctions.test=OWNER`,
/// which must print the three image names.
pub fn build_images(tag: &str, owner: &str) {
    let built = Command::new("bash")
        .current_dir(workspace_root())
        .args(["deploy/build-images.sh", "--tag", tag, "--label"])
        .arg(format!("hotfunctions.test={owner}"))
        .output()
        .expect("bash runs");
    assert!(
        built.status.success(),
        "build-images.sh: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let names = String::from_utf8_lossy(&built.stdout);
    assert_eq!(names.lines().count(), 3, "{names}");
}

/// Removes the three images tagged `tag` (what [`build_images`] made).
pub fn remove_images(tag: &str) {
    for role in ["load-balancer", "worker", "replayer"] {
        let _ = Command::new("docker")
            .args(["rmi", "--force", &format!("hotfunctions/{role}:{tag}")])
            .output();
    }
}

/// `docker <args>`, which must succeed.
pub fn docker(args: &[&str]) -> Output {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Members counted online.
pub fn online(m: &Members) -> usize {
    m.values().filter(|s| *s == "online").count()
}

/// `GET /1/lb/nodes` on 127.0.0.1:`port` (5 s budget): the members, or
/// none while the balancer does not answer.
pub fn members(port: u16) -> Option<Members> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /1/lb/nodes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let body = reply.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(
        v["nodes"]
            .as_object()?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect(),
    )
}

/// Writes a scenario of `events` calls, one every `gap_ms`, cycling
/// through `functions`, to `path` (`FunctionName,StartTimeMs` rows).
pub fn write_scenario(path: &Path, functions: &[&str], events: usize, gap_ms: f64) {
    let mut text = String::with_capacity(events * 12);
    for i in 0..events {
        let f = functions[i % functions.len()];
        text.push_str(&format!("{f},{}\n", (i as f64 * gap_ms).round() as u64));
    }
    std::fs::write(path, text).unwrap();
}

/// A `simulator replay` running in the background (killed and reaped if
/// dropped before it ends).
pub struct Replay {
    child: Option<Child>,
    stderr: PathBuf,
    pub log: PathBuf,
    pub summary: PathBuf,
    started: Instant,
}

/// What a finished replay left: its exit, stderr, log lines and summary.
pub struct Replayed {
    pub success: bool,
    pub stderr: String,
    /// The log's calls: (start ms, end ms, function, reply JSON).
    pub calls: Vec<(u64, u64, String, serde_json::Value)>,
    pub summary: serde_json::Value,
}

impl Replayed {
    /// Calls whose reply is an error (no `LoadBalancingInfo`).
    pub fn failed(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| c.3.get("LoadBalancingInfo").is_none())
            .count()
    }

    /// The node that served each successful call.
    pub fn node_of(call: &serde_json::Value) -> Option<&str> {
        call["LoadBalancingInfo"]["WorkerNodeUrl"].as_str()
    }
}

impl Replay {
    /// Starts `simulator replay <balancer> <scenario> <dir>/<name>.log`
    /// with the management token, no progress, a summary JSON, every
    /// failure allowed (`--max-failures 100%`: the tests count them) and a
    /// 60 s budget per call.
    pub fn start(balancer: &str, scenario: &Path, dir: &Path, name: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let summary = dir.join(format!("{name}.summary.json"));
        let stderr = dir.join(format!("{name}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_simulator"))
            .arg("replay")
            .arg(balancer)
            .arg(scenario)
            .arg(&log)
            .args(["--overwrite", "--progress", "off", "--max-failures", "100%"])
            .args(["--request-timeout", "60s", "--summary-json"])
            .arg(&summary)
            .env("HF_MGMT_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start the replay");
        Self {
            child: Some(child),
            stderr,
            log,
            summary,
            started: Instant::now(),
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Lines written to the log so far.
    pub fn lines_so_far(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Waits (polling every 100 ms) until the log has `n` lines, at most
    /// `timeout`.
    pub fn wait_lines(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.lines_so_far() < n {
            assert!(
                Instant::now() < deadline,
                "the replay logged {} < {n} lines in {timeout:?}",
                self.lines_so_far()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the end (killed after `timeout`) and reads what it left.
    pub fn finish(mut self, timeout: Duration) -> Replayed {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the replay did not end within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let calls = text
            .lines()
            .map(|l| {
                // `<date> <time> <start ms> <end ms> <function> <reply JSON>`
                let json = l.find('{').unwrap_or_else(|| panic!("no JSON: {l}"));
                let mut f = l[..json].split_whitespace().skip(2);
                let start = f.next().unwrap().parse().unwrap();
                let end = f.next().unwrap().parse().unwrap();
                let function = f.next().unwrap().to_string();
                let reply = serde_json::from_str(&l[json..]).unwrap();
                (start, end, function, reply)
            })
            .collect();
        let summary = std::fs::read_to_string(&self.summary)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        Replayed {
            success: status.success(),
            stderr,
            calls,
            summary,
        }
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
