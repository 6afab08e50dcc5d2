//! The scheduler registry: every algorithm's name, aliases, parameters
//! (typed, with docs, defaults and valid ranges) and constructor.
//!
//! Each algorithm defines one [`Algorithm`] (`pub const ALGORITHM`) in its
//! own file, and the table in [`super`] lists it in one line
//! ([`REGISTRY`]). Everything that names algorithms or sets their
//! parameters reads the table: the balancer's CLI and `/configure`, the
//! discrete-event simulator and the experiment, and the tests that iterate
//! algorithms. Parameters are parsed and validated here only, so every
//! driver accepts and rejects the same values.
//!
//! # Setting parameters
//! One key language, `key=value`, for flags, `/configure` queries and the
//! serialized form:
//! - `<alg>.<NAME>` sets one algorithm's parameter (`ch.T=4`,
//!   `tradeoff.ALPHA=0.2`; an alias works too: `hash.T=4`);
//! - a bare `<NAME>` sets it in every algorithm that has it, as the
//!   original's environment variables do (`T=4` sets `ch.T` and `pasch.T`);
//! - `seed` is the run's seed, handed to every randomized algorithm.
//!
//! [`ParamSet`] holds every algorithm's values (the balancer keeps one, so
//! that switching algorithm keeps what was set); [`SchedulerConfig`] is one
//! algorithm with its resolved values, and builds the scheduler.
//!
//! ```
//! use policy::scheduler::{ParamSet, SchedulerConfig};
//!
//! // A CLI: algorithm name and `key=value` pairs in, a scheduler out.
//! let config = SchedulerConfig::new("hash", [("T", "4"), ("seed", "7")]).unwrap();
//! assert_eq!(config.name(), "ch");
//! let scheduler = config.build();
//! assert_eq!(scheduler.name(), "ch");
//! // Resolved values (defaults included) serialize for the run's record.
//! let mut all = ParamSet::default();
//! all.set("ch.T", "4").unwrap();
//! assert!(all.set("T", "0").is_err()); // and nothing changed
//! assert_eq!(all.scheduler("ch").unwrap().count(&policy::scheduler::consistent_hash::T), 4);
//! ```
//!
//! # Serialized form
//! A [`ParamSet`] serializes as a flat object in the same key language:
//! a bare `NAME` where every algorithm that has it holds the same value,
//! `<alg>.<NAME>` for each where they differ, then `seed`, e.g.
//! `{"T":8,"T1":8,"T2":5,"T3":3,"ALPHA":0.0,"BETA":0.5,"seed":0}` (the
//! original's flat parameter object, which therefore still reads back).
//! Reading applies every key with [`ParamSet::set`], so unknown keys and
//! invalid values are refused as from a CLI. A [`SchedulerConfig`]
//! serializes as `{"algorithm":"ch","params":{"T":8},"seed":0}`.

use std::fmt::Write as _;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use super::{Scheduler, REGISTRY};

/// A registered algorithm: defined in its own file, listed by one line in
/// the table ([`REGISTRY`]).
#[derive(Debug, Clone, Copy)]
pub struct Algorithm {
    /// Canonical name, as reported in `LoadBalancingInfo.Algorithm`.
    pub name: &'static str,
    /// Other names it answers to (`hash` for `ch`).
    pub aliases: &'static [&'static str],
    /// One line: what it does and where it comes from.
    pub summary: &'static str,
    /// Its parameters (beside the run's `seed`), in display order.
    pub params: &'static [Param],
    /// Whether an experiment compares it when no list is given.
    pub compared_by_default: bool,
    /// Builds it, with no members yet, from its resolved parameters.
    pub build: fn(&SchedulerConfig) -> Box<dyn Scheduler>,
}

/// One parameter of an algorithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param {
    Count(Count),
    Probability(Probability),
    Real(Real),
}

/// A whole-number parameter in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// The original's environment name (`T`, `T1`, ...).
    pub name: &'static str,
    pub doc: &'static str,
    pub default: u32,
    pub min: u32,
    pub max: u32,
}

/// A probability in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probability {
    /// The original's environment name (`ALPHA`, `BETA`).
    pub name: &'static str,
    pub doc: &'static str,
    pub default: f64,
}

/// A real number in `min..=max` (a factor, a time in seconds, a weight).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Real {
    pub name: &'static str,
    pub doc: &'static str,
    pub default: f64,
    pub min: f64,
    pub max: f64,
}

