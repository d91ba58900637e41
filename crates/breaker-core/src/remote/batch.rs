//! Batched outcomes: ordinary calls' outcomes added up in the process, all of one generation,
//! and sent once per interval (or at once when full, or when a failure could trip the
//! breaker), so the caller never waits for the store on the closed path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Counts, Outcome, Timestamp};

/// Outcomes a batch holds at most: past this, the call that adds one sends the batch, so
/// nothing pending grows without bound.
const MAX_PENDING: u64 = 1 << 16;

/// Outcomes of ordinary calls added up in the process, all of one generation.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The generation they belong to.
    pub generation: u64,
    /// How many succeeded.
    pub successes: u64,
    /// How many failed.
    pub failures: u64,
    /// When the first of them was added.
    since: Timestamp,
    /// How long it waits after `since`, as the last outcome added decided.
    wait: Duration,
}

/// How long a batch waits before it goes.
#[allow(clippy::exhaustive_structs)] // Each store builds it field by field: a new one is a compile error there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// The shortest wait: that of a batch whose failures reach `failure_rate` percent of
    /// its outcomes, so that a failing backend's failures never wait for a longer one.
    pub interval: Duration,
    /// The wait of any other batch (at least `interval`): the longer, the fewer requests
    /// the process sends.
    pub spaced: Duration,
    /// The policy's failure rate, in percent.
    pub failure_rate: f64,
}

/// Whether a batched outcome asks for the batch to be sent.
#[allow(clippy::exhaustive_enums)] // Each store must say what it does with each: a new one is a compile error there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchDue {
    /// Not yet: it goes with the others.
    No,
    /// The first of a new batch: send it when the interval has passed.
    Later(Duration),
    /// Now: the interval passed, or the batch is full.
    Now,
    /// Now, by the caller itself: this failure could trip the breaker by the last totals
    /// the store sent plus what is pending. The caller waits for the round trip (its call
    /// failed anyway), so no call of this process passes between that failure and the trip.
    Trip,
}

impl Batch {
    /// How many outcomes it holds.
    pub fn calls(&self) -> u64 {
        self.successes + self.failures
    }

    /// How long it waits after its first outcome, by `pace`.
    fn wait(&self, pace: Pace) -> Duration {
        let failing = self.failures > 0
            && (self.failures as f64) * 100.0 >= pace.failure_rate * (self.calls() as f64);
        if failing {
            pace.interval
        } else {
            pace.spaced.max(pace.interval)
        }
    }

    /// What it holds as window totals.
    fn counts(&self) -> Counts {
        Counts {
            calls: self.calls(),
            failures: self.failures,
        }
    }

    /// Adds an ordinary call's `outcome` of `generation` at `now`; says when the batch should
    /// go, by `pace`. `current` reads the generation the store's last reply named (only when
    /// two cycles meet); `could_trip` says whether the store's last totals plus these would
    /// trip the breaker (only asked for a failure).
    pub fn add(
        &mut self,
        generation: u64,
        outcome: Outcome,
        now: Timestamp,
        pace: Pace,
        current: impl FnOnce() -> u64,
        could_trip: impl FnOnce(Counts) -> bool,
    ) -> BatchDue {
        let due = |batch: &Batch| {
            now.saturating_since(batch.since) >= batch.wait(pace)
                || now < batch.since
                || batch.calls() >= MAX_PENDING
        };
        let first = self.calls() == 0;
        if !first && generation != self.generation {
            // Two cycles meet: the one the last reply named is the store's current cycle
            // (after a lost key or a rollback its generation may be lower), and the store
            // ignores the other's outcomes. Without a reply naming either, the later
            // generation wins.
            let current = current();
            let permit_is_current = if self.generation == current {
                false
            } else if generation == current {
                true
            } else {
                generation > self.generation
            };
            if !permit_is_current {
                // From a cycle that already ended: not counted, and the batch still goes
                // when it is due.
                return if due(self) {
                    BatchDue::Now
                } else {
                    BatchDue::No
                };
            }
        }
        let first = first || generation != self.generation;
        if first {
            // Outcomes of an ended cycle would be ignored by the store: dropped here.
            *self = Batch {
                generation,
                since: now,
                ..Batch::default()
            };
        }
        let waited = self.wait(pace);
        let failure = outcome == Outcome::Failure;
        if failure {
            self.failures += 1;
        } else {
            self.successes += 1;
        }
        let wait = self.wait(pace);
        self.wait = wait;
        // A failure that could trip the breaker goes at once: the trip is not held back for
        // the interval.
        if failure && could_trip(self.counts()) {
            BatchDue::Trip
        } else if due(self) {
            BatchDue::Now
        } else if first {
            BatchDue::Later(wait)
        } else if wait < waited {
            // Its failures now reach the failure rate: it goes after the shorter wait.
            BatchDue::Later(wait.saturating_sub(now.saturating_since(self.since)))
        } else {
            BatchDue::No
        }
    }

