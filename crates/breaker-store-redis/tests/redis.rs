//! The Redis store against real `redis-server` processes started by the test kit: the shared
//! conformance suite (async and blocking, single node and cluster), a differential test
//! against the core, failures of Redis under load, and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use breaker_core::{
    Action, AsyncBreaker, BlockingBreaker, BlockingOperate, Clock, Event, EventKind, Listeners,
    ManualClock, Outcome, Override, Permit, PermitKind, Policy, Recorded, RejectReason, Rejected,
    Report, Snapshot, State, StoreErrorKind, StoreFailurePolicy, Timestamp, Transition, TripCause,
};
use breaker_store_redis::{AsyncRedisBreaker, AsyncRedisStore, BlockingRedisStore, RedisConfig};
use breaker_testkit::differential::{Step, check, scenarios_stepping_back};
use breaker_testkit::redis_server::{RedisCluster, RedisServer};
use breaker_testkit::{CoreSubject, Fixture, Subject, runtime};
use proptest::prelude::*;

mod common;

fn single() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

/// A key prefix no other test of this process uses.
fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("test{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

fn start_clock() -> ManualClock {
    ManualClock::new(Timestamp::from_millis(1_700_000_000_000))
}

/// A store on the shared single node, under its own `prefix`, on `clock`.
fn single_config(prefix: &str, clock: &ManualClock) -> RedisConfig {
    RedisConfig::standalone(single().url())
        .prefix(prefix)
        .timeout(RELAXED)
        .injected_clock(clock.clone())
}

/// Generous for the conformance suite, which checks decisions, not latency: the machine may
/// be busy with other tests.
const RELAXED: Duration = Duration::from_secs(2);

enum Deployment {
    Single,
    Cluster,
}

fn config(deployment: &Deployment) -> RedisConfig {
    match deployment {
        Deployment::Single => RedisConfig::standalone(single().url()),
        Deployment::Cluster => RedisConfig::cluster(cluster().urls()),
    }
}

/// A fixture's store: under a prefix of its own, on `clock`.
fn fixture_config(
    deployment: &Deployment,
    max_staleness: Duration,
    clock: &ManualClock,
) -> RedisConfig {
    config(deployment)
        .prefix(unique_prefix())
        .timeout(RELAXED)
        .max_staleness(max_staleness)
        .injected_clock(clock.clone())
}

struct AsyncSubject(AsyncRedisBreaker);

impl Subject for AsyncSubject {
    fn acquire(&self) -> Result<Permit, Rejected> {
        runtime().block_on(AsyncBreaker::acquire(&self.0))
    }
    fn record(&self, permit: Permit, report: Report) -> Recorded {
        runtime().block_on(AsyncBreaker::record(&self.0, permit, report))
    }
    fn snapshot(&self) -> Snapshot {
        runtime().block_on(self.0.snapshot()).unwrap()
    }
    fn operate(&self, action: Action) -> Option<Transition> {
        runtime().block_on(self.0.operate(action)).unwrap()
    }
}

struct AsyncFixture {
    clock: ManualClock,
    store: AsyncRedisStore,
}

impl AsyncFixture {
    fn new(deployment: Deployment) -> AsyncFixture {
        AsyncFixture::with(deployment, Duration::from_secs(1))
    }

    fn with(deployment: Deployment, max_staleness: Duration) -> AsyncFixture {
        let clock = start_clock();
        let config = fixture_config(&deployment, max_staleness, &clock);
        let store = runtime()
            .block_on(AsyncRedisStore::connect(config))
            .unwrap();
        AsyncFixture { clock, store }
    }
}

impl Fixture for AsyncFixture {
    fn clock(&self) -> &ManualClock {
        &self.clock
    }
    fn breaker(&self, name: &str, policy: Policy) -> Box<dyn Subject> {
        Box::new(AsyncSubject(
            runtime()
                .block_on(self.store.breaker(name, policy))
                .unwrap(),
        ))
    }
}

struct BlockingFixture {
    clock: ManualClock,
    store: BlockingRedisStore,
}

impl BlockingFixture {
    fn new(deployment: Deployment) -> BlockingFixture {
        BlockingFixture::with(deployment, Duration::from_secs(1))
    }

    fn with(deployment: Deployment, max_staleness: Duration) -> BlockingFixture {
        let clock = start_clock();
        let config = fixture_config(&deployment, max_staleness, &clock);
        BlockingFixture {
            store: BlockingRedisStore::connect(config).unwrap(),
            clock,
        }
    }
}

impl Fixture for BlockingFixture {
    fn clock(&self) -> &ManualClock {
        &self.clock
    }
    fn breaker(&self, name: &str, policy: Policy) -> Box<dyn Subject> {
        Box::new(self.store.breaker(name, policy).unwrap())
    }
}

mod async_single {
    use super::*;
    breaker_testkit::conformance_suite!(AsyncFixture::new(Deployment::Single));
}

mod blocking_single {
    use super::*;
    breaker_testkit::conformance_suite!(BlockingFixture::new(Deployment::Single));
}

mod async_cluster {
    use super::*;
    breaker_testkit::conformance_suite!(AsyncFixture::new(Deployment::Cluster));
}

mod blocking_cluster {
    use super::*;
    breaker_testkit::conformance_suite!(BlockingFixture::new(Deployment::Cluster));
}

/// Drives `steps` through the core and through a breaker of `fixture`, demanding the same
/// decisions, transitions and snapshots at every step.
fn differential(
    fixture: &dyn Fixture,
    policy: Policy,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let core = CoreSubject::new(policy.clone(), fixture.clock().clone());
    let redis = fixture.breaker("differential", policy);
    check(fixture.clock(), &core, &*redis, steps)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: breaker_testkit::cases(128), ..ProptestConfig::default() })]

    /// Every decision made by the script (no cache) matches the core's: any window, up to
    /// 1000 buckets, long overrides, a clock stepping back.
    #[test]
    fn script_agrees_with_the_core((policy, steps) in scenarios_stepping_back(160)) {
        differential(&AsyncFixture::with(Deployment::Single, Duration::ZERO), policy, &steps)?;
    }

    /// With the cache answering pre-call checks, one process still sees the core's decisions.
    #[test]
    fn cached_store_agrees_with_the_core((policy, steps) in scenarios_stepping_back(160)) {
        differential(&AsyncFixture::with(Deployment::Single, Duration::from_secs(1)), policy, &steps)?;
    }

    /// The blocking store, with its cache, likewise.
    #[test]
    fn blocking_store_agrees_with_the_core((policy, steps) in scenarios_stepping_back(160)) {
        differential(&BlockingFixture::with(Deployment::Single, Duration::from_secs(1)), policy, &steps)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: breaker_testkit::cases(32), ..ProptestConfig::default() })]

    /// On a Cluster, through both stores.
    #[test]
    fn cluster_stores_agree_with_the_core((policy, steps) in scenarios_stepping_back(120)) {
        differential(&AsyncFixture::with(Deployment::Cluster, Duration::ZERO), policy.clone(), &steps)?;
        differential(&BlockingFixture::with(Deployment::Cluster, Duration::from_secs(1)), policy, &steps)?;
    }
}

