//! Latency added per call by the reqwest middleware, against the bare client, on one local
//! server, in one run: with the memory store, and with the async Redis store (whose Redis
//! round trips per call are counted from `INFO commandstats`).
//!
//! Writes `target/breaker-bench/reqwest.txt` for `cargo xtask bench adapters`.
#![allow(missing_docs, clippy::unwrap_used)]

use breaker_core::Policy;
use breaker_reqwest::BreakerMiddleware;
use breaker_store_memory::MemoryStore;
use breaker_store_redis::{AsyncRedisStore, RedisConfig};
use breaker_testkit::http_server::TestServer;
use breaker_testkit::latency::{Plan, Variant, as_lines, client_runtime, compare};
use breaker_testkit::redis_server::RedisServer;
use reqwest_middleware::ClientWithMiddleware;

fn main() {
    let plan = Plan::from_args();
    let runtime = client_runtime();
    let server = TestServer::start();
    let redis = RedisServer::start();
    let url = server.url("/");
    let policy = Policy::builder().minimum_failures(1 << 40).build().unwrap();

    let bare = reqwest::Client::new();
    let memory: ClientWithMiddleware =
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(
                BreakerMiddleware::new()
                    .mount(
                        &server.url(""),
                        MemoryStore::new().breaker("bench", policy.clone()).unwrap(),
                    )
                    .unwrap(),
            )
            .build();
    let with_redis: ClientWithMiddleware = runtime.block_on(async {
        let store = AsyncRedisStore::connect(RedisConfig::standalone(redis.url()))
            .await
            .unwrap();
        let breaker = store.breaker("bench", policy).await.unwrap();
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(
                BreakerMiddleware::new()
                    .mount(&server.url(""), breaker)
                    .unwrap(),
            )
            .build()
    });

    let before = redis.script_calls();
    // reqwest-middleware's own cost, with no middleware in it: what any middleware pays.
    let framework: ClientWithMiddleware =
        reqwest_middleware::ClientBuilder::new(bare.clone()).build();
    let through = |client: &ClientWithMiddleware| {
        runtime.block_on(async { client.get(&url).send().await.unwrap().text().await.unwrap() });
    };
    let mut variants = [
        Variant {
            name: "framework",
            call: Box::new(|| through(&framework)),
        },
        Variant {
            name: "bare",
            call: Box::new(|| {
                runtime
                    .block_on(async { bare.get(&url).send().await.unwrap().text().await.unwrap() });
            }),
        },
        Variant {
            name: "memory",
            call: Box::new(|| through(&memory)),
        },
        Variant {
            name: "redis",
            call: Box::new(|| through(&with_redis)),
        },
    ];
    let mut out = as_lines(&compare(&mut variants, plan.warmup, plan.rounds));
    let per_call = (redis.script_calls() - before) as f64 / plan.calls() as f64;
    out.push_str(&format!("redis_round_trips_per_call={per_call:.3}\n"));
    plan.report("reqwest", &out);
}
