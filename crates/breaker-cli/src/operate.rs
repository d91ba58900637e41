//! `status`, `history` and the operator actions, on a Redis store.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use breaker_core::{
    Action, Clock, Override, State, StoreError, StoreErrorKind, SystemClock, Timestamp,
};
use breaker_dashboard::{DashboardStore, HistoryEntry, RedisBreakers};
use breaker_store_redis::{AsyncRedisStore, RedisConfig};
use clap::Args;

use crate::{Failure, parse_duration};

/// The syntax of a Redis `--store`, as every command's `--help` gives it.
macro_rules! store_syntax {
    () => {
        "One server: redis://[user:password@]host:port[/db] (rediss:// for TLS).
A Cluster: --store once per node (--store redis://10.0.0.1:7000 --store redis://10.0.0.2:7001), \
or redis+cluster://[user:password@]host:port[,host:port...].
Sentinel: redis+sentinel://[user:password@]host:port[,host:port...]/MASTER (the Sentinels' \
addresses, port 26379 by default, then the master's name; the user and password are the \
Sentinels'; a master's own go in --store-master-password and --store-master-user).
rediss+cluster:// and rediss+sentinel:// use TLS. Percent-encode #, /, ? and @ in a password \
(%23, %2F, %3F, %40)."
    };
}
pub(crate) use store_syntax;

/// `--store` in `--help`.
const STORE_HELP: &str = concat!(
    "The Redis store; defaults to $REDIS_URL.\n",
    store_syntax!()
);

/// How to reach the store beyond its address: TLS settings for `rediss://`, and the
/// credentials of a master behind Sentinels.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct AccessArgs {
    /// Trust this CA (a PEM file) for the store's TLS certificate, instead of the public
    /// CAs: for a Redis whose certificate a private CA signed.
    #[arg(long = "store-ca", env = "BREAKER_STORE_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Present this client certificate (a PEM file) to a Redis that requires one (mutual
    /// TLS); needs --store-key.
    #[arg(
        long = "store-cert",
        env = "BREAKER_STORE_CERT",
        value_name = "FILE",
        requires = "key"
    )]
    cert: Option<PathBuf>,
    /// The private key of --store-cert (a PEM file).
    #[arg(
        long = "store-key",
        env = "BREAKER_STORE_KEY",
        value_name = "FILE",
        requires = "cert"
    )]
    key: Option<PathBuf>,
    /// The password of the master behind `redis+sentinel://` Sentinels (the address's
    /// password is the Sentinels').
    // The environment's value is never shown in `--help`: it is a password.
    #[arg(
        long = "store-master-password",
        env = "BREAKER_STORE_MASTER_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    master_password: Option<String>,
    /// The ACL user of the master behind Sentinels; needs --store-master-password.
    #[arg(
        long = "store-master-user",
        env = "BREAKER_STORE_MASTER_USER",
        value_name = "USER",
        requires = "master_password"
    )]
    master_user: Option<String>,
}

impl AccessArgs {
    /// `config` with these settings.
    fn apply(&self, mut config: RedisConfig) -> RedisConfig {
        if let Some(ca) = &self.ca {
            config = config.tls_ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            config = config.tls_client_cert_files(cert, key);
        }
        if let Some(password) = &self.master_password {
            config = config.master_password(password);
        }
        if let Some(user) = &self.master_user {
            config = config.master_username(user);
        }
        config
    }
}

/// Where the breakers live.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// The Redis store (redis://, a Cluster's nodes, or redis+sentinel://HOST:PORT/MASTER);
    /// defaults to $REDIS_URL.
    // The environment's value is never shown in `--help`: it may hold a password.
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        value_name = "ADDRESS",
        long_help = STORE_HELP
    )]
    store: Vec<String>,
    /// Key prefix the applications use.
    #[arg(long, default_value = "breaker")]
    pub(crate) prefix: String,
    #[command(flatten)]
    pub(crate) access: AccessArgs,
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
    /// How long the override lasts, at least 1ms (forever if not given).
    #[arg(long = "for", value_parser = override_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    store: StoreArgs,
}

/// An override's `--for`: a duration the core allows an override
/// ([`Action::check_override`]).
fn override_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    Action::check_override(duration).map_err(|refused| {
        format!("{refused} (leave out --for to hold it until `breaker auto`)")
    })?;
    Ok(duration)
}

/// `history`.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Only this breaker's history (default: every breaker's, merged).
    name: Option<String>,
    /// How many entries: the newest ones.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    count: u32,
    /// Print JSON (newest first) instead of a table (oldest first, so the newest is last).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// How the command reaches the Redis deployment at `addresses`: `prefix`, and a timeout long
