//! The state machine of one breaker (SPEC section 4), over time passed in.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outcome::{Counts, Outcome, Report};
use crate::policy::{Policy, PolicyMillis};
use crate::time::Timestamp;
use crate::window::Window;

mod action;
mod ramp;
mod stored;

pub use action::Action;

pub use ramp::{RAMP_START_PER_MILLE, RampCredit, ramp_retry_after, ramp_share};

/// The automatic state of a breaker.
#[allow(clippy::exhaustive_enums)] // The three states of SPEC section 4, complete by definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Calls flow and are counted.
    Closed,
    /// Calls are rejected until the open period ends.
    Open,
    /// The open period has ended: a few probes go through, the rest are rejected.
    HalfOpen,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        })
    }
}

/// An operator's override, applied on top of the automatic state by every process.
#[allow(clippy::exhaustive_enums)] // Auto and the two overrides of SPEC section 4, complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Override {
    /// No override: the automatic state decides.
    #[default]
    Auto,
    /// Reject every call.
    ForcedOpen,
    /// Allow every call; calls are still counted, but the breaker never trips.
    ForcedClosed,
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Override::Auto => "auto",
            Override::ForcedOpen => "forced-open",
            Override::ForcedClosed => "forced-closed",
        })
    }
}

/// What a permit admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PermitKind {
    /// An ordinary call while closed (or forced closed); its outcome is counted in the window.
    Normal,
    /// A half-open probe holding slot `ticket` until its lease ends.
    Probe {
        /// The probe's slot, unique within the breaker.
        ticket: u64,
    },
    /// A call let through without the store's word (its store failed, policy fail-open);
    /// its outcome is not counted.
    Unchecked,
}

/// Leave to make one call; hand it back with the outcome.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a permit must be handed back with the call's outcome"]
pub struct Permit {
    generation: u64,
    started: Timestamp,
    ticket: u64,
    /// The kind (`KIND_*`) and `HALF_OPENED`, packed in a whole word: a permit made only of
    /// words moves through registers on the hot path, where a byte-sized field made the
    /// compiler store and reload it through the stack.
    flags: u64,
}

const KIND_NORMAL: u64 = 0;
const KIND_PROBE: u64 = 1;
const KIND_UNCHECKED: u64 = 2;
const KIND_MASK: u64 = 3;
const HALF_OPENED: u64 = 4;

/// A permit, as a store builds one from its own answer (a Redis script's reply, an in-process
/// word): `half_opened` says that giving it moved the breaker from open to half-open.
#[inline]
pub fn new_permit(
    generation: u64,
    kind: PermitKind,
    started: Timestamp,
    half_opened: bool,
) -> Permit {
    Permit::new(generation, kind, started, half_opened)
}

impl Permit {
    #[inline]
    pub(crate) fn new(
        generation: u64,
        kind: PermitKind,
        started: Timestamp,
        half_opened: bool,
    ) -> Permit {
        let (kind, ticket) = match kind {
            PermitKind::Normal => (KIND_NORMAL, 0),
            PermitKind::Probe { ticket } => (KIND_PROBE, ticket),
            PermitKind::Unchecked => (KIND_UNCHECKED, 0),
        };
        Permit {
            generation,
            started,
            ticket,
            flags: kind | if half_opened { HALF_OPENED } else { 0 },
        }
    }

    /// The breaker's generation (open/half-open cycle) when the permit was given.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What the permit admits.
    #[inline]
    pub fn kind(&self) -> PermitKind {
        match self.flags & KIND_MASK {
            KIND_NORMAL => PermitKind::Normal,
            KIND_PROBE => PermitKind::Probe {
                ticket: self.ticket,
            },
            _ => PermitKind::Unchecked,
        }
    }

    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.flags & KIND_MASK == KIND_PROBE
    }

    /// When the permit was given, by the clock of the store that gave it.
    #[inline]
    pub fn started(&self) -> Timestamp {
        self.started
    }

    /// The transition that giving this permit made (the first probe after an open period
    /// moves the breaker to half-open), reported once across the fleet.
    pub fn transition(&self) -> Option<Transition> {
        // Kept as a flag, not a `Transition`, so that a permit stays small on the hot path.
        (self.flags & HALF_OPENED != 0).then_some(Transition::HalfOpened {
            generation: self.generation,
        })
    }
}

