//! `openwhisk`: Apache OpenWhisk's sharding container-pool balancer.
//!
//! From Apache OpenWhisk (github.com/apache/openwhisk,
//! `core/controller/src/main/scala/org/apache/openwhisk/core/loadBalancer/ShardingContainerPoolBalancer.scala`,
//! read for its scaladoc and `schedule`, `generateHash` and
//! `pairwiseCoprimeNumbersUntil`). The invokers are the online members in
//! ascending id order, `n` of them. For a call of function `f`:
//!
//! - `hash` is a stable hash of `f` (below); the *home invoker* is
//!   `hash mod n` and the *step size* is `steps[hash mod steps.len()]`,
//!   where `steps` are OpenWhisk's step sizes for `n`: the numbers `s` in
//!   `1..=n`, ascending, that are coprime to `n` and to every step size
//!   kept before them (`pairwiseCoprimeNumbersUntil`: 1, 3, 7 for `n` = 10;
//!   9 is coprime to 10 but not to 3). Every step is coprime to `n`, so
//!   the probes visit every invoker once.
//! - Probe home, home + step, home + 2 step, ... (mod `n`): the first
//!   invoker with room for `f` takes the call. Room: the memory of the
//!   calls this scheduler has in flight there plus `f`'s memory is at most
//!   the node's memory (OpenWhisk's semaphore of `user-memory` MB, from
//!   which each activation takes its memory limit). So a node has
//!   `memory_mb / function memory` slots for calls of one function.
//! - After `n` probes without room (the system is overloaded), a uniformly
//!   random online invoker takes the call anyway, its memory charged
//!   beyond the limit (OpenWhisk's `forceAcquireConcurrent`).
//!
//! OpenWhisk's published example (a unit test here): 10 invokers, hash 13:
//! home 13 mod 10 = 3, step sizes 1, 3, 7, step 13 mod 3 = index 1 = 3;
//! probes 3, 6, 9, 2, 5, 8, 1, 4, 7, 0.
//!
//! Memory: a node's memory is its [`NodeInfo::memory_mb`](super::NodeInfo)
//! (default 2,048 MB, OpenWhisk's default `user-memory`); a function's is
//! what [`Scheduler::declare_function`](super::Scheduler::declare_function)
//! said, else [`DEFAULT_FUNCTION_MEMORY_MB`] (256 MB, OpenWhisk's default
//! memory limit). A selected call charges its function's memory to its
//! node, its completion releases it.
//!
//! Parameters: none beyond the run's `seed` (a [`ChaCha8Rng`], drawn once
//! per forced choice only).
//!
//! # Choices
//! - **Hash.** OpenWhisk hashes `|namespace.hashCode ^ fqn.hashCode|` with
//!   Java's `String.hashCode` (UTF-16 code units, `h = 31 h + c`,
//!   wrapping), the namespace being the caller's and `fqn` the action's
//!   `namespace/name`. Here the namespace is OpenWhisk's default, `guest`:
//!   `hash(f) = |javaHash("guest") ^ javaHash("guest/" + f)|`, the home
//!   OpenWhisk itself would give action `f` of user `guest`. Java's `abs`
//!   leaves `i32::MIN` negative (and OpenWhisk would then index out of
//!   bounds); here it is 2^31.
//! - **Probes.** OpenWhisk probes `n + 2` times (its counter stops at
//!   `n + 1` after the first probe); since the step is coprime to `n`, the
//!   last two repeat the first two, so `n` probes decide the same.
//! - **One balancer.** OpenWhisk divides each invoker's memory among its
//!   controllers; this is one balancer holding all of it, with no blackbox
//!   invoker split (`managedFraction` 1) and no concurrent activations per
//!   container (`maxConcurrent` 1).
//! - **Release.** A completion releases the memory its function has at
//!   that time. Should a function's memory be declared anew while calls
//!   of it are in flight, the difference would be released wrongly; so a
//!   node's memory in use returns to 0 whenever its last call of this
//!   scheduler finishes, and never goes below 0.
//! - Completions for removed nodes release their memory as any other; a
//!   node keeps its memory in use while offline and comes back with it.
//!
//! # Complexity per decision
//! A hash-map lookup of the name (an index by the caller's id in the
//! simulator: [`Policy::choose_by_id`]; the hash is computed once per name),
//! then one probe per invoker visited: O(1) when the home invoker has
//! room; about `n / k` probes when `k` of the `n` invokers have room for
//! `f`. When at most [`OpenWhisk::SCAN_LIMIT`] (32) nodes have any free
//! memory, the first of them in probe order is found without probing: a
//! node at index `i` is probe number `(i - home) step^-1 mod n`, so one
//! pass over those nodes finds the smallest (the same node the probes
//! reach, in at most 32 steps). When none has room, a max-tree of the
//! free memory per node (updated in O(log n) per call and completion)
//! answers that in O(1) and the forced random choice follows. The probe
//! sequence is thus long only when more than 32 nodes have some free
//! memory yet few have enough for `f` (functions of unequal sizes).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::load_index::LoadIndex;
use super::registry::{Algorithm, SchedulerConfig};
use super::tracked::{Policy, Tracked};
use super::by_id::Functions;
use super::{Completion, FunctionId, NodeId, SelectError, Time, DEFAULT_FUNCTION_MEMORY_MB};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "openwhisk",
    aliases: &["sharding"],
    summary: "home invoker by hash, coprime step probing for free memory, random when full (Apache OpenWhisk)",
    params: &[],
    compared_by_default: false,
    build: |config: &SchedulerConfig| Box::new(Tracked::new(OpenWhisk::new(config.seed()))),
};

