//! `cargo xtask bench`: runs the criterion benchmarks and writes their figures, as ratios to
//! the baselines measured in the same run, into `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::fs;
use std::process::Command;

use crate::{Result, cargo, root};

const MEMORY: (&str, &str) = (
    "<!-- memory-store:begin (written by cargo xtask bench memory) -->",
    "<!-- memory-store:end -->",
);
const ADAPTERS: (&str, &str) = (
    "<!-- adapters:begin (written by cargo xtask bench adapters) -->",
    "<!-- adapters:end -->",
);
const REDIS: (&str, &str) = (
    "<!-- redis-store:begin (written by cargo xtask bench redis) -->",
    "<!-- redis-store:end -->",
);
const RECOVERY: (&str, &str) = (
    "<!-- recovery:begin (written by cargo xtask bench recovery) -->",
    "<!-- recovery:end -->",
);
const QUORUM: (&str, &str) = (
    "<!-- quorum:begin (written by cargo xtask bench quorum) -->",
    "<!-- quorum:end -->",
);

const IN_PROCESS: (&str, &str) = (
    "<!-- in-process:begin (written by cargo xtask bench in-process) -->",
    "<!-- in-process:end -->",
);
const INSTRUCTIONS: (&str, &str) = (
    "<!-- instructions:begin (written by cargo xtask bench instructions) -->",
    "<!-- instructions:end -->",
);
/// The script as it was before the packed layout (`git show 5131419:crates/breaker-store-redis/src/breaker.lua`),
/// measured with the same steps on 2026-11-30 (its arguments were decimal text then, so the
/// bench of today cannot drive it): instructions per success and per failure that does not
/// trip, at 10, 60 and 1000 buckets.
const INSTRUCTIONS_BEFORE: [(u32, u64, u64); 3] = [
    (10, 157_654, 445_334),
    (60, 158_161, 444_308),
    (1000, 158_503, 446_901),
];
const FLEET_COST: (&str, &str) = (
    "<!-- fleet-cost:begin (written by cargo xtask bench fleet-cost) -->",
    "<!-- fleet-cost:end -->",
);
const ASYNC_PATH: (&str, &str) = (
    "<!-- async-path:begin (written by cargo xtask bench async) -->",
    "<!-- async-path:end -->",
);

/// Median time of one criterion iteration, in nanoseconds.
fn median_ns(group: &str, bench: &str) -> Result<f64> {
    let path = root()
        .join("target/criterion")
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let text = fs::read_to_string(&path)
        .map_err(|err| format!("no criterion result at {}: {err}", path.display()))?;
    let after_median = text
        .split_once("\"median\"")
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{} has no median", path.display()))?;
    let after_point = after_median
        .split_once("\"point_estimate\":")
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{} has no median point estimate", path.display()))?;
    let number: String = after_point
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    number
        .parse()
        .map_err(|err| format!("{}: bad median {number:?}: {err}", path.display()))
}

fn shell(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cpu}, {cores} cores, {}", shell("rustc", &["--version"]))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

fn run_bench(package: &str, bench: &str) -> Result {
    run_bench_with(package, bench, &[])
}

/// Runs one bench with arguments for the bench itself (after `--`).
fn run_bench_with(package: &str, bench: &str, args: &[&str]) -> Result {
    let mut all = vec!["bench", "--package", package, "--bench", bench, "--locked"];
    if !args.is_empty() {
        all.push("--");
        all.extend_from_slice(args);
    }
    crate::run(cargo(&all))
}

/// `cargo xtask bench [memory|redis|adapters|recovery|quorum|dashboard|in-process|async|
/// instructions|fleet-cost|all]`.
pub(crate) fn run(args: &[String]) -> Result {
    match args.first().map(String::as_str).unwrap_or("all") {
        "memory" => memory(),
        "redis" => redis(),
        "adapters" => adapters(),
        "recovery" => recovery(),
        "quorum" => quorum(),
        "dashboard" => dashboard(),
        "in-process" => in_process(),
        "async" => async_path(),
        "instructions" => instructions(),
        "fleet-cost" => fleet_cost(),
        "all" => memory()
            .and_then(|()| redis())
            .and_then(|()| adapters())
            .and_then(|()| recovery())
            .and_then(|()| quorum())
            .and_then(|()| dashboard())
            .and_then(|()| in_process())
            .and_then(|()| async_path())
            .and_then(|()| instructions())
            .and_then(|()| fleet_cost()),
        other => Err(format!(
            "unknown bench {other:?}: use memory, redis, adapters, recovery, quorum, dashboard, \
             in-process, async, instructions, fleet-cost or all"
        )),
    }
}

fn header(section: &mut String, marks: (&str, &str), title: &str, command: &str) {
    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let _ = writeln!(section, "{}", marks.0);
    let _ = writeln!(section, "## {title}\n");
    let _ = writeln!(section, "- Command: `{command}`");
    let _ = writeln!(section, "- Date: {date}");
    let _ = writeln!(section, "- Machine: {}", machine());
}