/// Why a call was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The breaker is open.
    Open,
    /// The breaker is half-open and every probe slot is taken.
    ProbesBusy,
    /// An operator forced the breaker open.
    ForcedOpen,
    /// The store failed and the breaker's policy is fail-closed.
    StoreUnavailable,
    /// The breaker closed a moment ago and is ramping up: this call is outside the share
    /// admitted so far (policy `ramp_up`).
    RampingUp,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::Open => "the breaker is open",
            RejectReason::ProbesBusy => "the breaker is half-open and its probe slots are taken",
            RejectReason::ForcedOpen => "the breaker is forced open",
            RejectReason::StoreUnavailable => "the breaker's store is unavailable (fail-closed)",
            RejectReason::RampingUp => "the breaker is ramping up after a close",
        })
    }
}

/// A call the breaker refused, with how long until a call may be admitted again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rejected {
    reason: RejectReason,
    retry_after: Duration,
}

impl Rejected {
    /// A rejection; stores build these from their state machine's answer.
    pub fn new(reason: RejectReason, retry_after: Duration) -> Rejected {
        Rejected {
            reason,
            retry_after,
        }
    }

    /// Why the call was rejected.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// How long until a probe may go (for an override with no expiry, the policy's `open_for`).
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; retry after {}",
            self.reason,
            humantime::format_duration(self.retry_after)
        )
    }
}

impl std::error::Error for Rejected {}

/// Why a breaker opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TripCause {
    /// The window's counts met the policy's trip rule.
    Threshold(Counts),
    /// A half-open probe failed.
    ProbeFailed,
    /// An operator tripped it.
    Operator,
    /// The backend answered 429 or 503 with `Retry-After`.
    RetryAfter,
}

/// A change of state, reported once across the fleet by whoever made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transition {
    /// The breaker opened (generation `generation`) until `open_until`.
    Tripped {
        /// The new generation.
        generation: u64,
        /// When probes may start.
        open_until: Timestamp,
        /// How long this open period lasts (with backoff applied).
        open_for: Duration,
        /// What tripped it.
        cause: TripCause,
    },
    /// The open period ended and the first probe was admitted.
    HalfOpened {
        /// The generation the probes belong to.
        generation: u64,
    },
    /// The breaker closed (probes succeeded, or an operator reset it); the window was cleared
    /// and a new generation began.
    Closed {
        /// The generation of the cycle that ended (the new one is one more).
        generation: u64,
    },
}

/// A read-only view of a breaker at some time, for operators and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Snapshot {
    /// The automatic state (an open breaker whose period has passed reads as half-open).
    pub state: State,
    /// The operator override in force.
    pub override_mode: Override,
    /// When the override ends, if it does.
    pub override_until: Option<Timestamp>,
    /// The current generation (cycle): it grows by one at each trip and at each close.
    pub generation: u64,
    /// When the current open period ends, if open.
    pub open_until: Option<Timestamp>,
    /// Calls and failures in the window.
    pub counts: Counts,
    /// Probes holding a slot.
    pub probes_in_flight: u32,
    /// While closed and ramping up after a close (policy `ramp_up`): when the ramp ends.
    pub ramping_until: Option<Timestamp>,
}

/// The view of a fresh breaker: closed, generation 0, no override, no calls, nothing in
/// flight. [`Snapshot`] is non-exhaustive, so this is how a store that reads a breaker's state
/// its own way (a script's reply) makes one, setting each field it read:
///
/// ```
/// use breaker_core::{State, Timestamp};
///
/// let mut snapshot = breaker_core::store::snapshot();
/// snapshot.state = State::Open;
/// snapshot.generation = 3;
/// snapshot.open_until = Some(Timestamp::from_millis(9_000));
/// assert_eq!(snapshot.counts.calls, 0);
/// ```
pub fn new_snapshot() -> Snapshot {
    Snapshot {
        state: State::Closed,
        override_mode: Override::Auto,
        override_until: None,
        generation: 0,
        open_until: None,
        counts: Counts::default(),
        probes_in_flight: 0,
        ramping_until: None,
    }
}

