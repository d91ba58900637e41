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
    crate::run(cargo(&[
        "bench",
        "--package",
        package,
        "--bench",
        bench,
        "--locked",
    ]))
}

/// `cargo xtask bench [memory|redis|adapters|all]`.
pub(crate) fn run(args: &[String]) -> Result {
    match args.first().map(String::as_str).unwrap_or("all") {
        "memory" => memory(),
        "redis" => redis(),
        "adapters" => adapters(),
        "all" => memory().and_then(|()| redis()).and_then(|()| adapters()),
        other => Err(format!(
            "unknown bench {other:?}: use memory, redis, adapters or all"
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
        "- What runs: one closed breaker (default policy), `acquire_at(now)` then `record_at(now, Success)`, \
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

/// `key=value` lines written by a bench into `target/breaker-bench/<file>`.
fn figures(file: &str) -> Result<std::collections::HashMap<String, String>> {
    let path = root().join("target/breaker-bench").join(file);
    let text = fs::read_to_string(&path)
        .map_err(|err| format!("no Redis bench figures at {}: {err}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect())
}

fn redis() -> Result {
    run_bench("breaker-store-redis", "redis")?;
    let figures = figures("redis.txt")?;
    let get = |key: &str| -> Result<&str> {
        figures
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("the Redis bench wrote no {key}"))
    };
    let number =
        |key: &str| -> Result<f64> { get(key)?.parse().map_err(|err| format!("{key}: {err}")) };
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
         store (`RedisStore`) with the default `max_staleness` of 1 s.\n"
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
    let trips = number("store_round_trips_per_call")?;
    let _ = writeln!(
        section,
        "| this store (one `EVALSHA`) | {trips:.2} | {:.2} ({}) |",
        number("store_commands_per_call")?,
        get("store_commands_detail")?
    );
    let _ = writeln!(
        section,
        "| original library's layout (GET, pipeline ZREMRANGEBYSCORE + ZADD + ZCARD, SET) | 3 | {:.2} |",
        number("sorted_set_commands_per_call")?
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
            get(&format!("store_memory_{n}"))?,
            get(&format!("sorted_set_memory_{n}"))?
        );
    }
    let small = number("store_memory_1000")?;
    let large = number("store_memory_1000000")?;
    let _ = writeln!(
        section,
        "\nBar: the same after 1e3 and 1e6 calls: {} ({small} vs {large} bytes; the 1e6 calls took {} s \
         through the store at concurrency 64, with injected time spreading both runs over the whole \
         window so every bucket is in use).\n",
        verdict(small == large),
        get("store_seconds_1000000")?
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
        let figures = figures(&format!("{adapter}.txt"))?;
        let ns = |key: &str| -> Result<f64> {
            figures
                .get(key)
                .ok_or_else(|| format!("the {adapter} bench wrote no {key}"))?
                .parse()
                .map_err(|err| format!("{key}: {err}"))
        };
        let (bare50, bare99) = (ns("bare_p50_ns")?, ns("bare_p99_ns")?);
        let trips = ns("redis_round_trips_per_call")?;
        let mut rows: Vec<(&str, &str)> = vec![("bare", "bare")];
        if figures.contains_key("framework_p50_ns") {
            rows.push(("framework", "reqwest-middleware with no middleware"));
        }
        rows.extend([("memory", "memory store"), ("redis", "Redis store")]);
        if figures.contains_key("redis_batched_p50_ns") {
            rows.push(("redis_batched", "Redis store, batched every 5 ms"));
        }
        for (store, label) in rows {
            let (p50, p99) = (
                ns(&format!("{store}_p50_ns"))?,
                ns(&format!("{store}_p99_ns"))?,
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
        let memory_added = (ns("memory_p50_ns")? - bare50) / bare50;
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
