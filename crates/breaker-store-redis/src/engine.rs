//! Everything a Redis breaker does around its store calls, without IO, shared by the async and
//! blocking stores. Each concern is a part of its own from the core's
//! [`breaker_core::store::remote`], which takes `now`, holds one idea (the cache of the last
//! reply, the ramp, the store-failure policy and local fallback, the batch, the registration)
//! and knows nothing of Redis. The [`Engine`] holds one of each per breaker, turns a call, a
//! report or an operator's [`Action`] into a script [`Op`] and a reply into an answer, and
//! hands the events it makes itself to the core's listener thread. `ops.rs` is every store operation as
//! steps (what to send next, what a reply comes to); the two transports only send what an
//! operation asks and hand back the reply.

pub(crate) mod ops;
mod spacing;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use breaker_core::store::{self, Circuit, PolicyMillis};
use breaker_core::{
    Action, Bucket, Clock, EventKind, LaterEvent, Listeners, Outcome, Permit, PermitKind, Policy,
    Recorded, Rejected, Report, Snapshot, State, StoreError, StoreErrorKind, Timestamp, Transition,
};
use redis::ScriptInvocation;

use crate::keys::Keys;
use crate::registry;
use crate::script::{self, Op};
use crate::settings::Settings;

use breaker_core::store::remote::{
    Answer, Batch, BatchDue, Cache, Fallback, InFlight, Pace, Ramp, Registration, RemoteState,
};

/// One breaker's logic.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) name: Arc<str>,
    pub(crate) policy: Policy,
    pub(crate) keys: Keys,
    pub(crate) settings: Settings,
    pub(crate) listeners: Listeners,
    cache: Mutex<Cache>,
    fallback: Mutex<Fallback>,
    registration: Mutex<Registration>,
    batch: Mutex<Batch>,
    spacing: Mutex<spacing::Spacing>,
    /// Whether a task of the async store keeps time for the pending batch.
    timer_armed: std::sync::atomic::AtomicBool,
    in_flight: InFlight,
    ramp: Mutex<Ramp>,
    /// Requests sent so far (the cache's `issued`).
    sent: AtomicU64,
}

/// The script call of `op` on the breaker of `keys` at `now` (sent with it when the store
/// injects time).
fn invocation(
    keys: &Keys,
    policy: &Policy,
    settings: &Settings,
    now: Timestamp,
    op: Op,
) -> ScriptInvocation<'static> {
    let injected = settings.inject_time.then_some(now);
    script::invocation(keys, injected, policy, settings, op)
}

/// What a snapshot's reply says, with the ramp `ramp` runs (as `Circuit` would say it).
fn snapshot_of(policy: &Policy, ramp: &Ramp, reply: &[i64]) -> Result<Snapshot, StoreError> {
    let (mut snapshot, tail) = script::parse_snapshot(reply)?;
    snapshot.ramping_until = ramp.until(&tail, snapshot.override_mode, policy.ramp_up_millis());
    Ok(snapshot)
}

/// What a window read's reply says: the live buckets.
fn window_of(policy: &Policy, reply: &[i64]) -> Result<Vec<Bucket>, StoreError> {
    let width = policy.bucket_millis();
    Ok(script::parse_window(reply)?
        .into_iter()
        .map(|[bucket, calls, failures]| {
            Bucket::new(
                Timestamp::from_millis(bucket.saturating_mul(width)),
                calls,
                failures,
            )
        })
        .collect())
}

/// What `record` must do after the pre-call work.
enum RecordPlan {
    /// Nothing to send: the answer is known.
    Done(Recorded),
    /// Send this script call, then hand its reply to [`Engine::finish_record`].
    Send(ScriptInvocation<'static>, RecordContext),
    /// Added to the batch (batched mode): the answer, and when the batch should go.
    Batched(Recorded, BatchDue),
}

/// Which pending outcomes a flush sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// All of them: `flush()`, a batch that could trip the breaker, a breaker dropped.
    All,
    /// The batch only if it is due: a timer, or a call that found it due (a timer set for a
    /// batch that already went never sends the next one early).
    Due,
}

/// What `finish_batch` needs to know about the batch it finishes.
struct BatchContext {
    successes: u64,
    failures: u64,
    sent: u64,
}

