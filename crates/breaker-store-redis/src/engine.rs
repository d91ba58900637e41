//! Everything a Redis breaker does around its script calls, shared by the async and blocking
//! stores: the cached state, the store-failure policy, and the local fallback breaker. The
//! stores only move script invocations to Redis and back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use breaker_core::store::{self, LocalBreaker, PolicyMillis, RampCredit};
use breaker_core::{
    Action, Bucket, Circuit, Clock, Counts, EventKind, LaterEvent, Listeners, Outcome, Override,
    Permit, PermitKind, Policy, Recorded, RejectReason, Rejected, Report, Snapshot, State,
    StoreError, StoreErrorKind, StoreFailurePolicy, Timestamp, Transition,
};
use redis::{Cmd, ScriptInvocation};

use crate::keys::Keys;
use crate::registry;
use crate::script::{self, Op, Tail};
use crate::settings::Settings;

/// Permits given by the local fallback breaker carry this bit in their generation, so their
/// outcomes go back to it and never to Redis.
const LOCAL: u64 = 1 << 63;

/// Below the `LOCAL` bit, a local permit's generation holds the fallback's era (which outage
/// it belongs to) above `LOCAL_ERA_SHIFT` and the local breaker's own generation below it.
const LOCAL_ERA_SHIFT: u32 = 40;
const LOCAL_GENERATION: u64 = (1 << LOCAL_ERA_SHIFT) - 1;
const LOCAL_ERA: u64 = (1 << (63 - LOCAL_ERA_SHIFT)) - 1;

/// Outcomes a batch holds at most: past this, the call that adds one sends the batch, so
/// nothing pending grows without bound.
const MAX_PENDING: u64 = 1 << 16;

/// How soon a registration that failed is tried again.
const REGISTRATION_RETRY: Duration = Duration::from_secs(5);

/// How long a fail-closed rejection asks callers to wait before trying again.
const FAIL_CLOSED_RETRY: Duration = Duration::from_secs(1);

/// What the last reply said, as the pre-call check may reuse it.
///
/// Every deadline here is in the engine's clock (monotonic unless a test injects one), and a
/// clock read earlier than `received` makes the cache stale rather than older than it is.
#[derive(Debug, Default)]
struct Cached {
    /// The key's epoch and write sequence in the reply cached, so that a reply overtaken by a
    /// newer one (concurrent calls) does not replace it, while a new epoch (the key was lost
    /// and made again) always does.
    epoch: u64,
    sequence: u64,
    /// The breaker's generation in the reply cached.
    generation: u64,
    /// How many requests this engine had sent when the reply cached arrived: a reply to a
    /// request sent later is newer in Redis's own order, so it is taken even when its write
    /// sequence went back (a failover to a replica that lagged, a backup restored).
    issued: u64,
    /// When the reply cached arrived.
    received: Timestamp,
    /// `Some(generation)` while closed with no decision needed.
    free: Option<u64>,
    /// While automatically open: when the open period ends.
    open_until: Option<Timestamp>,
    /// While one caller asks Redis for a stale open state, the others keep the cached
    /// rejection until this time (the store's timeout), so an open breaker costs one round
    /// trip per `max_staleness`, not one per call.
    refreshing_until: Timestamp,
    /// The window's totals in the reply cached.
    counts: Counts,
    /// The operator override in force, and when it ends in local time (`None`: never). It
    /// holds while Redis cannot be reached, whatever the failure policy.
    forced: Option<(Override, Option<Timestamp>)>,
}

/// The ramp after a close by probes (policy `ramp_up`), as this process runs it: which share
/// of its calls goes is decided here, from the close time the replies carry, so ramping costs
/// no round trip. Kept apart from the cache, which an operator action forgets: the ramp's
/// credit must carry on as the core's does.
#[derive(Debug, Default)]
struct Ramp {
    /// The generation the close started and when it happened, in local time, while its ramp
    /// may run.
    from: Option<(u64, Timestamp)>,
    /// The generation whose ramp the credit belongs to.
    generation: u64,
    credit: RampCredit,
    /// The generation whose ramp is over: a clock stepping back does not start it again.
    done: Option<u64>,
}

