//! The success path (permit + record) of a closed breaker in the memory store, with `now`
//! passed in, beside an uncontended atomic increment and the `failsafe` and `recloser` crates
//! (their default policies), on one thread and on two threads sharing one breaker.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use breaker_core::{Outcome, Policy, Timestamp};
use breaker_store_memory::{MemoryBreaker, MemoryStore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use failsafe::CircuitBreaker;

/// A timestamp that crosses a bucket boundary every few thousand calls, as real traffic does.
fn now_of(call: u64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + call / 4096)
}

/// One call as an adapter makes it: ask, then report and look at what the report changed.
fn breaker_call(breaker: &MemoryBreaker, call: u64) {
    let now = now_of(call);
    let permit = breaker.acquire_at(now).unwrap();
    let recorded = breaker.record_at(now, permit, Outcome::Success.into());
    black_box((recorded.outcome, recorded.transition.is_some()));
}

fn memory_breaker() -> MemoryBreaker {
    MemoryStore::new()
        .breaker("bench", Policy::default())
        .unwrap()
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_thread");
    group.throughput(Throughput::Elements(1));

    let counter = AtomicU64::new(0);
    group.bench_function("atomic_fetch_add", |b| {
        b.iter(|| black_box(&counter).fetch_add(1, Ordering::Relaxed))
    });

    let breaker = memory_breaker();
    let mut call = 0;
    group.bench_function("memory_store", |b| {
        b.iter(|| {
            call += 1;
            breaker_call(&breaker, call);
        })
    });

    let failsafe = failsafe::Config::new().build();
    group.bench_function("failsafe", |b| {
        b.iter(|| black_box(failsafe.call(|| Ok::<(), ()>(()))))
    });

    let recloser = recloser::Recloser::default();
    group.bench_function("recloser", |b| {
        b.iter(|| black_box(recloser.call(|| Ok::<(), ()>(()))))
    });
    group.finish();
}

/// Runs `work(thread, iters)` on two threads started together; the time is the wall time of
/// both, so throughput counts two elements per iteration.
fn on_two_threads(iters: u64, work: impl Fn(u64, u64) + Send + Sync + 'static) -> Duration {
    let work = Arc::new(work);
    let start = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|thread| {
            let (work, start) = (work.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                work(thread, iters);
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for thread in threads {
        thread.join().unwrap();
    }
    began.elapsed()
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("two_threads");
    group.throughput(Throughput::Elements(2));

    let counter = Arc::new(AtomicU64::new(0));
    group.bench_function("atomic_fetch_add", |b| {
        b.iter_custom(|iters| {
            let counter = counter.clone();
            on_two_threads(iters, move |_, iters| {
                for _ in 0..iters {
                    black_box(&counter).fetch_add(1, Ordering::Relaxed);
                }
            })
        })
    });

    let breaker = memory_breaker();
    group.bench_function("memory_store", |b| {
        b.iter_custom(|iters| {
            let breaker = breaker.clone();
            on_two_threads(iters, move |_, iters| {
                for call in 0..iters {
                    breaker_call(&breaker, call);
                }
            })
        })
    });

    let failsafe = Arc::new(failsafe::Config::new().build());
    group.bench_function("failsafe", |b| {
        b.iter_custom(|iters| {
            let failsafe = failsafe.clone();
            on_two_threads(iters, move |_, iters| {
                for _ in 0..iters {
                    black_box(failsafe.call(|| Ok::<(), ()>(()))).ok();
                }
            })
        })
    });

    let recloser = Arc::new(recloser::Recloser::default());
    group.bench_function("recloser", |b| {
        b.iter_custom(|iters| {
            let recloser = recloser.clone();
            on_two_threads(iters, move |_, iters| {
                for _ in 0..iters {
                    black_box(recloser.call(|| Ok::<(), ()>(()))).ok();
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, one_thread, two_threads);
criterion_main!(benches);
