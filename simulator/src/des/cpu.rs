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
//! `O(log n)`. A generation counter invalidates completion events scheduled
//! before the rate changed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::queue::Micros;

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
    updated_at: Micros,
    tags: BinaryHeap<Tag>,
    /// Bumped whenever the next completion time may have changed.
    generation: u32,
}

/// Slack when comparing tags with the work clock: event times are whole
/// microseconds, so a due job may be up to a rounding error short.
const EPSILON: f64 = 1e-6;

impl SharedCpu {
    pub fn new(cores: u32) -> Self {
        Self {
            cores: f64::from(cores.max(1)),
            work_clock: 0.0,
            updated_at: 0,
            tags: BinaryHeap::new(),
            generation: 0,
        }
    }

    /// Jobs in a CPU phase.
    pub fn running(&self) -> usize {
        self.tags.len()
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    fn rate(&self) -> f64 {
        let n = self.tags.len() as f64;
        if n <= self.cores {
            1.0
        } else {
            self.cores / n
        }
    }

    fn advance(&mut self, now: Micros) {
        if !self.tags.is_empty() && now > self.updated_at {
            self.work_clock += (now - self.updated_at) as f64 * self.rate();
        }
        self.updated_at = now;
    }

    /// `job` starts a CPU phase of `work_us` at `now`. Returns the new next
    /// completion `(time, generation)` to schedule.
    pub fn add(&mut self, job: u32, work_us: f64, now: Micros) -> (Micros, u32) {
        self.advance(now);
        self.tags.push(Tag {
            finish: self.work_clock + work_us.max(0.0),
            job,
        });
        self.generation = self.generation.wrapping_add(1);
        self.next_completion(now)
    }

    fn next_completion(&self, now: Micros) -> (Micros, u32) {
        let top = self.tags.peek().map_or(0.0, |t| t.finish);
        let remaining = (top - self.work_clock).max(0.0) / self.rate();
        (now + remaining.ceil() as Micros, self.generation)
    }

    /// A completion event of `generation` fired at `now`: pushes the jobs
    /// whose CPU phase is done into `done` and returns the next completion
    /// to schedule, if any. A stale generation does nothing.
    pub fn complete(
        &mut self,
        generation: u32,
        now: Micros,
        done: &mut Vec<u32>,
    ) -> Option<(Micros, u32)> {
        if generation != self.generation {
            return None;
        }
        self.advance(now);
        while let Some(t) = self.tags.peek() {
            if t.finish <= self.work_clock + EPSILON {
                done.push(t.job);
                self.tags.pop();
            } else {
                break;
            }
        }
        if done.is_empty() && self.tags.is_empty() {
            return None;
        }
        self.generation = self.generation.wrapping_add(1);
        if self.tags.is_empty() {
            None
        } else {
            Some(self.next_completion(now))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the CPU alone: returns (job, finish time) in completion order.
    fn drain(cpu: &mut SharedCpu, mut next: (Micros, u32)) -> Vec<(u32, Micros)> {
        let mut out = Vec::new();
        let mut done = Vec::new();
        loop {
            let (t, g) = next;
            let n = cpu.complete(g, t, &mut done);
            out.extend(done.drain(..).map(|j| (j, t)));
            match n {
                Some(n) => next = n,
                None => return out,
            }
        }
    }

    #[test]
    fn one_core_two_jobs_share_equally() {
        let mut cpu = SharedCpu::new(1);
        cpu.add(0, 1000.0, 0);
        let next = cpu.add(1, 1000.0, 0);
        assert_eq!(drain(&mut cpu, next), vec![(0, 2000), (1, 2000)]);
    }

    #[test]
    fn jobs_up_to_the_core_count_run_at_full_speed() {
        let mut cpu = SharedCpu::new(2);
        cpu.add(0, 1000.0, 0);
        let next = cpu.add(1, 3000.0, 0);
        assert_eq!(drain(&mut cpu, next), vec![(0, 1000), (1, 3000)]);
    }

    #[test]
    fn late_arrival_slows_the_first_job() {
        // One core: job 0 (1000 µs) alone for 500 µs, then shares with job 1
        // (1000 µs): job 0's last 500 µs take 1000 µs -> done at 1500; job 1
        // has 500 left at 1500, alone -> done at 2000.
        let mut cpu = SharedCpu::new(1);
        let first = cpu.add(0, 1000.0, 0);
        assert_eq!(first.0, 1000);
        let next = cpu.add(1, 1000.0, 500);
        let mut done = Vec::new();
        assert_eq!(cpu.complete(first.1, first.0, &mut done), None, "stale");
        assert!(done.is_empty());
        assert_eq!(drain(&mut cpu, next), vec![(0, 1500), (1, 2000)]);
    }
}
