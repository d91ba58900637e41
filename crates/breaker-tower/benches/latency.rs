//! Latency added per call by the tower layer, against the bare hyper-util client, on one
//! local server, in one run: with the memory store, and with the async Redis store (whose
//! Redis round trips per call are counted from `INFO commandstats`).
//!
//! Writes `target/breaker-bench/tower.txt` for `cargo xtask bench adapters`.
#![allow(missing_docs, clippy::unwrap_used)]

use breaker_core::Policy;
use breaker_store_memory::MemoryStore;
use breaker_store_redis::{AsyncRedisStore, RedisConfig};
use breaker_testkit::http_server::TestServer;
use breaker_testkit::latency::{Plan, Variant, as_lines, client_runtime, compare};
use breaker_testkit::redis_server::RedisServer;
use breaker_tower::BreakerLayer;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

fn main() {
    let plan = Plan::from_args();
    let runtime = client_runtime();
    let server = TestServer::start();
    let redis = RedisServer::start();
    let policy = Policy::builder().minimum_failures(1 << 40).build().unwrap();

    // One hyper client, whose clones share one pool of keep-alive connections: bare, under
    // the layer with the memory breaker, and under the layer with the Redis breaker. Each
    // call goes through a clone of its service, as tower's `oneshot` takes it.
    let bare = {
        let _entered = runtime.enter();
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Empty<Bytes>>()
    };
    let redis_breaker = runtime.block_on(async {
        let store = AsyncRedisStore::connect(RedisConfig::standalone(redis.url()))
            .await
            .unwrap();
        store.breaker("bench", policy.clone()).await.unwrap()
    });
    let with_redis = BreakerLayer::new()
        .mount(&server.url(""), redis_breaker)
        .unwrap()
        .layer(bare.clone());
    // Batched every 5 ms, on a Redis of its own so the round trips above stay the unbatched
    // store's.
    let batched_redis = RedisServer::start();
    let batched_breaker = runtime.block_on(async {
        let config =
            RedisConfig::standalone(batched_redis.url()).batch(std::time::Duration::from_millis(5));
        let store = AsyncRedisStore::connect(config).await.unwrap();
        store.breaker("bench", policy.clone()).await.unwrap()
    });
    let with_batched = BreakerLayer::new()
        .mount(&server.url(""), batched_breaker)
        .unwrap()
        .layer(bare.clone());
    let memory_breaker = MemoryStore::new().breaker("bench", policy).unwrap();
    let with_memory = BreakerLayer::new()
        .mount(&server.url(""), memory_breaker)
        .unwrap()
        .layer(bare.clone());
    let url: http::Uri = server.url("/").parse().unwrap();
    let request = || http::Request::get(url.clone()).body(Empty::new()).unwrap();
    macro_rules! through {
        ($service:expr) => {
            Box::new(|| {
                runtime.block_on(async {
                    let response = $service.clone().oneshot(request()).await.unwrap();
                    response.into_body().collect().await.unwrap();
                })
            })
        };
    }
    let before = redis.script_calls();

    let mut variants = [
        Variant {
            name: "bare",
            call: through!(bare),
        },
        Variant {
            name: "memory",
            call: through!(with_memory),
        },
        Variant {
            name: "redis",
            call: through!(with_redis),
        },
        Variant {
            name: "redis_batched",
            call: through!(with_batched),
        },
    ];
    let mut out = as_lines(&compare(&mut variants, plan.warmup, plan.rounds));
    let per_call = (redis.script_calls() - before) as f64 / plan.calls() as f64;
    out.push_str(&format!("redis_round_trips_per_call={per_call:.3}\n"));
    plan.report("tower", &out);
}