/// enough for an operator.
pub(crate) fn store_config(
    addresses: &[String],
    prefix: &str,
    access: &AccessArgs,
) -> Result<RedisConfig, Failure> {
    let config = access.apply(
        RedisConfig::from_addresses(addresses)
            .map_err(store_failure)?
            .prefix(prefix)
            .timeout(Duration::from_secs(2)),
    );
    // A missing certificate file or a TLS setting on a plain address is refused now.
    config.check().map_err(store_failure)?;
    Ok(config)
}

/// Who asked, as the history of operator actions records it: `role` and the user.
pub(crate) fn actor(role: &str) -> String {
    let user = ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|user| !user.is_empty()))
        .unwrap_or_else(|| "unknown user".to_owned());
    format!("{role} {user}")
}

/// A connected store, or a failure that says how to fix it.
pub(crate) async fn connect(
    addresses: &[String],
    prefix: &str,
    access: &AccessArgs,
    max_staleness: Option<Duration>,
    batch: Option<Duration>,
) -> Result<AsyncRedisStore, Failure> {
    let mut config = store_config(addresses, prefix, access)?;
    if let Some(staleness) = max_staleness {
        config = config.max_staleness(staleness);
    }
    if let Some(interval) = batch {
        config = config.batch(interval);
    }
    open(config, addresses).await
}

/// The store of `config` (at `addresses`), once it answers a `PING`.
async fn open(config: RedisConfig, addresses: &[String]) -> Result<AsyncRedisStore, Failure> {
    let store = AsyncRedisStore::connect(config)
        .await
        .map_err(store_failure)?;
    store.ping().await.map_err(|err| {
        // A TLS hello sent to a server that speaks plain TCP gets no answer at all: the
        // server waits for a command. Only a timeout shows, so say what it likely means.
        let tls = addresses
            .iter()
            .any(|address| address.starts_with("rediss"));
        let hint = if tls && err.kind() == StoreErrorKind::Timeout {
            " (no answer to the TLS handshake: is the server plaintext on that port? use \
             redis:// for a plaintext server, or the port Redis serves TLS on, its tls-port)"
        } else {
            ""
        };
        store_failure(
            StoreError::new(
                err.kind(),
                format!("cannot reach the Redis store: {err}{hint}"),
            )
            .with_source(err),
        )
    })?;
    Ok(store)
}

/// A store error as a failure that names its cause; configuration mistakes are usage
/// errors.
pub(crate) fn store_failure(err: StoreError) -> Failure {
    crate::diagnose::failure(err)
}

/// The store's addresses, or a usage failure saying how to give one.
pub(crate) fn store_addresses(args: &StoreArgs) -> Result<&[String], Failure> {
    if args.store.is_empty() {
        return Err(Failure::Usage(
            "no store given: pass --store redis://host:port or set REDIS_URL".to_owned(),
        ));
    }
    Ok(&args.store)
}

async fn store_of(args: &StoreArgs) -> Result<AsyncRedisStore, Failure> {
    connect(
        store_addresses(args)?,
        &args.prefix,
        &args.access,
        None,
        None,
    )
    .await
}

/// Applies `action` to breaker `name` as the dashboard does, recorded as asked by this user.
async fn act(args: &StoreArgs, name: &str, action: Action) -> Result<(), Failure> {
    let addresses = store_addresses(args)?;
    let config = store_config(addresses, &args.prefix, &args.access)?.actor(actor("breaker"));
    let breakers = RedisBreakers::new(open(config, addresses).await?);
    breakers
        .act(name, action)
        .await
        .map_err(|err| match err.kind() {
            StoreErrorKind::NotFound => Failure::Failed(format!(
                "{err} (prefix {:?}); `breaker status` lists them",
                args.prefix
            )),
            _ => store_failure(err),
        })
}

pub(crate) async fn trip(args: NameArgs) -> Result<(), Failure> {
    act(&args.store, &args.name, Action::Trip).await?;
    println!("breaker {:?} is open", args.name);
    Ok(())
}

pub(crate) async fn reset(args: NameArgs) -> Result<(), Failure> {
    act(&args.store, &args.name, Action::Reset).await?;
    println!("breaker {:?} is closed and its window cleared", args.name);
    Ok(())
}

pub(crate) async fn force(args: OverrideArgs, mode: Override) -> Result<(), Failure> {
    act(
        &args.store,
        &args.name,
        Action::Override {
            mode,
            duration: args.duration,
        },
    )
    .await?;
    let lasting = args
        .duration
        .map_or("until `breaker auto`".to_owned(), |d| {
            format!("for {}", humantime::format_duration(d))
        });
    println!("breaker {:?} is {mode} {lasting}", args.name);
    Ok(())
}

