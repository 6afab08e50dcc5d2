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
//! Every request carries the management token as `Authorization: Bearer`
//! when one is configured, and has a bounded time ([`REQUEST_TIMEOUT`]).
//! Only changes of state are logged (joined, lost, failing), not every
//! round.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

/// Time allowed for one request to the balancer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How a worker joins a balancer.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// The balancer's base URL, without a trailing `/`.
    pub balancer: String,
    /// This worker's URL as the balancer should call it.
    pub node_url: String,
    /// Cores and memory reported in the `PUT` body.
    pub cores: u32,
    pub memory_mb: u32,
    /// Bearer token for the balancer's management routes.
    pub token: Option<String>,
    /// Time between two membership checks (and registration retries).
    pub interval: Duration,
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
        let node_url = match advertise {
            Some(a) => {
                authority(a).ok_or_else(|| JoinError::BadAdvertise(a.to_string()))?;
                a.strip_suffix('/').unwrap_or(a).to_string()
            }
            None => {
                let ip = local_ip_towards(&host, bport).map_err(|source| JoinError::NoRoute {
                    url: balancer.to_string(),
                    addr: format!("{host}:{bport}"),
                    source,
                })?;
                match ip {
                    IpAddr::V4(v4) => format!("http://{v4}:{port}"),
                    IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
                }
            }
        };
        Ok(Self {
            balancer: balancer_base,
            node_url,
            cores,
            memory_mb,
            token,
            interval: Duration::from_secs(2),
        })
    }

    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
    ) -> reqwest::RequestBuilder {
        let body = serde_json::json!({
            "node": self.node_url,
            "cores": self.cores,
            "memory_mb": self.memory_mb,
        });
        let body = if method == reqwest::Method::DELETE {
            serde_json::json!({ "node": self.node_url })
        } else {
            body
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
        let reply = self
            .request(client, reqwest::Method::PUT)
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
            match self.register(&client).await {
                Ok(fresh) => {
                    if fresh {
                        if joined_once {
                            tracing::warn!(balancer = %self.balancer, node = %self.node_url, "registered again (the balancer had lost this node)");
                        } else {
                            tracing::info!(balancer = %self.balancer, node = %self.node_url, "joined");
                        }
                        joined_once = true;
                    } else if !joined_once {
                        tracing::info!(balancer = %self.balancer, node = %self.node_url, "already registered");
                        joined_once = true;
                    }
                    failing = None;
                }
                Err(e) => {
                    if failing.as_deref() != Some(e.as_str()) {
                        tracing::warn!(node = %self.node_url, "joining: {e} (retrying every {:?})", self.interval);
                    }
                    failing = Some(e);
                }
            }
            tokio::time::sleep(self.interval).await;
        }
    }

    /// Deregisters (bounded by [`REQUEST_TIMEOUT`]); a failure is logged,
    /// since the balancer's health check takes the node offline anyway.
    pub async fn leave(&self) {
        let client = reqwest::Client::new();
        match self.request(&client, reqwest::Method::DELETE).send().await {
            Ok(r) if r.status().is_success() || r.status().as_u16() == 404 => {
                tracing::info!(balancer = %self.balancer, node = %self.node_url, "left");
            }
            Ok(r) => tracing::warn!(balancer = %self.balancer, "leaving: {}", r.status()),
            Err(e) => tracing::warn!(balancer = %self.balancer, "leaving: {e}"),
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
}