/// An ordinary call's ignored outcome changes nothing, so no store sends it: an override that
/// expired meanwhile is still in force if the clock then steps back, in the core as in Redis.
#[test]
fn an_ignored_outcome_changes_nothing_even_an_expired_override() {
    let steps = [
        Step::Acquire,
        Step::Operate(Action::Override {
            mode: Override::ForcedOpen,
            duration: Some(Duration::from_millis(1)),
        }),
        Step::Advance(1),
        Step::Record(0, Outcome::Ignored),
        Step::StepBack(1),
        Step::Acquire,
    ];
    let policy = Policy::default();
    differential(
        &AsyncFixture::with(Deployment::Single, Duration::ZERO),
        policy.clone(),
        &steps,
    )
    .unwrap();
    differential(
        &AsyncFixture::with(Deployment::Single, Duration::from_secs(1)),
        policy.clone(),
        &steps,
    )
    .unwrap();
    differential(
        &BlockingFixture::with(Deployment::Single, Duration::from_secs(1)),
        policy,
        &steps,
    )
    .unwrap();
}

fn policy(on_store_failure: StoreFailurePolicy) -> Policy {
    Policy::builder()
        .minimum_failures(3)
        .failure_rate(50.0)
        .on_store_failure(on_store_failure)
        .build()
        .unwrap()
}

/// Store errors reported to listeners: their kind and how they print.
type ErrorLog = Arc<Mutex<Vec<(StoreErrorKind, String)>>>;

/// Every store error a breaker reports, by kind.
fn error_log() -> (Listeners, ErrorLog) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let listeners = Listeners::new().with(move |event: &Event<'_>| {
        if let EventKind::StoreError(err) = event.kind {
            sink.lock()
                .unwrap()
                .push((err.kind(), format!("{err} {err:?}")));
        }
    });
    (listeners, log)
}

#[test]
fn closed_path_costs_one_script_call_per_call() {
    let server = RedisServer::start();
    let store = BlockingRedisStore::connect(RedisConfig::standalone(server.url()).timeout(RELAXED))
        .unwrap();
    let breaker = store.breaker("one-round-trip", Policy::default()).unwrap();
    // Warm up: the script is loaded and the state cached.
    for _ in 0..10 {
        let permit = BlockingBreaker::acquire(&breaker).unwrap();
        BlockingBreaker::record(&breaker, permit, Outcome::Success.into());
    }
    let scripts = || {
        let calls = server.command_calls();
        calls.get("evalsha").copied().unwrap_or(0) + calls.get("eval").copied().unwrap_or(0)
    };
    let before = scripts();
    let calls = 1_000;
    for _ in 0..calls {
        let permit = BlockingBreaker::acquire(&breaker).unwrap();
        assert_eq!(permit.kind(), PermitKind::Normal);
        BlockingBreaker::record(&breaker, permit, Outcome::Success.into());
    }
    let per_call = (scripts() - before) as f64 / calls as f64;
    assert!(per_call <= 1.0, "{per_call} script calls per call");
    assert_eq!(
        BlockingOperate::snapshot(&breaker).unwrap().counts.calls,
        calls + 10
    );
}

#[test]
fn keys_have_a_ttl_share_a_slot_and_stay_bounded() {
    let cluster = cluster();
    let prefix = unique_prefix();
    let clock = start_clock();
    let store = BlockingRedisStore::connect(
        RedisConfig::cluster(cluster.urls())
            .prefix(&prefix)
            .timeout(RELAXED)
            .injected_clock(clock.clone()),
    )
    .unwrap();
    let p = Policy::builder()
        .window(Duration::from_secs(10))
        .buckets(10)
        .build()
        .unwrap();
    let breaker = store.breaker("bounded {x}", p).unwrap();
    for second in 0..100 {
        for _ in 0..5 {
            let permit = BlockingBreaker::acquire(&breaker).unwrap();
            BlockingBreaker::record(&breaker, permit, Outcome::Success.into());
        }
        clock.advance(Duration::from_millis(1_000 + second % 3));
    }
    let node = &cluster.nodes()[0];
    let state = format!("{prefix}:{{=bounded %7Bx%7D}}");
    let policies = format!("{state}:policies");
    let slot = |key: &str| node.command(&["CLUSTER", "KEYSLOT", key]).unwrap();
    assert_eq!(slot(&state), slot(&policies));
    let owner = |key: &str| {
        cluster
            .nodes()
            .iter()
            .find(|node| node.command(&["EXISTS", key]).as_deref() == Ok("1"))
            .unwrap_or_else(|| panic!("no node holds {key}"))
    };
    for key in [&state, &policies, &format!("{prefix}:registry")] {
        let ttl: i64 = owner(key).command(&["PTTL", key]).unwrap().parse().unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
    let fields: usize = owner(&state)
        .command(&["HLEN", &state])
        .unwrap()
        .parse()
        .unwrap();
    assert!(fields <= 3 * 10 + 4, "{fields} fields for 10 buckets");
}

/// A key written by the layout before the packed state (one hash field per value) is read
/// from those fields once: an open breaker stays open with its generation, epoch and
/// counts, and its first write replaces the old fields with the packed ones.
#[test]
fn a_key_of_the_earlier_layout_is_read_once() {
    let clock = start_clock();
    let prefix = unique_prefix();
    let store = BlockingRedisStore::connect(single_config(&prefix, &clock)).unwrap();
    let key = format!("{prefix}:{{=earlier}}");
    let now = clock.now().as_millis();
    let (open_until, bucket) = ((now + 60_000).to_string(), (now / 1_000).to_string());
    let slot = format!("{}", now / 1_000 % 60);
    let tag = format!("{}", now / 1_000 + 1);
    #[rustfmt::skip]
    let fields = [
        "st", "1", "gen", "3", "ou", &open_until, "om", "60000", "sc", "0", "tk", "0",
        "ov", "0", "ovu", "0", "ep", "12345", "sq", "40", "tc", "4", "tf", "3",
        "wb", &bucket, "ca", "0", "qs", "0", "xp", "0", "pr", "", "rp", "",
    ];
    let mut hset = vec!["HSET", &key];
    hset.extend(fields);
    let (t, c, f) = (format!("t{slot}"), format!("c{slot}"), format!("f{slot}"));
    hset.extend([t.as_str(), &tag, &c, "4", &f, "3"]);
    single().command(&hset).unwrap();
    let breaker = store
        .breaker("earlier", policy(StoreFailurePolicy::FailClosed))
        .unwrap();
    let rejected = BlockingBreaker::acquire(&breaker).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Open);
    let snapshot = BlockingOperate::snapshot(&breaker).unwrap();
    assert_eq!(
        (snapshot.state, snapshot.generation),
        (State::Open, 3),
        "{snapshot:?}"
    );
    assert_eq!((snapshot.counts.calls, snapshot.counts.failures), (4, 3));
    let command = |args: &[&str]| single().command(args);
    assert_eq!(
        common::read_state(command, &key, "ep").as_deref(),
        Ok("12345")
    );
    assert_eq!(common::read_state(command, &key, "gen").as_deref(), Ok("3"));
    for old in ["st", "gen", "ou", "ep", "sq", "tc", "xp"] {
        assert_eq!(
            single().command(&["HEXISTS", &key, old]).as_deref(),
            Ok("0"),
            "{old} is gone"
        );
    }
}

