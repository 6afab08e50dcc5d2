//! The partitioned run: one node at a time, on several threads, with the
//! very results of the one-queue run.
//!
//! When the scheduler is oblivious ([`Scheduler::oblivious`]: `rr`,
//! `random`; its choices follow from the calls' order alone) and nothing
//! couples nodes but the scheduler (no SlimFaas layer, no shared machine
//! cores, no rerouting of refused calls, node timers that only expire idle
//! instances, so that no node has an event without a call of its own in
//! flight), the nodes of a scenario run are independent simulations once
//! every call's node is known. This run:
//!
//! 1. asks the scheduler for every call's node, in the scenario's order
//!    (as the one-queue run asks it, and since it is oblivious, with the
//!    same answers);
//! 2. groups the calls by node (a counting sort: one `u32` per call);
//! 3. simulates each node alone, in its own small event queue, on
//!    [`DesConfig::threads`] threads taking nodes in turn: a node's state
//!    stays in the core's caches instead of a thousand nodes' state
//!    competing for them;
//! 4. adds the nodes' counts, histograms and instance-time integrals
//!    (exact integers), and runs each node's idle-instance expiries up to
//!    the run's last event, as the one-queue run does at its end.
//!
//! Every figure of the summary is the one-queue run's (a test compares
//! them field by field over several configurations; only `partitioned`
//! says how the run was made): a call's random
//! draws are its own ([`crate::stream`]), the events of one node keep
//! their order, counts and integrals add up, and an event count is a
//! count. Only the order in which nodes' events are handled differs,
//! which is why a run with a log (whose lines follow that order) is not
//! partitioned.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use policy::scheduler::{NodeId, SelectError};

use super::*;

/// A scheduler for a node simulated alone: every call goes to it.
#[derive(Debug)]
struct Pinned;

impl Scheduler for Pinned {
    fn name(&self) -> &'static str {
        "pinned"
    }
    fn membership(&mut self, _change: Membership, _now: Time) {}
    fn select(&mut self, _function: &str, _now: Time) -> Result<NodeId, SelectError> {
        Ok(0)
    }
    fn finished(&mut self, _completion: &Completion<'_>, _now: Time) {}
    fn declare_function(&mut self, _function: &str, _memory_mb: u32) {}
    fn load(&self, _node: NodeId) -> Option<u32> {
        None
    }
    fn members(&self) -> Vec<NodeId> {
        vec![0]
    }
    fn capacity(&self, _node: NodeId) -> Option<u32> {
        None
    }
    fn oblivious(&self) -> bool {
        true
    }
}

/// Whether a scenario run of `config` with `scheduler` may be
/// partitioned (module doc); `logging`: a log is written.
pub(super) fn eligible(
    config: &DesConfig,
    setup: &Setup,
    scheduler: &dyn Scheduler,
    workload: &Workload,
    logging: bool,
) -> bool {
    // (`lazy_timers`: no SlimFaas layer, timers that only expire.)
    !logging
        && !sequential_forced()
        && config.nodes > 1
        && scheduler.oblivious()
        && setup.lazy_timers
        && config.machine_cores.is_none()
        && !config.reroute
        && u32::try_from(workload.arrivals.len()).is_ok()
}

/// What one node's simulation leaves for the run's summary.
struct Part {
    /// The node (one).
    nodes: Vec<Node>,
    instances: InstanceAccounting,
    /// Its last event.
    clock: Time,
    last_completion: Time,
}

/// A thread's finished nodes, and their counts added up.
struct Finished {
    stats: Stats,
    parts: Vec<(usize, Result<Part, DesError>)>,
}