/// Replaces the section between `marks` in docs/benchmarks.md (or appends it).
fn write_section(marks: (&str, &str), section: &str) -> Result {
    let (begin_mark, end_mark) = marks;
    let path = root().join("docs/benchmarks.md");
    let existing = fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nFigures measured on this project's machines with the commands given; only \
         ratios between benches of the same run are meaningful.\n\n"
            .to_owned()
    });
    let updated = match (existing.find(begin_mark), existing.find(end_mark)) {
        (Some(begin), Some(end)) if begin < end => format!(
            "{}{}{}",
            &existing[..begin],
            section.trim_end(),
            &existing[end + end_mark.len()..]
        ),
        _ => format!("{}\n\n{section}", existing.trim_end()),
    };
    fs::write(&path, updated)
        .map_err(|err| format!("could not write {}: {err}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    print!("{section}");
    Ok(())
}

fn memory() -> Result {
    run_bench("breaker-store-memory", "hot_path")?;
    let one_atomic = median_ns("one_thread", "atomic_fetch_add")?;
    let one_memory = median_ns("one_thread", "memory_store")?;
    let one_failsafe = median_ns("one_thread", "failsafe")?;
    // Two-thread iterations make one call on each thread: two calls per iteration.
    let two_atomic = median_ns("two_threads", "atomic_fetch_add")?;
    let two_memory = median_ns("two_threads", "memory_store")?;
    let two_failsafe = median_ns("two_threads", "failsafe")?;

    let per_s = |ns_per_iter: f64, calls: f64| calls * 1e9 / ns_per_iter;
    let one_thread_ratio = one_memory / one_atomic;
    let scaling = per_s(two_memory, 2.0) / per_s(one_memory, 1.0);
    let vs_failsafe_two = per_s(two_memory, 2.0) / per_s(two_failsafe, 2.0);
    let vs_failsafe_one = one_failsafe / one_memory;

    let mut section = String::new();
    header(
        &mut section,
        MEMORY,
        "Memory store: permit + record on the success path",
        "cargo xtask bench memory",
    );
    let _ = writeln!(
        section,
        "- What runs: one closed breaker (default policy), `acquire_at(now)` then `record_at(now, Success.into())` (a `Report` of a success), \
         `now` passed in and crossing a bucket every 4096 calls; beside it in the same run, \
         `AtomicU64::fetch_add` and the `failsafe` crate's default breaker (`call(|| Ok(()))`).\n"
    );
    let _ = writeln!(section, "| bench | median per call | calls/s (aggregate) |");
    let _ = writeln!(section, "|---|---|---|");
    for (name, ns, calls) in [
        ("1 thread: atomic fetch_add", one_atomic, 1.0),
        ("1 thread: memory store", one_memory, 1.0),
        ("1 thread: failsafe", one_failsafe, 1.0),
        (
            "2 threads, one shared counter: atomic fetch_add",
            two_atomic,
            2.0,
        ),
        ("2 threads, one breaker: memory store", two_memory, 2.0),
        ("2 threads, one breaker: failsafe", two_failsafe, 2.0),
    ] {
        let _ = writeln!(
            section,
            "| {name} | {:.2} ns | {:.1} M |",
            ns / calls,
            per_s(ns, calls) / 1e6
        );
    }
    let _ = writeln!(section, "\n| bar | ratio | result |");
    let _ = writeln!(section, "|---|---|---|");
    let _ = writeln!(
        section,
        "| 1 thread within 2x an uncontended atomic increment | memory / atomic = {one_thread_ratio:.2}x time | {} |",
        verdict(one_thread_ratio <= 2.0)
    );
    let _ = writeln!(
        section,
        "| 2 threads' aggregate calls/s no lower than 1 thread's | 2 threads / 1 thread = {scaling:.2}x | {} |",
        verdict(scaling >= 1.0)
    );
    let _ = writeln!(
        section,
        "| 2 threads at least 3x failsafe under the same contention | memory / failsafe = {vs_failsafe_two:.1}x calls/s | {} |",
        verdict(vs_failsafe_two >= 3.0)
    );
    let _ = writeln!(
        section,
        "| (no bar) 1 thread against failsafe | memory / failsafe = {vs_failsafe_one:.1}x calls/s | - |"
    );
    let _ = writeln!(
        section,
        "| no heap allocation on the success path | checked by `crates/breaker-store-memory/tests/no_alloc.rs` (a counting allocator) on every `cargo xtask test` | met |"
    );
    let _ = writeln!(section, "{}", MEMORY.1);
    write_section(MEMORY, &section)
}

/// The `key=value` lines a bench wrote into `target/breaker-bench/<file>`.
struct Figures {
    file: String,
    values: std::collections::HashMap<String, String>,
}

impl Figures {
    fn read(file: &str) -> Result<Figures> {
        let path = root().join("target/breaker-bench").join(file);
        let text = fs::read_to_string(&path)
            .map_err(|err| format!("no bench figures at {}: {err}", path.display()))?;
        let values = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        Ok(Figures {
            file: file.to_owned(),
            values,
        })
    }

    fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    fn text(&self, key: &str) -> Result<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("{} has no {key}", self.file))
    }

    fn number(&self, key: &str) -> Result<f64> {
        self.text(key)?
            .parse()
            .map_err(|err| format!("{}: {key}: {err}", self.file))
    }

    /// A figure the run may not have reached ("none"): `None`.
    fn optional(&self, key: &str) -> Result<Option<f64>> {
        match self.text(key)? {
            "none" => Ok(None),
            _ => self.number(key).map(Some),
        }
    }
}

