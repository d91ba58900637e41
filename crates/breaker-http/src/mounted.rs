//! A breaker the call flow routes to: mounted on a prefix or made on demand.

use std::sync::Arc;

use breaker_core::{BreakerHandle, Listeners};

use crate::RejectionMode;
use crate::observe::{Observer, Series};

/// A breaker the flow routes to, with its observer and its own rejection mode.
pub(crate) struct Mounted<B> {
    pub(crate) breaker: B,
    pub(crate) observer: Observer,
    pub(crate) rejection: Option<RejectionMode>,
}

pub(crate) type Describe<B> = fn(&B) -> (&str, &Listeners);

/// A breaker's name and listeners, whether it is called blocking or async.
pub(crate) fn parts<B: BreakerHandle>(breaker: &B) -> (&str, &Listeners) {
    (breaker.name(), breaker.listeners())
}

impl<B> Mounted<B> {
    /// `breaker`, reporting to `series` (its mount's) or, if `None`, to series of its own.
    pub(crate) fn new(
        breaker: B,
        describe: Describe<B>,
        rejection: Option<RejectionMode>,
        series: Option<&Arc<Series>>,
    ) -> Mounted<B> {
        let (name, listeners) = describe(&breaker);
        let observer = match series {
            Some(series) => Observer::with_series(name, listeners.clone(), series.clone()),
            None => Observer::new(name, listeners.clone()),
        };
        Mounted {
            breaker,
            observer,
            rejection,
        }
    }
}
