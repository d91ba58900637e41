//! How long an operator's `trip` and `reset` take to reach a running process through the Redis
//! store, for the default `max_staleness` (1 s) and for 100 ms.
//!
//! ```sh
//! cargo run --release -p breaker-store-redis --example propagation       # a throwaway redis-server
//! cargo run --release -p breaker-store-redis --example propagation -- redis://127.0.0.1:6379
//! ```
//!
//! One store stands for a running process: one task calls `acquire`, then `record`, about 1000
//! times a second. A second store, with its own connection and cache, stands for the operator:
//! it trips the breaker, then resets it. For each action the program measures the time from
//! the operator's call to the process's first call that sees it (the first rejection after the
//! trip, the first permit after the reset), 20 times per `max_staleness`, and prints a
//! markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use breaker_core::{
    Action, AsyncBreaker, Event, EventKind, Listeners, Outcome, PermitKind, Policy,
};
use breaker_store_redis::{AsyncRedisBreaker, AsyncRedisStore, RedisConfig};
use breaker_testkit::redis_server::RedisServer;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

/// Actions measured per `max_staleness`.
const REPEATS: u32 = 20;
/// The running process's pace: one call per millisecond.
const CALL_EVERY: Duration = Duration::from_millis(1);

/// What one of the process's calls saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Admitted,
    Rejected,
}

/// What the process did, for the table: a measurement is only as good as its pace, and calls
/// the store failed to answer say nothing about the breaker's state.
#[derive(Debug, Default)]
struct Calls {
    made: AtomicU64,
    unchecked: AtomicU64,
    store_errors: AtomicU64,
}

/// The running process: calls until `stop`, and sends the time and the answer whenever the
/// answer differs from the previous call's.
async fn process(
    breaker: AsyncRedisBreaker,
    changes: mpsc::UnboundedSender<(Instant, Seen)>,
    calls: Arc<Calls>,
    stop: Arc<AtomicBool>,
) {
    let mut ticks = tokio::time::interval(CALL_EVERY);
    // A call that runs late pushes the next ones back instead of bunching them up.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = None;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let decision = breaker.acquire().await;
        // The moment the process knows its answer; recording the outcome comes after.
        let at = Instant::now();
        calls.made.fetch_add(1, Ordering::Relaxed);
        let seen = match decision {
            Ok(permit) => {
                // A permit the store did not answer for (it failed; the policy is fail-open)
                // says nothing about the breaker's state: counted, never taken for a change.
                let unchecked = matches!(permit.kind(), PermitKind::Unchecked);
                breaker.record(permit, Outcome::Success.into()).await;
                if unchecked {
                    calls.unchecked.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Seen::Admitted
            }
            Err(_) => Seen::Rejected,
        };
        if last != Some(seen) {
            last = Some(seen);
            // The receiver outlives this task; a send cannot fail while it runs.
            let _ = changes.send((at, seen));
        }
    }
}

/// How long after `since` the process first saw `want`, waiting at most `limit`.
async fn first_seen(
    changes: &mut mpsc::UnboundedReceiver<(Instant, Seen)>,
    want: Seen,
    since: Instant,
    limit: Duration,
) -> Duration {
    let deadline = tokio::time::Instant::from_std(since + limit);
    loop {
        let (at, seen) = tokio::time::timeout_at(deadline, changes.recv())
            .await
            .unwrap_or_else(|_| panic!("the process did not see {want:?} within {limit:?}"))
            .expect("the process runs until told to stop");
        // Changes from before `since` are left over from earlier actions.
        if seen == want && at >= since {
            return at - since;
        }
    }
}

/// One row of the table.
struct Row {
    max_staleness: Duration,
    push: bool,
    trips: Vec<Duration>,
    resets: Vec<Duration>,
    calls_per_second: f64,
    unchecked: u64,
    store_errors: u64,
}

