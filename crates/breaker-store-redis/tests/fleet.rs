//! A fleet over time: several processes' stores, each with its own cache, share one breaker
//! in one real Redis, with injected time, in every mode a user can configure: blocking and
//! async stores, unbatched and batched, changes pushed or not, and breakers made on demand
//! and dropped. Random interleavings of calls, held permits, operator actions, Redis losing
//! every key, the key rolled back to an earlier copy (a replica that lagged), the clock
//! stepping back and idle periods past the keys' TTL are checked against the fleet's
//! invariants:
//!
//! - the fleet agrees within `max_staleness`: once that long has passed with no change, every
//!   process decides as Redis's state says;
//! - each transition is reported once, and every new generation is accounted for by one;
//! - no counted call is lost: every report of a permit of the current generation is counted
//!   (in batched mode, once the process has flushed);
//! - a breaker in use stays in the registry;
//! - the closed path costs one script call per call, after a restart too;
//! - listeners never run on the caller's thread;
//! - an async store keeps memory for the live breakers, not for every name it ever used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use breaker_core::{
    Action, AsyncBreaker, BlockingBreaker, BlockingOperate, BreakerHandle, Clock, Event, EventKind,
    Listeners, ManualClock, Outcome, Override, Permit, PermitKind, Policy, Recorded, RejectReason,
    Rejected, Snapshot, State, StoreFailurePolicy, Timestamp, Transition,
};
use breaker_store_redis::{
    AsyncRedisBreaker, AsyncRedisStore, BlockingRedisBreaker, BlockingRedisStore, RedisConfig,
};
use breaker_testkit::redis_server::RedisServer;
use breaker_testkit::runtime;
use proptest::prelude::*;

const PROCESSES: usize = 3;
const MAX_STALENESS: Duration = Duration::from_secs(1);
const IDLE_TTL: Duration = Duration::from_secs(24 * 3600);
const NAME: &str = "fleet";

/// This binary's own server: the simulation flushes it.
fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// The outage simulation's own server: it is paused, which the other simulation must not see.
fn outage_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// The store timeout while Redis may be paused: every request to a paused Redis waits this
/// long, so it is short, yet long enough for a busy machine's Redis to answer in time (a
/// request that times out while Redis is up would fail the simulation's checks).
const OUTAGE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
enum Step {
    /// Process `p` makes `n` calls one after another, each with `outcome`.
    Calls(usize, u32, Outcome),
    /// Process `p` takes a permit and holds it.
    Hold(usize),
    /// A held permit (by index, modulo how many are held) reports `outcome`.
    Release(usize, Outcome),
    Advance(u64),
    ClockBack(u64),
    Trip,
    Reset,
    Override(Override, Option<u64>),
    /// Redis loses every key (a restart with no persistence, `FLUSHALL`).
    Flush,
    /// A copy of the breaker's key is kept, as a replica that stops receiving writes has.
    Save,
    /// The copy kept takes the key's place: a failover to the replica that lagged.
    Rollback,
    /// Process `p` uses `n` breakers on demand, each under a name never used before, and
    /// drops them.
    OnDemand(usize, usize),
    /// Nobody calls for longer than the keys' TTL: they expire.
    Idle,
    /// Redis stops answering (SIGSTOP) for a while, then comes back.
    Outage,
    /// Time passes until every cache is stale; then every process must decide as Redis says.
    Settle,
}

fn outcomes() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => Just(Outcome::Success),
        3 => Just(Outcome::Failure),
        1 => Just(Outcome::Ignored),
    ]
}

fn steps() -> impl Strategy<Value = Step> {
    let process = 0..PROCESSES;
    prop_oneof![
        10 => (process.clone(), 1u32..=6, outcomes()).prop_map(|(p, n, o)| Step::Calls(p, n, o)),
        2 => process.prop_map(Step::Hold),
        2 => (any::<usize>(), outcomes()).prop_map(|(i, o)| Step::Release(i, o)),
        4 => prop_oneof![0u64..=300, 0u64..=6_000].prop_map(Step::Advance),
        1 => (1u64..=10_000).prop_map(Step::ClockBack),
        1 => Just(Step::Trip),
        1 => Just(Step::Reset),
        1 => overrides(),
        1 => Just(Step::Flush),
        1 => Just(Step::Save),
        1 => Just(Step::Rollback),
        1 => (0..PROCESSES, 1usize..=40).prop_map(|(p, n)| Step::OnDemand(p, n)),
        1 => Just(Step::Idle),
        3 => Just(Step::Settle),
    ]
}