/// What `finish_record` needs to know about the call it finishes.
struct RecordContext {
    outcome: Outcome,
    elapsed: std::time::Duration,
    sent: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding a lock; a poisoned lock still holds valid state.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Engine {
    pub(crate) fn new(name: &str, policy: Policy, settings: Settings) -> Engine {
        Engine {
            name: Arc::from(name),
            keys: Keys::new(&settings.prefix, name),
            fallback: Mutex::new(Fallback::new(policy.clone())),
            policy,
            settings,
            listeners: Listeners::new(),
            cache: Mutex::default(),
            registration: Mutex::default(),
            batch: Mutex::default(),
            spacing: Mutex::default(),
            timer_armed: std::sync::atomic::AtomicBool::new(false),
            in_flight: InFlight::default(),
            ramp: Mutex::default(),
            sent: AtomicU64::new(0),
        }
    }

    /// Counts a request about to be sent; its number goes back to [`Engine::remember`] with
    /// the reply.
    fn send(&self) -> u64 {
        self.sent.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.settings.clock.now()
    }

    fn invocation(&self, now: Timestamp, op: Op) -> ScriptInvocation<'static> {
        invocation(&self.keys, &self.policy, &self.settings, now, op)
    }

    /// The pre-call check from the cache, if it can answer.
    fn cached_acquire(&self, now: Timestamp) -> Option<Result<Permit, Rejected>> {
        let answer =
            lock(&self.cache).answer(now, self.settings.max_staleness, self.settings.timeout)?;
        Some(match answer {
            Answer::Rejected(rejected) => Err(rejected),
            Answer::Free(generation) => self
                .ramp_admits(now, generation)
                .map(|()| store::permit(generation, PermitKind::Normal, now, false)),
        })
    }

    /// Whether the ramp after a close by probes lets an ordinary call of `generation` go.
    fn ramp_admits(&self, now: Timestamp, generation: u64) -> Result<(), Rejected> {
        let ramp_ms = self.policy.ramp_up_millis();
        if ramp_ms.is_none() {
            return Ok(());
        }
        lock(&self.ramp).admits(now, generation, ramp_ms)
    }

    /// Remembers what the reply to request `sent` said, received at local time `now` (see
    /// `Cache::take`): the store answered, so a local fallback in use ends, and a key found
    /// lost is reported and registered again.
    fn remember(&self, sent: u64, now: Timestamp, tail: &RemoteState) {
        if tail.repaired > 0 {
            self.report(StoreError::new(
                StoreErrorKind::Corrupt,
                format!(
                    "{} field(s) of the breaker's state in Redis held garbage; each was repaired \
                     in place to its safe value and the rest of the state was kept",
                    tail.repaired
                ),
            ));
        }
        lock(&self.registration).follow_epoch(tail.epoch);
        let issued = self.sent.load(Ordering::SeqCst);
        let lost = lock(&self.cache).take(sent, issued, now, tail);
        if lost.is_some() {
            lock(&self.ramp).follow(now, tail);
        }
        if lost == Some(true) {
            self.report(StoreError::new(
                StoreErrorKind::StateLost,
                "the breaker's state in Redis was lost (a restart, a flush, an eviction or an \
                 expiry) and started afresh; this process now follows the new state",
            ));
        }
        lock(&self.fallback).store_answered();
    }

    /// Makes the cached state stale at once (a change was pushed).
    #[cfg(feature = "tokio")]
    pub(crate) fn make_stale(&self) {
        lock(&self.cache).make_stale();
    }

    /// The answer to `acquire`, from the script's reply or the store's failure.
    fn finish_acquire(
        &self,
        sent: u64,
        now: Timestamp,
        reply: Result<Vec<i64>, StoreError>,
    ) -> Result<Permit, Rejected> {
        match reply.and_then(|reply| script::parse_acquire(&reply, now)) {
            Ok((decision, tail)) => {
                self.remember(sent, now, &tail);
                match decision {
                    Ok(permit)
                        if permit.kind() == PermitKind::Normal
                            && tail.state == State::Closed
                            && tail.override_mode == breaker_core::Override::Auto =>
                    {
                        self.ramp_admits(now, permit.generation()).map(|()| permit)
                    }
                    decision => decision,
                }
            }
            Err(err) => {
                self.report(err);
                let held = lock(&self.cache).held_override(now, self.policy.open_for());
                held.unwrap_or_else(|| lock(&self.fallback).acquire(now))
            }
        }
    }

