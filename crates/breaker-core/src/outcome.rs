//! How calls count: one call's [`Outcome`], the [`Report`] a store records of it, and the
//! [`Counts`] of many that the trip rule reads.

use std::time::Duration;

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

/// What a caller reports of one finished call: its [`Outcome`], and how long the backend asked
/// every caller to wait, if it did (a 429 or 503 with `Retry-After`). What
/// [`BlockingBreaker::record`](crate::BlockingBreaker::record) takes, and
/// [`Circuit::record`](crate::store::Circuit::record) applies.
///
/// ```
/// use std::time::Duration;
/// use breaker_core::{Outcome, Report};
///
/// let plain: Report = Outcome::Success.into();
/// assert_eq!(plain.retry_after, None);
/// let told = Report::new(Outcome::Failure).with_retry_after(Duration::from_secs(30));
/// assert_eq!(told.retry_after, Some(Duration::from_secs(30)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Report {
    /// How the call counts.
    pub outcome: Outcome,
    /// How long the backend asked every caller to wait: with the policy's
    /// `retry_after = honour`, the breaker opens until then for every process.
    pub retry_after: Option<Duration>,
}

impl Report {
    /// A call that counts as `outcome`, with no wait asked.
    #[inline]
    pub fn new(outcome: Outcome) -> Report {
        Report {
            outcome,
            retry_after: None,
        }
    }

    /// This report, of a response that asked every caller to wait `wait`.
    #[inline]
    #[must_use]
    pub fn with_retry_after(self, wait: Duration) -> Report {
        Report {
            retry_after: Some(wait),
            ..self
        }
    }

    /// Whether the report holds nothing but its outcome (no wait asked): a store may then
    /// count the outcome alone where [`Circuit::free_generation`](crate::store::Circuit::free_generation)
    /// says no decision is needed. A field added to the report says here whether it needs
    /// one.
    #[inline]
    pub fn is_outcome_only(&self) -> bool {
        self.retry_after.is_none()
    }

    /// This report, counted as `outcome` instead: what a store's slow-call rule makes of it.
    #[inline]
    #[must_use]
    pub fn with_outcome(self, outcome: Outcome) -> Report {
        Report { outcome, ..self }
    }
}

impl From<Outcome> for Report {
    #[inline]
    fn from(outcome: Outcome) -> Report {
        Report::new(outcome)
    }
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
