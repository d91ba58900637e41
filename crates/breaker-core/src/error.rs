//! The error a store reports; it never names the store's client library in its type.

use std::error::Error;
use std::fmt;

/// What kind of store failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached, or dropped the connection.
    Unavailable,
    /// The store did not answer within its timeout.
    Timeout,
    /// The store answered with data it should not hold (garbage in a breaker's keys).
    Corrupt,
    /// The store's configuration is wrong (bad URL, bad credentials).
    Config,
    /// No breaker of that name is known to the store.
    NotFound,
    /// The breaker's state was lost by the store (a restart with no persistence, a flushed
    /// database, an eviction or an expiry) and started afresh; the store's new state is used.
    StateLost,
}

/// A store failed. The message never contains credentials.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl StoreError {
    /// An error of `kind` with a message that says what failed.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    #[must_use]
    pub fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> StoreError {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}
