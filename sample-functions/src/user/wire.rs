//! The HTTP pieces of the Glambdar routes that the worker and the
//! balancer share: which route a request is ([`Route::parse`], by hand:
//! no router's regex runs on a server's hot path), the
//! `multipart/form-data` body of `POST /deploy`
//! (RFC 7578) and its size bound, the body of `POST /config/:name` and
//! its reply, the `limit` of `GET /logs/:name`, and which headers are the
//! connection's (not forwarded to a function, nor from it). Both servers
//! read the bodies with `http_front::read_form`.

use super::store::LOG_KEEP;
use bytes::Bytes;
use serde::Serialize;

/// A deploy's outcome, the reply of `POST /deploy` on a worker and on the
/// balancer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeployReport {
    pub message: String,
    pub name: String,
    pub version: u64,
    pub digest: String,
    pub size: u64,
    pub unpacked_bytes: u64,
    pub entries: usize,
    pub runtime: String,
    pub rate_limit: f64,
    /// The version this one replaced, if any.
    pub replaced: Option<u64>,
}

/// A Glambdar route (the worker's and the balancer's; the balancer alone
/// serves [`Route::Package`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /deploy`.
    Deploy,
    /// `ANY /invoke/:name[/path]`: `tail` is the path after the name as
    /// it came (empty, or starting with `/`).
    Invoke { name: String, tail: String },
    /// `GET /info`.
    InfoAll,
    /// `GET /info/:name`.
    Info(String),
    /// `GET /logs/:name`.
    Logs(String),
    /// `DELETE /del/:name`.
    Delete(String),
    /// `POST /config/:name`.
    Config(String),
    /// `GET /packages/<sha256>` (the balancer's store, for its workers).
    Package(String),
}

impl Route {
    /// The route of a request's `method` (e.g. `"GET"`) and `path` (its
    /// URI's path, not decoded), if it is one. None: not a Glambdar route,
    /// e.g. `/info` with another method, or `/invoke/` without a name;
    /// the server's other routes (and its 404 / 405) answer those.
    pub fn parse(method: &str, path: &str) -> Option<Self> {
        let one = |prefix: &str| {
            path.strip_prefix(prefix)
                .filter(|n| !n.is_empty() && !n.contains('/'))
                .map(str::to_string)
        };
        if let Some(rest) = path.strip_prefix("/invoke/") {
            let (name, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            return (!name.is_empty()).then(|| Self::Invoke {
                name: name.into(),
                tail: tail.into(),
            });
        }
        match method {
            "POST" if path == "/deploy" => Some(Self::Deploy),
            "GET" if path == "/info" => Some(Self::InfoAll),
            "GET" => one("/info/")
                .map(Self::Info)
                .or_else(|| one("/logs/").map(Self::Logs))
                .or_else(|| one("/packages/").map(Self::Package)),
            "DELETE" => one("/del/").map(Self::Delete),
            "POST" => one("/config/").map(Self::Config),
            _ => None,
        }
    }

    /// Whether it changes or hands out what is deployed: a management
    /// route (`protocol::mgmt`: loopback peers, or the bearer token).
    pub fn is_management(&self) -> bool {
        matches!(
            self,
            Self::Deploy | Self::Delete(_) | Self::Config(_) | Self::Package(_)
        )
    }
}

/// Headers that belong to one connection, not to the message.
pub fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// The first index of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One part of a multipart form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Bytes,
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    })
}

fn disposition_param(line: &str, key: &str) -> Option<String> {
    line.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits a `multipart/form-data` body (RFC 7578) into its parts.
pub fn parse_multipart(body: &Bytes, boundary: &str) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}");
    let mut at = find(body, delim.as_bytes()).ok_or("no multipart boundary in the body")?;
    let mut parts = Vec::new();
    let next_delim = format!("\r\n--{boundary}");
    loop {
        at += delim.len();
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("malformed multipart body (no line break after a boundary)")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("malformed multipart part (no header end)")?;
        let head = String::from_utf8_lossy(&rest[..head_end]);
        let content_start = at + 2 + head_end + 4;
        let len = find(&body[content_start..], next_delim.as_bytes())
            .ok_or("malformed multipart body (no closing boundary)")?;
        let mut name = None;
        let mut filename = None;
        for line in head.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-disposition") {
                    name = disposition_param(v, "name");
                    filename = disposition_param(v, "filename");
                }
            }
        }
        if parts.len() >= 16 {
            return Err("too many multipart parts (at most 16)".into());
        }
        parts.push(Part {
            name: name.ok_or("a multipart part without a name")?,
            filename,
            data: body.slice(content_start..content_start + len),
        });
        at = content_start + len + 2;
    }
}

/// What a `POST /deploy` form says: the zip (field `file`), the
/// function's name (field `funcName`, else the zip's file name without
/// `.zip`), and the rate limit (field `rateLimit`, calls per second), as
/// Glambdar reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployForm {
    pub name: String,
    pub zip: Bytes,
    pub rate_limit: Option<f64>,
}

