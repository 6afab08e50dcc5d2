//! The event queue: a min-heap keyed by (virtual time, sequence number),
//! so events due at the same instant leave in insertion order and runs are
//! deterministic (as in nexosim and SimPy).
//!
//! The heap is 4-ary (each node has four children, which share a cache
//! line or two): half the depth of a binary heap, so a pop, which sifts
//! from the root to a leaf, touches half as many levels; a push sifts up
//! about one level on average either way. The key (time, sequence) is one
//! `u128`, compared in one step. Keys are unique, so the order in which
//! events leave is the same as any other correct priority queue's.
//!
//! Entries are small `Copy` values; the heap's storage is reused for the
//! whole run, so pushing and popping does not allocate once it has grown.

use policy::Time;

/// Children per heap node.
const ARITY: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Entry<E> {
    /// `time << 64 | seq`.
    key: u128,
    event: E,
}

impl<E> Entry<E> {
    fn time(&self) -> Time {
        Time::from_micros((self.key >> 64) as u64)
    }
}

/// Pending events, earliest first, ties in insertion order.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: Vec<Entry<E>>,
    next_seq: u64,
}

impl<E: Copy> EventQueue<E> {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            heap: Vec::with_capacity(capacity),
            next_seq: 0,
        }
    }

    /// Schedules `event` at `time`.
    #[inline]
    pub fn push(&mut self, time: Time, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            key: (u128::from(time.as_micros()) << 64) | u128::from(seq),
            event,
        };
        // Sift up: move parents down until `entry`'s place is found.
        let mut pos = self.heap.len();
        self.heap.push(entry);
        while pos > 0 {
            let parent = (pos - 1) / ARITY;
            let p = self.heap[parent];
            if p.key <= entry.key {
                break;
            }
            self.heap[pos] = p;
            pos = parent;
        }
        self.heap[pos] = entry;
    }

    /// The time of the earliest pending event.
    #[inline]
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.first().map(Entry::time)
    }

    /// Removes and returns the earliest pending event.
    #[inline]
    pub fn pop(&mut self) -> Option<(Time, E)> {
        let last = self.heap.pop()?;
        let Some(&top) = self.heap.first() else {
            return Some((last.time(), last.event));
        };
        // Sift `last` down from the root: move the least child up while
        // it is less than `last`.
        let len = self.heap.len();
        let mut pos = 0;
        loop {
            let first = pos * ARITY + 1;
            if first >= len {
                break;
            }
            let end = (first + ARITY).min(len);
            let mut best = first;
            let mut best_key = self.heap[first].key;
            for c in first + 1..end {
                let k = self.heap[c].key;
                if k < best_key {
                    best = c;
                    best_key = k;
                }
            }
            if best_key >= last.key {
                break;
            }
            self.heap[pos] = self.heap[best];
            pos = best;
        }
        self.heap[pos] = last;
        Some((top.time(), top.event))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_ties_in_insertion_order() {
        let mut q = EventQueue::with_capacity(4);
        q.push(Time::from_micros(5), 'a');
        q.push(Time::from_micros(1), 'b');
        q.push(Time::from_micros(5), 'c');
        q.push(Time::from_micros(1), 'd');
        q.push(Time::from_micros(3), 'e');
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![
                (Time::from_micros(1), 'b'),
                (Time::from_micros(1), 'd'),
                (Time::from_micros(3), 'e'),
                (Time::from_micros(5), 'a'),
                (Time::from_micros(5), 'c')
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn pops_the_least_pending_time_and_insertion_order_among_many_ties() {
        let mut q = EventQueue::with_capacity(0);
        // The reference: pending (time, insertion) pairs, least popped.
        let mut pending: Vec<(u64, u32)> = Vec::new();
        let mut x: u64 = 7;
        let mut now = 0u64;
        let mut pops = 0;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(3) || i >= 15_000 {
                let expected = pending.iter().copied().min();
                let got = q.pop().map(|(t, e)| (t.as_micros(), e));
                assert_eq!(got, expected, "pop {pops}");
                if let Some(least) = expected {
                    pending.retain(|p| *p != least);
                    now = least.0;
                    pops += 1;
                }
            } else {
                // Few distinct times, so many ties.
                let t = now + x % 16;
                q.push(Time::from_micros(t), i);
                pending.push((t, i));
            }
            assert_eq!(q.len(), pending.len());
        }
        assert!(pops > 5_000);
    }
}