/// Runs `workload` partitioned (module doc; [`eligible`] must hold).
pub(super) fn run(
    workload: &Workload,
    config: &DesConfig,
    setup: &Setup,
    scheduler: &mut dyn Scheduler,
    progress: Progress<'_>,
) -> Result<Summary, DesError> {
    #[cfg(test)]
    PARTITIONED_RUNS.set(PARTITIONED_RUNS.get() + 1);
    let source = ScenarioSource::new(workload, config.time_scale);
    let calls = workload.arrivals.len();
    let nodes = config.nodes as usize;

    // 1. Every call's node, in the scenario's order.
    let mut node_of: Vec<u32> = Vec::with_capacity(calls);
    let mut per_node = vec![0usize; nodes];
    let mut refused = Stats::default();
    let mut last_refused = Time::ZERO;
    for (t, function) in workload.arrivals.iter().copied() {
        let now = source.arrival_time(t);
        let name = workload.names[function as usize].as_str();
        match scheduler.select_by_id(function, name, now) {
            Ok(node) if (node as usize) < nodes => {
                per_node[node as usize] += 1;
                node_of.push(node);
            }
            // No node: the call fails at its arrival, as in the one-queue
            // run (which counts its arrival as an event).
            _ => {
                refused.failed += 1;
                refused.events += 1;
                last_refused = now;
                node_of.push(u32::MAX);
            }
        }
    }

    // 2. Grouped by node: `order[start[k]..start[k + 1]]` are node k's
    // calls, in the scenario's order.
    let mut start = Vec::with_capacity(nodes + 1);
    let mut sum = 0usize;
    for &n in &per_node {
        start.push(sum);
        sum += n;
    }
    start.push(sum);
    let mut fill = start.clone();
    let mut order = vec![0u32; sum];
    for (i, &node) in node_of.iter().enumerate() {
        if node != u32::MAX {
            let at = &mut fill[node as usize];
            order[*at] = i as u32;
            *at += 1;
        }
    }
    drop(node_of);
    drop(fill);

    // 3. Each node alone, on the threads, nodes taken in turn. A thread
    // adds its nodes' counts and histograms up as it goes (a node's
    // histograms are freed at once).
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(refused.failed);
    let work = |mine: &mut Finished, report: Progress<'_>| loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        if k >= nodes {
            break;
        }
        let calls = &order[start[k]..start[k + 1]];
        let part = run_node(config, &workload.names, setup, &source, calls).map(|(part, stats)| {
            mine.stats.merge(&stats);
            part
        });
        mine.parts.push((k, part));
        let d = done.fetch_add(calls.len() as u64, Ordering::Relaxed) + calls.len() as u64;
        report(d);
    };
    let threads = (config.threads.max(1) as usize).min(nodes);
    let mut finished = Finished {
        stats: refused,
        parts: Vec::with_capacity(nodes),
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Finished {
                        stats: Stats::default(),
                        parts: Vec::new(),
                    };
                    work(&mut mine, &mut |_| {});
                    mine
                })
            })
            .collect();
        work(&mut finished, progress);
        for helper in helpers {
            match helper.join() {
                Ok(mine) => {
                    finished.stats.merge(&mine.stats);
                    finished.parts.extend(mine.parts);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    progress(calls as u64);
    let Finished { stats, mut parts } = finished;
    parts.sort_unstable_by_key(|&(k, _)| k);

    // 4. The run's figures.
    let mut clock = last_refused;
    let mut end = Time::ZERO;
    let mut done_parts = Vec::with_capacity(nodes);
    for (_, part) in parts {
        let part = part?;
        clock = clock.max(part.clock);
        end = end.max(part.last_completion);
        done_parts.push(part);
    }
    // The expiries the one-queue run makes at its end (`Sim::close`):
    // those due by its last event.
    let until = clock.max(end);
    for part in &mut done_parts {
        for node in &mut part.nodes {
            Sim::catch_up(node, &mut part.instances, until);
        }
    }
    // Each node's counts held from its last change to the run's.
    let last = done_parts
        .iter()
        .map(|p| p.instances.last)
        .fold(end, Time::max);
    let mut instances = InstanceAccounting {
        last,
        ..InstanceAccounting::default()
    };
    let mut evictions = 0;
    for part in &mut done_parts {
        part.instances.advance(last);
        instances.area_busy += part.instances.area_busy;
        instances.area_idle += part.instances.area_idle;
        instances.busy += part.instances.busy;
        instances.idle += part.instances.idle;
        evictions += part
            .nodes
            .iter()
            .map(|n| n.model.memory_evictions())
            .sum::<u64>();
    }
    let mut summary = summarize(config, &stats, &instances, evictions, calls as u64, end);
    summary.partitioned = true;
    Ok(summary)
}

/// Simulates the calls `calls` (indices into the scenario, ascending) on
/// one node alone.
fn run_node(
    config: &DesConfig,
    names: &[String],
    setup: &Setup,
    source: &ScenarioSource<'_>,
    calls: &[u32],
) -> Result<(Part, Stats), DesError> {
    let mut sim = Sim::new(config, names, setup, Box::new(Pinned), 1, None, None);
    for &i in calls {
        let Some(a) = source.arrival(i as usize) else {
            break;
        };
        // Events due by an arrival go first, as in `Sim::run`.
        while sim.queue.peek_time().is_some_and(|q| q <= a.time) {
            sim.handle_next()?;
        }
        sim.stats.events += 1;
        sim.clock = a.time;
        sim.arrive(a.time, a.function, a.shape, a.client, a.kind, u64::from(i))?;
    }
    while sim.in_flight > 0 && sim.queue.peek_time().is_some() {
        sim.handle_next()?;
    }
    debug_assert!(
        sim.queue.peek_time().is_none(),
        "a partitioned node has events left with no call in flight"
    );
    let Sim {
        nodes,
        instances,
        stats,
        clock,
        last_completion,
        ..
    } = sim;
    let part = Part {
        nodes,
        instances,
        clock,
        last_completion,
    };
    Ok((part, stats))
}
