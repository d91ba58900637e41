//! What a fleet costs the Redis it shares, side by side in one run on a throwaway local
//! `redis-server`:
//!
//! - **Fleets.** 10, 100 and 1 000 simulated processes, each with a store and a connection of
//!   its own (async stores, pushed changes on), call one breaker at 10 000 calls a second in
//!   all, each on its own beat: batched every 5 ms (with the default fleet budget),
//!   unbatched, and the original Python library's layout (GET, pipeline ZREMRANGEBYSCORE +
//!   ZADD + ZCARD, SET per call). After a warm-up, Redis's CPU share (`INFO cpu`) and its
//!   script calls a second (`INFO commandstats`) are measured over a few seconds.
//! - **The trip bound.** Then the backend fails every call. For the store's fleets: how long
//!   until the first process rejects, until the last does, and how many calls reached the
//!   failing backend before the last process rejected. The policy: a 2 s window in 20
//!   buckets, 50 %, at least 20 failures; counted exactly, the rule is met about 1 s after
//!   the failures begin.
//! - **Short-lived processes.** One after the other, each connects a store of its own, makes
//!   one call, flushes and reads the state (as `breaker run --requests 1` does), then ends;
//!   beside a bare connect, `PING` and quit. Redis CPU and connections per process.
//!
//! `cargo bench -p breaker-store-redis --bench fleet_cost` prints a markdown table and writes
//! `target/breaker-bench/fleet_cost.txt` for `cargo xtask bench fleet-cost`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "common/original_layout.rs"]
mod original_layout;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breaker_core::{AsyncBreaker, Outcome, Policy};
use breaker_store_redis::{AsyncRedisStore, RedisConfig};
use breaker_testkit::latency::write_figures;
use breaker_testkit::redis_server::RedisServer;

/// Calls a second of the whole fleet.
const TOTAL_RATE: u64 = 10_000;
const FLEETS: [u64; 3] = [10, 100, 1_000];
const WARM: Duration = Duration::from_secs(4);
const MEASURE: Duration = Duration::from_secs(5);
/// How long the failing backend is given to trip the fleet.
const TRIP_LIMIT: Duration = Duration::from_secs(6);
const SHORT_LIVED: u64 = 300;

const SUCCEEDING: u8 = 0;
const FAILING: u8 = 1;
const STOPPED: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Batched,
    Unbatched,
    OriginalLayout,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Batched => "batched every 5 ms, fleet budget 500/s (the default)",
            Mode::Unbatched => "unbatched",
            Mode::OriginalLayout => "original library's layout",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Mode::Batched => "batched",
            Mode::Unbatched => "unbatched",
            Mode::OriginalLayout => "original",
        }
    }
}

fn policy() -> Policy {
    Policy::builder()
        .window(Duration::from_secs(2))
        .buckets(20)
        .failure_rate(50.0)
        .minimum_failures(20)
        .build()
        .unwrap()
}

/// What the processes of one fleet saw, shared with their tasks.
#[derive(Default)]
struct Shared {
    phase: AtomicU8,
    calls: AtomicU64,
    /// Calls that reached the failing backend, before their process first rejected.
    failed_through: AtomicU64,
    /// When each process first rejected a call, after the failures began.
    rejected: Mutex<Vec<Duration>>,
    failing_since: Mutex<Option<Instant>>,
}

