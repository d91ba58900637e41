//! The circuit breaker's state machine, with no IO: time is passed in, state is a value.
//!
//! A breaker counts the outcomes of calls over a sliding window of fixed buckets; when at
//! least `minimum_failures` calls failed, at least `minimum_calls` were made, and failures are
//! `failure_rate` percent or more of them, it opens: calls are rejected at once for `open_for`.
//! Then a few probes go through; their successes close it, a failure opens it again.
//!
//! This crate holds the [`Policy`], the [`BlockingBreaker`] call API that stores implement and
//! custom clients call (or [`call_blocking`] and [`call_async`] around a closure or a future), the
//! [`BlockingOperate`] API operators use, and the events listeners receive; what only store authors
//! need (the [`store::Circuit`] state machine, the window, [`store::LocalBreaker`]) is in
//! [`store`]. Stores (`breaker-store-memory`, `breaker-store-redis`) keep the state; adapters
//! (`breaker-reqwest`, `breaker-ureq`, `breaker-tower`) wrap HTTP clients.
//!
//! Driving the state machine by hand, with time passed in:
//!
//! ```
//! use std::time::Duration;
//! use breaker_core::{Outcome, Policy, State, Timestamp};
//! use breaker_core::store::{BucketWindow, Circuit};
//!
//! let policy = Policy::builder()
//!     .minimum_failures(2)
//!     .failure_rate(50.0)
//!     .open_for(Duration::from_secs(30))
//!     .build()?;
//! let mut circuit = Circuit::new();
//! let mut window = BucketWindow::new(&policy);
//! let now = Timestamp::from_millis(1_000);
//!
//! for _ in 0..2 {
//!     let permit = circuit.acquire(&policy, now).expect("closed");
//!     circuit.record(&policy, now, &permit, Outcome::Failure.into(), &mut window);
//! }
//! let rejected = circuit.acquire(&policy, now).unwrap_err();
//! assert_eq!(rejected.retry_after(), Duration::from_secs(30));
//!
//! let later = now.saturating_add(Duration::from_secs(30));
//! let probe = circuit.acquire(&policy, later).expect("half-open probe");
//! assert!(probe.is_probe());
//! circuit.record(&policy, later, &probe, Outcome::Success.into(), &mut window);
//! assert_eq!(circuit.snapshot(&policy, later, &window).state, State::Closed);
//! # Ok::<(), breaker_core::PolicyError>(())
//! ```

// Public types that may grow are `#[non_exhaustive]` by rule; the few that are complete by
// definition say so where they are declared.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod breaker;
mod bytes;
mod circuit;
mod error;
mod event;
mod history;
mod local;
mod outcome;
mod policy;
mod remote;
pub mod store;
mod time;
mod window;

pub use breaker::{
    AsyncBreaker, AsyncOperate, BlockingBreaker, BlockingOperate, BreakerHandle, CallError,
    Recorded, call_async, call_blocking,
};
pub use circuit::{
    Action, Override, Permit, PermitKind, RejectReason, Rejected, Snapshot, State, Transition,
    TripCause,
};
pub use error::{StoreError, StoreErrorKind};
pub use event::{Event, EventKind, LaterEvent, Listener, Listeners};
pub use history::{Bucket, HistoryEntry};
pub use outcome::{Counts, Outcome, Report};
pub use policy::{
    MAX_BUCKETS, MAX_DURATION, MAX_REPORTERS, Policy, PolicyBuilder, PolicyError, RetryAfterPolicy,
    StoreFailurePolicy,
};
pub use time::{Clock, ManualClock, MonotonicClock, SystemClock, Timestamp};