fn policies() -> impl Strategy<Value = Policy> {
    policies_failing(Just(StoreFailurePolicy::FailOpen))
}

/// The simulation's policies, with each store-failure policy.
fn policies_on_failure() -> impl Strategy<Value = Policy> {
    policies_failing(prop::sample::select(vec![
        StoreFailurePolicy::FailOpen,
        StoreFailurePolicy::FailClosed,
        StoreFailurePolicy::Local,
    ]))
}

fn policies_failing(
    on_failure: impl Strategy<Value = StoreFailurePolicy>,
) -> impl Strategy<Value = Policy> {
    (
        prop::sample::select(vec![1_000u64, 7_000, 10_000]),
        1u64..=3,
        1u32..=2,
        1u32..=2,
        prop::sample::select(vec![1.0, 2.0]),
        on_failure,
        (
            prop::option::of(prop::sample::select(vec![500u64, 3_000])),
            prop::sample::select(vec![1u32, 1, 2]),
        ),
    )
        .prop_map(
            |(
                window_ms,
                min_failures,
                probes,
                successes,
                backoff,
                on_failure,
                (ramp_ms, quorum),
            )| {
                Policy::builder()
                    .window(Duration::from_millis(window_ms))
                    .minimum_failures(min_failures)
                    .failure_rate(50.0)
                    .open_for(Duration::from_secs(5))
                    .max_open_for(Duration::from_secs(20))
                    .half_open_probes(probes)
                    .successes_to_close(successes)
                    .probe_lease(Duration::from_secs(2))
                    .backoff(backoff)
                    .on_store_failure(on_failure)
                    .ramp_up(ramp_ms.map(Duration::from_millis))
                    .minimum_reporters(quorum)
                    .build()
                    .unwrap()
            },
        )
}

/// How the processes' stores are configured.
#[derive(Clone, Copy, Debug)]
struct Mode {
    asynchronous: bool,
    batched: bool,
    push: bool,
    /// Redis goes away now and then (its own server, a short store timeout).
    outages: bool,
}

fn modes() -> impl Strategy<Value = Mode> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(asynchronous, batched, push)| Mode {
        asynchronous,
        batched,
        // Only the async store listens for pushed changes.
        push: push && asynchronous,
        outages: false,
    })
}

fn modes_with_outages() -> impl Strategy<Value = Mode> {
    modes().prop_map(|mode| Mode {
        outages: true,
        ..mode
    })
}

/// One process's breaker, blocking or async.
enum Proc {
    Blocking(BlockingRedisBreaker),
    Async(AsyncRedisStore, AsyncRedisBreaker),
}

impl Proc {
    fn acquire(&self) -> Result<Permit, Rejected> {
        match self {
            Proc::Blocking(b) => BlockingBreaker::acquire(b),
            Proc::Async(_, b) => runtime().block_on(AsyncBreaker::acquire(b)),
        }
    }

    fn record(&self, permit: Permit, outcome: Outcome) -> Recorded {
        match self {
            Proc::Blocking(b) => BlockingBreaker::record(b, permit, outcome.into()),
            Proc::Async(_, b) => {
                runtime().block_on(AsyncBreaker::record(b, permit, outcome.into()))
            }
        }
    }

    /// Sends what a batch holds, and waits until listeners have heard of what it did.
    fn flush(&self) {
        let result = match self {
            Proc::Blocking(b) => b.flush(),
            Proc::Async(_, b) => runtime().block_on(b.flush()),
        };
        result.unwrap();
    }
}

/// Transitions made by batches (told to listeners, not to a caller), and the threads
/// listeners ran on.
#[derive(Default)]
struct Heard {
    transitions: Vec<Transition>,
    threads: Vec<ThreadId>,
}

