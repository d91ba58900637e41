//! A breaker's whole state in one process: a [`Circuit`] and its window under one owner.

use std::time::Duration;

use crate::bytes::{Reader, corrupt};
use crate::circuit::{Action, Circuit, Permit, Rejected, Snapshot, Transition};
use crate::error::StoreError;
use crate::outcome::{Outcome, Report};
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
/// let recorded = breaker.record(&policy, now.saturating_add(Duration::from_millis(5)), permit, Outcome::Failure.into());
/// assert!(recorded.transition.is_some(), "tripped");
/// assert!(breaker.acquire(&policy, now).is_err());
/// # Ok::<(), breaker_core::PolicyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBreaker<W = BucketWindow> {
    circuit: Circuit,
    window: W,
}

/// The version of the stored form, its first byte: a form the core changes gets a new one.
const VERSION: u8 = 1;

impl LocalBreaker<BucketWindow> {
    /// A closed breaker with an empty window sized for `policy`.
    pub fn new(policy: &Policy) -> LocalBreaker<BucketWindow> {
        LocalBreaker::with_window(BucketWindow::new(policy))
    }

    /// The breaker's whole state (its circuit and its window's counts) as bytes, for a store
    /// that keeps it elsewhere and decides with the core: for each operation it loads the
    /// bytes ([`LocalBreaker::from_bytes`]), takes one step, and saves these again, with a
    /// compare-and-swap when processes share them (a row's version in Postgres, a key's
    /// revision in etcd, a condition in DynamoDB), loading again when they changed since.
    ///
    /// The form is a version byte, then fixed-width little-endian numbers: about 60 bytes, and
    /// 24 more per bucket of the window. Equal states give equal bytes, so a store can see
    /// that a step changed nothing and skip the write.
    ///
    /// ```
    /// use breaker_core::store::LocalBreaker;
    /// use breaker_core::{Outcome, Policy, Timestamp};
    ///
    /// let policy = Policy::builder().minimum_failures(1).build()?;
    /// let now = Timestamp::from_millis(1_000);
    /// let saved = LocalBreaker::new(&policy).to_bytes();
    ///
    /// // One step of a store: load, decide with the core, save.
    /// let mut breaker = LocalBreaker::from_bytes(&policy, &saved)?;
    /// let permit = breaker.acquire(&policy, now).expect("closed");
    /// breaker.record(&policy, now, permit, Outcome::Failure.into());
    /// let saved = breaker.to_bytes();
    ///
    /// let mut breaker = LocalBreaker::from_bytes(&policy, &saved)?;
    /// assert!(breaker.acquire(&policy, now).is_err(), "tripped, and saved so");
    /// assert!(LocalBreaker::from_bytes(&policy, b"garbage").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        self.circuit.write(&mut out);
        self.window.write(&mut out);
        out
    }

    /// The breaker [`LocalBreaker::to_bytes`] saved, under `policy`.
    ///
    /// A window counted in other buckets (the policy's `window` or `buckets` changed since the
    /// save) comes back empty, since its bucket numbers would mean other times; the circuit
    /// (state, generation, override, probes) is kept. Bytes that `to_bytes` did not make (an
    /// unknown version, cut short, with bytes after the end, or a field out of range) are an
    /// error of kind [`StoreErrorKind::Corrupt`](crate::StoreErrorKind::Corrupt) that says
    /// what is wrong, never a panic.
    pub fn from_bytes(policy: &Policy, bytes: &[u8]) -> Result<LocalBreaker, StoreError> {
        let mut input = Reader::new(bytes);
        match input.u8("version")? {
            VERSION => {}
            other => {
                return Err(corrupt(&format!(
                    "its version is {other}, and this build reads {VERSION}"
                )));
            }
        }
        let circuit = Circuit::read(&mut input)?;
        let window = BucketWindow::read(policy, &mut input)?;
        input.finish()?;
        Ok(LocalBreaker { circuit, window })
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

    /// Records at `now` the report of the call `permit` admitted: its elapsed time from the
    /// permit, the slow-call rule, then the state machine's step (see [`Circuit::record`]).
    pub fn record(
        &mut self,
        policy: &Policy,
        now: Timestamp,
        permit: Permit,
        report: Report,
    ) -> Recorded {
        let (outcome, elapsed) = counted(policy, &permit, report.outcome, now);
        let transition = self.circuit.record(
            policy,
            now,
            &permit,
            report.with_outcome(outcome),
            &mut self.window,
        );
        Recorded::new(outcome, elapsed, transition)
    }

    /// A view of the breaker at `now`.
    pub fn snapshot(&self, policy: &Policy, now: Timestamp) -> Snapshot {
        self.circuit.snapshot(policy, now, &self.window)
    }

    /// Applies an operator's `action` at `now` (see [`Circuit::operate`]).
    pub fn operate(
        &mut self,
        policy: &Policy,
        now: Timestamp,
        action: Action,
    ) -> Option<Transition> {
        self.circuit.operate(policy, now, action, &mut self.window)
    }
}