/// One half-open probe slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lease {
    ticket: u64,
    until: Timestamp,
}

/// The control state of one breaker: everything but the window's counts.
///
/// Every decision of SPEC section 4 is made here, once; stores keep a `Circuit` (or, for Redis,
/// a script checked against it by a differential test) and a [`Window`], and call these
/// methods with the time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Circuit {
    state: State,
    generation: u64,
    open_until: Timestamp,
    open_ms: u64,
    successes: u32,
    probes: Vec<Lease>,
    next_ticket: u64,
    override_mode: Override,
    override_until: Option<Timestamp>,
    /// When the last close by probes happened, while its ramp may still run.
    ramp_from: Option<Timestamp>,
    ramp_credit: RampCredit,
}

impl Default for Circuit {
    fn default() -> Circuit {
        Circuit::new()
    }
}

impl Circuit {
    /// A closed breaker, generation 0, no override.
    pub fn new() -> Circuit {
        Circuit {
            state: State::Closed,
            generation: 0,
            open_until: Timestamp::ZERO,
            open_ms: 0,
            successes: 0,
            probes: Vec::new(),
            next_ticket: 0,
            override_mode: Override::Auto,
            override_until: None,
            ramp_from: None,
            ramp_credit: RampCredit::new(),
        }
    }

    /// The generation whose ordinary permits can be given and whose successes recorded without
    /// any decision, whatever the time: `Some` when closed with no override, or forced closed
    /// with no expiry.
    ///
    /// A store may serve those two operations from this value alone (the memory store keeps
    /// it in one atomic word), since [`Circuit::acquire`] would answer `Normal` with this
    /// generation and [`Circuit::record`] of a success would only count it (a report with
    /// nothing but its outcome: [`Report::is_outcome_only`]). Not while a ramp may run after a
    /// close: each call is then decided.
    pub fn free_generation(&self) -> Option<u64> {
        let free = match (self.override_mode, self.override_until) {
            (Override::Auto, _) => self.state == State::Closed && self.ramp_from.is_none(),
            (Override::ForcedClosed, None) => true,
            _ => false,
        };
        free.then_some(self.generation)
    }

    /// Asks to make a call at `now`.
    pub fn acquire(&mut self, policy: &Policy, now: Timestamp) -> Result<Permit, Rejected> {
        self.expire_override(now);
        match self.override_mode {
            Override::ForcedOpen => {
                let retry_after = match self.override_until {
                    Some(until) => until.saturating_since(now),
                    None => policy.open_for(),
                };
                return Err(Rejected::new(RejectReason::ForcedOpen, retry_after));
            }
            Override::ForcedClosed => {
                return Ok(Permit::new(self.generation, PermitKind::Normal, now, false));
            }
            Override::Auto => {}
        }
        let mut half_opened = false;
        match self.state {
            State::Closed => {
                self.ramp(policy, now)?;
                return Ok(Permit::new(self.generation, PermitKind::Normal, now, false));
            }
            State::Open if now < self.open_until => {
                return Err(Rejected::new(
                    RejectReason::Open,
                    self.open_until.saturating_since(now),
                ));
            }
            State::Open => {
                self.state = State::HalfOpen;
                self.successes = 0;
                self.probes.clear();
                half_opened = true;
            }
            State::HalfOpen => {}
        }
        self.probes.retain(|lease| lease.until > now);
        if self.probes.len() < policy.half_open_probes() as usize {
            self.next_ticket += 1;
            let ticket = self.next_ticket;
            self.probes.push(Lease {
                ticket,
                until: now.add_millis(policy.probe_lease_millis()),
            });
            Ok(Permit::new(
                self.generation,
                PermitKind::Probe { ticket },
                now,
                half_opened,
            ))
        } else {
            let first_free = self.probes.iter().map(|lease| lease.until).min();
            let retry_after =
                first_free.map_or(Duration::ZERO, |until| until.saturating_since(now));
            Err(Rejected::new(RejectReason::ProbesBusy, retry_after))
        }
    }

