//! The event queue: a binary min-heap keyed by (virtual time, sequence
//! number), so events due at the same instant leave in insertion order and
//! runs are deterministic (as in nexosim and SimPy).
//!
//! Entries are small `Copy` values; the heap's storage is reused for the
//! whole run, so pushing and popping does not allocate once it has grown.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use policy::Time;

#[derive(Debug, Clone, Copy)]
struct Entry<E> {
    time: Time,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.time == other.time && self.seq == other.seq
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// Pending events, earliest first, ties in insertion order.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
}

impl<E: Copy> EventQueue<E> {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            heap: BinaryHeap::with_capacity(capacity),
            next_seq: 0,
        }
    }

    /// Schedules `event` at `time`.
    #[inline]
    pub fn push(&mut self, time: Time, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { time, seq, event });
    }

    /// The time of the earliest pending event.
    #[inline]
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|e| e.time)
    }

    /// Removes and returns the earliest pending event.
    #[inline]
    pub fn pop(&mut self) -> Option<(Time, E)> {
        self.heap.pop().map(|e| (e.time, e.event))
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
}
