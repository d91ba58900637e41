//! Everything a Redis breaker does around its script calls, shared by the async and blocking
//! stores: the cached state, the store-failure policy, and the local fallback breaker. The
//! stores only move script invocations to Redis and back.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use breaker_core::{
    BucketWindow, Circuit, Clock, Event, EventKind, Listeners, Outcome, Override, Permit,
    PermitKind, Policy, Recorded, RejectReason, Rejected, Snapshot, State, StoreError,
    StoreErrorKind, StoreFailurePolicy, Timestamp, Transition,
};
use redis::ScriptInvocation;

use crate::keys::Keys;
use crate::script::{self, Op, Tail};

/// Permits given by the local fallback breaker carry this bit in their generation, so their
/// outcomes go back to it and never to Redis.
const LOCAL: u64 = 1 << 63;

/// How long a fail-closed rejection asks callers to wait before trying again.
const FAIL_CLOSED_RETRY: Duration = Duration::from_secs(1);

/// Settings shared by every breaker of one store.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) idle_ttl: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    /// Send the clock's time to the script instead of letting it read Redis's `TIME`.
    pub(crate) inject_time: bool,
}

/// What the last reply said, as the pre-call check may reuse it.
#[derive(Debug, Default)]
struct Cached {
    /// `Some(generation)` while closed with no decision needed, until `free_until`.
    free: Option<u64>,
    free_until: Timestamp,
    /// While automatically open: when the open period ends, by the local clock.
    open_until: Option<Timestamp>,
    /// The generation and script time of the reply cached, so that a reply overtaken by a
    /// newer one (concurrent calls) does not replace it.
    seen: (u64, Timestamp),
}

/// One breaker's logic.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) name: Arc<str>,
    pub(crate) policy: Policy,
    pub(crate) keys: Keys,
    pub(crate) settings: Settings,
    pub(crate) listeners: Listeners,
    cached: Mutex<Cached>,
    local: Mutex<(Circuit, BucketWindow)>,
}