/// Reads a `POST /deploy` body of `content_type`; the error is the
/// message of a 400.
pub fn deploy_form(content_type: &str, body: &Bytes) -> Result<DeployForm, String> {
    let Some(boundary) = boundary(content_type) else {
        return Err("POST /deploy takes a multipart/form-data body (a zip in field `file`)".into());
    };
    let parts = parse_multipart(body, &boundary)?;
    let field = |n: &str| parts.iter().find(|p| p.name == n);
    let Some(file) = field("file") else {
        return Err("no `file` field (the function's zip) in the form".into());
    };
    let name = match field("funcName") {
        Some(p) => String::from_utf8_lossy(&p.data).trim().to_string(),
        None => match &file.filename {
            Some(f) => {
                let base = f.rsplit(['/', '\\']).next().unwrap_or(f);
                base.strip_suffix(".zip").unwrap_or(base).to_string()
            }
            None => return Err("no `funcName` field and no file name to take it from".into()),
        },
    };
    let rate_limit = match field("rateLimit") {
        None => None,
        Some(p) => match String::from_utf8_lossy(&p.data).trim().parse::<f64>() {
            Ok(r) => Some(r),
            Err(_) => return Err("rateLimit is not a number".into()),
        },
    };
    Ok(DeployForm {
        name,
        zip: file.data.clone(),
        rate_limit,
    })
}

/// What the form around a deploy's zip may add to it (boundaries, part
/// heads, `funcName`, `rateLimit`).
pub const FORM_OVERHEAD: u64 = 64 * 1024;

/// The largest `POST /deploy` body for a zip of at most
/// `max_upload_bytes` (the package limit: a larger zip is refused with a
/// 413 before it is read whole).
pub fn deploy_body_limit(max_upload_bytes: u64) -> u64 {
    max_upload_bytes.saturating_add(FORM_OVERHEAD)
}

/// The largest `POST /config/:name` body.
pub const CONFIG_BODY_LIMIT: u64 = 4096;

/// The body of `POST /config/:name`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RateConfig {
    #[serde(rename = "rateLimit")]
    rate_limit: f64,
}

/// The rate limit a `POST /config/:name` body (`{"rateLimit": r}`) sets;
/// the error is the message of a 400 (the rate's range is the store's
/// check).
pub fn rate_config(body: &[u8]) -> Result<f64, String> {
    protocol::strict::from_json_slice::<RateConfig>(body)
        .map(|c| c.rate_limit)
        .map_err(|e| format!("the body must be {{\"rateLimit\": r}}: {e}"))
}

/// The reply of a `POST /config/:name` that set `rate` (with the token
/// bucket's burst, `super::rate::TokenBucket`).
pub fn configured(name: &str, rate: f64) -> serde_json::Value {
    serde_json::json!({"Message": "configured", "Name": name, "RateLimit": rate,
        "Burst": (rate / 10.0).max(1.0)})
}

