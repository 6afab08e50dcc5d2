//! Cost profile: how long the worker's cold and warm paths take, per
//! runtime and machine, as measured by `simulator calibrate`.
//!
//! Every cost is worker overhead around the function itself, in
//! milliseconds: what the worker's `ExecutionTime` adds to the function's
//! `InternalExecutionTime` on that path. The function's own work comes from
//! its phases (the sample catalog), scaled by `cpu_scale`.
//!
//! | field | path | meaning |
//! |---|---|---|
//! | `image_build_base_ms`, `image_build_ms_per_mb` | first call of a function (`ImageBuilt`) | build cost `a + b · MB` (decimal MB of package) |
//! | `instance_create_ms` | per-call instance, no pool (HotFunctions default) | create + start + remove an instance |
//! | `pooled_ms` | per-call instance taken from the pre-warmed pool | run in a started instance |
//! | `rest_start_ms` | REST mode, no live instance | start a long-lived instance |
//! | `rest_warm_ms` | REST mode, live instance | one request to it |
//! | `instance_load_ms_per_mb` | every instance start (per-call, pooled, REST, Lambda cold) | extra start cost per MB of package: an instance loads its package (`hf-fn` reads its payload), so `instance_create_ms`, `rest_start_ms` and `lambda_cold_ms` (measured with `noop`, 0 B) grow by this much per MB |
//! | `lambda_cold_ms`, `lambda_warm_ms` | one-request-per-instance keep-alive | cold start / reuse of an idle instance |
//! | `network_ms` | every call | client ↔ worker transport (HTTP round trip of a direct call), outside `ExecutionTime` |
//! | `balancer_ms` | every call | the balancer hop: round trip of a warm call through a balancer minus that of the same call sent directly (0 when not measured) |
//! | `cpu_scale` | CPU phases | measured CPU time / catalog CPU time on this machine |
//!
//! Loaded with `deny_unknown_fields`; missing fields take the defaults of
//! [`CostProfile::default`] (all zero costs, `cpu_scale` 1), which is the
//! profile of an ideal platform (used by the SimFaaS oracle test).
//! [`CostProfile::load`] notes the file it read in [`CostProfile::file`],
//! so a run's summary says which profile it used.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Worker path costs, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostProfile {
    /// Free text: the runtime and machine the profile was measured on.
    pub description: String,
    /// `process` or `docker` (informational).
    pub runtime: String,
    /// Cores of the machine it was measured on (the default `--cores`).
    pub cores: u32,
    pub image_build_base_ms: f64,
    pub image_build_ms_per_mb: f64,
    pub instance_create_ms: f64,
    pub pooled_ms: f64,
    pub rest_start_ms: f64,
    pub rest_warm_ms: f64,
    /// Extra cost of any instance start per MB (decimal) of package.
    pub instance_load_ms_per_mb: f64,
    pub lambda_cold_ms: f64,
    pub lambda_warm_ms: f64,
    pub network_ms: f64,
    /// Extra round trip of a call through the load balancer.
    pub balancer_ms: f64,
    pub cpu_scale: f64,
    /// Raw measurements behind the fitted numbers (kept for the record).
    pub samples: serde_json::Value,
    /// The file it was read from ([`CostProfile::load`] sets it): recorded
    /// in run summaries and sidecars, never read from a profile file.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl Default for CostProfile {
    fn default() -> Self {
        Self {
            description: "ideal platform: no overheads".into(),
            runtime: "ideal".into(),
            cores: 2,
            image_build_base_ms: 0.0,
            image_build_ms_per_mb: 0.0,
            instance_create_ms: 0.0,
            pooled_ms: 0.0,
            rest_start_ms: 0.0,
            rest_warm_ms: 0.0,
            instance_load_ms_per_mb: 0.0,
            lambda_cold_ms: 0.0,
            lambda_warm_ms: 0.0,
            network_ms: 0.0,
            balancer_ms: 0.0,
            cpu_scale: 1.0,
            samples: serde_json::Value::Null,
            file: None,
        }
    }
}

/// A profile file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read cost profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cost profile {path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("cost profile {path}: {field} must be a finite number >= 0 (is {value})")]
    Invalid {
        path: String,
        field: &'static str,
        value: f64,
    },
}

impl CostProfile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let name = path.display().to_string();
        let text = protocol::text::read_to_string(path).map_err(|source| ProfileError::Read {
            path: name.clone(),
            source,
        })?;
        let profile: Self =
            protocol::strict::from_json_str(&text).map_err(|source| ProfileError::Parse {
                path: name.clone(),
                source,
            })?;
        profile.check(&name)?;
        Ok(Self {
            file: Some(name),
            ..profile
        })
    }

    /// Every cost finite and non-negative, `cpu_scale` positive.
    pub fn check(&self, name: &str) -> Result<(), ProfileError> {
        let fields: [(&'static str, f64); 12] = [
            ("image_build_base_ms", self.image_build_base_ms),
            ("image_build_ms_per_mb", self.image_build_ms_per_mb),
            ("instance_create_ms", self.instance_create_ms),
            ("pooled_ms", self.pooled_ms),
            ("rest_start_ms", self.rest_start_ms),
            ("rest_warm_ms", self.rest_warm_ms),
            ("instance_load_ms_per_mb", self.instance_load_ms_per_mb),
            ("lambda_cold_ms", self.lambda_cold_ms),
            ("lambda_warm_ms", self.lambda_warm_ms),
            ("network_ms", self.network_ms),
            ("balancer_ms", self.balancer_ms),
            ("cpu_scale", self.cpu_scale),
        ];
        for (field, value) in fields {
            let bad = !value.is_finite() || value < 0.0 || (field == "cpu_scale" && value == 0.0);
            if bad {
                return Err(ProfileError::Invalid {
                    path: name.to_string(),
                    field,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Extra start cost of an instance of a package of `bytes`, in ms.
    pub fn instance_load_ms(&self, bytes: u64) -> f64 {
        self.instance_load_ms_per_mb * bytes as f64 / 1e6
    }

    /// Image build cost of a package of `bytes`, in ms.
    pub fn image_build_ms(&self, bytes: u64) -> f64 {
        self.image_build_base_ms + self.image_build_ms_per_mb * bytes as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_profiles_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        std::fs::write(&p, r#"{"pooled_ms": -1}"#).unwrap();
        let e = CostProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("pooled_ms") && e.contains("p.json"), "{e}");
        std::fs::write(&p, r#"{"typo_ms": 1}"#).unwrap();
        let e = CostProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("typo_ms"), "{e}");
        // serde's derive would read an array by position: `[]` as the
        // default profile, `["x"]` as a description.
        for text in ["[]", "[\"x\"]"] {
            std::fs::write(&p, text).unwrap();
            let e = CostProfile::load(&p).unwrap_err().to_string();
            assert!(e.contains("invalid type: sequence"), "{text}: {e}");
        }
        std::fs::write(
            &p,
            r#"{"image_build_ms_per_mb": 2.5, "image_build_base_ms": 100}"#,
        )
        .unwrap();
        let ok = CostProfile::load(&p).unwrap();
        assert_eq!(ok.image_build_ms(10_000_000), 125.0);
        assert_eq!(ok.file.as_deref(), Some(p.display().to_string().as_str()));
        // Where a profile was read from is not part of it.
        std::fs::write(&p, r#"{"file": "elsewhere.json"}"#).unwrap();
        let e = CostProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
    }
}
