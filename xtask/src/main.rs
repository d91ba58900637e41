//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `test`: every test of the workspace (unit, integration, doc, and benches in test mode).
//! - `ci`: formatting check, clippy with `-D warnings` on all targets, the core's dependency
//!   check, `test`, and rustdoc with `-D warnings`.
//! - `bench`: the criterion benchmarks, then `docs/benchmarks.md` written from their results.
//! - `deps`: fails if `breaker-core` depends on any runtime, network or Redis crate.

mod bench;

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
        Some("deps") => core_has_no_io(),
        _ => {
            eprintln!("usage: cargo xtask <test|ci|bench|deps>");
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

fn test() -> Result {
    run(cargo(&["test", "--workspace", "--all-targets", "--locked"]))?;
    run(cargo(&["test", "--workspace", "--doc", "--locked"]))
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
    let output = cargo(&[
        "tree",
        "--package",
        "breaker-core",
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--locked",
    ])
    .output()
    .map_err(|err| format!("could not run cargo tree: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| {
            IO_CRATES.contains(name) || name.starts_with("breaker-") && *name != "breaker-core"
        })
        .collect();
    if found.is_empty() {
        eprintln!("xtask: breaker-core depends on no IO crate and no other workspace crate");
        Ok(())
    } else {
        Err(format!(
            "breaker-core must do no IO, but depends on {found:?}"
        ))
    }
}