fn redis() -> Result {
    run_bench("breaker-store-redis", "redis")?;
    let figures = Figures::read("redis.txt")?;
    let mut section = String::new();
    header(
        &mut section,
        REDIS,
        "Redis store",
        "cargo xtask bench redis",
    );
    let _ = writeln!(
        section,
        "- What runs: a throwaway `redis-server` (Redis 7, loopback) started by the bench; one \
         breaker that never trips (every call takes the closed path), window 10 min; the async \
         store (`AsyncRedisStore`) with the default `max_staleness` of 1 s.\n"
    );
    let _ = writeln!(
        section,
        "### Round trips and commands per call (closed path, 10 000 calls, `INFO commandstats`)\n"
    );
    let _ = writeln!(
        section,
        "| layout | round trips per call | commands Redis ran per call |"
    );
    let _ = writeln!(section, "|---|---|---|");
    let trips = figures.number("store_round_trips_per_call")?;
    let _ = writeln!(
        section,
        "| this store (one `EVALSHA`) | {trips:.2} | {:.2} ({}) |",
        figures.number("store_commands_per_call")?,
        figures.text("store_commands_detail")?
    );
    let _ = writeln!(
        section,
        "| original library's layout (GET, pipeline ZREMRANGEBYSCORE + ZADD + ZCARD, SET) | 3 | {:.2} |",
        figures.number("sorted_set_commands_per_call")?
    );
    let _ = writeln!(
        section,
        "\nBar: at most 1 round trip per call in steady state: {} ({trips:.2}). Commands run inside \
         the script are not round trips: the caller waits for one reply.\n",
        verdict(trips <= 1.0)
    );
    let _ = writeln!(
        section,
        "### Memory of one breaker (`MEMORY USAGE ... SAMPLES 0`)\n"
    );
    let _ = writeln!(
        section,
        "| calls in one window | this store | sorted set, one member per call |"
    );
    let _ = writeln!(section, "|---|---|---|");
    for n in ["1000", "1000000"] {
        let _ = writeln!(
            section,
            "| {n} | {} bytes | {} bytes |",
            figures.text(&format!("store_memory_{n}"))?,
            figures.text(&format!("sorted_set_memory_{n}"))?
        );
    }
    let small = figures.number("store_memory_1000")?;
    let large = figures.number("store_memory_1000000")?;
    let _ = writeln!(
        section,
        "\nBar: the same after 1e3 and 1e6 calls: {} ({small} vs {large} bytes; the 1e6 calls took {} s \
         through the store at concurrency 64, with injected time spreading both runs over the whole \
         window so every bucket is in use).\n",
        verdict(small == large),
        figures.text("store_seconds_1000000")?
    );
    let _ = writeln!(section, "### Calls per second (criterion, median)\n");
    let _ = writeln!(
        section,
        "| concurrency | this store (acquire + record) | the same script, bare through redis-rs | ratio | this store, batched every 5 ms | batched / unbatched |"
    );
    let _ = writeln!(section, "|---|---|---|---|---|---|");
    let mut worst: f64 = f64::INFINITY;
    for concurrency in ["1", "64"] {
        let store = median_ns("redis_throughput", &format!("store_{concurrency}"))?;
        let bare = median_ns("redis_throughput", &format!("bare_script_{concurrency}"))?;
        let batched = median_ns("redis_throughput", &format!("store_batched_{concurrency}"))?;
        let ratio = bare / store;
        worst = worst.min(ratio);
        let _ = writeln!(
            section,
            "| {concurrency} | {:.0} calls/s | {:.0} calls/s | {:.0} % | {:.0} calls/s | {:.1}x |",
            1e9 / store,
            1e9 / bare,
            ratio * 100.0,
            1e9 / batched,
            store / batched
        );
    }
    let _ = writeln!(
        section,
        "\nBar: at least 80 % of the bare script at the same concurrency: {}.",
        verdict(worst >= 0.8)
    );
    let _ = writeln!(section, "{}", REDIS.1);
    write_section(REDIS, &section)
}

fn adapters() -> Result {
    run_bench("breaker-reqwest", "latency")?;
    run_bench("breaker-ureq", "latency")?;
    run_bench("breaker-tower", "latency")?;
    let mut section = String::new();
    header(
        &mut section,
        ADAPTERS,
        "HTTP adapters: latency added per call",
        "cargo xtask bench adapters",
    );
    let _ = writeln!(
        section,
        "- What runs: GET of a 2-byte body from a keep-alive HTTP/1.1 server on 127.0.0.1 started \
         by the bench; the bare client, the client with a breaker on the memory store, and the \
         client with a breaker on the Redis store (a throwaway `redis-server`, default \
         `max_staleness`), called in turn, in a shuffled order each round (20 000 rounds after \
         2 000 to warm up), so that the machine's noise falls on all variants alike. All three share one \
         connection (reqwest: one client under the three; ureq: one agent, breakers mounted on \
         `/memory` and `/redis`, `/bare` passing through both middlewares; tower: clones of one \
         hyper-util legacy client, which share its pool, bare and under the layer with each \
         store, each call through a clone of its service as `oneshot` takes it).\n"
    );
    let _ = writeln!(
        section,
        "| client | p50 | p99 | added p50 | added p99 | Redis round trips per call |"
    );
    let _ = writeln!(section, "|---|---|---|---|---|---|");
    let mut bars = Vec::new();
    for adapter in ["reqwest", "ureq", "tower"] {
        let figures = Figures::read(&format!("{adapter}.txt"))?;
        let (bare50, bare99) = (
            figures.number("bare_p50_ns")?,
            figures.number("bare_p99_ns")?,
        );
        let trips = figures.number("redis_round_trips_per_call")?;
        let mut rows: Vec<(&str, &str)> = vec![("bare", "bare")];
        if figures.has("framework_p50_ns") {
            rows.push(("framework", "reqwest-middleware with no middleware"));
        }
        rows.extend([("memory", "memory store"), ("redis", "Redis store")]);
        if figures.has("redis_batched_p50_ns") {
            rows.push(("redis_batched", "Redis store, batched every 5 ms"));
        }
        for (store, label) in rows {
            let (p50, p99) = (
                figures.number(&format!("{store}_p50_ns"))?,
                figures.number(&format!("{store}_p99_ns"))?,
            );
            let added = |value: f64, base: f64| {
                if store == "bare" {
                    "-".to_owned()
                } else {
                    format!(
                        "{:+.1} µs ({:+.1} %)",
                        (value - base) / 1e3,
                        (value - base) / base * 100.0
                    )
                }
            };
            let trips = if store == "redis" {
                format!("{trips:.2}")
            } else {
                "-".to_owned()
            };
            let _ = writeln!(
                section,
                "| {adapter}, {label} | {:.1} µs | {:.1} µs | {} | {} | {trips} |",
                p50 / 1e3,
                p99 / 1e3,
                added(p50, bare50),
                added(p99, bare99)
            );
        }
        let memory_added = (figures.number("memory_p50_ns")? - bare50) / bare50;
        bars.push(format!(
            "{adapter}, memory store: added p50 under 2 % of the bare p50: {} ({:+.1} %)",
            verdict(memory_added < 0.02),
            memory_added * 100.0
        ));
        bars.push(format!(
            "{adapter}, Redis store: at most one Redis round trip added per call: {} ({trips:.2})",
            verdict(trips <= 1.0)
        ));
    }
    let _ = writeln!(section);
    for bar in bars {
        let _ = writeln!(section, "- Bar: {bar}");
    }
    let _ = writeln!(section, "{}", ADAPTERS.1);
    write_section(ADAPTERS, &section)
}

