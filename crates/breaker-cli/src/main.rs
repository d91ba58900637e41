//! `breaker`: a demo of the circuit breaker, a way to try a policy against a real endpoint,
//! and the operator's tool for breakers shared through Redis.
//!
//! Exit codes, one meaning each (`--help` says the same): 0 on success, 1 when the command
//! failed for another reason (an unknown breaker, a backend that cannot be reached), 2 on bad
//! usage (unknown flags, invalid values, a malformed address), 3 when the Redis store could
//! not be reached or refused the command (down, slow, credentials or ACL refused, TLS).

mod backend;
mod dashboard;
mod demo;
mod diagnose;
mod operate;
mod policy_file;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use breaker_core::{Policy, PolicyError, RetryAfterPolicy, StoreFailurePolicy};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// A distributed circuit breaker for HTTP clients.
#[derive(Debug, Parser)]
#[command(name = "breaker", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch a breaker protect a local backend that turns healthy, failing, then healthy again.
    Demo(demo::DemoArgs),
    /// Send GET requests to a URL through one breaker and report what happened.
    // Boxed because its many flags make it far larger than the other commands' arguments.
    Run(Box<run::RunArgs>),
    /// List every breaker registered in a Redis store, with its live state.
    Status(operate::StatusArgs),
    /// Open a breaker now, for every process sharing the store.
    Trip(operate::NameArgs),
    /// Close a breaker now and clear its window, for every process sharing the store.
    Reset(operate::NameArgs),
    /// Reject every call through a breaker until `auto` (or for a while).
    ForceOpen(operate::OverrideArgs),
    /// Let every call through a breaker, counting but never tripping, until `auto`.
    ForceClosed(operate::OverrideArgs),
    /// Lift an operator override: the breaker decides by itself again.
    Auto(operate::NameArgs),
    /// Print the recent transitions and operator actions of one breaker, or of all.
    History(operate::HistoryArgs),
    /// Serve a live page (and JSON API) of every breaker in a Redis store.
    Dashboard(dashboard::DashboardArgs),
    /// Print the fleet's shared state once, in the Prometheus text format (as the
    /// dashboard's /metrics serves it).
    Metrics(dashboard::MetricsArgs),
}

/// What each exit code means, as `--help` prints it.
const EXIT_CODES: &str = "Exit codes: 0 success; 1 the command failed (an unknown breaker, a backend that cannot be reached); 2 bad usage (flags, values, a malformed address); 3 the Redis store could not be reached or refused the command (down, slow, credentials, ACL, TLS).";

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad usage: exit code 2.
    Usage(String),
    /// The command failed: exit code 1.
    Failed(String),
    /// The store could not be reached or refused the command: exit code 3.
    Store(String),
}

impl From<PolicyError> for Failure {
    fn from(err: PolicyError) -> Failure {
        Failure::Usage(err.to_string())
    }
}

/// The policy flags shared by `run` and `demo`.
///
/// Every flag is optional with no clap default: a flag the user did not give leaves the base
/// policy's value (the command's own defaults, or the `--policy` file) untouched.
#[derive(Debug, Clone, Args)]
pub(crate) struct PolicyArgs {
    /// A TOML policy file (fields as in the README's policy table); the flags given override it.
    #[arg(long = "policy", value_name = "FILE")]
    policy_file: Option<PathBuf>,
    /// Sliding window over which calls are counted.
    #[arg(long, value_parser = parse_duration)]
    window: Option<Duration>,
    /// How many buckets the window is split into: calls expire in steps of window / buckets.
    #[arg(long)]
    buckets: Option<u32>,
    /// Trip when failures are at least this percentage of calls (0 < rate <= 100).
    #[arg(long)]
    failure_rate: Option<f64>,
    /// Never trip with fewer failures than this in the window.
    #[arg(long)]
    minimum_failures: Option<u64>,
    /// Never trip with fewer calls than this in the window.
    #[arg(long)]
    minimum_calls: Option<u64>,
    /// How long the breaker stays open after a trip (raises the --max-open-for cap if needed,
    /// unless that is given too).
    #[arg(long, value_parser = parse_duration)]
    open_for: Option<Duration>,
    /// Calls admitted at once when half-open.
    #[arg(long)]
    half_open_probes: Option<u32>,
    /// A probe that never reports back frees its slot after this.
    #[arg(long, value_parser = parse_duration)]
    probe_lease: Option<Duration>,
    /// Probe successes needed to close again.
    #[arg(long)]
    successes_to_close: Option<u32>,
    /// Each consecutive re-trip multiplies the open time by this factor (at least 1.0).
    #[arg(long)]
    backoff: Option<f64>,
    /// Cap on the backed-off open time.
    #[arg(long, value_parser = parse_duration)]
    max_open_for: Option<Duration>,
    /// A call slower than this counts as a failure (`off`: never).
    #[arg(long, value_parser = parse_duration_or_off, value_name = "DURATION|off")]
    slow_call: Option<DurationOrOff>,
    /// What the breaker does when its store cannot answer.
    #[arg(long, value_enum)]
    on_store_failure: Option<OnStoreFailure>,
    /// What a 429 or 503 with `Retry-After` does: open the breaker until then (`honour`), or
    /// count it like any other response (`ignore`).
    #[arg(long, value_enum)]
    retry_after: Option<RetryAfterChoice>,
    /// After a close by probes, let the fleet's share of calls grow from 10 % to 100 % over
    /// this time (`off`: every call flows at once).
    #[arg(long, value_parser = parse_duration_or_off, value_name = "DURATION|off")]
    ramp_up: Option<DurationOrOff>,
    /// Trip only when the window's failures came from at least this many distinct processes
    /// (1 to 16; each `breaker run` process is one reporter).
    #[arg(long)]
    minimum_reporters: Option<u32>,
}

