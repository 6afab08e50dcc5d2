//! HTTP requests parsed at the edge into a typed [`Action`], as the
//! balancer does: the worker core only ever sees this enum.
//!
//! Routes (the original's names; Prev/HotFunctions
//! `worker_front/request_handler.go`): `/execute?name=F`, `/configure?...`,
//! `/clear[?reset_images=true]`, `/prepare`, and `/health`; and
//! `/metrics` (Prometheus text); and for the balancer's scale to zero and
//! wake (issue 15), `/instances[?name=F]` and `/scale?name=F&instances=N`.
//! As in the original, any method is accepted.

use protocol::query::{query_pairs, CallParams};

/// Whether `path` is a management route (`/configure`, `/clear`,
/// `/prepare`: they change the worker's state; any method, as the
/// original accepts any). Checked before the request is parsed.
pub fn is_management(path: &str) -> bool {
    matches!(path, "/configure" | "/clear" | "/prepare" | "/scale")
}

/// Most instances `/scale` may ask for on one worker.
pub const MAX_SCALE_INSTANCES: u32 = 1_000;

/// The longest function name `/execute` reads (longer ones are a 400
/// that does not echo them).
pub const MAX_NAME_BYTES: usize = 256;

/// One request the worker understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `/execute?name=F[&duration_ms=&memory_mb=&cpu_share=]`: the call's
    /// own shape is checked here, bounded by the worker core.
    Execute { function: String, shape: CallParams },
    /// `/configure?user_code_size_limit=...&...`: the caching options to
    /// change (checked by the core's option parser).
    Configure { pairs: Vec<(String, String)> },
    /// `/clear[?reset_images=true]`.
    Clear { reset_images: bool },
    /// `/prepare`.
    Prepare,
    /// `/health`.
    Health,
    /// `/metrics` (Prometheus text; `crate::metrics`).
    Metrics,
    /// `/instances[?name=F]`: one function's instances (ready, starting),
    /// or every function that has any.
    Instances { function: Option<String> },
    /// `/scale?name=F&instances=N`: N = 0 removes every instance of F
    /// (scale to zero), N > 0 starts instances of F up to N (a wake).
    Scale { function: String, instances: u32 },
}

/// A request that is not an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The original's message for a missing name.
    #[error("param 'name' is not given")]
    MissingName,
    #[error("{0}")]
    BadParameter(String),
    /// The original's 404 message.
    #[error("404 Not found on given path")]
    NotFound,
}

impl Action {
    /// Parses one request: its path and raw query string (no `?`).
    pub fn parse(path: &str, query: &str) -> Result<Self, ActionError> {
        match path {
            "/execute" => {
                // An empty name is a missing one (as the balancer answers);
                // a name longer than any function's is refused unread.
                let name = query_pairs(query)
                    .find(|(k, _)| k == "name")
                    .map(|(_, v)| v)
                    .ok_or(ActionError::MissingName)?;
                checked_name(&name)?;
                let shape = CallParams::parse(query)
                    .map_err(|e| ActionError::BadParameter(e.to_string()))?;
                Ok(Self::Execute {
                    function: name.into_owned(),
                    shape,
                })
            }
            "/configure" => Ok(Self::Configure {
                pairs: query_pairs(query)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            }),
            "/clear" => {
                let mut reset_images = false;
                for (k, v) in query_pairs(query) {
                    match (k.as_ref(), v.as_ref()) {
                        ("reset_images", "true" | "1") => reset_images = true,
                        ("reset_images", "false" | "0" | "") => reset_images = false,
                        ("reset_images", other) => {
                            return Err(ActionError::BadParameter(format!(
                                "reset_images: {other:?} is not true/false"
                            )))
                        }
                        (other, _) => return Err(unknown_parameter(other)),
                    }
                }
                Ok(Self::Clear { reset_images })
            }
            "/instances" => {
                let mut function = None;
                for (k, v) in query_pairs(query) {
                    match k.as_ref() {
                        "name" => function = Some(checked_name(&v)?.to_string()),
                        other => return Err(unknown_parameter(other)),
                    }
                }
                Ok(Self::Instances { function })
            }
            "/scale" => {
                let (mut function, mut instances) = (None, None);
                for (k, v) in query_pairs(query) {
                    match k.as_ref() {
                        "name" => function = Some(checked_name(&v)?.to_string()),
                        "instances" => {
                            instances = Some(
                                v.parse::<u32>()
                                    .ok()
                                    .filter(|n| *n <= MAX_SCALE_INSTANCES)
                                    .ok_or_else(|| {
                                        ActionError::BadParameter(format!(
                                            "param 'instances' must be a whole number in \
                                             0..={MAX_SCALE_INSTANCES}, found {:?}",
                                            v.chars().take(32).collect::<String>()
                                        ))
                                    })?,
                            )
                        }
                        other => return Err(unknown_parameter(other)),
                    }
                }
                Ok(Self::Scale {
                    function: function.ok_or(ActionError::MissingName)?,
                    instances: instances.ok_or_else(|| {
                        ActionError::BadParameter("param 'instances' is not given".into())
                    })?,
                })
            }
            "/prepare" => Ok(Self::Prepare),
            "/health" => Ok(Self::Health),
            "/metrics" => Ok(Self::Metrics),
            _ => Err(ActionError::NotFound),
        }
    }
}