fn recovery() -> Result {
    run_bench_with("breaker-cli", "recovery", &["recovery"])?;
    let figures = Figures::read("recovery.txt")?;
    let share =
        |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{:.0} %", v * 100.0));
    let seconds = |value: Option<f64>| {
        value.map_or("not within the run".to_owned(), |ms| {
            format!("{:.1} s", ms / 1000.0)
        })
    };
    let load = figures.number("offered_load")?;
    let probes = figures.number("probes")?;
    let mut section = String::new();
    header(
        &mut section,
        RECOVERY,
        "Recovery after an outage: with and without `ramp_up`",
        "cargo xtask bench recovery",
    );
    let _ = writeln!(
        section,
        "- What runs: {} `breaker run` processes (Redis store, one shared breaker, a throwaway \
         `redis-server` on loopback) each start {:.0} GETs a second, L = {load:.0} requests a \
         second in all, against the test kit's HTTP server on 127.0.0.1. The backend serves up \
         to {} requests in any one second when warm; {} s after the fleet starts it goes down \
         (503 to everything), {} s after the start it comes back cold, at {:.0} % of its \
         capacity, growing in a straight line to all of it over {} s, and answers 503 beyond \
         it. Each process runs {} s. Policy: `{}`; the second run adds `--ramp-up {}`. The \
         bench reads the backend's counters every 10 ms and the breaker's history from Redis \
         afterwards (both on this machine's clock).",
        figures.text("processes")?,
        load / figures.number("processes")?,
        figures.text("capacity")?,
        figures.text("down_at_s")?,
        figures.text("up_at_s")?,
        figures.number("cold_share")? * 100.0,
        figures.text("warm_up_s")?,
        figures.text("run_s")?,
        figures.text("policy")?,
        figures.text("ramp_up")?
    );
    let _ = writeln!(
        section,
        "- Figures: re-trips are trips after the first close that follows the backend's \
         return; the first second after that close is the rate of requests the backend \
         received, over the whole second and at its highest fifth (200 ms), as a share of the L \
         measured before the outage; full traffic flows from the first moment after which every \
         500 ms the backend serves at least {:.0} % of L until the processes stop.\n",
        figures.number("full_share")? * 100.0
    );
    let _ = writeln!(
        section,
        "| run | measured L | trips during the outage | first close after the return | re-trips after it | first second after the close: mean / peak | full traffic after the return | refused for capacity after the return | calls the breakers rejected |"
    );
    let _ = writeln!(section, "|---|---|---|---|---|---|---|---|---|");
    for (key, label) in [
        ("off", "without `ramp_up`".to_owned()),
        (
            "ramp",
            format!("with `ramp_up` {}", figures.text("ramp_up")?),
        ),
    ] {
        let _ = writeln!(
            section,
            "| {label} | {:.0}/s | {} | {} after | {} | {} / {} | {} | {} | {} |",
            figures.number(&format!("{key}_load"))?,
            figures.text(&format!("{key}_trips_in_outage"))?,
            seconds(figures.optional(&format!("{key}_close_after_up_ms"))?),
            figures.text(&format!("{key}_retrips"))?,
            share(figures.optional(&format!("{key}_first_second"))?),
            share(figures.optional(&format!("{key}_first_second_peak"))?),
            seconds(figures.optional(&format!("{key}_full_after_up_ms"))?),
            figures.text(&format!("{key}_over_capacity"))?,
            figures.text(&format!("{key}_rejected"))?,
        );
    }
    let (off_retrips, ramp_retrips) = (
        figures.number("off_retrips")?,
        figures.number("ramp_retrips")?,
    );
    let flaps = if off_retrips > 0.0 {
        format!(
            "{} ({ramp_retrips:.0} re-trips with it, {off_retrips:.0} without)",
            verdict(ramp_retrips == 0.0)
        )
    } else {
        format!(
            "not shown: the run without `ramp_up` did not flap ({ramp_retrips:.0} re-trips with it)"
        )
    };
    let _ = writeln!(
        section,
        "\n- Bar: with `ramp_up`, zero re-trips where the run without it flaps: {flaps}."
    );
    let bar = 0.10 + probes / load;
    let peak = figures.optional("ramp_first_second_peak")?;
    let ramp_seconds = figures
        .text("ramp_up")?
        .trim_end_matches('s')
        .parse::<f64>()
        .map_err(|err| format!("ramp_up: {err}"))?;
    let reason = if peak.is_some_and(|peak| peak <= bar) {
        String::new()
    } else {
        format!(
            "; the ramp grows in a straight line from 10 % at the close, so by its definition it \
             admits 10 % + 90 % x 1 s / {ramp_seconds} s = {:.0} % of the load one second after \
             the close: a bar of 10 % over the whole first second needs a ramp that holds its \
             starting share for that second",
            (0.1 + 0.9 / ramp_seconds) * 100.0
        )
    };
    let _ = writeln!(
        section,
        "- Bar: with `ramp_up`, the first second's peak at or below the starting share (10 %) of \
         L plus the probes ({} a second, so {:.1} % of L): {} (peak {}, mean {}){reason}.",
        probes,
        bar * 100.0,
        verdict(peak.is_some_and(|peak| peak <= bar)),
        share(peak),
        share(figures.optional("ramp_first_second")?)
    );
    let _ = writeln!(
        section,
        "- Time until full traffic flows (no bar): {} without `ramp_up`, {} with it.",
        seconds(figures.optional("off_full_after_up_ms")?),
        seconds(figures.optional("ramp_full_after_up_ms")?)
    );
    let _ = writeln!(section, "{}", RECOVERY.1);
    write_section(RECOVERY, &section)
}

