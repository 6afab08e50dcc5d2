//! Self-registration with a balancer: `worker-front start --join URL`.
//!
//! The balancer's membership API is fnlb's (`PUT`/`DELETE /1/lb/nodes` with
//! `{"node": "<url>"}`, in the Fn project's fnlb). A joining worker:
//!
//! - registers its own URL (`--advertise-url`, else `http://<ip>:<port>`
//!   where `<ip>` is the local address this host uses to reach the
//!   balancer: the address the balancer can call back) with its cores and
//!   node memory, and retries every [`JoinConfig::interval`] until the
//!   balancer accepts it;
//! - keeps checking at that interval, and registers again when the
//!   balancer no longer lists it (the balancer restarted, or someone
//!   removed it): a `PUT` answered 409 means "already registered", which is
//!   the steady state;
//! - deregisters (`DELETE`) when it stops (SIGTERM or Ctrl-C), before it
//!   stops serving, so that the balancer sends it no new call while the
//!   calls in flight finish. A worker that dies without deregistering goes
//!   offline by the balancer's health check.
//!
//! - without `--advertise-url`, finds its address again every round
//!   (issue 16: a worker whose IP changes, e.g. a container reattached to
//!   a network, must not keep registering its old address): when the local
//!   address of the route to the balancer changed, it registers the new URL
//!   and then deregisters the old one, and keeps asking the balancer to
//!   drop an old URL, round after round, until it answers (at most
//!   [`MAX_STALE`] old URLs are remembered). The decision is the pure
//!   [`Membership`]; the requests and the route look-up are the edge.
//!
//! Every request carries the management token as `Authorization: Bearer`
//! when one is configured, and has a bounded time ([`REQUEST_TIMEOUT`]).
//! Only changes of state are logged (joined, lost, failing), not every
//! round.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Time allowed for one request to the balancer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Old URLs a worker keeps asking the balancer to drop (the oldest is
/// forgotten beyond it: the balancer's health check takes it offline).
pub const MAX_STALE: usize = 8;

/// Which URL a joined worker registers and which old ones it still has to
/// deregister: pure state, told what each round found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    current: String,
    /// Old URLs not yet dropped by the balancer, oldest first.
    stale: Vec<String>,
}

impl Membership {
    pub fn new(url: String) -> Self {
        Self {
            current: url,
            stale: Vec::new(),
        }
    }

    /// The URL to register now.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Old URLs to deregister, oldest first.
    pub fn stale(&self) -> &[String] {
        &self.stale
    }

    /// A round found this worker's address to be `found` (None: it could
    /// not be found this round, e.g. no route: the current URL stays).
    /// Returns whether the URL changed; the old one is then to be
    /// deregistered. Coming back to an old URL takes it off that list.
    pub fn found(&mut self, found: Option<&str>) -> bool {
        let Some(found) = found else {
            return false;
        };
        if found == self.current {
            return false;
        }
        let old = std::mem::replace(&mut self.current, found.to_string());
        self.stale.retain(|u| u != found);
        self.stale.push(old);
        if self.stale.len() > MAX_STALE {
            let excess = self.stale.len() - MAX_STALE;
            self.stale.drain(..excess);
        }
        true
    }

    /// The balancer no longer has `url` (deregistered, or unknown to it).
    pub fn dropped(&mut self, url: &str) {
        self.stale.retain(|u| u != url);
    }
}

/// Where the advertised URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Advertise {
    /// `--advertise-url`: never changes.
    Fixed,
    /// The local address of the route to the balancer (`host:port`), with
    /// the worker's own port: found again every round.
    Route {
        host: String,
        port: u16,
        own_port: u16,
    },
}

/// `http://<ip>:<port>` (brackets for IPv6).
fn url_of(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
    }
}

