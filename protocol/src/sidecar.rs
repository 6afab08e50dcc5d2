//! The run description written beside every replay and simulation log:
//! `<log>.meta.json` (so `logs/rr.log` has `logs/rr.log.meta.json`).
//!
//! The original's log format has no header, and its tools read every line
//! as a call, so what a run *was* (its cluster, algorithm, parameters, seed,
//! scales, version) goes into a JSON file next to the log rather than into
//! it. Analysis reads the cluster size from here instead of inferring it
//! from the largest `WorkerNodeId` seen (which undercounts idle nodes and
//! made two runs of one table disagree); a log without a sidecar (the
//! original's, or an older one of ours) keeps the inferred count, and an
//! explicit `--nodes` overrides both.
//!
//! Every field a reader needs is required; producer-specific details go in
//! [`RunSidecar::extra`], which readers may ignore. New fields are added
//! with `#[serde(default)]` so older sidecars keep parsing; [`FORMAT`]
//! changes only if a field changes meaning.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version of this file's layout.
pub const FORMAT: u32 = 1;

/// What is appended to a log's file name to name its sidecar.
pub const SUFFIX: &str = ".meta.json";

/// The sidecar of `log`: the same path with [`SUFFIX`] appended.
pub fn sidecar_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(SUFFIX);
    PathBuf::from(name)
}

/// True if `path` names a sidecar (so directory scans can skip it).
pub fn is_sidecar(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.ends_with(SUFFIX))
}

/// Everything that describes one run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSidecar {
    /// [`FORMAT`] when written.
    pub format: u32,
    /// What wrote the log: `simulator replay`, `simulator des`, ...
    pub producer: String,
    /// The producer's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The revision of the sources the producer's binary was built from
    /// (absent if built outside a git checkout).
    #[serde(default)]
    pub git: Option<GitRevision>,
    /// When the run started, `YYYY-MM-DD HH:MM:SS UTC`.
    pub started_utc: String,
    /// The nodes the calls could go to (idle ones included).
    pub cluster: Cluster,
    /// The scheduling algorithm's canonical name, if one was known.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Every resolved parameter of the algorithm, defaults included.
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Seed of the run's randomness (scheduler RNG, simulator).
    #[serde(default)]
    pub seed: Option<u64>,
    /// The scenario or workload file the calls came from.
    #[serde(default)]
    pub scenario: Option<String>,
    /// BLAKE2b-256 of that file's bytes, in lowercase hex, when the
    /// producer read one: which scenario it was, whatever its path (a
    /// path can be regenerated or overwritten after the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_blake2b: Option<String>,
    /// Time and size scales applied to the scenario.
    #[serde(default)]
    pub scales: Scales,
    /// Producer-specific details (readers may ignore them).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The cluster of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Number of nodes, idle ones included: the analyzer's node count.
    pub size: usize,
    /// The nodes by `WorkerNodeId`, with their URL where they have one
    /// (live runs). May be empty when only the size is known.
    #[serde(default)]
    pub nodes: Vec<Node>,
}

/// One node of a run's cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The `WorkerNodeId` the balancer's replies carry for it.
    pub id: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Scales of a run (1 = none).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scales {
    /// Replay speed-up (events sent this many times faster); 1 in a
    /// simulation's virtual time unless it models a scaled live run.
    pub time_scale: f64,
    /// `HF_TIME_SCALE` of the functions' work and sleeps.
    #[serde(default)]
    pub fn_time_scale: Option<f64>,
    /// `HF_PACKAGE_SCALE` of the packages.
    #[serde(default)]
    pub package_scale: Option<f64>,
}

impl Default for Scales {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            fn_time_scale: None,
            package_scale: None,
        }
    }
}

/// A source revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRevision {
    /// Full commit hash of `HEAD`.
    pub commit: String,
    /// True if tracked or new source files differed from `HEAD` when the
    /// binary was built (outputs under `results/` and build products do
    /// not count).
    pub dirty: bool,
}

impl std::fmt::Display for GitRevision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = self.commit.get(..12).unwrap_or(&self.commit);
        write!(f, "{short}{}", if self.dirty { "-dirty" } else { "" })
    }
}

impl RunSidecar {
    /// A sidecar with the required fields; the rest empty.
    pub fn new(producer: &str, version: &str, started_utc: String, cluster: Cluster) -> Self {
        Self {
            format: FORMAT,
            producer: producer.to_string(),
            version: version.to_string(),
            git: None,
            started_utc,
            cluster,
            algorithm: None,
            parameters: serde_json::Map::new(),
            seed: None,
            scenario: None,
            scenario_blake2b: None,
            scales: Scales::default(),
            extra: serde_json::Map::new(),
        }
    }

    /// Parses a sidecar's text.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        crate::strict::from_json_str(text)
    }

    /// The sidecar's text (pretty JSON with a final newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    }
}

impl Cluster {
    /// `size` nodes numbered `0..size`, without URLs.
    pub fn of_size(size: usize) -> Self {
        Self {
            size,
            nodes: Vec::new(),
        }
    }

    /// Nodes numbered in the order of `urls`.
    pub fn from_urls<S: AsRef<str>>(urls: &[S]) -> Self {
        Self {
            size: urls.len(),
            nodes: urls
                .iter()
                .enumerate()
                .map(|(id, u)| Node {
                    id,
                    url: Some(u.as_ref().to_string()),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_path_appends_the_suffix() {
        assert_eq!(
            sidecar_path(Path::new("logs/rr.log")),
            PathBuf::from("logs/rr.log.meta.json")
        );
        assert!(is_sidecar(Path::new("logs/rr.log.meta.json")));
        assert!(!is_sidecar(Path::new("logs/rr.log")));
    }

    #[test]
    fn round_trips_and_reads_minimal_files() {
        let mut s = RunSidecar::new(
            "simulator des",
            "0.1.0",
            "2026-12-02 06:00:00 UTC".into(),
            Cluster::from_urls(&["http://a", "http://b"]),
        );
        s.algorithm = Some("ch".into());
        s.seed = Some(7);
        s.git = Some(GitRevision {
            commit: "0123456789abcdef".into(),
            dirty: true,
        });
        assert_eq!(RunSidecar::parse(&s.to_json()).unwrap(), s);
        assert_eq!(s.git.as_ref().unwrap().to_string(), "0123456789ab-dirty");

        let minimal = r#"{"format":1,"producer":"x","version":"0","started_utc":"t",
            "cluster":{"size":1000}}"#;
        let m = RunSidecar::parse(minimal).unwrap();
        assert_eq!(m.cluster.size, 1000);
        assert_eq!(m.scales.time_scale, 1.0);
        assert!(RunSidecar::parse(r#"{"format":1}"#).is_err());
    }
}
