//! `ll`: least loaded, by in-flight calls.
//!
//! From HotFunctions (Prev/HotFunctions, `scheduler/least_loaded.go`): every
//! call goes to the node with the fewest calls in flight, the first node in
//! list order on ties. Node ids are list indices, so ties go to the lowest
//! online id. No parameters. The choice is O(1) via [`LoadIndex`].

use super::load_index::LoadIndex;
use super::registry::Algorithm;
use super::tracked::{Policy, Tracked};
use super::{NodeId, SelectError, Time};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "ll",
    aliases: &[],
    summary: "fewest calls in flight, lowest id on ties (HotFunctions)",
    params: &[],
    compared_by_default: true,
    build: |_| Box::new(Tracked::new(LeastLoaded::new())),
};

#[derive(Debug, Clone, Default)]
pub struct LeastLoaded;

impl LeastLoaded {
    pub fn new() -> Self {
        Self
    }
}

impl Policy for LeastLoaded {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        _function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        loads.least_loaded().ok_or(SelectError::NoNodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tracked::Tracked;
    use crate::scheduler::{Completion, Membership, Scheduler};

    fn with_nodes(n: u32) -> Tracked<LeastLoaded> {
        Tracked::over_nodes(LeastLoaded::new(), n)
    }

    #[test]
    fn eighty_calls_over_ten_idle_nodes_cycle() {
        let mut s = with_nodes(10);
        for i in 0..80u32 {
            assert_eq!(s.select("W1", Time::ZERO), Ok(i % 10));
        }
    }

    #[test]
    fn follows_completions_and_membership() {
        let mut s = with_nodes(3);
        for _ in 0..3 {
            s.select("A", Time::ZERO).unwrap();
        }
        let done = Completion {
            node: 1,
            function: "A",
            duration: std::time::Duration::from_millis(5),
            cold: false,
            ok: true,
            internal: std::time::Duration::ZERO,
        };
        s.finished(&done, Time::ZERO);
        assert_eq!(s.select("A", Time::ZERO), Ok(1));
        s.finished(&done, Time::ZERO);
        s.membership(Membership::Remove(1), Time::ZERO);
        assert_eq!(s.select("A", Time::ZERO), Ok(0));
        assert_eq!(s.members(), vec![0, 2]);
        let mut none = Tracked::new(LeastLoaded::new());
        assert_eq!(none.select("A", Time::ZERO), Err(SelectError::NoNodes));
    }
}