/// A parameter's resolved value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Count(u32),
    Probability(f64),
    Real(f64),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Count(n) => serializer.serialize_u32(n),
            Self::Probability(p) | Self::Real(p) => serializer.serialize_f64(p),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Probability(p) | Self::Real(p) => write!(f, "{p}"),
        }
    }
}

impl Param {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Count(c) => c.name,
            Self::Probability(p) => p.name,
            Self::Real(r) => r.name,
        }
    }

    pub fn doc(&self) -> &'static str {
        match self {
            Self::Count(c) => c.doc,
            Self::Probability(p) => p.doc,
            Self::Real(r) => r.doc,
        }
    }

    pub fn default_value(&self) -> Value {
        match self {
            Self::Count(c) => Value::Count(c.default),
            Self::Probability(p) => Value::Probability(p.default),
            Self::Real(r) => Value::Real(r.default),
        }
    }

    /// The valid values, in words (`1..=10000`, `[0, 1]`).
    pub fn range(&self) -> String {
        match self {
            Self::Count(c) if c.max == u32::MAX => format!(">= {}", c.min),
            Self::Count(c) => format!("{}..={}", c.min, c.max),
            Self::Probability(_) => "[0, 1]".to_string(),
            Self::Real(r) => format!("[{}, {}]", r.min, r.max),
        }
    }

    /// Parses and checks `text`; the error says what is wrong, not where.
    pub fn parse(&self, text: &str) -> Result<Value, String> {
        let text = text.trim();
        match self {
            Self::Count(c) => {
                let n: u32 = text
                    .parse()
                    .map_err(|_| format!("not a whole number (valid: {})", self.range()))?;
                if n < c.min || n > c.max {
                    return Err(format!("out of range (valid: {})", self.range()));
                }
                Ok(Value::Count(n))
            }
            Self::Probability(_) => {
                let p: f64 = text
                    .parse()
                    .map_err(|_| "not a number (valid: a probability in [0, 1])".to_string())?;
                if !(0.0..=1.0).contains(&p) {
                    return Err("out of range (valid: a probability in [0, 1])".into());
                }
                Ok(Value::Probability(p))
            }
            Self::Real(r) => {
                let x: f64 = text
                    .parse()
                    .map_err(|_| format!("not a number (valid: {})", self.range()))?;
                if !(r.min..=r.max).contains(&x) {
                    return Err(format!("out of range (valid: {})", self.range()));
                }
                Ok(Value::Real(x))
            }
        }
    }
}

/// The key of the run's seed.
pub const SEED: &str = "seed";

/// An unknown algorithm name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm {name:?}; known: {known}")]
pub struct UnknownAlgorithm {
    pub name: String,
    /// The registered names, as [`known_algorithms`] lists them.
    pub known: String,
}

impl UnknownAlgorithm {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            known: known_algorithms(),
        }
    }
}

/// A parameter setting that was refused (and changed nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown scheduler parameter {key:?}; known: {known}")]
    Unknown { key: String, known: String },
    #[error("scheduler parameter {key:?}: {source}")]
    Algorithm {
        key: String,
        source: UnknownAlgorithm,
    },
    #[error("scheduler parameter {key}={value:?}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("expected a scheduler parameter as <key>=<value>, got {0:?}")]
    NotAnAssignment(String),
}

impl ParamError {
    /// The key the error is about (the whole text for a non-assignment).
    pub fn key(&self) -> &str {
        match self {
            Self::Unknown { key, .. } | Self::Algorithm { key, .. } | Self::Invalid { key, .. } => {
                key
            }
            Self::NotAnAssignment(text) => text,
        }
    }
}

/// Why [`SchedulerConfig::new`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Algorithm(#[from] UnknownAlgorithm),
    #[error(transparent)]
    Param(#[from] ParamError),
}

/// The algorithm called `name` (canonical or alias).
pub fn find(name: &str) -> Result<&'static Algorithm, UnknownAlgorithm> {
    REGISTRY
        .iter()
        .find(|a| a.name == name || a.aliases.contains(&name))
        .ok_or_else(|| UnknownAlgorithm::new(name))
}

/// The canonical name of `name` (`hash` is `ch`).
pub fn canonical_name(name: &str) -> Result<&'static str, UnknownAlgorithm> {
    find(name).map(|a| a.name)
}

