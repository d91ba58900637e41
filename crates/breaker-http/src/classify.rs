//! How a finished HTTP call counts (SPEC section 3).

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use breaker_core::Outcome;

/// What kind of error a call ended with, as the adapter saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestErrorKind {
    /// Nothing was sent: a bad URL, a body that could not be built.
    NotSent,
    /// The request did not complete: connection refused or reset, DNS, TLS, protocol.
    Transport,
    /// The request timed out.
    Timeout,
}

/// How a call ended, for a [`Classifier`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Attempt<'a> {
    /// A response arrived with this status.
    Response {
        /// The HTTP status code.
        status: u16,
    },
    /// The call failed without a response.
    Error {
        /// What kind of failure.
        kind: RequestErrorKind,
        /// The client's error.
        error: &'a (dyn Error + 'static),
    },
}

impl fmt::Debug for Attempt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attempt::Response { status } => write!(f, "Response({status})"),
            Attempt::Error { kind, error } => write!(f, "Error({kind:?}: {error})"),
        }
    }
}

/// The default: status >= 500 and transport errors (including timeouts) are failures; errors
/// before anything was sent are ignored; everything else is a success.
pub fn default_classify(attempt: &Attempt<'_>) -> Outcome {
    match attempt {
        Attempt::Response { status } if *status >= 500 => Outcome::Failure,
        Attempt::Response { .. } => Outcome::Success,
        Attempt::Error {
            kind: RequestErrorKind::NotSent,
            ..
        } => Outcome::Ignored,
        Attempt::Error { .. } => Outcome::Failure,
    }
}

/// Decides how a call counts; the default is [`default_classify`].
///
/// ```
/// use breaker_core::Outcome;
/// use breaker_http::{Attempt, Classifier};
///
/// // 429 is a failure, 404 counts nowhere, the rest as by default.
/// let classifier = Classifier::new(|attempt: &Attempt<'_>| match attempt {
///     Attempt::Response { status: 429 } => Outcome::Failure,
///     Attempt::Response { status: 404 } => Outcome::Ignored,
///     other => breaker_http::default_classify(other),
/// });
/// assert_eq!(classifier.classify(&Attempt::Response { status: 429 }), Outcome::Failure);
/// ```
#[derive(Clone)]
pub struct Classifier(Arc<dyn Fn(&Attempt<'_>) -> Outcome + Send + Sync>);

impl Classifier {
    /// A classifier from a function.
    pub fn new(classify: impl Fn(&Attempt<'_>) -> Outcome + Send + Sync + 'static) -> Classifier {
        Classifier(Arc::new(classify))
    }

    /// How `attempt` counts.
    pub fn classify(&self, attempt: &Attempt<'_>) -> Outcome {
        (self.0)(attempt)
    }
}

impl Default for Classifier {
    fn default() -> Classifier {
        Classifier::new(default_classify)
    }
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Classifier")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classification() {
        let io = std::io::Error::other("reset");
        let at = |status| default_classify(&Attempt::Response { status });
        assert_eq!(at(200), Outcome::Success);
        assert_eq!(at(404), Outcome::Success);
        assert_eq!(at(499), Outcome::Success);
        assert_eq!(at(500), Outcome::Failure);
        assert_eq!(at(503), Outcome::Failure);
        for (kind, outcome) in [
            (RequestErrorKind::NotSent, Outcome::Ignored),
            (RequestErrorKind::Transport, Outcome::Failure),
            (RequestErrorKind::Timeout, Outcome::Failure),
        ] {
            assert_eq!(
                default_classify(&Attempt::Error { kind, error: &io }),
                outcome
            );
        }
    }
}
