//! A fleet through outages (SPEC section 9, "recovery" and "quorum"): `breaker run`
//! processes share one breaker through a throwaway Redis and offer a steady load to the test
//! kit's backend.
//!
//! - Recovery: the backend goes down, then comes back cold and warms up. Once without
//!   `ramp_up`, once with it: re-trips after the backend is back, the request rate the backend
//!   sees in the first second after the close, and the time until the full load is served
//!   again.
//! - Quorum: the backend fails for one process alone (its path), then for every process.
//!   With `minimum_reporters` 1 and above: how often the fleet's breaker opens while one
//!   process fails, and how soon it opens once all do.
//!
//! `cargo bench -p breaker-cli --bench recovery [-- recovery|quorum]` prints markdown tables
//! and writes `target/breaker-bench/recovery.txt` (or `quorum.txt`) for `cargo xtask bench
//! recovery`. Everything runs on 127.0.0.1 and stops by itself.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use breaker_testkit::capacity::Capacity;
use breaker_testkit::http_server::{Client, Counts, TestServer};
use breaker_testkit::latency::write_figures;
use breaker_testkit::redis_server::RedisServer;
use serde_json::Value;

/// Processes in the fleet, each a `breaker run` of its own.
const PROCESSES: usize = 8;
/// Requests each process starts per second: the fleet's offered load L is eight times this.
const RATE_PER_PROCESS: u32 = 40;
/// How long each process runs.
const RUN: Duration = Duration::from_secs(20);
/// When the backend goes down and when it comes back, after the fleet starts.
const DOWN_AT: Duration = Duration::from_secs(4);
const UP_AT: Duration = Duration::from_secs(7);
/// The backend once warm serves 1.5 L a second; it comes back at a tenth of that (0.15 L)
/// and warms up over five seconds.
const CAPACITY_OVER_LOAD: f64 = 1.5;
const COLD_SHARE: f64 = 0.1;
const WARM_UP: Duration = Duration::from_secs(5);
/// The ramp of the run with `ramp_up`: the length of the backend's warm-up.
const RAMP_UP: &str = "5s";
/// The fleet's policy, the same in both runs but for `ramp_up`: a short window and open
/// period so that a run shows several cycles; one probe, whose success closes the breaker.
const POLICY: [&str; 12] = [
    "--window",
    "2s",
    "--buckets",
    "20",
    "--minimum-failures",
    "10",
    "--failure-rate",
    "20",
    "--open-for",
    "1s",
    "--half-open-probes",
    "1",
];
const PROBES: f64 = 1.0;
/// How often the bench reads the backend's counters.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// Served at least this share of the offered load: full traffic flows.
const FULL: f64 = 0.9;

fn offered_load() -> f64 {
    f64::from(RATE_PER_PROCESS) * PROCESSES as f64
}

