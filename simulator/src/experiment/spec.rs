//! The experiment file: everything that defines an experiment, in TOML.
//!
//! `simulator experiment --file exp.toml` reads it; a flag given on the
//! command line overrides the file's value (settings add to the file's,
//! a later one winning). Every field is optional; a missing one takes the
//! flag's default. The run writes the *resolved* file (every field filled
//! in, `time_scale = "auto"` replaced by the factor it chose, every worker
//! option and scheduler parameter with its value, defaults included) as
//! `experiment.toml` in its results directory and into `report.md`, so
//! `simulator experiment --file results/<name>/experiment.toml` runs the
//! same experiment again.
//!
//! ```toml
//! name = "ch-threshold"
//! mode = "des"                      # or "live"
//! scenario = "scenarios/small.csv"
//! algorithms = ["ch", "rr"]
//! workers = 4
//! runtime = "process"               # live mode: or "docker"
//! function_sched = "normal"         # live, process runtime: or "batch"
//! # cluster = "compose"             # live mode on a cluster: "compose" or
//! # worker_cpus = 1.0               #   a balancer URL; compose: CPUs and
//! # worker_memory = "1g"            #   memory of each worker container
//! seed = 0                          # repetition k uses seed + k
//! repeat = 5
//! time_scale = "auto"               # or a factor
//! target_seconds = 6.0
//! load_factor = 0.25
//! package_scale = 1.0
//! node_cores = 2                    # DES: cores of each node
//! # machine_cores = 2               # DES: nodes share one machine instead
//! instance_model = "lambda"         # or "hotfunctions" (the default)
//! keep_alive_policy = "lru"         # fixed, lru, greedy-dual, histogram, ewma
//! keep_alive_s = 600.0
//! node_memory_mb = 2048             # per node: instances' memory limit
//! retry_disturbed = 1               # live: rerun a disturbed run once
//! profile_variants = 8              # DES: also on 8 variants of the profile
//! strict = false                    # live: fail if a run is disturbed
//!
//! [settings]                        # worker options, scheduler parameters
//! USING_REST_MODE = false
//! "ch.T" = 8
//!
//! [sweep]                           # one parameter, one run set per value
//! param = "ch.T"                    # a setting, or workers, load_factor,
//! values = [2, 4, 8, 16]            # package_scale, node_cores
//! ```
//!
//! A resolved file also records the BLAKE2b-256 of the inputs it read
//! (`scenario_blake2b`, `catalog_blake2b`, and in DES mode
//! `profile_blake2b`, of the cost profile found). A run from it whose
//! input differs (the scenario was edited, the profile recalibrated) is
//! not the run that wrote it: it says so on stderr, in `run.json`
//! (`inputs_changed`) and at the top of `report.md`.
//!
//! A closed loop instead of the scenario (as `simulator load`; no
//! `scenario`, `time_scale` or `target_seconds` then, the functions run at
//! `fn_time_scale`, else `load_factor`, of their durations):
//!
//! ```text
//! clients = 8                       # --clients (or stages: "20,50,100")
//! duration = "20s"                  # --duration: how long clients call
//!                                   # (with stages: each stage)
//! functions = "catalog"             # --functions: uniform, zipf:S, ...
//! think = "exp:50"                  # --think (or think_ms = 50.0)
//! # names = "W1,W2,W3"              # --names (uniform, zipf)
//! load_seed = 1                     # --load-seed; repetition k: + k
//! grace = "30s"                     # --grace
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use worker_front::runtime::spawn::FunctionSched;

use super::{Mode, WorkerRuntime};

/// A scalar of the file (settings and sweep values): written as TOML
/// booleans, integers, floats or strings, used as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    /// The value as the command line would give it.
    pub fn text(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Text(s) => s.clone(),
        }
    }

    /// A value read from text: a number or boolean if it is one.
    pub fn from_text(s: &str) -> Self {
        if let Ok(b) = s.parse::<bool>() {
            Self::Bool(b)
        } else if let Ok(i) = s.parse::<i64>() {
            Self::Int(i)
        } else if let Ok(f) = s.parse::<f64>() {
            Self::Float(f)
        } else {
            Self::Text(s.to_string())
        }
    }
}

/// `time_scale`: a factor, or `"auto"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TimeScaleValue {
    Factor(f64),
    Text(String),
}

/// One swept parameter and its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// A worker option or scheduler parameter (`ch.T`, `T`,
    /// `USING_REST_MODE`, ...), or one of [`SWEEP_FIELDS`].
    pub param: String,
    pub values: Vec<Scalar>,
}

/// Experiment fields a sweep can vary besides the settings.
pub const SWEEP_FIELDS: &[&str] = &[
    "workers",
    "load_factor",
    "package_scale",
    "node_cores",
    "machine_cores",
];

/// Limit on a sweep's values and on repetitions (each is a whole run).
pub const MAX_POINTS: usize = 1_000;

impl Sweep {
    /// Parses `--sweep NAME=V1,V2,...`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, values) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=V1,V2,..., found {s:?}"))?;
        let values: Vec<Scalar> = values
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(Scalar::from_text)
            .collect();
        if values.is_empty() {
            return Err(format!("--sweep {name}: no values"));
        }
        Ok(Self {
            param: name.trim().to_string(),
            values,
        })
    }
}

/// `clients` in the file: a count (`8`) or stages (`"20,50,100"`, as
/// `--clients`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClientsValue {
    Count(u64),
    Stages(String),
}