struct Fleet {
    mode: Mode,
    server: &'static RedisServer,
    heard: Arc<Mutex<Heard>>,
    /// The simulation's own thread: listeners never run on it.
    caller: ThreadId,
    prefix: String,
    clock: ManualClock,
    start: Timestamp,
    /// The latest time the clock read.
    latest: Timestamp,
    operator: BlockingRedisStore,
    operator_breaker: BlockingRedisBreaker,
    processes: Vec<Proc>,
    /// Names used on demand so far.
    on_demand: usize,
    /// Processes that recorded outcomes they have not flushed (batched mode).
    unflushed: Vec<bool>,
    held: Vec<(usize, Permit)>,
    /// Transitions reported since Redis last lost the key, by kind and generation.
    reported: HashSet<(u8, u64)>,
    /// Generations started since Redis last lost the key: each trip and each close.
    generations: u64,
}

impl Fleet {
    fn new(policy: &Policy, mode: Mode) -> Fleet {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let prefix = format!(
            "fleet{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
        let server = if mode.outages {
            outage_server()
        } else {
            server()
        };
        let timeout = if mode.outages {
            OUTAGE_TIMEOUT
        } else {
            Duration::from_secs(2)
        };
        let config = || {
            RedisConfig::standalone(server.url())
                .prefix(&prefix)
                .timeout(timeout)
                .max_staleness(MAX_STALENESS)
                .idle_ttl(IDLE_TTL)
                .injected_clock(clock.clone())
        };
        let store = || BlockingRedisStore::connect(config()).unwrap();
        let heard = Arc::new(Mutex::new(Heard::default()));
        let sink = heard.clone();
        let listeners = Listeners::new().with(move |event: &Event<'_>| {
            let mut heard = sink.lock().unwrap();
            heard.threads.push(std::thread::current().id());
            if let (EventKind::Transition(transition), None) = (event.kind, event.context) {
                heard.transitions.push(transition);
            }
        });
        let process = |_| {
            let mut config = config().push(mode.push);
            if mode.batched {
                config = config.batch(Duration::from_millis(50));
            }
            if mode.asynchronous {
                let store = runtime()
                    .block_on(AsyncRedisStore::connect(config))
                    .unwrap();
                let breaker = runtime()
                    .block_on(store.breaker(NAME, policy.clone()))
                    .unwrap()
                    .with_listeners(listeners.clone());
                Proc::Async(store, breaker)
            } else {
                let breaker = BlockingRedisStore::connect(config)
                    .unwrap()
                    .breaker(NAME, policy.clone())
                    .unwrap()
                    .with_listeners(listeners.clone());
                Proc::Blocking(breaker)
            }
        };
        let processes = (0..PROCESSES).map(process).collect();
        let operator = store();
        let operator_breaker = operator.breaker(NAME, policy.clone()).unwrap();
        Fleet {
            mode,
            server,
            heard,
            caller: std::thread::current().id(),
            prefix,
            on_demand: 0,
            unflushed: vec![false; PROCESSES],
            start: clock.now(),
            latest: clock.now(),
            clock,
            operator,
            operator_breaker,
            processes,
            held: Vec::new(),
            reported: HashSet::new(),
            generations: 0,
        }
    }

    fn truth(&self) -> Snapshot {
        BlockingOperate::snapshot(&self.operator_breaker).unwrap()
    }

    fn script_calls(&self) -> u64 {
        let calls = self.server.command_calls();
        calls.get("evalsha").copied().unwrap_or(0) + calls.get("eval").copied().unwrap_or(0)
    }

    /// Notes a reported transition: never twice, and each trip or close is a generation.
    fn note(&mut self, transition: Option<Transition>) -> Result<(), TestCaseError> {
        let Some(transition) = transition else {
            return Ok(());
        };
        let key = match transition {
            Transition::Tripped { generation, .. } => {
                self.generations += 1;
                (1, generation)
            }
            Transition::HalfOpened { generation } => (2, generation),
            Transition::Closed { generation } => {
                self.generations += 1;
                (3, generation)
            }
            other => return Err(TestCaseError::fail(format!("unknown {other:?}"))),
        };
        prop_assert!(self.reported.insert(key), "{:?} reported twice", transition);
        Ok(())
    }

