//! The call API: what stores implement and what adapters and custom clients use.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use crate::{
    Action, EventKind, LaterEvent, Listeners, Outcome, Permit, Policy, Rejected, Report, Snapshot,
    StoreError, Transition,
};

/// What recording an outcome did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recorded {
    /// How the call counted, after the policy's slow-call rule.
    pub outcome: Outcome,
    /// Wall-clock time from the permit to the report, by the store's clock.
    pub elapsed: Duration,
    /// The transition this report made, if any (reported once across the fleet).
    pub transition: Option<Transition>,
}

impl Recorded {
    /// What a store reports after recording.
    #[inline]
    pub fn new(outcome: Outcome, elapsed: Duration, transition: Option<Transition>) -> Recorded {
        Recorded {
            outcome,
            elapsed,
            transition,
        }
    }
}

/// A handle on one named breaker, whatever store keeps it and however it is called: what
/// [`BlockingBreaker`], [`AsyncBreaker`], [`BlockingOperate`] and [`AsyncOperate`] share.
pub trait BreakerHandle: Send + Sync {
    /// The breaker's name.
    fn name(&self) -> &str;
    /// The breaker's policy.
    fn policy(&self) -> &Policy;
    /// The breaker's listeners.
    fn listeners(&self) -> &Listeners;
}

/// A named breaker whose state lives in a store, for blocking callers.
///
/// `acquire` before the call, `record` after it: a store answers each with one atomic step.
/// Store failures never surface here: the policy's
/// [`StoreFailurePolicy`](crate::StoreFailurePolicy) decides, and listeners are told.
pub trait BlockingBreaker: BreakerHandle {
    /// Asks to make one call now.
    fn acquire(&self) -> Result<Permit, Rejected>;
    /// Reports how the call `permit` admitted went: its outcome and, if the response asked
    /// every caller to wait (a 429 or 503 with `Retry-After`), the wait. With the policy's
    /// `retry_after = honour` the breaker then opens until the wait ends for every process,
    /// in the same atomic step (see [`Circuit::record`](crate::store::Circuit::record)). A wrapper
    /// forwards the [`Report`] whole, so nothing in it is lost on the way.
    fn record(&self, permit: Permit, report: Report) -> Recorded;
}

/// What an operator does to a breaker, whatever store keeps it: read its state, and apply an
/// [`Action`] (trip, reset, override) for every process sharing the store. Tools (the
/// `breaker` command, a dashboard) work through this trait (or [`AsyncOperate`]) rather than a
/// concrete store.
pub trait BlockingOperate: BreakerHandle {
    /// The breaker's state, as the store holds it.
    fn snapshot(&self) -> Result<Snapshot, StoreError>;
    /// Applies `action` for every process sharing the store, as
    /// [`Circuit::operate`](crate::store::Circuit::operate) does: the transition it made (always one
    /// for a trip; one for a reset unless the breaker was closed already; none for an
    /// override).
    fn operate(&self, action: Action) -> Result<Option<Transition>, StoreError>;
}

/// [`BlockingOperate`] for stores reached asynchronously.
pub trait AsyncOperate: BreakerHandle {
    /// The breaker's state, as the store holds it.
    fn snapshot(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;
    /// Applies `action` for every process sharing the store; see [`BlockingOperate::operate`].
    fn operate(
        &self,
        action: Action,
    ) -> impl Future<Output = Result<Option<Transition>, StoreError>> + Send;
}

/// A named breaker whose state lives in a store, for async callers (runtime-agnostic).
///
/// The same contract as [`BlockingBreaker`].
pub trait AsyncBreaker: BreakerHandle {
    /// Asks to make one call now.
    fn acquire(&self) -> impl Future<Output = Result<Permit, Rejected>> + Send;
    /// Reports how the call `permit` admitted went; see [`BlockingBreaker::record`].
    fn record(&self, permit: Permit, report: Report) -> impl Future<Output = Recorded> + Send;
}

/// A call through [`call_blocking`] or [`call_async`] failed.
#[allow(clippy::exhaustive_enums)] // Rejected before, or failed in, the call: nothing else.
#[derive(Debug, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker rejected the call; it was not made.
    Rejected(Rejected),
    /// The call was made and returned this error.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(rejected) => write!(f, "call rejected: {rejected}"),
            CallError::Inner(err) => err.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(rejected) => Some(rejected),
            CallError::Inner(err) => Some(err),
        }
    }
}