impl ClientsValue {
    /// The stages, checked (`--clients`' bounds and messages).
    pub fn stages(&self) -> Result<des::Stages, des::source::ClosedLoopError> {
        match self {
            Self::Count(n) => des::source::check_clients(*n).map(des::Stages::one),
            Self::Stages(list) => des::Stages::parse(list),
        }
    }

    /// How a resolved file writes `stages`: a count for one stage.
    pub fn of(stages: &des::Stages) -> Self {
        if stages.is_single() {
            Self::Count(stages.max().into())
        } else {
            Self::Stages(stages.to_string())
        }
    }
}

/// The experiment file. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    /// Version of the simulator that wrote a resolved file (ignored when
    /// read; a mismatch is reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<PathBuf>,
    /// Live mode: a catalog file given to every worker (`--catalog`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<WorkerRuntime>,
    /// Live mode, process runtime: how the workers schedule their
    /// function processes (`--function-sched`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_sched: Option<FunctionSched>,
    /// Live mode on a cluster: `"compose"` or a balancer URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// `cluster = "compose"`: CPUs of each worker container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_cpus: Option<f64>,
    /// `cluster = "compose"`: memory limit of each worker container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<TimeScaleValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fn_time_scale: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_scale: Option<f64>,
    /// A scenario: only the events starting before this scenario time
    /// (`90s`, `5m`); a closed loop: how long the clients call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// A closed loop instead of a scenario (`simulator load --clients`):
    /// a count, or stages as a string (`"20,50,100"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<ClientsValue>,
    /// The closed loop's function mix (`--functions`: uniform, zipf:S,
    /// catalog, catalog:FILE, file:FILE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functions: Option<String>,
    /// The closed loop's think time (`--think`: none, MS, const:MS, exp:MS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think: Option<String>,
    /// A constant think time, ms (`--think-ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think_ms: Option<f64>,
    /// Names for uniform and zipf mixes (`--names`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names: Option<String>,
    /// Seed of the clients' choices; repetition k uses load_seed + k.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_seed: Option<u64>,
    /// After the duration, how long calls in flight may finish (`30s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_cores: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_cores: Option<u32>,
    /// `hotfunctions` or `lambda`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_model: Option<String>,
    /// `fixed`, `lru`, `greedy-dual`, `histogram`, `ewma`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_memory_mb: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_disturbed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_variants: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, Scalar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    /// BLAKE2b-256 of the scenario a run from this file read (a resolved
    /// file records it; a run whose scenario differs says so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario_blake2b: Option<String>,
    /// BLAKE2b-256 of the `catalog` file, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_blake2b: Option<String>,
    /// DES mode: BLAKE2b-256 of the cost profile the simulation ran on,
    /// likewise (the profile is found as `simulator des` finds it, so a
    /// recalibration changes it under the same file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_blake2b: Option<String>,
}

/// A file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Largest experiment file read (a file is a few hundred bytes).
const MAX_FILE_BYTES: u64 = 1 << 20;

impl ExperimentFile {
    /// Reads and parses a file; errors name it (and the line, for TOML
    /// errors).
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let read = |source| FileError::Read {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_FILE_BYTES {
            return Err(FileError::Parse {
                path: path.to_path_buf(),
                message: format!("{len} bytes: not an experiment file (limit {MAX_FILE_BYTES})"),
            });
        }
        let text = protocol::text::read_to_string(path).map_err(read)?;
        Self::parse(&text).map_err(|message| FileError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        protocol::strict::deserialize(toml::Deserializer::new(text))
            .map_err(|e| e.to_string().trim_end().to_string())
    }

    /// The file's TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot write the file: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example() {
        let doc = include_str!("spec.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let f = ExperimentFile::parse(&example).unwrap();
        assert_eq!(f.mode, Some(Mode::Des));
        assert_eq!(f.repeat, Some(5));
        assert_eq!(f.settings["ch.T"], Scalar::Int(8));
        assert_eq!(f.settings["USING_REST_MODE"], Scalar::Bool(false));
        let sweep = f.sweep.clone().unwrap();
        assert_eq!(sweep.param, "ch.T");
        assert_eq!(sweep.values.len(), 4);
        assert_eq!(f.time_scale, Some(TimeScaleValue::Text("auto".into())));
        // Written and read back unchanged.
        assert_eq!(ExperimentFile::parse(&f.to_toml()).unwrap(), f);
    }

    #[test]
    fn unknown_keys_and_bad_types_name_the_line() {
        let e = ExperimentFile::parse("name = \"x\"\nworkrs = 4\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("workrs"), "{e}");
        let e = ExperimentFile::parse("workers = \"four\"\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = ExperimentFile::parse("mode = \"quantum\"\n").unwrap_err();
        assert!(e.contains("quantum") || e.contains("variant"), "{e}");
        // A table, not an array read by position (serde's derive would
        // take this for param "ch.T" with values 2 and 4).
        let e = ExperimentFile::parse("name = \"x\"\nsweep = [\"ch.T\", [2, 4]]\n").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("invalid type: sequence, expected struct Sweep"),
            "{e}"
        );
    }

    #[test]
    fn sweeps_parse_from_the_command_line() {
        let s = Sweep::parse("ch.T=2,4, 8").unwrap();
        assert_eq!(s.param, "ch.T");
        assert_eq!(
            s.values,
            vec![Scalar::Int(2), Scalar::Int(4), Scalar::Int(8)]
        );
        assert_eq!(
            Sweep::parse("load_factor=0.1,0.5").unwrap().values[0],
            Scalar::Float(0.1)
        );
        assert!(Sweep::parse("ch.T").is_err());
        assert!(Sweep::parse("ch.T=").is_err());
    }
}
