//! `pasch`: PASch extended, two hash choices with a least-loaded fallback.
//!
//! From Aumala, Boza, Gerasimenko, Castro and Pasquale, "Beyond Load
//! Balancing: Package-Aware Scheduling for Serverless Platforms" (CCGrid
//! 2019): hash each call's key to two candidate nodes ("power of two
//! choices" on a consistent-hashing ring, the key being the package in the
//! paper and the function name here), take the less loaded, and fall back
//! to the least loaded node when that one is overloaded. This is the
//! extended variant of HotFunctions (Prev/HotFunctions,
//! `scheduler/pasch.go`):
//!
//! 1. look the function name up on the ring, and the name + `"salt"`;
//! 2. take the first unless the second has strictly fewer calls in flight;
//! 3. if that node holds `T` or more calls, take the globally least loaded
//!    online node instead (lowest id on ties); it never refuses a call.
//!
//! The ring is the one of the Go package HotFunctions uses
//! (`github.com/lafikl/consistent` at the version its `go.sum` pins): 10
//! points per node at `hash("<nodeId><i>")` for `i` in `0..10`, where the
//! hash is the first 8 bytes of BLAKE2b-512, little-endian; a key belongs
//! to the first point at or after its hash, wrapping around. Rebuilt over
//! the online members on every membership change (point hashes are cached
//! per id, so a node that comes back gets its old positions).
//!
//! Parameters ([`PaschParams`]): `T` (environment variable `T`, key
//! `pasch.T`, default 8), at least 1: with 0 every call would fall back,
//! which is `ll`, not `pasch`. No ceiling: a large `T` only means the
//! fallback never happens.

use rustc_hash::FxHashMap;

use blake2::{Blake2b512, Digest};

use super::load_index::LoadIndex;
use super::md5_ring::HashCache;
use super::registry::{Algorithm, Count, Param, SchedulerConfig};
use super::tracked::{Policy, Tracked};
use super::by_id::ById;
use super::{FunctionId, NodeId, SelectError, Time};

/// `T`: load at which the hashed choice is abandoned.
pub const T: Count = Count {
    name: "T",
    doc: "in-flight calls at which the two hashed choices give way to the least loaded node",
    default: 8,
    min: 1,
    max: u32::MAX,
};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "pasch",
    aliases: &[],
    summary: "two hashed choices, least loaded at T (HotFunctions; Aumala et al., CCGrid 2019)",
    params: &[Param::Count(T)],
    compared_by_default: true,
    build: |config| Box::new(Tracked::new(PaschExtended::new(PaschParams::resolve(config)))),
};

/// Parameters of `pasch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaschParams {
    /// [`T`]: load at which the hashed choice is abandoned (default 8).
    pub t: u32,
}

impl Default for PaschParams {
    fn default() -> Self {
        Self { t: T.default }
    }
}

impl PaschParams {
    /// The values of a resolved configuration.
    pub fn resolve(config: &SchedulerConfig) -> Self {
        Self {
            t: config.count(&T),
        }
    }
}

/// Ring points per node in `lafikl/consistent` (its `replicationFactor`).
pub const POINTS_PER_NODE: u32 = 10;

/// The salt appended to the function name for the second choice.
pub const SECOND_CHOICE_SALT: &str = "salt";