async fn measure(url: &str, max_staleness: Duration, push: bool) -> Row {
    // Keys apart from any application's, and from earlier runs of this program.
    let prefix = format!("propagation-{}", std::process::id());
    let name = format!("staleness-{}ms-push-{push}", max_staleness.as_millis());
    // The default policy keeps the breaker open for 3 minutes after a trip, so during the
    // measurement only the operator's reset closes it.
    let policy = Policy::default();
    let process_store = AsyncRedisStore::connect(
        RedisConfig::standalone(url)
            .prefix(&prefix)
            .max_staleness(max_staleness)
            .push(push),
    )
    .await
    .unwrap();
    let operator_store = AsyncRedisStore::connect(RedisConfig::standalone(url).prefix(&prefix))
        .await
        .unwrap();
    process_store.ping().await.unwrap();
    operator_store.ping().await.unwrap();

    let calls = Arc::new(Calls::default());
    let counting = calls.clone();
    let listeners = Listeners::new().with(move |event: &Event<'_>| {
        if matches!(event.kind, EventKind::StoreError(_)) {
            counting.store_errors.fetch_add(1, Ordering::Relaxed);
        }
    });
    let breaker = process_store
        .breaker(&name, policy.clone())
        .await
        .unwrap()
        .with_listeners(listeners);
    let operator = operator_store.breaker(&name, policy).await.unwrap();

    let (sender, mut changes) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let task = tokio::spawn(process(breaker, sender, calls.clone(), stop.clone()));
    first_seen(
        &mut changes,
        Seen::Admitted,
        started,
        Duration::from_secs(10),
    )
    .await;

    // Far above what either action should take, so only a broken store ends the program.
    let limit = max_staleness * 10 + Duration::from_secs(5);
    let (mut trips, mut resets) = (Vec::new(), Vec::new());
    for i in 0..REPEATS {
        let tripping = Instant::now();
        operator.operate(Action::Trip).await.unwrap();
        trips.push(first_seen(&mut changes, Seen::Rejected, tripping, limit).await);
        // While open, the process asks Redis once per max_staleness, counted from the reply
        // that told it of the trip. Waiting i/20 of max_staleness lands the resets evenly
        // across that cycle, as resets made at random moments would land.
        tokio::time::sleep(max_staleness * i / REPEATS).await;
        let resetting = Instant::now();
        operator.operate(Action::Reset).await.unwrap();
        resets.push(first_seen(&mut changes, Seen::Admitted, resetting, limit).await);
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();

    Row {
        max_staleness,
        push,
        trips,
        resets,
        calls_per_second: calls.made.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        unchecked: calls.unchecked.load(Ordering::Relaxed),
        store_errors: calls.store_errors.load(Ordering::Relaxed),
    }
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[middle - 1] + sorted[middle]) / 2
    } else {
        sorted[middle]
    }
}

fn max(samples: &[Duration]) -> Duration {
    samples.iter().copied().max().unwrap_or_default()
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let given = std::env::args().nth(1);
    // Without a URL, a throwaway server, kept alive until the end.
    let (_server, url) = match &given {
        Some(url) => (None, url.clone()),
        None => {
            let server = RedisServer::start();
            let url = server.url();
            (Some(server), url)
        }
    };
    let mut rows = Vec::new();
    for push in [false, true] {
        for max_staleness in [Duration::from_secs(1), Duration::from_millis(100)] {
            rows.push(measure(&url, max_staleness, push).await);
        }
    }

    // A URL with credentials is not printed.
    let shown = match &given {
        Some(url) if url.contains('@') => " -- <redis-url>".to_owned(),
        Some(url) => format!(" -- {url}"),
        None => String::new(),
    };
    println!("command: `cargo run --release -p breaker-store-redis --example propagation{shown}`");
    println!(
        "date: {}",
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    println!(
        "redis: {}",
        if given.is_some() {
            "the URL given"
        } else {
            "a throwaway redis-server on 127.0.0.1"
        }
    );
    println!();
    println!(
        "Time from the operator's call to the running process's first call that sees it, \
         {REPEATS} actions each; the process calls about every {} and the breaker stays open \
         for 3 min unless reset.",
        ms(CALL_EVERY)
    );
    println!();
    println!(
        "| changes pushed | max_staleness | trip: median | trip: max | reset: median | \
         reset: max | calls/s | unchecked calls | store errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let staleness = if row.max_staleness == Duration::from_secs(1) {
            "1 s (default)".to_owned()
        } else {
            format!("{} ms", row.max_staleness.as_millis())
        };
        println!(
            "| {} | {staleness} | {} | {} | {} | {} | {:.0} | {} | {} |",
            if row.push { "yes" } else { "no (polling)" },
            ms(median(&row.trips)),
            ms(max(&row.trips)),
            ms(median(&row.resets)),
            ms(max(&row.resets)),
            row.calls_per_second,
            row.unchecked,
            row.store_errors,
        );
    }
}
