//! The node cluster: which workers exist, which are online, and the
//! scheduler that chooses among the online ones.
//!
//! Pure state like the schedulers (time is an argument, no I/O): the HTTP
//! edge wraps one [`Cluster`] in a mutex, reads the clock and performs the
//! requests, and reports what it saw here.
//!
//! - Nodes configured at start get ids 0..n-1 in list order and start
//!   online (as in HotFunctions). A node added at run time
//!   (`PUT /1/lb/nodes`, after fnlb's node API) gets the next id never used
//!   before and starts offline until its first passing health check.
//! - Health checks (HAProxy-style `fall`/`rise` counters) and failed calls
//!   flip nodes; every flip is told to the scheduler as
//!   [`Membership::Insert`] / [`Membership::Remove`].
//! - Passive health (HAProxy's `observe layer7`, seen from the success
//!   side): a node that answers calls is alive. Each successful call
//!   reported to [`Cluster::finished`] is counted on its node; a check
//!   round in which the node answered a call since the previous round
//!   counts as passed, whatever its `/health` said. So a node goes
//!   offline only after `fall` rounds in a row with a failed check *and*
//!   no successful call (issue 13: under load a worker's `/health` took
//!   3-4 s and every node flapped while serving calls). The count rides
//!   on the completion the hot path reports anyway (under the lock it
//!   already takes for the scheduler's `finished`): no extra lock, no
//!   extra atomic. A call that cannot reach its node still takes the node
//!   offline at once ([`Cluster::unreachable`]).
//! - Switching the algorithm or changing its parameters
//!   ([`Cluster::configure`], checked by the scheduler registry) builds a
//!   fresh scheduler holding the online nodes. Calls selected by the
//!   previous one still complete, but their completions are dropped (each
//!   [`Selection`] carries the generation of the scheduler that counted
//!   it), so no scheduler sees a completion it did not select.
//! - Each node has resources ([`NodeResources`]: capacity, cores, memory;
//!   `node_capacity`, `node_cores`, `node_memory_mb` for the configured
//!   ones, optionally its own when added), told to the scheduler with the
//!   node ([`NodeInfo`]); the schedulers that need them (`openwhisk`'s
//!   memory slots, `hermod`'s free cores) read them there.
//! - Every scheduler built here is told the sample functions' memory
//!   sizes (the catalog's `memory_mb`) before its first call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use policy::scheduler::{
    canonical_name, Completion, ConfigError, Membership, NodeId, NodeInfo, ParamSet, Scheduler,
    SchedulerConfig, SelectError, Time, UnknownAlgorithm,
};

/// Whether a node may receive calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Online,
    Offline,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
}

/// What a node offers, told to the scheduler when it joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct NodeResources {
    /// Concurrent calls the node is meant to hold.
    pub capacity: u32,
    pub cores: u32,
    /// Memory for function instances, in MB.
    pub memory_mb: u32,
}

impl Default for NodeResources {
    fn default() -> Self {
        Self {
            capacity: NodeInfo::DEFAULT_CAPACITY,
            cores: NodeInfo::DEFAULT_CORES,
            memory_mb: NodeInfo::DEFAULT_MEMORY_MB,
        }
    }
}

impl NodeResources {
    /// What the scheduler is told about node `id`.
    pub fn info(self, id: NodeId) -> NodeInfo {
        NodeInfo {
            id,
            capacity: self.capacity,
            cores: self.cores,
            memory_mb: self.memory_mb,
        }
    }
}

/// One registered worker node.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    /// Base URL, e.g. `http://10.0.0.2:8222` (empty in fake mode).
    pub url: Arc<str>,
    /// `<url>/execute?name=`, precomputed for the hot path.
    pub execute_prefix: Arc<str>,
    pub status: NodeStatus,
    /// What the node offers, told to the scheduler.
    pub resources: NodeResources,
    failures_in_a_row: u32,
    successes_in_a_row: u32,
    /// Successful call replies, ever.
    answered_calls: u64,
    /// The addresses its name resolved to when it was added at run time
    /// (empty when not resolved), so that a second name for one address
    /// is refused.
    addrs: Box<[std::net::SocketAddr]>,
    /// `answered_calls` at the previous health round.
    answered_at_last_round: u64,
}

