//! A breaker's whole state in one process: a [`Circuit`] and its window under one owner.

use std::time::Duration;

use crate::circuit::{Circuit, Override, Permit, Rejected, Snapshot, Transition};
use crate::outcome::Outcome;
use crate::window::{BucketWindow, Window};
use crate::{Policy, Recorded, Timestamp};

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