/// What `record` must do after the pre-call work.
pub(crate) enum RecordPlan {
    /// Nothing to send: the answer is known.
    Done(Recorded),
    /// Send this script call, then hand its reply to [`Engine::finish_record`].
    Send(ScriptInvocation<'static>, RecordContext),
}

/// What `finish_record` needs to know about the call it finishes.
pub(crate) struct RecordContext {
    outcome: Outcome,
    elapsed: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding a lock; a poisoned lock still holds valid state.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Engine {
    pub(crate) fn new(name: &str, policy: Policy, settings: Settings) -> Engine {
        let window = BucketWindow::new(&policy);
        Engine {
            name: Arc::from(name),
            keys: Keys::new(&settings.prefix, name),
            policy,
            settings,
            listeners: Listeners::new(),
            cached: Mutex::new(Cached::default()),
            local: Mutex::new((Circuit::new(), window)),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.settings.clock.now()
    }

    pub(crate) fn invocation(&self, now: Timestamp, op: Op) -> ScriptInvocation<'static> {
        let injected = self.settings.inject_time.then_some(now);
        script::invocation(
            &self.keys.state,
            injected,
            &self.policy,
            self.settings.idle_ttl,
            op,
        )
    }

    /// The pre-call check from the cache, if it can answer.
    pub(crate) fn cached_acquire(&self, now: Timestamp) -> Option<Result<Permit, Rejected>> {
        if self.settings.max_staleness.is_zero() {
            return None;
        }
        let cached = lock(&self.cached);
        if let Some(open_until) = cached.open_until {
            if now < open_until {
                return Some(Err(Rejected::new(
                    RejectReason::Open,
                    open_until.saturating_since(now),
                )));
            }
        }
        match cached.free {
            Some(generation) if now < cached.free_until => {
                Some(Ok(Permit::new(generation, PermitKind::Normal, now, false)))
            }
            _ => None,
        }
    }

    /// Remembers what a reply said, received at local time `now`.
    fn remember(&self, now: Timestamp, tail: &Tail) {
        let mut cached = lock(&self.cached);
        if (tail.generation, tail.now) < cached.seen {
            return;
        }
        cached.seen = (tail.generation, tail.now);
        cached.free = tail.free.then_some(tail.generation);
        cached.free_until = now.saturating_add(self.settings.max_staleness);
        // The open period is kept in local time: the same length from now as the script saw.
        let auto_open = tail.state == State::Open && tail.override_mode == Override::Auto;
        cached.open_until = (auto_open && tail.open_until > tail.now)
            .then(|| now.saturating_add(tail.open_until.saturating_since(tail.now)));
    }

    /// Forgets the cache (after an operator action whose effect must be seen at once).
    pub(crate) fn forget(&self) {
        *lock(&self.cached) = Cached::default();
    }

    /// The answer to `acquire`, from the script's reply or the store's failure.
    pub(crate) fn finish_acquire(
        &self,
        now: Timestamp,
        reply: Result<Vec<i64>, StoreError>,
    ) -> Result<Permit, Rejected> {
        match reply.and_then(|reply| script::parse_acquire(&reply, now)) {
            Ok((decision, tail)) => {
                self.remember(now, &tail);
                decision
            }
            Err(err) => {
                self.report(&err);
                match self.policy.on_store_failure() {
                    StoreFailurePolicy::FailClosed => Err(Rejected::new(
                        RejectReason::StoreUnavailable,
                        FAIL_CLOSED_RETRY,
                    )),
                    StoreFailurePolicy::Local => self.local_acquire(now),
                    _ => Ok(Permit::new(0, PermitKind::Unchecked, now, false)),
                }
            }
        }
    }

    fn local_acquire(&self, now: Timestamp) -> Result<Permit, Rejected> {
        let mut local = lock(&self.local);
        let permit = local.0.acquire(&self.policy, now)?;
        Ok(Permit::new(
            permit.generation() | LOCAL,
            permit.kind(),
            permit.started(),
            permit.transition().is_some(),
        ))
    }

    /// The work before recording: answer at once, or a script call to send.
    pub(crate) fn plan_record(&self, permit: Permit, outcome: Outcome) -> RecordPlan {
        let now = self.now();
        let elapsed = now.saturating_since(permit.started());
        let outcome = self.policy.classify(outcome, elapsed);
        if permit.generation() & LOCAL != 0 {
            let local_permit = Permit::new(
                permit.generation() & !LOCAL,
                permit.kind(),
                permit.started(),
                false,
            );
            let mut local = lock(&self.local);
            let (circuit, window) = &mut *local;
            let transition = circuit.record(&self.policy, now, &local_permit, outcome, window);
            return RecordPlan::Done(Recorded::new(outcome, elapsed, transition));
        }
        let ticket = match permit.kind() {
            // Admitted without the store: nothing to count.
            PermitKind::Unchecked => {
                return RecordPlan::Done(Recorded::new(outcome, elapsed, None));
            }
            // An ignored ordinary call changes nothing: no round trip.
            PermitKind::Normal if outcome == Outcome::Ignored => {
                return RecordPlan::Done(Recorded::new(outcome, elapsed, None));
            }
            PermitKind::Probe { ticket } => Some(ticket),
            _ => None,
        };
        let op = Op::Record {
            generation: permit.generation(),
            ticket,
            outcome,
        };
        RecordPlan::Send(self.invocation(now, op), RecordContext { outcome, elapsed })
    }

    /// The answer to `record`, from the script's reply or the store's failure.
    pub(crate) fn finish_record(
        &self,
        context: RecordContext,
        reply: Result<Vec<i64>, StoreError>,
    ) -> Recorded {
        let RecordContext { outcome, elapsed } = context;
        match reply.and_then(|reply| script::parse_transition(&reply, "record")) {
            Ok((transition, tail)) => {
                self.remember(self.now(), &tail);
                Recorded::new(outcome, elapsed, transition)
            }
            Err(err) => {
                self.report(&err);
                // The backend's answer stands; with a local fallback, it learns of it.
                let transition = if self.policy.on_store_failure() == StoreFailurePolicy::Local {
                    let now = self.now();
                    let mut local = lock(&self.local);
                    let (circuit, window) = &mut *local;
                    match circuit.acquire(&self.policy, now) {
                        Ok(permit) if !permit.is_probe() => {
                            circuit.record(&self.policy, now, &permit, outcome, window)
                        }
                        _ => None,
                    }
                } else {
                    None
                };
                Recorded::new(outcome, elapsed, transition)
            }
        }
    }

    /// `engine` with `listeners`: set in place when no clone shares it, otherwise on a fresh
    /// engine (with an empty cache and local fallback).
    pub(crate) fn with_listeners(mut engine: Arc<Engine>, listeners: Listeners) -> Arc<Engine> {
        match Arc::get_mut(&mut engine) {
            Some(only) => only.listeners = listeners,
            None => {
                let mut fresh =
                    Engine::new(&engine.name, engine.policy.clone(), engine.settings.clone());
                fresh.listeners = listeners;
                engine = Arc::new(fresh);
            }
        }
        engine
    }

    /// The script call for an operator request (or a snapshot), now.
    pub(crate) fn operator_call(&self, op: Op) -> ScriptInvocation<'static> {
        self.invocation(self.now(), op)
    }

