//! Throughput of the node model, which the discrete-event simulator calls
//! a few times per simulated call: one whole call (arrival, build or
//! instance start when asked, end) of a function drawn round-robin from 31
//! functions of 1-131 MB, under HotFunctions' caching options and under
//! the Lambda model with each keep-alive policy, plus the image cache
//! alone.
//!
//! `cargo bench -p policy --bench node_policies`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use policy::node::image_cache::ImageCache;
use policy::node::options::CachingOptions;
use policy::node::{InstanceModel, NodeModel, Step};
use policy::Time;
use std::time::Duration;

fn functions() -> Vec<(String, u64)> {
    (0..31u64)
        .map(|i| (format!("F{i}"), 1_000_000 + i * 4_200_000))
        .collect()
}

/// One whole call at `now`, every step done at once.
fn whole_call(m: &mut NodeModel, f: &str, bytes: u64, now: Time) {
    let (call, mut effects) = m.call_arrived(f, now);
    let mut step = effects.take_step(call);
    black_box(&effects);
    loop {
        match step {
            Some(Step::BuildImage) => {
                let mut e = m.image_built(f, bytes, now);
                step = e.take_step(call);
                for p in e.into_lists().prewarm {
                    let _ = black_box(m.instance_started(p.instance, now));
                }
            }
            Some(Step::Start { instance, .. }) => {
                let _ = black_box(m.instance_started(instance, now));
                break;
            }
            _ => break,
        }
    }
    let (_, e) = m.call_finished(call, now + Duration::from_millis(1));
    for p in e.into_lists().prewarm {
        let _ = black_box(m.instance_started(p.instance, now));
    }
    let _ = black_box(m.timer(now));
}

fn node_model(c: &mut Criterion) {
    let fns = functions();
    let cases = [
        ("node_model_call_one_shot", CachingOptions::default()),
        (
            "node_model_call_rest_300MB_limit",
            CachingOptions {
                user_code_size_limit: 300_000_000,
                using_rest_mode: true,
                ..CachingOptions::default()
            },
        ),
        (
            "node_model_call_pool_5x6",
            CachingOptions {
                container_pool_limit: 5,
                container_pool_num: 6,
                ..CachingOptions::default()
            },
        ),
    ];
    for (name, options) in cases {
        c.bench_function(name, |b| {
            let mut m = NodeModel::new(options, InstanceModel::HotFunctions);
            let mut t = 0u64;
            b.iter(|| {
                let (f, bytes) = &fns[(t % fns.len() as u64) as usize];
                whole_call(&mut m, f, *bytes, Time::from_millis(t * 100));
                t += 1;
            })
        });
    }
    // The Lambda model under each keep-alive policy; 2048 MB of node
    // memory for 256 MB functions, so lru and greedy-dual evict.
    for policy in policy::node::keep_alive_policy::POLICY_NAMES {
        let name = if policy == "fixed" {
            "node_model_call_lambda".to_string()
        } else {
            format!("node_model_call_lambda_{policy}")
        };
        c.bench_function(&name, |b| {
            let keep_alive = Duration::from_secs(60);
            let model = InstanceModel::lambda(keep_alive, policy.parse().expect("a policy name"));
            let mut m = NodeModel::new(CachingOptions::default(), model).with_node_memory_mb(2048);
            let mut t = 0u64;
            b.iter(|| {
                let (f, bytes) = &fns[(t % fns.len() as u64) as usize];
                whole_call(&mut m, f, *bytes, Time::from_millis(t * 100));
                t += 1;
            })
        });
    }
    c.bench_function("image_cache_call_300MB_limit", |b| {
        let mut cache = ImageCache::new(Some(300_000_000));
        let mut t = 0u64;
        b.iter(|| {
            let (f, bytes) = &fns[(t % fns.len() as u64) as usize];
            let now = Time::from_millis(t);
            if !cache.call_started(f, now) {
                black_box(cache.image_built(f, *bytes, now));
            }
            black_box(cache.call_finished(f, now + Duration::from_millis(1)));
            t += 1;
        })
    });
}

criterion_group!(benches, node_model);
criterion_main!(benches);
