//! End to end, one caller at a time: `breaker run` against a local HTTP server with the memory
//! store, the Redis store, and the Redis store batched, beside pybreaker (Python, Redis
//! storage) on the same Redis and server, in one run, rounds interleaved.
//!
//! `cargo bench -p breaker-cli --bench end_to_end` prints a markdown table. pybreaker, redis-py
//! and requests are installed from PyPI into `target/peers-venv` on first use.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use breaker_testkit::http_server::{Reply, TestServer};
use breaker_testkit::redis_server::RedisServer;

const REQUESTS: u64 = 2_000;
const ROUNDS: usize = 5;

/// The calls per second `breaker run` reports for `extra` flags.
fn breaker_run(url: &str, extra: &[&str]) -> f64 {
    let output = Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args([
            "run",
            "--url",
            url,
            "--requests",
            &REQUESTS.to_string(),
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["successes"], REQUESTS, "{report}");
    let elapsed_ms = report["elapsed_ms"].as_u64().unwrap().max(1);
    REQUESTS as f64 * 1000.0 / elapsed_ms as f64
}

/// A Python with pybreaker, redis-py and requests, made once.
fn python(target: &Path) -> PathBuf {
    let venv = target.join("peers-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 (with its venv module) is needed for the Python peer");
        assert!(made.success());
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "pybreaker", "redis", "requests"])
            .status()
            .unwrap();
        assert!(installed.success(), "pip could not install the Python peer");
    }
    python
}

fn pybreaker_run(python: &Path, url: &str, redis: &str) -> f64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/pybreaker_run.py");
    let output = Command::new(python)
        .arg(script)
        .args([url, redis, &REQUESTS.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` (with `--all-targets` or `--benches`) runs
    // benches with no such flag: nothing to test then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let python = python(&target);
    let redis = RedisServer::start();
    let server = TestServer::start();
    server.set_default(Reply::Status(200));
    let url = server.url("/");
    let store = redis.url();
    let variants: [(&str, Vec<&str>); 4] = [
        ("breaker run, memory store", vec![]),
        (
            "breaker run, Redis store",
            vec!["--store", &store, "--name", "e2e"],
        ),
        (
            "breaker run, Redis store batched every 5 ms",
            vec!["--store", &store, "--name", "e2e-batched", "--batch", "5ms"],
        ),
        ("pybreaker, Redis storage (Python)", vec![]),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..ROUNDS {
        // Each round starts with a different variant, so none always runs on a warmer machine.
        for offset in 0..variants.len() {
            let index = (round + offset) % variants.len();
            let rate = if index == variants.len() - 1 {
                pybreaker_run(&python, &url, &store)
            } else {
                breaker_run(&url, &variants[index].1)
            };
            samples[index].push(rate);
        }
    }
    let medians: Vec<f64> = samples.into_iter().map(median).collect();
    let peer = medians[variants.len() - 1];
    println!(
        "| one caller, {REQUESTS} GETs, median of {ROUNDS} rounds | calls/s | against pybreaker |"
    );
    println!("|---|---|---|");
    for ((name, _), rate) in variants.iter().zip(&medians) {
        println!("| {name} | {rate:.0} | {:.1}x |", rate / peer);
    }
}
