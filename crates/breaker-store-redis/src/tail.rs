//! What every reply of the breaker's store ends with: the breaker's state after the step, in
//! the store's clock. The engine's parts (cache, ramp, registration) follow it; nothing in it
//! is Redis's, so another remote store whose replies say the same can reuse them.

use breaker_core::{Counts, Override, State, Timestamp};

/// The state every reply ends with, for the caller's cache. The script's reply holds, in
/// order: `state + 4 * override + 16 * repaired`, generation, open until, now, epoch,
/// sequence, calls, failures, override until, closed by probes at (see `breaker.lua`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tail {
    pub(crate) state: State,
    pub(crate) generation: u64,
    pub(crate) open_until: Timestamp,
    /// `Circuit::free_generation` is `Some(generation)`.
    pub(crate) free: bool,
    /// The script's clock.
    pub(crate) now: Timestamp,
    /// The operator override in force.
    pub(crate) override_mode: Override,
    /// This life of the breaker's key: another epoch means the key was lost and made again.
    pub(crate) epoch: u64,
    /// Writes to the key in this epoch: a larger one is a newer state.
    pub(crate) sequence: u64,
    /// How many fields held garbage and were repaired in place.
    pub(crate) repaired: u64,
    /// The window's running totals as of the reply.
    pub(crate) counts: Counts,
    /// When the override in force ends, by the script's clock (`ZERO`: never, or none).
    pub(crate) override_until: Timestamp,
    /// When probes last closed the breaker, by the script's clock (`ZERO`: the last close
    /// was a reset): a ramp may run from then (policy `ramp_up`).
    pub(crate) closed_by_probes: Timestamp,
}
