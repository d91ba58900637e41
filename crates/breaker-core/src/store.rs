//! What only store authors need: the window and its bucket maths, a policy's times in whole
//! milliseconds, and building permits from a store's own answer. Users of a breaker need none
//! of it.

use std::time::Duration;

use crate::{
    Circuit, Outcome, Override, Permit, Policy, Recorded, Rejected, Snapshot, Timestamp, Transition,
};

pub use crate::circuit::new_permit as permit;
pub use crate::window::{BucketWindow, Window, bucket_is_live, bucket_of, slot_of};

/// A policy's times in whole milliseconds, as a store computes and keeps them (a Redis script's
/// numbers are doubles: every time stays below 2^53).
pub trait PolicyMillis {
    /// The window, as configured.
    fn window_millis(&self) -> u64;
    /// The width of one bucket.
    fn bucket_millis(&self) -> u64;
    /// The open time of a first trip: `open_for`, capped by `max_open_for`.
    fn open_for_millis(&self) -> u64;
    /// The probe lease.
    fn probe_lease_millis(&self) -> u64;
    /// The cap on the backed-off open time.
    fn max_open_for_millis(&self) -> u64;
    /// The open time that follows one lasting `previous_ms`: multiplied by `backoff`, rounded
    /// down to whole milliseconds, capped by `max_open_for`.
    fn next_open_millis(&self, previous_ms: u64) -> u64;
    /// How long the breaker stays open for a backend that asked to wait `wait` (rounded up to
    /// whole milliseconds, capped by `max_open_for`); `None` when the policy ignores
    /// `Retry-After` or there is nothing to wait for.
    fn hold_off_millis(&self, wait: Duration) -> Option<u64>;
    /// The ramp after a close, if the policy has one.
    fn ramp_up_millis(&self) -> Option<u64>;
}

/// The share of calls a ramp admits at first, in per mille.
pub const RAMP_START_PER_MILLE: u64 = 100;

/// The share of calls admitted `elapsed_ms` into a ramp of `ramp_ms`, in per mille: it grows
/// in a straight line from [`RAMP_START_PER_MILLE`] (10 %) at the close to 1000 (100 %) at the
/// end of the ramp.
pub fn ramp_share(elapsed_ms: u64, ramp_ms: u64) -> u64 {
    if ramp_ms == 0 || elapsed_ms >= ramp_ms {
        return 1000;
    }
    let grown =
        u128::from(1000 - RAMP_START_PER_MILLE) * u128::from(elapsed_ms) / u128::from(ramp_ms);
    RAMP_START_PER_MILLE + u64::try_from(grown).unwrap_or(0)
}

/// Which calls a ramp admits, one process's calls in turn: each call adds the share (per
/// mille) to a credit, and a call is admitted when the credit reaches 1000, which it then
/// spends. So exactly the share of calls goes, spread evenly, with no randomness: every store
/// and the reference model admit the same calls. The first call of a ramp is admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RampCredit(u64);

impl Default for RampCredit {
    fn default() -> RampCredit {
        RampCredit::new()
    }
}

impl RampCredit {
    /// The credit at the start of a ramp.
    pub fn new() -> RampCredit {
        RampCredit(1000 - 1)
    }

    /// The ramp's decision for one ordinary call at `now`, in a ramp of `ramp_ms` that started
    /// at `from` (a clock read before it counts as the start): `None` once the ramp is over
    /// (forget it), else whether the call goes, or its rejection (`RampingUp`, with the
    /// ramp's `Retry-After`).
    pub fn decide(
        &mut self,
        from: Timestamp,
        now: Timestamp,
        ramp_ms: u64,
    ) -> Option<Result<(), Rejected>> {
        let elapsed = u64::try_from(now.saturating_since(from).as_millis()).unwrap_or(u64::MAX);
        if elapsed >= ramp_ms {
            return None;
        }
        Some(if self.admit(ramp_share(elapsed, ramp_ms)) {
            Ok(())
        } else {
            Err(Rejected::new(
                crate::RejectReason::RampingUp,
                ramp_retry_after(elapsed, ramp_ms),
            ))
        })
    }

    /// Whether the next call is admitted at `share_per_mille`.
    pub fn admit(&mut self, share_per_mille: u64) -> bool {
        self.0 = self.0.saturating_add(share_per_mille.min(1000));
        if self.0 >= 1000 {
            self.0 -= 1000;
            true
        } else {
            false
        }
    }
}