    /// In batched mode, sends what processes hold; then notes the transitions batches made,
    /// and checks that no listener ran on the caller's thread.
    ///
    /// Blocking stores send batches only when a call or `flush` does, so their batches are
    /// flushed only where the simulation says (`only`, or every process with `None`): a
    /// batch may be pending when Redis loses or rolls back the key, as in production. Async
    /// stores send batches from background tasks, so every one is flushed after each step,
    /// keeping the accounting of transitions exact.
    fn settle_batches(&mut self, only: Option<usize>) -> Result<(), TestCaseError> {
        if self.mode.batched {
            for (p, process) in self.processes.iter().enumerate() {
                if self.mode.asynchronous || only.is_none_or(|only| only == p) {
                    process.flush();
                    self.unflushed[p] = false;
                }
            }
        }
        let (transitions, threads) = {
            let mut heard = self.heard.lock().unwrap();
            (
                std::mem::take(&mut heard.transitions),
                std::mem::take(&mut heard.threads),
            )
        };
        prop_assert!(
            threads.iter().all(|thread| *thread != self.caller),
            "a listener ran on the caller's thread"
        );
        for transition in transitions {
            self.note(Some(transition))?;
        }
        Ok(())
    }

    fn backup_key(&self) -> String {
        format!("{}-backup", self.state_key())
    }

    fn state_key(&self) -> String {
        format!("{}:{{={NAME}}}", self.prefix)
    }

    /// The copy kept takes the key's place; the fleet's accounting starts from its state.
    fn roll_back(&mut self) {
        let restored = self
            .server
            .command(&["COPY", &self.backup_key(), &self.state_key(), "REPLACE"])
            .unwrap();
        if restored == "1" {
            self.reported.clear();
            self.generations = self.truth().generation;
        }
    }

    /// Process `p` uses `n` breakers on demand under new names and drops them: an async store
    /// keeps memory for the live breakers only.
    fn on_demand(&mut self, p: usize, n: usize) -> Result<(), TestCaseError> {
        let Proc::Async(store, _) = &self.processes[p] else {
            return Ok(());
        };
        let policy = self.operator_breaker.policy().clone();
        for _ in 0..n {
            self.on_demand += 1;
            let name = format!("host-{}", self.on_demand);
            let breaker = runtime()
                .block_on(store.breaker(&name, policy.clone()))
                .unwrap();
            if let Ok(permit) = runtime().block_on(AsyncBreaker::acquire(&breaker)) {
                runtime().block_on(AsyncBreaker::record(
                    &breaker,
                    permit,
                    Outcome::Success.into(),
                ));
            }
            // Sent now rather than by a task when dropped, which would run during a later
            // step and be counted there.
            runtime().block_on(breaker.flush()).unwrap();
        }
        prop_assert!(
            store.followed_breakers() <= 2 * 64 + 2,
            "{} names followed for 1 live breaker",
            store.followed_breakers()
        );
        Ok(())
    }

    /// Redis stops answering. Every process first learns Redis's state; then, its cache
    /// stale, each asks Redis, which does not answer: an override it knows of decides until
    /// its expiry, else the failure policy. Then Redis answers again.
    fn outage(&mut self) -> Result<(), TestCaseError> {
        self.settle()?;
        let truth = self.truth();
        let on_failure = self.operator_breaker.policy().on_store_failure();
        self.server.pause();
        self.clock.advance(MAX_STALENESS);
        let now = self.clock.now();
        let forced = match truth.override_until {
            Some(until) if until <= now => Override::Auto,
            _ => truth.override_mode,
        };
        let mut checked = Ok(());
        for p in 0..PROCESSES {
            let decision = self.processes[p].acquire();
            checked = match (forced, on_failure, &decision) {
                (Override::ForcedOpen, _, Err(rejected))
                    if rejected.reason() == RejectReason::ForcedOpen =>
                {
                    Ok(())
                }
                (Override::ForcedClosed, _, Ok(_))
                | (Override::Auto, StoreFailurePolicy::FailOpen, Ok(_))
                | (Override::Auto, StoreFailurePolicy::Local, Ok(_)) => Ok(()),
                (Override::Auto, StoreFailurePolicy::FailClosed, Err(rejected))
                    if rejected.reason() == RejectReason::StoreUnavailable =>
                {
                    Ok(())
                }
                _ => Err(TestCaseError::fail(format!(
                    "process {p} decided {decision:?} with Redis unreachable, {forced:?} \
                     known, failure policy {on_failure:?}"
                ))),
            };
            if let Ok(permit) = decision {
                self.processes[p].record(permit, Outcome::Ignored);
            }
            if checked.is_err() {
                break;
            }
        }
        self.server.resume();
        checked?;
        self.recover()
    }