    /// Records the report of the call `permit` admitted, at `now`, counting it in `window`.
    ///
    /// Reports from an earlier generation, probes reported after the half-open cycle ended,
    /// and unchecked permits are ignored. A report that changes nothing (an unchecked permit,
    /// an ordinary call's ignored outcome with no wait asked) leaves the breaker exactly as it
    /// was: a store need not send it anywhere.
    ///
    /// A report whose response asked every caller to wait (its `retry_after`: a 429 or 503
    /// with `Retry-After`), under the policy's `retry_after = honour`, opens the breaker until
    /// `now + wait` (capped by `max_open_for`), whatever the window says, in this one step,
    /// reported as a trip caused by [`TripCause::RetryAfter`]. An ordinary call's outcome is
    /// counted in the window; a probe frees its slot and neither counts toward closing nor
    /// reopens with backoff. A breaker already open until later stays as it is; forced closed
    /// never trips. Otherwise (policy `ignore`, no wait, a report from an earlier cycle, an
    /// unchecked permit) only the outcome counts.
    pub fn record<W: Window + ?Sized>(
        &mut self,
        policy: &Policy,
        now: Timestamp,
        permit: &Permit,
        report: Report,
        window: &mut W,
    ) -> Option<Transition> {
        let outcome = report.outcome;
        let hold_ms = match report
            .retry_after
            .and_then(|wait| policy.hold_off_millis(wait))
        {
            Some(ms) if permit.kind() != PermitKind::Unchecked => ms,
            _ => return self.record_outcome(policy, now, permit, outcome, window),
        };
        self.expire_override(now);
        if permit.generation != self.generation || self.override_mode == Override::ForcedClosed {
            return self.record_outcome(policy, now, permit, outcome, window);
        }
        match permit.kind() {
            PermitKind::Probe { ticket } => self.probes.retain(|lease| lease.ticket != ticket),
            _ => match outcome {
                Outcome::Success => window.add(policy, now, false),
                Outcome::Failure => window.add(policy, now, true),
                Outcome::Ignored => {}
            },
        }
        let until = now.add_millis(hold_ms);
        if self.state == State::Open && self.open_until >= until {
            return None;
        }
        Some(self.open(now, hold_ms, TripCause::RetryAfter))
    }

    /// [`Circuit::record`] of a report with no wait asked: only its outcome counts.
    fn record_outcome<W: Window + ?Sized>(
        &mut self,
        policy: &Policy,
        now: Timestamp,
        permit: &Permit,
        outcome: Outcome,
        window: &mut W,
    ) -> Option<Transition> {
        let nothing_to_count = match permit.kind() {
            PermitKind::Unchecked => true,
            PermitKind::Normal => outcome == Outcome::Ignored,
            PermitKind::Probe { .. } => false,
        };
        if nothing_to_count {
            return None;
        }
        self.expire_override(now);
        if permit.generation != self.generation {
            return None;
        }
        match permit.kind() {
            PermitKind::Unchecked => None,
            PermitKind::Normal => {
                let failure = match outcome {
                    Outcome::Ignored => return None,
                    Outcome::Success => false,
                    Outcome::Failure => true,
                };
                window.add(policy, now, failure);
                let may_trip = failure
                    && self.state == State::Closed
                    && self.override_mode != Override::ForcedClosed;
                if may_trip {
                    let counts = window.counts(policy, now);
                    // One process is one reporter: a quorum of more never trips here.
                    if policy.trips(counts) && policy.minimum_reporters() <= 1 {
                        return Some(self.open(
                            now,
                            policy.open_for_millis(),
                            TripCause::Threshold(counts),
                        ));
                    }
                }
                None
            }
            PermitKind::Probe { ticket } => {
                if self.state != State::HalfOpen {
                    return None;
                }
                self.probes.retain(|lease| lease.ticket != ticket);
                match outcome {
                    Outcome::Ignored => None,
                    Outcome::Success => {
                        self.successes += 1;
                        (self.successes >= policy.successes_to_close()).then(|| {
                            let closed = self.close(window);
                            // Closed by probes: the fleet comes back gently, if the policy
                            // says so (an operator's reset does not ramp).
                            self.ramp_from = Some(now);
                            closed
                        })
                    }
                    // Forced closed never trips, whatever probe was in flight when it was set.
                    Outcome::Failure if self.override_mode == Override::ForcedClosed => None,
                    Outcome::Failure => {
                        let open_ms = policy.next_open_millis(self.open_ms);
                        Some(self.open(now, open_ms, TripCause::ProbeFailed))
                    }
                }
            }
        }
    }

