//! [`InstanceTable`]: a node model's instance records by id, as a window
//! over the ids most recently minted beside a map for the older ones.
//!
//! A node mints its instance ids in increasing order, and most instances
//! live a short while (a cold start, a few calls, a keep-alive), so the
//! live ids cluster near the newest one. The table keeps the records of a
//! contiguous range of ids in a double-ended queue indexed by `id - base`:
//! a new instance is appended at the back (no hashing, the back is hot in
//! the cache) and a lookup is one indexed read. A hash map's lookup of a
//! random key touches two cache lines (its control bytes and its bucket);
//! at Azure scale under a spreading scheduler (rr on 1,000 nodes, most
//! calls cold) the instance map's inserts, lookups and removals were about
//! a tenth of the simulator's time, nearly all of it cache misses.
//!
//! Memory follows the live instances, not the ids minted: the window never
//! holds more than `2 * live + SLACK` slots. When it would, its oldest
//! records (instances that outlived many younger ones, such as a busy
//! function's long-reused instance) move to the map, once each, and the
//! window's front advances; free slots at the front are dropped as they
//! appear. Ids minted without a record (one-shot instances) are gaps:
//! a jump past the window's size starts a new window at the new id.
//!
//! Nothing depends on the order of iteration ([`InstanceTable::keys`] and
//! [`InstanceTable::values`] are in no particular order, as a hash map's).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::InstanceId;

/// Free slots the window may hold beyond twice its live records.
const SLACK: usize = 64;

/// Records by instance id. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct InstanceTable<V> {
    /// The id of `window[0]`.
    base: InstanceId,
    window: VecDeque<Option<V>>,
    /// Records in the window.
    live: usize,
    /// Records of ids below `base`.
    old: FxHashMap<InstanceId, V>,
}

impl<V> Default for InstanceTable<V> {
    fn default() -> Self {
        Self {
            base: 0,
            window: VecDeque::new(),
            live: 0,
            old: FxHashMap::default(),
        }
    }
}

impl<V> InstanceTable<V> {
    /// The window index of `id`, if it is at or after the window's front
    /// (it may be past the back).
    #[inline]
    fn index(&self, id: InstanceId) -> Option<usize> {
        id.checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
    }

    #[inline]
    pub(crate) fn get(&self, id: InstanceId) -> Option<&V> {
        match self.index(id) {
            Some(i) => self.window.get(i)?.as_ref(),
            None => self.old.get(&id),
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: InstanceId) -> Option<&mut V> {
        match self.index(id) {
            Some(i) => self.window.get_mut(i)?.as_mut(),
            None => self.old.get_mut(&id),
        }
    }

    /// Records `id` (replacing and returning its record, if any).
    pub(crate) fn insert(&mut self, id: InstanceId, record: V) -> Option<V> {
        let Some(i) = self.index(id) else {
            return self.old.insert(id, record);
        };
        if let Some(slot) = self.window.get_mut(i) {
            let previous = slot.replace(record);
            self.live += usize::from(previous.is_none());
            return previous;
        }
        let gap = i - self.window.len();
        if gap > self.window.len() + SLACK {
            // A jump (ids minted without records): a new window at `id`.
            self.retire_window();
            self.base = id;
        } else {
            self.window
                .extend(std::iter::repeat_with(|| None).take(gap));
        }
        self.window.push_back(Some(record));
        self.live += 1;
        self.trim();
        None
    }

    /// Removes and returns `id`'s record.
    pub(crate) fn remove(&mut self, id: InstanceId) -> Option<V> {
        let Some(i) = self.index(id) else {
            return self.old.remove(&id);
        };
        let record = self.window.get_mut(i)?.take()?;
        self.live -= 1;
        self.trim();
        Some(record)
    }

    /// Keeps the window within `2 * live + SLACK` slots, starting at a
    /// record (or empty).
    fn trim(&mut self) {
        loop {
            let long = self.window.len() > 2 * self.live + SLACK;
            match self.window.front_mut() {
                Some(Some(_)) if !long => break,
                Some(front) => {
                    if let Some(record) = front.take() {
                        self.old.insert(self.base, record);
                        self.live -= 1;
                    }
                    self.window.pop_front();
                    self.base += 1;
                }
                None => break,
            }
        }
    }

    /// Moves every record of the window to the map.
    fn retire_window(&mut self) {
        let base = self.base;
        for (id, slot) in (base..).zip(self.window.drain(..)) {
            if let Some(record) = slot {
                self.old.insert(id, record);
            }
        }
        self.live = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.live + self.old.len()
    }

    /// Every id, in no particular order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = InstanceId> + '_ {
        self.iter().map(|(id, _)| id)
    }

