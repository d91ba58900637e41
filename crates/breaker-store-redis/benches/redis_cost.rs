//! What the Redis store costs Redis, side by side in one run on a throwaway local
//! `redis-server`, 32 concurrent callers:
//!
//! - Redis CPU per call: `used_cpu_user + used_cpu_sys` from `INFO cpu` before and after,
//!   divided by the calls;
//! - requests per call: what the callers sent, counted with `MONITOR` in a separate pass
//!   (commands a script runs are shown by `MONITOR` as `[... lua]` and are not requests).
//!
//! Variants: a bare `HINCRBY` (the floor), the store with 10, 60 (the default) and 1000
//! buckets, the store in batched mode, the store with `ramp_up` and `minimum_reporters` on
//! (successes only, and one failure in ten, beside the same without them), and the original
//! Python library's layout (GET, pipeline ZREMRANGEBYSCORE + ZADD + ZCARD, SET; one
//! sorted-set member per call).
//!
//! `cargo bench -p breaker-store-redis --bench redis_cost` prints a markdown table.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "common/original_layout.rs"]
mod original_layout;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use breaker_core::{AsyncBreaker, Outcome, Policy};
use breaker_store_redis::{AsyncRedisStore, RedisConfig};
use breaker_testkit::redis_server::RedisServer;
use tokio::runtime::Runtime;

const CALLERS: u64 = 32;
/// The default policy's window.
const WINDOW: Duration = Duration::from_secs(60);
const CPU_CALLS: u64 = 40_000;
const MONITOR_CALLS: u64 = 4_000;

#[derive(Clone, Copy, Debug)]
enum Variant {
    Hincrby,
    Store {
        buckets: u32,
        batch: Option<Duration>,
        /// `ramp_up` and `minimum_reporters = 2` in the policy.
        features: bool,
        /// One call in ten fails (never enough to trip).
        failing: bool,
    },
    OriginalLayout,
}

impl Variant {
    fn label(self) -> String {
        match self {
            Variant::Hincrby => "bare `HINCRBY` (one command per call)".to_owned(),
            Variant::Store {
                buckets,
                batch,
                features,
                failing,
            } => {
                let mut label = format!("this store, {buckets} buckets");
                if let Some(interval) = batch {
                    label += &format!(", batched every {}", humantime::format_duration(interval));
                }
                if features {
                    label += ", `ramp_up` and `minimum_reporters = 2`";
                }
                if failing {
                    label += ", one call in ten fails";
                }
                label
            }
            Variant::OriginalLayout => {
                "original library's layout (GET, pipeline ZREMRANGEBYSCORE + ZADD + ZCARD, SET)"
                    .to_owned()
            }
        }
    }
}

fn policy(buckets: u32, features: bool) -> Policy {
    // Never trips, so every call takes the closed path; the default 60 s window.
    let builder = Policy::builder().buckets(buckets).minimum_failures(1 << 40);
    let builder = if features {
        builder
            .ramp_up(Some(Duration::from_secs(30)))
            .minimum_reporters(2)
    } else {
        builder
    };
    builder.build().unwrap()
}