    /// Applies an operator's `action` at `now`, the one place every store's actions are
    /// decided. Reports the transition it made: always one for a trip; one for a reset unless
    /// the breaker was closed already; none for an override.
    pub fn operate<W: Window + ?Sized>(
        &mut self,
        policy: &Policy,
        now: Timestamp,
        action: Action,
        window: &mut W,
    ) -> Option<Transition> {
        match action {
            Action::Trip => Some(self.trip(policy, now)),
            Action::Reset => self.reset(window),
            Action::Override { mode, duration } => {
                self.set_override_for(mode, now, duration);
                None
            }
        }
    }

    /// An operator trip: opens the breaker for `open_for` from `now`, in a new generation.
    fn trip(&mut self, policy: &Policy, now: Timestamp) -> Transition {
        self.open(now, policy.open_for_millis(), TripCause::Operator)
    }

    /// An operator reset: closes the breaker and clears the window. Reports a transition
    /// unless it was closed already.
    fn reset<W: Window + ?Sized>(&mut self, window: &mut W) -> Option<Transition> {
        let was_closed = self.state == State::Closed;
        let transition = self.close(window);
        (!was_closed).then_some(transition)
    }

    /// Sets the operator override for `duration` from `now` (forever if `None`, or if longer
    /// than [`MAX_DURATION`](crate::MAX_DURATION)).
    fn set_override_for(&mut self, mode: Override, now: Timestamp, duration: Option<Duration>) {
        let until = Circuit::override_millis(duration).map(|ms| now.add_millis(ms));
        self.set_override(mode, until);
    }

    /// An override's duration in whole milliseconds, as every store keeps it: `None` (forever)
    /// for `None` or anything longer than [`MAX_DURATION`](crate::MAX_DURATION), whose meaning
    /// is "forever" too, so that no duration overflows a store's arithmetic or key expiry.
    pub fn override_millis(duration: Option<Duration>) -> Option<u64> {
        match duration {
            Some(duration) if duration <= crate::MAX_DURATION => {
                u64::try_from(duration.as_millis()).ok()
            }
            _ => None,
        }
    }

    /// Sets the operator override, until `until` (forever if `None`).
    fn set_override(&mut self, mode: Override, until: Option<Timestamp>) {
        self.override_mode = mode;
        self.override_until = if mode == Override::Auto { None } else { until };
    }

    /// When the ramp after the last close ends, while it runs at `now` (closed, and no
    /// override in force at `now`).
    fn ramping_until(
        &self,
        policy: &Policy,
        now: Timestamp,
        override_mode: Override,
    ) -> Option<Timestamp> {
        let until = self.ramp_from?.add_millis(policy.ramp_up_millis()?);
        let closed = self.state == State::Closed && override_mode == Override::Auto;
        (closed && now < until).then_some(until)
    }

    /// A view of the breaker at `now`, with the window's counts.
    pub fn snapshot<W: Window + ?Sized>(
        &self,
        policy: &Policy,
        now: Timestamp,
        window: &W,
    ) -> Snapshot {
        let (override_mode, override_until) = match self.override_until {
            Some(until) if until <= now => (Override::Auto, None),
            until => (self.override_mode, until),
        };
        let state = match self.state {
            State::Open if self.open_until <= now => State::HalfOpen,
            state => state,
        };
        let live_probes = self.probes.iter().filter(|lease| lease.until > now).count();
        let counts = window.counts(policy, now);
        Snapshot {
            state,
            override_mode,
            override_until,
            generation: self.generation,
            open_until: (self.state == State::Open).then_some(self.open_until),
            counts,
            probes_in_flight: u32::try_from(live_probes).unwrap_or(u32::MAX),
            ramping_until: self.ramping_until(policy, now, override_mode),
        }
    }

