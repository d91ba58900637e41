//! `cargo xtask bench`: runs the criterion benchmarks and writes their figures, as ratios to
//! the baselines measured in the same run, into `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::fs;
use std::process::Command;

use crate::{Result, cargo, root};

const BEGIN: &str = "<!-- memory-store:begin (written by cargo xtask bench) -->";
const END: &str = "<!-- memory-store:end -->";

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

fn run_benches(args: &[String]) -> Result {
    let mut command = cargo(&[
        "bench",
        "--package",
        "breaker-store-memory",
        "--bench",
        "hot_path",
        "--locked",
    ]);
    if !args.is_empty() {
        command.arg("--").args(args);
    }
    crate::run(command)
}

pub(crate) fn run(args: &[String]) -> Result {
    run_benches(args)?;
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
    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let _ = writeln!(section, "{BEGIN}");
    let _ = writeln!(
        section,
        "## Memory store: permit + record on the success path\n"
    );
    let _ = writeln!(section, "- Command: `cargo xtask bench`");
    let _ = writeln!(section, "- Date: {date}");
    let _ = writeln!(section, "- Machine: {}", machine());
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
    let _ = writeln!(section, "{END}");

    let path = root().join("docs/benchmarks.md");
    let existing = fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nFigures measured on this project's machines with the commands given; only \
         ratios between benches of the same run are meaningful.\n\n"
            .to_owned()
    });
    let updated = match (existing.find(BEGIN), existing.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!(
                "{}{}{}",
                &existing[..begin],
                section.trim_end(),
                &existing[end + END.len()..]
            )
        }
        _ => format!("{}\n{section}", existing.trim_end()),
    };
    fs::write(&path, updated)
        .map_err(|err| format!("could not write {}: {err}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    print!("{section}");
    Ok(())
}
