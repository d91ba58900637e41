//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `test`: makes sure `redis-server` is installed and runs Sentinel (the Redis tests start
//!   their own servers, Sentinels and TLS servers), what the dashboard's browser test needs (Chromium, and playwright-core through
//!   `npm ci`) and Prometheus for the metrics test, then runs every test of the workspace (unit, integration, doc, benches in test
//!   mode) and the adapters' examples.
//! - `ci`: formatting check, clippy with `-D warnings` on all targets, the core's dependency
//!   check, each Redis transport built alone (the blocking one without an async runtime), a
//!   build of the Redis store's TLS feature, `test`, and rustdoc with `-D warnings`.
//! - `bench [memory|redis|adapters|recovery|quorum|dashboard|in-process|async|instructions|fleet-cost|all]`:
//!   the benchmarks (criterion, side-by-side latency, the recovery and quorum scenarios with a
//!   fleet of `breaker run` processes, Redis under callgrind: `instructions` needs `valgrind`),
//!   then `docs/benchmarks.md` written from their results, each bar met or not.
//! - `soak`: the random tests (the core against the model, the stores against the core, the
//!   fleet simulations) at ten times CI's cases, with a printed seed; `cargo xtask soak
//!   SEED` replays one.
//! - `deps`: fails if `breaker-core` depends on any runtime, network or Redis crate, or if a
//!   Redis transport does not build alone (the blocking one without an async runtime).

