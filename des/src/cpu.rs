//! Processor sharing on one node's cores, computed incrementally.
//!
//! `cores` cores are shared equally by the `n` jobs in a CPU phase: each
//! progresses at rate `min(1, cores / n)` (egalitarian processor sharing,
//! Kleinrock's PS discipline generalised to several servers). Sleeping
//! phases use no CPU and are not here.
//!
//! Instead of rescanning every job at every event, the node keeps a
//! *virtual work clock* `v`: the work (µs of CPU on one idle core) that any
//! job present since the start has received. A job entering with `w` µs of
//! work gets the finish tag `v + w`; it finishes when `v` reaches its tag.
//! Since all present jobs progress at the same rate, the earliest tag is the
//! next completion, found in a min-heap: each change of `n` costs
//! `O(log n)`.
//!
//! One completion event per node is live at a time: the node remembers when
//! it is scheduled. A new job whose completion comes earlier asks for a new
//! event (the old one becomes stale and is ignored when it fires); one that
//! comes later asks for none: when the current event fires early (the rate
//! dropped meanwhile), it finds nothing done and asks for the next one. So
//! most job arrivals on a busy node push nothing on the event queue.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use policy::Time;

/// A finish tag, ordered for a min-heap (earliest tag first, then job id).
#[derive(Debug, Clone, Copy)]
struct Tag {
    finish: f64,
    job: u32,
}

impl PartialEq for Tag {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Tag {}
impl PartialOrd for Tag {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Tag {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .finish
            .total_cmp(&self.finish)
            .then(other.job.cmp(&self.job))
    }
}

/// One node's processors.
#[derive(Debug)]
pub struct SharedCpu {
    cores: f64,
    /// Virtual work clock (µs of single-core work per present job).
    work_clock: f64,
    /// Real (virtual-time) instant at which `work_clock` was last advanced.
    updated_at: Time,
    tags: BinaryHeap<Tag>,
    /// When the live completion event fires, if one is scheduled.
    scheduled: Option<Time>,
}

/// Slack when comparing tags with the work clock: event times are whole
/// microseconds, so a due job may be up to a rounding error short.
const EPSILON: f64 = 1e-6;

impl SharedCpu {
    pub fn new(cores: u32) -> Self {
        Self {
            cores: f64::from(cores.max(1)),
            work_clock: 0.0,
            updated_at: Time::ZERO,
            tags: BinaryHeap::new(),
            scheduled: None,
        }
    }

    /// Jobs in a CPU phase.
    pub fn running(&self) -> usize {
        self.tags.len()
    }

    fn rate(&self) -> f64 {
        let n = self.tags.len() as f64;
        if n <= self.cores {
            1.0
        } else {
            self.cores / n
        }
    }

    fn advance(&mut self, now: Time) {
        if !self.tags.is_empty() && now > self.updated_at {
            self.work_clock += now.micros_since(self.updated_at) as f64 * self.rate();
        }
        self.updated_at = now;
    }

    /// `job` starts a CPU phase of `work_us` at `now`. Returns the time of
    /// a completion event to schedule, if one is needed.
    pub fn add(&mut self, job: u32, work_us: f64, now: Time) -> Option<Time> {
        self.advance(now);
        self.tags.push(Tag {
            finish: self.work_clock + work_us.max(0.0),
            job,
        });
        let next = self.next_completion(now);
        match self.scheduled {
            Some(at) if at <= next => None,
            _ => {
                self.scheduled = Some(next);
                Some(next)
            }
        }
    }

    fn next_completion(&self, now: Time) -> Time {
        let top = self.tags.peek().map_or(0.0, |t| t.finish);
        let remaining = (top - self.work_clock).max(0.0) / self.rate();
        now.add_micros(whole_us(remaining, Round::Up))
    }

    /// A completion event fired at `now`: pushes the jobs whose CPU phase is
    /// done into `done` and returns the time of the next completion event
    /// to schedule, if any. A stale event does nothing.
    pub fn complete(&mut self, now: Time, done: &mut Vec<u32>) -> Option<Time> {
        if self.scheduled != Some(now) {
            return None;
        }
        self.scheduled = None;
        self.advance(now);
        while let Some(t) = self.tags.peek() {
            if t.finish <= self.work_clock + EPSILON {
                done.push(t.job);
                self.tags.pop();
            } else {
                break;
            }
        }
        if self.tags.is_empty() {
            None
        } else {
            let next = self.next_completion(now);
            self.scheduled = Some(next);
            Some(next)
        }
    }
}

/// How [`whole_us`] rounds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Round {
    /// As `f64::round`: to the nearest, halves away from zero.
    Nearest,
    /// As `f64::ceil`.
    Up,
}

