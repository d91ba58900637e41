//! Operators' reads without the script, against a real `redis-server`: a listing reads the
//! stored fields with plain commands and decides in Rust, and gives the script's answer
//! (state, override, counts brought to now, probes, ramp) after every step of random
//! scenarios; and a listing runs no script and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breaker_core::{AsyncBreaker, Clock, ManualClock, Permit, Report, Snapshot, Timestamp};
use breaker_store_redis::{AsyncRedisBreaker, AsyncRedisStore, ListRequest, RedisConfig};
use breaker_testkit::differential::{Step, scenarios};
use breaker_testkit::redis_server::RedisServer;
use breaker_testkit::runtime;
use proptest::prelude::*;

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("reads{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

async fn store_at(server: &RedisServer, prefix: &str, clock: &ManualClock) -> AsyncRedisStore {
    let config = RedisConfig::standalone(server.url())
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .max_staleness(Duration::ZERO)
        .injected_clock(clock.clone());
    AsyncRedisStore::connect(config).await.unwrap()
}

/// The listing's snapshot of breaker `name`, and whether the listing ran a script.
async fn listed(
    server: &RedisServer,
    store: &AsyncRedisStore,
    name: &str,
    windows: bool,
) -> (Snapshot, bool) {
    let scripts = server.script_calls();
    let listing = store
        .list_many(&ListRequest::names([name]).windows(windows))
        .await
        .unwrap();
    let ran_a_script = server.script_calls() != scripts;
    let listed = listing.breakers.into_iter().next().expect("listed");
    (listed.info.expect("readable").snapshot, ran_a_script)
}

/// A clock, a breaker `d` on `server` that makes the calls, and a store and breaker that only
/// read: one that never calls asks the script for the state as any process that only reads
/// would (its ramp follows no close of its own). Each test counts the scripts its server
/// runs, so tests that run at once use servers of their own.
async fn fixture(
    server: &RedisServer,
    policy: breaker_core::Policy,
) -> (
    ManualClock,
    AsyncRedisBreaker,
    AsyncRedisStore,
    AsyncRedisBreaker,
) {
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let prefix = unique_prefix();
    let caller: AsyncRedisBreaker = store_at(server, &prefix, &clock)
        .await
        .breaker("d", policy.clone())
        .await
        .unwrap();
    let reader = store_at(server, &prefix, &clock).await;
    let script_view = reader.breaker("d", policy).await.unwrap();
    (clock, caller, reader, script_view)
}

/// Takes `step` through `caller`, holding its permits in `held`.
async fn apply(
    clock: &ManualClock,
    caller: &AsyncRedisBreaker,
    held: &mut Vec<Permit>,
    step: &Step,
) {
    match step {
        Step::Advance(ms) => clock.advance(Duration::from_millis(*ms)),
        Step::StepBack(_) => {}
        Step::Acquire => {
            if let Ok(permit) = caller.acquire().await {
                held.push(permit);
            }
        }
        Step::Record(which, outcome) => {
            if !held.is_empty() {
                let permit = held.swap_remove(which % held.len());
                caller.record(permit, (*outcome).into()).await;
            }
        }
        Step::RecordRetryAfter(which, outcome, ms) => {
            if !held.is_empty() {
                let permit = held.swap_remove(which % held.len());
                let report = Report::new(*outcome).with_retry_after(Duration::from_millis(*ms));
                caller.record(permit, report).await;
            }
        }
        Step::Operate(action) => {
            caller.operate(*action).await.unwrap();
        }
    }
}

async fn scenario(policy: breaker_core::Policy, steps: &[Step]) -> Result<(), TestCaseError> {
    let (clock, caller, reader, script_view) = fixture(server(), policy).await;
    let mut held: Vec<Permit> = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        if matches!(step, Step::StepBack(_)) {
            continue;
        }
        apply(&clock, &caller, &mut held, step).await;
        let windows = index % 2 == 0;
        let (plain, ran_a_script) = listed(server(), &reader, "d", windows).await;
        prop_assert!(!ran_a_script, "the listing ran a script");
        let by_script = script_view.snapshot().await.unwrap();
        prop_assert_eq!(
            by_script,
            plain,
            "after step {}: {:?} at {:?}",
            index,
            step,
            clock.now()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: breaker_testkit::cases(64), ..ProptestConfig::default() })]

    /// The listing's plain reads give the script's snapshot after every step.
    #[test]
    fn plain_reads_agree_with_the_script((policy, steps) in scenarios(120)) {
        runtime().block_on(scenario(policy, &steps))?;
    }
}

