//! Load bookkeeping, written once for every algorithm.
//!
//! As tower keeps load tracking (`PendingRequests`, `PeakEwma`) apart from
//! the few lines that choose a backend, an algorithm here implements only
//! [`Policy`]: given the members and their calls in flight (a read-only
//! [`LoadIndex`]), which node? [`Tracked`] wraps a policy into a
//! [`Scheduler`]: it applies membership changes, counts a call on the node
//! the policy chose, uncounts it when it finishes, and answers `load`,
//! `members` and `capacity`, the same way for every algorithm. The policy
//! hears about what it may care for through hooks (the online set changed;
//! a call finished), so that, e.g., a hash ring is rebuilt only when the
//! members change.

use super::load_index::LoadIndex;
use super::{Completion, FunctionId, Membership, NodeId, NodeInfo, Scheduler, SelectError, Time};

/// The selection part of a scheduler: what differs between algorithms.
pub trait Policy: Send + std::fmt::Debug {
    /// The algorithm's canonical name (its registry entry's).
    fn name(&self) -> &'static str;

    /// Chooses the node for one call of `function` at `now`. `loads`
    /// holds the online members and the calls in flight before this one;
    /// the chosen node must be an online member. The caller counts the
    /// call there.
    fn choose(
        &mut self,
        loads: &LoadIndex,
        function: &str,
        now: Time,
    ) -> Result<NodeId, SelectError>;

    /// [`Policy::choose`] for a function the caller numbers `id` for the
    /// policy's whole life ([`Scheduler::select_by_id`]): a policy that
    /// keeps something per function name may keep it by `id` here. The
    /// same choice as `choose(loads, function, now)`, always.
    fn choose_by_id(
        &mut self,
        loads: &LoadIndex,
        id: FunctionId,
        function: &str,
        now: Time,
    ) -> Result<NodeId, SelectError> {
        let _ = id;
        self.choose(loads, function, now)
    }

    /// The online set changed, or a member's resources (a node inserted
    /// again with other capacity, cores or memory); `loads` already holds
    /// the new state.
    fn members_changed(&mut self, _loads: &LoadIndex, _now: Time) {}

    /// A call finished; `loads` no longer counts it.
    fn call_finished(&mut self, _completion: &Completion<'_>, _now: Time) {}

    /// [`Policy::call_finished`] for a call chosen by
    /// [`Policy::choose_by_id`] with `id`: the same bookkeeping, always.
    fn call_finished_by_id(&mut self, id: FunctionId, completion: &Completion<'_>, now: Time) {
        let _ = id;
        self.call_finished(completion, now);
    }

    /// `function`'s memory size was declared (MB).
    fn function_declared(&mut self, _function: &str, _memory_mb: u32) {}

    /// [`Scheduler::oblivious`]: `choose` reads nothing of `loads` but the
    /// online members, and `call_finished` changes nothing it reads.
    fn oblivious(&self) -> bool {
        false
    }
}

/// A [`Policy`] plus the membership and in-flight counts it chooses from:
/// a [`Scheduler`].
#[derive(Debug, Clone, Default)]
pub struct Tracked<P> {
    loads: LoadIndex,
    policy: P,
}

impl<P: Policy> Tracked<P> {
    /// `policy` with no members yet.
    pub fn new(policy: P) -> Self {
        Self {
            loads: LoadIndex::new(),
            policy,
        }
    }

    /// `policy` over nodes `0..n`, each with the default resources
    /// ([`NodeInfo::new`]), joined at time zero: a ready scheduler for
    /// tests, benchmarks and examples.
    pub fn over_nodes(policy: P, n: u32) -> Self {
        let mut s = Self::new(policy);
        for id in 0..n {
            s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
        }
        s
    }

    /// The wrapped policy, for inspection and tests.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The wrapped policy, mutably (for tests that probe its internals).
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// The membership and in-flight counts.
    pub fn loads(&self) -> &LoadIndex {
        &self.loads
    }
}

impl<P: Policy> Scheduler for Tracked<P> {
    fn name(&self) -> &'static str {
        self.policy.name()
    }