    /// The script call that sets an override for `duration` (forever if `None`).
    pub(crate) fn override_call(
        &self,
        mode: Override,
        duration: Option<Duration>,
    ) -> ScriptInvocation<'static> {
        let duration_ms = duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.operator_call(Op::Override { mode, duration_ms })
    }

    /// After an operator call: the cache holds what the reply says, nothing older.
    fn after_operator(&self, tail: &Tail) {
        self.forget();
        self.remember(self.now(), tail);
    }

    /// The reply to a snapshot.
    pub(crate) fn finish_snapshot(&self, reply: &[i64]) -> Result<Snapshot, StoreError> {
        Ok(script::parse_snapshot(reply)?.0)
    }

    /// The reply to an override.
    pub(crate) fn finish_override(&self, reply: &[i64]) -> Result<(), StoreError> {
        self.after_operator(&script::parse_tail(reply)?);
        Ok(())
    }

    /// The reply to a trip.
    pub(crate) fn finish_trip(&self, reply: &[i64]) -> Result<Transition, StoreError> {
        let (transition, tail) = script::parse_transition(reply, "trip")?;
        self.after_operator(&tail);
        transition
            .ok_or_else(|| StoreError::new(StoreErrorKind::Corrupt, "trip reported no transition"))
    }

    /// The reply to a reset.
    pub(crate) fn finish_reset(&self, reply: &[i64]) -> Result<Option<Transition>, StoreError> {
        let (transition, tail) = script::parse_transition(reply, "reset")?;
        self.after_operator(&tail);
        Ok(transition)
    }

    /// Tells listeners and tracing that the store failed.
    pub(crate) fn report(&self, err: &StoreError) {
        tracing::warn!(breaker = %self.name, error = %err, policy = ?self.policy.on_store_failure(), "breaker store failed");
        self.listeners
            .emit(&Event::new(&self.name, EventKind::StoreError(err)));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use breaker_core::{ManualClock, RejectReason};

    use super::*;

    fn engine(clock: &ManualClock) -> Engine {
        let settings = Settings {
            prefix: "test".to_owned(),
            timeout: Duration::from_millis(50),
            max_staleness: Duration::from_secs(1),
            idle_ttl: Duration::from_secs(60),
            clock: Arc::new(clock.clone()),
            inject_time: true,
        };
        Engine::new("cache", Policy::default(), settings)
    }

    fn tail(state: State, generation: u64, open_until: u64, now: u64) -> Tail {
        Tail {
            state,
            generation,
            open_until: Timestamp::from_millis(open_until),
            free: state == State::Closed,
            now: Timestamp::from_millis(now),
            override_mode: Override::Auto,
        }
    }

    #[test]
    fn an_overtaken_reply_does_not_replace_a_newer_one() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let engine = engine(&clock);
        let now = clock.now();
        // A trip (generation 1) arrives before an older success's reply (generation 0).
        engine.remember(now, &tail(State::Open, 1, 31_000, 1_000));
        engine.remember(now, &tail(State::Closed, 0, 0, 999));
        let decision = engine.cached_acquire(now).expect("cached");
        assert_eq!(decision.unwrap_err().reason(), RejectReason::Open);
        // The open period ends: the cache no longer answers.
        clock.advance(Duration::from_secs(30));
        assert!(engine.cached_acquire(clock.now()).is_none());
        // A newer reply (a close, generation 1) is taken.
        engine.remember(clock.now(), &tail(State::Closed, 1, 0, 31_000));
        assert!(engine.cached_acquire(clock.now()).expect("cached").is_ok());
        // Staleness: after max_staleness the cache asks again.
        clock.advance(Duration::from_secs(1));
        assert!(engine.cached_acquire(clock.now()).is_none());
    }
}
