//! `breaker run`: GET requests to a URL through one breaker (a number of them, for a while, at a
//! rate), and what happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breaker_core::{
    AsyncBreaker, BlockingOperate, BreakerHandle, Event, EventKind, Listeners, Outcome, Permit,
    Policy, Recorded, RejectReason, Rejected, Report, State, StoreErrorKind, Transition, TripCause,
};
use breaker_http::{Attempt, RequestErrorKind, default_classify};
use breaker_reqwest::{BreakerMiddleware, BreakerOpen};
use breaker_store_memory::MemoryStore;
use breaker_store_redis::AsyncRedisBreaker;
use clap::Args;
use serde_json::json;

use crate::operate::{AccessArgs, connect, store_failure};
use crate::{Failure, PolicyArgs, parse_duration};

/// `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The URL to GET.
    #[arg(long, value_parser = parse_url)]
    url: reqwest::Url,
    /// How many requests to send [default: 20, or no limit with --duration].
    #[arg(long)]
    requests: Option<u64>,
    /// Send until this much time has passed (with --requests too, whichever ends first);
    /// requests in flight then still complete.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Requests started per second, in total, spread evenly (default: as fast as they complete).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// How many at once (1: strictly one after another).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    /// The breaker's name (default: the URL's host).
    #[arg(long, value_parser = parse_name)]
    name: Option<String>,
    /// Where the breaker's state lives: `memory`, or a Redis store to share it between
    /// processes (redis://, a Cluster's nodes, or redis+sentinel://HOST:PORT/MASTER).
    #[arg(long, default_value = "memory", value_name = "ADDRESS", long_help = RUN_STORE_HELP)]
    store: Vec<String>,
    /// Key prefix in Redis.
    #[arg(long, default_value = "breaker")]
    prefix: String,
    #[command(flatten)]
    access: AccessArgs,
    /// How long the state from Redis may answer the pre-call check (0s: ask every time).
    #[arg(long, value_parser = parse_duration)]
    max_staleness: Option<Duration>,
    /// With a Redis store: add outcomes up in the process and send them once per this
    /// interval (for example 5ms), instead of one round trip per call.
    #[arg(long, value_parser = parse_duration)]
    batch: Option<Duration>,
    /// Timeout of each request (above 0).
    #[arg(long, value_parser = parse_timeout, default_value = "10s")]
    timeout: Duration,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// How `run --store` is described in `--help`.
const RUN_STORE_HELP: &str = concat!(
    "Where the breaker's state lives: `memory` (this process only), or a Redis store to \
share it between processes.\n",
    crate::operate::store_syntax!()
);

/// Requests sent when neither `--requests` nor `--duration` is given.
const DEFAULT_REQUESTS: u64 = 20;

/// `--rate`: a positive number of requests per second whose spacing is at least 1 ns.
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| "expected a number of requests per second, like 50 or 0.5".to_owned())?;
    match Duration::try_from_secs_f64(1.0 / rate) {
        Ok(spacing) if rate > 0.0 && !spacing.is_zero() => Ok(rate),
        _ => Err("must be a number of requests per second, above 0 and at most 1e9".to_owned()),
    }
}

/// `--timeout`: a duration above zero (a zero timeout would fail every request unsent).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        timeout if timeout.is_zero() => {
            Err("a timeout of 0 fails every request: give a duration above 0".to_owned())
        }
        timeout => Ok(timeout),
    }
}

/// `--name`: not empty (every breaker needs a name operators can tell apart).
fn parse_name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("a breaker's name cannot be empty".to_owned());
    }
    Ok(text.to_owned())
}

fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text)
        .map_err(|err| format!("{err} (expected http[s]://host[:port]/path)"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        _ => Err("expected an http:// or https:// URL with a host".to_owned()),
    }
}

/// A breaker that remembers the transitions its calls made, with their times, and counts the
/// calls a ramp after a close rejected.
pub(crate) struct Recording<B> {
    inner: B,
    started: Instant,
    transitions: Arc<Mutex<Vec<(Duration, Transition)>>>,
    ramp_rejections: Arc<AtomicU64>,
    store_errors: Arc<StoreErrors>,
}

/// The store errors a run met, as its listeners heard them.
#[derive(Debug, Default)]
pub(crate) struct StoreErrors {
    /// Every store error (down, slow, refused, corrupt).
    all: AtomicU64,
    /// Those that found garbage in the breaker's stored state (each repaired in place).
    corrupt: AtomicU64,
}

