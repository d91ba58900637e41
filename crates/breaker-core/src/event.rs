//! What listeners are told: outcomes, rejections, transitions and store failures.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::{Rejected, StoreError, Transition};

/// What happened.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum EventKind<'a> {
    /// A call finished and counted as a success.
    Success,
    /// A call finished and counted as a failure.
    Failure,
    /// A call was rejected without being made.
    Rejected(Rejected),
    /// The breaker changed state (trip, half-open, reset).
    Transition(Transition),
    /// The store failed; the breaker's store-failure policy decided the call.
    StoreError(&'a StoreError),
    /// The window's failures meet the trip rule, but they came from fewer distinct reporters
    /// (processes) than the policy's `minimum_reporters`: the fleet's breaker stays closed.
    QuorumShort {
        /// Distinct reporters of the window's failures.
        reporters: u32,
        /// The policy's `minimum_reporters`.
        needed: u32,
    },
}

/// One event, as listeners receive it.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Event<'a> {
    /// The breaker's name.
    pub breaker: &'a str,
    /// What happened.
    pub kind: EventKind<'a>,
    /// Wall-clock duration of the call, where a call was made.
    pub elapsed: Option<Duration>,
    /// Details added by the layer that made the call (an HTTP adapter adds the request and
    /// response); downcast it to the type that layer documents.
    pub context: Option<&'a (dyn Any + Send + Sync)>,
}

impl<'a> Event<'a> {
    /// An event with no elapsed time and no context.
    pub fn new(breaker: &'a str, kind: EventKind<'a>) -> Event<'a> {
        Event {
            breaker,
            kind,
            elapsed: None,
            context: None,
        }
    }

    /// The same event with the call's elapsed time.
    pub fn with_elapsed(mut self, elapsed: Duration) -> Event<'a> {
        self.elapsed = Some(elapsed);
        self
    }

    /// The same event with context from the calling layer.
    pub fn with_context(mut self, context: &'a (dyn Any + Send + Sync)) -> Event<'a> {
        self.context = Some(context);
        self
    }
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("breaker", &self.breaker)
            .field("kind", &self.kind)
            .field("elapsed", &self.elapsed)
            .field("context", &self.context.map(|_| ".."))
            .finish()
    }
}

/// Receives a breaker's events. Called on the call path: keep it quick, and hand slow work
/// (network, disk) to another thread or task.
pub trait Listener: Send + Sync {
    /// Called once for each event.
    fn on_event(&self, event: &Event<'_>);
}

impl<F: Fn(&Event<'_>) + Send + Sync> Listener for F {
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}

/// A breaker's listeners. Cheap to clone; a listener that panics is contained and does not
/// reach the call or the other listeners.
#[derive(Clone, Default)]
pub struct Listeners {
    list: Arc<[Arc<dyn Listener>]>,
}

impl Listeners {
    /// No listeners.
    pub fn new() -> Listeners {
        Listeners::default()
    }

    /// These listeners plus `listener`.
    #[must_use]
    pub fn with(&self, listener: impl Listener + 'static) -> Listeners {
        let mut list: Vec<Arc<dyn Listener>> = self.list.iter().cloned().collect();
        list.push(Arc::new(listener));
        Listeners { list: list.into() }
    }

    /// Whether there are none (callers can skip building events).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Tells every listener, containing panics.
    pub fn emit(&self, event: &Event<'_>) {
        for listener in self.list.iter() {
            // A panicking listener is a bug in the listener, and the call it watches must not
            // pay for it; the panic message has already gone to the panic hook.
            let _ = catch_unwind(AssertUnwindSafe(|| listener.on_event(event)));
        }
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Listeners({})", self.list.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_panicking_listener_is_contained() {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let listeners = Listeners::new()
            .with(|_: &Event<'_>| panic!("listener bug"))
            .with(move |event: &Event<'_>| {
                assert_eq!(event.breaker, "api");
                counter.fetch_add(1, Ordering::SeqCst);
            });
        listeners.emit(&Event::new("api", EventKind::Success));
        listeners.emit(&Event::new("api", EventKind::Failure));
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }
}