/// Runs `calls` calls of `variant` spread over the callers.
async fn run(variant: Variant, url: &str, calls: u64, round: u64) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    match variant {
        Variant::Store {
            buckets,
            batch,
            features,
            failing,
        } => {
            let mut config = RedisConfig::standalone(url)
                .prefix(format!("cost{round}"))
                .timeout(Duration::from_secs(2));
            if let Some(interval) = batch {
                config = config.batch(interval);
            }
            let store = AsyncRedisStore::connect(config).await.unwrap();
            let breaker = store
                .breaker("cost", policy(buckets, features))
                .await
                .unwrap();
            for _ in 0..CALLERS {
                let (breaker, next) = (breaker.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let call = next.fetch_add(1, Ordering::Relaxed);
                        if call >= calls {
                            break;
                        }
                        let outcome = if failing && call % 10 == 0 {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        };
                        let permit = breaker.acquire().await.unwrap();
                        breaker.record(permit, outcome.into()).await;
                    }
                }));
            }
            for task in tasks.drain(..) {
                task.await.unwrap();
            }
            breaker.flush().await.unwrap();
        }
        Variant::Hincrby | Variant::OriginalLayout => {
            let client = redis::Client::open(url).unwrap();
            let conn = client.get_multiplexed_async_connection().await.unwrap();
            for _ in 0..CALLERS {
                let (mut conn, next) = (conn.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let member = next.fetch_add(1, Ordering::Relaxed);
                        if member >= calls {
                            break;
                        }
                        if matches!(variant, Variant::Hincrby) {
                            let _: i64 = redis::cmd("HINCRBY")
                                .arg(format!("hincrby{round}"))
                                .arg("calls")
                                .arg(1)
                                .query_async(&mut conn)
                                .await
                                .unwrap();
                        } else {
                            original_layout::call(
                                &mut conn,
                                &format!("original{round}"),
                                member,
                                WINDOW,
                            )
                            .await;
                        }
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
    }
}

/// Requests the callers sent, counted by `MONITOR` (script-run commands left out).
fn requests(server: &RedisServer, runtime: &Runtime, variant: Variant, round: u64) -> f64 {
    let mut monitor = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "MONITOR"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli (apt-get install redis-tools)");
    let mut lines = BufReader::new(monitor.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "OK");
    runtime.block_on(run(variant, &server.url(), MONITOR_CALLS, round));
    // A marker ends this variant's lines.
    server.command(&["ECHO", "breaker-cost-end"]).unwrap();
    let mut count = 0u64;
    for line in lines {
        let line = line.unwrap();
        if line.contains("breaker-cost-end") {
            break;
        }
        if !line.contains(" lua]") {
            count += 1;
        }
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    count as f64 / MONITOR_CALLS as f64
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` (with `--all-targets` or `--benches`) runs
    // benches with no such flag: nothing to measure then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let server = RedisServer::start();
    let runtime = breaker_testkit::runtime();
    let store = |buckets, batch, features, failing| Variant::Store {
        buckets,
        batch,
        features,
        failing,
    };
    let variants = [
        Variant::Hincrby,
        store(10, None, false, false),
        store(60, None, false, false),
        store(1_000, None, false, false),
        store(60, Some(Duration::from_millis(5)), false, false),
        store(60, None, true, false),
        store(60, None, false, true),
        store(60, None, true, true),
        Variant::OriginalLayout,
    ];
    let mut table = format!(
        "| variant ({CALLERS} concurrent callers) | Redis CPU per call | requests per call |\n|---|---|---|\n"
    );
    let mut figures = String::new();
    for (round, variant) in variants.into_iter().enumerate() {
        let round = round as u64;
        // Warm up (script loaded, connections made), then measure.
        runtime.block_on(run(variant, &server.url(), 2_000, round));
        let before = server.cpu_time().as_secs_f64();
        runtime.block_on(run(variant, &server.url(), CPU_CALLS, round));
        let cpu = (server.cpu_time().as_secs_f64() - before) / CPU_CALLS as f64 * 1e6;
        let requests = requests(&server, runtime, variant, round);
        let row = format!("| {} | {cpu:.1} µs | {requests:.2} |", variant.label());
        println!("{row}");
        let _ = writeln!(table, "{row}");
        let _ = writeln!(figures, "cpu_us_{round}={cpu:.2}");
    }
    // For `cargo xtask bench instructions`: the table, and the CPU per call of each row in
    // the order above (row 0 the bare `HINCRBY`, row 2 this store at 60 buckets).
    breaker_testkit::latency::write_figures("redis_cost", &figures);
    breaker_testkit::latency::write_figures("redis_cost_table", &table);
}