/// Outcomes of ordinary calls added up in the process (batched mode), all of one generation.
#[derive(Debug, Default)]
struct Pending {
    generation: u64,
    successes: u64,
    failures: u64,
    /// When the first of them was added.
    since: Timestamp,
}

impl Pending {
    fn calls(&self) -> u64 {
        self.successes + self.failures
    }
}

/// Whether a batched outcome asks for the batch to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BatchDue {
    /// Not yet: it goes with the others.
    No,
    /// The first of a new batch: send it when the interval has passed.
    Later(Duration),
    /// Now: the interval passed, or the batch is full.
    Now,
    /// Now, by the caller itself: this failure could trip the breaker by the last totals
    /// Redis sent plus what is pending. The caller waits for the round trip (its call failed
    /// anyway), so no call of this process passes between that failure and the trip.
    Trip,
}

/// The local fallback breaker (policy `local`): used only while the store fails, started
/// afresh, in a new era, when the store answers again.
#[derive(Debug)]
struct Local {
    breaker: LocalBreaker,
    era: u64,
    used: bool,
}

impl Local {
    fn new(policy: &Policy, era: u64) -> Local {
        Local {
            breaker: LocalBreaker::new(policy),
            era: era & LOCAL_ERA,
            used: false,
        }
    }
}

/// When this process last wrote the breaker into the registry, and when it should next.
#[derive(Debug, Default)]
struct Registration {
    attempted: Timestamp,
    /// `None`: due now.
    next: Option<Timestamp>,
    /// The epoch of the breaker's key when the registration was last due: a key made again
    /// (Redis lost it, and the registry with it) makes the registration due at once.
    epoch: u64,
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
    local: Mutex<Local>,
    registration: Mutex<Registration>,
    pending: Mutex<Pending>,
    ramp: Mutex<Ramp>,
    /// Batches taken to be sent, and batches whose reply (or failure) was handled: a flush
    /// waits for the batches already on their way, not only for its own.
    batches_taken: AtomicU64,
    batches_done: AtomicU64,
    /// Requests sent so far (see [`Cached::issued`]).
    sent: AtomicU64,
}

/// What `record` must do after the pre-call work.
pub(crate) enum RecordPlan {
    /// Nothing to send: the answer is known.
    Done(Recorded),
    /// Send this script call, then hand its reply to [`Engine::finish_record`].
    Send(ScriptInvocation<'static>, RecordContext),
    /// Added to the batch (batched mode): the answer, and when the batch should go.
    Batched(Recorded, BatchDue),
}

/// Counts a batch as handled when its handling ends.
struct DoneOnDrop<'a>(&'a AtomicU64);

impl Drop for DoneOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What `finish_batch` needs to know about the batch it finishes.
pub(crate) struct BatchContext {
    successes: u64,
    failures: u64,
    sent: u64,
}