pub(crate) async fn auto(args: NameArgs) -> Result<(), Failure> {
    act(
        &args.store,
        &args.name,
        Action::Override {
            mode: Override::Auto,
            duration: None,
        },
    )
    .await?;
    println!("breaker {:?} decides by itself again", args.name);
    Ok(())
}

/// `name` as a terminal shows it: control characters (which could move the cursor or
/// recolour the screen) escaped.
fn printable(name: &str) -> String {
    if name.chars().any(char::is_control) {
        name.escape_debug().to_string()
    } else {
        name.to_owned()
    }
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
    // The dashboard's listing: many breakers per round trip, nothing written, and a breaker
    // that cannot be read (garbage in its keys) listed as such while the rest are listed.
    let listed = RedisBreakers::new(store_of(&args.store).await?)
        .breakers()
        .await
        .map_err(store_failure)?;
    if args.json {
        println!("{}", json_line(&listed)?);
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
        .map(|view| printable(&view.name).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<name_width$}  {:<9}  {:>7}  {:>8}  {:>6}  {:<12}  {:<14}",
        "NAME", "STATE", "CALLS", "FAILURES", "RATE", "OPEN UNTIL", "OVERRIDE"
    );
    for view in &listed {
        if let Some(why) = &view.unreadable {
            println!("{:<name_width$}  unreadable: {why}", printable(&view.name));
            continue;
        }
        let s = &view.snapshot;
        let open_until = if s.state == State::Open {
            until(s.open_until)
        } else if s.ramping_until.is_some() {
            format!("ramp {}", until(s.ramping_until))
        } else {
            "-".to_owned()
        };
        let mut line = format!(
            "{:<name_width$}  {:<9}  {:>7}  {:>8}  {:>5.1}%  {:<12}  {:<14}",
            printable(&view.name),
            s.state.to_string(),
            s.counts.calls,
            s.counts.failures,
            s.counts.failure_rate(),
            open_until,
            s.override_mode.to_string(),
        );
        let quorum = view
            .policies
            .first()
            .map_or(1, breaker_core::Policy::minimum_reporters);
        if quorum > 1 {
            line.push_str(&format!("  quorum of {quorum} reporters"));
        }
        if view.policy_conflict() {
            line.push_str(&format!(
                "  warning: {} processes registered it with different policies",
                view.policies.len()
            ));
        }
        println!("{line}");
    }
    Ok(())
}

fn json_line(value: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string(value)
        .map_err(|err| Failure::Failed(format!("cannot encode the answer as JSON: {err}")))
}

/// A time as an operator reads it, in UTC to the millisecond.
fn when(at: Timestamp) -> String {
    let time = SystemTime::UNIX_EPOCH + Duration::from_millis(at.as_millis());
    humantime::format_rfc3339_millis(time).to_string()
}

/// An entry's details as `field=value` pairs, times made readable.
fn details(entry: &HistoryEntry) -> String {
    entry
        .details
        .iter()
        // An empty `by` (a transition nobody asked for) and `until=0` (no end) say nothing.
        .filter(|(field, value)| {
            !(field == "by" && value.is_empty() || field == "until" && value == "0")
        })
        .map(|(field, value)| {
            let value = match (field.as_str(), value.parse::<u64>()) {
                ("open_until" | "until", Ok(ms)) if ms > 0 => when(Timestamp::from_millis(ms)),
                _ => printable(value),
            };
            format!("{field}={value}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) async fn history(args: HistoryArgs) -> Result<(), Failure> {
    let store = store_of(&args.store).await?;
    let count = usize::try_from(args.count).unwrap_or(usize::MAX);
    let entries = store
        .history(args.name.as_deref(), count)
        .await
        .map_err(store_failure)?;
    if args.json {
        println!("{}", json_line(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        match &args.name {
            Some(name) => println!("no history for breaker {name:?}"),
            None => println!("no history under prefix {:?}", args.store.prefix),
        }
        return Ok(());
    }
    let name_width = entries
        .iter()
        .map(|entry| printable(&entry.name).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<24}  {:<name_width$}  {:<11}  {:>5}  DETAILS",
        "WHEN", "NAME", "EVENT", "GEN"
    );
    for entry in entries.iter().rev() {
        println!(
            "{:<24}  {:<name_width$}  {:<11}  {:>5}  {}",
            when(entry.at),
            printable(&entry.name),
            printable(&entry.event),
            entry.generation,
            details(entry)
        );
    }
    Ok(())
}
