//! [`Timers`]: a node model's pending looks at its functions, earliest
//! first, as a sorted queue beside a heap.
//!
//! Most timers a node sets are an idle instance's expiry, set when a call
//! ends: `now + keep-alive`, with one keep-alive for the node, so they come
//! in time order. Those go to the back of a queue, in O(1) and in order;
//! only a timer earlier than the queue's last (a pool's next expiry after
//! one expired, a pre-warm window, a function's own keep-alive) goes to a
//! binary heap. The earliest timer is the smaller of the two heads. Entries
//! leave in the order one heap of all of them would give them: by time,
//! then function id (see [`Timers::push`]).
//!
//! Under a spreading scheduler at Azure scale (1,000 nodes, 10,000
//! functions) the heap's sift-down was about 9 % of the simulator's time;
//! the queue is a sequential read.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::functions::FunctionId;
use crate::time::Time;

/// One timer: when, the function's global id (ties in time go in its
/// order), and the node's local id of it.
pub(crate) type Timer = (Time, FunctionId, u32);

/// Pending timers, earliest first (ties by global id, then local id).
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    /// Timers pushed in order, earliest at the front.
    sorted: VecDeque<Timer>,
    /// The others.
    heap: BinaryHeap<Reverse<Timer>>,
    /// The earliest time of either (kept beside the node's other fields:
    /// a driver reads it after every event).
    min: Option<Time>,
}

impl Timers {
    /// Adds a timer (duplicates are kept: the model checks an entry
    /// against its function's pending timer when it leaves).
    pub(crate) fn push(&mut self, timer: Timer) {
        if self.sorted.back().is_none_or(|last| *last <= timer) {
            self.sorted.push_back(timer);
        } else {
            self.heap.push(Reverse(timer));
        }
        self.min = Some(self.min.map_or(timer.0, |m| m.min(timer.0)));
    }

    /// When the earliest timer is due.
    #[inline]
    pub(crate) fn next(&self) -> Option<Time> {
        self.min
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Time) -> Option<Timer> {
        if self.min.is_none_or(|t| t > now) {
            return None;
        }
        let from_heap = match (self.sorted.front(), self.heap.peek()) {
            (Some(a), Some(Reverse(b))) => b < a,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        let timer = if from_heap {
            self.heap.pop().map(|Reverse(t)| t)
        } else {
            self.sorted.pop_front()
        };
        let a = self.sorted.front().map(|t| t.0);
        let b = self.heap.peek().map(|Reverse(t)| t.0);
        self.min = match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        timer
    }

    pub(crate) fn clear(&mut self) {
        self.sorted.clear();
        self.heap.clear();
        self.min = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaves in one heap's order, with pushes in order, out of order
    /// and tied, and pops at times in between.
    #[test]
    fn leaves_in_the_order_of_one_heap() {
        let mut timers = Timers::default();
        let mut reference: BinaryHeap<Reverse<Timer>> = BinaryHeap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut now = 0u64;
        let (mut from_queue, mut out_of_order, mut popped) = (0, 0, 0);
        for _ in 0..50_000 {
            let r = rand();
            if r % 3 == 0 {
                // Time passes; everything due leaves.
                now += rand() % 40;
                let at = Time::from_micros(now);
                loop {
                    let want = match reference.peek() {
                        Some(Reverse(t)) if t.0 <= at => reference.pop().map(|Reverse(t)| t),
                        _ => None,
                    };
                    let got = timers.pop_due(at);
                    assert_eq!(got, want, "at {now}");
                    if got.is_none() {
                        break;
                    }
                    popped += 1;
                }
            } else {
                // Mostly `now + a constant`, as expiries are; sometimes
                // earlier; few ids, so ties in time are common.
                let t = if r % 5 == 0 {
                    now + rand() % 60
                } else {
                    now + 60
                };
                let timer = (
                    Time::from_micros(t),
                    (rand() % 4) as u32,
                    (rand() % 3) as u32,
                );
                if timers.sorted.back().is_none_or(|last| *last <= timer) {
                    from_queue += 1;
                } else {
                    out_of_order += 1;
                }
                timers.push(timer);
                reference.push(Reverse(timer));
            }
            let least = reference.peek().map(|Reverse(t)| t.0);
            assert_eq!(timers.next(), least);
        }
        assert!(from_queue > 10_000 && out_of_order > 1_000 && popped > 10_000);
        timers.clear();
        assert_eq!(timers.next(), None);
        assert_eq!(timers.pop_due(Time::MAX), None);
    }
}