/// A node chosen for one call.
#[derive(Debug, Clone)]
pub struct Selection {
    pub node: NodeId,
    pub url: Arc<str>,
    pub execute_prefix: Arc<str>,
    /// The scheduler's canonical name (for `LoadBalancingInfo.Algorithm`).
    pub algorithm: &'static str,
    generation: u64,
}

/// How a call went, as the balancer saw it and the worker's reply told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Measured by the balancer, from selection to the reply.
    pub duration: Duration,
    /// The reply's `Meta` reported a cold start.
    pub cold: bool,
    pub ok: bool,
    /// The reply's `InternalExecutionTime` (zero if none).
    pub internal: Duration,
}

/// A node-management request that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("node {0} is already registered")]
    AlreadyRegistered(String),
    /// Another spelling of a registered node: its name resolves to an
    /// address a registered node's name resolved to.
    #[error("node {url} resolves to {addr}, the address of registered node {registered}")]
    SameAddress {
        url: String,
        addr: std::net::SocketAddr,
        registered: String,
    },
    #[error("node {0} is not registered")]
    NotRegistered(String),
}

/// Consecutive health results that flip a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub fall: u32,
    pub rise: u32,
}

/// Registered nodes plus the scheduler over the online ones.
#[derive(Debug)]
pub struct Cluster {
    scheduler: Box<dyn Scheduler>,
    /// Every algorithm's parameters (kept across algorithm switches).
    params: ParamSet,
    /// What built `scheduler`: its algorithm and resolved parameters.
    current: SchedulerConfig,
    generation: u64,
    nodes: BTreeMap<NodeId, Node>,
    next_id: NodeId,
    thresholds: Thresholds,
}

impl Cluster {
    /// A cluster of `urls` (ids 0.. in order, all online, each with
    /// `resources`) scheduled by `algorithm` with `params`.
    pub fn new(
        algorithm: &str,
        params: ParamSet,
        urls: &[String],
        resources: NodeResources,
        thresholds: Thresholds,
        now: Time,
    ) -> Result<Self, UnknownAlgorithm> {
        let current = params.scheduler(algorithm)?;
        let mut cluster = Self {
            scheduler: build_declared(&current),
            current,
            params,
            generation: 0,
            nodes: BTreeMap::new(),
            next_id: 0,
            thresholds,
        };
        for url in urls {
            let id = cluster.register(url, resources);
            cluster.set_status(id, NodeStatus::Online, now);
        }
        Ok(cluster)
    }

    fn register(&mut self, url: &str, resources: NodeResources) -> NodeId {
        let id = self.next_id;
        self.next_id += 1;
        let node = Node {
            id,
            url: Arc::from(url),
            execute_prefix: Arc::from(format!("{url}/execute?name=")),
            status: NodeStatus::Offline,
            resources,
            failures_in_a_row: 0,
            successes_in_a_row: 0,
            answered_calls: 0,
            answered_at_last_round: 0,
            addrs: Box::default(),
        };
        self.nodes.insert(id, node);
        id
    }

