//! How calls count: one call's [`Outcome`], and the [`Counts`] of many that the trip rule
//! reads.

use serde::{Deserialize, Serialize};

/// How one finished call counts.
#[allow(clippy::exhaustive_enums)] // SPEC section 3: every call is one of these three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Counted as a call.
    Success,
    /// Counted as a call and a failure.
    Failure,
    /// Counted nowhere (for example, a request that could not be built).
    Ignored,
}

/// Calls and failures counted in a window.
#[allow(clippy::exhaustive_structs)] // The two counts the trip rule reads, built by users and stores alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counts {
    /// Calls whose outcome was a success or a failure (ignored calls are not counted).
    pub calls: u64,
    /// Calls whose outcome was a failure.
    pub failures: u64,
}

impl Counts {
    /// The failure percentage, or 0 with no calls.
    pub fn failure_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.failures as f64 * 100.0 / self.calls as f64
        }
    }
}
