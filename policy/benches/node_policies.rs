//! Throughput of the pure worker policies, which the discrete-event
//! simulator calls once or twice per simulated call: one whole call
//! (start + finish) of a function drawn round-robin from the 31 catalog
//! functions, with the caching options switched on.
//!
//! `cargo bench -p worker-front --bench policies`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use policy::node::container_pool::ContainerPool;
use policy::node::image_cache::ImageCache;
use policy::node::rest_instances::{RestAcquire, RestInstances};
use std::time::Duration;

fn names() -> Vec<(String, u64)> {
    sample_functions::catalog()
        .functions
        .iter()
        .map(|f| (f.name.clone(), f.package_bytes))
        .collect()
}

fn policies(c: &mut Criterion) {
    let fns = names();
    c.bench_function("image_cache_call_300MB_limit", |b| {
        let mut cache = ImageCache::new(Some(300_000_000));
        let mut t = 0u64;
        b.iter(|| {
            let (f, bytes) = &fns[(t % fns.len() as u64) as usize];
            let now = Duration::from_millis(t);
            if !cache.call_started(f, now) {
                black_box(cache.image_built(f, *bytes, now));
            }
            black_box(cache.call_finished(f, now + Duration::from_millis(1)));
            t += 1;
        })
    });
    c.bench_function("container_pool_call_limit_5x6", |b| {
        let mut pool = ContainerPool::new(Some(5), 6);
        let mut t = 0u64;
        b.iter(|| {
            let (f, _) = &fns[(t % fns.len() as u64) as usize];
            let now = Duration::from_millis(t);
            black_box(pool.call_started(f, now));
            let plan = pool.call_finished(f, now + Duration::from_millis(1));
            for (g, n) in &plan.create {
                for _ in 0..*n {
                    pool.instance_ready(g);
                }
            }
            t += 1;
        })
    });
    c.bench_function("rest_instances_call_and_expire", |b| {
        let mut rest = RestInstances::new(Duration::from_secs(10));
        let mut t = 0u64;
        b.iter(|| {
            let (f, _) = &fns[(t % fns.len() as u64) as usize];
            let now = Duration::from_millis(t * 100);
            if rest.call_started(f, now) == RestAcquire::Start {
                rest.started(f, now);
            }
            rest.call_finished(f, now + Duration::from_millis(1));
            black_box(rest.expire(now));
            t += 1;
        })
    });
}

criterion_group!(benches, policies);
criterion_main!(benches);