impl<B> Recording<B> {
    pub(crate) fn new(inner: B) -> Recording<B> {
        Recording {
            inner,
            started: Instant::now(),
            transitions: Arc::new(Mutex::new(Vec::new())),
            ramp_rejections: Arc::default(),
            store_errors: Arc::default(),
        }
    }

    pub(crate) fn transitions(&self) -> Arc<Mutex<Vec<(Duration, Transition)>>> {
        self.transitions.clone()
    }

    /// Calls rejected because they were outside a ramp's share, so far.
    pub(crate) fn ramp_rejections(&self) -> Arc<AtomicU64> {
        self.ramp_rejections.clone()
    }

    fn note(&self, transition: Option<Transition>) {
        if let Some(transition) = transition {
            let mut transitions = self
                .transitions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            transitions.push((self.started.elapsed(), transition));
        }
    }
}

impl Recording<AsyncRedisBreaker> {
    /// A Redis breaker whose transitions are remembered, in batched mode too: a batch that
    /// trips the breaker is sent by no call, so the store tells listeners of it (an event with
    /// no call's context), and this listens.
    pub(crate) fn redis(breaker: AsyncRedisBreaker) -> Recording<AsyncRedisBreaker> {
        let started = Instant::now();
        let transitions: Arc<Mutex<Vec<(Duration, Transition)>>> = Arc::default();
        let store_errors: Arc<StoreErrors> = Arc::default();
        let (noted, counted) = (transitions.clone(), store_errors.clone());
        let listener = move |event: &Event<'_>| match (event.kind, event.context) {
            (EventKind::Transition(transition), None) => noted
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push((started.elapsed(), transition)),
            (EventKind::StoreError(err), _) => {
                counted.all.fetch_add(1, Ordering::Relaxed);
                if err.kind() == StoreErrorKind::Corrupt {
                    counted.corrupt.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        };
        Recording {
            inner: breaker.with_listeners(Listeners::new().with(listener)),
            started,
            transitions,
            ramp_rejections: Arc::default(),
            store_errors,
        }
    }
}

impl<B: AsyncBreaker> BreakerHandle for Recording<B> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn policy(&self) -> &Policy {
        self.inner.policy()
    }

    fn listeners(&self) -> &Listeners {
        self.inner.listeners()
    }
}

impl<B: AsyncBreaker> AsyncBreaker for Recording<B> {
    async fn acquire(&self) -> Result<Permit, Rejected> {
        let decision = self.inner.acquire().await;
        match &decision {
            Ok(permit) => self.note(permit.transition()),
            Err(rejected) if rejected.reason() == RejectReason::RampingUp => {
                self.ramp_rejections.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        decision
    }

    async fn record(&self, permit: Permit, report: Report) -> Recorded {
        let recorded = self.inner.record(permit, report).await;
        self.note(recorded.transition);
        recorded
    }
}

/// What happened to the requests.
#[derive(Debug, Default)]
struct Tally {
    sent: AtomicU64,
    rejected: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    ignored: AtomicU64,
}

pub(crate) fn state_after(transition: &Transition) -> &'static str {
    match transition {
        Transition::Tripped { .. } => "open",
        Transition::HalfOpened { .. } => "half-open",
        Transition::Closed { .. } => "closed",
        _ => "unknown",
    }
}

/// The shared schedule of `--rate`: one start every `1 / rate` seconds, for all workers together.
struct Pacer {
    /// Behind a lock so that each tick releases exactly one request, whichever worker waits.
    interval: tokio::sync::Mutex<tokio::time::Interval>,
}

impl Pacer {
    fn new(start: tokio::time::Instant, rate: f64) -> Pacer {
        // `parse_rate` guarantees a representable, non-zero spacing; the fallback is never used.
        let spacing = Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::from_secs(1));
        let mut interval = tokio::time::interval_at(start, spacing.max(Duration::from_nanos(1)));
        // Request i starts at start + i / rate. When requests fall behind (a slow backend, too few
        // workers), the schedule slips rather than bursting to catch up: a burst is not the load
        // the user asked for.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pacer {
            interval: tokio::sync::Mutex::new(interval),
        }
    }

    /// Waits for the next start and returns when it was due, or `None` once `end` has come
    /// first (so a slow rate never holds the run past its duration).
    async fn next(&self, end: Option<tokio::time::Instant>) -> Option<tokio::time::Instant> {
        let tick = async { self.interval.lock().await.tick().await };
        match end {
            Some(end) => tokio::time::timeout_at(end, tick).await.ok(),
            None => Some(tick.await),
        }
    }
}