/// OpenWhisk's default namespace, the one the hash assumes.
pub const NAMESPACE: &str = "guest";

/// Java's `String.hashCode` of `text`, continued from `h` (0 to start).
pub fn java_hash_from(h: i32, text: &str) -> i32 {
    text.encode_utf16()
        .fold(h, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// Java's `String.hashCode` of `text`.
pub fn java_hash(text: &str) -> i32 {
    java_hash_from(0, text)
}

/// The hash of `function`: `|javaHash("guest") ^ javaHash("guest/" + function)|`.
pub fn function_hash(function: &str) -> u32 {
    let namespace = java_hash(NAMESPACE);
    let qualified = java_hash_from(java_hash_from(namespace, "/"), function);
    (namespace ^ qualified).unsigned_abs()
}

/// OpenWhisk's step sizes for `n` invokers: the numbers in `1..=n` coprime
/// to `n` and to every step size before them.
pub fn step_sizes(n: u32) -> Vec<u32> {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let mut steps: Vec<u32> = Vec::new();
    for candidate in 1..=n {
        if gcd(candidate, n) == 1 && steps.iter().all(|&s| gcd(s, candidate) == 1) {
            steps.push(candidate);
        }
    }
    steps
}

/// The invoker indices probed for `hash` among `n` invokers with step
/// sizes `steps` (non-empty when `n` > 0): home first, `n` probes.
pub fn probe_order(hash: u32, n: u32, steps: &[u32]) -> impl Iterator<Item = u32> {
    let (home, step) = if n == 0 || steps.is_empty() {
        (0, 0)
    } else {
        (hash % n, steps[hash as usize % steps.len()])
    };
    (0..u64::from(n)).map(move |k| ((u64::from(home) + k * u64::from(step)) % u64::from(n)) as u32)
}

/// What the scheduler remembers of a function.
#[derive(Debug, Clone, Copy)]
struct Function {
    hash: u32,
    /// Declared memory, if any.
    declared_mb: Option<u32>,
}

impl Function {
    fn memory_mb(&self) -> u32 {
        self.declared_mb.unwrap_or(DEFAULT_FUNCTION_MEMORY_MB)
    }
}

#[derive(Debug, Clone)]
pub struct OpenWhisk {
    rng: ChaCha8Rng,
    /// Each function's hash and memory, by name or by the caller's id
    /// (bounded, see [`Self::MAX_FUNCTIONS`]).
    functions: Functions<Function>,
    /// Step sizes for the current number of online members.
    steps: Vec<u32>,
    /// Per node id: memory (MB) charged by this scheduler's calls in flight.
    in_use_mb: Vec<u64>,
    /// Per node id: this scheduler's calls in flight.
    calls: Vec<u32>,
    /// Per node id: the node's memory as last told (0 when unknown).
    memory_mb: Vec<u32>,
    /// Max-tree of the free memory of online nodes (0 for others).
    free: MaxTree,
    /// Online nodes with some free memory.
    roomy: NodeList,
    /// Per node id: its index among the online members.
    index: Vec<u32>,
    /// Per step size: its inverse modulo the number of online members.
    inverses: Vec<u64>,
}

impl OpenWhisk {
    /// Function names remembered; past it, undeclared ones are forgotten
    /// (only their cached hash: they are recomputed when they come back).
    pub const MAX_FUNCTIONS: usize = 1 << 16;
    /// Up to this many nodes with free memory, the first of them in probe
    /// order is found by computing each one's place in the order rather
    /// than by probing (the same node, fewer steps when few have room).
    pub const SCAN_LIMIT: usize = 32;

    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            functions: Functions::default(),
            steps: Vec::new(),
            in_use_mb: Vec::new(),
            calls: Vec::new(),
            memory_mb: Vec::new(),
            free: MaxTree::default(),
            roomy: NodeList::default(),
            index: Vec::new(),
            inverses: Vec::new(),
        }
    }

    /// Memory (MB) that this scheduler's calls in flight hold on `node`.
    pub fn memory_in_use(&self, node: NodeId) -> u64 {
        self.in_use_mb.get(node as usize).copied().unwrap_or(0)
    }

    /// The step sizes for the current online members.
    pub fn steps(&self) -> &[u32] {
        &self.steps
    }

    /// Past [`Self::MAX_FUNCTIONS`], the undeclared functions are
    /// forgotten.
    fn kept(f: &Function) -> bool {
        f.declared_mb.is_some()
    }

    /// A function first seen, undeclared.
    fn new_function(name: &str) -> impl FnOnce() -> Function + '_ {
        move || Function {
            hash: function_hash(name),
            declared_mb: None,
        }
    }

    /// The choice for a call of `function` (which the caller numbers
    /// `id`, when it gives one).
    fn choose_for(
        &mut self,
        loads: &LoadIndex,
        id: Option<FunctionId>,
        function: &str,
    ) -> Result<NodeId, SelectError> {
        let invokers = loads.online();
        if invokers.is_empty() {
            return Err(SelectError::NoNodes);
        }
        let f = self.functions.index(
            id,
            function,
            Self::MAX_FUNCTIONS,
            Self::kept,
            Self::new_function(function),
        );
        let f = self.functions[f];
        let need = u64::from(f.memory_mb());
        let n = invokers.len() as u32;
        let mut chosen = None;
        if need == 0 {
            chosen = Some(invokers[(f.hash % n) as usize]);
        } else if self.free.max() >= need {
            chosen = if self.roomy.nodes.len() <= Self::SCAN_LIMIT {
                self.first_by_place(f.hash, n, need)
            } else {
                self.first_by_probing(invokers, f.hash, need)
            };
        }
        let node = match chosen {
            Some(node) => node,
            None => invokers[self.rng.gen_range(0..invokers.len())],
        };
        self.grow(node);
        let i = node as usize;
        self.in_use_mb[i] += need;
        self.calls[i] += 1;
        self.update_room(node);
        Ok(node)
    }

    /// A call that held `mb` ended on `completion.node`.
    fn finished_with(&mut self, mb: u32, completion: &Completion<'_>) {
        let i = completion.node as usize;
        if i >= self.calls.len() || self.calls[i] == 0 {
            return;
        }
        self.calls[i] -= 1;
        self.in_use_mb[i] = if self.calls[i] == 0 {
            0
        } else {
            self.in_use_mb[i].saturating_sub(u64::from(mb))
        };
        // Only online nodes are members of the tree (it is rebuilt at each
        // membership change); an offline node's room counts when it is back.
        if self.free.is_member(completion.node) {
            self.update_room(completion.node);
        }
    }

    /// The memory of the function named `name` (the default if unknown).
    fn memory_of(&self, name: &str) -> u32 {
        self.functions
            .get(name)
            .map_or(DEFAULT_FUNCTION_MEMORY_MB, Function::memory_mb)
    }

    fn grow(&mut self, node: NodeId) {
        let len = node as usize + 1;
        if self.in_use_mb.len() < len {
            self.in_use_mb.resize(len, 0);
            self.calls.resize(len, 0);
            self.memory_mb.resize(len, 0);
            self.index.resize(len, 0);
        }
    }

    fn free_mb(&self, node: NodeId) -> u64 {
        let i = node as usize;
        u64::from(self.memory_mb[i]).saturating_sub(self.in_use_mb[i])
    }

    /// Records the free memory of online `node` (tree and room list).
    fn update_room(&mut self, node: NodeId) {
        let free = self.free_mb(node);
        self.free.set(node, free);
        self.roomy.set(node, free > 0);
    }

    /// The first invoker in `hash`'s probe order with `need` MB free, by
    /// probing.
    fn first_by_probing(&self, invokers: &[NodeId], hash: u32, need: u64) -> Option<NodeId> {
        probe_order(hash, invokers.len() as u32, &self.steps)
            .map(|i| invokers[i as usize])
            .find(|&node| self.free_mb(node) >= need)
    }

    /// The same invoker, from the nodes with free memory: the probe order
    /// visits index `home + j step`, so a node at index `i` comes at
    /// `j = (i - home) step^-1 mod n`; the smallest `j` wins.
    fn first_by_place(&self, hash: u32, n: u32, need: u64) -> Option<NodeId> {
        let n64 = u64::from(n);
        let home = u64::from(hash % n);
        let inverse = self.inverses[hash as usize % self.inverses.len()];
        self.roomy
            .nodes
            .iter()
            .filter(|&&node| self.free_mb(node) >= need)
            .map(|&node| {
                let i = u64::from(self.index[node as usize]);
                (((i + n64 - home) % n64) * inverse % n64, node)
            })
            .min()
            .map(|(_, node)| node)
    }

}