/// How long a call rejected by a ramp is asked to wait: a second, or what is left of the ramp
/// if less (at least a millisecond).
pub fn ramp_retry_after(elapsed_ms: u64, ramp_ms: u64) -> Duration {
    Duration::from_millis(ramp_ms.saturating_sub(elapsed_ms).clamp(1, 1000))
}

/// A breaker's whole state in one process: its [`Circuit`] and its window, under one owner
/// (put it behind a lock to share it). Every step a store takes is here once, the record step
/// included: the elapsed time and the slow-call rule are applied before the outcome counts.
///
/// ```
/// use std::time::Duration;
/// use breaker_core::store::LocalBreaker;
/// use breaker_core::{Outcome, Policy, Timestamp};
///
/// let policy = Policy::builder().minimum_failures(1).build()?;
/// let mut breaker = LocalBreaker::new(&policy);
/// let now = Timestamp::from_millis(1_000);
/// let permit = breaker.acquire(&policy, now).expect("closed");
/// let recorded = breaker.record(&policy, now.saturating_add(Duration::from_millis(5)), permit, Outcome::Failure);
/// assert!(recorded.transition.is_some(), "tripped");
/// assert!(breaker.acquire(&policy, now).is_err());
/// # Ok::<(), breaker_core::PolicyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBreaker<W = BucketWindow> {
    circuit: Circuit,
    window: W,
}

impl LocalBreaker<BucketWindow> {
    /// A closed breaker with an empty window sized for `policy`.
    pub fn new(policy: &Policy) -> LocalBreaker<BucketWindow> {
        LocalBreaker::with_window(BucketWindow::new(policy))
    }
}

impl<W: Window> LocalBreaker<W> {
    /// A closed breaker counting in `window`.
    pub fn with_window(window: W) -> LocalBreaker<W> {
        LocalBreaker {
            circuit: Circuit::new(),
            window,
        }
    }

    /// The state machine.
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }

    /// Asks to make a call at `now`.
    pub fn acquire(&mut self, policy: &Policy, now: Timestamp) -> Result<Permit, Rejected> {
        self.circuit.acquire(policy, now)
    }

    /// Records at `now` the outcome of the call `permit` admitted: its elapsed time from the
    /// permit, the slow-call rule, then the state machine's step.
    pub fn record(
        &mut self,
        policy: &Policy,
        now: Timestamp,
        permit: Permit,
        outcome: Outcome,
    ) -> Recorded {
        let (outcome, elapsed) = classify(policy, &permit, outcome, now);
        let transition = self
            .circuit
            .record(policy, now, &permit, outcome, &mut self.window);
        Recorded::new(outcome, elapsed, transition)
    }

    /// [`LocalBreaker::record`] of a response that asked every caller to wait `wait` (see
    /// [`Circuit::record_retry_after`]).
    pub fn record_retry_after(
        &mut self,
        policy: &Policy,
        now: Timestamp,
        permit: Permit,
        outcome: Outcome,
        wait: Duration,
    ) -> Recorded {
        let (outcome, elapsed) = classify(policy, &permit, outcome, now);
        let transition =
            self.circuit
                .record_retry_after(policy, now, &permit, outcome, wait, &mut self.window);
        Recorded::new(outcome, elapsed, transition)
    }

    /// A view of the breaker at `now`.
    pub fn snapshot(&self, policy: &Policy, now: Timestamp) -> Snapshot {
        self.circuit.snapshot(policy, now, &self.window)
    }

    /// Sets an operator override for `duration` from `now` (forever if `None`).
    pub fn set_override(&mut self, mode: Override, now: Timestamp, duration: Option<Duration>) {
        self.circuit.set_override_for(mode, now, duration);
    }

    /// An operator trip at `now`.
    pub fn trip(&mut self, policy: &Policy, now: Timestamp) -> Transition {
        self.circuit.trip(policy, now)
    }

    /// An operator reset: closes the breaker and clears the window.
    pub fn reset(&mut self) -> Option<Transition> {
        self.circuit.reset(&mut self.window)
    }
}

/// The record step's first part, the same in every store: how long the call took (from its
/// permit to `now`) and what it counts as under the policy's slow-call rule.
#[inline]
pub fn classify(
    policy: &Policy,
    permit: &Permit,
    outcome: Outcome,
    now: Timestamp,
) -> (Outcome, Duration) {
    let elapsed = now.saturating_since(permit.started());
    (policy.classify(outcome, elapsed), elapsed)
}
