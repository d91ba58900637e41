//! The cache of the last reply: what the pre-call check may answer without a round trip (a
//! closed breaker's free generation, an automatic open period, an operator's override), which
//! reply is newer than which (epochs, write sequences, request numbers), and what the process
//! holds while the store cannot be reached.

use std::time::Duration;

use crate::circuit::new_permit;
use crate::{Counts, Override, Permit, PermitKind, RejectReason, Rejected, State, Timestamp};

use super::RemoteState;

/// What the last reply said, as the pre-call check may reuse it.
///
/// Every deadline here is in the engine's clock (monotonic unless a test injects one), and a
/// clock read earlier than `received` makes the cache stale rather than older than it is.
#[derive(Debug, Default)]
pub struct Cache {
    /// The key's epoch and write sequence in the reply cached, so that a reply overtaken by a
    /// newer one (concurrent calls) does not replace it, while a new epoch (the key was lost
    /// and made again) always does.
    epoch: u64,
    sequence: u64,
    /// The breaker's generation in the reply cached.
    generation: u64,
    /// How many requests this engine had sent when the reply cached arrived: a reply to a
    /// request sent later is newer in the store's own order, so it is taken even when its
    /// write sequence went back (a failover to a replica that lagged, a backup restored).
    issued: u64,
    /// When the reply cached arrived.
    received: Timestamp,
    /// `Some(generation)` while closed with no decision needed.
    free: Option<u64>,
    /// While automatically open: when the open period ends.
    open_until: Option<Timestamp>,
    /// While one caller asks the store for a stale open state, the others keep the cached
    /// rejection until this time (the store's timeout), so an open breaker costs one round
    /// trip per `max_staleness`, not one per call.
    refreshing_until: Timestamp,
    /// The window's totals in the reply cached.
    counts: Counts,
    /// The operator override in force, and when it ends in local time (`None`: never). It
    /// holds while the store cannot be reached, whatever the failure policy.
    forced: Option<(Override, Option<Timestamp>)>,
}

/// What the cache answers a pre-call check with.
#[allow(clippy::exhaustive_enums)] // The cache rejects, or admits in a free generation: nothing else.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Rejected: automatically open.
    Rejected(Rejected),
    /// Closed with no decision needed, in this generation.
    Free(u64),
}

impl Cache {
    /// The pre-call check at `now`, if the cache can answer it: a reply younger than
    /// `max_staleness` (an open period while it lasts, while one caller asks the store
    /// again, for at most `timeout`, once it is stale).
    pub fn answer(
        &mut self,
        now: Timestamp,
        max_staleness: Duration,
        timeout: Duration,
    ) -> Option<Answer> {
        if max_staleness.is_zero() || now < self.received {
            // Never cached, or the clock stepped back: the cache's age is unknown.
            return None;
        }
        let fresh = now < self.received.saturating_add(max_staleness);
        if let Some(open_until) = self.open_until
            && now < open_until
        {
            if !fresh && now >= self.refreshing_until {
                // Stale: this caller asks the store (an operator may have reset the
                // breaker), the others keep rejecting until it has the answer.
                self.refreshing_until = now.saturating_add(timeout);
                return None;
            }
            let wait = open_until.saturating_since(now);
            return Some(Answer::Rejected(Rejected::new(RejectReason::Open, wait)));
        }
        self.free.filter(|_| fresh).map(Answer::Free)
    }

    /// Takes the reply `tail` to request `sent`, received at `now` when `issued` requests
    /// had been sent: `None` if a newer reply is cached already, else whether the key was
    /// found lost (another epoch than the one cached).
    ///
    /// A reply overtaken by a newer one (concurrent calls) does not replace it: it has the
    /// same epoch, a lower write sequence, and its request left before the cached reply
    /// arrived. A reply to a request sent after that is the store's state now, taken even if
    /// its sequence went back: the key was rolled back to an earlier copy.
    pub fn take(
        &mut self,
        sent: u64,
        issued: u64,
        now: Timestamp,
        tail: &RemoteState,
    ) -> Option<bool> {
        let same_epoch = self.epoch == tail.epoch;
        if same_epoch && tail.sequence < self.sequence && sent <= self.issued {
            return None;
        }
        let lost = self.epoch != 0 && !same_epoch;
        // The open period and the override are kept in local time: the same length from now
        // as the script saw.
        let auto_open = tail.state == State::Open && tail.override_mode == Override::Auto;
        *self = Cache {
            epoch: tail.epoch,
            sequence: tail.sequence,
            generation: tail.generation,
            issued,
            received: now,
            free: tail.free.then_some(tail.generation),
            open_until: (auto_open && tail.open_until > tail.now)
                .then(|| now.saturating_add(tail.open_until.saturating_since(tail.now))),
            refreshing_until: Timestamp::ZERO,
            counts: tail.counts,
            forced: match tail.override_mode {
                Override::Auto => None,
                mode if tail.override_until == Timestamp::ZERO => Some((mode, None)),
                mode => (tail.override_until > tail.now).then(|| {
                    let left = tail.override_until.saturating_since(tail.now);
                    (mode, Some(now.saturating_add(left)))
                }),
            },
        };
        Some(lost)
    }