fn quorum() -> Result {
    run_bench_with("breaker-cli", "recovery", &["quorum"])?;
    let figures = Figures::read("quorum.txt")?;
    let quorum = figures.text("quorum")?;
    let mut section = String::new();
    header(
        &mut section,
        QUORUM,
        "A quorum of reporters: one process failing alone, then all",
        "cargo xtask bench quorum",
    );
    let _ = writeln!(
        section,
        "- What runs: {} `breaker run` processes (Redis store, one shared breaker, a throwaway \
         `redis-server` on loopback), {:.0} GETs a second in all, each process to a path of \
         its own on the test kit's HTTP server (127.0.0.1). From {} s to {} s after the start \
         the server answers 500 to the first process's path alone; from {} s to the end ({} \
         s) it answers 503 to everyone. Policy: `{}` (one process's failures, an eighth of the \
         calls, are above the failure rate), once with `--minimum-reporters 1` and once with \
         `--minimum-reporters {quorum}`. Opens are the trips in the breaker's history in Redis.\n",
        figures.text("processes")?,
        figures.number("offered_load")?,
        figures.text("lone_from_s")?,
        figures.text("lone_to_s")?,
        figures.text("all_from_s")?,
        figures.text("run_s")?,
        figures.text("policy")?
    );
    let _ = writeln!(
        section,
        "| minimum_reporters | fleet opens while one process fails alone | the lone process's requests that reached the backend then | closed when all began to fail | fleet open after all fail |"
    );
    let _ = writeln!(section, "|---|---|---|---|---|");
    for reporters in ["1", quorum] {
        let open = figures
            .optional(&format!("q{reporters}_open_after_ms"))?
            .map_or("never".to_owned(), |ms| format!("{ms:.0} ms"));
        let _ = writeln!(
            section,
            "| {reporters} | {} | {} | {} | {open} |",
            figures.text(&format!("q{reporters}_false_opens"))?,
            figures.text(&format!("q{reporters}_lone_sent"))?,
            if figures.text(&format!("q{reporters}_closed_before_all"))? == "true" {
                "yes"
            } else {
                "no"
            },
        );
    }
    let false_opens = figures.number(&format!("q{quorum}_false_opens"))?;
    let _ = writeln!(
        section,
        "\n- Bar: no false fleet open while one process fails alone, with `minimum_reporters` \
         {quorum}: {} ({false_opens:.0}; with 1: {}).",
        verdict(false_opens == 0.0),
        figures.text("q1_false_opens")?
    );
    let (window_ms, step_ms) = (figures.number("window_ms")?, figures.number("step_ms")?);
    let (alone, with_quorum) = (
        figures.optional("q1_open_after_ms")?,
        figures.optional(&format!("q{quorum}_open_after_ms"))?,
    );
    let same_speed = match (alone, with_quorum) {
        (Some(alone), Some(with_quorum)) => {
            with_quorum <= 2.0 * window_ms && with_quorum <= alone + step_ms
        }
        _ => false,
    };
    let shown = |value: Option<f64>| value.map_or("never".to_owned(), |ms| format!("{ms:.0} ms"));
    let _ = writeln!(
        section,
        "- Bar: once every process fails, the fleet opens within two windows and as fast as \
         with `minimum_reporters` 1 (taken as: no later than one bucket step, {step_ms:.0} ms, \
         after it): {} ({} against {}).",
        verdict(same_speed),
        shown(with_quorum),
        shown(alone)
    );
    let _ = writeln!(section, "{}", QUORUM.1);
    write_section(QUORUM, &section)
}

const DASHBOARD: (&str, &str) = (
    "<!-- dashboard:begin (written by cargo xtask bench dashboard) -->",
    "<!-- dashboard:end -->",
);

/// The goals of SPEC section 9: `/api/breakers` for 500 and for 5,000 breakers (<= 20 ms and
/// <= 100 ms).
const DASHBOARD_GOALS: [(usize, f64); 2] = [(500, 20.0), (5_000, 100.0)];

fn dashboard() -> Result {
    run_bench("breaker-dashboard", "listing")?;
    let figures = Figures::read("dashboard.txt")?;
    let mut section = String::new();
    header(
        &mut section,
        DASHBOARD,
        "Dashboard: `GET /api/breakers` at fleet scale",
        "cargo xtask bench dashboard",
    );
    let _ = writeln!(
        section,
        "- What runs: a throwaway `redis-server` (Redis 7, loopback) filled with 500, then \
         5,000 breakers (default policy, one to three calls each in the window); the \
         dashboard's router over `RedisBreakers`, served on a loopback port in the bench's \
         process (tokio, 2 worker threads), asked by reqwest one request at a time: {} \
         warm-up requests, then {} timed ones, each reading the store (a dashboard made with \
         `refresh(Duration::ZERO)`). A listing runs no script: plain reads of each \
         breaker's policies and state, and its window's buckets only up to `WINDOWS_UP_TO` \
         (60) breakers, and reusing the policies an earlier listing read within 10 s, as the \
         dashboard asks (so 500 and 5,000 are listed without windows, a breaker's window is \
         read in its detail view, and after the first listing each breaker costs one \
         command). Round trips: `Listing::round_trips` of one such listing.\n",
        3,
        figures.text("rounds")?
    );
    let _ = writeln!(
        section,
        "| breakers | median | slowest | answer size | Redis round trips per listing | `list_many` alone (median) | goal | met |"
    );
    let _ = writeln!(section, "|---|---|---|---|---|---|---|---|");
    for (breakers, goal_ms) in DASHBOARD_GOALS {
        let median = figures.number(&format!("breakers_{breakers}_median_ms"))?;
        let met = median <= goal_ms;
        let _ = writeln!(
            section,
            "| {breakers} | {median:.1} ms | {:.1} ms | {:.0} KiB | {} | {:.1} ms | <= {goal_ms:.0} ms | {} |",
            figures.number(&format!("breakers_{breakers}_slowest_ms"))?,
            figures.number(&format!("breakers_{breakers}_bytes"))? / 1024.0,
            figures.text(&format!("breakers_{breakers}_round_trips"))?,
            figures.number(&format!("breakers_{breakers}_list_many_ms"))?,
            verdict(met),
        );
    }
    let _ = writeln!(
        section,
        "\nWhat it costs Redis (`INFO cpu` before and after, user and system): per listing as \
         the dashboard asks, read straight from the store, and Redis's share of one core \
         while one page, then ten, poll a dashboard served as `breaker dashboard` serves it \
         (one read of the store per refresh of 1 s, shared by every page) once a second as \
         the page does (pages opened at moments spread over a second, 6 s each).\n"
    );
    let _ = writeln!(
        section,
        "| breakers | Redis CPU per listing | one viewer | ten viewers | ten against one | goal | met |"
    );
    let _ = writeln!(section, "|---|---|---|---|---|---|---|");
    for (breakers, _) in DASHBOARD_GOALS {
        let one = figures.number(&format!("breakers_{breakers}_one_viewer_cpu_pct"))?;
        let ten = figures.number(&format!("breakers_{breakers}_ten_viewers_cpu_pct"))?;
        let ratio = ten / one.max(0.01);
        // SPEC section 9: one viewer of 5,000 breakers at most 2 % of a core, ten at most
        // twice one.
        let (goal, met) = if breakers == 5_000 {
            ("one <= 2 %, ten <= 2x one", one <= 2.0 && ratio <= 2.0)
        } else {
            ("ten <= 2x one", ratio <= 2.0)
        };
        let _ = writeln!(
            section,
            "| {breakers} | {:.2} ms | {one:.1} % | {ten:.1} % | {ratio:.2}x | {goal} | {} |",
            figures.number(&format!("breakers_{breakers}_redis_cpu_per_listing_ms"))?,
            verdict(met),
        );
    }
    let _ = writeln!(section, "{}", DASHBOARD.1);
    write_section(DASHBOARD, &section)
}

