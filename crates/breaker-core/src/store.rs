//! What only store authors need: the window and its bucket maths, a policy's times in whole
//! milliseconds, and building permits from a store's own answer. Users of a breaker need none
//! of it.

use std::time::Duration;

pub use crate::circuit::new_permit as permit;
pub use crate::window::{BucketWindow, Window, bucket_is_live, bucket_of, slot_of};

/// A policy's times in whole milliseconds, as a store computes and keeps them (a Redis script's
/// numbers are doubles: every time stays below 2^53).
pub trait PolicyMillis {
    /// The window, as configured.
    fn window_millis(&self) -> u64;
    /// The width of one bucket.
    fn bucket_millis(&self) -> u64;
    /// The open time of a first trip: `open_for`, capped by `max_open_for`.
    fn open_for_millis(&self) -> u64;
    /// The probe lease.
    fn probe_lease_millis(&self) -> u64;
    /// The cap on the backed-off open time.
    fn max_open_for_millis(&self) -> u64;
    /// The open time that follows one lasting `previous_ms`: multiplied by `backoff`, rounded
    /// down to whole milliseconds, capped by `max_open_for`.
    fn next_open_millis(&self, previous_ms: u64) -> u64;
    /// How long the breaker stays open for a backend that asked to wait `wait` (rounded up to
    /// whole milliseconds, capped by `max_open_for`); `None` when the policy ignores
    /// `Retry-After` or there is nothing to wait for.
    fn hold_off_millis(&self, wait: Duration) -> Option<u64>;
}
