//! A value per function for policies asked by the caller's dense function
//! ids ([`Scheduler::select_by_id`]), kept by index instead of by name.
//!
//! [`Scheduler::select_by_id`]: super::Scheduler::select_by_id

use rustc_hash::FxHashMap;

/// A value per caller's dense function id ([`Scheduler::select_by_id`]),
/// for policies that keep something per function: one index instead of a
/// name's hash. Grown to the ids seen (at least doubling); ids from
/// [`ById::MAX_ID`] on are not kept (the caller goes by name), so no
/// table is sized past 64 MiB by an id.
///
/// [`Scheduler::select_by_id`]: super::Scheduler::select_by_id
#[derive(Debug, Clone, Default)]
pub struct ById {
    /// `slots[id]` is the value + 1, or 0 when none is kept.
    slots: Vec<u32>,
}

impl ById {
    /// Ids at or above this are not kept.
    pub const MAX_ID: u32 = 1 << 24;

    /// The value kept for `id`, if any.
    #[inline]
    pub fn get(&self, id: u32) -> Option<u32> {
        match self.slots.get(id as usize) {
            Some(&v) if v != 0 => Some(v - 1),
            _ => None,
        }
    }

    /// Keeps `value` (below `u32::MAX`) for `id`, unless `id` is at or
    /// above [`ById::MAX_ID`].
    pub fn set(&mut self, id: u32, value: u32) {
        if id >= Self::MAX_ID {
            return;
        }
        let i = id as usize;
        if i >= self.slots.len() {
            let len = (i + 1).max(self.slots.len() * 2).min(Self::MAX_ID as usize);
            self.slots.resize(len, 0);
        }
        self.slots[i] = value + 1;
    }

    /// Forgets every value.
    pub fn clear(&mut self) {
        self.slots.clear();
    }

    /// Slots allocated (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// A policy's state per function, found by name (the live balancer) or
/// by the caller's dense id ([`Scheduler::select_by_id`], the simulator:
/// no name hashed per call once the id is known), with a bound on the
/// names kept. Indices are stable until the bound is reached: then only
/// the states the policy says to keep stay, renumbered, and every id is
/// learnt again by name.
///
/// [`Scheduler::select_by_id`]: super::Scheduler::select_by_id
#[derive(Debug, Clone)]
pub struct Functions<T> {
    by_name: FxHashMap<String, u32>,
    states: Vec<T>,
    by_id: ById,
}

impl<T> Default for Functions<T> {
    fn default() -> Self {
        Self {
            by_name: FxHashMap::default(),
            states: Vec::new(),
            by_id: ById::default(),
        }
    }
}

impl<T> Functions<T> {
    /// Functions known.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The index of `name`, if known.
    pub fn find(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The index of the function the caller numbers `id` (named `name`),
    /// if known; learnt by name the first time.
    pub fn find_by_id(&mut self, id: u32, name: &str) -> Option<u32> {
        if let Some(f) = self.by_id.get(id) {
            return Some(f);
        }
        let f = self.find(name)?;
        self.by_id.set(id, f);
        Some(f)
    }

    /// The state of `name`, if known.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.find(name).map(|f| &self.states[f as usize])
    }

    /// The index of `name`, which the caller numbers `id` when it gives
    /// one (found by that id once learnt), its state made by `make` if it
    /// is new. A new name past `bound` names first forgets every state
    /// `keep` does not hold (the others are renumbered).
    pub fn index(
        &mut self,
        id: Option<u32>,
        name: &str,
        bound: usize,
        keep: impl FnMut(&T) -> bool,
        make: impl FnOnce() -> T,
    ) -> u32 {
        if let Some(f) = id.and_then(|id| self.by_id.get(id)) {
            return f;
        }
        let f = match self.find(name) {
            Some(f) => f,
            None => {
                if self.states.len() >= bound {
                    self.forget_unless(keep);
                }
                let f = self.states.len() as u32;
                self.states.push(make());
                self.by_name.insert(name.to_string(), f);
                f
            }
        };
        if let Some(id) = id {
            self.by_id.set(id, f);
        }
        f
    }

    /// Keeps only the states `keep` holds, renumbered; ids are learnt
    /// again.
    fn forget_unless(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut old: Vec<Option<T>> = std::mem::take(&mut self.states)
            .into_iter()
            .map(Some)
            .collect();
        let kept = &mut self.states;
        self.by_name.retain(|_, f| match old[*f as usize].take() {
            Some(state) if keep(&state) => {
                *f = kept.len() as u32;
                kept.push(state);
                true
            }
            _ => false,
        });
        self.by_id.clear();
    }

    /// Every state, by index.
    pub fn states(&self) -> &[T] {
        &self.states
    }

    pub fn states_mut(&mut self) -> &mut [T] {
        &mut self.states
    }
}

impl<T> std::ops::Index<u32> for Functions<T> {
    type Output = T;
    fn index(&self, f: u32) -> &T {
        &self.states[f as usize]
    }
}

impl<T> std::ops::IndexMut<u32> for Functions<T> {
    fn index_mut(&mut self, f: u32) -> &mut T {
        &mut self.states[f as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kept_by_id_below_the_bound_and_forgotten_on_clear() {
        let mut t = ById::default();
        assert_eq!(t.get(3), None);
        t.set(3, 0);
        t.set(9, 41);
        assert_eq!((t.get(3), t.get(9), t.get(4)), (Some(0), Some(41), None));
        t.set(ById::MAX_ID, 5);
        t.set(u32::MAX, 5);
        assert_eq!((t.get(ById::MAX_ID), t.get(u32::MAX)), (None, None));
        assert!(t.capacity() <= 32);
        t.clear();
        assert_eq!(t.get(9), None);
    }

    #[test]
    fn functions_by_name_and_id_past_the_bound() {
        let mut t: Functions<u32> = Functions::default();
        let never = |_: &u32| false;
        assert_eq!(t.index(None, "a", 3, never, || 10), 0);
        assert_eq!(t.index(Some(7), "b", 3, never, || 11), 1);
        assert_eq!(
            (t.find_by_id(7, "b"), t.find_by_id(8, "a")),
            (Some(1), Some(0))
        );
        assert_eq!(t.index(None, "c", 3, never, || 12), 2);
        // Past the bound only the states kept stay, renumbered; ids
        // are learnt again (id 7 no longer names index 1).
        assert_eq!(t.index(None, "d", 3, |&v| v == 11, || 13), 1);
        assert_eq!(
            (t.find("b"), t.find("a"), t.get("d")),
            (Some(0), None, Some(&13))
        );
        assert_eq!(t.find_by_id(7, "b"), Some(0));
        assert_eq!(t.find_by_id(8, "a"), None);
        t[1] += 1;
        assert_eq!(t.states(), [11, 14]);
    }
}