impl Policy for OpenWhisk {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        self.choose_for(loads, None, function)
    }

    fn choose_by_id(
        &mut self,
        loads: &LoadIndex,
        id: FunctionId,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        self.choose_for(loads, Some(id), function)
    }

    fn members_changed(&mut self, loads: &LoadIndex, _now: Time) {
        let n = loads.online().len() as u32;
        self.steps = step_sizes(n);
        self.inverses = self
            .steps
            .iter()
            .map(|&s| inverse_mod(u64::from(s), u64::from(n)))
            .collect();
        self.free = MaxTree::default();
        self.roomy.clear();
        for (i, &node) in loads.online().iter().enumerate() {
            self.grow(node);
            self.memory_mb[node as usize] = loads.memory_mb(node);
            self.index[node as usize] = i as u32;
            self.free.set(node, 0);
            self.update_room(node);
        }
    }

    fn call_finished(&mut self, completion: &Completion<'_>, _now: Time) {
        let mb = self.memory_of(completion.function);
        self.finished_with(mb, completion);
    }

    fn call_finished_by_id(&mut self, id: FunctionId, completion: &Completion<'_>, _now: Time) {
        let mb = match self.functions.find_by_id(id, completion.function) {
            Some(f) => self.functions[f].memory_mb(),
            None => DEFAULT_FUNCTION_MEMORY_MB,
        };
        self.finished_with(mb, completion);
    }

    fn function_declared(&mut self, function: &str, memory_mb: u32) {
        // Declared functions are always kept (no bound here).
        let f = self.functions.index(
            None,
            function,
            usize::MAX,
            Self::kept,
            Self::new_function(function),
        );
        self.functions[f].declared_mb = Some(memory_mb);
    }
}