    fn set_status(&mut self, id: NodeId, status: NodeStatus, now: Time) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.failures_in_a_row = 0;
        node.successes_in_a_row = 0;
        if node.status == status {
            return;
        }
        node.status = status;
        let change = match status {
            NodeStatus::Online => Membership::Insert(node.resources.info(id)),
            NodeStatus::Offline => Membership::Remove(id),
        };
        self.scheduler.membership(change, now);
    }

    /// The current algorithm's canonical name.
    pub fn algorithm(&self) -> &'static str {
        self.scheduler.name()
    }

    /// Every algorithm's parameters, as set.
    pub fn params(&self) -> &ParamSet {
        &self.params
    }

    /// The current algorithm with its resolved parameters.
    pub fn scheduler_config(&self) -> &SchedulerConfig {
        &self.current
    }

    /// Chooses a node for one call of `function`.
    pub fn select(&mut self, function: &str, now: Time) -> Result<Selection, SelectError> {
        let id = self.scheduler.select(function, now)?;
        let algorithm = self.scheduler.name();
        let generation = self.generation;
        match self.nodes.get(&id) {
            Some(node) => Ok(Selection {
                node: id,
                url: node.url.clone(),
                execute_prefix: node.execute_prefix.clone(),
                algorithm,
                generation,
            }),
            // A scheduler returning a node it was never told about breaks
            // its contract; undo the count and report no usable node.
            None => {
                self.scheduler.finished(
                    &Completion {
                        node: id,
                        function,
                        duration: Duration::ZERO,
                        cold: false,
                        ok: false,
                        internal: Duration::ZERO,
                    },
                    now,
                );
                Err(SelectError::NoNodes)
            }
        }
    }

    /// The call chosen by `selection` finished (successfully or not).
    ///
    /// A successful call counts as a passed health check at the node's
    /// next round (passive health, module doc), also when the scheduler
    /// that chose it has been replaced since.
    pub fn finished(&mut self, selection: &Selection, function: &str, outcome: Outcome, now: Time) {
        if outcome.ok {
            if let Some(node) = self.nodes.get_mut(&selection.node) {
                node.answered_calls = node.answered_calls.wrapping_add(1);
            }
        }
        if selection.generation != self.generation {
            return;
        }
        self.scheduler.finished(
            &Completion {
                node: selection.node,
                function,
                duration: outcome.duration,
                cold: outcome.cold,
                ok: outcome.ok,
                internal: outcome.internal,
            },
            now,
        );
    }

    /// Switches to `algorithm` (a fresh scheduler over the online nodes).
    pub fn switch_algorithm(
        &mut self,
        algorithm: &str,
        now: Time,
    ) -> Result<&'static str, UnknownAlgorithm> {
        let current = self.params.scheduler(algorithm)?;
        self.replace_scheduler(current, now);
        Ok(self.scheduler.name())
    }

    /// `/configure`: applies scheduler parameter `settings` (`key=value`
    /// in the registry's key language) and switches to `algorithm` if
    /// given; either builds a fresh scheduler. Checked as a whole first:
    /// on an error nothing changes. Returns the algorithm's name.
    pub fn configure(
        &mut self,
        algorithm: Option<&str>,
        settings: &[(String, String)],
        now: Time,
    ) -> Result<&'static str, ConfigError> {
        let name = match algorithm {
            Some(name) => canonical_name(name)?,
            None if settings.is_empty() => return Ok(self.algorithm()),
            None => self.algorithm(),
        };
        let mut params = self.params.clone();
        params.apply(settings.iter().map(|(k, v)| (k, v)))?;
        let current = params.scheduler(name)?;
        self.params = params;
        self.replace_scheduler(current, now);
        Ok(name)
    }

    /// A fresh scheduler built from `current`, holding the online nodes.
    fn replace_scheduler(&mut self, current: SchedulerConfig, now: Time) {
        let mut fresh = build_declared(&current);
        for node in self.nodes.values() {
            if node.status == NodeStatus::Online {
                fresh.membership(Membership::Insert(node.resources.info(node.id)), now);
            }
        }
        self.scheduler = fresh;
        self.current = current;
        self.generation += 1;
    }

    /// Registers a worker with `resources` at run time; it stays offline
    /// until a health check passes.
    pub fn add_node(
        &mut self,
        url: &str,
        resources: NodeResources,
    ) -> Result<NodeId, ClusterError> {
        self.add_node_at(url, &[], resources)
    }

    /// As [`Self::add_node`], for a node whose name resolved to `addrs`:
    /// refused when a registered node resolved to one of them (two names
    /// of one worker, e.g. a host name and its IP address).
    pub fn add_node_at(
        &mut self,
        url: &str,
        addrs: &[std::net::SocketAddr],
        resources: NodeResources,
    ) -> Result<NodeId, ClusterError> {
        if self.nodes.values().any(|n| &*n.url == url) {
            return Err(ClusterError::AlreadyRegistered(url.to_string()));
        }
        for node in self.nodes.values() {
            if let Some(addr) = addrs.iter().find(|a| node.addrs.contains(a)) {
                return Err(ClusterError::SameAddress {
                    url: url.to_string(),
                    addr: *addr,
                    registered: node.url.to_string(),
                });
            }
        }
        let id = self.register(url, resources);
        if let Some(node) = self.nodes.get_mut(&id) {
            node.addrs = addrs.into();
        }
        Ok(id)
    }

    /// Unregisters a worker (the scheduler stops choosing it at once).
    pub fn remove_node(&mut self, url: &str, now: Time) -> Result<NodeId, ClusterError> {
        let id = self
            .nodes
            .values()
            .find(|n| &*n.url == url)
            .map(|n| n.id)
            .ok_or_else(|| ClusterError::NotRegistered(url.to_string()))?;
        self.set_status(id, NodeStatus::Offline, now);
        self.nodes.remove(&id);
        Ok(id)
    }

    /// Records one health round of node `id`: `check_passed` is what its
    /// `/health` said; the round passes if it did, or if the node answered
    /// a call successfully since its previous round (passive health).
    /// Returns the new status when the node flipped.
    pub fn health_result(
        &mut self,
        id: NodeId,
        check_passed: bool,
        now: Time,
    ) -> Option<NodeStatus> {
        let thresholds = self.thresholds;
        let node = self.nodes.get_mut(&id)?;
        let answered = node.answered_calls != node.answered_at_last_round;
        node.answered_at_last_round = node.answered_calls;
        let passed = check_passed || answered;
        let flip = if passed {
            node.failures_in_a_row = 0;
            node.successes_in_a_row = node.successes_in_a_row.saturating_add(1);
            node.status == NodeStatus::Offline && node.successes_in_a_row >= thresholds.rise
        } else {
            node.successes_in_a_row = 0;
            node.failures_in_a_row = node.failures_in_a_row.saturating_add(1);
            node.status == NodeStatus::Online && node.failures_in_a_row >= thresholds.fall
        };
        if !flip {
            return None;
        }
        let status = if passed {
            NodeStatus::Online
        } else {
            NodeStatus::Offline
        };
        self.set_status(id, status, now);
        Some(status)
    }

    /// A call could not reach the node: take it offline at once (health
    /// checks bring it back).
    pub fn unreachable(&mut self, id: NodeId, now: Time) {
        if self
            .nodes
            .get(&id)
            .is_some_and(|n| n.status == NodeStatus::Online)
        {
            self.set_status(id, NodeStatus::Offline, now);
        }
    }

    /// Registered nodes in id order.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// In-flight calls the scheduler counts on `id`.
    pub fn load(&self, id: NodeId) -> Option<u32> {
        self.scheduler.load(id)
    }
}

