//! Golden decisions: a small checked-in scenario replayed through every
//! registered scheduler (the six HotFunctions ones, and any added to the
//! registry table), every decision compared with a checked-in CSV (the
//! `pingora-ketama` practice).
//!
//! The scenario, `tests/data/golden/scenario.csv`, holds 52 calls of nine
//! catalog functions with fixed durations on nodes 0..3, and node 2 removed
//! and re-inserted in the middle. Events are processed in time order; at
//! equal times completions come first, then membership changes, then
//! arrivals, each kind in file order. A call completes at its start plus its
//! duration (refused calls never run). Parameters are deliberately small so
//! that the bounds bite: `T`=3, `T1`=4, `T2`=3, `T3`=2, `ALPHA`=0.25,
//! `BETA`=0.5, seed 2019; the algorithm's own parameters (so that a new
//! algorithm's parameters leave the other CSVs unchanged) and the seed are
//! written into each CSV's first line.
//!
//! Expected decisions live in `tests/data/golden/<alg>.csv`. **A changed
//! decision is a behaviour change of a scheduler and must be reviewed**:
//! understand why it changed, then, only if the new behaviour is intended,
//! regenerate with
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p policy --test golden_decisions
//! ```
//!
//! A new algorithm has no CSV yet: the test fails until that command
//! writes one, to be reviewed and committed with the algorithm.
//!
//! and commit the CSV diff together with the change that caused it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::path::PathBuf;

use policy::scheduler::{
    build, registry, Completion, Membership, NodeId, NodeInfo, ParamSet, SelectError, Time,
};

const NODES: u32 = 4;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

fn golden_params() -> ParamSet {
    ParamSet::from_settings([
        ("T", "3"),
        ("T1", "4"),
        ("T2", "3"),
        ("T3", "2"),
        ("ALPHA", "0.25"),
        ("BETA", "0.5"),
        ("seed", "2019"),
    ])
    .unwrap()
}

#[derive(Debug, Clone)]
enum Event {
    Call { function: String, duration_ms: u64 },
    Remove(NodeId),
    Insert(NodeId),
}

/// Parses the scenario; errors name the file and line.
fn read_scenario() -> Vec<(u64, Event)> {
    let path = golden_dir().join("scenario.csv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("time_ms,") {
            continue;
        }
        let bad = |what: &str| -> ! { panic!("{}:{}: {what}: {line:?}", path.display(), i + 1) };
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 4 {
            bad("expected 4 fields");
        }
        let time: u64 = fields[0].parse().unwrap_or_else(|_| bad("bad time_ms"));
        let node = || -> NodeId { fields[2].parse().unwrap_or_else(|_| bad("bad node id")) };
        let event = match fields[1] {
            "call" => Event::Call {
                function: fields[2].to_string(),
                duration_ms: fields[3].parse().unwrap_or_else(|_| bad("bad duration_ms")),
            },
            "remove" => Event::Remove(node()),
            "insert" => Event::Insert(node()),
            _ => bad("unknown event"),
        };
        events.push((time, event));
    }
    events
}