/// The record step's first part, the same in every store: how long the call took (from its
/// permit to `now`) and what it counts as under the policy's slow-call rule.
#[inline]
pub fn counted(
    policy: &Policy,
    permit: &Permit,
    outcome: Outcome,
    now: Timestamp,
) -> (Outcome, Duration) {
    let elapsed = now.saturating_since(permit.started());
    (policy.counts_as(outcome, elapsed), elapsed)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{Override, State, StoreErrorKind};

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn policy() -> Policy {
        Policy::builder()
            .minimum_failures(2)
            .half_open_probes(2)
            .successes_to_close(2)
            .ramp_up(Some(Duration::from_secs(10)))
            .build()
            .unwrap()
    }

    /// A breaker in the middle of things: a probe in flight, an override with an end, calls
    /// in the window, a ramp running.
    fn busy() -> LocalBreaker {
        let policy = policy();
        let mut breaker = LocalBreaker::new(&policy);
        for _ in 0..2 {
            let permit = breaker.acquire(&policy, at(1_000)).unwrap();
            breaker.record(&policy, at(1_000), permit, Outcome::Failure.into());
        }
        let late = policy.open_for().as_millis() as u64 + 1_000;
        let first = breaker.acquire(&policy, at(late)).unwrap();
        let _second = breaker.acquire(&policy, at(late)).unwrap();
        breaker.record(&policy, at(late), first, Outcome::Success.into());
        breaker.operate(
            &policy,
            at(late),
            Action::Override {
                mode: Override::ForcedOpen,
                duration: Some(Duration::from_secs(5)),
            },
        );
        breaker
    }

    #[test]
    fn bytes_give_back_the_same_breaker() {
        let policy = policy();
        let fresh = LocalBreaker::new(&policy);
        assert_eq!(
            LocalBreaker::from_bytes(&policy, &fresh.to_bytes()).unwrap(),
            fresh
        );
        let busy = busy();
        assert_eq!(busy.snapshot(&policy, at(60_000)).probes_in_flight, 1);
        assert_eq!(
            LocalBreaker::from_bytes(&policy, &busy.to_bytes()).unwrap(),
            busy
        );
        // A ramp under way, and calls in the window.
        let mut ramping = busy.clone();
        ramping.operate(
            &policy,
            at(0),
            Action::Override {
                mode: Override::Auto,
                duration: None,
            },
        );
        let late = at(policy.open_for().as_millis() as u64 + 1_000);
        let probe = ramping.acquire(&policy, late).unwrap();
        ramping.record(&policy, late, probe, Outcome::Success.into());
        assert!(ramping.snapshot(&policy, late).ramping_until.is_some());
        assert!(ramping.acquire(&policy, late).is_ok());
        assert!(ramping.acquire(&policy, late).is_err());
        let later = late.add_millis(5_000);
        let permit = (0..10)
            .find_map(|_| ramping.acquire(&policy, later).ok())
            .unwrap();
        ramping.record(&policy, later, permit, Outcome::Success.into());
        let back = LocalBreaker::from_bytes(&policy, &ramping.to_bytes()).unwrap();
        assert_eq!(back, ramping);
        assert_eq!(back.snapshot(&policy, later).counts.calls, 1);
    }

    #[test]
    fn anything_else_is_corrupt_not_a_panic() {
        let policy = policy();
        let bytes = busy().to_bytes();
        let corrupt = |bytes: &[u8]| {
            let err = LocalBreaker::from_bytes(&policy, bytes).unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::Corrupt);
            err.to_string()
        };
        for end in 0..bytes.len() {
            assert!(corrupt(&bytes[..end]).contains("ends before"));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(corrupt(&longer).contains("1 bytes follow"));
        let mut version = bytes.clone();
        version[0] = 2;
        assert!(corrupt(&version).contains("version is 2"));
        let mut state = bytes.clone();
        state[1] = 7;
        assert!(corrupt(&state).contains("state is 7"));
        let mut generation = bytes.clone();
        generation[2..10].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(corrupt(&generation).contains("above 2^53"));
    }

    #[test]
    fn a_window_counted_in_other_buckets_starts_empty() {
        let policy = policy();
        let breaker = busy();
        let other = policy.to_builder().buckets(5).build().unwrap();
        let back = LocalBreaker::from_bytes(&other, &breaker.to_bytes()).unwrap();
        assert_eq!(back.circuit(), breaker.circuit());
        assert_eq!(back.snapshot(&other, at(60_000)).state, State::HalfOpen);
        assert_eq!(
            back,
            LocalBreaker {
                circuit: breaker.circuit().clone(),
                window: BucketWindow::new(&other)
            }
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = LocalBreaker::from_bytes(&policy(), &bytes);
            // Past the version byte too.
            let _ = LocalBreaker::from_bytes(&policy(), &[&[VERSION][..], &bytes].concat());
        }

        #[test]
        fn changed_bytes_never_panic_nor_overflow(at_byte in 0usize..1_000, value: u8) {
            let policy = policy();
            let mut bytes = busy().to_bytes();
            let index = at_byte % bytes.len();
            bytes[index] = value;
            if let Ok(mut breaker) = LocalBreaker::from_bytes(&policy, &bytes) {
                // Whatever reads back drives the state machine without overflow.
                for step in 0..20u64 {
                    let now = Timestamp::from_millis(step * 7_000);
                    if let Ok(permit) = breaker.acquire(&policy, now) {
                        breaker.record(&policy, now, permit, Outcome::Success.into());
                    }
                }
                breaker.snapshot(&policy, Timestamp::from_millis(u64::MAX));
            }
        }
    }
}