#[test]
fn one_corrupt_field_costs_only_that_field() {
    let clock = start_clock();
    let prefix = unique_prefix();
    let store =
        BlockingRedisStore::connect(single_config(&prefix, &clock).max_staleness(Duration::ZERO))
            .unwrap();
    let (listeners, log) = error_log();
    let breaker = store
        .breaker("garbage", policy(StoreFailurePolicy::FailClosed))
        .unwrap()
        .with_listeners(listeners);
    let key = format!("{prefix}:{{=garbage}}");
    let corrupt_reports = || {
        // Listeners hear of store events off the caller's thread; flush waits for them.
        breaker.flush().unwrap();
        log.lock()
            .unwrap()
            .iter()
            .filter(|(kind, _)| *kind == StoreErrorKind::Corrupt)
            .count()
    };

    // An open breaker whose state turns to garbage stays open: a value of the packed state
    // that is out of range (st, ov; all of flags), either packed field unreadable as a whole,
    // or the probe list.
    BlockingOperate::operate(&breaker, Action::Trip).unwrap();
    let command = |args: &[&str]| single().command(args);
    for (field, value) in [
        ("st", "3"),
        ("ov", "3"),
        ("pr", "1:zz"),
        ("flags", "255"),
        ("s", "not packed"),
        ("x", "not packed"),
    ] {
        if matches!(field, "pr" | "s" | "x") {
            single().command(&["HSET", &key, field, value]).unwrap();
        } else {
            common::write_state(command, &key, field, value).unwrap();
        }
        let reported = corrupt_reports();
        let rejected = BlockingBreaker::acquire(&breaker).unwrap_err();
        assert_eq!(rejected.reason(), RejectReason::Open, "{field} = {value}");
        assert_eq!(
            corrupt_reports(),
            reported + 1,
            "{field} = {value} reported"
        );
        assert_eq!(
            BlockingOperate::snapshot(&breaker).unwrap().state,
            State::Open
        );
    }

    // Counts in two buckets; garbage in one bucket loses that bucket's counts only.
    BlockingOperate::operate(&breaker, Action::Reset).unwrap();
    let fail = || {
        let permit = BlockingBreaker::acquire(&breaker).unwrap();
        BlockingBreaker::record(&breaker, permit, Outcome::Failure.into());
    };
    fail();
    let first_slot = (clock.now().as_millis() / 1_000) % 60;
    clock.advance(Duration::from_secs(1));
    fail();
    assert_eq!(BlockingOperate::snapshot(&breaker).unwrap().counts.calls, 2);
    // The running totals are read on every call, the buckets only when they leave the
    // window or the totals must be counted again: garbage in both is met at once (totals
    // below the failures they count cannot be right).
    single()
        .command(&["HSET", &key, &format!("t{first_slot}"), "-1"])
        .unwrap();
    common::write_state(command, &key, "tc", "0").unwrap();
    fail();
    let counts = BlockingOperate::snapshot(&breaker).unwrap().counts;
    assert_eq!((counts.calls, counts.failures), (2, 2), "one bucket lost");
    // A counter that holds garbage restarts its bucket with the call that meets it.
    let slot = (clock.now().as_millis() / 1_000) % 60;
    single()
        .command(&["HSET", &key, &format!("c{slot}"), "lots"])
        .unwrap();
    fail();
    assert_eq!(BlockingOperate::snapshot(&breaker).unwrap().counts.calls, 1);
    // The rest of the state (open period, tickets, override's end): the state is kept,
    // calls go on being counted.
    single()
        .command(&["HSET", &key, "x", "not a number"])
        .unwrap();
    fail();
    assert_eq!(BlockingOperate::snapshot(&breaker).unwrap().counts.calls, 2);

    // A key that is not a hash at all holds nothing to keep: the call follows the failure
    // policy (fail-closed), and the breaker starts afresh on the next call.
    single()
        .command(&["SET", &key, "a string, not a hash"])
        .unwrap();
    let rejected = BlockingBreaker::acquire(&breaker).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::StoreUnavailable);
    let permit = BlockingBreaker::acquire(&breaker).expect("healed");
    BlockingBreaker::record(&breaker, permit, Outcome::Success.into());
    assert_eq!(BlockingOperate::snapshot(&breaker).unwrap().counts.calls, 1);
    assert!(corrupt_reports() >= 8, "{:?}", log.lock().unwrap());
}

#[test]
fn bad_urls_are_clear_errors_and_secrets_stay_secret() {
    for url in [
        "http://127.0.0.1:6379",
        "redis://:s3cret@[bad",
        "not a url at all s3cret",
    ] {
        let err = BlockingRedisStore::connect(RedisConfig::standalone(url)).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Config, "{url}: {err}");
        assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
        let err = runtime()
            .block_on(AsyncRedisStore::connect(RedisConfig::standalone(url)))
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
    }
    let prefix = RedisConfig::standalone(single().url()).prefix("{oops}");
    assert_eq!(
        BlockingRedisStore::connect(prefix).unwrap_err().kind(),
        StoreErrorKind::Config
    );
}

