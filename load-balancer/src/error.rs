//! Every way a balancer request can fail, and its HTTP form.
//!
//! Handlers return [`BalancerError`]; only here is it turned into an HTTP
//! status plus the original's failure body `{"Error": true, "Message": ...}`
//! ([`protocol::ErrorReply`]).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::cluster::ClusterError;
use policy::scheduler::{ConfigError, SelectError};

#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    /// `GET /execute` without a (non-empty) `name`.
    #[error("param 'name' is not given")]
    MissingName,
    #[error("404 Not found on given path")]
    NotFound,
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("no online node")]
    NoOnlineNode,
    #[error("every node is at its load bound ({bound} in-flight calls)")]
    AllFull { bound: u32 },
    /// The chosen worker (and the retry's) could not be reached.
    #[error("worker {url} unreachable ({reason}); {retry}")]
    WorkerUnreachable {
        url: String,
        reason: String,
        retry: String,
    },
    /// The worker accepted the call but the exchange broke.
    #[error("error on the call to worker {url}: {reason}")]
    WorkerFailed { url: String, reason: String },
    #[error("error on parsing json from worker node {url}: not a JSON object")]
    BadWorkerReply { url: String },
    /// `/configure` named an unknown algorithm or a bad scheduler
    /// parameter (the registry's message names it).
    #[error(transparent)]
    Configure(#[from] ConfigError),
    /// `/configure` named a key that is neither a scheduler parameter nor
    /// a worker option, or gave a worker option a value workers refuse.
    #[error("/configure: {reason}")]
    BadConfigureKey { key: String, reason: String },
    #[error("bad request body: {0}")]
    BadBody(String),
    #[error(transparent)]
    BadNodeUrl(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("fake mode has no worker nodes to manage")]
    FakeMode,
    /// A management request from a peer that may not manage (401/403).
    #[error(transparent)]
    Denied(#[from] protocol::mgmt::Denied),
    /// A management route asked on the data listener while a separate
    /// management listener exists.
    #[error("management routes are served on the management listener only ({0})")]
    ManagementElsewhere(String),
    /// `PUT /1/lb/nodes` with a node outside `--node-allow`.
    #[error("node {url} is not on an allowed network ({reason})")]
    NodeNotAllowed { url: String, reason: String },
}

impl From<SelectError> for BalancerError {
    fn from(e: SelectError) -> Self {
        match e {
            SelectError::NoNodes => Self::NoOnlineNode,
            SelectError::AllFull { bound } => Self::AllFull { bound },
        }
    }
}

impl ResponseError for BalancerError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MissingName
            | Self::Configure(_)
            | Self::BadConfigureKey { .. }
            | Self::BadBody(_)
            | Self::BadNodeUrl(_) => StatusCode::BAD_REQUEST,
            Self::NotFound | Self::Cluster(ClusterError::NotRegistered(_)) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Cluster(
                ClusterError::AlreadyRegistered(_) | ClusterError::SameAddress { .. },
            )
            | Self::FakeMode => StatusCode::CONFLICT,
            Self::NoOnlineNode | Self::AllFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::WorkerUnreachable { .. }
            | Self::WorkerFailed { .. }
            | Self::BadWorkerReply { .. } => StatusCode::BAD_GATEWAY,
            Self::Denied(denied) => {
                StatusCode::from_u16(denied.status()).unwrap_or(StatusCode::FORBIDDEN)
            }
            Self::ManagementElsewhere(_) | Self::NodeNotAllowed { .. } => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut reply = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::UNAUTHORIZED {
            reply.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        reply.content_type("application/json").body(self.json())
    }
}

impl BalancerError {
    /// The JSON body of its reply ([`protocol::ErrorReply`]).
    pub(crate) fn json(&self) -> String {
        protocol::ErrorReply::new(self.to_string()).to_json()
    }
}
