//! `ch` (alias `hash`): consistent hashing with bounded load.
//!
//! From HotFunctions (Prev/HotFunctions, `scheduler/consistent_hash.go`,
//! selected by `load_balancer/main.go` as `hash`), which applies the idea of
//! Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded
//! Loads" (SODA 2018): keep the locality of a consistent-hashing ring, but
//! skip a node that already holds its share of the load.
//!
//! The ring (see [`Md5Ring`]) has `T` points per online node at
//! `ring_hash("<nodeId>-<m>")` for `m < T`, where the hash is the first 4
//! bytes of MD5, big-endian, modulo 1,234,567. A call of function `f` starts
//! at the first point at or after `ring_hash(f)` and walks clockwise to the
//! first point whose node has fewer than `T` calls in flight. When every
//! online node holds `T` calls the selection fails with
//! [`SelectError::AllFull`] (answered in O(1) from the load index, before
//! any walk), so a node never holds more than `T` calls.
//!
//! Parameters ([`ChParams`]): `T` (environment variable `T`, key `ch.T`,
//! default 8) is both the number of ring points per node and the load
//! bound, as the original's `main.go` passes it for both. Valid: 1 to
//! 10,000. A bound of 0 would refuse every call (and leave the ring
//! empty); the ceiling keeps the ring (`T` MD5 points per node, rebuilt on
//! every membership change) small, since `/configure` can set `T`.
//!
//! Membership: the ring is rebuilt over the online members on every change;
//! point hashes are cached per id, so a node that comes back gets exactly
//! its old positions.

use super::load_index::LoadIndex;
use super::md5_ring::{HashCache, Md5Ring};
use super::registry::{Algorithm, Count, Param, SchedulerConfig};
use super::tracked::{Policy, Tracked};
use super::{FunctionId, NodeId, SelectError, Time};

/// `T`: ring points per node and in-flight bound.
pub const T: Count = Count {
    name: "T",
    doc: "ring points per node and in-flight bound of each node",
    default: 8,
    min: 1,
    max: 10_000,
};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "ch",
    aliases: &["hash"],
    summary: "consistent hashing with bounded load T (HotFunctions; Mirrokni et al., SODA 2018)",
    params: &[Param::Count(T)],
    compared_by_default: true,
    build: |config| {
        Box::new(Tracked::new(ConsistentHashBoundedLoad::new(
            ChParams::resolve(config),
        )))
    },
};

/// Parameters of `ch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChParams {
    /// [`T`]: ring points per node and the in-flight bound (default 8).
    pub t: u32,
}

impl Default for ChParams {
    fn default() -> Self {
        Self { t: T.default }
    }
}

impl ChParams {
    /// The values of a resolved configuration.
    pub fn resolve(config: &SchedulerConfig) -> Self {
        Self {
            t: config.count(&T),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsistentHashBoundedLoad {
    /// `T`: ring points per node and the in-flight bound.
    bound: u32,
    ring: Md5Ring,
    hashes: HashCache,
}

impl ConsistentHashBoundedLoad {
    /// A scheduler with `T` ring points per node and load bound `T`.
    pub fn new(params: ChParams) -> Self {
        Self {
            bound: params.t,
            ring: Md5Ring::new(params.t),
            hashes: HashCache::new(),
        }
    }

    /// The ring, for inspection and tests.
    pub fn ring(&self) -> &Md5Ring {
        &self.ring
    }
}

impl Policy for ConsistentHashBoundedLoad {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn members_changed(&mut self, loads: &LoadIndex, _now: Time) {
        self.ring.rebuild(loads.online());
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let hash = self.hashes.get(function);
        self.choose_hashed(loads, hash)
    }

    fn choose_by_id(
        &mut self,
        loads: &LoadIndex,
        id: FunctionId,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let hash = self.hashes.get_by_id(id, function);
        self.choose_hashed(loads, hash)
    }
}

impl ConsistentHashBoundedLoad {
    /// The choice for a function of ring hash `hash`.
    fn choose_hashed(&self, loads: &LoadIndex, hash: u32) -> Result<NodeId, SelectError> {
        if loads.online().is_empty() {
            return Err(SelectError::NoNodes);
        }
        let full = || SelectError::AllFull { bound: self.bound };
        let start = self.ring.owner_index(hash).ok_or_else(full)?;
        // Every online node has points on the ring, so one turn sees them
        // all: none with room is "all full". (Not the least loaded node's
        // load first: asking the load index for it would make every call
        // pay for keeping that index up to date, for a case that is rare.)
        self.ring
            .clockwise_from(start)
            .find(|&n| loads.load(n) < self.bound)
            .ok_or_else(full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tracked::Tracked;
    use crate::scheduler::{Completion, Membership, NodeInfo, Scheduler};

    fn with_nodes(n: u32, t: u32) -> Tracked<ConsistentHashBoundedLoad> {
        Tracked::over_nodes(ConsistentHashBoundedLoad::new(ChParams { t }), n)
    }

    fn done(node: NodeId, function: &str) -> Completion<'_> {
        Completion::warm(node, function, std::time::Duration::from_secs(1), std::time::Duration::ZERO)
    }

    #[test]
    fn stays_on_one_node_until_t_in_flight_then_spills() {
        let mut s = with_nodes(4, 4);
        let home = s.select("A", Time::ZERO).unwrap();
        for _ in 1..4 {
            assert_eq!(s.select("A", Time::ZERO), Ok(home));
        }
        assert_eq!(s.load(home), Some(4));
        let spill = s.select("A", Time::ZERO).unwrap();
        assert_ne!(spill, home, "the fifth call must spill");
        s.finished(&done(home, "A"), Time::ZERO);
        assert_eq!(
            s.select("A", Time::ZERO),
            Ok(home),
            "back home when it has room"
        );
    }

    #[test]
    fn all_full_is_an_error_and_room_ends_it() {
        let mut s = with_nodes(2, 2);
        let mut chosen = Vec::new();
        for f in ["A", "B", "C", "D"] {
            chosen.push(s.select(f, Time::ZERO).unwrap());
        }
        assert_eq!(s.load(0), Some(2));
        assert_eq!(s.load(1), Some(2));
        assert_eq!(
            s.select("E", Time::ZERO),
            Err(SelectError::AllFull { bound: 2 })
        );
        s.finished(&done(chosen[0], "A"), Time::ZERO);
        assert_eq!(s.select("E", Time::ZERO), Ok(chosen[0]));
    }

    #[test]
    fn removed_node_is_skipped_and_gets_its_points_back() {
        let mut s = with_nodes(4, 8);
        let before = s.policy().ring().points().to_vec();
        let home = s.select("W1", Time::ZERO).unwrap();
        s.finished(&done(home, "W1"), Time::ZERO);
        s.membership(Membership::Remove(home), Time::ZERO);
        assert!(s.policy().ring().points().iter().all(|p| p.node != home));
        for _ in 0..20 {
            let n = s.select("W1", Time::ZERO).unwrap();
            assert_ne!(n, home);
            s.finished(&done(n, "W1"), Time::ZERO);
        }
        s.membership(Membership::Insert(NodeInfo::new(home)), Time::ZERO);
        assert_eq!(s.policy().ring().points(), &before[..]);
        assert_eq!(s.select("W1", Time::ZERO), Ok(home));
    }

    #[test]
    fn no_nodes() {
        let mut s = Tracked::new(ConsistentHashBoundedLoad::new(ChParams::default()));
        assert_eq!(s.select("A", Time::ZERO), Err(SelectError::NoNodes));
    }
}