/// A function name from a query: not empty, at most [`MAX_NAME_BYTES`].
fn checked_name(name: &str) -> Result<&str, ActionError> {
    if name.is_empty() {
        return Err(ActionError::MissingName);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(ActionError::BadParameter(format!(
            "param 'name' is {} bytes long, at most {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(name)
}

fn unknown_parameter(name: &str) -> ActionError {
    ActionError::BadParameter(format!(
        "unknown parameter {:?}",
        name.chars().take(32).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_become_actions() {
        assert_eq!(
            Action::parse("/execute", "x=1&name=W%201"),
            Ok(Action::Execute {
                function: "W 1".into(),
                shape: CallParams::default()
            })
        );
        assert!(matches!(
            Action::parse("/execute", "name=F&memory_mb=64"),
            Ok(Action::Execute { shape, .. }) if shape.memory_mb == Some(64)
        ));
        assert!(matches!(
            Action::parse("/execute", "name=F&duration_ms=-1"),
            Err(ActionError::BadParameter(m)) if m.contains("duration_ms")
        ));
        assert_eq!(
            Action::parse("/execute", "names=W1"),
            Err(ActionError::MissingName)
        );
        assert_eq!(
            Action::parse("/execute", "name="),
            Err(ActionError::MissingName)
        );
        let long = format!("name={}", "W".repeat(MAX_NAME_BYTES + 1));
        assert!(matches!(
            Action::parse("/execute", &long),
            Err(ActionError::BadParameter(m)) if m.len() < 100
        ));
        assert_eq!(
            Action::parse("/configure", "using_rest_mode=true&image_limit=5"),
            Ok(Action::Configure {
                pairs: vec![
                    ("using_rest_mode".into(), "true".into()),
                    ("image_limit".into(), "5".into())
                ]
            })
        );
        assert_eq!(
            Action::parse("/clear", "reset_images=true"),
            Ok(Action::Clear { reset_images: true })
        );
        assert_eq!(
            Action::parse("/clear", ""),
            Ok(Action::Clear {
                reset_images: false
            })
        );
        assert!(matches!(
            Action::parse("/clear", "reset_images=maybe"),
            Err(ActionError::BadParameter(_))
        ));
        assert!(matches!(
            Action::parse("/clear", "all=1"),
            Err(ActionError::BadParameter(_))
        ));
        assert_eq!(Action::parse("/prepare", ""), Ok(Action::Prepare));
        assert_eq!(Action::parse("/health", "x"), Ok(Action::Health));
        assert_eq!(Action::parse("/metrics", ""), Ok(Action::Metrics));
        assert_eq!(Action::parse("/elsewhere", ""), Err(ActionError::NotFound));
    }

    #[test]
    fn scale_and_instances_are_checked() {
        assert_eq!(
            Action::parse("/instances", ""),
            Ok(Action::Instances { function: None })
        );
        assert_eq!(
            Action::parse("/instances", "name=W1"),
            Ok(Action::Instances {
                function: Some("W1".into())
            })
        );
        assert_eq!(
            Action::parse("/scale", "name=W1&instances=0"),
            Ok(Action::Scale {
                function: "W1".into(),
                instances: 0
            })
        );
        assert_eq!(
            Action::parse("/scale", "instances=2"),
            Err(ActionError::MissingName)
        );
        assert_eq!(
            Action::parse("/scale", "name=&instances=2"),
            Err(ActionError::MissingName)
        );
        let too_many = format!("name=W1&instances={}", MAX_SCALE_INSTANCES + 1);
        for bad in [
            "name=W1",
            "name=W1&instances=-1",
            "name=W1&instances=two",
            too_many.as_str(),
            "name=W1&instances=1&x=1",
        ] {
            assert!(
                matches!(Action::parse("/scale", bad), Err(ActionError::BadParameter(m)) if m.len() < 120),
                "{bad}"
            );
        }
        let long = format!("name={}", "W".repeat(MAX_NAME_BYTES + 1));
        assert!(matches!(
            Action::parse("/instances", &long),
            Err(ActionError::BadParameter(_))
        ));
        assert!(is_management("/scale"));
        assert!(!is_management("/instances"));
    }

    #[test]
    fn management_routes_change_state() {
        for path in ["/configure", "/clear", "/prepare"] {
            assert!(is_management(path));
        }
        for path in ["/execute", "/health", "/nope"] {
            assert!(!is_management(path));
        }
    }
}