/// How a worker joins a balancer.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// The balancer's base URL, without a trailing `/`.
    pub balancer: String,
    /// This worker's URL as the balancer should call it, as found at start
    /// ([`JoinConfig::current_url`] is the one registered now).
    pub node_url: String,
    /// Cores and memory reported in the `PUT` body.
    pub cores: u32,
    pub memory_mb: u32,
    /// Bearer token for the balancer's management routes.
    pub token: Option<String>,
    /// Time between two membership checks (and registration retries).
    pub interval: Duration,
    advertise: Advertise,
    /// Shared by the clones (the joining task and the one that leaves).
    membership: Arc<Mutex<Membership>>,
}

/// A `--join` or `--advertise-url` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("--join {0:?}: expected http://HOST:PORT (the balancer's base URL)")]
    BadBalancer(String),
    #[error("--advertise-url {0:?}: expected http://HOST:PORT")]
    BadAdvertise(String),
    #[error("--join {url}: cannot find the local address that reaches {addr}: {source}")]
    NoRoute {
        url: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// `http://host[:port][/]` split into `host:port` (port 80 when absent).
fn authority(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, tail) = v6.split_once(']')?;
        let port = match tail {
            "" => 80,
            t => t.strip_prefix(':')?.parse().ok()?,
        };
        (host.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (rest.to_string(), 80),
        }
    };
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host, port))
}

impl JoinConfig {
    /// Checks `balancer` and `advertise`, and finds this worker's address
    /// when `advertise` is `None`: the local IP of the route to the
    /// balancer (a UDP `connect`, which sends nothing) and `port`.
    pub fn new(
        balancer: &str,
        advertise: Option<&str>,
        port: u16,
        cores: u32,
        memory_mb: u32,
        token: Option<String>,
    ) -> Result<Self, JoinError> {
        let (host, bport) =
            authority(balancer).ok_or_else(|| JoinError::BadBalancer(balancer.to_string()))?;
        let balancer_base = balancer.strip_suffix('/').unwrap_or(balancer).to_string();
        let (node_url, advertise) = match advertise {
            Some(a) => {
                authority(a).ok_or_else(|| JoinError::BadAdvertise(a.to_string()))?;
                (
                    a.strip_suffix('/').unwrap_or(a).to_string(),
                    Advertise::Fixed,
                )
            }
            None => {
                let ip = local_ip_towards(&host, bport).map_err(|source| JoinError::NoRoute {
                    url: balancer.to_string(),
                    addr: format!("{host}:{bport}"),
                    source,
                })?;
                let route = Advertise::Route {
                    host,
                    port: bport,
                    own_port: port,
                };
                (url_of(ip, port), route)
            }
        };
        Ok(Self {
            balancer: balancer_base,
            membership: Arc::new(Mutex::new(Membership::new(node_url.clone()))),
            node_url,
            cores,
            memory_mb,
            token,
            interval: Duration::from_secs(2),
            advertise,
        })
    }

