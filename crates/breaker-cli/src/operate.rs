//! `status` and the operator overrides, on a Redis store.

use std::time::Duration;

use breaker_core::{Clock, Override, State, StoreError, StoreErrorKind, SystemClock};
use breaker_store_redis::{BreakerInfo, RedisBreaker, RedisConfig, RedisStore};
use clap::Args;
use serde_json::json;

use crate::{Failure, parse_duration};

/// Where the breakers live.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// The Redis store (`redis://[user:password@]host:port`); defaults to $REDIS_URL.
    #[arg(long, env = "REDIS_URL")]
    store: Option<String>,
    /// Key prefix the applications use.
    #[arg(long, default_value = "breaker")]
    prefix: String,
}

/// `status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Commands on one named breaker.
#[derive(Debug, Args)]
pub(crate) struct NameArgs {
    /// The breaker's name.
    name: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// `force-open` and `force-closed`.
#[derive(Debug, Args)]
pub(crate) struct OverrideArgs {
    /// The breaker's name.
    name: String,
    /// How long the override lasts (forever if not given).
    #[arg(long = "for", value_parser = parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    store: StoreArgs,
}

/// A connected store, or a failure that says how to fix it.
pub(crate) async fn connect(
    url: &str,
    prefix: &str,
    max_staleness: Option<Duration>,
) -> Result<RedisStore, Failure> {
    let mut config = RedisConfig::standalone(url)
        .prefix(prefix)
        .timeout(Duration::from_secs(2));
    if let Some(staleness) = max_staleness {
        config = config.max_staleness(staleness);
    }
    let store = RedisStore::connect(config).await.map_err(store_failure)?;
    store.ping().await.map_err(|err| {
        Failure::Failed(format!(
            "cannot reach the Redis store: {err} (is redis-server running? check --store or REDIS_URL)"
        ))
    })?;
    Ok(store)
}

/// A store error as a failure: configuration mistakes are usage errors.
pub(crate) fn store_failure(err: StoreError) -> Failure {
    match err.kind() {
        StoreErrorKind::Config => Failure::Usage(err.to_string()),
        _ => Failure::Failed(err.to_string()),
    }
}

async fn store_of(args: &StoreArgs) -> Result<RedisStore, Failure> {
    let url = args.store.as_deref().ok_or_else(|| {
        Failure::Usage("no store given: pass --store redis://host:port or set REDIS_URL".to_owned())
    })?;
    connect(url, &args.prefix, None).await
}

/// The registered breaker `name`, with the newest policy it was registered with.
async fn breaker(args: &NameArgs) -> Result<RedisBreaker, Failure> {
    named(&args.store, &args.name).await
}

async fn named(store_args: &StoreArgs, name: &str) -> Result<RedisBreaker, Failure> {
    let store = store_of(store_args).await?;
    let listed = store.list().await.map_err(store_failure)?;
    let info = listed
        .into_iter()
        .find(|info| info.name == name)
        .ok_or_else(|| {
            Failure::Failed(format!(
                "no breaker named {name:?} in the store (prefix {:?}); `breaker status` lists them",
                store_args.prefix
            ))
        })?;
    let policy = info
        .policies
        .into_iter()
        .next()
        .ok_or_else(|| Failure::Failed(format!("breaker {name:?} has no registered policy")))?;
    store.breaker(name, policy).await.map_err(store_failure)
}

pub(crate) async fn trip(args: NameArgs) -> Result<(), Failure> {
    breaker(&args).await?.trip().await.map_err(store_failure)?;
    println!("breaker {:?} is open", args.name);
    Ok(())
}

pub(crate) async fn reset(args: NameArgs) -> Result<(), Failure> {
    breaker(&args).await?.reset().await.map_err(store_failure)?;
    println!("breaker {:?} is closed and its window cleared", args.name);
    Ok(())
}

pub(crate) async fn force(args: OverrideArgs, mode: Override) -> Result<(), Failure> {
    let breaker = named(&args.store, &args.name).await?;
    breaker
        .set_override(mode, args.duration)
        .await
        .map_err(store_failure)?;
    let lasting = args
        .duration
        .map_or("until `breaker auto`".to_owned(), |d| {
            format!("for {}", humantime::format_duration(d))
        });
    println!("breaker {:?} is {mode} {lasting}", args.name);
    Ok(())
}

pub(crate) async fn auto(args: NameArgs) -> Result<(), Failure> {
    breaker(&args)
        .await?
        .set_override(Override::Auto, None)
        .await
        .map_err(store_failure)?;
    println!("breaker {:?} decides by itself again", args.name);
    Ok(())
}

fn describe(info: &BreakerInfo) -> serde_json::Value {
    let snapshot = &info.snapshot;
    json!({
        "name": info.name,
        "state": snapshot.state.to_string(),
        "calls": snapshot.counts.calls,
        "failures": snapshot.counts.failures,
        "failure_rate": snapshot.counts.failure_rate(),
        "open_until_ms": snapshot.open_until.map(|t| t.as_millis()),
        "override": snapshot.override_mode.to_string(),
        "override_until_ms": snapshot.override_until.map(|t| t.as_millis()),
        "policy_conflict": info.policy_conflict(),
        "policies": info.policies,
    })
}

fn until(at: Option<breaker_core::Timestamp>) -> String {
    match at {
        Some(at) => {
            let left = at.saturating_since(SystemClock.now());
            format!(
                "in {}",
                humantime::format_duration(Duration::from_secs(left.as_secs()))
            )
        }
        None => "-".to_owned(),
    }
}

pub(crate) async fn status(args: StatusArgs) -> Result<(), Failure> {
    let store = store_of(&args.store).await?;
    let listed = store.list().await.map_err(store_failure)?;
    if args.json {
        let all: Vec<_> = listed.iter().map(describe).collect();
        println!("{}", serde_json::Value::Array(all));
        return Ok(());
    }
    if listed.is_empty() {
        println!(
            "no breakers registered under prefix {:?}",
            args.store.prefix
        );
        return Ok(());
    }
    let name_width = listed
        .iter()
        .map(|info| info.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<name_width$}  {:<9}  {:>7}  {:>8}  {:>6}  {:<12}  {:<14}",
        "NAME", "STATE", "CALLS", "FAILURES", "RATE", "OPEN UNTIL", "OVERRIDE"
    );
    for info in &listed {
        let s = &info.snapshot;
        let open_until = if s.state == State::Open {
            until(s.open_until)
        } else {
            "-".to_owned()
        };
        let mut line = format!(
            "{:<name_width$}  {:<9}  {:>7}  {:>8}  {:>5.1}%  {:<12}  {:<14}",
            info.name,
            s.state.to_string(),
            s.counts.calls,
            s.counts.failures,
            s.counts.failure_rate(),
            open_until,
            s.override_mode.to_string(),
        );
        if info.policy_conflict() {
            line.push_str(&format!(
                "  warning: {} processes registered it with different policies",
                info.policies.len()
            ));
        }
        println!("{line}");
    }
    Ok(())
}