    fn membership(&mut self, change: Membership, now: Time) {
        if self.loads.apply(&change) {
            self.policy.members_changed(&self.loads, now);
        }
    }

    fn select(&mut self, function: &str, now: Time) -> Result<NodeId, SelectError> {
        let node = self.policy.choose(&self.loads, function, now)?;
        self.loads.started(node);
        Ok(node)
    }

    fn select_by_id(
        &mut self,
        id: FunctionId,
        function: &str,
        now: Time,
    ) -> Result<NodeId, SelectError> {
        let node = self.policy.choose_by_id(&self.loads, id, function, now)?;
        self.loads.started(node);
        Ok(node)
    }

    fn finished(&mut self, completion: &Completion<'_>, now: Time) {
        self.loads.finished(completion.node);
        self.policy.call_finished(completion, now);
    }

    fn finished_by_id(&mut self, id: FunctionId, completion: &Completion<'_>, now: Time) {
        self.loads.finished(completion.node);
        self.policy.call_finished_by_id(id, completion, now);
    }

    fn declare_function(&mut self, function: &str, memory_mb: u32) {
        self.policy.function_declared(function, memory_mb);
    }

    fn load(&self, node: NodeId) -> Option<u32> {
        self.loads.member_load(node)
    }

    fn members(&self) -> Vec<NodeId> {
        self.loads.online().to_vec()
    }

    fn capacity(&self, node: NodeId) -> Option<u32> {
        self.loads
            .is_online(node)
            .then(|| self.loads.capacity(node))
    }

    fn oblivious(&self) -> bool {
        self.policy.oblivious()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::NodeInfo;

    /// Always the lowest online id: the smallest policy there is.
    #[derive(Debug, Default)]
    struct Lowest {
        changes: u32,
        finished: Vec<String>,
    }

    impl Policy for Lowest {
        fn name(&self) -> &'static str {
            "lowest"
        }

        fn choose(&mut self, loads: &LoadIndex, _: &str, _: Time) -> Result<NodeId, SelectError> {
            loads.online().first().copied().ok_or(SelectError::NoNodes)
        }

        fn members_changed(&mut self, _: &LoadIndex, _: Time) {
            self.changes += 1;
        }

        fn call_finished(&mut self, completion: &Completion<'_>, _: Time) {
            self.finished.push(completion.function.to_string());
        }
    }

    #[test]
    fn counts_calls_and_tells_the_policy_what_changed() {
        let mut s = Tracked::new(Lowest::default());
        assert_eq!(s.select("f", Time::ZERO), Err(SelectError::NoNodes));
        s.membership(
            Membership::Insert(NodeInfo {
                capacity: 16,
                cores: 4,
                memory_mb: 512,
                ..NodeInfo::new(3)
            }),
            Time::ZERO,
        );
        s.membership(Membership::Insert(NodeInfo::new(5)), Time::ZERO);
        // Already online: not a change of the online set.
        s.membership(Membership::Insert(NodeInfo::new(5)), Time::ZERO);
        assert_eq!(s.policy().changes, 2);
        assert_eq!(s.select("f", Time::ZERO), Ok(3));
        assert_eq!(s.load(3), Some(1));
        assert_eq!(s.capacity(3), Some(16));
        assert_eq!(s.capacity(5), Some(NodeInfo::DEFAULT_CAPACITY));
        assert_eq!(s.capacity(4), None);
        assert_eq!((s.loads().cores(3), s.loads().memory_mb(3)), (4, 512));
        assert_eq!(s.loads().memory_mb(5), NodeInfo::DEFAULT_MEMORY_MB);
        s.membership(Membership::Remove(3), Time::ZERO);
        assert_eq!((s.load(3), s.members()), (None, vec![5]));
        let done = Completion {
            node: 3,
            function: "f",
            duration: std::time::Duration::ZERO,
            cold: false,
            ok: true,
            internal: std::time::Duration::ZERO,
        };
        s.finished(&done, Time::ZERO);
        assert_eq!(s.loads().load(3), 0);
        assert_eq!(s.policy().finished, ["f"]);
        assert_eq!(s.name(), "lowest");
    }
}