    fn membership(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.membership
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The URL registered now (it changes when the worker's address does,
    /// without `--advertise-url`).
    pub fn current_url(&self) -> String {
        self.membership().current().to_string()
    }

    /// This worker's URL as found now (None: fixed, or no route now).
    async fn discover(&self) -> Option<String> {
        let Advertise::Route {
            host,
            port,
            own_port,
        } = &self.advertise
        else {
            return None;
        };
        let target = tokio::net::lookup_host((host.as_str(), *port))
            .await
            .ok()?
            .next()?;
        local_ip_of_route(target)
            .ok()
            .map(|ip| url_of(ip, *own_port))
    }

    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
    ) -> reqwest::RequestBuilder {
        let body = if method == reqwest::Method::DELETE {
            serde_json::json!({ "node": url })
        } else {
            serde_json::json!({
                "node": url,
                "cores": self.cores,
                "memory_mb": self.memory_mb,
            })
        };
        let mut r = client
            .request(method, format!("{}/1/lb/nodes", self.balancer))
            .timeout(REQUEST_TIMEOUT)
            .json(&body);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Registers once: `Ok(true)` when the balancer took the node now,
    /// `Ok(false)` when it already had it (409), `Err` with what went
    /// wrong otherwise.
    pub async fn register(&self, client: &reqwest::Client) -> Result<bool, String> {
        let url = self.current_url();
        let reply = self
            .request(client, reqwest::Method::PUT, &url)
            .send()
            .await
            .map_err(|e| format!("PUT {}/1/lb/nodes: {e}", self.balancer))?;
        let status = reply.status();
        match status.as_u16() {
            200..=299 => Ok(true),
            409 => Ok(false),
            _ => {
                let body = reply.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                Err(format!(
                    "PUT {}/1/lb/nodes: {status}: {}",
                    self.balancer,
                    body.trim()
                ))
            }
        }
    }

    /// Keeps this worker registered until the future is dropped.
    pub async fn keep_joined(self) {
        let client = reqwest::Client::new();
        let mut failing: Option<String> = None;
        let mut joined_once = false;
        loop {
            let found = self.discover().await;
            let moved = {
                let mut m = self.membership();
                let old = m.current().to_string();
                m.found(found.as_deref())
                    .then(|| (old, m.current().to_string()))
            };
            if let Some((old, new)) = moved {
                tracing::warn!(balancer = %self.balancer, %old, %new, "this worker's address changed: registering the new URL, deregistering the old one");
            }
            // The URL registered this round (not the one found at start).
            let node = self.current_url();
            match self.register(&client).await {
                Ok(fresh) => {
                    if fresh {
                        if joined_once {
                            tracing::warn!(balancer = %self.balancer, node = %node, "registered again (the balancer had lost this node)");
                        } else {
                            tracing::info!(balancer = %self.balancer, node = %node, "joined");
                        }
                        joined_once = true;
                    } else if !joined_once {
                        tracing::info!(balancer = %self.balancer, node = %node, "already registered");
                        joined_once = true;
                    }
                    failing = None;
                }
                Err(e) => {
                    if failing.as_deref() != Some(e.as_str()) {
                        tracing::warn!(node = %node, "joining: {e} (retrying every {:?})", self.interval);
                    }
                    failing = Some(e);
                }
            }
            // Old URLs, after the new one is in: the node is never absent.
            let stale = self.membership().stale().to_vec();
            for url in stale {
                if self.deregister(&client, &url).await.is_ok() {
                    tracing::info!(balancer = %self.balancer, node = %url, "old URL deregistered");
                    self.membership().dropped(&url);
                }
            }
            tokio::time::sleep(self.interval).await;
        }
    }

    /// Deregisters (bounded by [`REQUEST_TIMEOUT`]); a failure is logged,
    /// since the balancer's health check takes the node offline anyway.
    pub async fn leave(&self) {
        let client = reqwest::Client::new();
        let (current, stale) = {
            let m = self.membership();
            (m.current().to_string(), m.stale().to_vec())
        };
        for url in stale.iter().chain(std::iter::once(&current)) {
            match self.deregister(&client, url).await {
                Ok(()) => tracing::info!(balancer = %self.balancer, node = %url, "left"),
                Err(e) => tracing::warn!(balancer = %self.balancer, node = %url, "leaving: {e}"),
            }
        }
    }

    /// `DELETE` of `url`: Ok when the balancer no longer has it (2xx, or
    /// 404: it did not know it).
    async fn deregister(&self, client: &reqwest::Client, url: &str) -> Result<(), String> {
        match self
            .request(client, reqwest::Method::DELETE, url)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() || r.status().as_u16() == 404 => Ok(()),
            Ok(r) => Err(r.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The local address of the route to `host:port` (resolved), found with a
/// UDP socket's `connect` (no packet is sent).
fn local_ip_towards(host: &str, port: u16) -> std::io::Result<IpAddr> {
    use std::net::ToSocketAddrs as _;
    let target: SocketAddr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
    local_ip_of_route(target)
}

/// The local address of the route to `target` (no packet is sent).
fn local_ip_of_route(target: SocketAddr) -> std::io::Result<IpAddr> {
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(target)?;
    Ok(socket.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balancer_urls_are_checked() {
        assert_eq!(authority("http://lb:8111"), Some(("lb".into(), 8111)));
        assert_eq!(authority("http://lb:8111/"), Some(("lb".into(), 8111)));
        assert_eq!(authority("http://lb"), Some(("lb".into(), 80)));
        assert_eq!(authority("http://[::1]:9"), Some(("::1".into(), 9)));
        for bad in [
            "lb:8111",
            "https://lb:8111",
            "http://",
            "http://u@lb:1",
            "http://lb:1/x",
            "http://lb:0",
            "http://lb:99999",
            "http://[::1",
        ] {
            assert_eq!(authority(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_advertised_url_is_the_route_to_the_balancer() {
        let j = JoinConfig::new("http://127.0.0.1:8111/", None, 8300, 2, 2048, None).unwrap();
        assert_eq!(j.node_url, "http://127.0.0.1:8300");
        assert_eq!(j.balancer, "http://127.0.0.1:8111");
        let j = JoinConfig::new(
            "http://127.0.0.1:8111",
            Some("http://w1:8222/"),
            8300,
            2,
            2048,
            None,
        )
        .unwrap();
        assert_eq!(j.node_url, "http://w1:8222");
        assert!(matches!(
            JoinConfig::new("http://127.0.0.1:8111", Some("w1:8222"), 1, 1, 1, None),
            Err(JoinError::BadAdvertise(_))
        ));
        assert!(matches!(
            JoinConfig::new("127.0.0.1:8111", None, 1, 1, 1, None),
            Err(JoinError::BadBalancer(_))
        ));
    }

    #[test]
    fn a_found_address_that_changed_moves_the_registration() {
        let mut m = Membership::new("http://10.0.0.2:8222".into());
        // Same address, or none found this round: nothing changes.
        assert!(!m.found(Some("http://10.0.0.2:8222")));
        assert!(!m.found(None));
        assert_eq!(m.current(), "http://10.0.0.2:8222");
        assert!(m.stale().is_empty());
        // A new address: registered now, the old one to deregister.
        assert!(m.found(Some("http://10.0.0.7:8222")));
        assert_eq!(m.current(), "http://10.0.0.7:8222");
        assert_eq!(m.stale(), ["http://10.0.0.2:8222"]);
        // Until the balancer drops it, it stays to deregister.
        assert!(!m.found(Some("http://10.0.0.7:8222")));
        assert_eq!(m.stale(), ["http://10.0.0.2:8222"]);
        m.dropped("http://10.0.0.2:8222");
        assert!(m.stale().is_empty());
    }

    #[test]
    fn moving_back_keeps_the_current_url_off_the_stale_list() {
        let mut m = Membership::new("http://a:1".into());
        assert!(m.found(Some("http://b:1")));
        assert!(m.found(Some("http://a:1")));
        assert_eq!(m.current(), "http://a:1");
        assert_eq!(m.stale(), ["http://b:1"]);
    }

    #[test]
    fn the_stale_list_is_bounded() {
        let mut m = Membership::new("http://h0:1".into());
        for i in 1..=MAX_STALE + 5 {
            assert!(m.found(Some(&format!("http://h{i}:1"))));
        }
        assert_eq!(m.stale().len(), MAX_STALE);
        // The oldest are forgotten first.
        assert_eq!(m.stale()[0], "http://h5:1");
        assert_eq!(
            m.stale().last().map(String::as_str),
            Some(format!("http://h{}:1", MAX_STALE + 4).as_str())
        );
    }

    #[test]
    fn clones_share_the_registered_url() {
        let j = JoinConfig::new("http://127.0.0.1:8111", None, 8300, 2, 2048, None).unwrap();
        let other = j.clone();
        assert!(j.membership().found(Some("http://127.0.0.2:8300")));
        assert_eq!(other.current_url(), "http://127.0.0.2:8300");
        // A fixed --advertise-url is never looked for again.
        let fixed =
            JoinConfig::new("http://127.0.0.1:8111", Some("http://w:1"), 1, 1, 1, None).unwrap();
        assert_eq!(fixed.advertise, Advertise::Fixed);
    }
}