#[test]
fn unreachable_redis_follows_the_failure_policy_within_the_timeout() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://user:s3cret@127.0.0.1:{port}");
    let timeout = Duration::from_millis(50);
    let blocking =
        BlockingRedisStore::connect(RedisConfig::standalone(&url).timeout(timeout)).unwrap();
    let store = runtime()
        .block_on(AsyncRedisStore::connect(
            RedisConfig::standalone(&url).timeout(timeout),
        ))
        .unwrap();
    assert!(!format!("{store:?} {blocking:?}").contains("s3cret"));
    for (failure, expect_permit) in [
        (StoreFailurePolicy::FailOpen, true),
        (StoreFailurePolicy::FailClosed, false),
        (StoreFailurePolicy::Local, true),
    ] {
        let (listeners, log) = error_log();
        let sync = blocking
            .breaker("unreachable", policy(failure))
            .unwrap()
            .with_listeners(listeners.clone());
        let started = Instant::now();
        let decision = BlockingBreaker::acquire(&sync);
        assert!(
            started.elapsed() < timeout + Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(decision.is_ok(), expect_permit, "{failure:?}");
        if let Ok(permit) = decision {
            let recorded = BlockingBreaker::record(&sync, permit, Outcome::Success.into());
            assert_eq!(
                recorded.outcome,
                Outcome::Success,
                "the call's outcome stands"
            );
        }
        let r#async = runtime()
            .block_on(store.breaker("unreachable", policy(failure)))
            .unwrap()
            .with_listeners(listeners);
        let started = Instant::now();
        let decision = runtime().block_on(AsyncBreaker::acquire(&r#async));
        assert!(
            started.elapsed() < timeout + Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(decision.is_ok(), expect_permit, "{failure:?}");
        breaker_testkit::eventually("listeners hear of the failures", || {
            log.lock().unwrap().len() >= 2
        });
        let logged = log.lock().unwrap();
        assert!(!logged.is_empty());
        for (_, text) in logged.iter() {
            assert!(!text.contains("s3cret"), "{text}");
        }
    }
    let err = blocking.ping().unwrap_err();
    assert!(!format!("{err} {err:?}").contains("s3cret"));
}

#[test]
fn local_fallback_trips_on_its_own_while_redis_is_away() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = BlockingRedisStore::connect(
        RedisConfig::standalone(format!("redis://127.0.0.1:{port}"))
            .timeout(Duration::from_millis(50)),
    )
    .unwrap();
    let breaker = store
        .breaker("local", policy(StoreFailurePolicy::Local))
        .unwrap();
    let mut tripped = false;
    for _ in 0..3 {
        let permit = BlockingBreaker::acquire(&breaker).unwrap();
        tripped |= matches!(
            BlockingBreaker::record(&breaker, permit, Outcome::Failure.into()).transition,
            Some(Transition::Tripped { .. })
        );
    }
    assert!(tripped, "the local breaker counted the failures");
    assert_eq!(
        BlockingBreaker::acquire(&breaker).unwrap_err().reason(),
        RejectReason::Open
    );
}

#[test]
fn local_fallback_gives_way_to_the_fleet_and_starts_afresh() {
    let mut server = RedisServer::start();
    let clock = start_clock();
    let store = BlockingRedisStore::connect(
        RedisConfig::standalone(server.url())
            .timeout(Duration::from_millis(200))
            .max_staleness(Duration::ZERO)
            .injected_clock(clock.clone()),
    )
    .unwrap();
    let breaker = store
        .breaker("local-again", policy(StoreFailurePolicy::Local))
        .unwrap();
    server.kill();
    // Redis is away: the local breaker trips on its own, and reports it.
    let mut tripped = 0;
    for _ in 0..3 {
        let permit = BlockingBreaker::acquire(&breaker).unwrap();
        let recorded = BlockingBreaker::record(&breaker, permit, Outcome::Failure.into());
        tripped += usize::from(matches!(
            recorded.transition,
            Some(Transition::Tripped { .. })
        ));
    }
    assert_eq!(tripped, 1);
    // Its open period passes: it half-opens and hands out its one probe, never reported.
    clock.advance(Duration::from_secs(180));
    let probe = BlockingBreaker::acquire(&breaker).unwrap();
    assert!(probe.is_probe());
    assert_eq!(
        BlockingBreaker::acquire(&breaker).unwrap_err().reason(),
        RejectReason::ProbesBusy
    );
    // Redis is back (empty): the fleet's state wins at once.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    // The first request may meet the broken connection; the next reaches the new server.
    let permit = loop {
        match BlockingBreaker::acquire(&breaker) {
            Ok(permit) if permit.kind() == PermitKind::Normal => break permit,
            Ok(permit) => {
                let _ = BlockingBreaker::record(&breaker, permit, Outcome::Ignored.into());
            }
            Err(rejected) => assert!(Instant::now() < deadline, "{rejected}"),
        }
    };
    assert_eq!(permit.kind(), PermitKind::Normal, "Redis's closed state");
    BlockingBreaker::record(&breaker, permit, Outcome::Success.into());
    // The probe of the old local breaker reports late: it changes nothing.
    assert_eq!(
        BlockingBreaker::record(&breaker, probe, Outcome::Failure.into()).transition,
        None
    );
    // The next outage starts from a fresh local breaker: closed, no probe slot held.
    server.kill();
    let permit = BlockingBreaker::acquire(&breaker).unwrap();
    assert_eq!(permit.kind(), PermitKind::Normal, "a fresh local breaker");
    BlockingBreaker::record(&breaker, permit, Outcome::Success.into());
}

#[test]
fn wrong_password_is_reported_without_the_password() {
    let server = RedisServer::start_with(&["--requirepass", "right-password"]);
    let url = format!("redis://:wrong-password@127.0.0.1:{}", server.port());
    let store =
        BlockingRedisStore::connect(RedisConfig::standalone(&url).timeout(RELAXED)).unwrap();
    let err = store.ping().unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("wrong-password"), "{text}");
    let (listeners, log) = error_log();
    let breaker = store
        .breaker("auth", policy(StoreFailurePolicy::FailOpen))
        .unwrap()
        .with_listeners(listeners);
    let permit = BlockingBreaker::acquire(&breaker).unwrap();
    assert_eq!(permit.kind(), PermitKind::Unchecked);
    breaker_testkit::eventually("listeners hear of the failure", || {
        !log.lock().unwrap().is_empty()
    });
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .all(|(_, text)| !text.contains("wrong-password"))
    );
    let right = format!("redis://:right-password@127.0.0.1:{}", server.port());
    BlockingRedisStore::connect(RedisConfig::standalone(right).timeout(RELAXED))
        .unwrap()
        .ping()
        .unwrap();

    // An ACL user with its own password, for both stores.
    let admin = redis::Client::open(format!(
        "redis://:right-password@127.0.0.1:{}",
        server.port()
    ))
    .unwrap();
    let mut admin = admin.get_connection().unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">app-secret", "~*", "+@all"][..])
        .query(&mut admin)
        .unwrap();
    let acl = format!("redis://app:app-secret@127.0.0.1:{}", server.port());
    let blocking =
        BlockingRedisStore::connect(RedisConfig::standalone(&acl).timeout(RELAXED)).unwrap();
    let breaker = blocking.breaker("acl", Policy::default()).unwrap();
    assert!(matches!(
        BlockingOperate::operate(&breaker, Action::Trip).unwrap(),
        Some(Transition::Tripped { .. })
    ));
    let store = runtime()
        .block_on(AsyncRedisStore::connect(
            RedisConfig::standalone(&acl).timeout(RELAXED),
        ))
        .unwrap();
    let seen = runtime().block_on(async {
        store
            .breaker("acl", Policy::default())
            .await
            .unwrap()
            .snapshot()
            .await
    });
    assert_eq!(seen.unwrap().state, State::Open);
    assert!(!format!("{store:?} {blocking:?} {breaker:?}").contains("app-secret"));
}