/// The inverse of `a` modulo `n` (`a` coprime to `n`; 0 when `n` <= 1).
fn inverse_mod(a: u64, n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    // Extended Euclid on (a, n), tracking a's coefficient.
    let (mut r0, mut r1) = (a as i64 % n as i64, n as i64);
    let (mut s0, mut s1) = (1i64, 0i64);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (s0, s1) = (s1, s0 - q * s1);
    }
    s0.rem_euclid(n as i64) as u64
}

/// A set of node ids with O(1) insertion and removal, iterable.
#[derive(Debug, Clone, Default)]
struct NodeList {
    nodes: Vec<NodeId>,
    /// Per node id: index in `nodes`, `usize::MAX` when absent.
    pos: Vec<usize>,
}

impl NodeList {
    fn clear(&mut self) {
        for &node in &self.nodes {
            self.pos[node as usize] = usize::MAX;
        }
        self.nodes.clear();
    }

    fn set(&mut self, node: NodeId, on: bool) {
        let i = node as usize;
        if self.pos.len() <= i {
            self.pos.resize(i + 1, usize::MAX);
        }
        match (on, self.pos[i]) {
            (true, usize::MAX) => {
                self.pos[i] = self.nodes.len();
                self.nodes.push(node);
            }
            (false, at) if at != usize::MAX => {
                self.nodes.swap_remove(at);
                if let Some(&moved) = self.nodes.get(at) {
                    self.pos[moved as usize] = at;
                }
                self.pos[i] = usize::MAX;
            }
            _ => {}
        }
    }
}

/// A max-tree over node ids: the largest value in O(1), updates in
/// O(log n). Leaves of ids never set are absent (value 0, not members).
#[derive(Debug, Clone, Default)]
struct MaxTree {
    tree: Vec<u64>,
    member: Vec<bool>,
    leaves: usize,
}