    /// After an outage: every process asks Redis until it answers again.
    fn recover(&mut self) -> Result<(), TestCaseError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for p in 0..PROCESSES {
            loop {
                self.clock.advance(MAX_STALENESS);
                let decision = self.processes[p].acquire();
                let answered = match &decision {
                    Ok(permit) => {
                        permit.kind() != PermitKind::Unchecked && permit.generation() >> 63 == 0
                    }
                    Err(rejected) => rejected.reason() != RejectReason::StoreUnavailable,
                };
                if let Ok(permit) = decision {
                    self.note(permit.transition())?;
                    let recorded = self.processes[p].record(permit, Outcome::Ignored);
                    self.note(recorded.transition)?;
                }
                if answered {
                    break;
                }
                prop_assert!(
                    std::time::Instant::now() < deadline,
                    "process {} does not reach Redis again",
                    p
                );
            }
        }
        Ok(())
    }

    fn lose_every_key(&mut self) {
        self.server.command(&["FLUSHALL"]).unwrap();
        self.reported.clear();
        self.generations = 0;
    }

    /// Whether the breaker is in the registry: at once for blocking stores, which write it
    /// on the call that finds it due; within a moment for async ones, which write it in a
    /// task of their own.
    fn in_registry(&self) -> bool {
        let listed = || {
            self.operator
                .list()
                .unwrap()
                .iter()
                .any(|info| info.name == NAME)
        };
        if !self.mode.asynchronous {
            return listed();
        }
        // Generous: a busy machine may run the registration's task late.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if listed() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            // Polls until the deadline above.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn calls(&mut self, p: usize, n: u32, outcome: Outcome) -> Result<(), TestCaseError> {
        let before = self.truth();
        // Outcomes this process recorded earlier and has not sent yet go with these.
        let earlier = self.unflushed[p];
        let scripts_before = self.script_calls();
        let mut counted = 0;
        let mut all_normal = true;
        let mut changed = false;
        for _ in 0..n {
            match self.processes[p].acquire() {
                Ok(permit) => {
                    self.note(permit.transition())?;
                    changed |= permit.transition().is_some();
                    all_normal &= permit.kind() == PermitKind::Normal;
                    if permit.kind() == PermitKind::Normal
                        && permit.generation() == before.generation
                        && outcome != Outcome::Ignored
                    {
                        counted += 1;
                    }
                    prop_assert_ne!(permit.kind(), PermitKind::Unchecked, "Redis is up");
                    let recorded = self.processes[p].record(permit, outcome);
                    changed |= recorded.transition.is_some();
                    self.note(recorded.transition)?;
                    self.unflushed[p] = true;
                }
                Err(rejected) => {
                    prop_assert_ne!(rejected.reason(), RejectReason::StoreUnavailable);
                    all_normal = false;
                }
            }
        }
        let batch_transitions = self.generations;
        self.settle_batches(Some(p))?;
        changed |= self.generations != batch_transitions;
        let scripts = self.script_calls() - scripts_before;
        let after = self.truth();
        if all_normal && !changed && after.generation == before.generation {
            let added = after.counts.calls - before.counts.calls;
            if earlier {
                // In batched mode, after a lost or rolled-back key too.
                prop_assert!(added >= counted, "{} of {} reports counted", added, counted);
            } else {
                prop_assert_eq!(added, counted, "every counted report is counted");
            }
            let closed = before.state == State::Closed && before.override_mode == Override::Auto;
            // Unbatched stores, blocking and async, without push. Batched stores' requests
            // per call are measured by the benchmarks and the batch tests (here a flush of
            // every process falls inside the count); with push, a change made in an earlier
            // step may reach the process during this one and cost it one more request.
            let exact = !self.mode.batched && !self.mode.push;
            if closed && outcome != Outcome::Ignored && exact {
                prop_assert!(
                    scripts <= u64::from(n) + 1,
                    "{} script calls for {} calls on the closed path",
                    scripts,
                    n
                );
            }
        }
        // With outages, a registration that timed out is retried a few seconds of the
        // process's clock later, which these steps may not reach: the registry is checked by
        // the simulation without outages.
        if all_normal && n > 0 && outcome != Outcome::Ignored && !self.mode.outages {
            prop_assert!(self.in_registry(), "a breaker in use is in the registry");
        }
        Ok(())
    }

    /// Every process decides as Redis's state says, now that every cache is stale.
    ///
    /// The clock goes `max_staleness` past the latest time it ever read: the simulation steps
    /// one clock back for Redis and the processes alike, while a real process measures its
    /// cache's age on a monotonic clock that never steps back.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        let latest = self.latest.max(self.clock.now());
        self.clock.set(latest.saturating_add(MAX_STALENESS));
        for p in 0..PROCESSES {
            let truth = self.truth();
            let now = self.clock.now();
            let decision = self.processes[p].acquire();
            let state = match truth.open_until {
                Some(until) if until <= now => State::HalfOpen,
                _ => truth.state,
            };
            match (truth.override_mode, state, &decision) {
                (Override::ForcedOpen, _, Err(rejected)) => {
                    prop_assert_eq!(rejected.reason(), RejectReason::ForcedOpen);
                }
                (Override::ForcedClosed, _, Ok(permit))
                | (Override::Auto, State::Closed, Ok(permit)) => {
                    prop_assert_eq!(permit.kind(), PermitKind::Normal);
                }
                // Ramping up after a close: this process knows it, as every other does.
                (Override::Auto, State::Closed, Err(rejected)) if truth.ramping_until.is_some() => {
                    prop_assert_eq!(rejected.reason(), RejectReason::RampingUp);
                }
                (Override::Auto, State::Open, Err(rejected)) => {
                    prop_assert_eq!(rejected.reason(), RejectReason::Open);
                }
                (Override::Auto, State::HalfOpen, Ok(permit)) => prop_assert!(permit.is_probe()),
                (Override::Auto, State::HalfOpen, Err(rejected)) => {
                    prop_assert_eq!(rejected.reason(), RejectReason::ProbesBusy);
                }
                _ => {
                    return Err(TestCaseError::fail(format!(
                        "process {p} decided {decision:?} while Redis says {truth:?} at {now:?}"
                    )));
                }
            }
            if let Ok(permit) = decision {
                self.note(permit.transition())?;
                let recorded = self.processes[p].record(permit, Outcome::Ignored);
                self.note(recorded.transition)?;
            }
        }
        self.settle_batches(None)
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        match step {
            Step::Calls(p, n, outcome) => self.calls(*p, *n, *outcome)?,
            Step::Hold(p) => {
                if let Ok(permit) = self.processes[*p].acquire() {
                    self.note(permit.transition())?;
                    self.held.push((*p, permit));
                }
            }
            Step::Release(which, outcome) => {
                if !self.held.is_empty() {
                    let (p, permit) = self.held.swap_remove(which % self.held.len());
                    let recorded = self.processes[p].record(permit, *outcome);
                    self.unflushed[p] = true;
                    self.note(recorded.transition)?;
                }
            }
            Step::Advance(ms) => self.clock.advance(Duration::from_millis(*ms)),
            Step::ClockBack(ms) => {
                self.latest = self.latest.max(self.clock.now());
                let now = self.clock.now().as_millis();
                let to = now.saturating_sub(*ms).max(self.start.as_millis());
                self.clock.set(Timestamp::from_millis(to));
            }
            Step::Trip => {
                let transition =
                    BlockingOperate::operate(&self.operator_breaker, Action::Trip).unwrap();
                self.note(transition)?;
            }
            Step::Reset => {
                match BlockingOperate::operate(&self.operator_breaker, Action::Reset).unwrap() {
                    // A reset of a closed breaker starts a new generation silently.
                    None => self.generations += 1,
                    transition => self.note(transition)?,
                }
            }
            Step::Override(mode, ms) => {
                BlockingOperate::operate(
                    &self.operator_breaker,
                    Action::Override {
                        mode: *mode,
                        duration: ms.map(Duration::from_millis),
                    },
                )
                .unwrap();
            }
            Step::Flush => self.lose_every_key(),
            Step::Save => {
                self.server
                    .command(&["COPY", &self.state_key(), &self.backup_key(), "REPLACE"])
                    .unwrap();
            }
            Step::Rollback => self.roll_back(),
            Step::OnDemand(p, n) => self.on_demand(*p, *n)?,
            Step::Idle => {
                self.clock.advance(IDLE_TTL + Duration::from_secs(1));
                self.lose_every_key();
            }
            Step::Settle => self.settle()?,
            Step::Outage => self.outage()?,
        }
        // Async stores' batches; blocking ones stay pending until a call or a settle.
        self.settle_batches(Some(usize::MAX))?;
        let truth = self.truth();
        // A blocking caller that sent a batch made its transition known to listeners, which
        // hear of it on their own thread: poll until they have.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while truth.generation > self.generations && std::time::Instant::now() < deadline {
            // Polls until the deadline above.
            std::thread::sleep(Duration::from_millis(1));
            self.settle_batches(Some(usize::MAX))?;
        }
        prop_assert_eq!(
            truth.generation,
            self.generations,
            "every generation since Redis lost the key is a reported trip or close"
        );
        Ok(())
    }
}

