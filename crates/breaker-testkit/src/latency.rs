//! Latency of calls, side by side: variants run interleaved, round by round, so that a
//! noisy machine slows them alike; percentiles come from every call.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How long a latency benchmark runs: in full under `cargo bench` (`--bench`), a few rounds
/// as a smoke test under `cargo test`.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Rounds run before measuring.
    pub warmup: usize,
    /// Rounds measured.
    pub rounds: usize,
    measuring: bool,
}

impl Plan {
    /// The plan the benchmark binary's arguments ask for.
    pub fn from_args() -> Plan {
        if std::env::args().any(|arg| arg == "--bench") {
            Plan {
                warmup: 2_000,
                rounds: 20_000,
                measuring: true,
            }
        } else {
            Plan {
                warmup: 10,
                rounds: 20,
                measuring: false,
            }
        }
    }

    /// Every round, warm-up included.
    pub fn calls(&self) -> usize {
        self.warmup + self.rounds
    }

    /// Prints `figures` and, when measuring, writes them to `target/breaker-bench/<name>.txt`
    /// for `cargo xtask bench`.
    pub fn report(&self, name: &str, figures: &str) {
        print!("{figures}");
        if self.measuring {
            write_figures(name, figures);
        }
    }
}

/// Writes `figures` to `target/breaker-bench/<name>.txt`, where `cargo xtask bench` reads them.
pub fn write_figures(name: &str, figures: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/breaker-bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.txt")), figures).unwrap();
}

/// The runtime an async latency benchmark drives its clients on. One worker thread runs the
/// connections' tasks, so a connection is back in the pool as soon as its response is read,
/// whichever variant calls next.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// One way of making a call, measured by [`compare`].
pub struct Variant<'a> {
    /// Its name in the results.
    pub name: &'static str,
    /// Makes one call.
    pub call: Box<dyn FnMut() + 'a>,
}

/// p50 and p99 of one variant.
#[derive(Clone, Debug)]
pub struct Percentiles {
    /// The variant's name.
    pub name: &'static str,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// Runs `warmup` then `rounds` rounds, each making one call of every variant in a shuffled
/// order (a call can leave the machine warmer or colder for the next one, so no variant
/// always follows the same other), and returns each variant's percentiles.
pub fn compare(variants: &mut [Variant<'_>], warmup: usize, rounds: usize) -> Vec<Percentiles> {
    for _ in 0..warmup {
        for variant in variants.iter_mut() {
            (variant.call)();
        }
    }
    let count = variants.len();
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); count];
    let mut order: Vec<usize> = (0..count).collect();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..rounds {
        // Fisher-Yates with xorshift: a fixed seed, so runs shuffle alike.
        for i in (1..count).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        for &index in &order {
            let started = Instant::now();
            (variants[index].call)();
            times[index].push(started.elapsed());
        }
    }
    variants
        .iter()
        .zip(times)
        .map(|(variant, mut times)| {
            times.sort();
            let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
            Percentiles {
                name: variant.name,
                p50: at(0.50),
                p99: at(0.99),
            }
        })
        .collect()
}

/// The results as `name_p50_ns=...` and `name_p99_ns=...` lines.
pub fn as_lines(results: &[Percentiles]) -> String {
    let mut out = String::new();
    for result in results {
        let _ = writeln!(out, "{}_p50_ns={}", result.name, result.p50.as_nanos());
        let _ = writeln!(out, "{}_p99_ns={}", result.name, result.p99.as_nanos());
    }
    out
}
