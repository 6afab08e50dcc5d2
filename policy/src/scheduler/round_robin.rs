//! `rr`: round robin over the online members.
//!
//! From HotFunctions (Prev/HotFunctions, `scheduler/round_robin.go`): the
//! i-th call goes to the (i mod n)-th node. Here the cursor walks the online
//! members in id order, so a membership change keeps the rotation going
//! from where it was rather than restarting it.

use super::{Completion, Membership, NodeId, NodeLoads, Scheduler, SelectError, Time};

#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    loads: NodeLoads,
    next: usize,
}

impl RoundRobin {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn membership(&mut self, change: Membership, _now: Time) {
        self.loads.apply(&change);
    }

    fn select(&mut self, _function: &str, _now: Time) -> Result<NodeId, SelectError> {
        let online = self.loads.online();
        if online.is_empty() {
            return Err(SelectError::NoNodes);
        }
        let node = online[self.next % online.len()];
        self.next = (self.next + 1) % online.len();
        self.loads.started(node);
        Ok(node)
    }

    fn finished(&mut self, completion: &Completion<'_>, _now: Time) {
        self.loads.finished(completion.node);
    }

    fn load(&self, node: NodeId) -> Option<u32> {
        self.loads.member_load(node)
    }

    fn members(&self) -> Vec<NodeId> {
        self.loads.online().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::NodeInfo;

    #[test]
    fn eighty_calls_over_ten_nodes_cycle() {
        let mut s = RoundRobin::new();
        for id in 0..10 {
            s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
        }
        for i in 0..80u32 {
            assert_eq!(s.select("W1", Time::ZERO), Ok(i % 10));
        }
    }
}