    /// While closed after probes and within the policy's `ramp_up`: admits the share of calls
    /// the ramp has reached, rejects the others. The ramp ends (and is forgotten) at its end,
    /// or at once without a ramp in the policy.
    fn ramp(&mut self, policy: &Policy, now: Timestamp) -> Result<(), Rejected> {
        let Some(from) = self.ramp_from else {
            return Ok(());
        };
        let Some(ramp_ms) = policy.ramp_up_millis() else {
            self.ramp_from = None;
            return Ok(());
        };
        let decision = self.ramp_credit.decide(from, now, ramp_ms);
        if decision.is_none() {
            self.ramp_from = None;
        }
        decision.unwrap_or(Ok(()))
    }

    fn expire_override(&mut self, now: Timestamp) {
        if self.override_until.is_some_and(|until| until <= now) {
            self.override_mode = Override::Auto;
            self.override_until = None;
        }
    }

    fn open(&mut self, now: Timestamp, open_ms: u64, cause: TripCause) -> Transition {
        self.generation += 1;
        self.state = State::Open;
        self.open_ms = open_ms;
        self.open_until = now.add_millis(open_ms);
        self.successes = 0;
        self.probes.clear();
        self.ramp_from = None;
        Transition::Tripped {
            generation: self.generation,
            open_until: self.open_until,
            open_for: Duration::from_millis(open_ms),
            cause,
        }
    }

