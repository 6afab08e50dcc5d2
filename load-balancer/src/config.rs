//! The balancer's configuration: one struct for the CLI, the config file and
//! the `GET /status` reply.
//!
//! As in HotFunctions (Prev/HotFunctions, `load_balancer/main.go`), the
//! worker list is a JSON array of base URLs (`nodes.config.json`, e.g.
//! `["http://10.0.0.2:8222", "http://10.0.0.3:8222"]`); nodes get ids
//! 0, 1, 2, ... in list order. Fake mode (`fake_nodes` > 0) runs without
//! workers: every call sleeps `fake_delay_ms` (default 4000 ms, the
//! original's fixed 4 s) and answers like the original's fake mode.
//!
//! Health checks (after HAProxy's `inter`/`timeout check`/`fall`/`rise`):
//! `GET /health` on every worker each `interval_ms` (default 1000) with a
//! `timeout_ms` budget (default 1000); `fall` consecutive failures (default
//! 2) take an online node offline, `rise` consecutive successes (default 1)
//! bring an offline node back.
//!
//! A node that answers calls is alive (passive health, as HAProxy's
//! `observe layer7`): a successful call reply since the previous check
//! round counts as a passed check, so a node goes offline only after
//! `fall` rounds in a row in which its check failed *and* no call on it
//! succeeded ([`crate::cluster::Cluster::health_result`]). A busy worker
//! whose `/health` answers late stays online while it serves calls.
//!
//! Fan-out routes (`/clear`, `/configure`, `/prepare`, forwarded to every
//! online worker at once) give each worker a budget: `fanout_timeout_ms`
//! (default 10 s) for `/clear` and `/configure`, `prepare_timeout_ms`
//! (default 10 min: a worker's `/prepare` builds or stages every
//! function's image, which takes minutes with Docker) for `/prepare`.
//!
//! Scheduler parameters are the registry's [`ParamSet`]
//! (`policy::scheduler::registry`): valid by construction, serialized in
//! the registry's key language (`{"T": 8, ..., "seed": 0}`, or `"ch.T"`
//! where algorithms differ), and checked there when read.

use serde::{Deserialize, Serialize};

use crate::cluster::NodeResources;
use policy::scheduler::{NodeInfo, ParamSet};
use protocol::mgmt::ManagementConfig;

/// Health-check settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Time between two checks of a node, in ms (default 1000).
    pub interval_ms: u64,
    /// Budget of one check, in ms (default 1000).
    pub timeout_ms: u64,
    /// Consecutive failed checks that take an online node offline (default 2).
    pub fall: u32,
    /// Consecutive passed checks that bring an offline node online (default 1).
    pub rise: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1000,
            timeout_ms: 1000,
            fall: 2,
            rise: 1,
        }
    }
}

/// Everything the balancer needs to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalancerConfig {
    /// Algorithm name (`rr`, `ll`, `ch`/`hash`, `pasch`, `ours`, `tradeoff`).
    pub algorithm: String,
    /// Worker base URLs (`http://host:port`), ids 0.. in this order.
    pub nodes: Vec<String>,
    /// Number of fake nodes; > 0 runs without workers (default 0).
    pub fake_nodes: u32,
    /// Sleep of one fake call, in ms (default 4000).
    pub fake_delay_ms: u64,
    pub health: HealthConfig,
    /// Every algorithm's parameters and the run's seed (the registry's
    /// `T`, `T1`, `T2`, `T3`, `ALPHA`, `BETA`, `seed`, ...).
    pub params: ParamSet,
    /// Capacity of each configured (and fake) node, told to the scheduler
    /// (default 64; a node added at run time may give its own).
    pub node_capacity: u32,
    /// Cores of each configured node, told to the scheduler (default 2).
    pub node_cores: u32,
    /// Memory of each configured node for function instances, in MB, told
    /// to the scheduler (default 2048).
    pub node_memory_mb: u32,
    /// Budget for opening a connection to a worker, in ms (default 1000).
    /// A call itself has no time limit: functions may run for minutes.
    pub connect_timeout_ms: u64,
    /// HTTP server threads (default: available cores).
    pub threads: usize,
    /// Budget of one worker's `/clear` or `/configure` in a fan-out, in ms
    /// (default 10 000).
    pub fanout_timeout_ms: u64,
    /// Budget of one worker's `/prepare` in a fan-out, in ms (default
    /// 600 000: building every image may take minutes).
    pub prepare_timeout_ms: u64,
    /// Start with no worker nodes: they come later with `PUT /1/lb/nodes`
    /// (e.g. workers started with `worker-front start --join`). Without
    /// it, no nodes is an error (a forgotten `--nodes`).
    pub start_empty: bool,
    /// Who may use the management routes (`protocol::mgmt`); the token,
    /// if any, is also sent with every fan-out call to the workers.
    pub mgmt: ManagementConfig,
    /// Networks a node added at run time (`PUT /1/lb/nodes`) must be on
    /// (empty: any). Nodes given at start are the operator's own and are
    /// not checked.
    pub node_allow: Vec<NodeNetwork>,
    /// The SlimFaas routes' queue: its SQLite file, the per-function
    /// settings file, the results' retention ([`crate::slim`]).
    pub queue: crate::slim::QueueConfig,
    /// Count calls for `GET /metrics` (default true; `--no-metrics` turns
    /// it off, and `/metrics` is then a 404).
    pub metrics: bool,
    /// Where users' own functions (`POST /deploy`) are kept across
    /// restarts (locked while the balancer runs; default: a temporary
    /// directory removed at exit). [`crate::functions`].
    pub data_dir: Option<std::path::PathBuf>,
}

