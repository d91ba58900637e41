//! The requests a store sends to Redis, counted: what the process costs the Redis it shares,
//! seen from the process.

use std::sync::atomic::{AtomicU64, Ordering};

/// The `metrics` counter of requests sent to Redis by every store of the process.
pub(crate) const REQUESTS_METRIC: &str = "breaker_redis_requests_total";

/// Requests one store has sent: each a round trip (a script call, a command, or a pipeline
/// of plain reads), the subscription to pushed changes aside.
#[derive(Debug, Default)]
pub(crate) struct Requests(AtomicU64);

impl Requests {
    /// Counts a request about to be sent, here and in [`REQUESTS_METRIC`].
    pub(crate) fn count(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(REQUESTS_METRIC).increment(1);
    }

    /// How many were sent so far.
    pub(crate) fn so_far(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