/// The `limit` of `GET /logs/:name?limit=N` in `query`: 100 without it,
/// at most [`LOG_KEEP`]; the error is the message of a 400.
pub fn logs_limit(query: &str) -> Result<usize, String> {
    let mut limit = 100;
    for (k, v) in protocol::query::query_pairs(query) {
        if k == "limit" {
            match v.parse::<usize>() {
                Ok(n) if n >= 1 => limit = n.min(LOG_KEEP),
                _ => {
                    return Err(format!(
                        "limit {v:?} is not a whole number from 1 to {LOG_KEEP}"
                    ))
                }
            }
        }
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_parsed_by_method_and_path() {
        let invoke = |name: &str, tail: &str| {
            Some(Route::Invoke {
                name: name.into(),
                tail: tail.into(),
            })
        };
        assert_eq!(Route::parse("POST", "/deploy"), Some(Route::Deploy));
        assert_eq!(Route::parse("GET", "/deploy"), None);
        assert_eq!(Route::parse("PUT", "/invoke/f/a/b"), invoke("f", "/a/b"));
        assert_eq!(Route::parse("GET", "/invoke/f"), invoke("f", ""));
        assert_eq!(Route::parse("GET", "/invoke/f/"), invoke("f", "/"));
        // The path as it came: a function sees its own escapes.
        assert_eq!(
            Route::parse("GET", "/invoke/f/a%2Fb%20c"),
            invoke("f", "/a%2Fb%20c")
        );
        assert_eq!(Route::parse("GET", "/invoke/"), None);
        assert_eq!(Route::parse("GET", "/invoke//x"), None);
        assert_eq!(Route::parse("GET", "/invoke"), None);
        assert_eq!(Route::parse("GET", "/info"), Some(Route::InfoAll));
        assert_eq!(Route::parse("POST", "/info"), None);
        assert_eq!(
            Route::parse("GET", "/info/f"),
            Some(Route::Info("f".into()))
        );
        assert_eq!(Route::parse("GET", "/info/f/x"), None);
        assert_eq!(Route::parse("GET", "/info/"), None);
        assert_eq!(
            Route::parse("GET", "/logs/f"),
            Some(Route::Logs("f".into()))
        );
        assert_eq!(
            Route::parse("DELETE", "/del/f"),
            Some(Route::Delete("f".into()))
        );
        assert_eq!(Route::parse("GET", "/del/f"), None);
        assert_eq!(
            Route::parse("POST", "/config/f"),
            Some(Route::Config("f".into()))
        );
        assert_eq!(Route::parse("GET", "/config/f"), None);
        // The testbed's own routes are not Glambdar's.
        for path in ["/execute", "/execute/W1", "/health", "/metrics", "/"] {
            for method in ["GET", "POST", "DELETE"] {
                assert_eq!(Route::parse(method, path), None, "{method} {path}");
            }
        }
        assert!(Route::parse("GET", "/packages/ab").unwrap().is_management());
        assert!(Route::parse("POST", "/deploy").unwrap().is_management());
        assert!(!Route::parse("GET", "/logs/f").unwrap().is_management());
        assert!(!Route::parse("GET", "/invoke/f").unwrap().is_management());
    }

    #[test]
    fn multipart_bodies_are_split() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary("application/json"), None);
        let body = Bytes::from_static(
            b"--XY\r\nContent-Disposition: form-data; name=\"funcName\"\r\n\r\nhello\r\n\
--XY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.zip\"\r\n\
Content-Type: application/zip\r\n\r\nPK\r\n\x00\x01\r\n--XY--\r\n",
        );
        let parts = parse_multipart(&body, "XY").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "funcName");
        assert_eq!(&parts[0].data[..], b"hello");
        assert_eq!(parts[1].filename.as_deref(), Some("f.zip"));
        assert_eq!(&parts[1].data[..], b"PK\r\n\x00\x01");
        assert!(parse_multipart(&Bytes::from_static(b"--XY\r\nbad"), "XY").is_err());
        assert!(parse_multipart(&Bytes::from_static(b"nothing"), "XY").is_err());
    }

    #[test]
    fn a_deploy_form_names_the_function_by_field_or_by_file() {
        let form = |fields: &str| {
            Bytes::from(format!(
                "{fields}--XY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"dir/f.zip\"\r\n\r\nPK\r\n--XY--\r\n"
            ))
        };
        let ct = "multipart/form-data; boundary=XY";
        let f = deploy_form(ct, &form("")).unwrap();
        assert_eq!(
            (f.name.as_str(), &f.zip[..], f.rate_limit),
            ("f", &b"PK"[..], None)
        );
        let named = "--XY\r\nContent-Disposition: form-data; name=\"funcName\"\r\n\r\n g \r\n\
--XY\r\nContent-Disposition: form-data; name=\"rateLimit\"\r\n\r\n2.5\r\n";
        let f = deploy_form(ct, &form(named)).unwrap();
        assert_eq!((f.name.as_str(), f.rate_limit), ("g", Some(2.5)));
        let bad_rate = "--XY\r\nContent-Disposition: form-data; name=\"rateLimit\"\r\n\r\nfast\r\n";
        assert_eq!(
            deploy_form(ct, &form(bad_rate)).unwrap_err(),
            "rateLimit is not a number"
        );
        assert!(deploy_form("application/json", &form("")).is_err());
    }

    #[test]
    fn config_bodies_and_log_limits_are_read() {
        assert_eq!(rate_config(br#"{"rateLimit": 2.5}"#), Ok(2.5));
        let e = rate_config(br#"{"rate": 1}"#).unwrap_err();
        assert!(
            e.starts_with("the body must be {\"rateLimit\": r}: "),
            "{e}"
        );
        assert!(rate_config(b"").is_err());
        // Not by position, as serde's derive reads an array.
        let e = rate_config(b"[5]").unwrap_err();
        assert!(e.contains("invalid type: sequence"), "{e}");
        assert_eq!(configured("f", 50.0)["Burst"], 5.0);
        assert_eq!(configured("f", 2.0)["Burst"], 1.0);
        assert_eq!(logs_limit(""), Ok(100));
        assert_eq!(logs_limit("x=1&limit=7"), Ok(7));
        assert_eq!(logs_limit("limit=999999"), Ok(LOG_KEEP));
        assert_eq!(
            logs_limit("limit=0").unwrap_err(),
            format!("limit \"0\" is not a whole number from 1 to {LOG_KEEP}")
        );
        assert!(logs_limit("limit=ten").is_err());
        assert_eq!(deploy_body_limit(u64::MAX), u64::MAX);
        assert_eq!(deploy_body_limit(1), 1 + FORM_OVERHEAD);
    }
}