fn in_process() -> Result {
    run_bench("breaker-tower", "peers")?;
    let figures = Figures::read("in_process.txt")?;
    let mut section = String::new();
    header(
        &mut section,
        IN_PROCESS,
        "In process: the time each adapter adds, against `tower-resilience-circuitbreaker`",
        "cargo xtask bench in-process",
    );
    let _ = writeln!(
        section,
        "- What runs (`crates/breaker-tower/benches/peers.rs`): one process, one thread, no \
         network. tower: a no-op `service_fn` answering at once, bare, under this project's \
         layer with a memory-store breaker mounted on its URL, and under \
         `tower-resilience-circuitbreaker` 0.14's `standard()` layer, each call through a \
         clone as `oneshot` takes it. reqwest and ureq: a client whose last middleware \
         answers at once, bare and with this project's middleware (a memory-store breaker); \
         for reqwest also with a middleware that only calls the next one, which is what \
         reqwest-middleware costs per middleware. A sample is 200 calls; the variants' \
         samples run interleaved in a shuffled order, 2 000 rounds after 200 to warm up; \
         figures are medians per call.\n"
    );
    let _ = writeln!(section, "| client | per call | added by the breaker |");
    let _ = writeln!(section, "|---|---|---|");
    let theirs = figures.number("tower_resilience_ns")? - figures.number("tower_bare_ns")?;
    let rows = [
        ("tower, bare", "tower_bare_ns", None),
        (
            "tower, this project's layer",
            "tower_ours_ns",
            Some("tower_bare_ns"),
        ),
        (
            "tower, `tower-resilience-circuitbreaker`",
            "tower_resilience_ns",
            Some("tower_bare_ns"),
        ),
        ("reqwest, bare", "reqwest_bare_ns", None),
        (
            "reqwest, a pass-through middleware",
            "reqwest_pass_through_ns",
            Some("reqwest_bare_ns"),
        ),
        (
            "reqwest, this project's middleware",
            "reqwest_ours_ns",
            Some("reqwest_bare_ns"),
        ),
        ("ureq, bare", "ureq_bare_ns", None),
        (
            "ureq, this project's middleware",
            "ureq_ours_ns",
            Some("ureq_bare_ns"),
        ),
    ];
    for (label, key, base) in rows {
        let added = match base {
            Some(base) => format!("{:+.0} ns", figures.number(key)? - figures.number(base)?),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            section,
            "| {label} | {:.0} ns | {added} |",
            figures.number(key)?
        );
    }
    let _ = writeln!(section);
    let tower = figures.number("tower_ours_ns")? - figures.number("tower_bare_ns")?;
    let reqwest = figures.number("reqwest_ours_ns")? - figures.number("reqwest_bare_ns")?;
    let framework =
        figures.number("reqwest_pass_through_ns")? - figures.number("reqwest_bare_ns")?;
    let ureq = figures.number("ureq_ours_ns")? - figures.number("ureq_bare_ns")?;
    for (adapter, added) in [
        ("tower layer", tower),
        ("reqwest middleware", reqwest),
        ("ureq middleware", ureq),
    ] {
        let _ = writeln!(
            section,
            "- Bar: the {adapter} adds at most what `tower-resilience-circuitbreaker`'s layer \
             adds ({theirs:.0} ns): {} ({added:.0} ns, {:.2}x)",
            verdict(added <= theirs),
            added / theirs
        );
    }
    let _ = writeln!(
        section,
        "- reqwest-middleware itself costs {framework:.0} ns per middleware (the pass-through \
         row): this project's middleware less that is {:.0} ns.",
        reqwest - framework
    );
    let _ = writeln!(section, "{}", IN_PROCESS.1);
    write_section(IN_PROCESS, &section)
}

