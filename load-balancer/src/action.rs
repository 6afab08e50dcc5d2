//! HTTP requests parsed at the edge into a typed [`Action`].
//!
//! The routes are those of HotFunctions' balancer (Prev/HotFunctions,
//! `load_balancer/request_handler.go`: `/execute`, `/configure`, `/clear`,
//! `/prepare`), plus fnlb's node API (`/1/lb/nodes`), the scheduler's
//! description (`/1/lb/scheduler`, see [`crate::server`]), `/health` and
//! `/status`. Anything else is a [`BalancerError`] before the core sees it.
//!
//! [`is_management`] names the routes that change state (issue 13): the
//! server checks who asks ([`protocol::mgmt`]) before it reads their body.
//!
//! `/execute?name=F&idempotent=true|false` says whether the call may be
//! sent again when its node dies with it in flight (see [`crate::server`]);
//! without it, the function decides: the sample functions are safe to
//! repeat, any other function is not.

use std::borrow::Cow;

use protocol::query::{percent_decode, query_value};

use actix_web::http::Method;
use policy::node::options::{CachingOptions, OptionsError};
use policy::scheduler::{registry, ParamSet};

use crate::error::BalancerError;

/// One request the balancer understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GET /execute?name=F[&idempotent=true|false]`.
    Execute {
        function: String,
        /// The caller's word on whether the call is safe to repeat (None:
        /// the function's default).
        idempotent: Option<bool>,
    },
    /// `GET /configure?lb=X&T=4&ch.T=4&...`: switch algorithm (when `lb`
    /// is given), set the scheduler parameters (keys the registry claims:
    /// `seed`, a parameter's bare name, `<alg>.<NAME>`), and forward the
    /// other pairs (the workers' caching options, checked here as the
    /// workers check them: any other key is a 400) to every worker's
    /// `/configure`.
    Configure {
        algorithm: Option<String>,
        /// Scheduler parameters, percent-decoded, in query order.
        params: Vec<(String, String)>,
        forward_query: String,
    },
    /// `GET /clear`.
    Clear,
    /// `GET /prepare`.
    Prepare,
    /// `GET /1/lb/nodes`: `{"nodes": {"<url>": "online"|"offline"}}`.
    ListNodes,
    /// `GET /1/lb/scheduler`: the algorithm, its resolved parameters, the
    /// seed, and the nodes with the `WorkerNodeId` each gets in replies.
    DescribeScheduler,
    /// `PUT /1/lb/nodes` with `{"node": "<url>"}` and optionally
    /// `"capacity": n`, `"cores": n`, `"memory_mb": n` (defaults: the
    /// configured `node_capacity`, `node_cores`, `node_memory_mb`).
    AddNode {
        url: String,
        resources: NodeOverrides,
    },
    /// `DELETE /1/lb/nodes` with `{"node": "<url>"}`.
    RemoveNode { url: String },
    /// `GET /health`: the balancer's own liveness.
    Health,
    /// `GET /status`: configuration, seed, nodes and loads.
    Status,
}

/// A node's own resources, where its `PUT /1/lb/nodes` body gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct NodeOverrides {
    #[serde(default)]
    pub capacity: Option<u32>,
    #[serde(default)]
    pub cores: Option<u32>,
    #[serde(default)]
    pub memory_mb: Option<u32>,
}

/// Body of `PUT`/`DELETE /1/lb/nodes`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeBody {
    node: String,
    #[serde(default)]
    capacity: Option<u32>,
    #[serde(default)]
    cores: Option<u32>,
    #[serde(default)]
    memory_mb: Option<u32>,
}

/// Whether `method path` is a management route: one that changes state
/// (`/configure`, `/clear`, `/prepare`, `PUT`/`DELETE /1/lb/nodes`; any
/// method but `GET`/`HEAD` on `/1/lb/nodes`). Data routes and read-only
/// routes are not.
pub fn is_management(method: &Method, path: &str) -> bool {
    match path {
        "/configure" | "/clear" | "/prepare" => true,
        "/1/lb/nodes" => method != Method::GET && method != Method::HEAD,
        _ => false,
    }
}