    fn close<W: Window + ?Sized>(&mut self, window: &mut W) -> Transition {
        let ended = self.generation;
        // A close starts a new cycle as a trip does: a permit given before it reports into a
        // window that no longer exists, so its outcome must change nothing.
        self.generation += 1;
        self.state = State::Closed;
        self.open_ms = 0;
        self.successes = 0;
        self.probes.clear();
        self.ramp_from = None;
        self.ramp_credit = RampCredit::new();
        window.clear();
        Transition::Closed { generation: ended }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::BucketWindow;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn tripping() -> Policy {
        Policy::builder()
            .minimum_failures(1)
            .open_for(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// Trips `circuit`, lets its open period pass and closes it by one probe at `closed`.
    fn close_by_probe(circuit: &mut Circuit, policy: &Policy, window: &mut BucketWindow) -> u64 {
        let permit = circuit.acquire(policy, at(0)).unwrap();
        circuit.record(policy, at(0), &permit, Outcome::Failure.into(), window);
        let probe = circuit.acquire(policy, at(10_000)).unwrap();
        assert!(probe.is_probe());
        circuit.record(policy, at(10_000), &probe, Outcome::Success.into(), window);
        10_000
    }

    /// `tripping()` with a 10 s ramp after a close.
    fn ramping() -> Policy {
        tripping()
            .to_builder()
            .ramp_up(Some(Duration::from_secs(10)))
            .build()
            .unwrap()
    }

    fn admitted(circuit: &mut Circuit, policy: &Policy, now: u64, calls: u32) -> u32 {
        (0..calls)
            .map(|_| u32::from(circuit.acquire(policy, at(now)).is_ok()))
            .sum()
    }

    #[test]
    fn after_a_close_by_probes_the_share_of_calls_ramps_up() {
        let policy = ramping();
        let mut window = BucketWindow::new(&policy);
        let mut circuit = Circuit::new();
        let closed = close_by_probe(&mut circuit, &policy, &mut window);
        assert_eq!(circuit.free_generation(), None, "each call is decided");
        // At the close 10 % go, the first of them at once; halfway 55 %.
        assert!(circuit.acquire(&policy, at(closed)).is_ok());
        let rejected = circuit.acquire(&policy, at(closed)).unwrap_err();
        assert_eq!(rejected.reason(), RejectReason::RampingUp);
        assert_eq!(rejected.retry_after(), Duration::from_secs(1));
        assert_eq!(admitted(&mut circuit, &policy, closed, 998), 99);
        assert_eq!(admitted(&mut circuit, &policy, closed + 5_000, 1_000), 550);
        let snapshot = circuit.snapshot(&policy, at(closed + 5_000), &window);
        assert_eq!(snapshot.ramping_until, Some(at(closed + 10_000)));
        // At its end every call goes again, without a decision.
        assert_eq!(admitted(&mut circuit, &policy, closed + 10_000, 100), 100);
        assert!(circuit.free_generation().is_some());
        assert_eq!(
            circuit
                .snapshot(&policy, at(closed + 10_000), &window)
                .ramping_until,
            None
        );
    }

    #[test]
    fn a_ramp_trips_as_usual_and_a_reset_does_not_ramp() {
        let policy = ramping();
        let mut window = BucketWindow::new(&policy);
        let mut circuit = Circuit::new();
        let closed = close_by_probe(&mut circuit, &policy, &mut window);
        let permit = circuit.acquire(&policy, at(closed)).unwrap();
        let tripped = circuit.record(
            &policy,
            at(closed),
            &permit,
            Outcome::Failure.into(),
            &mut window,
        );
        assert!(matches!(tripped, Some(Transition::Tripped { .. })));
        assert_eq!(
            circuit.acquire(&policy, at(closed)).unwrap_err().reason(),
            RejectReason::Open
        );
        // An operator's reset: the operator says the backend is ready for everyone.
        circuit.reset(&mut window);
        assert_eq!(admitted(&mut circuit, &policy, closed, 100), 100);
        // Without ramp_up in the policy, a close by probes lets every call go.
        let mut circuit = Circuit::new();
        let plain = tripping();
        close_by_probe(&mut circuit, &plain, &mut window);
        assert_eq!(admitted(&mut circuit, &plain, 10_000, 100), 100);
        assert!(circuit.free_generation().is_some());
    }

    #[test]
    fn free_generation_only_when_no_decision_is_needed() {
        let policy = tripping();
        let mut window = BucketWindow::new(&policy);
        let mut circuit = Circuit::new();
        assert_eq!(circuit.free_generation(), Some(0));
        circuit.set_override(Override::ForcedClosed, Some(at(5)));
        assert_eq!(
            circuit.free_generation(),
            None,
            "an expiring override needs the time"
        );
        circuit.set_override(Override::ForcedClosed, None);
        assert_eq!(circuit.free_generation(), Some(0));
        circuit.set_override(Override::ForcedOpen, None);
        assert_eq!(circuit.free_generation(), None);
        circuit.set_override(Override::Auto, Some(at(5)));
        assert_eq!(
            circuit.snapshot(&policy, at(0), &window).override_until,
            None
        );
        let permit = circuit.acquire(&policy, at(0)).unwrap();
        assert!(
            circuit
                .record(
                    &policy,
                    at(0),
                    &permit,
                    Outcome::Failure.into(),
                    &mut window
                )
                .is_some()
        );
        assert_eq!(circuit.free_generation(), None, "open");
    }

    #[test]
    fn snapshot_reads_a_passed_open_period_as_half_open_without_changing_it() {
        let policy = tripping();
        let mut window = BucketWindow::new(&policy);
        let mut circuit = Circuit::new();
        circuit.trip(&policy, at(0));
        let before = circuit.clone();
        let snapshot = circuit.snapshot(&policy, at(10_000), &window);
        assert_eq!(snapshot.state, State::HalfOpen);
        assert_eq!(snapshot.open_until, Some(at(10_000)));
        assert_eq!(circuit, before);
        let probe = circuit.acquire(&policy, at(10_000)).unwrap();
        assert_eq!(
            probe.transition(),
            Some(Transition::HalfOpened { generation: 1 })
        );
        assert_eq!(
            circuit
                .snapshot(&policy, at(10_000), &window)
                .probes_in_flight,
            1
        );
        circuit.record(
            &policy,
            at(10_001),
            &probe,
            Outcome::Ignored.into(),
            &mut window,
        );
        assert_eq!(
            circuit
                .snapshot(&policy, at(10_001), &window)
                .probes_in_flight,
            0
        );
    }

    #[test]
    fn a_report_from_before_a_close_changes_nothing() {
        let policy = tripping();
        let mut window = BucketWindow::new(&policy);
        let mut circuit = Circuit::new();
        let before_reset = circuit.acquire(&policy, at(0)).unwrap();
        assert_eq!(circuit.reset(&mut window), None, "closed already");
        assert_eq!(
            circuit.record(
                &policy,
                at(1),
                &before_reset,
                Outcome::Failure.into(),
                &mut window
            ),
            None
        );
        assert_eq!(window.counts(&policy, at(1)), Counts::default());
        // Across a whole cycle: a permit from before the trip and the close.
        let early = circuit.acquire(&policy, at(2)).unwrap();
        circuit.trip(&policy, at(2));
        let probe = circuit.acquire(&policy, at(10_002)).unwrap();
        let closed = circuit.record(
            &policy,
            at(10_002),
            &probe,
            Outcome::Success.into(),
            &mut window,
        );
        assert_eq!(closed, Some(Transition::Closed { generation: 2 }));
        assert_eq!(circuit.snapshot(&policy, at(10_002), &window).generation, 3);
        let late = circuit.record(
            &policy,
            at(10_003),
            &early,
            Outcome::Failure.into(),
            &mut window,
        );
        assert_eq!(late, None);
        assert_eq!(window.counts(&policy, at(10_003)), Counts::default());
    }

    #[test]
    fn forced_closed_never_trips_on_a_probe_in_flight() {
        let policy = tripping();
        let mut window = BucketWindow::new(&policy);
        let mut circuit = Circuit::new();
        circuit.trip(&policy, at(0));
        let probe = circuit.acquire(&policy, at(10_000)).unwrap();
        assert!(probe.is_probe());
        circuit.set_override(Override::ForcedClosed, None);
        let recorded = circuit.record(
            &policy,
            at(10_001),
            &probe,
            Outcome::Failure.into(),
            &mut window,
        );
        assert_eq!(recorded, None);
        assert!(circuit.acquire(&policy, at(10_002)).is_ok());
        assert_eq!(
            circuit.snapshot(&policy, at(10_002), &window).generation,
            1,
            "no new trip"
        );
    }

    #[test]
    fn overrides_longer_than_any_store_keeps_mean_forever() {
        assert_eq!(Circuit::override_millis(Some(Duration::MAX)), None);
        assert_eq!(
            Circuit::override_millis(Some(crate::MAX_DURATION + Duration::from_millis(1))),
            None
        );
        assert_eq!(
            Circuit::override_millis(Some(Duration::from_secs(5))),
            Some(5_000)
        );
        let mut circuit = Circuit::new();
        circuit.set_override_for(Override::ForcedOpen, at(7), Some(Duration::MAX));
        let policy = tripping();
        let window = BucketWindow::new(&policy);
        assert_eq!(
            circuit.snapshot(&policy, at(7), &window).override_until,
            None
        );
    }

    #[test]
    fn unchecked_permits_count_nowhere() {
        let policy = tripping();
        let mut window = BucketWindow::new(&policy);
        let mut circuit = Circuit::new();
        let unchecked = Permit::new(0, PermitKind::Unchecked, at(0), false);
        assert_eq!(unchecked.kind(), PermitKind::Unchecked);
        assert_eq!(
            circuit.record(
                &policy,
                at(0),
                &unchecked,
                Outcome::Failure.into(),
                &mut window
            ),
            None
        );
        assert_eq!(window.counts(&policy, at(0)), Counts::default());
    }

    #[test]
    fn permits_keep_their_fields() {
        let probe = Permit::new(7, PermitKind::Probe { ticket: 42 }, at(9), true);
        assert_eq!(probe.generation(), 7);
        assert_eq!(probe.kind(), PermitKind::Probe { ticket: 42 });
        assert_eq!(probe.started(), at(9));
        assert!(probe.is_probe());
        assert_eq!(
            probe.transition(),
            Some(Transition::HalfOpened { generation: 7 })
        );
        let normal = Permit::new(3, PermitKind::Normal, at(1), false);
        assert!(!normal.is_probe());
        assert_eq!(normal.transition(), None);
    }

    #[test]
    fn rejections_say_why_and_when() {
        let rejected = Rejected::new(RejectReason::Open, Duration::from_millis(1500));
        assert_eq!(
            rejected.to_string(),
            "the breaker is open; retry after 1s 500ms"
        );
        assert_eq!(State::HalfOpen.to_string(), "half-open");
        assert_eq!(Override::ForcedClosed.to_string(), "forced-closed");
    }
}
