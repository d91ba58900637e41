//! The settings every breaker of one store shares, made from its `RedisConfig`.

use std::sync::Arc;
use std::time::Duration;

use breaker_core::{Clock, SystemClock, Timestamp};

/// Settings shared by every breaker of one store.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) idle_ttl: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    /// Send the clock's time to the script instead of letting it read Redis's `TIME`.
    pub(crate) inject_time: bool,
    /// Entries kept in each breaker's history (about; 0: none).
    pub(crate) history_len: u32,
    /// Who asks, in the history of operator actions.
    pub(crate) actor: String,
    /// Add outcomes up in the process and send them together, once per this interval.
    pub(crate) batch: Option<Duration>,
    /// Script calls a second one breaker's whole fleet may send in batched mode.
    pub(crate) fleet_budget: u32,
    /// Who this process is among the reporters of failures (policy `minimum_reporters`).
    pub(crate) reporter: String,
}

impl Settings {
    /// Wall-clock time for what operators read as dates (the registry's first and last seen):
    /// the injected clock's time in tests, else the system's.
    pub(crate) fn wall_now(&self) -> Timestamp {
        if self.inject_time {
            self.clock.now()
        } else {
            SystemClock.now()
        }
    }

    /// Settings for unit tests: prefix `test`, a 50 ms timeout, a 1 s cache, a 60 s idle TTL,
    /// time from `clock` sent to the script, no batching.
    #[cfg(test)]
    pub(crate) fn for_tests(clock: impl Clock + 'static) -> Settings {
        Settings {
            prefix: "test".to_owned(),
            timeout: Duration::from_millis(50),
            max_staleness: Duration::from_secs(1),
            idle_ttl: Duration::from_secs(60),
            clock: Arc::new(clock),
            inject_time: true,
            history_len: 10,
            actor: "test".to_owned(),
            batch: None,
            fleet_budget: 500,
            reporter: "test".to_owned(),
        }
    }
}