    /// Takes what it holds, leaving it empty; `None` if it holds nothing.
    pub fn take(&mut self) -> Option<Batch> {
        let batch = std::mem::take(self);
        (batch.calls() > 0).then_some(batch)
    }

    /// How long until it is due at `now` (zero: it is); `None` if it holds nothing.
    pub fn due_in(&self, now: Timestamp) -> Option<Duration> {
        if self.calls() == 0 {
            return None;
        }
        if now < self.since || self.calls() >= MAX_PENDING {
            return Some(Duration::ZERO);
        }
        Some(self.wait.saturating_sub(now.saturating_since(self.since)))
    }

    /// Takes what it holds if it is due at `now`: a timer set for a batch that has already
    /// gone does not send the next one early.
    pub fn take_due(&mut self, now: Timestamp) -> Option<Batch> {
        if self.due_in(now) == Some(Duration::ZERO) {
            self.take()
        } else {
            None
        }
    }
}

/// Batches taken to be sent, and batches whose reply (or failure) was handled: a flush waits
/// for the batches already on their way, not only for its own.
#[derive(Debug, Default)]
pub struct InFlight {
    taken: AtomicU64,
    done: AtomicU64,
}

impl InFlight {
    /// Counts a batch taken to be sent.
    pub fn taken(&self) {
        self.taken.fetch_add(1, Ordering::SeqCst);
    }

    /// How many batches have been taken so far.
    pub fn taken_so_far(&self) -> u64 {
        self.taken.load(Ordering::SeqCst)
    }

    /// Whether every batch of the first `taken` has been handled (sent, or failed).
    pub fn done(&self, taken: u64) -> bool {
        self.done.load(Ordering::SeqCst) >= taken
    }

    /// Counts a batch as handled when the guard it returns is dropped.
    pub fn handling(&self) -> impl Drop + '_ {
        DoneOnDrop(&self.done)
    }
}

/// Counts a batch as handled when its handling ends.
struct DoneOnDrop<'a>(&'a AtomicU64);

