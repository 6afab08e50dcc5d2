//! The event queue: events leave by (virtual time, insertion order), so
//! events due at the same instant leave in insertion order and runs are
//! deterministic (as in nexosim and SimPy).
//!
//! It is a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, "Faster
//! algorithms for the shortest path problem", J. ACM 37(2), 1990), which
//! fits a simulation: the time of what leaves never decreases, and what is
//! pushed is due no earlier than the last event that left. Times are read
//! in hexadecimal digits: an event due at `t` waits in the bucket of the
//! highest digit in which `t` differs from the last time that left
//! (`last`) and of `t`'s value of that digit; bucket 0 holds the events
//! due at `last` itself. Buckets in index order hold ever later times. A
//! push is an append. A pop takes bucket 0's first event; when bucket 0 is
//! empty, the lowest bucket that is not is emptied: `last` becomes its
//! earliest time and its events move to buckets of lower digits, so an
//! event moves at most once per digit of its delay (about 5 for a second
//! in microseconds; a binary or 4-ary heap sifts through its depth at
//! every pop, and that was about a tenth of the simulator's instructions
//! on 1M calls over 100 nodes; with one bucket per bit, as in the paper,
//! an event moved about 20 times and cost as much).
//!
//! Insertion order among events due at the same time: they are always in
//! one bucket, and every bucket holds those in insertion order (an append
//! goes last; a bucket is emptied, in order, only into lower ones, which
//! are then empty), so bucket 0, all due at `last`, leaves in insertion
//! order, and the queue gives the order of a heap keyed by (time,
//! sequence number) without storing the sequence. An event pushed earlier
//! than `last` (no driver does so) is still handled exactly: the queue is
//! then rebuilt around its time (a stable sort by time).
//!
//! The buckets' storage is reused for the whole run, so pushing and
//! popping does not allocate once it has grown.

use policy::Time;

/// Bits per digit of a time.
const DIGIT: u32 = 4;
/// Buckets: one for `last` itself, then one per (digit, value).
const BUCKETS: usize = 1 + (u64::BITS / DIGIT) as usize * (1 << DIGIT);
/// Words of the occupied-bucket bit set.
const WORDS: usize = BUCKETS.div_ceil(64);

#[derive(Debug, Clone, Copy)]
struct Entry<E> {
    time: u64,
    event: E,
}

/// Pending events, earliest first, ties in insertion order.
#[derive(Debug)]
pub struct EventQueue<E> {
    buckets: Vec<Vec<Entry<E>>>,
    /// Bucket 0's next event to leave (the ones before it have left).
    head: usize,
    /// The earliest time in each bucket (`u64::MAX` when empty).
    mins: [u64; BUCKETS],
    /// Bit `b` set when bucket `b` holds events.
    occupied: [u64; WORDS],
    /// The time of the last event that left (or of the rebuild).
    last: u64,
    len: usize,
}

