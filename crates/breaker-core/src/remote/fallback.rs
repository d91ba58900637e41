//! What a process does while its store fails, as the policy's [`StoreFailurePolicy`] says:
//! reject, let calls through, or decide with a local breaker of its own (policy `local`),
//! started afresh, in a new era, each time the store answers again. Nothing here knows which
//! store failed.

use std::time::Duration;

use crate::circuit::new_permit;
use crate::local::{LocalBreaker, counted};
use crate::{
    Outcome, Permit, PermitKind, Policy, Recorded, RejectReason, Rejected, Report,
    StoreFailurePolicy, Timestamp, Transition,
};

/// Permits given by the local fallback breaker carry this bit in their generation, so their
/// outcomes go back to it and never to the store.
const LOCAL: u64 = 1 << 63;

/// Below the `LOCAL` bit, a local permit's generation holds the fallback's era (which outage
/// it belongs to) above `LOCAL_ERA_SHIFT` and the local breaker's own generation below it.
const LOCAL_ERA_SHIFT: u32 = 40;
const LOCAL_GENERATION: u64 = (1 << LOCAL_ERA_SHIFT) - 1;
const LOCAL_ERA: u64 = (1 << (63 - LOCAL_ERA_SHIFT)) - 1;

/// How long a fail-closed rejection asks callers to wait before trying again.
const FAIL_CLOSED_RETRY: Duration = Duration::from_secs(1);

/// The local fallback breaker of one breaker's policy: used only while the store fails.
#[derive(Debug)]
pub struct Fallback {
    policy: Policy,
    breaker: LocalBreaker,
    era: u64,
    used: bool,
}

impl Fallback {
    /// A fallback for `policy`, unused.
    pub fn new(policy: Policy) -> Fallback {
        Fallback {
            breaker: LocalBreaker::new(&policy),
            policy,
            era: 0,
            used: false,
        }
    }

    /// Whether `permit` was given by a fallback (this one, or one of an earlier outage).
    pub fn gave(permit: &Permit) -> bool {
        permit.generation() & LOCAL != 0
    }

    /// The pre-call check at `now` while the store failed, as the failure policy says.
    pub fn acquire(&mut self, now: Timestamp) -> Result<Permit, Rejected> {
        match self.policy.on_store_failure() {
            StoreFailurePolicy::FailClosed => Err(Rejected::new(
                RejectReason::StoreUnavailable,
                FAIL_CLOSED_RETRY,
            )),
            StoreFailurePolicy::Local => {
                self.used = true;
                let permit = self.breaker.acquire(&self.policy, now)?;
                Ok(new_permit(
                    LOCAL | self.era << LOCAL_ERA_SHIFT | (permit.generation() & LOCAL_GENERATION),
                    permit.kind(),
                    permit.started(),
                    permit.transition().is_some(),
                ))
            }
            _ => Ok(new_permit(0, PermitKind::Unchecked, now, false)),
        }
    }

    /// Records `report` for `permit`, one this or an earlier fallback gave ([`Fallback::gave`]):
    /// a permit of an outage that has since ended changes nothing.
    pub fn record(&mut self, now: Timestamp, permit: Permit, report: Report) -> Recorded {
        let era = (permit.generation() & !LOCAL) >> LOCAL_ERA_SHIFT;
        if era != self.era {
            let (outcome, elapsed) = counted(&self.policy, &permit, report.outcome, now);
            return Recorded::new(outcome, elapsed, None);
        }
        let local = new_permit(
            permit.generation() & LOCAL_GENERATION,
            permit.kind(),
            permit.started(),
            false,
        );
        self.breaker.record(&self.policy, now, local, report)
    }

    /// An outcome the store could not take (its call or batch failed): with a local fallback,
    /// counted in it while it needs no decision (closed), so it never takes a probe slot for
    /// a call it did not admit. The transition that made, if any.
    pub fn missed(&mut self, now: Timestamp, outcome: Outcome) -> Option<Transition> {
        if self.policy.on_store_failure() != StoreFailurePolicy::Local {
            return None;
        }
        self.used = true;
        let generation = self.breaker.circuit().free_generation()?;
        let permit = new_permit(generation, PermitKind::Normal, now, false);
        self.breaker
            .record(&self.policy, now, permit, outcome.into())
            .transition
    }

    /// The store answered: the fleet's state wins, and the next outage starts from a fresh
    /// local breaker.
    pub fn store_answered(&mut self) {
        if self.used {
            self.breaker = LocalBreaker::new(&self.policy);
            self.era = (self.era + 1) & LOCAL_ERA;
            self.used = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on_failure: StoreFailurePolicy) -> Policy {
        Policy::builder()
            .minimum_failures(1)
            .on_store_failure(on_failure)
            .build()
            .unwrap()
    }

    #[test]
    fn each_failure_policy_decides_and_an_ended_outage_changes_nothing() {
        let now = Timestamp::from_millis(1_000);
        let mut closed = Fallback::new(policy(StoreFailurePolicy::FailClosed));
        let rejected = closed.acquire(now).unwrap_err();
        assert_eq!(rejected.reason(), RejectReason::StoreUnavailable);
        let mut open = Fallback::new(policy(StoreFailurePolicy::FailOpen));
        let permit = open.acquire(now).unwrap();
        assert_eq!(permit.kind(), PermitKind::Unchecked);
        assert!(!Fallback::gave(&permit));
        assert_eq!(open.missed(now, Outcome::Failure), None);

        let mut fallback = Fallback::new(policy(StoreFailurePolicy::Local));
        let permit = fallback.acquire(now).unwrap();
        assert!(Fallback::gave(&permit));
        let again = new_permit(permit.generation(), permit.kind(), permit.started(), false);
        let recorded = fallback.record(now, permit, Outcome::Failure.into());
        assert!(recorded.transition.is_some(), "the local breaker trips");
        assert!(fallback.acquire(now).is_err());
        // The store answers: a fresh local breaker, and a permit of the last outage counts
        // for nothing.
        fallback.store_answered();
        let recorded = fallback.record(now, again, Outcome::Failure.into());
        assert_eq!(recorded.transition, None);
        assert!(fallback.acquire(now).is_ok());
        assert!(fallback.missed(now, Outcome::Failure).is_some());
    }
}