fn async_path() -> Result {
    run_bench("breaker-store-redis", "async_path")?;
    let figures = Figures::read("async_path.txt")?;
    let mut section = String::new();
    header(
        &mut section,
        ASYNC_PATH,
        "Redis: the async path against the blocking one",
        "cargo xtask bench async",
    );
    let _ = writeln!(
        section,
        "- What runs (`crates/breaker-store-redis/benches/async_path.rs`): one throwaway \
         `redis-server` on loopback; a call is `acquire` then `record` of a success on a closed \
         breaker, unbatched (one round trip: the permit comes from the cache), through the \
         blocking store and through the async store, and bare redis-rs calls of one \
         `HINCRBY` on each kind of connection the stores use. Async calls are made from the \
         bench's thread with `block_on`: on a multi-thread runtime with one worker, which runs \
         the connection's task (as the adapters' latency benches do), and on a current-thread \
         runtime, where the connection's task runs on the caller's thread. Variants run \
         interleaved, 20 000 rounds after 2 000 to warm up.\n"
    );
    let _ = writeln!(section, "| variant | p50 | p99 |");
    let _ = writeln!(section, "|---|---|---|");
    let rows = [
        (
            "blocking store (r2d2 pool of plain connections)",
            "blocking_store",
        ),
        ("async store, multi-thread runtime", "async_store"),
        (
            "async store, current-thread runtime",
            "async_store_current_thread",
        ),
        ("bare redis-rs: plain connection", "bare_plain"),
        (
            "bare redis-rs: multiplexed connection, multi-thread runtime",
            "bare_multiplexed",
        ),
        (
            "bare redis-rs: connection manager, multi-thread runtime",
            "bare_manager",
        ),
        (
            "bare redis-rs: multiplexed connection, current-thread runtime",
            "bare_multiplexed_current_thread",
        ),
    ];
    for (label, key) in rows {
        let _ = writeln!(
            section,
            "| {label} | {:.1} µs | {:.1} µs |",
            figures.number(&format!("{key}_p50_ns"))? / 1e3,
            figures.number(&format!("{key}_p99_ns"))? / 1e3
        );
    }
    let p50 = |key: &str| figures.number(&format!("{key}_p50_ns"));
    let blocking = p50("blocking_store")?;
    let gap = p50("async_store")? - blocking;
    let redis_rs = p50("bare_manager")? - p50("bare_plain")?;
    let _ = writeln!(section);
    for (runtime, key) in [
        ("multi-thread runtime", "async_store"),
        ("current-thread runtime", "async_store_current_thread"),
    ] {
        let ratio = p50(key)? / blocking;
        let _ = writeln!(
            section,
            "- Bar: the async store's p50 within 1.25x the blocking store's, {runtime}: {} \
             ({ratio:.2}x)",
            verdict(ratio <= 1.25)
        );
    }
    let _ = writeln!(
        section,
        "- Where the multi-thread gap goes ({:.1} µs at p50): redis-rs's async connection \
         itself, bare, costs {:.1} µs more than its plain connection for the same command (the \
         request goes through a channel to the connection's task and the reply back, each a \
         wake-up of another thread); the rest, {:.1} µs, is this store's own async steps (its \
         timeout, the connection manager's handle, the operation's steps).",
        gap / 1e3,
        redis_rs / 1e3,
        (gap - redis_rs) / 1e3
    );
    let _ = writeln!(section, "{}", ASYNC_PATH.1);
    write_section(ASYNC_PATH, &section)
}

fn instructions() -> Result {
    run_bench("breaker-store-redis", "instructions")?;
    run_bench("breaker-store-redis", "redis_cost")?;
    let count = Figures::read("instructions.txt")?;
    let cpu = Figures::read("redis_cost.txt")?;
    let table_path = root().join("target/breaker-bench/redis_cost_table.txt");
    let cost_table = fs::read_to_string(&table_path)
        .map_err(|err| format!("no Redis cost table at {}: {err}", table_path.display()))?;
    let mut section = String::new();
    header(
        &mut section,
        INSTRUCTIONS,
        "Redis: instructions and CPU per call of the script",
        "cargo xtask bench instructions",
    );
    let _ = writeln!(
        section,
        "- What runs: `crates/breaker-store-redis/benches/instructions.rs`: a `redis-server` \
         of its own under `valgrind --tool=callgrind` (deterministic: the count does not \
         depend on the machine's load), counters zeroed and dumped around 1 000 calls made \
         one at a time after 200 to warm up, the time injected so every call lands in one \
         bucket, arguments laid out by the store's own `src/script/argv.rs`; then \
         `crates/breaker-store-redis/benches/redis_cost.rs`: 32 concurrent callers, Redis CPU \
         per call from `INFO cpu` before and after. \"Before\" is the script before its \
         packed layout, measured with the same steps the same day (constants in \
         `xtask/src/bench.rs`).\n"
    );
    let _ = writeln!(
        section,
        "| instructions per call | 10 buckets | 60 buckets | 1000 buckets |"
    );
    let _ = writeln!(section, "|---|---|---|---|");
    let row = |label: &str, values: [u64; 3]| {
        format!(
            "| {label} | {} | {} | {} |",
            values[0], values[1], values[2]
        )
    };
    let before = |pick: fn(&(u32, u64, u64)) -> u64| {
        [
            pick(&INSTRUCTIONS_BEFORE[0]),
            pick(&INSTRUCTIONS_BEFORE[1]),
            pick(&INSTRUCTIONS_BEFORE[2]),
        ]
    };
    let now = |name: &str| -> Result<[u64; 3]> {
        Ok([
            count.number(&format!("{name}_10"))? as u64,
            count.number(&format!("{name}_60"))? as u64,
            count.number(&format!("{name}_1000"))? as u64,
        ])
    };
    let (success, failure) = (now("success")?, now("failure")?);
    let _ = writeln!(section, "{}", row("a success, before", before(|b| b.1)));
    let _ = writeln!(section, "{}", row("a success, now", success));
    let _ = writeln!(
        section,
        "{}",
        row("a failure that does not trip, before", before(|b| b.2))
    );
    let _ = writeln!(
        section,
        "{}",
        row("a failure that does not trip, now", failure)
    );
    let _ = writeln!(
        section,
        "| for scale: `EVALSHA` of `return 1` / a bare `HINCRBY` | {:.0} / {:.0} | | |",
        count.number("evalsha_return_1")?,
        count.number("hincrby")?
    );
    let _ = writeln!(section);
    let _ = writeln!(section, "{}", cost_table.trim_end());
    let _ = writeln!(section);
    let worst_success = success.iter().copied().max().unwrap_or(u64::MAX);
    let worst_failure = failure.iter().copied().max().unwrap_or(u64::MAX);
    let _ = writeln!(
        section,
        "- Bar: a success at most 60 000 instructions: {} ({worst_success} at most)",
        verdict(worst_success <= 60_000)
    );
    let _ = writeln!(
        section,
        "- Bar: a failure that does not trip at most 150 000 instructions: {} ({worst_failure} \
         at most)",
        verdict(worst_failure <= 150_000)
    );
    let store_cpu = cpu.number("cpu_us_2")?;
    let _ = writeln!(
        section,
        "- Bar: Redis CPU per call at 32 callers at most 10 µs (this store, 60 buckets): {} \
         ({store_cpu:.1} µs; a bare `HINCRBY` {:.1} µs in the same run)",
        verdict(store_cpu <= 10.0),
        cpu.number("cpu_us_0")?
    );
    let _ = writeln!(
        section,
        "- Memory of one breaker (`MEMORY USAGE`, default policy, every bucket written): {:.0} \
         bytes, and {:.0} bytes 1 000 calls later (the `redis` bench measured 1 864 bytes before the \
         packed layout): \
         flat: {}",
        count.number("memory_all_buckets")?,
        count.number("memory_1000_calls_later")?,
        verdict(count.number("memory_all_buckets")? == count.number("memory_1000_calls_later")?)
    );
    hostile_lines(&mut section, &count)?;
    let _ = writeln!(section, "{}", INSTRUCTIONS.1);
    write_section(INSTRUCTIONS, &section)
}

