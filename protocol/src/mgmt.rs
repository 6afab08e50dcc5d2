//! Who may use a server's management routes (issue 13, part 2): the rule
//! shared by the balancer and the worker, pure (the servers read the peer
//! address and the `Authorization` header and ask [`ManagementConfig::check`]).
//!
//! Management routes change state: `/configure`, `/clear`, `/prepare` on
//! both servers, and `PUT`/`DELETE /1/lb/nodes` on the balancer. Data
//! routes (`/execute`, `/health`, read-only `GET`s) are always open.
//!
//! The rule:
//! - a peer on a loopback address (`127.0.0.0/8`, `::1`, and their
//!   IPv4-mapped forms) needs no token, as in the original's all-localhost
//!   workflow, unless the server was started with `--mgmt-require-token`;
//! - any other peer needs `Authorization: Bearer <token>`, with the token
//!   the server was given (`--mgmt-token-file`, or the environment
//!   variable [`TOKEN_ENV`]); a server without a token refuses management
//!   from non-loopback peers outright (403);
//! - a missing or wrong token, where one is needed, is a 401; a token sent
//!   to a server that has none is ignored (so a balancer may send its
//!   token to workers that run without one on loopback).
//!
//! Choices where the sources are silent: the token is compared in constant
//! time (its length aside); a token is 16 to 4096 printable ASCII bytes
//! without spaces (a token file's surrounding white space, such as a final
//! newline, is trimmed), so that a truncated or empty file is an error at
//! start, not a server that accepts an empty bearer; the peer's address is
//! the socket's (no `X-Forwarded-For`: a proxy in front of a server makes
//! every peer look like the proxy, so put none in front of management).

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Environment variable that gives a server its management token (keeps
/// it out of `ps`, unlike a command-line value).
pub const TOKEN_ENV: &str = "HF_MGMT_TOKEN";

/// Shortest token accepted.
pub const MIN_TOKEN_BYTES: usize = 16;
/// Longest token accepted (also the most a token file may hold).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Management settings of a server: its token and whether loopback peers
/// need it too. The token is never serialized (a server's `/status` shows
/// its configuration).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementConfig {
    /// The bearer token management requests must carry (None: no token;
    /// then only loopback peers may manage).
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// Loopback peers need the token too.
    pub require_token: bool,
}

impl std::fmt::Debug for ManagementConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementConfig")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("require_token", &self.require_token)
            .finish()
    }
}

/// A management setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagementError {
    #[error("management token: {0}")]
    BadToken(String),
    #[error("{path}: {reason}")]
    TokenFile { path: String, reason: String },
    #[error("--mgmt-require-token needs a token (--mgmt-token-file or {TOKEN_ENV})")]
    RequireWithoutToken,
}

/// Why a management request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The server has no token, and the peer is not on loopback.
    #[error(
        "management from {peer} is refused: this server takes management requests from \
         loopback peers only (start it with a token, --mgmt-token-file or {TOKEN_ENV}, to \
         allow others)"
    )]
    NotLoopback { peer: String },
    /// A token is needed and none came.
    #[error("management needs a token: send \"Authorization: Bearer <token>\"")]
    MissingToken,
    /// The token that came is not the server's.
    #[error("management token refused")]
    WrongToken,
}

impl Denied {
    /// Its HTTP status: 403 when no token could help, else 401.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotLoopback { .. } => 403,
            Self::MissingToken | Self::WrongToken => 401,
        }
    }
}

/// Checks a token's shape (module doc).
pub fn check_token(token: &str) -> Result<(), ManagementError> {
    if token.len() < MIN_TOKEN_BYTES || token.len() > MAX_TOKEN_BYTES {
        return Err(ManagementError::BadToken(format!(
            "{} bytes long, expected {MIN_TOKEN_BYTES} to {MAX_TOKEN_BYTES}",
            token.len()
        )));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ManagementError::BadToken(
            "only printable ASCII without spaces is allowed".into(),
        ));
    }
    Ok(())
}