/// One process of the fleet: calls on its beat until stopped.
async fn process(mode: Mode, url: String, prefix: String, period: Duration, shared: Arc<Shared>) {
    let mut beat = tokio::time::interval(period);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if mode == Mode::OriginalLayout {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut member = 0u64;
        while shared.phase.load(Ordering::Relaxed) == SUCCEEDING {
            beat.tick().await;
            member += 1;
            original_layout::call(&mut conn, &prefix, member, Duration::from_secs(2)).await;
            shared.calls.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let mut config = RedisConfig::standalone(&url)
        .prefix(prefix)
        .timeout(Duration::from_secs(2));
    if mode == Mode::Batched {
        config = config.batch(Duration::from_millis(5));
    }
    let store = AsyncRedisStore::connect(config).await.unwrap();
    let breaker = store.breaker("fleet", policy()).await.unwrap();
    let mut rejected = false;
    loop {
        beat.tick().await;
        let phase = shared.phase.load(Ordering::Relaxed);
        if phase == STOPPED {
            break;
        }
        shared.calls.fetch_add(1, Ordering::Relaxed);
        match breaker.acquire().await {
            Ok(permit) => {
                let outcome = if phase == FAILING {
                    if !rejected {
                        shared.failed_through.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                breaker.record(permit, outcome.into()).await;
            }
            Err(_) if phase == FAILING && !rejected => {
                rejected = true;
                let since = shared.failing_since.lock().unwrap().unwrap();
                shared.rejected.lock().unwrap().push(since.elapsed());
            }
            Err(_) => {}
        }
    }
    let _ = breaker.flush().await;
}

/// One fleet's figures.
struct FleetRun {
    calls_per_second: f64,
    cpu_share: f64,
    scripts_per_second: f64,
    /// First and last process's first rejection, and the calls that reached the failing
    /// backend; `None` for the original layout, which has no breaker here.
    trip: Option<(Option<Duration>, Option<Duration>, u64, usize)>,
}

fn run_fleet(server: &RedisServer, mode: Mode, processes: u64, round: usize) -> FleetRun {
    let runtime = breaker_testkit::runtime();
    let shared = Arc::new(Shared::default());
    let period = Duration::from_secs_f64(processes as f64 / TOTAL_RATE as f64);
    let prefix = format!("fleet{round}");
    let tasks: Vec<_> = (0..processes)
        .map(|i| {
            let (url, prefix, shared) = (server.url(), prefix.clone(), shared.clone());
            runtime.spawn(async move {
                // Beats spread over one period, as independent processes' would be.
                tokio::time::sleep(period.mul_f64(i as f64 / processes as f64)).await;
                process(mode, url, prefix, period, shared).await;
            })
        })
        .collect();
    // Paces the fleet: WARM stands for processes that have run a while.
    std::thread::sleep(WARM);
    let (cpu, scripts, calls) = (
        server.cpu_time(),
        server.script_calls(),
        shared.calls.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    // Paces the measurement: MEASURE seconds of the fleet's steady state.
    std::thread::sleep(MEASURE);
    let seconds = started.elapsed().as_secs_f64();
    let calls_per_second = (shared.calls.load(Ordering::Relaxed) - calls) as f64 / seconds;
    let cpu_share = (server.cpu_time() - cpu).as_secs_f64() / seconds;
    let scripts_per_second = (server.script_calls() - scripts) as f64 / seconds;
    let mut trip = None;
    if mode != Mode::OriginalLayout {
        *shared.failing_since.lock().unwrap() = Some(Instant::now());
        shared.phase.store(FAILING, Ordering::Relaxed);
        let deadline = Instant::now() + TRIP_LIMIT;
        while Instant::now() < deadline
            && shared.rejected.lock().unwrap().len() < processes as usize
        {
            // Polls for every process's first rejection, until the deadline.
            std::thread::sleep(Duration::from_millis(10));
        }
        let rejected = shared.rejected.lock().unwrap().clone();
        trip = Some((
            rejected.iter().min().copied(),
            rejected.iter().max().copied(),
            shared.failed_through.load(Ordering::Relaxed),
            rejected.len(),
        ));
    }
    shared.phase.store(STOPPED, Ordering::Relaxed);
    runtime.block_on(async {
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    });
    FleetRun {
        calls_per_second,
        cpu_share,
        scripts_per_second,
        trip,
    }
}

/// Redis CPU and connections per short-lived process (or per bare connect, `PING` and quit).
fn short_lived(server: &RedisServer, bare: bool) -> (Duration, f64) {
    let runtime = breaker_testkit::runtime();
    let url = server.url();
    let (cpu, before) = (server.cpu_time(), server.connections_received());
    for _ in 0..SHORT_LIVED {
        runtime.block_on(async {
            if bare {
                let client = redis::Client::open(url.as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
                let _: () = redis::cmd("QUIT")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or(());
                return;
            }
            let config = RedisConfig::standalone(&url)
                .prefix("short")
                .timeout(Duration::from_secs(2))
                .batch(Duration::from_millis(5));
            let store = AsyncRedisStore::connect(config).await.unwrap();
            let breaker = store.breaker("short", policy()).await.unwrap();
            let permit = breaker.acquire().await.unwrap();
            breaker.record(permit, Outcome::Success.into()).await;
            breaker.flush().await.unwrap();
            breaker.snapshot().await.unwrap();
        });
    }
    let per_process = (server.cpu_time() - cpu) / SHORT_LIVED as u32;
    let connections = (server.connections_received() - before) as f64 / SHORT_LIVED as f64;
    (per_process, connections)
}

fn millis(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "none".to_owned(), |d| format!("{}", d.as_millis()))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: nothing to measure then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let server = RedisServer::start();
    let mut table = format!(
        "| processes ({TOTAL_RATE} calls/s in all) | mode | calls/s reached | Redis CPU (share \
         of a core) | script calls/s | first process rejects | last process rejects | calls \
         to the failing backend |\n|---|---|---|---|---|---|---|---|\n"
    );
    let mut figures = String::new();
    let mut round = 0;
    for processes in FLEETS {
        for mode in [Mode::Batched, Mode::Unbatched, Mode::OriginalLayout] {
            round += 1;
            let run = run_fleet(&server, mode, processes, round);
            let key = format!("{}_{processes}", mode.key());
            let _ = writeln!(figures, "{key}_calls={:.0}", run.calls_per_second);
            let _ = writeln!(figures, "{key}_cpu={:.4}", run.cpu_share);
            let _ = writeln!(figures, "{key}_scripts={:.0}", run.scripts_per_second);
            let (first, last, through) = match run.trip {
                Some((first, last, through, rejected)) => {
                    let last = if rejected == processes as usize {
                        last
                    } else {
                        None
                    };
                    let _ = writeln!(figures, "{key}_first_ms={}", millis(first));
                    let _ = writeln!(figures, "{key}_last_ms={}", millis(last));
                    let _ = writeln!(figures, "{key}_through={through}");
                    (
                        format!("{} ms", millis(first)),
                        format!("{} ms", millis(last)),
                        through.to_string(),
                    )
                }
                None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
            };
            let row = format!(
                "| {processes} | {} | {:.0} | {:.1} % | {:.0} | {first} | {last} | {through} |",
                mode.label(),
                run.calls_per_second,
                run.cpu_share * 100.0,
                run.scripts_per_second,
            );
            println!("{row}");
            let _ = writeln!(table, "{row}");
        }
    }
    let (process, connections) = short_lived(&server, false);
    let (bare, bare_connections) = short_lived(&server, true);
    let _ = writeln!(figures, "short_cpu_us={:.1}", process.as_secs_f64() * 1e6);
    let _ = writeln!(figures, "short_connections={connections:.2}");
    let _ = writeln!(figures, "bare_cpu_us={:.1}", bare.as_secs_f64() * 1e6);
    let _ = writeln!(figures, "bare_connections={bare_connections:.2}");
    println!(
        "short-lived: {:.0} µs of Redis CPU, {connections:.2} connections; bare connect, PING, \
         quit: {:.0} µs, {bare_connections:.2}",
        process.as_secs_f64() * 1e6,
        bare.as_secs_f64() * 1e6
    );
    print!("{figures}");
    write_figures("fleet_cost", &figures);
    write_figures("fleet_cost_table", &table);
}
