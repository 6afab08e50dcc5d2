//! A value per function for policies asked by the caller's dense function
//! ids ([`Scheduler::select_by_id`]), kept by index instead of by name.
//!
//! [`Scheduler::select_by_id`]: super::Scheduler::select_by_id

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
}