impl MaxTree {
    fn max(&self) -> u64 {
        self.tree.get(1).copied().unwrap_or(0)
    }

    fn is_member(&self, id: NodeId) -> bool {
        self.member.get(id as usize).copied().unwrap_or(false)
    }

    /// Sets the value of `id` and makes it a member.
    fn set(&mut self, id: NodeId, value: u64) {
        let i = id as usize;
        if i >= self.leaves {
            let leaves = (i + 1).next_power_of_two().max(self.leaves * 2).max(8);
            let mut tree = vec![0; 2 * leaves];
            tree[leaves..leaves + self.leaves]
                .copy_from_slice(&self.tree[self.leaves..2 * self.leaves]);
            for pos in (1..leaves).rev() {
                tree[pos] = tree[2 * pos].max(tree[2 * pos + 1]);
            }
            self.tree = tree;
            self.leaves = leaves;
            self.member.resize(leaves, false);
        }
        self.member[i] = true;
        let mut pos = self.leaves + i;
        self.tree[pos] = value;
        while pos > 1 {
            pos /= 2;
            self.tree[pos] = self.tree[2 * pos].max(self.tree[2 * pos + 1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{Membership, NodeInfo, Scheduler};
    use std::time::Duration;

    fn with_nodes(n: u32, seed: u64) -> Tracked<OpenWhisk> {
        Tracked::over_nodes(OpenWhisk::new(seed), n)
    }

    fn done(node: NodeId, function: &str) -> Completion<'_> {
        Completion::warm(node, function, Duration::from_millis(10), Duration::from_millis(5))
    }

    #[test]
    fn the_published_example_probes_3_6_9_2_5_8_1_4_7_0() {
        assert_eq!(step_sizes(10), [1, 3, 7]);
        let order: Vec<u32> = probe_order(13, 10, &step_sizes(10)).collect();
        assert_eq!(order, [3, 6, 9, 2, 5, 8, 1, 4, 7, 0]);
    }

    #[test]
    fn step_sizes_are_pairwise_coprime_and_coprime_to_n() {
        assert_eq!(step_sizes(0), Vec::<u32>::new());
        assert_eq!(step_sizes(1), [1]);
        assert_eq!(step_sizes(2), [1]);
        assert_eq!(step_sizes(12), [1, 5, 7, 11]);
        for n in 1..200 {
            let steps = step_sizes(n);
            for &s in &steps {
                for hash in [0, 7, 1_000_003] {
                    let mut seen: Vec<u32> = probe_order(hash, n, &[s]).collect();
                    seen.sort_unstable();
                    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n {n}, step {s}");
                }
            }
        }
    }

    #[test]
    fn java_hash_code_matches_java() {
        // Values of java.lang.String.hashCode.
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("abc"), 96_354);
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(
            function_hash("W1"),
            (java_hash("guest") ^ java_hash("guest/W1")).unsigned_abs()
        );
    }

    #[test]
    fn calls_fill_the_home_invoker_then_step_on() {
        // 2048 MB nodes, 1024 MB function: two slots per node.
        let mut s = with_nodes(10, 1);
        s.declare_function("big", 1024);
        let hash = function_hash("big");
        let order: Vec<u32> = probe_order(hash, 10, &step_sizes(10)).collect();
        let picks: Vec<NodeId> = (0..20).map(|_| s.select("big", Time::ZERO).unwrap()).collect();
        let expected: Vec<NodeId> = order.iter().flat_map(|&i| [i, i]).collect();
        assert_eq!(picks, expected);
        assert_eq!(s.policy().memory_in_use(order[0]), 2048);
        // Completion frees a slot on the home invoker: next call goes home.
        s.finished(&done(order[0], "big"), Time::ZERO);
        assert_eq!(s.policy().memory_in_use(order[0]), 1024);
        assert_eq!(s.select("big", Time::ZERO), Ok(order[0]));
    }

    #[test]
    fn default_memory_gives_eight_slots_per_default_node() {
        let mut s = with_nodes(3, 1);
        let home = function_hash("W3") % 3;
        for _ in 0..8 {
            assert_eq!(s.select("W3", Time::ZERO), Ok(home));
        }
        assert_ne!(s.select("W3", Time::ZERO), Ok(home));
    }

    #[test]
    fn overload_picks_random_invokers_reproducibly() {
        let run = |seed| {
            let mut s = with_nodes(4, seed);
            s.declare_function("f", 2048);
            let first: Vec<NodeId> = (0..4).map(|_| s.select("f", Time::ZERO).unwrap()).collect();
            let mut sorted = first.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3], "one slot each");
            (0..40)
                .map(|_| s.select("f", Time::ZERO).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run(5);
        assert_eq!(a, run(5));
        assert_ne!(a, run(6));
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), 4, "forced choices spread: {a:?}");
    }