impl Drop for DoneOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    /// Successes wait a second; a batch half failures or more, 10 ms.
    const SPACED: Pace = Pace {
        interval: Duration::from_millis(10),
        spaced: SECOND,
        failure_rate: 50.0,
    };
    const EVEN: Pace = Pace {
        interval: SECOND,
        spaced: SECOND,
        failure_rate: 0.0,
    };

    fn at(millis: u64) -> Timestamp {
        Timestamp::from_millis(millis)
    }

    #[test]
    fn a_batch_goes_after_its_interval_or_at_once_when_it_could_trip() {
        let mut batch = Batch::default();
        let never = |_: Counts| false;
        assert_eq!(
            batch.add(1, Outcome::Success, at(0), EVEN, || 1, never),
            BatchDue::Later(SECOND)
        );
        assert_eq!(
            batch.add(1, Outcome::Failure, at(10), EVEN, || 1, never),
            BatchDue::No
        );
        let trips = |counts: Counts| counts.failures >= 2;
        assert_eq!(
            batch.add(1, Outcome::Failure, at(20), EVEN, || 1, trips),
            BatchDue::Trip
        );
        assert_eq!(
            batch.add(1, Outcome::Success, at(1_000), EVEN, || 1, never),
            BatchDue::Now
        );
        let taken = batch.take().expect("four outcomes");
        assert_eq!(
            (taken.successes, taken.failures, taken.generation),
            (2, 2, 1)
        );
        assert_eq!(batch.take(), None);
    }

    #[test]
    fn outcomes_of_an_ended_cycle_are_left_out() {
        let mut batch = Batch::default();
        let never = |_: Counts| false;
        batch.add(5, Outcome::Failure, at(0), EVEN, || 5, never);
        // The store's last reply names generation 5: a late outcome of 4 is not counted.
        assert_eq!(
            batch.add(4, Outcome::Failure, at(1), EVEN, || 5, never),
            BatchDue::No
        );
        assert_eq!(batch.calls(), 1);
        // After a lost key the store's cycle is 2: its outcomes replace those of 5.
        assert_eq!(
            batch.add(2, Outcome::Success, at(2), EVEN, || 2, never),
            BatchDue::Later(SECOND)
        );
        assert_eq!((batch.generation, batch.calls()), (2, 1));
    }

    #[test]
    fn a_spaced_batch_of_successes_waits_longer_and_failures_go_after_the_interval() {
        let pace = SPACED;
        let never = |_: Counts| false;
        let mut batch = Batch::default();
        assert_eq!(
            batch.add(1, Outcome::Success, at(0), pace, || 1, never),
            BatchDue::Later(SECOND)
        );
        assert_eq!(
            batch.add(1, Outcome::Success, at(500), pace, || 1, never),
            BatchDue::No
        );
        // One failure in three: below the failure rate, the batch still waits.
        assert_eq!(
            batch.add(1, Outcome::Failure, at(501), pace, || 1, never),
            BatchDue::No
        );
        // Two in four reach it: the batch is already past the shorter wait.
        assert_eq!(
            batch.add(1, Outcome::Failure, at(502), pace, || 1, never),
            BatchDue::Now
        );
        batch.take();
        // A batch whose first outcome is a failure waits the interval only.
        assert_eq!(
            batch.add(1, Outcome::Failure, at(600), pace, || 1, never),
            BatchDue::Later(Duration::from_millis(10))
        );
        batch.take();
        batch.add(1, Outcome::Success, at(700), pace, || 1, never);
        // A failure 4 ms in makes half of it failures: it goes 6 ms later.
        assert_eq!(
            batch.add(1, Outcome::Failure, at(704), pace, || 1, never),
            BatchDue::Later(Duration::from_millis(6))
        );
        // A success after it makes them a third again: it waits its longer wait (the
        // flush already due goes all the same).
        assert_eq!(
            batch.add(1, Outcome::Success, at(999), pace, || 1, never),
            BatchDue::No
        );
    }

    #[test]
    fn only_a_due_batch_is_taken_by_a_timer() {
        let pace = SPACED;
        let never = |_: Counts| false;
        let mut batch = Batch::default();
        assert_eq!(batch.due_in(at(0)), None);
        batch.add(1, Outcome::Success, at(0), pace, || 1, never);
        assert_eq!(batch.due_in(at(400)), Some(Duration::from_millis(600)));
        assert_eq!(batch.take_due(at(400)), None);
        assert_eq!(batch.calls(), 1);
        // Half failures: due after the interval.
        batch.add(1, Outcome::Failure, at(401), pace, || 1, never);
        assert_eq!(batch.due_in(at(401)), Some(Duration::ZERO));
        assert_eq!(batch.take_due(at(401)).map(|b| b.calls()), Some(2));
        // A clock stepped back makes it due at once.
        batch.add(1, Outcome::Success, at(500), pace, || 1, never);
        assert_eq!(batch.due_in(at(499)), Some(Duration::ZERO));
    }
}