/// A breaker that is registered but was never written, or whose key was lost, lists as a new
/// one; and a listing of many breakers takes a fixed number of round trips.
#[test]
fn many_breakers_in_few_round_trips_and_no_script() {
    // A server of its own: the random test counts the scripts its server runs.
    let server = RedisServer::start();
    runtime().block_on(async {
        let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
        let prefix = unique_prefix();
        let store = store_at(&server, &prefix, &clock).await;
        for i in 0..1_500 {
            let breaker = store
                .breaker(&format!("b{i}"), breaker_core::Policy::default())
                .await
                .unwrap();
            if i % 3 == 0 {
                let permit = breaker.acquire().await.unwrap();
                breaker
                    .record(permit, breaker_core::Outcome::Failure.into())
                    .await;
            }
        }
        clock.advance(Duration::from_secs(2));
        let scripts = server.script_calls();
        let listing = store.list_many(&ListRequest::all()).await.unwrap();
        assert_eq!(server.script_calls(), scripts, "no script ran");
        assert_eq!(listing.breakers.len(), 1_500);
        // The registry, then per 1 000 breakers their policies and states, and the buckets
        // that left the window of those that moved.
        assert!(listing.round_trips <= 1 + 2 * 2, "{}", listing.round_trips);
        let failed = listing
            .breakers
            .iter()
            .filter(|b| b.info.as_ref().unwrap().snapshot.counts.failures == 1)
            .count();
        assert_eq!(failed, 500);
    });
}

/// The ramp after a close by probes, with and without an override over it: the listing says
/// what the script says at each step.
#[test]
fn the_ramp_reads_as_the_script_says_under_an_override() {
    use breaker_core::{Action, Outcome, Override};
    let policy = breaker_core::Policy::builder()
        .minimum_failures(1)
        .failure_rate(50.0)
        .open_for(Duration::from_secs(10))
        .ramp_up(Some(Duration::from_secs(30)))
        .build()
        .unwrap();
    let steps = [
        Step::Acquire,
        Step::Record(0, Outcome::Failure),
        Step::Advance(10_000),
        Step::Acquire,
        Step::Record(0, Outcome::Success),
        Step::Advance(5_000),
        Step::Operate(Action::Override {
            mode: Override::ForcedClosed,
            duration: Some(Duration::from_secs(5)),
        }),
        Step::Advance(1_000),
        Step::Operate(Action::Override {
            mode: Override::ForcedOpen,
            duration: None,
        }),
        Step::Operate(Action::Override {
            mode: Override::Auto,
            duration: None,
        }),
        Step::Advance(10_000),
        Step::Advance(20_000),
    ];
    // A server of its own: the random test counts the scripts its server runs.
    let server = RedisServer::start();
    runtime().block_on(async {
        let (clock, caller, reader, script_view) = fixture(&server, policy).await;
        let mut held = Vec::new();
        let mut ramping = 0;
        for (index, step) in steps.iter().enumerate() {
            apply(&clock, &caller, &mut held, step).await;
            let (plain, ran_a_script) = listed(&server, &reader, "d", false).await;
            assert!(!ran_a_script);
            let by_script = script_view.snapshot().await.unwrap();
            assert_eq!(by_script, plain, "after step {index}: {step:?}");
            ramping += usize::from(plain.ramping_until.is_some());
        }
        assert!(ramping >= 2, "the ramp ran ({ramping} steps)");
    });
}