#[test]
fn registry_lists_breakers_and_policy_conflicts() {
    let prefix = unique_prefix();
    let config = || {
        RedisConfig::standalone(single().url())
            .prefix(&prefix)
            .timeout(RELAXED)
    };
    let one = runtime()
        .block_on(AsyncRedisStore::connect(config()))
        .unwrap();
    let two = BlockingRedisStore::connect(config()).unwrap();
    let api = runtime()
        .block_on(one.breaker("api", Policy::default()))
        .unwrap();
    two.breaker("api", policy(StoreFailurePolicy::FailOpen))
        .unwrap();
    two.breaker("db", Policy::default()).unwrap();
    runtime().block_on(api.operate(Action::Trip)).unwrap();
    let listed = runtime().block_on(one.list()).unwrap();
    let names: Vec<&str> = listed.iter().map(|info| info.name.as_str()).collect();
    assert_eq!(names, ["api", "db"]);
    assert!(listed[0].policy_conflict());
    assert_eq!(listed[0].policies.len(), 2);
    assert_eq!(listed[0].snapshot.state, State::Open);
    assert!(!listed[1].policy_conflict());
    assert_eq!(two.list().unwrap(), listed);
    // A breaker whose keys expired is dropped from the list.
    single()
        .command(&["DEL", &format!("{prefix}:{{=db}}:policies")])
        .unwrap();
    let listed = two.list().unwrap();
    assert_eq!(listed.len(), 1);
}

#[test]
fn time_comes_from_the_redis_server() {
    let store = runtime()
        .block_on(AsyncRedisStore::connect(
            RedisConfig::standalone(single().url())
                .prefix(unique_prefix())
                .timeout(RELAXED),
        ))
        .unwrap();
    let breaker = runtime()
        .block_on(store.breaker("server-time", Policy::default()))
        .unwrap();
    let Some(Transition::Tripped {
        open_until,
        open_for,
        ..
    }) = runtime().block_on(breaker.operate(Action::Trip)).unwrap()
    else {
        panic!("a trip");
    };
    let server_now: u64 = {
        // TIME answers an array; the test kit's client reads simple replies, so ask Lua.
        let ms = single()
            .command(&[
                "EVAL",
                "local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000)",
                "0",
            ])
            .unwrap();
        ms.parse().unwrap()
    };
    let opened_at = open_until.as_millis() - open_for.as_millis() as u64;
    assert!(
        server_now.abs_diff(opened_at) < 5_000,
        "{server_now} vs {opened_at}"
    );
}

