//! The Redis store on a throwaway local `redis-server`:
//!
//! 1. Round trips and Redis commands per call on the closed path, counted from
//!    `INFO commandstats`, beside the original Python library's layout (a GET of the last-open
//!    time, a pipeline of ZREMRANGEBYSCORE + ZADD + ZCARD on a sorted set with one member per
//!    call, then a SET).
//! 2. Redis memory of one breaker after 1e3 and 1e6 calls in one window (`MEMORY USAGE`),
//!    beside the sorted-set layout's.
//! 3. Calls per second through the store at concurrency 1 and 64 (criterion), beside the same
//!    script driven bare through redis-rs at the same concurrency.
//!
//! Figures 1 and 2 are written to `target/breaker-bench/redis.txt` for `cargo xtask bench`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "common/original_layout.rs"]
mod original_layout;

/// The script's arguments as the store lays them out (declared once, in the store).
#[path = "../src/script/argv.rs"]
#[allow(dead_code, unreachable_pub)]
mod argv;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use breaker_core::{AsyncBreaker, ManualClock, Outcome, Policy, Timestamp};
use breaker_store_redis::{AsyncRedisBreaker, AsyncRedisStore, RedisConfig};
use breaker_testkit::redis_server::RedisServer;
use criterion::{Criterion, Throughput};
use tokio::runtime::Runtime;

const WINDOW: Duration = Duration::from_secs(600);

fn policy() -> Policy {
    // Never trips, so every call takes the closed path; a long window keeps all calls in it.
    Policy::builder()
        .window(WINDOW)
        .minimum_failures(1 << 40)
        .build()
        .unwrap()
}

fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> HashMap<String, u64> {
    after
        .iter()
        .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(name, calls)| *calls > 0 && name != "info")
        .collect()
}

async fn store_calls(breaker: &AsyncRedisBreaker, calls: usize) {
    for _ in 0..calls {
        let permit = breaker.acquire().await.unwrap();
        breaker.record(permit, Outcome::Success.into()).await;
    }
}

