//! In-process breakers through a tower layer, in one run: this project's layer with the memory
//! store beside `tower-resilience-circuitbreaker`'s layer (its `standard()` settings), both over
//! the same no-op service that answers at once, and the no-op service bare.
//!
//! `cargo bench -p breaker-tower --bench peers`
#![allow(missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use breaker_core::Policy;
use breaker_store_memory::MemoryStore;
use breaker_tower::BreakerLayer;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::Empty;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_resilience_circuitbreaker::CircuitBreakerLayer;

type Request = http::Request<Empty<Bytes>>;

fn request() -> Request {
    http::Request::get("http://backend.test/")
        .body(Empty::new())
        .unwrap()
}

/// Times `iters` calls of `service`, each through a clone as `oneshot` takes it, on one
/// current-thread runtime entered once.
fn time_calls<S>(runtime: &tokio::runtime::Runtime, service: &S, iters: u64) -> Duration
where
    S: Service<Request> + Clone,
    S::Error: std::fmt::Debug,
{
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            let response = service.clone().oneshot(request()).await.unwrap();
            std::hint::black_box(response);
        }
        started.elapsed()
    })
}

fn peers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let noop = service_fn(|_: Request| async {
        Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
    });
    let policy = Policy::builder().minimum_failures(1 << 40).build().unwrap();
    let ours = BreakerLayer::new()
        .mount(
            "http://backend.test",
            MemoryStore::new().breaker("bench", policy).unwrap(),
        )
        .unwrap()
        .layer(noop);
    let theirs = CircuitBreakerLayer::standard().build().unwrap().layer(noop);

    let mut group = c.benchmark_group("tower_layer");
    group.throughput(Throughput::Elements(1));
    group.bench_function("no_op_service", |b| {
        b.iter_custom(|iters| time_calls(&runtime, &noop, iters))
    });
    group.bench_function("this_project_memory_store", |b| {
        b.iter_custom(|iters| time_calls(&runtime, &ours, iters))
    });
    group.bench_function("tower_resilience_circuitbreaker", |b| {
        b.iter_custom(|iters| time_calls(&runtime, &theirs, iters))
    });
    group.finish();
}

criterion_group!(benches, peers);
criterion_main!(benches);