/// Default of [`BalancerConfig::fanout_timeout_ms`].
pub const DEFAULT_FANOUT_TIMEOUT_MS: u64 = 10_000;
/// Default of [`BalancerConfig::prepare_timeout_ms`].
pub const DEFAULT_PREPARE_TIMEOUT_MS: u64 = 600_000;

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            algorithm: "rr".into(),
            nodes: Vec::new(),
            fake_nodes: 0,
            fake_delay_ms: 4000,
            health: HealthConfig::default(),
            params: ParamSet::default(),
            node_capacity: NodeInfo::DEFAULT_CAPACITY,
            node_cores: NodeInfo::DEFAULT_CORES,
            node_memory_mb: NodeInfo::DEFAULT_MEMORY_MB,
            connect_timeout_ms: 1000,
            threads: std::thread::available_parallelism().map_or(2, usize::from),
            fanout_timeout_ms: DEFAULT_FANOUT_TIMEOUT_MS,
            prepare_timeout_ms: DEFAULT_PREPARE_TIMEOUT_MS,
            start_empty: false,
            mgmt: ManagementConfig::default(),
            node_allow: Vec::new(),
            queue: crate::slim::QueueConfig::default(),
            metrics: true,
            data_dir: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: expected a JSON array of worker URLs: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("bad worker URL {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("worker URL {0:?} is listed twice")]
    DuplicateNode(String),
    #[error(transparent)]
    UnknownAlgorithm(#[from] policy::scheduler::UnknownAlgorithm),
    #[error("no worker nodes: give --nodes, --config, a fake_nodes count, or --start-empty (workers then join with PUT /1/lb/nodes)")]
    NoNodes,
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Management(#[from] protocol::mgmt::ManagementError),
    #[error("{what} is {value}, outside its bounds {min}..={max}")]
    OutOfRange {
        what: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}

/// The bounds of every count, size and duration the balancer's flags and
/// configuration set (issue 13): beyond them a start is a clear error, never
/// an allocation or a wait sized by the value (`load-balancer ll
/// 4294967295` asked for 103 GB of fake nodes).
pub mod limits {
    /// Nodes at start: worker URLs plus fake nodes.
    pub const MAX_NODES: u64 = 10_000;
    /// Any duration in ms (health interval and timeout, connect timeout,
    /// fake call, fan-out timeouts): one hour.
    pub const MAX_MS: u64 = 3_600_000;
    /// Health fall and rise counts.
    pub const MAX_HEALTH_COUNT: u64 = 1_000;
    /// HTTP server threads (the worker's bound too).
    pub const MAX_THREADS: u64 = protocol::limits::MAX_THREADS;
    /// Capacity told to the scheduler per node.
    pub const MAX_NODE_CAPACITY: u64 = 1_000_000;
    /// Cores per node.
    pub const MAX_NODE_CORES: u64 = 4_096;
    /// Memory per node, MB (16 TB; the worker's bound too).
    pub const MAX_NODE_MEMORY_MB: u64 = protocol::limits::MAX_NODE_MEMORY_MB;
    /// Networks in `--node-allow`.
    pub const MAX_NODE_NETWORKS: u64 = 1_000;
}

/// Checks a worker base URL strictly and returns its canonical form,
/// `http://<host>:<port>`, so that two spellings of one node compare equal
/// (issue 13: a node must not be registered twice, nor be a URL that
/// carries more than a host and a port).
///
/// Accepted: `http://host[:port][/]`, the scheme in any case. Refused: any
/// other scheme, user info (`user@`), a path other than `/`, a query, a
/// fragment, an unbracketed IPv6 address, a port outside 1-65535, and a
/// host that looks numeric without being a dotted-quad IPv4 address
/// (`127.1`, `0x7f.0.0.1`, `2130706433`: spellings some resolvers read as
/// IPv4 addresses). Canonical form: the host in lower case without a final
/// dot; `localhost` as `127.0.0.1` (RFC 6761: always loopback); IPv6
/// addresses bracketed in their shortest form, IPv4-mapped ones as IPv4;
/// the port always written (80 when absent, HTTP's default).
///
/// Other host names are kept as written: two names of one address are
/// not recognised (that needs DNS, which may change; register nodes by
/// address where it matters).
pub fn normalize_node_url(url: &str) -> Result<String, ConfigError> {
    let bad = |reason| ConfigError::BadUrl {
        url: url.chars().take(200).collect(),
        reason,
    };
    let trimmed = url.trim();
    if trimmed.len() > MAX_NODE_URL_BYTES {
        return Err(bad("longer than 2048 bytes"));
    }
    let Some(rest) = trimmed
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &trimmed[7..])
    else {
        return Err(bad(
            "must start with http:// (the only scheme workers speak)",
        ));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(bad("user info (user@host) is not allowed"));
    }
    if authority.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '"' | '\\' | '%')
    }) {
        return Err(bad(
            "expected http://host[:port] without a path, query or fragment",
        ));
    }
    if authority.is_empty() {
        return Err(bad("missing host"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inside, after)) = bracketed.split_once(']') else {
            return Err(bad("unclosed [ in an IPv6 address"));
        };
        let ip: std::net::Ipv6Addr = inside
            .parse()
            .map_err(|_| bad("not an IPv6 address inside [...]"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("expected :port after ]"))?,
            ),
        };
        let host = match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{ip}]"),
        };
        (host, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(bad(
                "an IPv6 address must be in brackets: http://[::1]:8222",
            ));
        }
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let host = if host == "localhost" {
            "127.0.0.1".to_string()
        } else if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
            ip.to_string()
        } else if looks_numeric(&host) {
            return Err(bad("a numeric host must be a dotted-quad IPv4 address"));
        } else if !host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }) {
            return Err(bad("not a host name (letters, digits, '-', '_' and dots)"));
        } else {
            host
        };
        (host, port)
    };
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(bad("port is not a number in 1..65535")),
        },
    };
    Ok(format!("http://{host}:{port}"))
}

