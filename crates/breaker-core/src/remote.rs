//! The parts of a store that keeps each breaker's state in a remote server (Redis, a
//! database, a coordination service) and decides there, in one atomic step per call, while
//! each process decides between round trips from what the last reply said. Each part holds
//! one idea and takes `now`; none does IO or knows the server: a store holds one of each per
//! breaker, under its own locks, and feeds it the [`RemoteState`] its replies carry.
//! - [`Cache`]: the last reply, what the pre-call check may answer from it, and the
//!   operator's override held while the server cannot be reached;
//! - [`Ramp`]: the ramp after a close by probes, as this process runs it;
//! - [`Fallback`]: the store-failure policy and the local fallback breaker;
//! - [`Batch`]: outcomes added up in the process and when they go ([`InFlight`] counts
//!   batches on their way, for a flush);
//! - [`Registration`]: when the process writes the breaker into the server's registry.

mod batch;
mod cache;
mod fallback;
mod ramp;
mod registration;

pub use batch::{Batch, BatchDue, InFlight, Pace};
pub use cache::{Answer, Cache};
pub use fallback::Fallback;
pub use ramp::Ramp;
pub use registration::Registration;

use crate::{Counts, Override, State, Timestamp};

/// What every reply of the server says of the breaker after its step, in the server's clock:
/// what the parts follow. [`RemoteState::new`] gives one with the rest at its quiet value
/// (no open period, no override, first write, nothing counted); set the fields the reply
/// carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteState {
    /// The breaker's state.
    pub state: State,
    /// The breaker's generation.
    pub generation: u64,
    /// While automatically open: when the open period ends.
    pub open_until: Timestamp,
    /// `Circuit::free_generation` is `Some(generation)`: closed, with no decision needed.
    pub free: bool,
    /// The server's clock when it made the step.
    pub now: Timestamp,
    /// The operator override in force.
    pub override_mode: Override,
    /// This life of the breaker's state: another epoch means the state was lost and made
    /// again.
    pub epoch: u64,
    /// Writes to the state in this epoch: a larger one is a newer state.
    pub sequence: u64,
    /// How many fields held garbage and were repaired in place.
    pub repaired: u64,
    /// The window's running totals as of the reply.
    pub counts: Counts,
    /// When the override in force ends, by the server's clock (`ZERO`: never, or none).
    pub override_until: Timestamp,
    /// When probes last closed the breaker, by the server's clock (`ZERO`: the last close
    /// was a reset): a ramp may run from then (policy `ramp_up`).
    pub closed_by_probes: Timestamp,
}

impl RemoteState {
    /// The breaker in `state` and `generation` at the server's time `now`; every other
    /// field at its quiet value.
    pub fn new(state: State, generation: u64, now: Timestamp) -> RemoteState {
        RemoteState {
            state,
            generation,
            open_until: Timestamp::ZERO,
            free: false,
            now,
            override_mode: Override::Auto,
            epoch: 0,
            sequence: 0,
            repaired: 0,
            counts: Counts::default(),
            override_until: Timestamp::ZERO,
            closed_by_probes: Timestamp::ZERO,
        }
    }
}