    /// The work before recording `report`: answer at once, or a script call to send. The
    /// one place a [`Report`] becomes a script [`Op`].
    fn plan_record(&self, permit: Permit, report: Report) -> RecordPlan {
        let now = self.now();
        if Fallback::gave(&permit) {
            let recorded = lock(&self.fallback).record(now, permit, report);
            return RecordPlan::Done(recorded);
        }
        let (outcome, elapsed) = store::counted(&self.policy, &permit, report.outcome, now);
        let hold_off = report
            .retry_after
            .and_then(|wait| self.policy.hold_off_millis(wait));
        let ticket = match permit.kind() {
            // Admitted without the store: nothing to count.
            PermitKind::Unchecked => {
                return RecordPlan::Done(Recorded::new(outcome, elapsed, None));
            }
            // An ignored ordinary call changes nothing: no round trip (unless the backend
            // asked every caller to wait).
            PermitKind::Normal if outcome == Outcome::Ignored && hold_off.is_none() => {
                return RecordPlan::Done(Recorded::new(outcome, elapsed, None));
            }
            PermitKind::Probe { ticket } => Some(ticket),
            _ => None,
        };
        if let Some(interval) = self.settings.batch
            && ticket.is_none()
            && hold_off.is_none()
        {
            // Probes are never batched: the script grants them one by one.
            let due = self.add_to_batch(permit.generation(), outcome, now, interval);
            return RecordPlan::Batched(Recorded::new(outcome, elapsed, None), due);
        }
        let op = Op::Record {
            generation: permit.generation(),
            ticket,
            outcome,
            retry_after_ms: hold_off.unwrap_or(0),
        };
        let context = RecordContext {
            outcome,
            elapsed,
            sent: self.send(),
        };
        RecordPlan::Send(self.invocation(now, op), context)
    }

    /// Adds an ordinary call's outcome to the batch; says when the batch should go. A failure
    /// that could trip the breaker, by the last totals the store sent plus what is pending,
    /// goes at once; a batch whose failures reach the policy's failure rate goes after
    /// `interval`, and any other after this process's share of the fleet's budget.
    fn add_to_batch(
        &self,
        generation: u64,
        outcome: Outcome,
        now: Timestamp,
        interval: std::time::Duration,
    ) -> BatchDue {
        let fleet_calls = lock(&self.cache)
            .free_counts(generation)
            .map(|counts| counts.calls);
        let spaced = {
            let mut spacing = lock(&self.spacing);
            spacing.count(now);
            spacing.spaced(
                interval,
                self.settings.fleet_budget,
                fleet_calls,
                self.policy.window(),
                spacing::longest_spacing(self.settings.max_staleness),
            )
        };
        let pace = Pace {
            interval,
            spaced,
            failure_rate: self.policy.failure_rate(),
        };
        let current = || lock(&self.cache).generation();
        lock(&self.batch).add(generation, outcome, now, pace, current, |pending| {
            lock(&self.cache)
                .free_counts(generation)
                .is_some_and(|counts| {
                    self.policy.trips(breaker_core::Counts {
                        calls: counts.calls + pending.calls,
                        failures: counts.failures + pending.failures,
                    })
                })
        })
    }

    /// Takes what is pending (all of it, or only a batch that is due), as the script call
    /// that counts it; `None` if nothing is.
    fn take_batch(&self, take: Take) -> Option<(ScriptInvocation<'static>, BatchContext)> {
        let batch = match take {
            Take::All => lock(&self.batch).take()?,
            Take::Due => lock(&self.batch).take_due(self.now())?,
        };
        let op = Op::Batch {
            generation: batch.generation,
            successes: batch.successes,
            failures: batch.failures,
        };
        let context = BatchContext {
            successes: batch.successes,
            failures: batch.failures,
            sent: self.send(),
        };
        self.in_flight.taken();
        Some((self.invocation(self.now(), op), context))
    }