/// Longest node URL accepted.
pub const MAX_NODE_URL_BYTES: usize = 2048;

/// A host of digits, dots and hex markers only (`127.1`, `0x7f.1`).
fn looks_numeric(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    let numeric = |label: &str| {
        let digits = label
            .strip_prefix("0x")
            .map_or(label, |hex| hex)
            .bytes()
            .all(|b| b.is_ascii_hexdigit());
        !label.is_empty()
            && (label.bytes().all(|b| b.is_ascii_digit()) || (label.starts_with("0x") && digits))
    };
    numeric(last)
}

/// A network nodes may be on (`--node-allow 10.0.0.0/8,192.168.1.7`): an
/// address and a prefix length (a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeNetwork {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl NodeNetwork {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for NodeNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                format!("{s:?} is not an address or CIDR network (10.0.0.0/8, fd00::/8)")
            })?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl TryFrom<String> for NodeNetwork {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<NodeNetwork> for String {
    fn from(n: NodeNetwork) -> String {
        n.to_string()
    }
}

impl std::fmt::Display for NodeNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Reads a `nodes.config.json` (a JSON array of worker URLs), with or
/// without a UTF-8 byte-order mark.
pub fn load_nodes_file(path: &std::path::Path) -> Result<Vec<String>, ConfigError> {
    let shown = path.display().to_string();
    let text = protocol::text::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    // A byte-order mark (as some editors write) is not JSON: skip it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    serde_json::from_str::<Vec<String>>(text).map_err(|e| ConfigError::Parse {
        path: shown,
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

impl BalancerConfig {
    /// The resources of a configured node, or of an added one that gives
    /// none of its own.
    pub fn node_resources(&self, own: crate::action::NodeOverrides) -> NodeResources {
        NodeResources {
            capacity: own.capacity.unwrap_or(self.node_capacity),
            cores: own.cores.unwrap_or(self.node_cores),
            memory_mb: own.memory_mb.unwrap_or(self.node_memory_mb),
        }
    }

    /// Validates the configuration and normalizes the node URLs.
    pub fn validated(mut self) -> Result<Self, ConfigError> {
        self.mgmt = self.mgmt.validated()?;
        if self.node_allow.len() as u64 > limits::MAX_NODE_NETWORKS {
            return Err(ConfigError::OutOfRange {
                what: "node_allow networks",
                value: self.node_allow.len() as u64,
                min: 0,
                max: limits::MAX_NODE_NETWORKS,
            });
        }
        self.algorithm = policy::scheduler::canonical_name(&self.algorithm)?.to_string();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for url in &self.nodes {
            let url = normalize_node_url(url)?;
            if nodes.contains(&url) {
                return Err(ConfigError::DuplicateNode(url));
            }
            nodes.push(url);
        }
        self.nodes = nodes;
        if self.fake_nodes == 0 && self.nodes.is_empty() && !self.start_empty {
            return Err(ConfigError::NoNodes);
        }
        if self.fake_nodes > 0 && !self.nodes.is_empty() {
            return Err(ConfigError::Invalid(
                "fake mode (fake_nodes > 0) takes no worker URLs",
            ));
        }
        let nodes = self.nodes.len() as u64 + u64::from(self.fake_nodes);
        let checks: [(&'static str, u64, u64, u64); 13] = [
            (
                "nodes (worker URLs and fake nodes)",
                nodes,
                u64::from(!self.start_empty),
                limits::MAX_NODES,
            ),
            ("fake_delay_ms", self.fake_delay_ms, 0, limits::MAX_MS),
            (
                "health interval_ms",
                self.health.interval_ms,
                1,
                limits::MAX_MS,
            ),
            (
                "health timeout_ms",
                self.health.timeout_ms,
                1,
                limits::MAX_MS,
            ),
            (
                "health fall",
                self.health.fall.into(),
                1,
                limits::MAX_HEALTH_COUNT,
            ),
            (
                "health rise",
                self.health.rise.into(),
                1,
                limits::MAX_HEALTH_COUNT,
            ),
            ("threads", self.threads as u64, 1, limits::MAX_THREADS),
            (
                "node_capacity",
                self.node_capacity.into(),
                1,
                limits::MAX_NODE_CAPACITY,
            ),
            (
                "node_cores",
                self.node_cores.into(),
                1,
                limits::MAX_NODE_CORES,
            ),
            (
                "node_memory_mb",
                self.node_memory_mb.into(),
                1,
                limits::MAX_NODE_MEMORY_MB,
            ),
            (
                "connect_timeout_ms",
                self.connect_timeout_ms,
                1,
                limits::MAX_MS,
            ),
            (
                "fanout_timeout_ms",
                self.fanout_timeout_ms,
                1,
                limits::MAX_MS,
            ),
            (
                "prepare_timeout_ms",
                self.prepare_timeout_ms,
                1,
                limits::MAX_MS,
            ),
        ];
        for (what, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::OutOfRange {
                    what,
                    value,
                    min,
                    max,
                });
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_file_with_a_byte_order_mark_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes.config.json");
        std::fs::write(&path, "\u{feff}[\"http://a:1\"]").unwrap();
        assert_eq!(load_nodes_file(&path).unwrap(), ["http://a:1"]);
    }

    #[test]
    fn urls_are_normalized_or_rejected() {
        for (given, canonical) in [
            ("http://10.0.0.2:8222/", "http://10.0.0.2:8222"),
            (" http://w1 ", "http://w1:80"),
            ("HTTP://W1.Example.:8222", "http://w1.example:8222"),
            ("http://localhost:8222", "http://127.0.0.1:8222"),
            ("http://LOCALHOST.:08222/", "http://127.0.0.1:8222"),
            ("http://[::1]:8222", "http://[::1]:8222"),
            ("http://[0:0:0::1]:8222/", "http://[::1]:8222"),
            ("http://[::ffff:127.0.0.1]:8222", "http://127.0.0.1:8222"),
            ("http://worker_1:8222", "http://worker_1:8222"),
        ] {
            assert_eq!(normalize_node_url(given).unwrap(), canonical, "{given}");
        }
        for bad in [
            "10.0.0.2:8222",
            "https://w1",
            "http://",
            "http:///",
            "http://w1/execute",
            "http://w1:x",
            "http://w1:0",
            "http://w1:65536",
            "http://w1:+80",
            "http://w1:",
            "http://user:pw@w1:8222",
            "http://@w1:8222",
            "http://w1:8222?x=1",
            "http://w1:8222#f",
            "http://w1:8222//",
            "http://::1:8222",
            "http://[::1",
            "http://[::1]x",
            "http://[nope]:1",
            "http://127.1:8222",
            "http://0x7f.0.0.1:8222",
            "http://2130706433:8222",
            "http://w%31:8222",
            "http://w1..x:8222",
            "http://w 1:8222",
            "file:///etc/passwd",
        ] {
            assert!(normalize_node_url(bad).is_err(), "{bad}");
        }
        assert!(normalize_node_url(&format!("http://{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn node_networks_parse_and_match() {
        let net: NodeNetwork = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.2.3.4".parse().unwrap()));
        assert!(net.contains("::ffff:10.2.3.4".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(!net.contains("fd00::1".parse().unwrap()));
        let host: NodeNetwork = "192.0.2.7".parse().unwrap();
        assert!(host.contains("192.0.2.7".parse().unwrap()));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        let any: NodeNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("203.0.113.9".parse().unwrap()));
        let v6: NodeNetwork = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd00::2".parse().unwrap()));
        assert!(!v6.contains("fe80::2".parse().unwrap()));
        for bad in ["10.0.0.0/33", "fd00::/129", "nope", "10.0.0.0/x", ""] {
            assert!(bad.parse::<NodeNetwork>().is_err(), "{bad}");
        }
        assert_eq!(net.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn nodes_file_errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("lb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nodes.config.json");
        std::fs::write(&path, "[\"http://a:1\",\n 42]").unwrap();
        let err = load_nodes_file(&path).unwrap_err().to_string();
        assert!(err.contains("nodes.config.json:2:"), "{err}");
        std::fs::write(&path, r#"["http://a:1", "http://b:2"]"#).unwrap();
        assert_eq!(load_nodes_file(&path).unwrap().len(), 2);
        assert!(load_nodes_file(&dir.join("missing.json")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validation_catches_bad_configs() {
        let ok = BalancerConfig {
            algorithm: "hash".into(),
            nodes: vec!["http://a:1/".into()],
            ..Default::default()
        }
        .validated()
        .unwrap();
        assert_eq!(ok.algorithm, "ch");
        assert_eq!(ok.nodes, vec!["http://a:1".to_string()]);

        let dup = BalancerConfig {
            nodes: vec!["http://a:1".into(), "http://a:1/".into()],
            ..Default::default()
        };
        assert!(matches!(
            dup.validated(),
            Err(ConfigError::DuplicateNode(_))
        ));
        assert!(matches!(
            BalancerConfig::default().validated(),
            Err(ConfigError::NoNodes)
        ));
        let empty = BalancerConfig {
            start_empty: true,
            ..Default::default()
        };
        assert!(empty.validated().unwrap().nodes.is_empty());
        let unknown = BalancerConfig {
            algorithm: "nope".into(),
            fake_nodes: 1,
            ..Default::default()
        };
        assert!(matches!(
            unknown.validated(),
            Err(ConfigError::UnknownAlgorithm(_))
        ));
    }

    #[test]
    fn params_read_back_through_the_registry() {
        let config = BalancerConfig {
            fake_nodes: 2,
            params: ParamSet::from_settings([("ch.T", "4")]).unwrap(),
            ..Default::default()
        };
        let json = serde_json::to_string(&config).unwrap();
        assert!(
            json.contains(r#""params":{"ch.T":4,"pasch.T":8,"#),
            "{json}"
        );
        let back: BalancerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.params, config.params);
        let bad = json.replace(r#""ch.T":4"#, r#""ch.T":0"#);
        let err = serde_json::from_str::<BalancerConfig>(&bad).unwrap_err();
        assert!(err.to_string().contains("ch.T"), "{err}");
        let unknown = json.replace(r#""ch.T":4"#, r#""ch.X":4"#);
        assert!(serde_json::from_str::<BalancerConfig>(&unknown).is_err());
    }
}