    /// Every (id, record), in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (InstanceId, &V)> + '_ {
        (self.base..)
            .zip(&self.window)
            .filter_map(|(id, slot)| Some((id, slot.as_ref()?)))
            .chain(self.old.iter().map(|(&id, v)| (id, v)))
    }

    /// Every record, mutably, in no particular order.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.window
            .iter_mut()
            .flatten()
            .chain(self.old.values_mut())
    }

    /// Every record, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.window.iter().flatten().chain(self.old.values())
    }

    /// Slots the window holds (for the memory bound's test).
    #[cfg(test)]
    fn window_slots(&self) -> usize {
        self.window.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Operations on ids near the newest one minted, as a node makes them.
    #[derive(Debug, Clone)]
    enum Op {
        /// Mints `skip` ids without records, then records the next one.
        Mint { skip: u8 },
        /// A jump: many ids minted without records.
        Jump { by: u16 },
        /// Removes the live record at this position (modulo), in id order.
        Remove(u16),
        /// Updates the live record at this position (modulo).
        Update(u16),
        /// Re-records an id that was removed (or a random old one).
        Reinsert(u16),
        /// Reads an id that may or may not exist.
        Get(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..3).prop_map(|skip| Op::Mint { skip }),
            1 => (100u16..2000).prop_map(|by| Op::Jump { by }),
            3 => any::<u16>().prop_map(Op::Remove),
            2 => any::<u16>().prop_map(Op::Update),
            1 => any::<u16>().prop_map(Op::Reinsert),
            2 => any::<u16>().prop_map(Op::Get),
        ]
    }

    proptest! {
        /// The table behaves as an ordered map, and its window stays
        /// within `2 * live + SLACK` slots after every operation.
        #[test]
        fn behaves_as_a_map_in_bounded_memory(ops in prop::collection::vec(op(), 1..400)) {
            let mut table = InstanceTable::default();
            let mut reference: BTreeMap<InstanceId, u64> = BTreeMap::new();
            let mut next: InstanceId = 1;
            for (step, op) in ops.into_iter().enumerate() {
                let value = step as u64;
                match op {
                    Op::Mint { skip } => {
                        next += u64::from(skip);
                        prop_assert_eq!(table.insert(next, value), reference.insert(next, value));
                        next += 1;
                    }
                    Op::Jump { by } => next += u64::from(by),
                    Op::Remove(k) | Op::Update(k) if reference.is_empty() => {
                        prop_assert_eq!(table.remove(u64::from(k)), None);
                    }
                    Op::Remove(k) => {
                        let id = *reference.keys().nth(usize::from(k) % reference.len()).unwrap();
                        prop_assert_eq!(table.remove(id), reference.remove(&id));
                        prop_assert_eq!(table.remove(id), None);
                    }
                    Op::Update(k) => {
                        let id = *reference.keys().nth(usize::from(k) % reference.len()).unwrap();
                        *table.get_mut(id).unwrap() = value;
                        reference.insert(id, value);
                    }
                    Op::Reinsert(k) => {
                        let id = u64::from(k) % next.max(1);
                        prop_assert_eq!(table.insert(id, value), reference.insert(id, value));
                    }
                    Op::Get(k) => {
                        let id = u64::from(k) % (next + 10);
                        prop_assert_eq!(table.get(id), reference.get(&id));
                    }
                }
                prop_assert_eq!(table.len(), reference.len());
                prop_assert!(table.window_slots() <= 2 * table.live + SLACK);
            }
            let mut keys: Vec<_> = table.keys().collect();
            keys.sort_unstable();
            prop_assert_eq!(keys, reference.keys().copied().collect::<Vec<_>>());
            let mut values: Vec<_> = table.values().copied().collect();
            values.sort_unstable();
            let mut expected: Vec<_> = reference.values().copied().collect();
            expected.sort_unstable();
            prop_assert_eq!(values, expected);
            for (id, v) in &reference {
                prop_assert_eq!(table.get(*id), Some(v));
            }
        }
    }

    /// A record that outlives many younger ones moves to the map and is
    /// still found; the window does not grow with the ids minted.
    #[test]
    fn a_long_lived_record_leaves_the_window_and_stays_found() {
        let mut table = InstanceTable::default();
        table.insert(1, "old");
        for id in 2..10_000 {
            table.insert(id, "young");
            assert_eq!(table.remove(id), Some("young"));
        }
        assert_eq!(table.get(1), Some(&"old"));
        assert!(
            table.window_slots() <= 2 + SLACK,
            "{}",
            table.window_slots()
        );
        assert_eq!(table.len(), 1);
        assert_eq!(table.remove(1), Some("old"));
        assert_eq!(table.len(), 0);
    }
}
