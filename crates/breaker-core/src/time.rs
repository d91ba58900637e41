//! Time as a value: the core never reads a clock, callers pass `now` in.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time, in whole milliseconds since an origin chosen by the [`Clock`] that made it.
///
/// Milliseconds in a `u64` are cheap to compare, to store in Redis and to compute with
/// inside a Lua script, whose numbers are doubles (exact up to 2^53).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin of the clock.
    pub const ZERO: Timestamp = Timestamp(0);

    /// The timestamp `millis` milliseconds after the origin.
    #[inline]
    pub const fn from_millis(millis: u64) -> Timestamp {
        Timestamp(millis)
    }

    /// Milliseconds since the origin.
    #[inline]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This timestamp moved `millis` milliseconds later, saturating at the end of time.
    pub const fn add_millis(self, millis: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(millis))
    }

    /// This timestamp moved `duration` later (whole milliseconds), saturating at the end of time.
    pub fn saturating_add(self, duration: Duration) -> Timestamp {
        self.add_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    #[inline]
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms)", self.0)
    }
}

/// A source of [`Timestamp`]s, for the crates around the core (stores and adapters).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// Wall-clock time: milliseconds since the Unix epoch.
///
/// This and [`MonotonicClock`] are the only places in the core that read a clock; the state
/// machine itself never does.
#[derive(Clone, Copy, Debug, Default)]
#[allow(clippy::exhaustive_structs)] // A unit struct: there is nothing to add.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // A system clock set before 1970 reads as the epoch rather than failing the call path.
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Monotonic time on the scale of wall time: the wall-clock time when the clock was made, plus
/// the time elapsed since then by the operating system's monotonic clock.
///
/// Deadlines inside a process (a cached state's age, an open period, a probe's lease, a call's
/// elapsed time) use it, so that a wall clock stepped back or forward (NTP, an operator) neither
/// stretches nor cuts them. Clones share the same origin.
///
/// ```
/// use breaker_core::{Clock, MonotonicClock};
///
/// let clock = MonotonicClock::new();
/// let first = clock.now();
/// assert!(clock.now() >= first);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: Instant,
    origin_wall: Timestamp,
}

impl MonotonicClock {
    /// A clock that reads the wall-clock time now and moves only forward from there.
    pub fn new() -> MonotonicClock {
        MonotonicClock {
            origin: Instant::now(),
            origin_wall: SystemClock.now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> MonotonicClock {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Timestamp {
        self.origin_wall.saturating_add(self.origin.elapsed())
    }
}

/// A clock that moves only when told to, for tests. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use breaker_core::{Clock, ManualClock, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_millis(1_000));
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(shared.now(), Timestamp::from_millis(3_000));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            now: Arc::new(AtomicU64::new(start.as_millis())),
        }
    }

    /// Moves the clock forward by `by` (whole milliseconds).
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(millis))
            });
    }

    /// Sets the clock to `to`, which may be earlier than its current time.
    pub fn set(&self, to: Timestamp) {
        self.now.store(to.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_saturate() {
        let end = Timestamp::from_millis(u64::MAX - 1);
        assert_eq!(end.add_millis(10).as_millis(), u64::MAX);
        assert_eq!(
            Timestamp::from_millis(5).saturating_since(Timestamp::from_millis(9)),
            Duration::ZERO
        );
        assert_eq!(
            Timestamp::from_millis(9).saturating_since(Timestamp::from_millis(5)),
            Duration::from_millis(4)
        );
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > Timestamp::from_millis(1_577_836_800_000));
    }

    #[test]
    fn monotonic_clock_starts_at_wall_time_and_never_goes_back() {
        let wall = SystemClock.now();
        let clock = MonotonicClock::new();
        let mut last = clock.now();
        assert!(last.saturating_since(wall) < Duration::from_secs(5));
        for _ in 0..1_000 {
            let now = clock.now();
            assert!(now >= last);
            last = now;
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_millis(7));
        assert_eq!(clock.now(), Timestamp::from_millis(7));
        clock.advance(Duration::from_millis(3));
        assert_eq!(clock.now(), Timestamp::from_millis(10));
        clock.set(Timestamp::from_millis(2));
        assert_eq!(clock.now(), Timestamp::from_millis(2));
    }
}