impl Drop for Fleet {
    /// Nothing pending is left for a background task to send during the next case.
    fn drop(&mut self) {
        if self.mode.batched {
            for process in &self.processes {
                let _ = match process {
                    Proc::Blocking(b) => b.flush(),
                    Proc::Async(_, b) => runtime().block_on(b.flush()),
                };
            }
        }
    }
}

fn overrides() -> impl Strategy<Value = Step> {
    (
        prop::sample::select(vec![
            Override::Auto,
            Override::ForcedOpen,
            Override::ForcedClosed,
        ]),
        prop::option::of(1u64..=8_000),
    )
        .prop_map(|(mode, ms)| Step::Override(mode, ms))
}

/// More overrides than usual: an outage is most telling while one is in force.
fn steps_with_outages() -> impl Strategy<Value = Step> {
    prop_oneof![8 => steps(), 1 => Just(Step::Outage), 1 => overrides()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: breaker_testkit::cases(128), ..ProptestConfig::default() })]

    #[test]
    fn the_fleet_agrees_over_time(policy in policies(), mode in modes(), steps in prop::collection::vec(steps(), 1..120)) {
        let mut fleet = Fleet::new(&policy, mode);
        for (index, step) in steps.iter().enumerate() {
            fleet
                .step(step)
                .map_err(|err| TestCaseError::fail(format!("{mode:?} step {index} {step:?}: {err}")))?;
        }
        fleet.settle()?;
    }
}

proptest! {
    // Each outage costs every process a store timeout: fewer, shorter cases.
    #![proptest_config(ProptestConfig { cases: breaker_testkit::cases(12), ..ProptestConfig::default() })]

    #[test]
    fn the_fleet_holds_through_outages(policy in policies_on_failure(), mode in modes_with_outages(), steps in prop::collection::vec(steps_with_outages(), 1..32)) {
        let mut fleet = Fleet::new(&policy, mode);
        for (index, step) in steps.iter().enumerate() {
            fleet
                .step(step)
                .map_err(|err| TestCaseError::fail(format!("{mode:?} step {index} {step:?}: {err}")))?;
        }
        fleet.settle()?;
    }
}
