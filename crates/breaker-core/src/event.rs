//! What listeners are told: outcomes, rejections, transitions and store failures.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
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

/// Receives a breaker's events, on the one listener thread, in the order they happened: a slow
/// listener never stalls a call, but delays the events after it, so hand slow work (network,
/// disk) to another thread or task.
pub trait Listener: Send + Sync {
    /// Called once for each event.
    fn on_event(&self, event: &Event<'_>);
}

impl<F: Fn(&Event<'_>) + Send + Sync> Listener for F {
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}

/// A breaker's listeners. Cheap to clone (clones share one set of watchers, see
/// [`Listeners::watch`]); a listener that panics is contained and does not reach the call or
/// the other listeners.
#[derive(Clone, Default)]
pub struct Listeners {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    list: Vec<Arc<dyn Listener>>,
    /// Who also hears of the events a breaker's store makes itself, by breaker name.
    watchers: Mutex<Vec<Watcher>>,
}

/// A watcher of one breaker, by its name.
type Watcher = (Arc<str>, Weak<dyn Listener>);

impl Listeners {
    /// No listeners.
    pub fn new() -> Listeners {
        Listeners::default()
    }

    /// These listeners plus `listener` (with no watchers yet).
    #[must_use]
    pub fn with(&self, listener: impl Listener + 'static) -> Listeners {
        let mut list = self.inner.list.clone();
        list.push(Arc::new(listener));
        Listeners {
            inner: Arc::new(Inner {
                list,
                watchers: Mutex::default(),
            }),
        }
    }

    /// Whether there are none (callers can skip building events).
    pub fn is_empty(&self) -> bool {
        self.inner.list.is_empty()
    }

    /// Tells every listener now, on this thread, containing panics.
    pub fn emit(&self, event: &Event<'_>) {
        for listener in &self.inner.list {
            tell(listener.as_ref(), event);
        }
    }

    /// Tells these listeners `event` later, on the one listener thread, in the order events
    /// were handed to it: a slow or panicking listener never stalls a call. An event the
    /// store made itself ([`LaterEvent::made_by_store`]) also reaches the breaker's watcher.
    /// Returns `false` if the event was dropped because the thread is
    /// [`QUEUE`](Listeners::QUEUE) events behind (or is gone, or could not start).
    pub fn tell_later(&self, event: LaterEvent) -> bool {
        if self.is_empty() && !(event.by_store && self.watched()) {
            return true;
        }
        let Some(sender) = deliverer() else {
            return false;
        };
        let job = Job::Tell {
            listeners: self.clone(),
            event,
        };
        sender.try_send(job).is_ok()
    }

    /// How many events the listener thread holds before newer ones are dropped.
    pub const QUEUE: usize = 4096;

    /// Lets `watcher` hear, on the listener thread, of the events breaker `breaker`'s store
    /// makes itself (a transition made by a batch, a store failure) for as long as it lives:
    /// how a calling layer (the HTTP adapters' metrics) learns of transitions no call of its
    /// own reported. With several live watchers of one breaker, the first one hears.
    pub fn watch(&self, breaker: &str, watcher: Weak<dyn Listener>) {
        let mut watchers = self.watchers();
        watchers.retain(|(_, watcher)| watcher.strong_count() > 0);
        watchers.push((Arc::from(breaker), watcher));
    }

    /// Runs `then` on the listener thread once every event handed to it before has been
    /// told (at once, on this thread, if the thread could not start): for a `flush()` that
    /// returns once listeners know, and for tests.
    pub fn when_told(then: impl FnOnce() + Send + 'static) {
        match deliverer() {
            // Waits for room rather than dropping: whoever asks is prepared to wait.
            Some(sender) => {
                if let Err(failed) = sender.send(Job::Barrier(Box::new(then))) {
                    if let Job::Barrier(then) = failed.0 {
                        then();
                    }
                }
            }
            None => then(),
        }
    }

    fn watchers(&self) -> MutexGuard<'_, Vec<Watcher>> {
        // Nothing panics while holding this lock; a poisoned one still holds a valid list.
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn watched(&self) -> bool {
        self.watchers()
            .iter()
            .any(|(_, watcher)| watcher.strong_count() > 0)
    }

    fn watcher(&self, breaker: &str) -> Option<Arc<dyn Listener>> {
        self.watchers()
            .iter()
            .filter(|(name, _)| &**name == breaker)
            .find_map(|(_, watcher)| watcher.upgrade())
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Listeners({})", self.inner.list.len())
    }
}

fn tell(listener: &dyn Listener, event: &Event<'_>) {
    // A panicking listener is a bug in the listener, and the call it watches must not pay
    // for it; the panic message has already gone to the panic hook.
    let _ = catch_unwind(AssertUnwindSafe(|| listener.on_event(event)));
}

/// An event owned, to be told later on the listener thread ([`Listeners::tell_later`]).
pub struct LaterEvent {
    breaker: Arc<str>,
    kind: OwnedKind,
    elapsed: Option<Duration>,
    context: Option<Arc<dyn Any + Send + Sync>>,
    by_store: bool,
}

enum OwnedKind {
    Kind(EventKind<'static>),
    StoreError(StoreError),
}

impl LaterEvent {
    /// `kind` happened to breaker `breaker`.
    pub fn new(breaker: &Arc<str>, kind: EventKind<'static>) -> LaterEvent {
        LaterEvent {
            breaker: breaker.clone(),
            kind: OwnedKind::Kind(kind),
            elapsed: None,
            context: None,
            by_store: false,
        }
    }

