//! The ramp after a close by probes (policy `ramp_up`), as this process runs it: which share of
//! its calls goes is decided here, from the close time the replies carry, so ramping costs no
//! round trip. Kept apart from the cache, which an operator action forgets: the ramp's credit
//! must carry on as the core's does.

use crate::circuit::RampCredit;
use crate::{Override, Rejected, State, Timestamp};

use super::RemoteState;

/// The ramp this process runs, if one may run.
#[derive(Debug, Default)]
pub struct Ramp {
    /// The generation the close started and when it happened, in local time, while its ramp
    /// may run.
    from: Option<(u64, Timestamp)>,
    /// The generation whose ramp the credit belongs to.
    generation: u64,
    credit: RampCredit,
    /// The generation whose ramp is over: a clock stepping back does not start it again.
    done: Option<u64>,
}

impl Ramp {
    /// Whether an ordinary call of `generation` may go at `now` under a ramp of `ramp_ms`
    /// (always, when no ramp runs): the rule of `Circuit`'s ramp, with this process's own
    /// credit.
    pub fn admits(
        &mut self,
        now: Timestamp,
        generation: u64,
        ramp_ms: Option<u64>,
    ) -> Result<(), Rejected> {
        let (Some(ramp_ms), Some((from_generation, from))) = (ramp_ms, self.from) else {
            return Ok(());
        };
        if from_generation != generation {
            return Ok(());
        }
        let decision = self.credit.decide(from, now, ramp_ms);
        if decision.is_none() {
            self.from = None;
            self.done = Some(generation);
        }
        decision.unwrap_or(Ok(()))
    }

    /// Follows the ramp a reply (received at local time `now`) says may run.
    pub fn follow(&mut self, now: Timestamp, tail: &RemoteState) {
        let closed = tail.state == State::Closed && tail.override_mode == Override::Auto;
        if !closed || tail.closed_by_probes == Timestamp::ZERO {
            self.from = None;
            return;
        }
        if self.done == Some(tail.generation) {
            return;
        }
        if self.generation != tail.generation {
            self.generation = tail.generation;
            self.credit = RampCredit::new();
        }
        // The close in local time: as long before (or after, when the script's clock stepped
        // back) this reply as the script saw it.
        let close = tail.closed_by_probes.as_millis();
        let from =
            Timestamp::from_millis((now.as_millis() + close).saturating_sub(tail.now.as_millis()));
        self.from = Some((tail.generation, from));
    }

    /// When the ramp (of `ramp_ms`) after the close a reply names ends, while it runs (as
    /// `Circuit` says), with the override in force at the reply's time.
    pub fn until(
        &self,
        tail: &RemoteState,
        override_mode: Override,
        ramp_ms: Option<u64>,
    ) -> Option<Timestamp> {
        let ramp_ms = ramp_ms?;
        let closed = tail.state == State::Closed && override_mode == Override::Auto;
        let over = self.done == Some(tail.generation);
        let until = tail.closed_by_probes.add_millis(ramp_ms);
        (closed && !over && tail.closed_by_probes != Timestamp::ZERO && tail.now < until)
            .then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use crate::RejectReason;

    use super::*;
    use crate::remote::cache::tests::tail;

    #[test]
    fn a_ramp_runs_from_the_close_in_local_time_and_ends_once() {
        let mut ramp = Ramp::default();
        // Closed by probes at script time 10 000, seen at script time 10 000 and local 500.
        let mut closed = tail(State::Closed, 2, 0, 10_000, 1);
        closed.closed_by_probes = Timestamp::from_millis(10_000);
        ramp.follow(Timestamp::from_millis(500), &closed);
        let ramp_ms = Some(10_000);
        assert_eq!(
            ramp.until(&closed, Override::Auto, ramp_ms),
            Some(Timestamp::from_millis(20_000))
        );
        // Right after the close most calls wait; another generation is not ramped.
        let rejected = (0..10)
            .filter_map(|_| ramp.admits(Timestamp::from_millis(501), 2, ramp_ms).err())
            .map(|rejected| rejected.reason())
            .collect::<Vec<_>>();
        assert!(!rejected.is_empty() && rejected.iter().all(|r| *r == RejectReason::RampingUp));
        assert!(ramp.admits(Timestamp::from_millis(501), 3, ramp_ms).is_ok());
        // After the ramp every call goes, and a clock stepping back does not start it again.
        assert!(
            ramp.admits(Timestamp::from_millis(10_500), 2, ramp_ms)
                .is_ok()
        );
        ramp.follow(Timestamp::from_millis(400), &closed);
        assert!(ramp.admits(Timestamp::from_millis(401), 2, ramp_ms).is_ok());
        assert_eq!(ramp.until(&closed, Override::Auto, ramp_ms), None);
    }
}