impl<E: Copy> EventQueue<E> {
    /// An empty queue with room for `capacity` events due at one time in
    /// bucket 0 (which every event passes through on its way out; a
    /// closed loop's clients all start there, at time zero).
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buckets: Vec<Vec<Entry<E>>> = (0..BUCKETS).map(|_| Vec::new()).collect();
        buckets[0].reserve(capacity);
        Self {
            buckets,
            head: 0,
            mins: [u64::MAX; BUCKETS],
            occupied: [0; WORDS],
            last: 0,
            len: 0,
        }
    }

    /// The bucket of an event due at `time` (no earlier than `last`).
    #[inline]
    fn bucket(&self, time: u64) -> usize {
        let differ = time ^ self.last;
        if differ == 0 {
            return 0;
        }
        let digit = (u64::BITS - 1 - differ.leading_zeros()) / DIGIT;
        let value = (time >> (digit * DIGIT)) & ((1 << DIGIT) - 1);
        1 + (digit as usize) * (1 << DIGIT) + value as usize
    }

    #[inline]
    fn put(&mut self, entry: Entry<E>) {
        let b = self.bucket(entry.time);
        self.buckets[b].push(entry);
        self.mins[b] = self.mins[b].min(entry.time);
        self.occupied[b / 64] |= 1 << (b % 64);
    }

    /// The lowest bucket holding events.
    #[inline]
    fn lowest(&self) -> Option<usize> {
        self.occupied
            .iter()
            .position(|&w| w != 0)
            .map(|i| i * 64 + self.occupied[i].trailing_zeros() as usize)
    }

    /// Schedules `event` at `time`.
    #[inline]
    pub fn push(&mut self, time: Time, event: E) {
        let time = time.as_micros();
        if time < self.last {
            self.rebuild(time);
        }
        self.put(Entry { time, event });
        self.len += 1;
    }

    /// `last` moves back to `time`: every pending event is filed again,
    /// in (time, insertion) order: events due at the same time are in one
    /// bucket, in insertion order, which a stable sort by time keeps.
    #[cold]
    fn rebuild(&mut self, time: u64) {
        let mut all: Vec<Entry<E>> = Vec::with_capacity(self.len);
        for (b, bucket) in self.buckets.iter_mut().enumerate() {
            let from = if b == 0 { self.head } else { 0 };
            all.extend(bucket.drain(..).skip(from));
        }
        all.sort_by_key(|e| e.time);
        self.head = 0;
        self.mins = [u64::MAX; BUCKETS];
        self.occupied = [0; WORDS];
        self.last = time;
        for e in all {
            self.put(e);
        }
    }

    /// The time of the earliest pending event.
    #[inline]
    pub fn peek_time(&self) -> Option<Time> {
        self.lowest().map(|b| Time::from_micros(self.mins[b]))
    }

    /// Removes and returns the earliest pending event.
    #[inline]
    pub fn pop(&mut self) -> Option<(Time, E)> {
        if self.occupied[0] & 1 == 0 {
            let b = self.lowest()?;
            self.refill(b);
        }
        let e = self.buckets[0][self.head];
        self.head += 1;
        if self.head == self.buckets[0].len() {
            self.buckets[0].clear();
            self.head = 0;
            self.mins[0] = u64::MAX;
            self.occupied[0] &= !1;
        }
        self.len -= 1;
        Some((Time::from_micros(e.time), e.event))
    }

    /// Bucket 0 is empty: bucket `b`, the lowest holding events, is
    /// emptied into lower ones, `last` becoming its earliest time.
    fn refill(&mut self, b: usize) {
        self.last = self.mins[b];
        self.mins[b] = u64::MAX;
        self.occupied[b / 64] &= !(1 << (b % 64));
        let mut moving = std::mem::take(&mut self.buckets[b]);
        for &e in &moving {
            self.put(e);
        }
        moving.clear();
        self.buckets[b] = moving;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
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

    /// Pushes and pops at random against a reference, the pending
    /// (time, insertion) pairs: `pop(x)` says when to pop (always from
    /// step `drain_from`), `time(x, now)` when a pushed event is due
    /// (`now`: the last popped time). Every pop, `peek_time` and `len`
    /// must agree with the reference. Returns the pops.
    fn against_reference(
        seed: u64,
        steps: u32,
        drain_from: u32,
        pop: impl Fn(u64) -> bool,
        mut time: impl FnMut(u64, u64) -> u64,
    ) -> usize {
        let mut q = EventQueue::with_capacity(0);
        let mut pending: Vec<(u64, u32)> = Vec::new();
        let mut x = seed;
        let mut now = 0u64;
        let mut pops = 0;
        for i in 0..steps {
            crate::test_values::xorshift(&mut x);
            if pop(x) || i >= drain_from {
                let expected = pending.iter().copied().min();
                let got = q.pop().map(|(t, e)| (t.as_micros(), e));
                assert_eq!(got, expected, "pop {pops}");
                if let Some(least) = expected {
                    pending.retain(|p| *p != least);
                    now = least.0;
                    pops += 1;
                }
            } else {
                let t = time(x, now);
                q.push(Time::from_micros(t), i);
                pending.push((t, i));
            }
            let least = pending.iter().map(|p| p.0).min().map(Time::from_micros);
            assert_eq!(q.peek_time(), least);
            assert_eq!(q.len(), pending.len());
        }
        pops
    }

    #[test]
    fn pops_the_least_pending_time_and_insertion_order_among_many_ties() {
        // Few distinct times, so many ties.
        let pops = against_reference(
            7,
            20_000,
            15_000,
            |x| x.is_multiple_of(3),
            |x, now| now + x % 16,
        );
        assert!(pops > 5_000);
    }

    /// Far-apart times (events move down many buckets), ties, and now and
    /// then an event earlier than the last one that left (a rebuild).
    #[test]
    fn any_spread_of_times_and_pushes_into_the_past_keep_the_order() {
        let mut into_past = 0;
        let pops = against_reference(
            0x2545_f491_4f6c_dd1d,
            30_000,
            25_000,
            |x| x % 5 < 2,
            |x, now| {
                if x.is_multiple_of(101) {
                    into_past += 1;
                    now.saturating_sub((x >> 40) & 0xFFFF)
                } else {
                    // A delay of up to 2^40 µs, often 0 or tied.
                    let shift = (x >> 20) % 41;
                    now + (((x >> 8) % 4) << shift)
                }
            },
        );
        assert!(
            pops > 8_000 && into_past > 50,
            "{pops} pops, {into_past} into the past"
        );
    }
}
