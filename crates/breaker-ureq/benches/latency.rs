//! Latency added per call by the ureq middleware, against the bare agent, on one local
//! server, in one run: with the memory store, with the blocking Redis store (whose Redis round
//! trips per call are counted from `INFO commandstats`), and with the blocking Redis store in
//! batched mode (every 5 ms, on a Redis of its own).
//!
//! Writes `target/breaker-bench/ureq.txt` for `cargo xtask bench adapters`.
#![allow(missing_docs, clippy::unwrap_used)]

use breaker_core::Policy;
use breaker_store_memory::MemoryStore;
use breaker_store_redis::{BlockingRedisStore, RedisConfig};
use breaker_testkit::http_server::TestServer;
use breaker_testkit::latency::{Plan, Variant, as_lines, compare};
use breaker_testkit::redis_server::RedisServer;
use breaker_ureq::BreakerMiddleware;

fn main() {
    let plan = Plan::from_args();
    let server = TestServer::start();
    let redis = RedisServer::start();
    let policy = Policy::builder().minimum_failures(1 << 40).build().unwrap();

    // One agent, so one keep-alive connection and one server thread for all three variants:
    // the memory breaker is mounted on /memory, the Redis one on /redis, and /bare passes
    // through both middlewares untouched (a route lookup each, tens of nanoseconds, counted
    // against the bare variant).
    let store = BlockingRedisStore::connect(RedisConfig::standalone(redis.url())).unwrap();
    let batched_redis = RedisServer::start();
    let batched = BlockingRedisStore::connect(
        RedisConfig::standalone(batched_redis.url()).batch(std::time::Duration::from_millis(5)),
    )
    .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .middleware(
            BreakerMiddleware::new()
                .mount(
                    &server.url("/memory"),
                    MemoryStore::new().breaker("bench", policy.clone()).unwrap(),
                )
                .unwrap(),
        )
        .middleware(
            BreakerMiddleware::new()
                .mount(
                    &server.url("/redis"),
                    store.breaker("bench", policy.clone()).unwrap(),
                )
                .unwrap(),
        )
        .middleware(
            BreakerMiddleware::new()
                .mount(
                    &server.url("/batched"),
                    batched.breaker("bench", policy).unwrap(),
                )
                .unwrap(),
        )
        .build()
        .into();
    let get = |path: &str| {
        let mut response = agent.get(server.url(path)).call().unwrap();
        response.body_mut().read_to_string().unwrap();
    };

    let before = redis.script_calls();
    let mut variants = [
        Variant {
            name: "bare",
            call: Box::new(|| get("/bare")),
        },
        Variant {
            name: "memory",
            call: Box::new(|| get("/memory")),
        },
        Variant {
            name: "redis",
            call: Box::new(|| get("/redis")),
        },
        Variant {
            name: "redis_batched",
            call: Box::new(|| get("/batched")),
        },
    ];
    let mut out = as_lines(&compare(&mut variants, plan.warmup, plan.rounds));
    let per_call = (redis.script_calls() - before) as f64 / plan.calls() as f64;
    out.push_str(&format!("redis_round_trips_per_call={per_call:.3}\n"));
    plan.report("ureq", &out);
}