/// Reads a token file (at most [`MAX_TOKEN_BYTES`] plus white space), trimmed.
pub fn read_token_file(path: &Path) -> Result<String, ManagementError> {
    use std::io::Read as _;
    let fail = |reason: String| ManagementError::TokenFile {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut text = String::new();
    let limit = (MAX_TOKEN_BYTES + 64) as u64;
    file.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > limit {
        return Err(fail(format!("longer than {limit} bytes")));
    }
    let token = text.trim();
    check_token(token).map_err(|e| fail(e.to_string()))?;
    Ok(token.to_string())
}

impl ManagementConfig {
    /// The settings from a token file, or else an environment value, and
    /// the require flag; checked.
    pub fn from_sources(
        token_file: Option<&Path>,
        env_token: Option<String>,
        require_token: bool,
    ) -> Result<Self, ManagementError> {
        let token = match (token_file, env_token) {
            (Some(path), _) => Some(read_token_file(path)?),
            (None, Some(t)) if !t.trim().is_empty() => Some(t.trim().to_string()),
            (None, _) => None,
        };
        Self {
            token,
            require_token,
        }
        .validated()
    }

    /// Checks the token's shape and that a required token exists.
    pub fn validated(self) -> Result<Self, ManagementError> {
        if let Some(token) = &self.token {
            check_token(token)?;
        } else if self.require_token {
            return Err(ManagementError::RequireWithoutToken);
        }
        Ok(self)
    }

    /// The `Authorization` header value that carries this server's token
    /// to others (the balancer's fan-out to workers), if it has one.
    pub fn bearer(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// A short description for start-up lines (never the token).
    pub fn describe(&self) -> &'static str {
        match (&self.token, self.require_token) {
            (None, _) => "management from loopback peers only",
            (Some(_), false) => "management token needed from non-loopback peers",
            (Some(_), true) => "management token needed from every peer",
        }
    }

    /// Whether a management request from `peer` (None: unknown) with this
    /// `Authorization` header value may go on.
    pub fn check(&self, peer: Option<IpAddr>, authorization: Option<&[u8]>) -> Result<(), Denied> {
        let loopback = peer.is_some_and(is_loopback);
        let Some(token) = &self.token else {
            return if loopback {
                Ok(())
            } else {
                Err(Denied::NotLoopback {
                    peer: peer.map_or_else(|| "an unknown address".into(), |p| p.to_string()),
                })
            };
        };
        match authorization.and_then(bearer_token) {
            Some(given) if constant_time_eq(given, token.as_bytes()) => Ok(()),
            Some(_) => Err(Denied::WrongToken),
            None if loopback && !self.require_token => Ok(()),
            None => Err(Denied::MissingToken),
        }
    }
}

/// A loopback address, IPv4-mapped IPv6 included.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(value[7..].trim_ascii())
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn loopback_needs_no_token_unless_required() {
        let open = ManagementConfig::default();
        assert_eq!(open.check(ip("127.0.0.1"), None), Ok(()));
        assert_eq!(open.check(ip("127.3.2.1"), None), Ok(()));
        assert_eq!(open.check(ip("::1"), None), Ok(()));
        assert_eq!(open.check(ip("::ffff:127.0.0.1"), None), Ok(()));
        // A token sent to a server without one is ignored.
        assert_eq!(open.check(ip("127.0.0.1"), Some(b"Bearer x")), Ok(()));
        let d = open.check(ip("192.0.2.2"), Some(b"Bearer x")).unwrap_err();
        assert_eq!(d.status(), 403);
        assert_eq!(open.check(None, None).unwrap_err().status(), 403);

        let token = ManagementConfig {
            token: Some(TOKEN.into()),
            require_token: false,
        };
        assert_eq!(token.check(ip("127.0.0.1"), None), Ok(()));
        assert_eq!(token.check(ip("10.0.0.1"), None), Err(Denied::MissingToken));
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(token.check(ip("10.0.0.1"), Some(bearer.as_bytes())), Ok(()));
        let lower = format!("bearer  {TOKEN} ");
        assert_eq!(token.check(ip("10.0.0.1"), Some(lower.as_bytes())), Ok(()));
        assert_eq!(
            token.check(ip("10.0.0.1"), Some(b"Bearer 0123456789abcdef-tokeN")),
            Err(Denied::WrongToken)
        );
        assert_eq!(
            token.check(ip("127.0.0.1"), Some(b"Bearer wrong")),
            Err(Denied::WrongToken)
        );
        assert_eq!(
            token.check(ip("10.0.0.1"), Some(TOKEN.as_bytes())),
            Err(Denied::MissingToken),
            "not a bearer value"
        );

        let required = ManagementConfig {
            require_token: true,
            ..token
        };
        assert_eq!(
            required.check(ip("127.0.0.1"), None),
            Err(Denied::MissingToken)
        );
        assert_eq!(
            required.check(ip("127.0.0.1"), Some(bearer.as_bytes())),
            Ok(())
        );
    }

    #[test]
    fn tokens_and_token_files_are_checked() {
        assert!(check_token("short").is_err());
        assert!(check_token("with a space inside it").is_err());
        assert!(check_token(&"x".repeat(MAX_TOKEN_BYTES + 1)).is_err());
        assert_eq!(
            ManagementConfig::from_sources(None, None, true),
            Err(ManagementError::RequireWithoutToken)
        );
        let dir = tempfile_dir();
        let path = dir.join("token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        let c = ManagementConfig::from_sources(Some(&path), Some("ignored".into()), true).unwrap();
        assert_eq!(c.token.as_deref(), Some(TOKEN));
        assert_eq!(c.bearer().unwrap(), format!("Bearer {TOKEN}"));
        std::fs::write(&path, "\n").unwrap();
        let e = ManagementConfig::from_sources(Some(&path), None, false).unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
        std::fs::write(&path, "y".repeat(100_000)).unwrap();
        assert!(ManagementConfig::from_sources(Some(&path), None, false).is_err());
        let missing = dir.join("missing");
        let e = ManagementConfig::from_sources(Some(&missing), None, false).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        let env = ManagementConfig::from_sources(None, Some(format!(" {TOKEN} ")), false).unwrap();
        assert_eq!(env.token.as_deref(), Some(TOKEN));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_token_is_never_serialized_or_printed() {
        let c = ManagementConfig {
            token: Some(TOKEN.into()),
            require_token: true,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains(TOKEN), "{json}");
        assert!(!format!("{c:?}").contains(TOKEN));
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("protocol-mgmt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