/// Every canonical name, in table order.
pub fn names() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|a| a.name)
}

/// The algorithms an experiment compares when none are named.
pub fn default_algorithms() -> impl Iterator<Item = &'static str> {
    REGISTRY
        .iter()
        .filter(|a| a.compared_by_default)
        .map(|a| a.name)
}

/// `rr, ll, ch (alias hash), pasch, ours, tradeoff`: the names for help
/// texts and errors.
pub fn known_algorithms() -> String {
    let mut out = String::new();
    for (i, a) in REGISTRY.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(a.name);
        if !a.aliases.is_empty() {
            let _ = write!(out, " (alias {})", a.aliases.join(", alias "));
        }
    }
    out
}

/// One line per algorithm: `name (aliases): summary`.
pub fn algorithms_help() -> String {
    let mut out = String::new();
    for a in REGISTRY {
        let _ = write!(out, "\n  {}", a.name);
        for alias in a.aliases {
            let _ = write!(out, " | {alias}");
        }
        let _ = write!(out, ": {}", a.summary);
    }
    out
}

/// One line per parameter: key, default, valid values and doc; then
/// `seed` and the key rules.
pub fn params_help() -> String {
    let mut out = String::new();
    for a in REGISTRY {
        for p in a.params {
            let _ = write!(
                out,
                "\n  {}.{} (default {}, {}): {}",
                a.name,
                p.name(),
                p.default_value(),
                p.range(),
                p.doc()
            );
        }
    }
    let _ = write!(
        out,
        "\n  {SEED} (default 0): seed of every randomized algorithm's RNG\n\
         A bare NAME (T=4) sets NAME in every algorithm that has it."
    );
    out
}

/// `key=value` split at the first `=`.
pub fn parse_assignment(text: &str) -> Result<(&str, &str), ParamError> {
    text.split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .map(|(k, v)| (k.trim(), v))
        .ok_or_else(|| ParamError::NotAnAssignment(text.to_string()))
}

/// Every bare parameter name, first appearance in table order.
pub fn param_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for p in REGISTRY.iter().flat_map(|a| a.params) {
        if !names.contains(&p.name()) {
            names.push(p.name());
        }
    }
    names
}

/// `seed, T (ch, pasch), ...`: the keys for errors.
fn known_keys() -> String {
    let mut out = String::from(SEED);
    for name in param_names() {
        let owners: Vec<&str> = REGISTRY
            .iter()
            .filter(|a| a.params.iter().any(|p| p.name() == name))
            .map(|a| a.name)
            .collect();
        let _ = write!(out, ", {name} ({})", owners.join(", "));
    }
    out.push_str("; or <algorithm>.<NAME>");
    out
}

/// Every algorithm's parameter values and the run's seed.
///
/// Always valid: [`ParamSet::set`] checks a value before storing it, and
/// a refused setting changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSet {
    seed: u64,
    /// Per entry of [`REGISTRY`], its parameters' values in order.
    values: Vec<Vec<Value>>,
}

impl Default for ParamSet {
    /// Every default, seed 0.
    fn default() -> Self {
        Self {
            seed: 0,
            values: REGISTRY
                .iter()
                .map(|a| a.params.iter().map(Param::default_value).collect())
                .collect(),
        }
    }
}

impl ParamSet {
    /// The defaults with `settings` applied in order (all or nothing).
    pub fn from_settings<K, V>(
        settings: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ParamError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut set = Self::default();
        set.apply(settings)?;
        Ok(set)
    }