    /// Makes the cached state stale at once (a change was pushed): the next call asks the
    /// store, while a reply older than the one cached is still not taken.
    pub fn make_stale(&mut self) {
        self.received = Timestamp::ZERO;
        self.refreshing_until = Timestamp::ZERO;
    }

    /// The generation the last reply named: the store's current cycle.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The window's totals the last reply named, while it said the breaker is closed in
    /// `generation` with no decision needed.
    pub fn free_counts(&self, generation: u64) -> Option<Counts> {
        (self.free == Some(generation)).then_some(self.counts)
    }

    /// While the store cannot be reached: the operator's override this process last learnt
    /// of, until its expiry, whatever the failure policy. A forced open state with no end
    /// asks callers to wait `open_for`.
    pub fn held_override(
        &self,
        now: Timestamp,
        open_for: Duration,
    ) -> Option<Result<Permit, Rejected>> {
        let (mode, until) = self.forced?;
        if until.is_some_and(|until| now >= until) {
            return None;
        }
        match mode {
            Override::ForcedOpen => {
                let wait = until.map_or(open_for, |until| until.saturating_since(now));
                Some(Err(Rejected::new(RejectReason::ForcedOpen, wait)))
            }
            Override::ForcedClosed => Some(Ok(new_permit(0, PermitKind::Unchecked, now, false))),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reply's state with the fields the cache reads.
    pub(crate) fn tail(
        state: State,
        generation: u64,
        open_until: u64,
        now: u64,
        sequence: u64,
    ) -> RemoteState {
        let mut tail = RemoteState::new(state, generation, Timestamp::from_millis(now));
        tail.open_until = Timestamp::from_millis(open_until);
        tail.free = state == State::Closed;
        tail.epoch = 7;
        tail.sequence = sequence;
        tail
    }

    const STALE: Duration = Duration::from_secs(1);
    const TIMEOUT: Duration = Duration::from_millis(50);

    #[test]
    fn an_override_is_held_until_its_end_in_local_time() {
        let mut cache = Cache::default();
        let mut forced = tail(State::Open, 3, 0, 10_000, 1);
        forced.override_mode = Override::ForcedOpen;
        forced.override_until = Timestamp::from_millis(15_000);
        // Received at local time 1 000: the override ends 5 s later, at 6 000.
        let now = Timestamp::from_millis(1_000);
        assert_eq!(cache.take(1, 1, now, &forced), Some(false));
        let held = cache.held_override(Timestamp::from_millis(2_000), STALE);
        let rejected = held.expect("held").expect_err("forced open");
        assert_eq!(rejected.reason(), RejectReason::ForcedOpen);
        assert_eq!(rejected.retry_after(), Duration::from_secs(4));
        assert!(
            cache
                .held_override(Timestamp::from_millis(6_000), STALE)
                .is_none()
        );
        // Forced open for good: callers wait `open_for`.
        forced.override_until = Timestamp::ZERO;
        cache.take(2, 2, now, &forced);
        let held = cache.held_override(Timestamp::from_millis(9_000_000), STALE);
        assert_eq!(held.unwrap().unwrap_err().retry_after(), STALE);
    }

    #[test]
    fn a_free_generation_answers_while_fresh_and_names_its_totals() {
        let mut cache = Cache::default();
        let now = Timestamp::from_millis(1_000);
        assert_eq!(cache.answer(now, STALE, TIMEOUT), None, "nothing cached");
        cache.take(1, 1, now, &tail(State::Closed, 4, 0, 500, 1));
        assert_eq!(cache.answer(now, STALE, TIMEOUT), Some(Answer::Free(4)));
        assert_eq!(cache.answer(now, Duration::ZERO, TIMEOUT), None, "no cache");
        assert_eq!(cache.free_counts(4), Some(Counts::default()));
        assert_eq!(cache.free_counts(3), None);
        assert_eq!(cache.generation(), 4);
        cache.make_stale();
        assert_eq!(cache.answer(now, STALE, TIMEOUT), None, "pushed change");
    }
}