/// Redis killed, paused and restarted while tasks make calls: no call waits past the timeout
/// plus a margin, each failure policy is honoured, and sharing resumes by itself.
#[test]
fn redis_failures_under_load() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(50);
    let margin = Duration::from_millis(200);
    let config = || {
        RedisConfig::standalone(server.url())
            .timeout(timeout)
            .max_staleness(Duration::ZERO)
    };
    let store = runtime()
        .block_on(AsyncRedisStore::connect(config()))
        .unwrap();
    let observer = BlockingRedisStore::connect(config().timeout(RELAXED)).unwrap();
    let never_trips = |failure| {
        Policy::builder()
            .minimum_failures(1 << 40)
            .on_store_failure(failure)
            .build()
            .unwrap()
    };
    let open = runtime()
        .block_on(store.breaker("fail-open", never_trips(StoreFailurePolicy::FailOpen)))
        .unwrap();
    let closed = runtime()
        .block_on(store.breaker("fail-closed", never_trips(StoreFailurePolicy::FailClosed)))
        .unwrap();
    let watched = observer
        .breaker("fail-open", never_trips(StoreFailurePolicy::FailOpen))
        .unwrap();

    #[derive(Default)]
    struct Tally {
        slowest: Duration,
        unchecked: usize,
        counted: usize,
        unavailable: usize,
    }
    let run_phase = |length: Duration| -> Tally {
        let tally = Arc::new(Mutex::new(Tally::default()));
        runtime().block_on(async {
            let mut tasks = Vec::new();
            for task in 0..8 {
                let (open, closed, tally) = (open.clone(), closed.clone(), tally.clone());
                tasks.push(tokio::spawn(async move {
                    let end = Instant::now() + length;
                    while Instant::now() < end {
                        let breaker = if task % 2 == 0 { &open } else { &closed };
                        let started = Instant::now();
                        let decision = AsyncBreaker::acquire(breaker).await;
                        let mut outcome = None;
                        if let Ok(permit) = decision {
                            outcome = Some(permit.kind());
                            AsyncBreaker::record(breaker, permit, Outcome::Success.into()).await;
                        } else if let Err(rejected) = decision {
                            assert_eq!(rejected.reason(), RejectReason::StoreUnavailable);
                        }
                        let took = started.elapsed();
                        {
                            let mut tally = tally.lock().unwrap();
                            tally.slowest = tally.slowest.max(took);
                            match outcome {
                                Some(PermitKind::Unchecked) => tally.unchecked += 1,
                                Some(_) => tally.counted += 1,
                                None => tally.unavailable += 1,
                            }
                        }
                        // Paces the load: a caller every 2 ms, not a wait for state.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        });
        Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap()
    };
    let calls_seen = || BlockingOperate::snapshot(&watched).map(|s| s.counts.calls);

    let healthy = run_phase(Duration::from_millis(300));
    assert!(healthy.counted > 0 && healthy.unchecked == 0 && healthy.unavailable == 0);
    let before = calls_seen().unwrap();
    assert!(before > 0, "the other process sees the calls");

    server.pause();
    let paused = run_phase(Duration::from_millis(400));
    server.resume();
    assert!(
        paused.slowest < timeout + margin,
        "a call took {:?} while Redis was paused",
        paused.slowest
    );
    assert!(paused.unchecked > 0, "fail-open let calls through");
    assert!(paused.unavailable > 0, "fail-closed rejected calls");

    server.kill();
    let killed = run_phase(Duration::from_millis(300));
    assert!(
        killed.slowest < timeout + margin,
        "a call took {:?} while Redis was down",
        killed.slowest
    );
    assert!(killed.unchecked > 0 && killed.unavailable > 0);

    server.restart();
    // Sharing resumes without restarting anything: calls are counted in Redis again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let recovered = run_phase(Duration::from_millis(200));
        if recovered.counted > 0 && calls_seen().is_ok_and(|calls| calls > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not reconnect");
    }
}

#[test]
fn sentinel_finds_the_master_for_both_stores() {
    let master = RedisServer::start();
    let sentinel = RedisServer::start_sentinel(&master, "breaker-master");
    let config = || {
        RedisConfig::sentinel([sentinel.url()], "breaker-master")
            .prefix(unique_prefix())
            .timeout(RELAXED)
    };
    let prefix = unique_prefix();
    let blocking = BlockingRedisStore::connect(config().prefix(&prefix)).unwrap();
    let store = runtime()
        .block_on(AsyncRedisStore::connect(config().prefix(&prefix)))
        .unwrap();
    let one = blocking.breaker("sentinel", Policy::default()).unwrap();
    let two = runtime()
        .block_on(store.breaker("sentinel", Policy::default()))
        .unwrap();
    assert!(matches!(
        BlockingOperate::operate(&one, Action::Trip).unwrap(),
        Some(Transition::Tripped { .. })
    ));
    let seen = runtime().block_on(two.snapshot()).unwrap();
    assert_eq!(seen.state, State::Open, "both reached the same master");
    assert_eq!(
        runtime()
            .block_on(AsyncBreaker::acquire(&two))
            .unwrap_err()
            .reason(),
        RejectReason::Open
    );
    assert!(
        master
            .command(&["EXISTS", &format!("{prefix}:{{=sentinel}}")])
            .unwrap()
            == "1"
    );
}

#[test]
fn history_records_transitions_and_operator_actions_capped() {
    let clock = start_clock();
    let prefix = unique_prefix();
    let store = BlockingRedisStore::connect(
        single_config(&prefix, &clock)
            .max_staleness(Duration::ZERO)
            .history_len(5)
            .actor("ops <night shift>"),
    )
    .unwrap();
    let breaker = store
        .breaker("histórico", policy(StoreFailurePolicy::FailOpen))
        .unwrap();
    for _ in 0..3 {
        let permit = BlockingBreaker::acquire(&breaker).unwrap();
        BlockingBreaker::record(&breaker, permit, Outcome::Failure.into());
    }
    clock.advance(Duration::from_secs(180));
    let probe = BlockingBreaker::acquire(&breaker).unwrap();
    BlockingBreaker::record(&breaker, probe, Outcome::Success.into());
    clock.advance(Duration::from_secs(1));
    BlockingOperate::operate(
        &breaker,
        Action::Override {
            mode: Override::ForcedOpen,
            duration: Some(Duration::from_secs(60)),
        },
    )
    .unwrap();
    let entries = store.history(Some("histórico"), 100).unwrap();
    let events: Vec<&str> = entries.iter().map(|entry| entry.event.as_str()).collect();
    assert_eq!(events, ["override", "closed", "half-opened", "tripped"]);
    assert_eq!(entries[3].detail("cause"), Some("threshold"));
    assert_eq!(entries[3].detail("failures"), Some("3"));
    assert_eq!(entries[3].generation, 1);
    assert_eq!(entries[0].detail("by"), Some("ops <night shift>"));
    assert_eq!(entries[0].detail("mode"), Some("forced-open"));
    assert_eq!(entries[1].detail("by"), Some(""), "closed by its probe");
    assert!(entries.windows(2).all(|pair| pair[0].at >= pair[1].at));
    // Every registered breaker's history, merged.
    let other = store
        .breaker("other", policy(StoreFailurePolicy::FailOpen))
        .unwrap();
    clock.advance(Duration::from_secs(1));
    BlockingOperate::operate(&other, Action::Trip).unwrap();
    let all = store.history(None, 2).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].name, "other");
    assert_eq!(all[0].detail("cause"), Some("operator"));
    // Bounded: trimming is approximate (whole stream nodes of 100 entries), never unbounded.
    for _ in 0..400 {
        BlockingOperate::operate(&other, Action::Trip).unwrap();
    }
    let key = format!("{prefix}:{{=other}}:history");
    let len: usize = single().command(&["XLEN", &key]).unwrap().parse().unwrap();
    assert!(len <= 5 + 100, "{len} entries kept");
    let ttl: i64 = single().command(&["PTTL", &key]).unwrap().parse().unwrap();
    assert!(ttl > 0, "the history expires with the breaker");
    assert!(store.history(None, 0).is_err());
}

#[test]
fn the_window_reads_as_buckets() {
    let clock = start_clock();
    let store = BlockingRedisStore::connect(single_config(&unique_prefix(), &clock)).unwrap();
    let breaker = store
        .breaker("buckets", policy(StoreFailurePolicy::FailOpen))
        .unwrap();
    let call = |outcome: Outcome| {
        let permit = BlockingBreaker::acquire(&breaker).unwrap();
        BlockingBreaker::record(&breaker, permit, outcome.into());
    };
    call(Outcome::Success);
    call(Outcome::Failure);
    clock.advance(Duration::from_secs(2));
    call(Outcome::Success);
    let buckets = breaker.window().unwrap();
    let counts: Vec<(u64, u64)> = buckets.iter().map(|b| (b.calls, b.failures)).collect();
    assert_eq!(counts, [(2, 1), (1, 0)]);
    assert_eq!(
        buckets[1].start.as_millis() - buckets[0].start.as_millis(),
        2_000
    );
    assert!(buckets[1].start <= clock.now());
}

#[test]
fn a_backends_retry_after_opens_the_breaker_for_every_process() {
    let clock = start_clock();
    let prefix = unique_prefix();
    let process = || BlockingRedisStore::connect(single_config(&prefix, &clock)).unwrap();
    let (first, second) = (process(), process());
    let policy = policy(StoreFailurePolicy::FailOpen);
    let a = first.breaker("asked-to-wait", policy.clone()).unwrap();
    let b = second.breaker("asked-to-wait", policy.clone()).unwrap();
    // The second process has seen the breaker closed: its cache says so.
    let permit = BlockingBreaker::acquire(&b).unwrap();
    BlockingBreaker::record(&b, permit, Outcome::Success.into());
    // One 503 with `Retry-After: 3` in the first process opens it for both, at once.
    let permit = BlockingBreaker::acquire(&a).unwrap();
    let recorded = BlockingBreaker::record(
        &a,
        permit,
        Report::new(Outcome::Failure).with_retry_after(Duration::from_secs(3)),
    );
    let Some(Transition::Tripped {
        cause, open_for, ..
    }) = recorded.transition
    else {
        panic!("{recorded:?}");
    };
    assert_eq!(
        (cause, open_for),
        (TripCause::RetryAfter, Duration::from_secs(3))
    );
    // Within max_staleness the second process asks Redis again, and rejects with the wait.
    clock.advance(Duration::from_secs(1));
    let rejected = BlockingBreaker::acquire(&b).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Open);
    assert_eq!(rejected.retry_after(), Duration::from_secs(2));
    let info = first.list().unwrap();
    assert!(info[0].snapshot.open_until.is_some());
    let history = first.history(Some("asked-to-wait"), 1).unwrap();
    assert_eq!(history[0].detail("cause"), Some("retry-after"));
    // After the wait, probes go as usual.
    clock.advance(Duration::from_secs(2));
    assert!(BlockingBreaker::acquire(&b).unwrap().is_probe());
    // A wait of zero (a date in the past, garbage) changes nothing.
    let fresh = first.breaker("not-asked", policy).unwrap();
    let permit = BlockingBreaker::acquire(&fresh).unwrap();
    assert_eq!(
        BlockingBreaker::record(
            &fresh,
            permit,
            Report::new(Outcome::Failure).with_retry_after(Duration::ZERO)
        )
        .transition,
        None
    );
}

#[test]
fn changes_are_pushed_to_running_processes_at_once() {
    let clock = start_clock();
    let prefix = unique_prefix();
    let connect = |push: bool| {
        runtime()
            .block_on(AsyncRedisStore::connect(
                single_config(&prefix, &clock).push(push),
            ))
            .unwrap()
    };
    let (running, polling, operator) = (connect(true), connect(false), connect(false));
    let policy = policy(StoreFailurePolicy::FailOpen);
    // With listeners, as applications make them: the handle gets an engine of its own.
    let breaker = |store: &AsyncRedisStore| {
        runtime()
            .block_on(store.breaker("pushed", policy.clone()))
            .unwrap()
            .with_listeners(Listeners::new())
    };
    let (pushed, polled, ops) = (breaker(&running), breaker(&polling), breaker(&operator));
    let admits = |b: &AsyncRedisBreaker| {
        runtime().block_on(async {
            match AsyncBreaker::acquire(b).await {
                Ok(permit) => {
                    AsyncBreaker::record(b, permit, Outcome::Ignored.into()).await;
                    true
                }
                Err(_) => false,
            }
        })
    };
    assert!(admits(&pushed) && admits(&polled), "both cached closed");
    // The clock does not move: only a pushed change can reach a process before
    // max_staleness has passed.
    runtime().block_on(ops.operate(Action::Trip)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while admits(&pushed) {
        assert!(Instant::now() < deadline, "the trip was not pushed");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        admits(&polled),
        "without push, the cache answers until max_staleness"
    );
    runtime().block_on(ops.operate(Action::Reset)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !admits(&pushed) {
        assert!(Instant::now() < deadline, "the reset was not pushed");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A failover to a replica that lagged (or a backup restored) rolls the key back: the same
/// epoch, a lower write sequence. A running process takes that state within max_staleness,
/// as a new process would, instead of keeping its cached trip until the sequence climbs
/// past it.
#[test]
fn a_rolled_back_key_is_taken_within_max_staleness() {
    let clock = start_clock();
    let prefix = unique_prefix();
    let process = || BlockingRedisStore::connect(single_config(&prefix, &clock)).unwrap();
    let (running, operator) = (process(), process());
    let policy = policy(StoreFailurePolicy::FailOpen);
    let breaker = running.breaker("rolled-back", policy.clone()).unwrap();
    let ops = operator.breaker("rolled-back", policy).unwrap();
    // Writes enough that the rollback below keeps a valid (non-negative) sequence.
    for _ in 0..10 {
        let permit = BlockingBreaker::acquire(&ops).unwrap();
        BlockingBreaker::record(&ops, permit, Outcome::Success.into());
    }
    BlockingOperate::operate(&ops, Action::Trip).unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        BlockingBreaker::acquire(&breaker).unwrap_err().reason(),
        RejectReason::Open,
        "the running process has cached the trip"
    );
    // The replica that takes over missed the last writes.
    let key = format!("{prefix}:{{=rolled-back}}");
    let command = |args: &[&str]| single().command(args);
    let sequence: i64 = common::read_state(command, &key, "sq")
        .unwrap()
        .parse()
        .unwrap();
    let sequence = sequence - 5;
    common::write_state(command, &key, "sq", &sequence.to_string()).unwrap();
    assert!(sequence > 0, "{sequence}");
    BlockingOperate::operate(&ops, Action::Reset).unwrap();
    clock.advance(Duration::from_secs(1));
    for call in 0..10 {
        let permit = BlockingBreaker::acquire(&breaker)
            .unwrap_or_else(|rejected| panic!("call {call} after the rollback: {rejected:?}"));
        BlockingBreaker::record(&breaker, permit, Outcome::Success.into());
    }
}

/// What a process last learnt of an operator's override holds while Redis cannot be
/// reached, until the override's expiry, whatever the failure policy: fail-open never lets
/// calls through a breaker forced open, fail-closed never rejects one forced closed.
#[test]
fn an_override_holds_while_redis_is_unreachable() {
    let server = RedisServer::start();
    let clock = start_clock();
    let config = || {
        RedisConfig::standalone(server.url())
            .prefix(unique_prefix())
            .timeout(Duration::from_millis(100))
            .injected_clock(clock.clone())
    };
    let store = BlockingRedisStore::connect(config()).unwrap();
    let open = store
        .breaker("forced-open", policy(StoreFailurePolicy::FailOpen))
        .unwrap();
    let closed = store
        .breaker("forced-closed", policy(StoreFailurePolicy::FailClosed))
        .unwrap();
    let expiring = store
        .breaker("forced-briefly", policy(StoreFailurePolicy::FailOpen))
        .unwrap();
    BlockingOperate::operate(
        &open,
        Action::Override {
            mode: Override::ForcedOpen,
            duration: None,
        },
    )
    .unwrap();
    BlockingOperate::operate(
        &closed,
        Action::Override {
            mode: Override::ForcedClosed,
            duration: None,
        },
    )
    .unwrap();
    BlockingOperate::operate(
        &expiring,
        Action::Override {
            mode: Override::ForcedOpen,
            duration: Some(Duration::from_secs(3)),
        },
    )
    .unwrap();
    // The processes learn of them as they call.
    clock.advance(Duration::from_secs(1));
    assert!(BlockingBreaker::acquire(&open).is_err());
    assert!(BlockingBreaker::acquire(&closed).is_ok());
    assert!(BlockingBreaker::acquire(&expiring).is_err());
    server.pause();
    clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        let rejected = BlockingBreaker::acquire(&open).unwrap_err();
        assert_eq!(rejected.reason(), RejectReason::ForcedOpen);
        assert!(
            BlockingBreaker::acquire(&closed).is_ok(),
            "forced closed admits"
        );
        let rejected = BlockingBreaker::acquire(&expiring).unwrap_err();
        assert_eq!(rejected.reason(), RejectReason::ForcedOpen);
        assert_eq!(rejected.retry_after(), Duration::from_secs(1));
    }
    // Past its expiry, the failure policy decides again.
    clock.advance(Duration::from_secs(1));
    assert!(BlockingBreaker::acquire(&expiring).is_ok(), "fail-open");
    server.resume();
}

/// The registry's expiry is the longest any process asked for: a process with a short
/// idle TTL cannot make it expire under processes that run for weeks.
#[test]
fn a_short_idle_ttl_does_not_shorten_the_registry() {
    let prefix = unique_prefix();
    let clock = start_clock();
    let store = |ttl: Duration| {
        BlockingRedisStore::connect(single_config(&prefix, &clock).idle_ttl(ttl)).unwrap()
    };
    let long = store(Duration::from_secs(7 * 24 * 3600));
    long.breaker("long-lived", Policy::default()).unwrap();
    let short = store(Duration::from_secs(2));
    short.breaker("short-lived", Policy::default()).unwrap();
    let pttl: i64 = single()
        .command(&["PTTL", &format!("{prefix}:registry")])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pttl > 24 * 3600 * 1000, "the registry expires in {pttl} ms");
}

/// Events the store makes itself (here: Redis unreachable) reach listeners on another
/// thread: a slow listener never delays the call.
#[test]
fn store_events_reach_listeners_off_the_callers_thread() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let timeout = Duration::from_millis(50);
    let store = BlockingRedisStore::connect(
        RedisConfig::standalone(format!("redis://127.0.0.1:{port}")).timeout(timeout),
    )
    .unwrap();
    let threads = Arc::new(Mutex::new(Vec::new()));
    let seen = threads.clone();
    let slow = Listeners::new().with(move |event: &Event<'_>| {
        if let EventKind::StoreError(_) = event.kind {
            seen.lock().unwrap().push(std::thread::current().id());
            // Stands for a slow listener (a network call, a disk write).
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let breaker = store
        .breaker("slow-listener", policy(StoreFailurePolicy::FailOpen))
        .unwrap()
        .with_listeners(slow);
    let started = Instant::now();
    for _ in 0..3 {
        assert!(BlockingBreaker::acquire(&breaker).is_ok(), "fail-open");
    }
    assert!(
        started.elapsed() < 3 * timeout + Duration::from_millis(400),
        "the calls waited for the listener: {:?}",
        started.elapsed()
    );
    breaker_testkit::eventually("the listener hears of the failure", || {
        !threads.lock().unwrap().is_empty()
    });
    assert!(
        threads
            .lock()
            .unwrap()
            .iter()
            .all(|id| *id != std::thread::current().id())
    );
}

/// Breakers on demand leave their names in the registry when their keys expire; each
/// registration checks a few names at random and prunes the expired ones, so the registry
/// stays near the live breakers even when nobody lists it.
#[test]
fn registrations_prune_expired_names_from_the_registry() {
    let prefix = unique_prefix();
    let clock = start_clock();
    let store = |ttl: Duration| {
        BlockingRedisStore::connect(single_config(&prefix, &clock).idle_ttl(ttl)).unwrap()
    };
    let long = store(Duration::from_secs(3600));
    long.breaker("live-0", Policy::default()).unwrap();
    let brief = store(Duration::from_millis(1_500));
    for host in 0..100 {
        brief
            .breaker(&format!("host-{host}"), Policy::default())
            .unwrap();
    }
    let registry = format!("{prefix}:registry");
    let size = || -> usize {
        single()
            .command(&["HLEN", &registry])
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(size() >= 100, "{}", size());
    breaker_testkit::eventually("the brief breakers' keys expire", || {
        single()
            .command(&["EXISTS", &format!("{prefix}:{{=host-99}}:policies")])
            .unwrap()
            == "0"
    });
    for live in 1..=30 {
        long.breaker(&format!("live-{live}"), Policy::default())
            .unwrap();
    }
    assert!(size() <= 45, "{} names left for 31 live breakers", size());
}

/// With `minimum_reporters = 2`, one process's failures alone never open the fleet's breaker
/// (listeners and the history hear that the quorum is short); a second reporter's failure in
/// the window trips it. Reporter ids are checked.
#[test]
fn a_quorum_of_reporters_trips_and_one_process_alone_does_not() {
    let clock = start_clock();
    let prefix = unique_prefix();
    let policy = Policy::builder()
        .minimum_failures(3)
        .failure_rate(50.0)
        .minimum_reporters(2)
        .build()
        .unwrap();
    let process = |reporter: &str| {
        BlockingRedisStore::connect(single_config(&prefix, &clock).reporter(reporter)).unwrap()
    };
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    let listeners = Listeners::new().with(move |event: &Event<'_>| {
        if let EventKind::QuorumShort { reporters, needed } = event.kind {
            sink.lock().unwrap().push((reporters, needed));
        }
    });
    let lone = process("host-a")
        .breaker("quorum", policy.clone())
        .unwrap()
        .with_listeners(listeners);
    for _ in 0..10 {
        let permit = BlockingBreaker::acquire(&lone).expect("the fleet stays closed");
        assert_eq!(
            BlockingBreaker::record(&lone, permit, Outcome::Failure.into()).transition,
            None
        );
    }
    assert_eq!(
        BlockingOperate::snapshot(&lone).unwrap().state,
        State::Closed
    );
    breaker_testkit::eventually("listeners hear the quorum is short", || {
        heard.lock().unwrap().first() == Some(&(1, 2))
    });
    let store = process("host-a");
    let history = store.history(Some("quorum"), 10).unwrap();
    assert!(
        history.iter().any(|entry| entry.event == "quorum-short"),
        "{history:?}"
    );
    // A second process sees failures too: the quorum is met.
    let other = process("host-b").breaker("quorum", policy).unwrap();
    let permit = BlockingBreaker::acquire(&other).unwrap();
    let tripped = BlockingBreaker::record(&other, permit, Outcome::Failure.into()).transition;
    assert!(
        matches!(tripped, Some(Transition::Tripped { .. })),
        "{tripped:?}"
    );
    assert_eq!(
        BlockingOperate::snapshot(&other).unwrap().state,
        State::Open
    );
    for bad in ["", "a:b", "a,b", &"x".repeat(65)] {
        let err =
            BlockingRedisStore::connect(single_config(&prefix, &clock).reporter(bad)).unwrap_err();
        assert!(err.to_string().contains("reporter"), "{err}");
    }
}