    #[test]
    fn removed_invokers_are_skipped_and_their_completions_accepted() {
        let mut s = with_nodes(5, 3);
        let home = s.select("W1", Time::ZERO).unwrap();
        s.membership(Membership::Remove(home), Time::ZERO);
        for _ in 0..50 {
            let node = s.select("W1", Time::ZERO).unwrap();
            assert_ne!(node, home);
        }
        s.finished(&done(home, "W1"), Time::ZERO);
        assert_eq!(s.policy().memory_in_use(home), 0);
        s.membership(Membership::Insert(NodeInfo::new(home)), Time::ZERO);
        // Four members now: the home is recomputed over them, and node
        // `home` is selectable again.
        let mut back = false;
        for f in ["W1", "W2", "W3", "W4", "W5", "T1", "T2", "D1"] {
            back |= s.select(f, Time::ZERO) == Ok(home);
        }
        assert!(back, "node {home} never chosen after re-insertion");
    }

    #[test]
    fn redeclared_memory_never_leaks_a_node() {
        let mut s = with_nodes(1, 3);
        s.declare_function("f", 512);
        s.select("f", Time::ZERO).unwrap();
        s.declare_function("f", 256);
        s.finished(&done(0, "f"), Time::ZERO);
        assert_eq!(s.policy().memory_in_use(0), 0, "last call done: all free");
        // Unknown completions change nothing.
        s.finished(&done(7, "g"), Time::ZERO);
        assert_eq!(s.policy().memory_in_use(7), 0);
    }

    /// Past the bound the undeclared functions are forgotten and the
    /// declared ones renumbered: a declared function asked by its id
    /// still charges its own memory, not another function's.
    #[test]
    fn forgetting_past_the_bound_keeps_declared_memory_by_id_too() {
        let mut s = with_nodes(4, 5);
        let t = Time::ZERO;
        let a = s.select_by_id(0, "A", t).unwrap();
        s.finished_by_id(0, &done(a, "A"), t);
        s.declare_function("D", 1024);
        let d = s.select_by_id(1, "D", t).unwrap();
        s.finished_by_id(1, &done(d, "D"), t);
        for i in 2..=OpenWhisk::MAX_FUNCTIONS as u32 {
            let name = format!("F{i}");
            let n = s.select_by_id(i, &name, t).unwrap();
            s.finished_by_id(i, &done(n, &name), t);
        }
        // D (declared) and the last one are all that is left.
        assert_eq!(s.policy().functions.len(), 2);
        let d = s.select_by_id(1, "D", t).unwrap();
        assert_eq!(s.policy().memory_in_use(d), 1024);
        s.finished_by_id(1, &done(d, "D"), t);
        assert_eq!(s.policy().memory_in_use(d), 0);
    }

    #[test]
    fn placing_by_index_finds_the_node_the_probes_find() {
        assert_eq!(inverse_mod(3, 10), 7);
        assert_eq!(inverse_mod(1, 1), 0);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rand = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let functions = [("a", 256), ("b", 512), ("c", 1024), ("d", 128)];
        let mut compared = 0;
        for n in 1..=40u32 {
            let mut s = with_nodes(n, u64::from(n));
            for (f, mb) in functions {
                s.declare_function(f, mb);
            }
            let mut running: Vec<(NodeId, &str)> = Vec::new();
            for _ in 0..300 {
                if rand(3) == 0 && !running.is_empty() {
                    let (node, f) = running.swap_remove(rand(running.len() as u64) as usize);
                    s.finished(&done(node, f), Time::ZERO);
                } else {
                    let (f, _) = functions[rand(4) as usize];
                    running.push((s.select(f, Time::ZERO).unwrap(), f));
                }
                let ow = s.policy();
                for (f, mb) in functions {
                    let hash = function_hash(f);
                    let need = u64::from(mb);
                    assert_eq!(
                        ow.first_by_place(hash, n, need),
                        ow.first_by_probing(s.loads().online(), hash, need),
                        "n {n}, {f}"
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 40_000);
    }
}