    /// Applies `settings` in order; on an error nothing changes.
    pub fn apply<K, V>(
        &mut self,
        settings: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), ParamError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut next = self.clone();
        for (key, value) in settings {
            next.set(key.as_ref(), value.as_ref())?;
        }
        *self = next;
        Ok(())
    }

    /// Sets `key` (`<alg>.<NAME>`, a bare `NAME`, or `seed`) to `value`;
    /// on an error nothing changes.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ParamError> {
        let invalid = |reason: String| ParamError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        if key == SEED {
            self.seed = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a whole number in 0..2^64".into()))?;
            return Ok(());
        }
        let targets = Self::targets(key)?;
        let mut parsed = Vec::with_capacity(targets.len());
        for &(a, p) in &targets {
            let param = &REGISTRY[a].params[p];
            let v = param.parse(value).map_err(|reason| {
                invalid(if key.contains('.') {
                    reason
                } else {
                    format!("{}.{}: {reason}", REGISTRY[a].name, param.name())
                })
            })?;
            parsed.push((a, p, v));
        }
        for (a, p, v) in parsed {
            self.values[a][p] = v;
        }
        Ok(())
    }

    /// Whether `key` is a scheduler parameter's (`seed`, a known bare
    /// name, or `<x>.<y>`), as opposed to, e.g., a worker option: what
    /// `/configure` keeps for the scheduler rather than forwarding.
    pub fn claims(key: &str) -> bool {
        key == SEED
            || key.contains('.')
            || REGISTRY
                .iter()
                .flat_map(|a| a.params)
                .any(|p| p.name() == key)
    }

    /// (algorithm, parameter) indices that `key` sets.
    fn targets(key: &str) -> Result<Vec<(usize, usize)>, ParamError> {
        if let Some((alg, name)) = key.split_once('.') {
            let algorithm = find(alg).map_err(|source| ParamError::Algorithm {
                key: key.to_string(),
                source,
            })?;
            let a = REGISTRY
                .iter()
                .position(|r| r.name == algorithm.name)
                .unwrap_or_default();
            return match algorithm.params.iter().position(|p| p.name() == name) {
                Some(p) => Ok(vec![(a, p)]),
                None => Err(ParamError::Unknown {
                    key: key.to_string(),
                    known: if algorithm.params.is_empty() {
                        format!("{} has no parameters", algorithm.name)
                    } else {
                        algorithm
                            .params
                            .iter()
                            .map(|p| format!("{}.{}", algorithm.name, p.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                }),
            };
        }
        let targets: Vec<(usize, usize)> = REGISTRY
            .iter()
            .enumerate()
            .flat_map(|(a, alg)| {
                alg.params
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.name() == key)
                    .map(move |(p, _)| (a, p))
            })
            .collect();
        if targets.is_empty() {
            return Err(ParamError::Unknown {
                key: key.to_string(),
                known: known_keys(),
            });
        }
        Ok(targets)
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The value of `<algorithm>.<name>`, if that parameter exists.
    pub fn value(&self, algorithm: &str, name: &str) -> Option<Value> {
        let a = REGISTRY.iter().position(|r| r.name == algorithm)?;
        let p = REGISTRY[a].params.iter().position(|p| p.name() == name)?;
        Some(self.values[a][p])
    }

    /// One algorithm with its values from this set.
    pub fn scheduler(&self, algorithm: &str) -> Result<SchedulerConfig, UnknownAlgorithm> {
        let name = canonical_name(algorithm)?;
        let a = REGISTRY
            .iter()
            .position(|r| r.name == name)
            .unwrap_or_default();
        Ok(SchedulerConfig {
            algorithm: a,
            values: self.values[a].clone(),
            seed: self.seed,
        })
    }

    /// Builds `algorithm` with this set's values (no members yet).
    pub fn build(&self, algorithm: &str) -> Result<Box<dyn Scheduler>, UnknownAlgorithm> {
        Ok(self.scheduler(algorithm)?.build())
    }

    /// The entries of the serialized form, in order: a bare `NAME` where
    /// every algorithm having it agrees, `<alg>.<NAME>` where they do not,
    /// then `seed` (see the module doc).
    pub fn entries(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for name in param_names() {
            let holders: Vec<(&str, Value)> = REGISTRY
                .iter()
                .zip(&self.values)
                .flat_map(|(a, values)| {
                    a.params
                        .iter()
                        .zip(values)
                        .filter(|(p, _)| p.name() == name)
                        .map(move |(_, v)| (a.name, *v))
                })
                .collect();
            if holders.windows(2).all(|w| w[0].1 == w[1].1) {
                out.push((name.to_string(), holders[0].1));
            } else {
                out.extend(
                    holders
                        .into_iter()
                        .map(|(alg, v)| (format!("{alg}.{name}"), v)),
                );
            }
        }
        out
    }
}

impl Serialize for ParamSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = self.entries();
        let mut map = serializer.serialize_map(Some(entries.len() + 1))?;
        for (key, value) in &entries {
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry(SEED, &self.seed)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ParamSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let settings = deserializer.deserialize_map(SettingsVisitor)?;
        ParamSet::from_settings(settings).map_err(de::Error::custom)
    }
}

/// Reads a map of `key: number-or-string` in order, as `(key, text)`.
struct SettingsVisitor;

impl<'de> Visitor<'de> for SettingsVisitor {
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map of scheduler parameters (key: number)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some((key, ParamText(value))) = map.next_entry::<String, ParamText>()? {
            out.push((key, value));
        }
        Ok(out)
    }
}