/// Runs `calls` calls spread over `concurrency` tasks.
async fn concurrent_store_calls(breaker: &AsyncRedisBreaker, calls: u64, concurrency: u64) {
    let tasks: Vec<_> = (0..concurrency.min(calls))
        .map(|task| {
            let breaker = breaker.clone();
            let share = calls / concurrency + u64::from(task < calls % concurrency);
            tokio::spawn(async move { store_calls(&breaker, share as usize).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn memory_usage(server: &RedisServer, key: &str) -> u64 {
    server
        .command(&["MEMORY", "USAGE", key, "SAMPLES", "0"])
        .unwrap()
        .parse()
        .unwrap()
}

fn counts_and_memory(server: &RedisServer, runtime: &Runtime) -> String {
    let mut out = String::new();
    runtime.block_on(async {
        let store = AsyncRedisStore::connect(
            RedisConfig::standalone(server.url()).timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();

        // 1. Round trips and commands per call.
        let calls = 10_000;
        let breaker = store.breaker("count", policy()).await.unwrap();
        store_calls(&breaker, 100).await;
        let before = server.command_calls();
        store_calls(&breaker, calls).await;
        let ours = delta(&before, &server.command_calls());
        let client_commands: u64 = ["evalsha", "eval"]
            .iter()
            .filter_map(|c| ours.get(*c))
            .sum();
        let all: u64 = ours.values().sum();
        let _ = writeln!(
            out,
            "store_round_trips_per_call={:.3}",
            client_commands as f64 / calls as f64
        );
        let _ = writeln!(
            out,
            "store_commands_per_call={:.3}",
            all as f64 / calls as f64
        );
        let mut detail: Vec<_> = ours
            .iter()
            .map(|(name, n)| format!("{name} {:.2}", *n as f64 / calls as f64))
            .collect();
        detail.sort();
        let _ = writeln!(out, "store_commands_detail={}", detail.join(", "));

        for member in 0..100 {
            original_layout::call(&mut conn, "zset-count", member, WINDOW).await;
        }
        let before = server.command_calls();
        for member in 0..calls as u64 {
            original_layout::call(&mut conn, "zset-count", 100 + member, WINDOW).await;
        }
        let theirs = delta(&before, &server.command_calls());
        let all: u64 = theirs.values().sum();
        // GET, one pipeline, SET: three round trips per call, by construction.
        let _ = writeln!(out, "sorted_set_round_trips_per_call=3");
        let _ = writeln!(
            out,
            "sorted_set_commands_per_call={:.3}",
            all as f64 / calls as f64
        );

        // 2. Memory after 1e3 and 1e6 calls in one window. Time is injected so that both runs
        // spread their calls over the same span (the whole window, every bucket in use):
        // memory then depends on the call count alone.
        let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
        let timed = AsyncRedisStore::connect(
            RedisConfig::standalone(server.url())
                .timeout(Duration::from_secs(2))
                .injected_clock(clock.clone()),
        )
        .await
        .unwrap();
        for n in [1_000u64, 1_000_000] {
            let breaker = timed
                .breaker(&format!("memory-{n}"), policy())
                .await
                .unwrap();
            let started = Instant::now();
            let steps = WINDOW.as_secs() - 1;
            for step in 0..steps {
                clock.set(Timestamp::from_millis(1_700_000_000_000 + step * 1_000));
                let share = n / steps + u64::from(step < n % steps);
                concurrent_store_calls(&breaker, share, 64).await;
            }
            let took = started.elapsed();
            let _ = writeln!(
                out,
                "store_memory_{n}={}",
                memory_usage(server, &format!("breaker:{{=memory-{n}}}"))
            );
            let _ = writeln!(out, "store_seconds_{n}={:.1}", took.as_secs_f64());

            let key = format!("zset-memory-{n}");
            let mut member = 0u64;
            while member < n {
                let mut pipe = redis::pipe();
                for _ in 0..(n - member).min(10_000) {
                    pipe.cmd("ZADD")
                        .arg(&key)
                        .arg(member as f64 / 1000.0)
                        .arg(member)
                        .ignore();
                    member += 1;
                }
                let _: () = pipe.query_async(&mut conn).await.unwrap();
            }
            let _ = writeln!(out, "sorted_set_memory_{n}={}", memory_usage(server, &key));
        }
    });
    out
}

fn throughput(c: &mut Criterion, server: &RedisServer, runtime: &Runtime) {
    let (breaker, batched, conn) = runtime.block_on(async {
        let store = AsyncRedisStore::connect(
            RedisConfig::standalone(server.url()).timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap();
        let breaker = store.breaker("throughput", policy()).await.unwrap();
        let batched_store = AsyncRedisStore::connect(
            RedisConfig::standalone(server.url())
                .timeout(Duration::from_secs(2))
                .batch(Duration::from_millis(5)),
        )
        .await
        .unwrap();
        let batched = batched_store
            .breaker("throughput-batched", policy())
            .await
            .unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        (
            breaker,
            batched,
            client.get_multiplexed_async_connection().await.unwrap(),
        )
    });
    let script = Arc::new(redis::Script::new(include_str!("../src/breaker.lua")));
    let p = policy();
    let mut group = c.benchmark_group("redis_throughput");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(6));
    for concurrency in [1u64, 64] {
        group.bench_function(format!("store/{concurrency}"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    concurrent_store_calls(&breaker, iters, concurrency).await;
                    started.elapsed()
                })
            })
        });
        group.bench_function(format!("store_batched/{concurrency}"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    concurrent_store_calls(&batched, iters, concurrency).await;
                    started.elapsed()
                })
            })
        });
        group.bench_function(format!("bare_script/{concurrency}"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..concurrency.min(iters))
                        .map(|task| {
                            let (mut conn, script, p) = (conn.clone(), script.clone(), p.clone());
                            let share = iters / concurrency + u64::from(task < iters % concurrency);
                            tokio::spawn(async move {
                                for _ in 0..share {
                                    // The store's record step: the same script, op and arguments
                                    // (a success of generation 0, the server's clock), laid out
                                    // by the store's own declaration of them.
                                    let mut invocation = script.prepare_invoke();
                                    invocation
                                        .key("breaker:{=bare}")
                                        .key("breaker:{=bare}:history");
                                    let numbers = argv::Numbers::new(&p, 86_400_000, 1_000);
                                    for arg in argv::argv("record", numbers, "") {
                                        invocation.arg(arg);
                                    }
                                    // One packed string (the store decodes it).
                                    let reply: redis::Value =
                                        invocation.invoke_async(&mut conn).await.unwrap();
                                    std::hint::black_box(reply);
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

fn main() {
    let server = RedisServer::start();
    let runtime = breaker_testkit::runtime();
    let mut criterion = Criterion::default().configure_from_args();
    // `cargo test` (with `--all-targets` or `--benches`) runs benches with no `--bench` flag,
    // once in test mode, and a name filter asks for some criterion benches only: both skip the
    // long counting run.
    let filtered = !std::env::args().any(|arg| arg == "--bench")
        || std::env::args()
            .skip(1)
            .any(|arg| arg == "--test" || !arg.starts_with('-'));
    if !filtered {
        let figures = counts_and_memory(&server, runtime);
        print!("{figures}");
        breaker_testkit::latency::write_figures("redis", &figures);
    }
    throughput(&mut criterion, &server, runtime);
    criterion.final_summary();
}
