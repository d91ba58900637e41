//! `dashboard`: the live page and JSON API of every breaker in a Redis store.

mod tls;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use breaker_dashboard::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_METRICS_CAP, Dashboard, RedisBreakers, Server,
};
use breaker_store_redis::AsyncRedisStore;
use clap::Args;

use crate::Failure;
use crate::operate::{StoreArgs, actor, store_addresses, store_config, store_failure};

/// Tokens shorter than this are easy to guess: the command says so.
const SHORT_TOKEN: usize = 16;

/// `dashboard`.
#[derive(Debug, Args)]
pub(crate) struct DashboardArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Where to listen (port 0: any free port). Loopback by default: anyone who can reach
    /// the address can read every breaker.
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR")]
    listen: String,
    /// Allow operator actions to requests carrying `Authorization: Bearer <TOKEN>` (without
    /// one the dashboard is read-only). Prefer the environment variable: a command line is
    /// visible to every user of the machine.
    #[arg(long, env = "BREAKER_DASHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The most breakers /metrics exposes (open and overridden ones first); the exposition
    /// says when it cut.
    #[arg(long, default_value_t = DEFAULT_METRICS_CAP, value_name = "N")]
    metrics_cap: usize,
    /// Also answer requests naming this host (repeatable): the names users reach the
    /// dashboard by. Loopback names and the listen address are always answered; any other
    /// `Host` is refused, so that a web page cannot read the dashboard through DNS rebinding.
    #[arg(long, value_name = "HOST")]
    allow_host: Vec<String>,
    /// Serve HTTPS with this certificate chain (a PEM file, the server's certificate first);
    /// needs --tls-key. Without it the dashboard speaks plain HTTP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (a PEM file).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The most connections held at once. Past it, a new connection takes the place of one
    /// that is only waiting (idle, or still to send its request), or is closed at once.
    #[arg(
        long,
        default_value_t = DEFAULT_MAX_CONNECTIONS as u32,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_connections: u32,
}

/// `metrics`.
#[derive(Debug, Args)]
pub(crate) struct MetricsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The most breakers printed (open and overridden ones first); the exposition says when
    /// it cut.
    #[arg(long, default_value_t = DEFAULT_METRICS_CAP, value_name = "N")]
    cap: usize,
}

/// `metrics`: the exposition once, on stdout. A store that cannot be read is a failure (exit
/// code 1), unlike the dashboard's /metrics, which says `breaker_store_up 0` to its scraper.
pub(crate) async fn metrics(args: MetricsArgs) -> Result<(), Failure> {
    let store = connect(&args.store, "breaker metrics").await?;
    let breakers = RedisBreakers::new(store);
    store_answers(&breakers).await?;
    let text = breaker_dashboard::metrics(&breakers, args.cap).await;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|err| Failure::Failed(format!("cannot write the metrics: {err}")))
}

async fn store_answers(breakers: &RedisBreakers) -> Result<(), Failure> {
    breakers.store().ping().await.map_err(store_failure)
}

async fn connect(store: &StoreArgs, actor_name: &str) -> Result<AsyncRedisStore, Failure> {
    let config = store_config(store_addresses(store)?, &store.prefix, &store.access)?
        .actor(actor(actor_name))
        // A listing of thousands of breakers takes several pipelines, each answered within
        // this; an operator's page can wait longer than a call on the hot path.
        .timeout(Duration::from_secs(2));
    AsyncRedisStore::connect(config)
        .await
        .map_err(store_failure)
}

/// The operator token, if one is given: an empty one is none (read-only), one with
/// whitespace around it a usage error, since no request could ever match it.
fn token(given: Option<String>) -> Result<Option<String>, Failure> {
    match given {
        Some(token) if token.trim() != token => Err(Failure::Usage(
            "the dashboard token (--token or BREAKER_DASHBOARD_TOKEN) starts or ends with \
             whitespace, often a newline or \\r left from the file it was read from: no \
             request's token can match it; remove the whitespace"
                .to_owned(),
        )),
        given => Ok(given.filter(|token| !token.is_empty())),
    }
}

pub(crate) async fn dashboard(args: DashboardArgs) -> Result<(), Failure> {
    let token = token(args.token)?;
    let store = connect(&args.store, "breaker dashboard").await?;
    // A store that is down now is not a reason to refuse to start: the page shows the
    // outage, and the connection recovers by itself.
    if let Err(err) = store.ping().await {
        let (Failure::Usage(why) | Failure::Failed(why) | Failure::Store(why)) = store_failure(err);
        eprintln!(
            "warning: the Redis store does not answer yet ({why}); the page shows an outage until it does"
        );
    }
    // Read before listening: a certificate that cannot be used is a usage error, not a
    // server that fails every handshake.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key).map_err(Failure::Usage)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|err| Failure::Failed(format!("cannot listen on {}: {err}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|err| Failure::Failed(format!("cannot listen on {}: {err}", args.listen)))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    say(&format!(
        "breaker dashboard listening on {scheme}://{address}/"
    ));
    match &token {
        Some(token) => {
            say("operator actions allowed to requests carrying the token");
            if token.chars().count() < SHORT_TOKEN {
                eprintln!(
                    "warning: the token is shorter than {SHORT_TOKEN} characters: easy to guess"
                );
            }
        }
        None => {
            say("read-only: pass --token or set BREAKER_DASHBOARD_TOKEN to allow operator actions")
        }
    }
    if !address.ip().is_loopback() && tls.is_none() {
        eprintln!(
            "warning: listening on {address}, beyond this machine, without TLS: whoever can \
             reach it reads every breaker, and the page, the API and the operator token travel \
             in clear; serve HTTPS with --tls-cert and --tls-key"
        );
    }
    let mut dashboard = Dashboard::new(RedisBreakers::new(store))
        .metrics_cap(args.metrics_cap)
        .allow_host(address.to_string())
        .log(|line| eprintln!("{line}"));
    for host in &args.allow_host {
        dashboard = dashboard.allow_host(host);
    }
    if let Some(token) = token {
        dashboard = dashboard.token(token);
    }
    // The server gives each client's address to the router: failed token attempts are
    // limited per address.
    let max_connections = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
    let server = Server::new(dashboard.router()).max_connections(max_connections);
    let served = match tls {
        None => server.serve(listener, interrupted()).await,
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            server
                .serve_with_handshake(listener, move |tcp| acceptor.accept(tcp), interrupted())
                .await
        }
    };
    served.map_err(|err| Failure::Failed(format!("the dashboard stopped: {err}")))
}

/// Resolves on Ctrl-C. If the signal cannot be watched, never: the server runs until it is
/// killed.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Prints a line on stdout. The server goes on when nobody reads it any more (its output
/// piped to a program that has ended), so a failed write is not an error.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}
