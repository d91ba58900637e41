//! Where an async call's time goes, against the blocking store, on one local `redis-server`
//! in one run: a call (`acquire` then `record` of a success, unbatched, the closed path: one
//! round trip, the permit coming from the cache) through the blocking store and through the
//! async store, beside bare redis-rs calls of one `HINCRBY` on each kind of connection the
//! stores use (a plain connection, a multiplexed one, the connection manager), so that the
//! gap can be split between redis-rs's async connection and this store's own async steps.
//!
//! The async calls run from the benchmark's thread with `block_on`, as a blocking caller of
//! an async client does, on the runtime adapters' latency benches use (one worker thread,
//! which runs the connection's own task) and on a current-thread runtime (the connection's
//! task then runs on the caller's thread). Variants run interleaved, round by round.
//!
//! Writes `target/breaker-bench/async_path.txt` for `cargo xtask bench async`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use breaker_core::{AsyncBreaker, BlockingBreaker, Outcome, Policy};
use breaker_store_redis::{AsyncRedisStore, BlockingRedisStore, RedisConfig};
use breaker_testkit::latency::{Plan, Variant, as_lines, client_runtime, compare};
use breaker_testkit::redis_server::RedisServer;
use tokio::runtime::Runtime;

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    let plan = Plan::from_args();
    let redis = RedisServer::start();
    // Never trips: every call takes the closed path.
    let policy = Policy::builder().minimum_failures(1 << 40).build().unwrap();
    let config = || RedisConfig::standalone(redis.url()).timeout(Duration::from_secs(2));

    let blocking = BlockingRedisStore::connect(config())
        .unwrap()
        .breaker("blocking", policy.clone())
        .unwrap();
    let worker = client_runtime();
    let on_worker = worker.block_on(async {
        let store = AsyncRedisStore::connect(config()).await.unwrap();
        store.breaker("async", policy.clone()).await.unwrap()
    });
    let local = current_thread();
    let on_local = local.block_on(async {
        let store = AsyncRedisStore::connect(config()).await.unwrap();
        store.breaker("async-local", policy.clone()).await.unwrap()
    });

    let client = redis::Client::open(redis.url()).unwrap();
    let mut plain = client.get_connection().unwrap();
    let multiplexed = worker
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let manager = worker
        .block_on(redis::aio::ConnectionManager::new(client.clone()))
        .unwrap();
    let multiplexed_local = local
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let hincrby = || {
        let mut cmd = redis::cmd("HINCRBY");
        cmd.arg("bare").arg("calls").arg(1);
        cmd
    };

    let mut variants = [
        Variant {
            name: "blocking_store",
            call: Box::new(|| {
                let permit = blocking.acquire().unwrap();
                std::hint::black_box(blocking.record(permit, Outcome::Success.into()));
            }),
        },
        Variant {
            name: "async_store",
            call: Box::new(|| {
                worker.block_on(async {
                    let permit = on_worker.acquire().await.unwrap();
                    std::hint::black_box(on_worker.record(permit, Outcome::Success.into()).await);
                })
            }),
        },
        Variant {
            name: "async_store_current_thread",
            call: Box::new(|| {
                local.block_on(async {
                    let permit = on_local.acquire().await.unwrap();
                    std::hint::black_box(on_local.record(permit, Outcome::Success.into()).await);
                })
            }),
        },
        Variant {
            name: "bare_plain",
            call: Box::new(|| {
                let n: i64 = hincrby().query(&mut plain).unwrap();
                std::hint::black_box(n);
            }),
        },
        Variant {
            name: "bare_multiplexed",
            call: Box::new(|| {
                let mut connection = multiplexed.clone();
                worker.block_on(async {
                    let n: i64 = hincrby().query_async(&mut connection).await.unwrap();
                    std::hint::black_box(n);
                })
            }),
        },
        Variant {
            name: "bare_manager",
            call: Box::new(|| {
                let mut connection = manager.clone();
                worker.block_on(async {
                    let n: i64 = hincrby().query_async(&mut connection).await.unwrap();
                    std::hint::black_box(n);
                })
            }),
        },
        Variant {
            name: "bare_multiplexed_current_thread",
            call: Box::new(|| {
                let mut connection = multiplexed_local.clone();
                local.block_on(async {
                    let n: i64 = hincrby().query_async(&mut connection).await.unwrap();
                    std::hint::black_box(n);
                })
            }),
        },
    ];
    let results = compare(&mut variants, plan.warmup, plan.rounds);
    plan.report("async_path", &as_lines(&results));
}