mod bench;
#[cfg(test)]
mod tidy;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("ci") => ci(),
        Some("bench") => bench::run(&args[1..]),
        Some("soak") => soak(args.get(1).map(String::as_str)),
        Some("deps") => core_has_no_io().and_then(|()| redis_transports_stand_alone()),
        _ => {
            eprintln!("usage: cargo xtask <test|ci|bench|soak [SEED]|deps>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (this crate lives in `<root>/xtask`).
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.args(args).current_dir(root());
    command
}

fn run(mut command: Command) -> Result {
    eprintln!("xtask: running {command:?}");
    let status = command
        .status()
        .map_err(|err| format!("could not start {command:?}: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

/// The adapters' example programs, each run with the memory store and with Redis.
const EXAMPLES: &[(&str, &str)] = &[
    ("breaker-reqwest", "reqwest_breaker"),
    ("breaker-ureq", "ureq_breaker"),
    ("breaker-tower", "tower_breaker"),
];

fn test() -> Result {
    ensure_redis()?;
    ensure_browser()?;
    ensure_prometheus()?;
    run(cargo(&["test", "--workspace", "--all-targets", "--locked"]))?;
    run(cargo(&["test", "--workspace", "--doc", "--locked"]))?;
    for (package, example) in EXAMPLES {
        for extra in [&[][..], &["--redis"][..]] {
            let mut command = cargo(&[
                "run",
                "--quiet",
                "--locked",
                "--package",
                package,
                "--example",
                example,
                "--",
            ]);
            command.args(extra);
            run(command)?;
        }
    }
    Ok(())
}

/// The random tests `soak` runs longer: (package, test binary).
const RANDOM_TESTS: &[(&str, &str)] = &[
    ("breaker-testkit", "model"),
    ("breaker-store-memory", "store"),
    ("breaker-testkit", "cas_store"),
    ("breaker-store-redis", "redis"),
    ("breaker-store-redis", "fleet"),
    ("breaker-store-redis", "hostile"),
    ("breaker-store-redis", "reads"),
];

/// How many times CI's cases `soak` runs.
const SOAK: u32 = 10;

/// The random tests at [`SOAK`] times CI's cases, all with one seed (drawn, or `seed` to
/// replay a failure), printed first so that a failure can be replayed.
fn soak(seed: Option<&str>) -> Result {
    ensure_redis()?;
    let seed = match seed {
        Some(seed) => seed
            .parse::<u64>()
            .map_err(|_| format!("the seed must be a whole number, not {seed:?}"))?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64),
    };
    eprintln!(
        "xtask: soak at {SOAK}x CI's cases with seed {seed} (replay: cargo xtask soak {seed})"
    );
    let started = std::time::Instant::now();
    for (package, test) in RANDOM_TESTS {
        let mut command = cargo(&["test", "--locked", "--package", package, "--test", test]);
        command
            .env("BREAKER_SOAK", SOAK.to_string())
            .env("PROPTEST_RNG_SEED", seed.to_string());
        run(command).map_err(|err| format!("{err}; replay with `cargo xtask soak {seed}`"))?;
    }
    eprintln!(
        "xtask: soak passed in {:.0} s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn found(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// Installs Debian's `packages` (after `apt-get update`).
fn apt_install(packages: &[&str]) -> Result {
    eprintln!(
        "xtask: installing {} from Debian's packages",
        packages.join(", ")
    );
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run(update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(install)
}

/// The Redis tests start throwaway `redis-server` processes, `redis-cli` for the cluster, and
/// Sentinels (`redis-server <conf> --sentinel`): install Debian's packages when something is
/// missing and this runs as root. Debian's `redis-server` runs Sentinel itself, so the
/// `redis-sentinel` package is installed only where it does not.
fn ensure_redis() -> Result {
    let servers = || found("redis-server") && found("redis-cli");
    if !servers() {
        if !is_root() {
            return Err(
                "redis-server and redis-cli are needed by the Redis tests: install them \
                 with `sudo apt-get install -y redis-server redis-tools` (or your system's \
                 package), then run `cargo xtask test` again"
                    .to_owned(),
            );
        }
        apt_install(&["redis-server", "redis-tools"])?;
        if !servers() {
            return Err("redis-server is still missing after apt-get install".to_owned());
        }
    }
    if runs_sentinel() {
        return Ok(());
    }
    if !is_root() {
        return Err(
            "the Sentinel failover tests need `redis-server --sentinel`, which this \
             redis-server cannot run: install your system's redis-sentinel package (`sudo \
             apt-get install -y redis-sentinel`), then run `cargo xtask test` again"
                .to_owned(),
        );
    }
    apt_install(&["redis-sentinel"])?;
    if runs_sentinel() {
        Ok(())
    } else {
        Err("redis-server still cannot run Sentinel after installing redis-sentinel".to_owned())
    }
}

/// Whether `redis-server --sentinel` is Sentinel: without a configuration file Sentinel
/// refuses to start and says why, naming itself, which a build without it never does.
fn runs_sentinel() -> bool {
    Command::new("redis-server")
        .arg("--sentinel")
        .output()
        .is_ok_and(|output| {
            String::from_utf8_lossy(&output.stdout).contains("Sentinel")
                || String::from_utf8_lossy(&output.stderr).contains("Sentinel")
        })
}

/// Where the dashboard's browser test lives (a Node.js script and its lock file).
/// The dashboard's metrics test scrapes it with a real Prometheus (Debian's package, run by
/// the test on loopback with a configuration of its own): install it when it is missing and
/// this runs as root.
fn ensure_prometheus() -> Result {
    let prometheus = env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".to_owned());
    if Path::new(&prometheus).exists() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "Prometheus is needed by the dashboard's metrics test and is not at {prometheus}: \
             install it with `sudo apt-get install -y prometheus` (or set PROMETHEUS to a \
             Prometheus binary), then run `cargo xtask test` again"
        ));
    }
    apt_install(&["prometheus"])?;
    if !Path::new(&prometheus).exists() {
        return Err(format!(
            "Prometheus is still missing at {prometheus} after apt-get install"
        ));
    }
    Ok(())
}

fn browser_test_dir() -> PathBuf {
    root().join("crates/breaker-dashboard/tests/browser")
}

/// The dashboard's browser test drives the system's Chromium (Debian's package; no browser
/// is downloaded) with playwright-core: install Chromium when it is missing and this runs as
/// root, and the script's packages with `npm ci` when they are missing or out of date.
fn ensure_browser() -> Result {
    let chromium = env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if !Path::new(&chromium).exists() {
        if !is_root() {
            return Err(format!(
                "Chromium is needed by the dashboard's browser test and is not at {chromium}: \
                 install it with `sudo apt-get install -y chromium` (or set CHROMIUM to a \
                 Chromium binary), then run `cargo xtask test` again"
            ));
        }
        apt_install(&["chromium"])?;
        if !Path::new(&chromium).exists() {
            return Err(format!(
                "Chromium is still missing at {chromium} after apt-get install"
            ));
        }
    }
    if !found("node") || !found("npm") {
        return Err(
            "Node.js 20 or newer, with npm, is needed by the dashboard's browser test: \
                    install it (https://nodejs.org, or your system's packages), then run \
                    `cargo xtask test` again"
                .to_owned(),
        );
    }
    let dir = browser_test_dir();
    let wanted = locked_version(&dir.join("package-lock.json"), "playwright-core");
    let installed = installed_version(&dir.join("node_modules/playwright-core/package.json"));
    if wanted.is_none() || wanted != installed {
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir);
        run(npm)?;
    }
    Ok(())
}

/// The first `"version": "..."` value in `text` after `from`.
fn version_after(text: &str, from: usize) -> Option<String> {
    let rest = &text[from..];
    let start = rest.find("\"version\"")? + "\"version\"".len();
    let rest = rest[start..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// The version of `package` a `package-lock.json` pins.
fn locked_version(lock: &Path, package: &str) -> Option<String> {
    let text = std::fs::read_to_string(lock).ok()?;
    let at = text.find(&format!("\"node_modules/{package}\""))?;
    version_after(&text, at)
}

/// The version of an installed package, from its `package.json`.
fn installed_version(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    version_after(&text, 0)
}

fn ci() -> Result {
    run(cargo(&["fmt", "--all", "--check"]))?;
    run(cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    core_has_no_io()?;
    redis_transports_stand_alone()?;
    // TLS is an opt-in feature of the Redis store: check that it still builds.
    run(cargo(&[
        "check",
        "--package",
        "breaker-store-redis",
        "--features",
        "tls-rustls",
        "--locked",
    ]))?;
    test()?;
    let mut doc = cargo(&["doc", "--workspace", "--no-deps", "--locked"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    run(doc)
}

/// Crates that would mean the core does IO: runtimes, sockets, HTTP and Redis clients.
const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "async-std",
    "smol",
    "hyper",
    "reqwest",
    "ureq",
    "redis",
    "deadpool",
    "deadpool-redis",
    "dashmap",
];

fn core_has_no_io() -> Result {
    let found = dependencies("breaker-core", &[])?
        .into_iter()
        .filter(|name| {
            IO_CRATES.contains(&name.as_str())
                || name.starts_with("breaker-") && name != "breaker-core"
        })
        .collect::<Vec<_>>();
    if found.is_empty() {
        eprintln!("xtask: breaker-core depends on no IO crate and no other workspace crate");
        Ok(())
    } else {
        Err(format!(
            "breaker-core must do no IO, but depends on {found:?}"
        ))
    }
}

/// Each Redis transport builds alone, without warnings, and the blocking one without an async
/// runtime.
fn redis_transports_stand_alone() -> Result {
    for transport in ["tokio", "blocking"] {
        run(cargo(&[
            "clippy",
            "--package",
            "breaker-store-redis",
            "--no-default-features",
            "--features",
            transport,
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    let blocking = ["--no-default-features", "--features", "blocking"];
    let found = dependencies("breaker-store-redis", &blocking)?
        .into_iter()
        .filter(|name| ["tokio", "futures-util", "async-std", "smol"].contains(&name.as_str()))
        .collect::<Vec<_>>();
    if found.is_empty() {
        eprintln!("xtask: the blocking Redis store depends on no async runtime");
        Ok(())
    } else {
        Err(format!(
            "the blocking Redis store must not need an async runtime, but depends on {found:?}"
        ))
    }
}

/// The names of every crate `package` depends on (normal edges, with `features`).
fn dependencies(package: &str, features: &[&str]) -> Result<Vec<String>> {
    let mut args = vec![
        "tree",
        "--package",
        package,
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--locked",
    ];
    args.extend(features);
    let output = cargo(&args)
        .output()
        .map_err(|err| format!("could not run cargo tree: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}
