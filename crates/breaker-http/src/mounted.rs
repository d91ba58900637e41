//! A breaker the call flow routes to: mounted on a prefix or made on demand.

use std::sync::Arc;

use breaker_core::{AsyncBreaker, Breaker, Listeners};

use crate::RejectionMode;
use crate::observe::{Observer, Series};

/// A breaker the flow routes to, with its observer and its own rejection mode.
pub(crate) struct Mounted<B> {
    pub(crate) breaker: B,
    pub(crate) observer: Observer,
    pub(crate) rejection: Option<RejectionMode>,
}

pub(crate) type Describe<B> = fn(&B) -> (&str, &Listeners);

pub(crate) fn blocking_parts<B: Breaker>(breaker: &B) -> (&str, &Listeners) {
    (Breaker::name(breaker), Breaker::listeners(breaker))
}

pub(crate) fn async_parts<B: AsyncBreaker>(breaker: &B) -> (&str, &Listeners) {
    (
        AsyncBreaker::name(breaker),
        AsyncBreaker::listeners(breaker),
    )
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