/// `x` µs in whole µs: `x.round()` or `x.ceil()` (by `round`), then
/// `.max(0.0) as u64` (negative and NaN give 0, too large saturates),
/// without `f64::round` or `f64::ceil`, libm calls on the baseline x86-64
/// target (at least once per call simulated): below 2^53 the truncating
/// cast and the subtraction are exact.
pub(crate) fn whole_us(x: f64, round: Round) -> u64 {
    if x.is_nan() || x <= 0.0 {
        return 0;
    }
    if x >= (1u64 << 53) as f64 {
        // Whole already (2^53 and above); the cast saturates.
        return x as u64;
    }
    let whole = x as u64;
    let rest = x - whole as f64;
    whole
        + u64::from(match round {
            Round::Nearest => rest >= 0.5,
            Round::Up => rest > 0.0,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same µs as `r.ceil() as u64` and `r.round().max(0.0) as u64`
    /// on whole numbers, halves, their neighbours, fractions, huge values,
    /// infinities and NaN.
    #[test]
    fn whole_us_is_the_ceiling_or_the_rounding() {
        let mut values = vec![
            -0.5,
            1.0,
            1.0000000000000002,
            0.9999999999999999,
            4_503_599_627_370_495.5,
            9.007199254740992e15,
            0.5,
            0.49999999999999994,
            2.5,
            -2.5,
        ];
        values.extend(crate::test_values::EDGE_F64);
        let mut x = crate::test_values::SEED;
        for _ in 0..100_000 {
            crate::test_values::xorshift(&mut x);
            values.push((x % 10_000_000) as f64);
            values.push((x % 10_000_000) as f64 / 7.0);
            values.push(f64::from_bits(x >> 2));
            values.push((x % 2_000_000) as f64 + 0.5);
        }
        for r in values {
            assert_eq!(whole_us(r, Round::Up), r.ceil() as u64, "{r:e}");
            let nearest = r.round().max(0.0) as u64;
            assert_eq!(whole_us(r, Round::Nearest), nearest, "{r:e}");
        }
    }

    fn t(us: u64) -> Time {
        Time::from_micros(us)
    }

    /// Runs the CPU alone from the pending events `times`: returns (job,
    /// finish time) in completion order.
    fn drain(cpu: &mut SharedCpu, mut times: Vec<Time>) -> Vec<(u32, Time)> {
        let mut out = Vec::new();
        let mut done = Vec::new();
        while !times.is_empty() {
            times.sort_unstable();
            let t = times.remove(0);
            if let Some(n) = cpu.complete(t, &mut done) {
                times.push(n);
            }
            out.extend(done.drain(..).map(|j| (j, t)));
        }
        out
    }

    #[test]
    fn one_core_two_jobs_share_equally() {
        let mut cpu = SharedCpu::new(1);
        let first = cpu.add(0, 1000.0, t(0)).unwrap();
        assert_eq!(cpu.add(1, 1000.0, t(0)), None, "completes later: no event");
        assert_eq!(
            drain(&mut cpu, vec![first]),
            vec![(0, t(2000)), (1, t(2000))]
        );
    }

    #[test]
    fn jobs_up_to_the_core_count_run_at_full_speed() {
        let mut cpu = SharedCpu::new(2);
        let mut events: Vec<Time> = cpu.add(0, 3000.0, t(0)).into_iter().collect();
        events.extend(cpu.add(1, 1000.0, t(0)));
        assert_eq!(
            events,
            vec![t(3000), t(1000)],
            "an earlier completion asks for an event"
        );
        assert_eq!(drain(&mut cpu, events), vec![(1, t(1000)), (0, t(3000))]);
    }

    #[test]
    fn late_arrival_slows_the_first_job() {
        // One core: job 0 (1000 µs) alone for 500 µs, then shares with job 1
        // (1000 µs): job 0's last 500 µs take 1000 µs -> done at 1500; job 1
        // has 500 left at 1500, alone -> done at 2000.
        let mut cpu = SharedCpu::new(1);
        let first = cpu.add(0, 1000.0, t(0)).unwrap();
        assert_eq!(first, t(1000));
        assert_eq!(cpu.add(1, 1000.0, t(500)), None);
        let mut done = Vec::new();
        // The event at 1000 fires early: nothing done, next at 1500.
        assert_eq!(cpu.complete(first, &mut done), Some(t(1500)));
        assert!(done.is_empty());
        assert_eq!(cpu.complete(t(1200), &mut done), None, "stale time");
        assert_eq!(
            drain(&mut cpu, vec![t(1500)]),
            vec![(0, t(1500)), (1, t(2000))]
        );
    }
}
