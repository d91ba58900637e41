//! When this process writes its breaker into the registry: when it never did, when the last
//! write failed a few seconds ago, when the key was found lost (the registry went with it),
//! or when half the idle TTL has passed since the last write.

use std::time::Duration;

use crate::Timestamp;

/// How soon a registration that failed is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// When this process last wrote the breaker into the registry, and when it should next.
#[derive(Debug, Default)]
pub struct Registration {
    attempted: Timestamp,
    /// `None`: due now.
    next: Option<Timestamp>,
    /// The epoch of the breaker's key when the registration was last due: a key made again
    /// makes the registration due at once.
    epoch: u64,
}

impl Registration {
    /// Whether the registration is due at `now`; if so, claims it, so concurrent callers do
    /// not repeat it. Report how it went to [`Registration::went`].
    pub fn due(&mut self, now: Timestamp) -> bool {
        let due = match self.next {
            None => true,
            // A clock that stepped back says nothing of how long ago the last write was.
            Some(next) => now >= next || now < self.attempted,
        };
        if due {
            self.attempted = now;
            self.next = Some(now.saturating_add(RETRY));
        }
        due
    }

    /// How the registration claimed at `now` went; a success holds for half of `idle_ttl`.
    pub fn went(&mut self, now: Timestamp, ok: bool, idle_ttl: Duration) {
        let wait = if ok { idle_ttl / 2 } else { RETRY };
        self.next = Some(now.saturating_add(wait));
    }

    /// A reply named the key's `epoch`: another one than before makes the registration due.
    pub fn follow_epoch(&mut self, epoch: u64) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.next = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_when_never_done_failed_lost_or_half_the_ttl_passed() {
        let ttl = Duration::from_secs(60);
        let at = Timestamp::from_millis;
        let mut registration = Registration::default();
        assert!(registration.due(at(1_000)), "never registered");
        assert!(!registration.due(at(1_000)), "claimed");
        registration.went(at(1_000), false, ttl);
        assert!(!registration.due(at(5_999)));
        assert!(registration.due(at(6_000)), "retried after a failure");
        registration.went(at(6_000), true, ttl);
        assert!(!registration.due(at(35_999)));
        assert!(registration.due(at(36_000)), "half the idle TTL");
        registration.went(at(36_000), true, ttl);
        registration.follow_epoch(9);
        assert!(registration.due(at(36_001)), "the key was made again");
        registration.went(at(36_001), true, ttl);
        assert!(registration.due(at(100)), "the clock stepped back");
    }
}