    /// The store of the breaker named `breaker` failed: an event the store made itself.
    pub fn store_error(breaker: &Arc<str>, err: StoreError) -> LaterEvent {
        LaterEvent {
            kind: OwnedKind::StoreError(err),
            by_store: true,
            ..LaterEvent::new(breaker, EventKind::Success)
        }
    }

    /// The same event, made by the store itself rather than reported to a caller (a
    /// transition made by a batch): the breaker's watcher hears of it too.
    #[must_use]
    pub fn made_by_store(mut self) -> LaterEvent {
        self.by_store = true;
        self
    }

    /// The same event with the call's elapsed time.
    #[must_use]
    pub fn with_elapsed(mut self, elapsed: Duration) -> LaterEvent {
        self.elapsed = Some(elapsed);
        self
    }

    /// The same event with context from the calling layer.
    #[must_use]
    pub fn with_context(mut self, context: Arc<dyn Any + Send + Sync>) -> LaterEvent {
        self.context = Some(context);
        self
    }

    fn tell(&self, listeners: &Listeners) {
        let kind = match &self.kind {
            OwnedKind::Kind(kind) => *kind,
            OwnedKind::StoreError(err) => EventKind::StoreError(err),
        };
        let event = Event {
            breaker: &self.breaker,
            kind,
            elapsed: self.elapsed,
            context: self.context.as_deref(),
        };
        listeners.emit(&event);
        if self.by_store
            && let Some(watcher) = listeners.watcher(&self.breaker)
        {
            tell(watcher.as_ref(), &event);
        }
    }
}

impl fmt::Debug for LaterEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaterEvent")
            .field("breaker", &self.breaker)
            .field("by_store", &self.by_store)
            .finish_non_exhaustive()
    }
}

enum Job {
    Tell {
        listeners: Listeners,
        event: LaterEvent,
    },
    /// Runs once every event handed over before it has been told.
    Barrier(Box<dyn FnOnce() + Send>),
}

/// The sender to the one listener thread, started on first use (`None` if no thread could
/// start). The only thread this crate starts: it calls listeners and nothing else.
fn deliverer() -> Option<SyncSender<Job>> {
    static SENDER: OnceLock<Option<Mutex<SyncSender<Job>>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (sender, jobs) = sync_channel::<Job>(Listeners::QUEUE);
            std::thread::Builder::new()
                .name("breaker-listeners".to_owned())
                .spawn(move || {
                    for job in jobs {
                        match job {
                            Job::Tell { listeners, event } => event.tell(&listeners),
                            Job::Barrier(then) => then(),
                        }
                    }
                })
                .ok()
                .map(|_| Mutex::new(sender))
        })
        .as_ref()
        .map(|sender| {
            sender
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone()
        })
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

    /// Waits until the listener thread has told everything handed to it so far.
    fn told() {
        let (done, wait) = std::sync::mpsc::channel();
        Listeners::when_told(move || done.send(()).unwrap());
        wait.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    #[test]
    fn events_told_later_arrive_in_order_and_store_events_reach_the_watcher() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        let listeners = Listeners::new().with(move |event: &Event<'_>| {
            let elapsed = event.elapsed.map(|e| e.as_millis());
            sink.lock()
                .unwrap()
                .push(format!("{:?} {elapsed:?}", event.kind));
        });
        let watched = Arc::new(Mutex::new(Vec::new()));
        let watch_sink = watched.clone();
        let watcher: Arc<dyn Listener> = Arc::new(move |event: &Event<'_>| {
            watch_sink
                .lock()
                .unwrap()
                .push(format!("{}: {:?}", event.breaker, event.kind));
        });
        listeners.clone().watch("api", Arc::downgrade(&watcher));
        let name: Arc<str> = Arc::from("api");
        let transition = Transition::Closed { generation: 2 };

        assert!(listeners.tell_later(
            LaterEvent::new(&name, EventKind::Success).with_elapsed(Duration::from_millis(7))
        ));
        assert!(listeners.tell_later(LaterEvent::new(&name, EventKind::Transition(transition))));
        assert!(
            listeners.tell_later(
                LaterEvent::new(&name, EventKind::Transition(transition)).made_by_store()
            )
        );
        let err = StoreError::new(crate::StoreErrorKind::Timeout, "slow");
        assert!(listeners.tell_later(LaterEvent::store_error(&name, err)));
        told();
        let heard = heard.lock().unwrap().clone();
        assert_eq!(heard.len(), 4);
        assert_eq!(heard[0], "Success Some(7)");
        assert!(heard[3].starts_with("StoreError"), "{heard:?}");
        let watched = watched.lock().unwrap().clone();
        assert_eq!(watched.len(), 2, "only what the store made: {watched:?}");
        assert!(watched[0].starts_with("api: Transition"), "{watched:?}");

        // A watcher that is gone hears nothing, and a breaker nobody listens to costs
        // nothing to tell.
        drop(watcher);
        assert!(
            Listeners::new().tell_later(
                LaterEvent::new(&name, EventKind::Transition(transition)).made_by_store()
            )
        );
    }
}