/// What `finish_record` needs to know about the call it finishes.
pub(crate) struct RecordContext {
    outcome: Outcome,
    elapsed: Duration,
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
            local: Mutex::new(Local::new(&policy, 0)),
            policy,
            settings,
            listeners: Listeners::new(),
            cached: Mutex::new(Cached::default()),
            registration: Mutex::new(Registration::default()),
            pending: Mutex::new(Pending::default()),
            ramp: Mutex::new(Ramp::default()),
            batches_taken: AtomicU64::new(0),
            batches_done: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        }
    }

    /// Counts a request about to be sent; its number goes back to [`Engine::remember`] with
    /// the reply.
    pub(crate) fn send(&self) -> u64 {
        self.sent.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.settings.clock.now()
    }

    pub(crate) fn invocation(&self, now: Timestamp, op: Op) -> ScriptInvocation<'static> {
        let injected = self.settings.inject_time.then_some(now);
        script::invocation(&self.keys, injected, &self.policy, &self.settings, op)
    }

    /// The pre-call check from the cache, if it can answer.
    pub(crate) fn cached_acquire(&self, now: Timestamp) -> Option<Result<Permit, Rejected>> {
        if self.settings.max_staleness.is_zero() {
            return None;
        }
        let mut cached = lock(&self.cached);
        if now < cached.received {
            // The clock stepped back: the cache's age is unknown.
            return None;
        }
        let fresh = now < cached.received.saturating_add(self.settings.max_staleness);
        if let Some(open_until) = cached.open_until {
            if now < open_until {
                if !fresh && now >= cached.refreshing_until {
                    // Stale: this caller asks Redis (an operator may have reset the breaker),
                    // the others keep rejecting until it has the answer.
                    cached.refreshing_until = now.saturating_add(self.settings.timeout);
                    return None;
                }
                return Some(Err(Rejected::new(
                    RejectReason::Open,
                    open_until.saturating_since(now),
                )));
            }
        }
        match cached.free {
            Some(generation) if fresh => Some(
                self.ramp_admits(now, generation)
                    .map(|()| store::permit(generation, PermitKind::Normal, now, false)),
            ),
            _ => None,
        }
    }

    /// Whether the ramp after a close by probes lets an ordinary call of `generation` go at
    /// `now` (always, when no ramp runs): the rule of `Circuit`'s ramp, with this process's
    /// own credit.
    fn ramp_admits(&self, now: Timestamp, generation: u64) -> Result<(), Rejected> {
        let Some(ramp_ms) = self.policy.ramp_up_millis() else {
            return Ok(());
        };
        let mut ramp = lock(&self.ramp);
        let Some((from_generation, from)) = ramp.from else {
            return Ok(());
        };
        if from_generation != generation {
            return Ok(());
        }
        let decision = ramp.credit.decide(from, now, ramp_ms);
        if decision.is_none() {
            ramp.from = None;
            ramp.done = Some(generation);
        }
        decision.unwrap_or(Ok(()))
    }

    /// Follows the ramp a reply (received at local time `now`) says may run.
    fn follow_ramp(&self, now: Timestamp, tail: &Tail) {
        let closed = tail.state == State::Closed && tail.override_mode == Override::Auto;
        let mut ramp = lock(&self.ramp);
        if !closed || tail.closed_by_probes == Timestamp::ZERO {
            ramp.from = None;
            return;
        }
        if ramp.done == Some(tail.generation) {
            return;
        }
        if ramp.generation != tail.generation {
            ramp.generation = tail.generation;
            ramp.credit = RampCredit::new();
        }
        // The close in local time: as long before (or after, when the script's clock stepped
        // back) this reply as the script saw it.
        let close = tail.closed_by_probes.as_millis();
        let from =
            Timestamp::from_millis((now.as_millis() + close).saturating_sub(tail.now.as_millis()));
        ramp.from = Some((tail.generation, from));
    }

    /// Remembers what the reply to request `sent` said, received at local time `now`: the
    /// store answered, so a local fallback in use ends, and a key found lost is reported and
    /// registered again.
    ///
    /// A reply overtaken by a newer one (concurrent calls) does not replace it: it has the
    /// same epoch, a lower write sequence, and its request left before the cached reply
    /// arrived. A reply to a request sent after that is Redis's state now, taken even if its
    /// sequence went back: the key was rolled back to an earlier copy.
    fn remember(&self, sent: u64, now: Timestamp, tail: &Tail) {
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
        {
            let mut registration = lock(&self.registration);
            if registration.epoch != tail.epoch {
                registration.epoch = tail.epoch;
                registration.next = None;
            }
        }
        let lost = {
            let mut cached = lock(&self.cached);
            let same_epoch = cached.epoch == tail.epoch;
            if same_epoch && tail.sequence < cached.sequence && sent <= cached.issued {
                None
            } else {
                let lost = cached.epoch != 0 && !same_epoch;
                cached.epoch = tail.epoch;
                cached.sequence = tail.sequence;
                cached.generation = tail.generation;
                cached.issued = self.sent.load(Ordering::SeqCst);
                cached.received = now;
                cached.refreshing_until = Timestamp::ZERO;
                cached.free = tail.free.then_some(tail.generation);
                cached.counts = tail.counts;
                // The open period is kept in local time: the same length from now as the
                // script saw.
                let auto_open = tail.state == State::Open && tail.override_mode == Override::Auto;
                cached.open_until = (auto_open && tail.open_until > tail.now)
                    .then(|| now.saturating_add(tail.open_until.saturating_since(tail.now)));
                cached.forced = match tail.override_mode {
                    Override::Auto => None,
                    mode if tail.override_until == Timestamp::ZERO => Some((mode, None)),
                    mode => (tail.override_until > tail.now).then(|| {
                        let left = tail.override_until.saturating_since(tail.now);
                        (mode, Some(now.saturating_add(left)))
                    }),
                };
                Some(lost)
            }
        };
        if lost.is_some() {
            self.follow_ramp(now, tail);
        }
        if lost == Some(true) {
            self.report(StoreError::new(
                StoreErrorKind::StateLost,
                "the breaker's state in Redis was lost (a restart, a flush, an eviction or an \
                 expiry) and started afresh; this process now follows the new state",
            ));
        }
        let mut local = lock(&self.local);
        if local.used {
            // The fleet's state wins; the next outage starts from a fresh local breaker.
            let era = local.era + 1;
            *local = Local::new(&self.policy, era);
        }
    }

    /// Forgets the cache (after an operator action whose effect must be seen at once).
    pub(crate) fn forget(&self) {
        *lock(&self.cached) = Cached::default();
    }

    /// Makes the cached state stale at once (a change was pushed): the next call asks Redis,
    /// while a reply older than the one cached is still not taken.
    #[cfg(feature = "tokio")]
    pub(crate) fn make_stale(&self) {
        let mut cached = lock(&self.cached);
        cached.received = Timestamp::ZERO;
        cached.refreshing_until = Timestamp::ZERO;
    }

    /// The answer to `acquire`, from the script's reply or the store's failure.
    pub(crate) fn finish_acquire(
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
                            && tail.override_mode == Override::Auto =>
                    {
                        self.ramp_admits(now, permit.generation()).map(|()| permit)
                    }
                    decision => decision,
                }
            }
            Err(err) => {
                self.report(err);
                if let Some(decision) = self.held_override(now) {
                    return decision;
                }
                match self.policy.on_store_failure() {
                    StoreFailurePolicy::FailClosed => Err(Rejected::new(
                        RejectReason::StoreUnavailable,
                        FAIL_CLOSED_RETRY,
                    )),
                    StoreFailurePolicy::Local => self.local_acquire(now),
                    _ => Ok(store::permit(0, PermitKind::Unchecked, now, false)),
                }
            }
        }
    }

    /// While Redis cannot be reached: the operator's override this process last learnt of,
    /// until its expiry, whatever the failure policy.
    fn held_override(&self, now: Timestamp) -> Option<Result<Permit, Rejected>> {
        let (mode, until) = lock(&self.cached).forced?;
        if until.is_some_and(|until| now >= until) {
            return None;
        }
        match mode {
            Override::ForcedOpen => {
                let wait =
                    until.map_or(self.policy.open_for(), |until| until.saturating_since(now));
                Some(Err(Rejected::new(RejectReason::ForcedOpen, wait)))
            }
            Override::ForcedClosed => Some(Ok(store::permit(0, PermitKind::Unchecked, now, false))),
            _ => None,
        }
    }

    fn local_acquire(&self, now: Timestamp) -> Result<Permit, Rejected> {
        let mut local = lock(&self.local);
        local.used = true;
        let permit = local.breaker.acquire(&self.policy, now)?;
        Ok(store::permit(
            LOCAL | local.era << LOCAL_ERA_SHIFT | (permit.generation() & LOCAL_GENERATION),
            permit.kind(),
            permit.started(),
            permit.transition().is_some(),
        ))
    }

    /// The work before recording `report`: answer at once, or a script call to send. The
    /// one place a [`Report`] becomes a script [`Op`].
    pub(crate) fn plan_record(&self, permit: Permit, report: Report) -> RecordPlan {
        let now = self.now();
        let outcome = report.outcome;
        if permit.generation() & LOCAL != 0 {
            let mut local = lock(&self.local);
            let era = (permit.generation() & !LOCAL) >> LOCAL_ERA_SHIFT;
            if era != local.era {
                // Given by a local breaker that has since given way to the store's state.
                let (outcome, elapsed) = store::classify(&self.policy, &permit, outcome, now);
                return RecordPlan::Done(Recorded::new(outcome, elapsed, None));
            }
            let local_permit = store::permit(
                permit.generation() & LOCAL_GENERATION,
                permit.kind(),
                permit.started(),
                false,
            );
            return RecordPlan::Done(
                local
                    .breaker
                    .record(&self.policy, now, local_permit, report),
            );
        }
        let (outcome, elapsed) = store::classify(&self.policy, &permit, outcome, now);
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
        if ticket.is_none() && hold_off.is_none() && self.settings.batch.is_some() {
            // Probes are never batched: the script grants them one by one.
            let due = self.add_to_batch(permit.generation(), outcome, now);
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

    /// Adds an ordinary call's outcome to the batch; says when the batch should go.
    fn add_to_batch(&self, generation: u64, outcome: Outcome, now: Timestamp) -> BatchDue {
        let Some(interval) = self.settings.batch else {
            return BatchDue::Now;
        };
        let mut pending = lock(&self.pending);
        let first = pending.calls() == 0;
        if !first && generation != pending.generation {
            // Two cycles meet: the one the last reply named is Redis's current cycle (after a
            // lost key or a rollback its generation may be lower), and the script ignores the
            // other's outcomes. Without a reply naming either, the later generation wins.
            let current = lock(&self.cached).generation;
            let permit_is_current = if pending.generation == current {
                false
            } else if generation == current {
                true
            } else {
                generation > pending.generation
            };
            if !permit_is_current {
                // From a cycle that already ended: not counted, and the batch still goes
                // when it is due.
                let due = now.saturating_since(pending.since) >= interval || now < pending.since;
                return if due { BatchDue::Now } else { BatchDue::No };
            }
        }
        let first = first || generation != pending.generation;
        if first {
            // Outcomes of an ended cycle would be ignored by the script: dropped here.
            *pending = Pending {
                generation,
                successes: 0,
                failures: 0,
                since: now,
            };
        }
        let failure = outcome == Outcome::Failure;
        if failure {
            pending.failures += 1;
        } else {
            pending.successes += 1;
        }
        // A failure that could trip the breaker, by the last totals Redis sent plus what is
        // pending, goes at once: the trip is not held back for the interval.
        let could_trip = failure && {
            let cached = lock(&self.cached);
            cached.free == Some(generation)
                && self.policy.trips(Counts {
                    calls: cached.counts.calls + pending.calls(),
                    failures: cached.counts.failures + pending.failures,
                })
        };
        let elapsed = now.saturating_since(pending.since);
        if could_trip {
            BatchDue::Trip
        } else if elapsed >= interval || now < pending.since || pending.calls() >= MAX_PENDING {
            BatchDue::Now
        } else if first {
            BatchDue::Later(interval)
        } else {
            BatchDue::No
        }
    }

    /// Takes what is pending, as the script call that counts it; `None` if nothing is.
    pub(crate) fn take_batch(&self) -> Option<(ScriptInvocation<'static>, BatchContext)> {
        let pending = std::mem::take(&mut *lock(&self.pending));
        if pending.calls() == 0 {
            return None;
        }
        let op = Op::Batch {
            generation: pending.generation,
            successes: pending.successes,
            failures: pending.failures,
        };
        let context = BatchContext {
            successes: pending.successes,
            failures: pending.failures,
            sent: self.send(),
        };
        self.batches_taken.fetch_add(1, Ordering::SeqCst);
        Some((self.invocation(self.now(), op), context))
    }

    /// How many batches have been taken to be sent so far.
    pub(crate) fn batches_taken(&self) -> u64 {
        self.batches_taken.load(Ordering::SeqCst)
    }

    /// Whether every batch of the first `taken` has been handled (sent, or failed).
    pub(crate) fn batches_done(&self, taken: u64) -> bool {
        self.batches_done.load(Ordering::SeqCst) >= taken
    }

    /// After a batch was sent: the cache takes the reply and listeners hear of a transition
    /// it made (no caller waits for a batch, so the engine tells them); when Redis failed,
    /// the failure policy applies to the batch as to a call.
    pub(crate) fn finish_batch(&self, context: BatchContext, reply: Result<Vec<i64>, StoreError>) {
        let _done = DoneOnDrop(&self.batches_done);
        match reply.and_then(|reply| self.parse_record(&reply, "batch")) {
            Ok((transition, tail)) => {
                self.remember(context.sent, self.now(), &tail);
                if let Some(transition) = transition {
                    self.emit_transition(transition);
                }
            }
            Err(err) => {
                self.report(err);
                if self.policy.on_store_failure() == StoreFailurePolicy::Local {
                    let outcomes = [
                        (Outcome::Success, context.successes),
                        (Outcome::Failure, context.failures),
                    ];
                    for (outcome, times) in outcomes {
                        for _ in 0..times {
                            if let Some(transition) = self.count_locally(outcome) {
                                self.emit_transition(transition);
                            }
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
    ) -> Result<(Option<Transition>, Tail), StoreError> {
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

    /// Counts an outcome in the local fallback breaker while it can without a decision
    /// (closed): it never takes a probe slot for a call it did not admit.
    fn count_locally(&self, outcome: Outcome) -> Option<Transition> {
        let now = self.now();
        let mut local = lock(&self.local);
        local.used = true;
        let generation = local.breaker.circuit().free_generation()?;
        let permit = store::permit(generation, PermitKind::Normal, now, false);
        local
            .breaker
            .record(&self.policy, now, permit, outcome.into())
            .transition
    }

    /// The answer to `record`, from the script's reply or the store's failure.
    pub(crate) fn finish_record(
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
                let transition = if self.policy.on_store_failure() == StoreFailurePolicy::Local {
                    self.count_locally(outcome)
                } else {
                    None
                };
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
    pub(crate) fn operator_call(&self, op: Op) -> ScriptInvocation<'static> {
        self.invocation(self.now(), op)
    }

    /// The script call that applies an operator's `action` now, and what it is for (for
    /// errors and logs): the one place an [`Action`] becomes a script [`Op`].
    pub(crate) fn action_call(
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

    /// After an operator call: the cache holds what the reply says, nothing older.
    fn after_operator(&self, tail: &Tail) {
        self.forget();
        self.remember(self.send(), self.now(), tail);
    }

    /// The reply to a window read.
    pub(crate) fn finish_window(&self, reply: &[i64]) -> Result<Vec<Bucket>, StoreError> {
        let width = self.policy.bucket_millis();
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

    /// The reply to a snapshot.
    pub(crate) fn finish_snapshot(&self, reply: &[i64]) -> Result<Snapshot, StoreError> {
        let (mut snapshot, tail) = script::parse_snapshot(reply)?;
        snapshot.ramping_until = self.ramping_until(&tail, snapshot.override_mode);
        Ok(snapshot)
    }

    /// When the ramp after the close a reply names ends, while it runs (as `Circuit` says),
    /// with the override in force at the reply's time.
    fn ramping_until(&self, tail: &Tail, override_mode: Override) -> Option<Timestamp> {
        let ramp_ms = self.policy.ramp_up_millis()?;
        let closed = tail.state == State::Closed && override_mode == Override::Auto;
        let over = lock(&self.ramp).done == Some(tail.generation);
        let until = tail.closed_by_probes.add_millis(ramp_ms);
        (closed && !over && tail.closed_by_probes != Timestamp::ZERO && tail.now < until)
            .then_some(until)
    }

    /// The reply to an operator's `action`: the transition it made (a trip always makes one;
    /// an override none).
    pub(crate) fn finish_action(
        &self,
        action: Action,
        reply: &[i64],
    ) -> Result<Option<Transition>, StoreError> {
        let (transition, tail) = match action {
            Action::Override { .. } => (None, script::parse_tail(reply)?),
            _ => script::parse_transition(reply, &action.to_string())?,
        };
        self.after_operator(&tail);
        if action == Action::Trip && transition.is_none() {
            return Err(StoreError::new(
                StoreErrorKind::Corrupt,
                "trip reported no transition",
            ));
        }
        Ok(transition)
    }

    /// Whether this process should write the breaker into the registry now: when it never
    /// did, when the last write failed more than a few seconds ago, when the key was found
    /// lost, or when half the idle TTL has passed since the last write. Claims the write, so
    /// concurrent callers do not repeat it; report how it went to [`Engine::registered`].
    pub(crate) fn registration_due(&self, now: Timestamp) -> bool {
        let mut registration = lock(&self.registration);
        let due = match registration.next {
            None => true,
            // A clock that stepped back says nothing of how long ago the last write was.
            Some(next) => now >= next || now < registration.attempted,
        };
        if due {
            registration.attempted = now;
            registration.next = Some(now.saturating_add(REGISTRATION_RETRY));
        }
        due
    }

    /// How the registration claimed at `now` went.
    pub(crate) fn registered(&self, now: Timestamp, ok: bool) {
        let wait = if ok {
            self.settings.idle_ttl / 2
        } else {
            REGISTRATION_RETRY
        };
        lock(&self.registration).next = Some(now.saturating_add(wait));
    }

    /// The commands that write this breaker into the registry, with its last use now.
    pub(crate) fn registration(&self) -> Result<[Cmd; 6], StoreError> {
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
    pub(crate) fn report(&self, err: StoreError) {
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

    use breaker_core::{Event, EventKind, ManualClock, RejectReason};

    use super::*;

    fn engine(clock: &ManualClock) -> Engine {
        let settings = Settings {
            prefix: "test".to_owned(),
            timeout: Duration::from_millis(50),
            max_staleness: Duration::from_secs(1),
            idle_ttl: Duration::from_secs(60),
            clock: Arc::new(clock.clone()),
            inject_time: true,
            history_len: 10,
            actor: "test".to_owned(),
            batch: None,
            reporter: "test".to_owned(),
        };
        Engine::new("cache", Policy::default(), settings)
    }

    fn tail(state: State, generation: u64, open_until: u64, now: u64, sequence: u64) -> Tail {
        Tail {
            state,
            generation,
            open_until: Timestamp::from_millis(open_until),
            free: state == State::Closed,
            now: Timestamp::from_millis(now),
            override_mode: Override::Auto,
            epoch: 7,
            sequence,
            repaired: 0,
            counts: breaker_core::Counts::default(),
            override_until: Timestamp::ZERO,
            closed_by_probes: Timestamp::ZERO,
        }
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
