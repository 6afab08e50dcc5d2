//! Online membership and in-flight counts, the state most schedulers share.
//!
//! Indexed by [`NodeId`] in plain vectors (ids are small and dense), so that
//! selection over a thousand nodes in the simulator stays cheap. Ties in
//! "least loaded" are broken by the lowest id, as the original's list order.

use super::{Membership, NodeId};

#[derive(Debug, Clone, Default)]
pub struct NodeLoads {
    /// Online members, ascending.
    online: Vec<NodeId>,
    /// Whether each id is online (what `online` holds, by id: a
    /// scheduler asks per candidate node, a thousand of them in the
    /// simulator, where a search of `online` would cost a branchy
    /// `log2(nodes)` steps each time).
    is_online: Vec<bool>,
    /// In-flight calls per id, kept for removed nodes until their calls end.
    in_flight: Vec<u32>,
    /// Capacity, cores and memory per id, from [`Membership::Insert`].
    capacity: Vec<u32>,
    cores: Vec<u32>,
    memory_mb: Vec<u32>,
}

impl NodeLoads {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a membership change. Returns true when the online set
    /// changed, or an online member was inserted again with other
    /// resources (capacity, cores or memory).
    pub fn apply(&mut self, change: &Membership) -> bool {
        match change {
            Membership::Insert(info) => {
                let i = info.id as usize;
                self.grow(i + 1);
                let resized = (self.capacity[i], self.cores[i], self.memory_mb[i])
                    != (info.capacity, info.cores, info.memory_mb);
                self.capacity[i] = info.capacity;
                self.cores[i] = info.cores;
                self.memory_mb[i] = info.memory_mb;
                match self.online.binary_search(&info.id) {
                    Ok(_) => resized,
                    Err(pos) => {
                        self.online.insert(pos, info.id);
                        self.is_online[i] = true;
                        true
                    }
                }
            }
            Membership::Remove(id) => match self.online.binary_search(id) {
                Ok(pos) => {
                    self.online.remove(pos);
                    self.is_online[*id as usize] = false;
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Online members, ascending.
    pub fn online(&self) -> &[NodeId] {
        &self.online
    }

    pub fn is_online(&self, id: NodeId) -> bool {
        self.is_online.get(id as usize).copied().unwrap_or(false)
    }

    /// In-flight calls on `id` (0 for an unknown id).
    pub fn load(&self, id: NodeId) -> u32 {
        self.in_flight.get(id as usize).copied().unwrap_or(0)
    }

    /// In-flight calls if `id` is online.
    pub fn member_load(&self, id: NodeId) -> Option<u32> {
        self.is_online(id).then(|| self.load(id))
    }

    /// Capacity told at insertion (0 for an unknown id).
    pub fn capacity(&self, id: NodeId) -> u32 {
        self.capacity.get(id as usize).copied().unwrap_or(0)
    }

    /// Cores told at insertion (0 for an unknown id).
    pub fn cores(&self, id: NodeId) -> u32 {
        self.cores.get(id as usize).copied().unwrap_or(0)
    }

    /// Memory (MB) told at insertion (0 for an unknown id).
    pub fn memory_mb(&self, id: NodeId) -> u32 {
        self.memory_mb.get(id as usize).copied().unwrap_or(0)
    }

    /// Counts one more call on `id`.
    pub fn started(&mut self, id: NodeId) {
        let i = id as usize;
        self.grow(i + 1);
        self.in_flight[i] += 1;
    }

    /// Room for ids `0..ids`.
    fn grow(&mut self, ids: usize) {
        if self.in_flight.len() < ids {
            self.in_flight.resize(ids, 0);
            self.is_online.resize(ids, false);
            self.capacity.resize(ids, 0);
            self.cores.resize(ids, 0);
            self.memory_mb.resize(ids, 0);
        }
    }

    /// Counts one call fewer on `id` (never below zero).
    pub fn finished(&mut self, id: NodeId) {
        if let Some(l) = self.in_flight.get_mut(id as usize) {
            *l = l.saturating_sub(1);
        }
    }

    /// The least loaded online node, lowest id first on ties.
    pub fn least_loaded(&self) -> Option<NodeId> {
        self.least_loaded_of(self.online.iter().copied())
    }

    /// The least loaded of `candidates`, first one on ties.
    pub fn least_loaded_of(&self, candidates: impl IntoIterator<Item = NodeId>) -> Option<NodeId> {
        let mut best: Option<(u32, NodeId)> = None;
        for id in candidates {
            let l = self.load(id);
            if best.is_none_or(|(bl, _)| l < bl) {
                best = Some((l, id));
            }
        }
        best.map(|(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::NodeInfo;

    #[test]
    fn membership_and_loads() {
        let mut l = NodeLoads::new();
        assert!(l.apply(&Membership::Insert(NodeInfo::new(2))));
        assert!(l.apply(&Membership::Insert(NodeInfo::new(0))));
        assert!(!l.apply(&Membership::Insert(NodeInfo::new(0))));
        let bigger = NodeInfo {
            memory_mb: 4096,
            ..NodeInfo::new(0)
        };
        assert!(
            l.apply(&Membership::Insert(bigger.clone())),
            "new resources"
        );
        assert!(!l.apply(&Membership::Insert(bigger)));
        assert_eq!(l.memory_mb(0), 4096);
        assert_eq!(l.online(), &[0, 2]);
        l.started(0);
        assert_eq!(l.least_loaded(), Some(2));
        l.started(2);
        assert_eq!(l.least_loaded(), Some(0), "ties go to the lowest id");
        assert!(l.is_online(0) && l.is_online(2) && !l.is_online(1) && !l.is_online(99));
        assert!(l.apply(&Membership::Remove(0)));
        assert!(!l.is_online(0) && l.is_online(2));
        assert_eq!(l.member_load(0), None);
        assert_eq!(l.load(0), 1, "in-flight calls survive removal");
        l.finished(0);
        l.finished(0);
        assert_eq!(l.load(0), 0, "never below zero");
        assert!(!l.apply(&Membership::Remove(7)));
    }
}