/// How a call's result counts: `Ok` is a success, `Err` a failure.
fn classify_result<T, E>(result: &Result<T, E>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

/// Runs `f` through `breaker`: rejected at once if the breaker says so, otherwise run, and its
/// result (`Ok` a success, `Err` a failure) recorded. Listeners hear of every step, on the
/// listener thread. A client that counts results otherwise (some errors as successes) calls
/// [`BlockingBreaker::acquire`] and [`BlockingBreaker::record`] itself.
///
/// ```
/// use breaker_core::{call_blocking, CallError, Outcome};
/// # use breaker_core::store::permit;
/// # use breaker_core::{BlockingBreaker, BreakerHandle, Listeners, Permit, PermitKind, Policy,
/// #     Recorded, Rejected, Report, Timestamp};
/// # struct AlwaysClosed(Policy, Listeners);
/// # impl BreakerHandle for AlwaysClosed {
/// #     fn name(&self) -> &str { "demo" }
/// #     fn policy(&self) -> &Policy { &self.0 }
/// #     fn listeners(&self) -> &Listeners { &self.1 }
/// # }
/// # impl BlockingBreaker for AlwaysClosed {
/// #     fn acquire(&self) -> Result<Permit, Rejected> {
/// #         Ok(permit(0, PermitKind::Normal, Timestamp::ZERO, false))
/// #     }
/// #     fn record(&self, _: Permit, report: Report) -> Recorded {
/// #         Recorded::new(report.outcome, Default::default(), None)
/// #     }
/// # }
/// # let breaker = AlwaysClosed(Policy::default(), Listeners::new());
/// let answer: Result<u32, CallError<std::io::Error>> = call_blocking(&breaker, || Ok(42));
/// assert_eq!(answer.unwrap(), 42);
/// ```
pub fn call_blocking<B, T, E, F>(breaker: &B, f: F) -> Result<T, CallError<E>>
where
    B: BlockingBreaker + ?Sized,
    F: FnOnce() -> Result<T, E>,
{
    let permit = admitted(breaker, breaker.acquire())?;
    let result = f();
    let recorded = breaker.record(permit, classify_result(&result).into());
    report(breaker, &recorded);
    result.map_err(CallError::Inner)
}

/// Runs the future `call` through `breaker`, as [`call_blocking`] does a closure. Works on any runtime.
pub async fn call_async<B, T, E, Fut>(breaker: &B, call: Fut) -> Result<T, CallError<E>>
where
    B: AsyncBreaker + ?Sized,
    Fut: Future<Output = Result<T, E>>,
{
    let permit = admitted(breaker, breaker.acquire().await)?;
    let result = call.await;
    let recorded = breaker
        .record(permit, classify_result(&result).into())
        .await;
    report(breaker, &recorded);
    result.map_err(CallError::Inner)
}

/// Tells listeners of a rejection, or of the transition that granting a permit made.
fn admitted<B: BreakerHandle + ?Sized, E>(
    breaker: &B,
    decision: Result<Permit, Rejected>,
) -> Result<Permit, CallError<E>> {
    match decision {
        Ok(permit) => {
            if let Some(transition) = permit.transition() {
                tell(
                    breaker,
                    [Some(EventKind::Transition(transition)), None],
                    None,
                );
            }
            Ok(permit)
        }
        Err(rejected) => {
            tell(breaker, [Some(EventKind::Rejected(rejected)), None], None);
            Err(CallError::Rejected(rejected))
        }
    }
}

/// Tells listeners how a recorded call counted and what it changed.
fn report<B: BreakerHandle + ?Sized>(breaker: &B, recorded: &Recorded) {
    let counted = match recorded.outcome {
        Outcome::Success => Some(EventKind::Success),
        Outcome::Failure => Some(EventKind::Failure),
        Outcome::Ignored => None,
    };
    let changed = recorded.transition.map(EventKind::Transition);
    tell(breaker, [counted, changed], Some(recorded.elapsed));
}

/// Hands `kinds` (the first with the call's `elapsed` time) to the listener thread.
fn tell<B: BreakerHandle + ?Sized>(
    breaker: &B,
    kinds: [Option<EventKind<'static>>; 2],
    elapsed: Option<Duration>,
) {
    let listeners = breaker.listeners();
    if listeners.is_empty() {
        return;
    }
    let name: Arc<str> = Arc::from(breaker.name());
    let [first, second] = kinds;
    if let Some(kind) = first {
        let event = LaterEvent::new(&name, kind);
        listeners.tell_later(match elapsed {
            Some(elapsed) => event.with_elapsed(elapsed),
            None => event,
        });
    }
    if let Some(kind) = second {
        listeners.tell_later(LaterEvent::new(&name, kind));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::LocalBreaker;
    use crate::{Event, ManualClock, Timestamp};

    /// A breaker of one process, on a clock that stands still.
    struct Local {
        policy: Policy,
        listeners: Listeners,
        state: Mutex<LocalBreaker>,
        clock: ManualClock,
    }

    impl BreakerHandle for Local {
        fn name(&self) -> &str {
            "api"
        }
        fn policy(&self) -> &Policy {
            &self.policy
        }
        fn listeners(&self) -> &Listeners {
            &self.listeners
        }
    }

    impl BlockingBreaker for Local {
        fn acquire(&self) -> Result<Permit, Rejected> {
            let now = crate::Clock::now(&self.clock);
            self.state.lock().unwrap().acquire(&self.policy, now)
        }
        fn record(&self, permit: Permit, report: Report) -> Recorded {
            let now = crate::Clock::now(&self.clock);
            self.state
                .lock()
                .unwrap()
                .record(&self.policy, now, permit, report)
        }
    }

    #[test]
    fn call_tells_listeners_every_step_on_the_listener_thread() {
        let heard = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        let caller = std::thread::current().id();
        let listeners = Listeners::new().with(move |event: &Event<'_>| {
            assert_ne!(
                std::thread::current().id(),
                caller,
                "off the caller's thread"
            );
            let kind = match event.kind {
                EventKind::Success => "success",
                EventKind::Failure => "failure",
                EventKind::Rejected(_) => "rejected",
                EventKind::Transition(_) => "transition",
                _ => "other",
            };
            sink.lock().unwrap().push(kind);
        });
        let policy = Policy::builder().minimum_failures(1).build().unwrap();
        let breaker = Local {
            state: Mutex::new(LocalBreaker::new(&policy)),
            policy,
            listeners,
            clock: ManualClock::new(Timestamp::from_millis(1_000)),
        };
        assert_eq!(call_blocking(&breaker, || Ok::<_, ()>(1)), Ok(1));
        assert_eq!(
            call_blocking(&breaker, || Err::<(), _>(())),
            Err(CallError::Inner(()))
        );
        assert!(matches!(
            call_blocking(&breaker, || Ok::<_, ()>(1)),
            Err(CallError::Rejected(_))
        ));
        let (done, told) = std::sync::mpsc::channel();
        Listeners::when_told(move || done.send(()).unwrap());
        told.recv().unwrap();
        assert_eq!(
            *heard.lock().unwrap(),
            ["success", "failure", "transition", "rejected"]
        );
    }
}