/// First 8 bytes of BLAKE2b-512(`key`), little-endian.
pub fn blake2b_ring_hash(key: &[u8]) -> u64 {
    let digest = Blake2b512::digest(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

#[derive(Debug, Clone)]
pub struct PaschExtended {
    /// `T`: load at which the hashed choice is abandoned.
    threshold: u32,
    /// (hash, node), sorted by hash.
    ring: Vec<(u64, NodeId)>,
    /// Point hashes per node id.
    node_points: Vec<Vec<u64>>,
    /// Function name → (hash of name, hash of name + salt), bounded like
    /// [`HashCache`].
    hashes: FxHashMap<Box<str>, (u64, u64)>,
    /// The same pairs by the caller's dense function ids
    /// ([`Policy::choose_by_id`]): `by_id` indexes `id_hashes` (a pure
    /// cache: the pair of an id never changes).
    by_id: ById,
    id_hashes: Vec<(u64, u64)>,
}

impl PaschExtended {
    pub fn new(params: PaschParams) -> Self {
        Self {
            threshold: params.t,
            ring: Vec::new(),
            node_points: Vec::new(),
            hashes: FxHashMap::default(),
            by_id: ById::default(),
            id_hashes: Vec::new(),
        }
    }

    /// The two candidate nodes of `function` (first choice, second choice).
    pub fn candidates(&mut self, function: &str) -> Option<(NodeId, NodeId)> {
        let (h1, h2) = self.pair(function);
        Some((self.owner(h1)?, self.owner(h2)?))
    }

    /// [`PaschExtended::candidates`] of `function`, which the caller
    /// numbers `id` ([`Policy::choose_by_id`]).
    fn candidates_by_id(&mut self, id: FunctionId, function: &str) -> Option<(NodeId, NodeId)> {
        let (h1, h2) = match self.by_id.get(id) {
            Some(i) => self.id_hashes[i as usize],
            None => {
                let pair = self.pair(function);
                if id < ById::MAX_ID {
                    self.by_id.set(id, self.id_hashes.len() as u32);
                    self.id_hashes.push(pair);
                }
                pair
            }
        };
        Some((self.owner(h1)?, self.owner(h2)?))
    }

    /// (hash of `function`, hash of it with the salt), cached by name.
    fn pair(&mut self, function: &str) -> (u64, u64) {
        if let Some(&h) = self.hashes.get(function) {
            return h;
        }
        let h1 = blake2b_ring_hash(function.as_bytes());
        let h2 = blake2b_ring_hash(format!("{function}{SECOND_CHOICE_SALT}").as_bytes());
        if self.hashes.len() >= HashCache::CAPACITY {
            self.hashes.clear();
        }
        self.hashes.insert(function.into(), (h1, h2));
        (h1, h2)
    }

    /// The choice between the two candidates.
    fn choose_from(
        &self,
        loads: &LoadIndex,
        candidates: Option<(NodeId, NodeId)>,
    ) -> Result<NodeId, SelectError> {
        let (first, second) = candidates.ok_or(SelectError::NoNodes)?;
        let mut node = first;
        if loads.load(first) > loads.load(second) {
            node = second;
        }
        if loads.load(node) >= self.threshold {
            node = loads.least_loaded().ok_or(SelectError::NoNodes)?;
        }
        Ok(node)
    }

    fn owner(&self, hash: u64) -> Option<NodeId> {
        let i = self.ring.partition_point(|&(h, _)| h < hash);
        self.ring
            .get(i)
            .or_else(|| self.ring.first())
            .map(|&(_, n)| n)
    }

    fn rebuild_ring(&mut self, online: &[NodeId]) {
        let mut ring = Vec::with_capacity(online.len() * POINTS_PER_NODE as usize);
        for &id in online {
            let i = id as usize;
            if self.node_points.len() <= i {
                self.node_points.resize_with(i + 1, Vec::new);
            }
            if self.node_points[i].is_empty() {
                self.node_points[i] = (0..POINTS_PER_NODE)
                    .map(|p| blake2b_ring_hash(format!("{id}{p}").as_bytes()))
                    .collect();
            }
            ring.extend(self.node_points[i].iter().map(|&h| (h, id)));
        }
        ring.sort_unstable();
        self.ring = ring;
    }
}

impl Policy for PaschExtended {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn members_changed(&mut self, loads: &LoadIndex, _now: Time) {
        self.rebuild_ring(loads.online());
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let candidates = self.candidates(function);
        self.choose_from(loads, candidates)
    }

    fn choose_by_id(
        &mut self,
        loads: &LoadIndex,
        id: FunctionId,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let candidates = self.candidates_by_id(id, function);
        self.choose_from(loads, candidates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tracked::Tracked;
    use crate::scheduler::{Membership, NodeInfo, Scheduler};

    fn with_nodes(n: u32, t: u32) -> Tracked<PaschExtended> {
        Tracked::over_nodes(PaschExtended::new(PaschParams { t }), n)
    }

    #[test]
    fn blake2b_prefix_little_endian() {
        // BLAKE2b-512("") starts 78 6a 02 f7 42 01 59 03 (RFC 7693 test vector).
        assert_eq!(blake2b_ring_hash(b""), 0x0359_0142_f702_6a78);
    }

    /// A function whose two choices differ on `s`.
    fn two_choice_function(s: &mut Tracked<PaschExtended>) -> (String, NodeId, NodeId) {
        (0..1000)
            .map(|i| format!("F{i}"))
            .find_map(|f| {
                let (a, b) = s.policy_mut().candidates(&f)?;
                (a != b).then_some((f, a, b))
            })
            .expect("some function has two distinct choices on 4 nodes")
    }

    #[test]
    fn alternates_between_two_choices_then_falls_back_to_least_loaded() {
        let mut s = with_nodes(4, 3);
        let (f, a, b) = two_choice_function(&mut s);
        // Ties go to the first choice; then the less loaded of the two.
        let picks: Vec<NodeId> = (0..6).map(|_| s.select(&f, Time::ZERO).unwrap()).collect();
        assert_eq!(picks, vec![a, b, a, b, a, b]);
        // Both at T = 3: the least loaded of the others, lowest id first.
        let others: Vec<NodeId> = (0..4).filter(|n| *n != a && *n != b).collect();
        assert_eq!(s.select(&f, Time::ZERO), Ok(others[0]));
        assert_eq!(s.select(&f, Time::ZERO), Ok(others[1]));
    }

    #[test]
    fn removed_choice_is_never_taken_and_comes_back() {
        let mut s = with_nodes(4, 8);
        let (f, a, _) = two_choice_function(&mut s);
        s.membership(Membership::Remove(a), Time::ZERO);
        for _ in 0..30 {
            assert_ne!(s.select(&f, Time::ZERO).unwrap(), a);
        }
        s.membership(Membership::Insert(NodeInfo::new(a)), Time::ZERO);
        assert_eq!(s.policy_mut().candidates(&f).unwrap().0, a);
    }
}