/// The instructions of calls that meet hostile stored bytes, from `count`.
fn hostile_lines(section: &mut String, count: &Figures) -> Result {
    let worst = |names: &[&str]| -> Result<u64> {
        let mut worst = 0;
        for name in names {
            for buckets in [60, 1000] {
                worst = worst.max(count.number(&format!("hostile_{name}_{buckets}"))? as u64);
            }
        }
        Ok(worst)
    };
    let longest = worst(&["pr_longest", "rp_longest"])?;
    let fields = worst(&["x_1mb", "pr_1mb", "rp_1mb", "bucket_1mb"])?;
    let state = worst(&["s_1mb"])?;
    let _ = writeln!(
        section,
        "- Hostile stored bytes (`hostile_values` in the bench: each value written again \
         before each of 5 calls, 60 and 1 000 buckets, counted around the call alone, the \
         costliest of a success, a failure and an `acquire`, which reads every field): the \
         longest `pr` and `rp` the script parses, every entry read and the last one garbage, \
         at most {longest} instructions; 1 MB in `x`, `pr`, `rp` or the bucket's counter at \
         most {fields}; 1 MB in `s` {state} (about {:.0} per byte: each read of a value \
         copies it into a Lua string, which Redis's Lua hashes byte by byte, and garbage in \
         `s` is read twice, by the closed path and then the general one). Each is paid once: \
         that call repairs the value.",
        state as f64 / f64::from(1u32 << 20)
    );
    let per_byte = (fields.max(state) as f64 - longest as f64) / f64::from(1u32 << 20);
    let _ = writeln!(
        section,
        "- Bar (the bound docs/redis.md states): a call that meets the longest lists at most \
         1 000 000 instructions, and one that meets a value of any size at most 60 more per \
         byte of it: {} ({longest}; {per_byte:.0} per byte)",
        verdict(longest <= 1_000_000 && per_byte <= 60.0)
    );
    Ok(())
}

fn fleet_cost() -> Result {
    run_bench("breaker-store-redis", "fleet_cost")?;
    let figures = Figures::read("fleet_cost.txt")?;
    let table_path = root().join("target/breaker-bench/fleet_cost_table.txt");
    let table = fs::read_to_string(&table_path)
        .map_err(|err| format!("no fleet cost table at {}: {err}", table_path.display()))?;
    let mut section = String::new();
    header(
        &mut section,
        FLEET_COST,
        "The fleet's cost to Redis",
        "cargo xtask bench fleet-cost",
    );
    let _ = writeln!(
        section,
        "- What runs: `crates/breaker-store-redis/benches/fleet_cost.rs` on a `redis-server` of \
         its own. 10, 100 and 1 000 simulated processes, each with an async store and a \
         connection of its own (pushed changes on), call one breaker at 10 000 calls a second \
         in all, each on its own beat; Redis CPU from `INFO cpu` and script calls from `INFO \
         commandstats` over 5 s after 4 s of warm-up. Then the backend fails every call: when \
         the first and the last process first reject (after the failures began), and the \
         calls that reached the failing backend before each process rejected. Policy: a 2 s \
         window in 20 buckets, 50 %, at least 20 failures (counted exactly, the rule is met \
         about 1 s after the failures begin). The load generator shares the machine's 2 cores \
         with Redis, so \"calls/s reached\" says what each fleet really sent.\n"
    );
    let _ = writeln!(section, "{}", table.trim_end());
    let _ = writeln!(section);
    let cpu = figures.number("batched_100_cpu")?;
    let _ = writeln!(
        section,
        "- Bar: 100 batched processes at 10 000 calls/s cost Redis at most 5 % of a core: {} \
         ({:.1} %; unbatched {:.1} %, the original layout {:.1} %, in the same run)",
        verdict(cpu <= 0.05),
        cpu * 100.0,
        figures.number("unbatched_100_cpu")? * 100.0,
        figures.number("original_100_cpu")? * 100.0,
    );
    let first = figures.optional("batched_100_first_ms")?;
    let last = figures.optional("batched_100_last_ms")?;
    let trip_met = matches!((first, last), (Some(first), Some(last)) if last <= 1_500.0 && last - first <= 200.0);
    let shown = |ms: Option<f64>| ms.map_or_else(|| "never".to_owned(), |ms| format!("{ms:.0} ms"));
    let _ = writeln!(
        section,
        "- Bar: when the backend fails, every one of the 100 batched processes rejects within \
         1.5 s, and the last within 200 ms of the first: {} (first {}, last {})",
        verdict(trip_met),
        shown(first),
        shown(last),
    );
    let (short, bare) = (
        figures.number("short_cpu_us")?,
        figures.number("bare_cpu_us")?,
    );
    let _ = writeln!(
        section,
        "- Short-lived processes, one after the other (each connects a store, makes one call, \
         flushes and reads the state, as `breaker run --requests 1` does): {short:.0} µs of \
         Redis CPU and {:.2} connections each, against {bare:.0} µs and {:.2} for a bare \
         connect, `PING` and quit: {:.1}x. Bar: at most 3x: {}. The requests such a process \
         sends are counted by `crates/breaker-cli/tests/short_lived.rs`.",
        figures.number("short_connections")?,
        figures.number("bare_connections")?,
        short / bare,
        verdict(short <= 3.0 * bare),
    );
    let _ = writeln!(section, "{}", FLEET_COST.1);
    write_section(FLEET_COST, &section)
}