/// A parameter value as read from a file: a number or a string, kept as
/// text for [`ParamSet::set`] to check.
struct ParamText(String);

impl<'de> Deserialize<'de> for ParamText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = ParamText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ParamText, E> {
                Ok(ParamText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ParamText, E> {
                Ok(ParamText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ParamText, E> {
                Ok(ParamText(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ParamText, E> {
                Ok(ParamText(v.to_string()))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

/// One algorithm and its resolved parameters: what builds a scheduler, and
/// what a run records.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Index into [`REGISTRY`].
    algorithm: usize,
    /// Its parameters' values, in order.
    values: Vec<Value>,
    seed: u64,
}

impl Default for SchedulerConfig {
    /// The first algorithm of the table (`rr`) with its defaults, seed 0.
    fn default() -> Self {
        Self {
            algorithm: 0,
            values: REGISTRY[0]
                .params
                .iter()
                .map(Param::default_value)
                .collect(),
            seed: 0,
        }
    }
}

impl SchedulerConfig {
    /// `algorithm` (name or alias) with `settings` (`key=value` pairs in
    /// the key language of the module doc) over the defaults.
    pub fn new<K, V>(
        algorithm: &str,
        settings: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let algorithm = find(algorithm)?;
        Ok(ParamSet::from_settings(settings)?.scheduler(algorithm.name)?)
    }

    /// The algorithm's registry entry.
    pub fn algorithm(&self) -> &'static Algorithm {
        &REGISTRY[self.algorithm]
    }

    /// The algorithm's canonical name.
    pub fn name(&self) -> &'static str {
        self.algorithm().name
    }

    /// A fresh scheduler with no members.
    pub fn build(&self) -> Box<dyn Scheduler> {
        (self.algorithm().build)(self)
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The value of `param` (its default if the algorithm lacks it).
    pub fn count(&self, param: &Count) -> u32 {
        match self.lookup(param.name) {
            Some(Value::Count(n)) => n,
            _ => param.default,
        }
    }

    /// The value of `param` (its default if the algorithm lacks it).
    pub fn probability(&self, param: &Probability) -> f64 {
        match self.lookup(param.name) {
            Some(Value::Probability(p)) => p,
            _ => param.default,
        }
    }

    /// The value of `param` (its default if the algorithm lacks it).
    pub fn real(&self, param: &Real) -> f64 {
        match self.lookup(param.name) {
            Some(Value::Real(x)) => x,
            _ => param.default,
        }
    }

    /// Parameters and values, in order.
    pub fn params(&self) -> impl Iterator<Item = (&'static Param, Value)> + '_ {
        self.algorithm()
            .params
            .iter()
            .zip(self.values.iter().copied())
    }

    fn lookup(&self, name: &str) -> Option<Value> {
        self.params()
            .find(|(p, _)| p.name() == name)
            .map(|(_, v)| v)
    }
}

/// `{"T": 8}`: one algorithm's parameters by bare name.
struct NamedValues<'a>(&'a SchedulerConfig);

impl Serialize for NamedValues<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.values.len()))?;
        for (param, value) in self.0.params() {
            map.serialize_entry(param.name(), &value)?;
        }
        map.end()
    }
}

impl Serialize for SchedulerConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("SchedulerConfig", 3)?;
        s.serialize_field("algorithm", self.name())?;
        s.serialize_field("params", &NamedValues(self))?;
        s.serialize_field(SEED, &self.seed)?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for SchedulerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            algorithm: String,
            #[serde(default, deserialize_with = "settings")]
            params: Vec<(String, String)>,
            #[serde(default)]
            seed: u64,
        }
        fn settings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
            d.deserialize_map(SettingsVisitor)
        }
        let raw = Raw::deserialize(deserializer)?;
        let algorithm = find(&raw.algorithm).map_err(de::Error::custom)?;
        // Bare names are this algorithm's: `T` under `ch` is `ch.T`.
        let mut settings: Vec<(String, String)> = raw
            .params
            .into_iter()
            .map(|(k, v)| (format!("{}.{k}", algorithm.name), v))
            .collect();
        settings.push((SEED.to_string(), raw.seed.to_string()));
        SchedulerConfig::new(algorithm.name, settings).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scheduler::{Completion, Membership, NodeId, NodeInfo};
    use crate::Time;

    #[test]
    fn names_aliases_and_the_unknown_error_come_from_the_table() {
        let listed = known_algorithms();
        for a in REGISTRY {
            assert_eq!(canonical_name(a.name), Ok(a.name));
            assert!(listed.contains(a.name), "{listed}");
            for alias in a.aliases {
                assert_eq!(canonical_name(alias), Ok(a.name));
                assert!(listed.contains(&format!("(alias {alias})")), "{listed}");
            }
            assert!(algorithms_help().contains(a.summary));
        }
        let err = canonical_name("nope").unwrap_err();
        assert_eq!(err.known, listed);
        assert!(err.to_string().ends_with(&format!("known: {listed}")));
        assert_eq!(names().count(), REGISTRY.len());
    }

    #[test]
    fn every_parameter_is_documented_with_a_valid_default() {
        let help = params_help();
        for a in REGISTRY {
            for p in a.params {
                assert!(!p.doc().is_empty(), "{}.{}", a.name, p.name());
                assert_eq!(
                    p.parse(&p.default_value().to_string()),
                    Ok(p.default_value())
                );
                assert!(help.contains(&format!("{}.{}", a.name, p.name())), "{help}");
                assert!(!p.name().contains(['.', '=']) && p.name() != SEED);
            }
        }
    }

    #[test]
    fn a_refused_setting_changes_nothing() {
        let mut set = ParamSet::default();
        set.set("ch.T", "4").unwrap();
        let before = set.clone();
        assert!(set.set("T", "0").is_err());
        assert!(set
            .apply([("T", "5"), ("ALPHA", "2")])
            .is_err_and(|e| e.key() == "ALPHA"));
        assert_eq!(set, before);
    }

    /// The choices of `algorithm` over 5 nodes for 400 calls of 7
    /// functions, with (`finish`) or without each call finished 3 calls
    /// later.
    fn choices(algorithm: &str, finish: bool) -> Vec<NodeId> {
        let mut s = ParamSet::default().build(algorithm).unwrap();
        for id in 0..5 {
            let node = NodeInfo {
                id,
                capacity: 2,
                cores: 2,
                memory_mb: 1024,
            };
            s.membership(Membership::Insert(node), Time::ZERO);
        }
        let names = ["a", "b", "c", "d", "e", "f", "g"];
        let mut chosen: Vec<(NodeId, &str)> = Vec::new();
        for i in 0..400u64 {
            let now = Time::from_millis(i * 10);
            let f = names[(i * i % 7) as usize];
            let node = s.select(f, now).unwrap_or(u32::MAX);
            chosen.push((node, f));
            if finish && i >= 3 {
                let (n, g) = chosen[i as usize - 3];
                if n != u32::MAX {
                    let done = Completion::warm(n, g, Duration::from_millis(30), Duration::ZERO);
                    s.finished(&done, now);
                }
            }
        }
        chosen.into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn an_oblivious_algorithm_chooses_the_same_whatever_ends() {
        let oblivious: Vec<&str> = REGISTRY
            .iter()
            .map(|a| a.name)
            .filter(|&a| ParamSet::default().build(a).unwrap().oblivious())
            .collect();
        assert_eq!(oblivious, ["rr", "random"]);
        for a in &oblivious {
            assert_eq!(choices(a, true), choices(a, false), "{a}");
        }
        // The check can tell: a load-aware algorithm chooses otherwise.
        assert_ne!(choices("ll", true), choices("ll", false));
    }

    #[test]
    fn assignments_split_at_the_first_equals_sign() {
        assert_eq!(parse_assignment("ch.T=4"), Ok(("ch.T", "4")));
        assert_eq!(parse_assignment(" T = 4"), Ok(("T", " 4")));
        assert_eq!(parse_assignment("a=b=c"), Ok(("a", "b=c")));
        for bad in ["T", "=4", ""] {
            assert!(parse_assignment(bad).is_err(), "{bad:?}");
        }
    }
}