/// A fresh scheduler for `config`, told the sample functions' memory.
fn build_declared(config: &SchedulerConfig) -> Box<dyn Scheduler> {
    let mut scheduler = config.build();
    for f in &sample_functions::catalog().functions {
        scheduler.declare_function(&f.name, f.memory_mb);
    }
    scheduler
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds { fall: 2, rise: 1 };
    const CAP: NodeResources = NodeResources {
        capacity: NodeInfo::DEFAULT_CAPACITY,
        cores: NodeInfo::DEFAULT_CORES,
        memory_mb: NodeInfo::DEFAULT_MEMORY_MB,
    };

    fn ok() -> Outcome {
        Outcome {
            ok: true,
            ..Outcome::default()
        }
    }

    fn capacity(capacity: u32) -> NodeResources {
        NodeResources {
            capacity,
            ..NodeResources::default()
        }
    }

    fn urls(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://w{i}:8222")).collect()
    }

    #[test]
    fn initial_nodes_are_online_in_list_order() {
        let c = Cluster::new("rr", ParamSet::default(), &urls(3), CAP, T, Time::ZERO).unwrap();
        let ids: Vec<_> = c.nodes().map(|n| (n.id, n.url.to_string())).collect();
        assert_eq!(ids[2], (2, "http://w2:8222".to_string()));
        assert!(c.nodes().all(|n| n.status == NodeStatus::Online));
        assert_eq!(
            &*c.nodes().next().unwrap().execute_prefix,
            "http://w0:8222/execute?name="
        );
    }

    #[test]
    fn added_node_waits_for_a_passing_check() {
        let mut c = Cluster::new("rr", ParamSet::default(), &urls(1), CAP, T, Time::ZERO).unwrap();
        let id = c.add_node("http://new:1", CAP).unwrap();
        assert_eq!(id, 1);
        assert_eq!(
            c.add_node("http://new:1", CAP),
            Err(ClusterError::AlreadyRegistered("http://new:1".into()))
        );
        for _ in 0..4 {
            assert_eq!(c.select("f", Time::ZERO).unwrap().node, 0);
        }
        assert_eq!(
            c.health_result(id, true, Time::ZERO),
            Some(NodeStatus::Online)
        );
        let picks: Vec<_> = (0..4)
            .map(|_| c.select("f", Time::ZERO).unwrap().node)
            .collect();
        assert!(picks.contains(&1), "{picks:?}");
    }

    #[test]
    fn fall_and_rise_counters_flip_nodes() {
        let mut c = Cluster::new("rr", ParamSet::default(), &urls(2), CAP, T, Time::ZERO).unwrap();
        assert_eq!(c.health_result(0, false, Time::ZERO), None);
        assert_eq!(c.health_result(0, true, Time::ZERO), None);
        assert_eq!(c.health_result(0, false, Time::ZERO), None);
        assert_eq!(
            c.health_result(0, false, Time::ZERO),
            Some(NodeStatus::Offline)
        );
        for _ in 0..4 {
            assert_eq!(c.select("f", Time::ZERO).unwrap().node, 1);
        }
        assert_eq!(
            c.health_result(0, true, Time::ZERO),
            Some(NodeStatus::Online)
        );
        assert_eq!(c.health_result(0, true, Time::ZERO), None);
    }

    /// A selection of node 0 (rr over two nodes: at most two tries).
    fn on_node_0(c: &mut Cluster) -> Selection {
        let s = c.select("f", Time::ZERO).unwrap();
        if s.node == 0 {
            return s;
        }
        c.finished(&s, "f", ok(), Time::ZERO);
        let s = c.select("f", Time::ZERO).unwrap();
        assert_eq!(s.node, 0);
        s
    }

    #[test]
    fn a_node_answering_calls_passes_its_rounds_whatever_its_checks_say() {
        let mut c = Cluster::new("rr", ParamSet::default(), &urls(2), CAP, T, Time::ZERO).unwrap();
        for _ in 0..5 {
            // One successful call per round: the failed checks do not count.
            let s = on_node_0(&mut c);
            c.finished(&s, "f", ok(), Time::ZERO);
            assert_eq!(c.health_result(0, false, Time::ZERO), None);
        }
        // A failed call is no sign of life.
        let failed = on_node_0(&mut c);
        let late = on_node_0(&mut c);
        c.finished(&failed, "f", Outcome::default(), Time::ZERO);
        assert_eq!(c.health_result(0, false, Time::ZERO), None);
        // No successful call: `fall` rounds of failed checks take it offline.
        assert_eq!(
            c.health_result(0, false, Time::ZERO),
            Some(NodeStatus::Offline)
        );
        // A call chosen earlier that succeeds afterwards shows it alive.
        c.finished(&late, "f", ok(), Time::ZERO);
        assert_eq!(
            c.health_result(0, false, Time::ZERO),
            Some(NodeStatus::Online)
        );
    }

    #[test]
    fn removed_and_unreachable_nodes_get_no_calls() {
        let mut c = Cluster::new("rr", ParamSet::default(), &urls(2), CAP, T, Time::ZERO).unwrap();
        c.unreachable(1, Time::ZERO);
        assert_eq!(c.select("f", Time::ZERO).unwrap().node, 0);
        assert_eq!(c.remove_node("http://w0:8222", Time::ZERO), Ok(0));
        assert_eq!(c.select("f", Time::ZERO).unwrap_err(), SelectError::NoNodes);
        assert!(c.remove_node("http://w0:8222", Time::ZERO).is_err());
        // Ids are never reused.
        assert_eq!(c.add_node("http://w0:8222", CAP), Ok(2));
    }

    #[test]
    fn completions_of_a_replaced_scheduler_are_dropped() {
        let mut c = Cluster::new("rr", ParamSet::default(), &urls(2), CAP, T, Time::ZERO).unwrap();
        let old = c.select("f", Time::ZERO).unwrap();
        assert_eq!(c.switch_algorithm("rr", Time::ZERO), Ok("rr"));
        let new = c.select("f", Time::ZERO).unwrap();
        assert_eq!(c.load(new.node), Some(1));
        c.finished(&old, "f", ok(), Time::ZERO);
        assert_eq!(c.load(new.node), Some(1));
        c.finished(&new, "f", ok(), Time::ZERO);
        assert_eq!(c.load(new.node), Some(0));
        assert!(c.switch_algorithm("nope", Time::ZERO).is_err());
        assert_eq!(c.algorithm(), "rr");
    }

    #[test]
    fn configure_applies_checked_parameters_or_changes_nothing() {
        let mut c = Cluster::new("ch", ParamSet::default(), &urls(3), CAP, T, Time::ZERO).unwrap();
        let settings = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // T=1: the second call of a function spills from its ring node.
        assert_eq!(
            c.configure(None, &settings(&[("T", "1")]), Time::ZERO),
            Ok("ch")
        );
        let first = c.select("f", Time::ZERO).unwrap();
        assert_ne!(c.select("f", Time::ZERO).unwrap().node, first.node);
        let before = (c.params().clone(), c.algorithm());
        for bad in [
            (Some("ll"), settings(&[("T", "0")])),
            (Some("nope"), settings(&[("T", "2")])),
            (None, settings(&[("ch.T1", "2")])),
        ] {
            assert!(c.configure(bad.0, &bad.1, Time::ZERO).is_err(), "{bad:?}");
            assert_eq!((c.params().clone(), c.algorithm()), before);
        }
        // Switching keeps the parameters; they are the scheduler's.
        assert_eq!(c.configure(Some("hash"), &[], Time::ZERO), Ok("ch"));
        let config = c.scheduler_config();
        assert_eq!(config.count(&policy::scheduler::consistent_hash::T), 1);
    }

    #[test]
    fn nodes_carry_their_capacity_to_the_scheduler() {
        let mut c = Cluster::new(
            "rr",
            ParamSet::default(),
            &urls(1),
            capacity(16),
            T,
            Time::ZERO,
        )
        .unwrap();
        let id = c.add_node("http://big:1", capacity(128)).unwrap();
        c.health_result(id, true, Time::ZERO);
        assert_eq!(c.scheduler.capacity(0), Some(16));
        assert_eq!(c.scheduler.capacity(id), Some(128));
        c.switch_algorithm("ll", Time::ZERO).unwrap();
        assert_eq!(c.scheduler.capacity(id), Some(128), "kept across switches");
    }
}
