//! `rr`: round robin over the online members.
//!
//! From HotFunctions (Prev/HotFunctions, `scheduler/round_robin.go`): the
//! i-th call goes to the (i mod n)-th node. Here the cursor walks the online
//! members in id order, so a membership change keeps the rotation going
//! from where it was rather than restarting it.

use super::load_index::LoadIndex;
use super::registry::Algorithm;
use super::tracked::{Policy, Tracked};
use super::{NodeId, SelectError, Time};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "rr",
    aliases: &[],
    summary: "round robin over the online members (HotFunctions)",
    params: &[],
    compared_by_default: true,
    build: |_| Box::new(Tracked::new(RoundRobin::new())),
};

#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    /// Position in the online members of the next call.
    next: usize,
}

impl RoundRobin {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Policy for RoundRobin {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn oblivious(&self) -> bool {
        true
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        _function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let online = loads.online();
        if online.is_empty() {
            return Err(SelectError::NoNodes);
        }
        let node = online[self.next % online.len()];
        self.next = (self.next + 1) % online.len();
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tracked::Tracked;
    use crate::scheduler::{Membership, NodeInfo, Scheduler};

    #[test]
    fn eighty_calls_over_ten_nodes_cycle() {
        let mut s = Tracked::new(RoundRobin::new());
        for id in 0..10 {
            s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
        }
        for i in 0..80u32 {
            assert_eq!(s.select("W1", Time::ZERO), Ok(i % 10));
        }
    }
}