    /// How long until the pending batch is due (zero: it is); `None` if nothing is pending.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn batch_due_in(&self) -> Option<std::time::Duration> {
        lock(&self.batch).due_in(self.now())
    }

    /// Arms the one timer that sends this breaker's batches when due: `true` if it was not
    /// armed, and the caller now runs it.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn arm_timer(&self) -> bool {
        !self.timer_armed.swap(true, Ordering::SeqCst)
    }

    /// The timer stops: nothing is pending.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn disarm_timer(&self) {
        self.timer_armed.store(false, Ordering::SeqCst);
    }

    /// How many batches have been taken to be sent so far.
    pub(crate) fn batches_taken(&self) -> u64 {
        self.in_flight.taken_so_far()
    }

    /// Whether every batch of the first `taken` has been handled (sent, or failed).
    pub(crate) fn batches_done(&self, taken: u64) -> bool {
        self.in_flight.done(taken)
    }

    /// After a batch was sent: the cache takes the reply and listeners hear of a transition
    /// it made (no caller waits for a batch, so the engine tells them); when Redis failed,
    /// the failure policy applies to the batch as to a call.
    fn finish_batch(&self, context: BatchContext, reply: Result<Vec<i64>, StoreError>) {
        let _handled = self.in_flight.handling();
        match reply.and_then(|reply| self.parse_record(&reply, "batch")) {
            Ok((transition, tail)) => {
                self.remember(context.sent, self.now(), &tail);
                if let Some(transition) = transition {
                    self.emit_transition(transition);
                }
            }
            Err(err) => {
                self.report(err);
                let outcomes = [
                    (Outcome::Success, context.successes),
                    (Outcome::Failure, context.failures),
                ];
                for (outcome, times) in outcomes {
                    for _ in 0..times {
                        let now = self.now();
                        let transition = lock(&self.fallback).missed(now, outcome);
                        if let Some(transition) = transition {
                            self.emit_transition(transition);
                        }
                    }
                }
            }
        }
    }

    /// The transition a `record` or `batch` reply names; a quorum short of reporters is told
    /// to listeners and tracing.
    fn parse_record(
        &self,
        reply: &[i64],
        what: &str,
    ) -> Result<(Option<Transition>, RemoteState), StoreError> {
        if let Some((reporters, needed)) = script::quorum_short(reply) {
            tracing::info!(breaker = %self.name, reporters, needed, "trip rule met by too few reporters: the breaker stays closed");
            self.tell(
                LaterEvent::new(&self.name, EventKind::QuorumShort { reporters, needed })
                    .made_by_store(),
            );
        }
        script::parse_transition(reply, what)
    }

    fn emit_transition(&self, transition: Transition) {
        tracing::info!(breaker = %self.name, ?transition, "breaker transition");
        self.tell(LaterEvent::new(&self.name, EventKind::Transition(transition)).made_by_store());
    }

    /// The answer to `record`, from the script's reply or the store's failure.
    fn finish_record(
        &self,
        context: RecordContext,
        reply: Result<Vec<i64>, StoreError>,
    ) -> Recorded {
        let RecordContext {
            outcome,
            elapsed,
            sent,
        } = context;
        match reply.and_then(|reply| self.parse_record(&reply, "record")) {
            Ok((transition, tail)) => {
                self.remember(sent, self.now(), &tail);
                Recorded::new(outcome, elapsed, transition)
            }
            Err(err) => {
                self.report(err);
                // The backend's answer stands; with a local fallback, it learns of it.
                let now = self.now();
                let transition = lock(&self.fallback).missed(now, outcome);
                Recorded::new(outcome, elapsed, transition)
            }
        }
    }

    /// `engine` with `listeners`: set in place when no clone shares it, otherwise on a fresh
    /// engine (with an empty cache and local fallback).
    pub(crate) fn set_listeners(engine: &mut Arc<Engine>, listeners: Listeners) {
        match Arc::get_mut(engine) {
            Some(only) => only.listeners = listeners,
            None => {
                let mut fresh =
                    Engine::new(&engine.name, engine.policy.clone(), engine.settings.clone());
                fresh.listeners = listeners;
                *engine = Arc::new(fresh);
            }
        }
    }

    /// The script call for an operator request (or a snapshot), now.
    fn operator_call(&self, op: Op) -> ScriptInvocation<'static> {
        self.invocation(self.now(), op)
    }

    /// The script call that applies an operator's `action` now, and what it is for (for
    /// errors and logs): the one place an [`Action`] becomes a script [`Op`].
    fn action_call(
        &self,
        action: Action,
    ) -> Result<(ScriptInvocation<'static>, &'static str), StoreError> {
        let (op, what) = match action {
            Action::Trip => (Op::Trip, "tripping the breaker"),
            Action::Reset => (Op::Reset, "resetting the breaker"),
            Action::Override { mode, duration } => (
                Op::Override {
                    mode,
                    duration_ms: Circuit::override_millis(duration),
                },
                "setting an override",
            ),
            other => {
                return Err(StoreError::new(
                    StoreErrorKind::Config,
                    format!("the Redis store has no script operation for {other}"),
                ));
            }
        };
        Ok((self.operator_call(op), what))
    }

    /// The reply to a window read.
    fn finish_window(&self, reply: &[i64]) -> Result<Vec<Bucket>, StoreError> {
        window_of(&self.policy, reply)
    }

    /// The reply to a snapshot, with the ramp as this process runs it.
    fn finish_snapshot(&self, reply: &[i64]) -> Result<Snapshot, StoreError> {
        snapshot_of(&self.policy, &lock(&self.ramp), reply)
    }

    /// The reply to an operator's `action`: the transition it made (a trip always makes one;
    /// an override none). After it, the cache holds what the reply says, nothing older.
    fn finish_action(
        &self,
        action: Action,
        reply: &[i64],
    ) -> Result<Option<Transition>, StoreError> {
        let (transition, tail) = match action {
            Action::Override { .. } => (None, script::parse_tail(reply)?),
            _ => script::parse_transition(reply, &action.to_string())?,
        };
        *lock(&self.cache) = Cache::default();
        self.remember(self.send(), self.now(), &tail);
        if action == Action::Trip && transition.is_none() {
            return Err(StoreError::new(
                StoreErrorKind::Corrupt,
                "trip reported no transition",
            ));
        }
        Ok(transition)
    }

    /// Whether this process should write the breaker into the registry now (see
    /// `Registration::due`); report how it went to [`Engine::registered`].
    pub(crate) fn registration_due(&self, now: Timestamp) -> bool {
        lock(&self.registration).due(now)
    }

    /// How the registration claimed at `now` went.
    pub(crate) fn registered(&self, now: Timestamp, ok: bool) {
        lock(&self.registration).went(now, ok, self.settings.idle_ttl);
    }

    /// The two requests that write this breaker into the registry, with its last use now:
    /// its policy, then its name.
    pub(crate) fn registration(&self) -> Result<[redis::Pipeline; 2], StoreError> {
        let ttl_ms = u64::try_from(self.settings.idle_ttl.as_millis()).unwrap_or(u64::MAX);
        registry::register(
            &self.keys,
            &self.name,
            &self.policy,
            self.settings.wall_now(),
            ttl_ms,
        )
    }

    /// Tells listeners (off the caller's thread) and tracing that the store failed.
    fn report(&self, err: StoreError) {
        tracing::warn!(breaker = %self.name, error = %err, policy = ?self.policy.on_store_failure(), "breaker store failed");
        self.tell(LaterEvent::store_error(&self.name, err));
    }

    /// Hands an event the store made itself to the listener thread, the one path every event
    /// takes: listeners and the breaker's watcher (the HTTP adapters' metrics) hear of it
    /// once, off the caller's thread.
    fn tell(&self, event: LaterEvent) {
        if !self.listeners.tell_later(event) {
            tracing::warn!(breaker = %self.name, "listeners are {} events behind: a store event was dropped", Listeners::QUEUE);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use breaker_core::{Event, ManualClock, RejectReason};

    use super::*;

    /// The state a script reply with these values ends with (epoch 7), read by the store's
    /// own parser.
    fn tail(
        state: State,
        generation: u64,
        open_until: u64,
        now: u64,
        sequence: u64,
    ) -> RemoteState {
        let code = match state {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        };
        let values = [code, generation, open_until, now, 7, sequence, 0, 0, 0, 0];
        script::parse_tail(&values.map(|value| i64::try_from(value).unwrap())).unwrap()
    }

    fn engine(clock: &ManualClock) -> Engine {
        let settings = Settings::for_tests(clock.clone());
        Engine::new("cache", Policy::default(), settings)
    }

    #[test]
    fn an_overtaken_reply_does_not_replace_a_newer_one() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let engine = engine(&clock);
        let now = clock.now();
        // A trip (write 5) arrives before an older success's reply (write 4), both sent
        // before either reply arrived.
        let (success, trip) = (engine.send(), engine.send());
        engine.remember(trip, now, &tail(State::Open, 1, 31_000, 1_000, 5));
        engine.remember(success, now, &tail(State::Closed, 0, 0, 999, 4));
        let decision = engine.cached_acquire(now).expect("cached");
        assert_eq!(decision.unwrap_err().reason(), RejectReason::Open);
        // The open period ends: the cache no longer answers.
        clock.advance(Duration::from_secs(30));
        assert!(engine.cached_acquire(clock.now()).is_none());
        // A newer reply (a close, generation 2) is taken.
        engine.remember(
            engine.send(),
            clock.now(),
            &tail(State::Closed, 2, 0, 31_000, 6),
        );
        assert!(engine.cached_acquire(clock.now()).expect("cached").is_ok());
        // Staleness: after max_staleness the cache asks again.
        clock.advance(Duration::from_secs(1));
        assert!(engine.cached_acquire(clock.now()).is_none());
    }

    #[test]
    fn an_open_state_is_asked_again_once_per_max_staleness() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let engine = engine(&clock);
        engine.remember(
            engine.send(),
            clock.now(),
            &tail(State::Open, 1, 181_000, 1_000, 1),
        );
        assert!(engine.cached_acquire(clock.now()).unwrap().is_err());
        clock.advance(Duration::from_millis(999));
        assert!(engine.cached_acquire(clock.now()).unwrap().is_err());
        clock.advance(Duration::from_millis(1));
        // Stale: one caller asks Redis, the others keep the cached rejection meanwhile.
        assert!(engine.cached_acquire(clock.now()).is_none());
        assert!(engine.cached_acquire(clock.now()).unwrap().is_err());
        // An operator reset: the reply says closed, and calls flow at once.
        engine.remember(
            engine.send(),
            clock.now(),
            &tail(State::Closed, 2, 0, 2_000, 2),
        );
        assert!(engine.cached_acquire(clock.now()).unwrap().is_ok());
    }

    #[test]
    fn a_lost_key_is_followed_and_reported() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let mut engine = engine(&clock);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        engine.listeners = Listeners::new().with(move |event: &Event<'_>| {
            if let EventKind::StoreError(err) = event.kind {
                lock(&sink).push(err.kind());
            }
        });
        engine.remember(
            engine.send(),
            clock.now(),
            &tail(State::Open, 9, 181_000, 1_000, 40),
        );
        assert!(engine.registration_due(clock.now()), "never registered");
        engine.registered(clock.now(), true);
        assert!(!engine.registration_due(clock.now()));
        // Redis restarted empty: generation 0, write 1, another epoch.
        let mut fresh = tail(State::Closed, 0, 0, 1_001, 1);
        fresh.epoch = 8;
        engine.remember(engine.send(), clock.now(), &fresh);
        assert!(engine.cached_acquire(clock.now()).unwrap().is_ok());
        let (done, wait) = std::sync::mpsc::channel();
        Listeners::when_told(move || {
            let _ = done.send(());
        });
        wait.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(*lock(&seen), vec![StoreErrorKind::StateLost]);
        assert!(engine.registration_due(clock.now()), "registered again");
    }

    #[test]
    fn a_clock_stepping_back_makes_the_cache_stale() {
        let clock = ManualClock::new(Timestamp::from_millis(100_000));
        let engine = engine(&clock);
        engine.remember(
            engine.send(),
            clock.now(),
            &tail(State::Closed, 0, 0, 100_000, 1),
        );
        assert!(engine.cached_acquire(clock.now()).is_some());
        clock.set(Timestamp::from_millis(50_000));
        assert!(engine.cached_acquire(clock.now()).is_none());
    }
}