/// Replays the scenario through `alg`; returns the decisions CSV.
fn replay(alg: &str, params: &ParamSet, scenario: &[(u64, Event)]) -> String {
    const COMPLETION: u8 = 0;
    const MEMBERSHIP: u8 = 1;
    const ARRIVAL: u8 = 2;
    let mut s = build(alg, params).unwrap();
    for id in 0..NODES {
        s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
    }
    // (time, kind, sequence, index into `scenario` or `running`).
    let mut queue: BinaryHeap<Reverse<(u64, u8, usize, usize)>> = BinaryHeap::new();
    let mut seq = 0;
    for (i, (time, event)) in scenario.iter().enumerate() {
        let kind = match event {
            Event::Call { .. } => ARRIVAL,
            _ => MEMBERSHIP,
        };
        queue.push(Reverse((*time, kind, seq, i)));
        seq += 1;
    }
    let mut running: Vec<(NodeId, &str, u64)> = Vec::new();
    let mut out = format!(
        "# {}\ncall,time_ms,function,decision\n",
        serde_json::to_string(&params.scheduler(alg).unwrap()).unwrap()
    );
    let mut call = 0;
    while let Some(Reverse((time, kind, _, i))) = queue.pop() {
        let now = Time::from_millis(time);
        if kind == COMPLETION {
            let (node, function, duration_ms) = running[i];
            let done = Completion {
                node,
                function,
                duration: std::time::Duration::from_millis(duration_ms),
                cold: false,
                ok: true,
                internal: std::time::Duration::ZERO,
            };
            s.finished(&done, now);
            continue;
        }
        match &scenario[i].1 {
            Event::Remove(id) => s.membership(Membership::Remove(*id), now),
            Event::Insert(id) => s.membership(Membership::Insert(NodeInfo::new(*id)), now),
            Event::Call {
                function,
                duration_ms,
            } => {
                let decision = match s.select(function, now) {
                    Ok(node) => {
                        running.push((node, function, *duration_ms));
                        queue.push(Reverse((
                            time + duration_ms,
                            COMPLETION,
                            seq,
                            running.len() - 1,
                        )));
                        seq += 1;
                        node.to_string()
                    }
                    Err(SelectError::NoNodes) => "NoNodes".to_string(),
                    Err(SelectError::AllFull { .. }) => "AllFull".to_string(),
                };
                writeln!(out, "{call},{time},{function},{decision}").unwrap();
                call += 1;
            }
        }
    }
    out
}

#[test]
fn every_scheduler_makes_the_golden_decisions() {
    let scenario = read_scenario();
    assert_eq!(
        scenario
            .iter()
            .filter(|(_, e)| matches!(e, Event::Call { .. }))
            .count(),
        52
    );
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for alg in registry::names() {
        let actual = replay(alg, &golden_params(), &scenario);
        let path = golden_dir().join(format!("{alg}.csv"));
        if update {
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e} (UPDATE_GOLDEN=1 creates it)",
                path.display()
            )
        });
        if let Some((n, (want, got))) = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .find(|(_, (w, g))| w != g)
        {
            failures.push(format!(
                "{}:{}: expected {want:?}, got {got:?}",
                path.display(),
                n + 1
            ));
        } else if expected.lines().count() != actual.lines().count() {
            failures.push(format!(
                "{}: {} lines expected, {} produced",
                path.display(),
                expected.lines().count(),
                actual.lines().count()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "scheduler decisions changed (a behaviour change: review it, then \
         regenerate with UPDATE_GOLDEN=1 if intended):\n{}",
        failures.join("\n")
    );
}

#[test]
fn replay_is_deterministic_and_exercises_every_branch() {
    let scenario = read_scenario();
    let params = golden_params();
    for alg in registry::names() {
        assert_eq!(
            replay(alg, &params, &scenario),
            replay(alg, &params, &scenario),
            "{alg} is not deterministic"
        );
    }
    // The scenario is meant to make ch refuse some calls and to move
    // calls off node 2 while it is out; check it still does.
    let ch = replay("ch", &params, &scenario);
    assert!(ch.contains(",AllFull"), "ch never hit its bound:\n{ch}");
    let when = |want: fn(&Event) -> bool| {
        scenario
            .iter()
            .find(|(_, e)| want(e))
            .map(|(t, _)| *t)
            .unwrap()
    };
    let removed = when(|e| matches!(e, Event::Remove(2)));
    let inserted = when(|e| matches!(e, Event::Insert(2)));
    assert!(removed < inserted);
    for alg in registry::names() {
        for line in replay(alg, &params, &scenario).lines().skip(2) {
            let f: Vec<&str> = line.split(',').collect();
            let time: u64 = f[1].parse().unwrap();
            if (removed..inserted).contains(&time) {
                assert_ne!(f[3], "2", "{alg} chose removed node 2: {line}");
            }
        }
    }
}
