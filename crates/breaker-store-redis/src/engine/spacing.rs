//! The fleet's budget: in batched mode, each process spaces its batches by its share of the
//! fleet's calls, so that the script calls one breaker's whole fleet sends stay within
//! [`RedisConfig::fleet_budget`](crate::RedisConfig::fleet_budget) a second, whatever the
//! number of processes.
//!
//! Each process knows two rates without asking anyone: its own calls a second, counted
//! here, and the fleet's, the window's calls (which every reply carries) over the window. A
//! process that makes a share `own / fleet` of the fleet's calls may send that share of the
//! budget: one batch every `fleet / (budget * own)` seconds. The shares add up to one, so
//! the fleet sends about `budget` batches a second. A young window (a breaker made less than
//! a window ago) understates the fleet's rate, which only shortens the spacing.

use std::time::Duration;

use breaker_core::Timestamp;

/// How long one measure of the process's own rate lasts.
const PERIOD: Duration = Duration::from_secs(1);

/// The longest a batch of successes waits, whatever the budget: what it holds is missing
/// from the fleet's window (and the failures of other processes are measured against it)
/// for at most this long.
pub(crate) const LONGEST_SPACING: Duration = Duration::from_secs(1);

/// The longest spacing for a store whose cached state serves calls for `max_staleness`:
/// [`LONGEST_SPACING`], and short enough that each batch's reply refreshes the cache before
/// it goes stale (four fifths of it), so that no call runs the script only to refresh it.
pub(crate) fn longest_spacing(max_staleness: Duration) -> Duration {
    LONGEST_SPACING.min(max_staleness.mul_f64(0.8))
}

/// This process's calls a second on one breaker, measured over whole periods.
#[derive(Debug, Default)]
pub(crate) struct Spacing {
    /// When the current period began (none before the first call).
    since: Option<Timestamp>,
    /// Calls counted in the current period.
    calls: u64,
    /// Calls a second over the last whole period (0 before one ended).
    rate: f64,
}

impl Spacing {
    /// Counts a call made at `now`.
    pub(crate) fn count(&mut self, now: Timestamp) {
        match self.since {
            Some(since) if now >= since => {
                let elapsed = now.saturating_since(since);
                if elapsed >= PERIOD {
                    self.rate = self.calls as f64 / elapsed.as_secs_f64();
                    self.since = Some(now);
                    self.calls = 0;
                }
            }
            // The first call, or the clock stepped back: a new period.
            _ => {
                self.since = Some(now);
                self.calls = 0;
            }
        }
        self.calls += 1;
    }

    /// How long a batch of successes waits: this process's share of `budget` batches a
    /// second, with the fleet making `fleet_calls` calls in `window`; at least `interval`
    /// and at most `longest` (or `interval`, if longer). `interval` while either rate is
    /// unknown.
    pub(crate) fn spaced(
        &self,
        interval: Duration,
        budget: u32,
        fleet_calls: Option<u64>,
        window: Duration,
        longest: Duration,
    ) -> Duration {
        let fleet = fleet_calls.map_or(0.0, |calls| calls as f64 / window.as_secs_f64());
        if self.rate <= 0.0 || fleet <= 0.0 || budget == 0 {
            return interval;
        }
        let seconds = fleet / (f64::from(budget) * self.rate);
        let longest = longest.max(interval);
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(longest)
            .clamp(interval, longest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);
    const INTERVAL: Duration = Duration::from_millis(5);

    /// A process that made `per_second` calls a second for two seconds.
    fn measured(per_second: u64) -> Spacing {
        let mut spacing = Spacing::default();
        let step = 1_000 / per_second;
        for call in 0..=2 * per_second {
            spacing.count(Timestamp::from_millis(call * step));
        }
        spacing
    }

    #[test]
    fn each_process_takes_its_share_of_the_budget() {
        // 100 processes at 100 calls a second: 10 000 a second, 600 000 in the window.
        let spacing = measured(100);
        let spaced = spacing.spaced(INTERVAL, 1_000, Some(600_000), WINDOW, LONGEST_SPACING);
        // A tenth of a second each: 10 batches a second each, 1 000 for the fleet.
        assert!((spaced.as_secs_f64() - 0.1).abs() < 0.005, "{spaced:?}");
        // A fleet within the budget keeps the configured interval.
        assert_eq!(
            spacing.spaced(INTERVAL, 1_000, Some(6_000), WINDOW, LONGEST_SPACING),
            INTERVAL
        );
        // A fleet far over it waits at most the longest spacing, shorter than the cache's
        // life.
        assert_eq!(
            spacing.spaced(INTERVAL, 1, Some(600_000_000), WINDOW, LONGEST_SPACING),
            LONGEST_SPACING
        );
        let longest = longest_spacing(Duration::from_millis(500));
        assert_eq!(longest, Duration::from_millis(400));
        assert_eq!(
            spacing.spaced(INTERVAL, 1, Some(600_000_000), WINDOW, longest),
            longest
        );
    }

    #[test]
    fn unknown_rates_keep_the_interval() {
        let mut spacing = Spacing::default();
        spacing.count(Timestamp::from_millis(0));
        assert_eq!(
            spacing.spaced(INTERVAL, 1_000, Some(600_000), WINDOW, LONGEST_SPACING),
            INTERVAL
        );
        assert_eq!(
            measured(100).spaced(INTERVAL, 1_000, None, WINDOW, LONGEST_SPACING),
            INTERVAL
        );
        // A clock stepped back starts a new period and keeps the last rate.
        let mut stepped = measured(100);
        stepped.count(Timestamp::from_millis(0));
        assert!(stepped.spaced(INTERVAL, 1_000, Some(600_000), WINDOW, LONGEST_SPACING) > INTERVAL);
    }
}