/// What a run did.
struct Run {
    tally: Tally,
    transitions: Vec<(Duration, Transition)>,
    store_errors: Arc<StoreErrors>,
    /// From the first request's start to the last one's end.
    elapsed: Duration,
}

async fn drive<B: AsyncBreaker + 'static>(
    args: &RunArgs,
    breaker: Recording<B>,
) -> Result<Run, Failure> {
    let transitions = breaker.transitions();
    let store_errors = breaker.store_errors.clone();
    let middleware = BreakerMiddleware::new()
        .mount(
            &format!("{}://{}", args.url.scheme(), args.url.authority()),
            breaker,
        )
        .map_err(|err| Failure::Usage(err.to_string()))?;
    let http = reqwest::Client::builder()
        .timeout(args.timeout)
        .build()
        .map_err(|err| Failure::Failed(format!("cannot build the HTTP client: {err}")))?;
    let client = reqwest_middleware::ClientBuilder::new(http)
        .with(middleware)
        .build();
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU64::new(0));
    let limit = match (args.requests, args.duration) {
        (Some(requests), _) => Some(requests),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_REQUESTS),
    };
    let started = tokio::time::Instant::now();
    // A deadline too far away to represent is no deadline.
    let end = args
        .duration
        .and_then(|duration| started.checked_add(duration));
    let pacer = args.rate.map(|rate| Arc::new(Pacer::new(started, rate)));
    let workers: Vec<_> = (0..limit.map_or(args.concurrency, |n| args.concurrency.min(n.max(1))))
        .map(|_| {
            let (client, tally, next, url, pacer) =
                (client.clone(), tally.clone(), next.clone(), args.url.clone(), pacer.clone());
            tokio::spawn(async move {
                // Each request takes a number first, so that `--requests` counts exactly
                // however many workers share the work.
                while limit.is_none_or(|limit| next.fetch_add(1, Ordering::SeqCst) < limit) {
                    let due = match &pacer {
                        Some(pacer) => pacer.next(end).await,
                        None => Some(tokio::time::Instant::now()),
                    };
                    if due.is_none_or(|due| end.is_some_and(|end| due >= end)) {
                        break;
                    }
                    let counter = match client.get(url.clone()).send().await {
                        Ok(response) if response.extensions().get::<BreakerOpen>().is_some() => &tally.rejected,
                        Ok(response) => {
                            tally.sent.fetch_add(1, Ordering::SeqCst);
                            let status = response.status().as_u16();
                            // Read the body so the connection can be reused.
                            let _ = response.bytes().await;
                            match default_classify(&Attempt::Response { status }) {
                                Outcome::Success => &tally.successes,
                                Outcome::Failure => &tally.failures,
                                _ => &tally.ignored,
                            }
                        }
                        Err(err) => {
                            let not_sent = matches!(&err, reqwest_middleware::Error::Reqwest(e) if e.is_builder());
                            let kind = if not_sent { RequestErrorKind::NotSent } else { RequestErrorKind::Transport };
                            if !not_sent {
                                tally.sent.fetch_add(1, Ordering::SeqCst);
                            }
                            match default_classify(&Attempt::Error { kind, error: &err }) {
                                Outcome::Failure => &tally.failures,
                                _ => &tally.ignored,
                            }
                        }
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for worker in workers {
        worker
            .await
            .map_err(|err| Failure::Failed(format!("a request task failed: {err}")))?;
    }
    let elapsed = started.elapsed();
    let tally = Arc::try_unwrap(tally).unwrap_or_default();
    let transitions = transitions
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    Ok(Run {
        tally,
        transitions,
        store_errors,
        elapsed,
    })
}

/// Prints what the run did: one JSON object with `--json`, a few lines of text otherwise.
/// The state is `None` when the store could not say it at the end; `redis_requests`, the
/// requests a Redis store sent, `None` with the memory store.
fn report(
    args: &RunArgs,
    name: &str,
    run: &Run,
    state: Option<State>,
    redis_requests: Option<u64>,
) {
    let load = |n: &AtomicU64| n.load(Ordering::SeqCst);
    let tally = &run.tally;
    let state = state.map_or_else(|| "unknown".to_owned(), |state| state.to_string());
    let (store_errors, corrupt) = (load(&run.store_errors.all), load(&run.store_errors.corrupt));
    if args.json {
        let transitions: Vec<_> = run
            .transitions
            .iter()
            .map(|(at, t)| match cause_of(t) {
                Some(cause) => {
                    json!({"at_ms": at.as_millis() as u64, "to": state_after(t), "cause": cause})
                }
                None => json!({"at_ms": at.as_millis() as u64, "to": state_after(t)}),
            })
            .collect();
        let mut object = json!({
            "name": name,
            "sent": load(&tally.sent),
            "rejected": load(&tally.rejected),
            "successes": load(&tally.successes),
            "failures": load(&tally.failures),
            "ignored": load(&tally.ignored),
            "state": state,
            "store_errors": store_errors,
            "corrupt": corrupt,
            "elapsed_ms": run.elapsed.as_millis() as u64,
            "transitions": transitions,
        });
        if let Some(requests) = redis_requests {
            object["redis_requests"] = json!(requests);
        }
        println!("{object}");
        return;
    }
    // Every request ends in exactly one of these counters, so their sum is how many were made
    // (which, with --duration, no flag says in advance).
    let requests = load(&tally.rejected)
        + load(&tally.successes)
        + load(&tally.failures)
        + load(&tally.ignored);
    println!(
        "breaker {name:?} after {requests} requests to {}:",
        args.url
    );
    println!("  sent      {}", load(&tally.sent));
    println!("  rejected  {}", load(&tally.rejected));
    println!("  successes {}", load(&tally.successes));
    println!("  failures  {}", load(&tally.failures));
    println!("  ignored   {}", load(&tally.ignored));
    println!("  state     {state}");
    if store_errors > 0 {
        println!("  store errors {store_errors} ({corrupt} found garbage, repaired)");
    }
    if let Some(requests) = redis_requests {
        println!("  redis requests {requests}");
    }
    println!("  elapsed   {:.3} s", run.elapsed.as_secs_f64());
    for (at, transition) in &run.transitions {
        let cause = cause_of(transition).map_or(String::new(), |cause| format!(" ({cause})"));
        println!(
            "  at {:>7.3} s: {}{cause}",
            at.as_secs_f64(),
            state_after(transition)
        );
    }
}

/// Why a trip happened, as the report says it.
fn cause_of(transition: &Transition) -> Option<&'static str> {
    match transition {
        Transition::Tripped { cause, .. } => Some(match cause {
            TripCause::Threshold(_) => "threshold",
            TripCause::ProbeFailed => "probe-failed",
            TripCause::Operator => "operator",
            TripCause::RetryAfter => "retry-after",
            _ => "other",
        }),
        _ => None,
    }
}

/// `run`.
pub(crate) async fn run(args: RunArgs) -> Result<(), Failure> {
    let policy = args.policy.policy(Policy::default())?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| args.url.host_str().unwrap_or("breaker").to_owned());
    if args.store.iter().any(|store| store == "memory") {
        if args.store.len() > 1 {
            return Err(Failure::Usage(
                "--store memory keeps the state in this process: give it alone".to_owned(),
            ));
        }
        if args.batch.is_some() {
            return Err(Failure::Usage(
                "--batch needs a Redis --store (the memory store has no round trips to save)"
                    .to_owned(),
            ));
        }
        let breaker = MemoryStore::new()
            .breaker(&name, policy)
            .map_err(store_failure)?;
        let run = drive(&args, Recording::new(breaker.clone())).await?;
        let state = BlockingOperate::snapshot(&breaker)
            .map_err(store_failure)?
            .state;
        report(&args, &name, &run, Some(state), None);
        return Ok(());
    }
    let store = connect(
        &args.store,
        &args.prefix,
        &args.access,
        args.max_staleness,
        args.batch,
    )
    .await?;
    let breaker = store.breaker(&name, policy).await.map_err(store_failure)?;
    let recording = Recording::redis(breaker);
    let breaker = recording.inner.clone();
    let run = drive(&args, recording).await?;
    // What the last batch holds reaches Redis before the state is read and reported. When
    // the store fails now, the summary is printed all the same (the state unknown), and the
    // exit code says the store failed.
    let state = match breaker.flush().await {
        Ok(()) => breaker.snapshot().await.map(|snapshot| snapshot.state),
        Err(err) => Err(err),
    };
    // Events reach the listener thread in order: wait for those of the run to be counted.
    let (told, heard) = tokio::sync::oneshot::channel();
    Listeners::when_told(move || {
        let _ = told.send(());
    });
    let _ = heard.await;
    match state {
        Ok(state) => {
            report(&args, &name, &run, Some(state), Some(store.requests_sent()));
            Ok(())
        }
        Err(err) => {
            report(&args, &name, &run, None, Some(store.requests_sent()));
            Err(store_failure(err))
        }
    }
}