/// Milliseconds since the Unix epoch, the clock Redis's `TIME` (and so the breaker's history)
/// uses on this machine.
fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// The backend's counters over time, read every `SAMPLE_EVERY` on a thread of its own.
struct Sampler {
    samples: Arc<Mutex<Vec<(f64, Counts)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(server: Arc<TestServer>) -> Sampler {
        let samples: Arc<Mutex<Vec<(f64, Counts)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (writing, stopping) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                let sample = (epoch_ms(), server.counts());
                writing.lock().unwrap().push(sample);
                // Paces the samples; each carries its own time, so a late one costs nothing.
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
        Sampler {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Timeline {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        Timeline(std::mem::take(&mut *self.samples.lock().unwrap()))
    }
}

/// Samples of the backend's counters, in time order.
struct Timeline(Vec<(f64, Counts)>);

impl Timeline {
    /// A counter at `at_ms`, interpolated between the samples around it.
    fn at(&self, at_ms: f64, field: fn(&Counts) -> usize) -> f64 {
        let samples = &self.0;
        let after = samples.partition_point(|(time, _)| *time < at_ms);
        if after == 0 {
            return field(&samples[0].1) as f64;
        }
        if after == samples.len() {
            return field(&samples[after - 1].1) as f64;
        }
        let (t0, c0) = (samples[after - 1].0, field(&samples[after - 1].1) as f64);
        let (t1, c1) = (samples[after].0, field(&samples[after].1) as f64);
        c0 + (c1 - c0) * (at_ms - t0) / (t1 - t0).max(f64::MIN_POSITIVE)
    }

    /// Requests a second over `[from, to)` (milliseconds since the epoch).
    fn rate(&self, from: f64, to: f64, field: fn(&Counts) -> usize) -> f64 {
        (self.at(to, field) - self.at(from, field)) * 1000.0 / (to - from)
    }
}

fn requests(counts: &Counts) -> usize {
    counts.requests
}

fn served(counts: &Counts) -> usize {
    counts.served
}

fn over_capacity(counts: &Counts) -> usize {
    counts.over_capacity
}

/// The fleet's processes; dropping it kills any still running.
struct Fleet(Vec<Child>);

impl Fleet {
    fn spawn(url: &str, redis: &str, name: &str, run: Duration, extra: &[&str]) -> Fleet {
        let rate = RATE_PER_PROCESS.to_string();
        let duration = format!("{}s", run.as_secs());
        let children = (0..PROCESSES)
            .map(|process| {
                Command::new(env!("CARGO_BIN_EXE_breaker"))
                    .args(["run", "--url", &format!("{url}p{process}")])
                    .args(["--store", redis, "--name", name])
                    .args(["--duration", &duration, "--rate", &rate])
                    .args(["--concurrency", "4", "--timeout", "2s", "--json"])
                    .args(extra)
                    .env_remove("REDIS_URL")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start breaker run")
            })
            .collect();
        Fleet(children)
    }

    /// Waits for every process to end by itself (each runs for `RUN`), at most until
    /// `deadline`, and returns their reports.
    fn reports(mut self, deadline: Instant) -> Vec<Value> {
        let mut reports = Vec::new();
        for child in self.0.drain(..) {
            let mut child = child;
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("a breaker run process did not end by itself in time");
                }
                // Polls the process with a deadline.
                std::thread::sleep(Duration::from_millis(20));
            }
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "breaker run failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            reports.push(serde_json::from_slice(&output.stdout).unwrap());
        }
        reports
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A transition from the breaker's history in Redis: when (ms since the epoch) and what.
struct Entry {
    at_ms: f64,
    event: String,
}

fn history(redis: &str, name: &str) -> Vec<Entry> {
    let output = Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args([
            "history", name, "--store", redis, "--json", "--count", "10000",
        ])
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let entries: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let mut entries: Vec<Entry> = entries
        .iter()
        .map(|entry| Entry {
            at_ms: entry["at_ms"].as_f64().unwrap(),
            event: entry["event"].as_str().unwrap().to_owned(),
        })
        .collect();
    // Newest first as printed; oldest first here.
    entries.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    entries
}

/// What one run measured.
struct Recovery {
    /// The load the fleet offered, measured before the outage (requests a second).
    load: f64,
    /// Trips during the outage (the first one and failed probes).
    trips_in_outage: usize,
    /// From the backend's return to the first close after it.
    close_after_up_ms: Option<f64>,
    /// Trips after that close.
    retrips: usize,
    /// Requests reaching the backend in the second after that close, as a share of `load`.
    first_second: Option<f64>,
    /// The highest rate of a fifth of that second, as a share of `load`.
    first_second_peak: Option<f64>,
    /// From the backend's return until it serves at least `FULL` of the load for good.
    full_after_up_ms: Option<f64>,
    /// Requests the backend refused for capacity after its return.
    over_capacity: f64,
    /// Calls the fleet's breakers rejected, in all.
    rejected: u64,
}

fn run_once(redis: &RedisServer, label: &str, extra: &[&str]) -> Recovery {
    let server = Arc::new(TestServer::start());
    let load = offered_load();
    let capacity = Capacity::new((load * CAPACITY_OVER_LOAD) as u32).warming(COLD_SHARE, WARM_UP);
    server.set_capacity(Some(capacity));
    let url = server.url("/");
    let store = redis.url();
    let name = format!("recovery-{label}");
    let sampler = Sampler::start(server.clone());
    let started = Instant::now();
    let flags: Vec<&str> = POLICY.iter().chain(extra).copied().collect();
    let fleet = Fleet::spawn(&url, &store, &name, RUN, &flags);
    let fleet_started = epoch_ms();

    // The outage follows the fleet's clock: the bench waits for each moment in turn.
    wait_until(started + DOWN_AT);
    let down_ms = epoch_ms();
    server.take_down();
    wait_until(started + UP_AT);
    server.bring_up();
    let up_ms = epoch_ms();

    let reports = fleet.reports(started + RUN + Duration::from_secs(60));
    // Every process ran at least until the fleet's start plus RUN.
    let end_ms = fleet_started + RUN.as_secs_f64() * 1000.0;
    let timeline = sampler.finish();
    let entries = history(&store, &name);

    let load_measured = timeline.rate(fleet_started + 1500.0, down_ms, requests);
    let trips_in_outage = entries
        .iter()
        .filter(|e| e.event == "tripped" && e.at_ms >= down_ms && e.at_ms < up_ms)
        .count();
    let close = entries
        .iter()
        .find(|e| e.event == "closed" && e.at_ms >= up_ms)
        .map(|e| e.at_ms);
    let retrips = close.map_or(0, |close| {
        entries
            .iter()
            .filter(|e| e.event == "tripped" && e.at_ms > close)
            .count()
    });
    let first_second =
        close.map(|close| timeline.rate(close, close + 1000.0, requests) / load_measured);
    let first_second_peak = close.map(|close| {
        (0..5)
            .map(|fifth| {
                let from = close + f64::from(fifth) * 200.0;
                timeline.rate(from, from + 200.0, requests)
            })
            .fold(0.0, f64::max)
            / load_measured
    });
    // Full traffic from the start of the first 500 ms window (stepping 100 ms) after which
    // every window up to the end serves at least FULL of the load.
    let windows: Vec<f64> = (0..)
        .map(|step| up_ms + f64::from(step) * 100.0)
        .take_while(|from| from + 500.0 <= end_ms)
        .collect();
    let short = |from: &f64| timeline.rate(*from, from + 500.0, served) < FULL * load_measured;
    let full_after_up_ms = match windows.iter().rposition(short) {
        None => Some(0.0),
        Some(last) if last + 1 < windows.len() => Some(windows[last + 1] - up_ms),
        Some(_) => None,
    };
    let over_capacity = timeline.at(end_ms, over_capacity) - timeline.at(up_ms, over_capacity);
    let rejected = reports
        .iter()
        .map(|report| report["rejected"].as_u64().unwrap())
        .sum();
    Recovery {
        load: load_measured,
        trips_in_outage,
        close_after_up_ms: close.map(|close| close - up_ms),
        retrips,
        first_second,
        first_second_peak,
        full_after_up_ms,
        over_capacity,
        rejected,
    }
}

fn wait_until(moment: Instant) {
    if let Some(left) = moment.checked_duration_since(Instant::now()) {
        // Paces the scenario: the outage starts and ends at set times.
        std::thread::sleep(left);
    }
}

fn share(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |share| format!("{:.0} %", share * 100.0))
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("not within the run".to_owned(), |ms| {
        format!("{:.1} s", ms / 1000.0)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; `cargo test` (with `--all-targets` or `--benches`) runs
    // benches with no such flag: nothing to test then.
    if !args.iter().any(|arg| arg == "--bench") {
        return;
    }
    let only = |part: &str| {
        let parts = ["recovery", "quorum"];
        let chosen: Vec<&String> = args
            .iter()
            .filter(|arg| parts.contains(&arg.as_str()))
            .collect();
        chosen.is_empty() || chosen.iter().any(|arg| *arg == part)
    };
    let redis = RedisServer::start();
    if only("recovery") {
        recovery(&redis);
    }
    if only("quorum") {
        quorum(&redis);
    }
}

fn recovery(redis: &RedisServer) {
    let ramp_flags = ["--ramp-up", RAMP_UP];
    let runs = [
        ("off", "without ramp_up", run_once(redis, "off", &[])),
        (
            "ramp",
            "with ramp_up 5 s",
            run_once(redis, "ramp", &ramp_flags),
        ),
    ];
    let mut figures = String::new();
    let load = offered_load();
    let _ = writeln!(figures, "processes={PROCESSES}");
    let _ = writeln!(figures, "offered_load={load:.0}");
    let _ = writeln!(figures, "capacity={:.0}", load * CAPACITY_OVER_LOAD);
    let _ = writeln!(figures, "cold_share={COLD_SHARE}");
    let _ = writeln!(figures, "warm_up_s={}", WARM_UP.as_secs());
    let _ = writeln!(figures, "ramp_up={RAMP_UP}");
    let _ = writeln!(figures, "run_s={}", RUN.as_secs());
    let _ = writeln!(figures, "down_at_s={}", DOWN_AT.as_secs());
    let _ = writeln!(figures, "up_at_s={}", UP_AT.as_secs());
    let _ = writeln!(figures, "policy={}", POLICY.join(" "));
    let _ = writeln!(figures, "probes={PROBES}");
    let _ = writeln!(figures, "full_share={FULL}");
    println!(
        "| {PROCESSES} processes, L = {load:.0} requests/s | measured L | trips in the outage | close after the return | re-trips after it | first second after the close (mean / peak 200 ms) | full traffic after the return | refused for capacity after the return | calls rejected by the breaker |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (key, label, run) in &runs {
        println!(
            "| {label} | {:.0}/s | {} | {} | {} | {} / {} | {} | {:.0} | {} |",
            run.load,
            run.trips_in_outage,
            seconds(run.close_after_up_ms),
            run.retrips,
            share(run.first_second),
            share(run.first_second_peak),
            seconds(run.full_after_up_ms),
            run.over_capacity,
            run.rejected
        );
        let optional = |value: Option<f64>| value.map_or("none".to_owned(), |v| format!("{v:.4}"));
        let _ = writeln!(figures, "{key}_load={:.1}", run.load);
        let _ = writeln!(figures, "{key}_trips_in_outage={}", run.trips_in_outage);
        let _ = writeln!(
            figures,
            "{key}_close_after_up_ms={}",
            optional(run.close_after_up_ms)
        );
        let _ = writeln!(figures, "{key}_retrips={}", run.retrips);
        let _ = writeln!(figures, "{key}_first_second={}", optional(run.first_second));
        let _ = writeln!(
            figures,
            "{key}_first_second_peak={}",
            optional(run.first_second_peak)
        );
        let _ = writeln!(
            figures,
            "{key}_full_after_up_ms={}",
            optional(run.full_after_up_ms)
        );
        let _ = writeln!(figures, "{key}_over_capacity={:.0}", run.over_capacity);
        let _ = writeln!(figures, "{key}_rejected={}", run.rejected);
    }
    write_figures("recovery", &figures);
}

/// The quorum runs' policy: a failure rate low enough that one process's failures alone
/// (an eighth of the calls) would open the fleet's breaker without a quorum.
const QUORUM_POLICY: [&str; 10] = [
    "--window",
    "2s",
    "--buckets",
    "20",
    "--minimum-failures",
    "10",
    "--failure-rate",
    "10",
    "--open-for",
    "1s",
];
/// The quorum the second run asks for.
const QUORUM: u32 = 3;
/// The quorum runs' timeline, from the fleet's start: one process fails alone from
/// `LONE_FROM` to `LONE_TO`, every process from `ALL_FROM` to the end of `QUORUM_RUN`.
const LONE_FROM: Duration = Duration::from_secs(2);
const LONE_TO: Duration = Duration::from_secs(8);
const ALL_FROM: Duration = Duration::from_secs(10);
const QUORUM_RUN: Duration = Duration::from_secs(14);

/// What one quorum run measured.
struct QuorumRun {
    /// Fleet-wide opens while one process alone failed.
    false_opens: usize,
    /// Whether the breaker was closed when every process began to fail.
    closed_before_all: bool,
    /// From the moment every process fails to the fleet's open.
    open_after_ms: Option<f64>,
    /// The lone process's requests that reached the backend (and failed) while it failed
    /// alone.
    lone_sent: u64,
}

fn quorum_once(redis: &RedisServer, reporters: u32) -> QuorumRun {
    let server = Arc::new(TestServer::start());
    let url = server.url("/");
    let store = redis.url();
    let name = format!("quorum-{reporters}");
    let reporters_flag = reporters.to_string();
    let flags: Vec<&str> = QUORUM_POLICY
        .iter()
        .copied()
        .chain(["--minimum-reporters", &reporters_flag])
        .collect();
    let started = Instant::now();
    let fleet = Fleet::spawn(&url, &store, &name, QUORUM_RUN, &flags);
    // The first process's requests go to `/p0`.
    let lone = Client::Path("/p0".to_owned());
    wait_until(started + LONE_FROM);
    let lone_from = epoch_ms();
    let lone_counts = server.counts();
    server.fail_for(lone.clone());
    wait_until(started + LONE_TO);
    server.stop_failing(&lone);
    let lone_failed = server.counts().client_failures - lone_counts.client_failures;
    wait_until(started + ALL_FROM);
    let all_from = epoch_ms();
    server.take_down();
    fleet.reports(started + QUORUM_RUN + Duration::from_secs(60));
    let entries = history(&store, &name);
    let false_opens = entries
        .iter()
        .filter(|e| e.event == "tripped" && e.at_ms >= lone_from && e.at_ms < all_from)
        .count();
    // The last transition before every process failed (the history also holds other
    // events) left the breaker closed.
    let closed_before_all = entries
        .iter()
        .rev()
        .filter(|e| ["tripped", "half-opened", "closed"].contains(&e.event.as_str()))
        .find(|e| e.at_ms < all_from)
        .is_none_or(|e| e.event == "closed");
    let open_after_ms = entries
        .iter()
        .find(|e| e.event == "tripped" && e.at_ms >= all_from)
        .map(|e| e.at_ms - all_from);
    QuorumRun {
        false_opens,
        closed_before_all,
        open_after_ms,
        lone_sent: lone_failed as u64,
    }
}

fn quorum(redis: &RedisServer) {
    let runs = [
        (1, quorum_once(redis, 1)),
        (QUORUM, quorum_once(redis, QUORUM)),
    ];
    let mut figures = String::new();
    let _ = writeln!(figures, "processes={PROCESSES}");
    let _ = writeln!(figures, "offered_load={:.0}", offered_load());
    let _ = writeln!(figures, "policy={}", QUORUM_POLICY.join(" "));
    let _ = writeln!(figures, "quorum={QUORUM}");
    // The window and its bucket step, as the policy above gives them.
    let _ = writeln!(figures, "window_ms=2000");
    let _ = writeln!(figures, "step_ms=100");
    let _ = writeln!(figures, "lone_from_s={}", LONE_FROM.as_secs());
    let _ = writeln!(figures, "lone_to_s={}", LONE_TO.as_secs());
    let _ = writeln!(figures, "all_from_s={}", ALL_FROM.as_secs());
    let _ = writeln!(figures, "run_s={}", QUORUM_RUN.as_secs());
    println!(
        "| minimum_reporters | fleet opens while one process fails alone | its requests that reached the backend then | closed when all began to fail | fleet open after all fail |"
    );
    println!("|---|---|---|---|---|");
    for (reporters, run) in &runs {
        let open = run
            .open_after_ms
            .map_or("never".to_owned(), |ms| format!("{ms:.0} ms"));
        println!(
            "| {reporters} | {} | {} | {} | {open} |",
            run.false_opens, run.lone_sent, run.closed_before_all
        );
        let key = format!("q{reporters}");
        let _ = writeln!(figures, "{key}_false_opens={}", run.false_opens);
        let _ = writeln!(figures, "{key}_lone_sent={}", run.lone_sent);
        let _ = writeln!(figures, "{key}_closed_before_all={}", run.closed_before_all);
        let _ = writeln!(
            figures,
            "{key}_open_after_ms={}",
            run.open_after_ms
                .map_or("none".to_owned(), |ms| format!("{ms:.0}"))
        );
    }
    write_figures("quorum", &figures);
}
