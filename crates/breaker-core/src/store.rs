//! What only store authors need: the [`Circuit`] state machine, the window and its bucket
//! maths, a policy's times in whole milliseconds, the ramp after a close, building permits and
//! snapshots from a store's own answer, [`LocalBreaker`], a breaker's whole state in one
//! process, with its bytes for a store that loads and saves it, and the [`remote`] parts of a
//! store that decides in a remote server. Users of a breaker need none of it.
//!
//! This module only names things for store authors; each lives in the file of its idea.

pub use crate::circuit::Circuit;
pub use crate::circuit::new_permit as permit;
pub use crate::circuit::new_snapshot as snapshot;
pub use crate::circuit::{RAMP_START_PER_MILLE, RampCredit, ramp_retry_after, ramp_share};
pub use crate::local::{LocalBreaker, counted};
pub use crate::policy::PolicyMillis;
pub use crate::window::{BucketWindow, Window, bucket_is_live, bucket_of, slot_of};

/// The parts of a store that keeps state in a remote server and decides between round trips
/// from what the last reply said (the Redis store is built from them): see each part.
pub mod remote {
    pub use crate::remote::{
        Answer, Batch, BatchDue, Cache, Fallback, InFlight, Pace, Ramp, Registration, RemoteState,
    };
}