/// The `--retry-after` values (core's `RetryAfterPolicy` is non-exhaustive).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RetryAfterChoice {
    /// Open the breaker, for every process, until the time the backend names.
    Honour,
    /// Count the response like any other.
    Ignore,
}

impl From<RetryAfterChoice> for RetryAfterPolicy {
    fn from(choice: RetryAfterChoice) -> RetryAfterPolicy {
        match choice {
            RetryAfterChoice::Honour => RetryAfterPolicy::Honour,
            RetryAfterChoice::Ignore => RetryAfterPolicy::Ignore,
        }
    }
}

/// The `--slow-call` and `--ramp-up` values: a duration, or `off` to lift one a policy file
/// set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DurationOrOff(Option<Duration>);

/// `--slow-call`, `--ramp-up`: a duration, or `off`.
fn parse_duration_or_off(text: &str) -> Result<DurationOrOff, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(DurationOrOff(None));
    }
    parse_duration(text).map(|limit| DurationOrOff(Some(limit)))
}

/// The `--on-store-failure` values; core's `StoreFailurePolicy` is non-exhaustive, so the
/// command lists the choices it offers itself.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OnStoreFailure {
    /// Allow the call.
    FailOpen,
    /// Reject the call.
    FailClosed,
    /// Decide with an in-process breaker until the store answers again.
    Local,
}

impl From<OnStoreFailure> for StoreFailurePolicy {
    fn from(choice: OnStoreFailure) -> StoreFailurePolicy {
        match choice {
            OnStoreFailure::FailOpen => StoreFailurePolicy::FailOpen,
            OnStoreFailure::FailClosed => StoreFailurePolicy::FailClosed,
            OnStoreFailure::Local => StoreFailurePolicy::Local,
        }
    }
}

impl PolicyArgs {
    /// The policy: `base` (or, with `--policy`, the file's policy instead) with the flags given
    /// applied, validated.
    pub(crate) fn policy(&self, base: Policy) -> Result<Policy, Failure> {
        let base = match &self.policy_file {
            Some(path) => policy_file::load(path)?,
            None => base,
        };
        let mut builder = base.to_builder();
        if let Some(window) = self.window {
            builder = builder.window(window);
        }
        if let Some(buckets) = self.buckets {
            builder = builder.buckets(buckets);
        }
        if let Some(rate) = self.failure_rate {
            builder = builder.failure_rate(rate);
        }
        if let Some(failures) = self.minimum_failures {
            builder = builder.minimum_failures(failures);
        }
        if let Some(calls) = self.minimum_calls {
            builder = builder.minimum_calls(calls);
        }
        if let Some(open_for) = self.open_for {
            builder = builder.open_for(open_for);
            // `--open-for 2h` alone should not fail because the default cap is 1 h; a cap the
            // user gives explicitly is kept as given, and validated.
            if self.max_open_for.is_none() {
                builder = builder.max_open_for(open_for.max(base.max_open_for()));
            }
        }
        if let Some(max) = self.max_open_for {
            builder = builder.max_open_for(max);
        }
        if let Some(probes) = self.half_open_probes {
            builder = builder.half_open_probes(probes);
        }
        if let Some(lease) = self.probe_lease {
            builder = builder.probe_lease(lease);
        }
        if let Some(successes) = self.successes_to_close {
            builder = builder.successes_to_close(successes);
        }
        if let Some(factor) = self.backoff {
            builder = builder.backoff(factor);
        }
        if let Some(DurationOrOff(limit)) = self.slow_call {
            builder = builder.slow_call(limit);
        }
        if let Some(choice) = self.on_store_failure {
            builder = builder.on_store_failure(choice.into());
        }
        if let Some(choice) = self.retry_after {
            builder = builder.retry_after(choice.into());
        }
        if let Some(DurationOrOff(ramp)) = self.ramp_up {
            builder = builder.ramp_up(ramp);
        }
        if let Some(reporters) = self.minimum_reporters {
            builder = builder.minimum_reporters(reporters);
        }
        Ok(builder.build()?)
    }
}

/// A duration as people write it: `500ms`, `30s`, `5m`, `1h 30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|err| format!("{err} (write durations like 500ms, 30s, 5m)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: could not start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::demo(args).await,
            Command::Run(args) => run::run(*args).await,
            Command::Status(args) => operate::status(args).await,
            Command::Trip(args) => operate::trip(args).await,
            Command::Reset(args) => operate::reset(args).await,
            Command::ForceOpen(args) => {
                operate::force(args, breaker_core::Override::ForcedOpen).await
            }
            Command::ForceClosed(args) => {
                operate::force(args, breaker_core::Override::ForcedClosed).await
            }
            Command::Auto(args) => operate::auto(args).await,
            Command::History(args) => operate::history(args).await,
            Command::Dashboard(args) => dashboard::dashboard(args).await,
            Command::Metrics(args) => dashboard::metrics(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Store(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(3)
        }
    }
}