impl Action {
    /// Parses one request. `query` is the raw query string (no `?`).
    pub fn parse(
        method: &Method,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Result<Self, BalancerError> {
        let only = |allowed: &Method| -> Result<(), BalancerError> {
            if method == allowed || (allowed == Method::GET && method == Method::HEAD) {
                Ok(())
            } else {
                Err(BalancerError::MethodNotAllowed {
                    method: method.to_string(),
                    path: path.to_string(),
                })
            }
        };
        match path {
            "/execute" => {
                only(&Method::GET)?;
                let idempotent = match query_value(query, "idempotent").as_deref() {
                    None => None,
                    Some("true" | "1") => Some(true),
                    Some("false" | "0") => Some(false),
                    Some(_) => {
                        return Err(BalancerError::BadBody(
                            "param 'idempotent' must be true or false".into(),
                        ))
                    }
                };
                match query_value(query, "name") {
                    Some(name) if !name.is_empty() => Ok(Self::Execute {
                        function: name.into_owned(),
                        idempotent,
                    }),
                    _ => Err(BalancerError::MissingName),
                }
            }
            "/configure" => {
                only(&Method::GET)?;
                let algorithm = query_value(query, "lb").map(Cow::into_owned);
                let mut params = Vec::new();
                let mut forward = Vec::new();
                for pair in query.split('&').filter(|pair| !pair.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let key = percent_decode(key);
                    if key == "lb" {
                        continue;
                    }
                    let value = percent_decode(value);
                    if ParamSet::claims(&key) {
                        params.push((key.into_owned(), value.into_owned()));
                    } else {
                        // A worker option: checked here so that a key no
                        // one knows (or a value every worker would refuse)
                        // is a 400 before anything changes.
                        CachingOptions::default()
                            .apply_query([(key.as_ref(), value.as_ref())])
                            .map_err(|e| BalancerError::BadConfigureKey {
                                reason: match e {
                                    OptionsError::Unknown(_) => format!(
                                        "{e}; nor is it a scheduler parameter ({}, seed, \
                                         or <algorithm>.<NAME>)",
                                        registry::param_names().join(", ")
                                    ),
                                    other => other.to_string(),
                                },
                                key: key.to_string(),
                            })?;
                        // The workers' bounds, checked as they check them.
                        protocol::limits::check_worker_option(&key, &value).map_err(|e| {
                            BalancerError::BadConfigureKey {
                                reason: e.to_string(),
                                key: key.to_string(),
                            }
                        })?;
                        forward.push(pair);
                    }
                }
                Ok(Self::Configure {
                    algorithm,
                    params,
                    forward_query: forward.join("&"),
                })
            }
            "/clear" => only(&Method::GET).map(|()| Self::Clear),
            "/prepare" => only(&Method::GET).map(|()| Self::Prepare),
            "/health" => only(&Method::GET).map(|()| Self::Health),
            "/status" => only(&Method::GET).map(|()| Self::Status),
            "/1/lb/scheduler" => only(&Method::GET).map(|()| Self::DescribeScheduler),
            "/1/lb/nodes" => {
                if method == Method::GET {
                    return Ok(Self::ListNodes);
                }
                let parse_body = || -> Result<(String, NodeOverrides), BalancerError> {
                    let body: NodeBody = protocol::strict::from_json_slice(body).map_err(|e| {
                        BalancerError::BadBody(format!(
                            "expected {{\"node\": \"<url>\", and optionally \"capacity\", \"cores\", \"memory_mb\": n}}: {e}"
                        ))
                    })?;
                    for (name, value) in [
                        ("capacity", body.capacity),
                        ("cores", body.cores),
                        ("memory_mb", body.memory_mb),
                    ] {
                        if value == Some(0) {
                            return Err(BalancerError::BadBody(format!(
                                "{name} must be at least 1"
                            )));
                        }
                    }
                    let resources = NodeOverrides {
                        capacity: body.capacity,
                        cores: body.cores,
                        memory_mb: body.memory_mb,
                    };
                    Ok((crate::config::normalize_node_url(&body.node)?, resources))
                };
                if method == Method::PUT {
                    let (url, resources) = parse_body()?;
                    Ok(Self::AddNode { url, resources })
                } else if method == Method::DELETE {
                    Ok(Self::RemoveNode {
                        url: parse_body()?.0,
                    })
                } else {
                    Err(BalancerError::MethodNotAllowed {
                        method: method.to_string(),
                        path: path.to_string(),
                    })
                }
            }
            _ => Err(BalancerError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_needs_a_name() {
        assert_eq!(
            Action::parse(&Method::GET, "/execute", "name=W1", b"").unwrap(),
            Action::Execute {
                function: "W1".into(),
                idempotent: None
            }
        );
        assert_eq!(
            Action::parse(&Method::GET, "/execute", "name=W1&idempotent=false", b"").unwrap(),
            Action::Execute {
                function: "W1".into(),
                idempotent: Some(false)
            }
        );
        assert!(matches!(
            Action::parse(&Method::GET, "/execute", "name=W1&idempotent=maybe", b""),
            Err(BalancerError::BadBody(_))
        ));
        assert_eq!(
            Action::parse(&Method::GET, "/execute", "x=1&name=a%20b", b"").unwrap(),
            Action::Execute {
                function: "a b".into(),
                idempotent: None
            }
        );
        for q in ["", "name=", "names=W1"] {
            assert!(matches!(
                Action::parse(&Method::GET, "/execute", q, b""),
                Err(BalancerError::MissingName)
            ));
        }
        assert!(matches!(
            Action::parse(&Method::POST, "/execute", "name=W1", b""),
            Err(BalancerError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            Action::parse(&Method::GET, "/nope", "", b""),
            Err(BalancerError::NotFound)
        ));
    }

    #[test]
    fn management_routes_are_the_state_changing_ones() {
        for (method, path) in [
            (Method::GET, "/configure"),
            (Method::GET, "/clear"),
            (Method::POST, "/prepare"),
            (Method::PUT, "/1/lb/nodes"),
            (Method::DELETE, "/1/lb/nodes"),
            (Method::PATCH, "/1/lb/nodes"),
        ] {
            assert!(is_management(&method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::GET, "/execute"),
            (Method::GET, "/health"),
            (Method::GET, "/status"),
            (Method::GET, "/1/lb/nodes"),
            (Method::HEAD, "/1/lb/nodes"),
            (Method::GET, "/1/lb/scheduler"),
        ] {
            assert!(!is_management(&method, path), "{method} {path}");
        }
    }

    #[test]
    fn configure_refuses_worker_options_beyond_their_bounds() {
        for query in [
            "container_pool_num=65",
            "container_pool_limit=1&container_pool_num=4294967295",
            "rest_container_life_time=99999999999",
        ] {
            let e = Action::parse(&Method::GET, "/configure", query, b"").unwrap_err();
            assert!(
                matches!(e, BalancerError::BadConfigureKey { .. }),
                "{query}"
            );
        }
    }

    #[test]
    fn the_scheduler_description_is_read_only() {
        assert_eq!(
            Action::parse(&Method::GET, "/1/lb/scheduler", "", b"").unwrap(),
            Action::DescribeScheduler
        );
        assert!(matches!(
            Action::parse(&Method::PUT, "/1/lb/scheduler", "", b"{}"),
            Err(BalancerError::MethodNotAllowed { .. })
        ));
    }

    #[test]
    fn configure_strips_lb_from_the_forwarded_query() {
        assert_eq!(
            Action::parse(
                &Method::GET,
                "/configure",
                "lb=ch&image_limit=3&using_rest_mode=%74rue",
                b""
            )
            .unwrap(),
            Action::Configure {
                algorithm: Some("ch".into()),
                params: Vec::new(),
                forward_query: "image_limit=3&using_rest_mode=%74rue".into()
            }
        );
        // Neither a scheduler parameter nor a worker option: refused.
        for query in ["x=%2F", "t=1", "image_limit=lots"] {
            assert!(
                matches!(
                    Action::parse(&Method::GET, "/configure", query, b""),
                    Err(BalancerError::BadConfigureKey { .. })
                ),
                "{query}"
            );
        }
        assert_eq!(
            Action::parse(&Method::GET, "/configure", "", b"").unwrap(),
            Action::Configure {
                algorithm: None,
                params: Vec::new(),
                forward_query: String::new()
            }
        );
    }

    #[test]
    fn configure_keeps_scheduler_parameters_for_the_registry() {
        let query =
            "T=4&image_limit=3&ch%2ET=5&seed=9&nope.X=1&tradeoff.ALPHA=0.2&container_pool_num=1";
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            Action::parse(&Method::GET, "/configure", query, b"").unwrap(),
            Action::Configure {
                algorithm: None,
                // Unknown dotted keys are claimed too: the registry
                // refuses them rather than the workers ignoring them.
                params: pairs(&[
                    ("T", "4"),
                    ("ch.T", "5"),
                    ("seed", "9"),
                    ("nope.X", "1"),
                    ("tradeoff.ALPHA", "0.2")
                ]),
                forward_query: "image_limit=3&container_pool_num=1".into()
            }
        );
    }

    #[test]
    fn node_bodies_are_checked() {
        assert_eq!(
            Action::parse(
                &Method::PUT,
                "/1/lb/nodes",
                "",
                br#"{"node":"http://a:1/"}"#
            )
            .unwrap(),
            Action::AddNode {
                url: "http://a:1".into(),
                resources: NodeOverrides::default()
            }
        );
        assert_eq!(
            Action::parse(
                &Method::PUT,
                "/1/lb/nodes",
                "",
                br#"{"node":"http://localhost:1/"}"#
            )
            .unwrap(),
            Action::AddNode {
                url: "http://127.0.0.1:1".into(),
                resources: NodeOverrides::default()
            }
        );
        assert_eq!(
            Action::parse(
                &Method::PUT,
                "/1/lb/nodes",
                "",
                br#"{"node":"http://a:1","capacity":8,"cores":4,"memory_mb":1024}"#
            )
            .unwrap(),
            Action::AddNode {
                url: "http://a:1".into(),
                resources: NodeOverrides {
                    capacity: Some(8),
                    cores: Some(4),
                    memory_mb: Some(1024)
                }
            }
        );
        for body in [
            &b"{}"[..],
            b"not json",
            br#"{"node":"a:1"}"#,
            br#"{"node":"http://a:1","x":1}"#,
            br#"{"node":"http://a:1","capacity":0}"#,
            br#"{"node":"http://a:1","cores":0}"#,
            br#"{"node":"http://a:1","memory_mb":0}"#,
            br#"{"node":"http://a:1","memory_mb":-1}"#,
            br#"["http://a:1"]"#,
            br#""http://a:1""#,
            br#"{"node":"http://u@a:1"}"#,
        ] {
            assert!(Action::parse(&Method::DELETE, "/1/lb/nodes", "", body).is_err());
        }
    }
}
