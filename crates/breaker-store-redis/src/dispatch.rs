//! Events the store makes itself (store errors, lost state, repaired fields, transitions made
//! by batches) reach listeners on one background thread, in the order the store made them,
//! never on the caller's thread: a slow or panicking listener stalls no call.
//!
//! When the thread falls [`QUEUE`] events behind, newer events are dropped (and logged), so
//! memory stays bounded. [`delivered`] waits until everything queued before it was told,
//! for `flush()` and tests.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use breaker_core::{Event, EventKind, Listeners, StoreError, Transition};

/// Events waiting for the listener thread, at most.
const QUEUE: usize = 4096;

/// What the store tells listeners.
pub(crate) enum Told {
    Transition(Transition),
    StoreError(StoreError),
    /// The trip rule was met, but by too few reporters: (reporters, needed).
    QuorumShort(u32, u32),
}

enum Job {
    Event {
        listeners: Listeners,
        name: Arc<str>,
        told: Told,
    },
    /// Runs once every event queued before it has been told.
    Barrier(Box<dyn FnOnce() + Send>),
}

fn deliver(jobs: Receiver<Job>) {
    for job in jobs {
        match job {
            Job::Event {
                listeners,
                name,
                told,
            } => {
                let kind = match &told {
                    Told::Transition(transition) => EventKind::Transition(*transition),
                    Told::StoreError(err) => EventKind::StoreError(err),
                    &Told::QuorumShort(reporters, needed) => {
                        EventKind::QuorumShort { reporters, needed }
                    }
                };
                listeners.emit(&Event::new(&name, kind));
            }
            Job::Barrier(then) => then(),
        }
    }
}

/// The sender to the listener thread, started on first use (`None` if no thread could start).
fn sender() -> Option<SyncSender<Job>> {
    static SENDER: OnceLock<Option<Mutex<SyncSender<Job>>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (sender, receiver) = sync_channel(QUEUE);
            std::thread::Builder::new()
                .name("breaker-store-listeners".to_owned())
                .spawn(move || deliver(receiver))
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

/// Queues `told` for breaker `name`'s `listeners`.
pub(crate) fn tell(listeners: &Listeners, name: &Arc<str>, told: Told) {
    if listeners.is_empty() {
        return;
    }
    let Some(sender) = sender() else {
        tracing::warn!(breaker = %name, "no listener thread: a store event was not told");
        return;
    };
    let job = Job::Event {
        listeners: listeners.clone(),
        name: name.clone(),
        told,
    };
    if let Err(TrySendError::Full(_)) = sender.try_send(job) {
        tracing::warn!(breaker = %name, "listeners are {QUEUE} events behind: a store event was dropped");
    }
}

/// Runs `then` on the listener thread once every event queued so far has been told (at
/// once, on this thread, if there is no listener thread).
pub(crate) fn delivered(then: impl FnOnce() + Send + 'static) {
    match sender() {
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

/// Blocks until every event queued so far has been told, or `timeout` has passed.
#[cfg(feature = "blocking")]
pub(crate) fn wait_delivered(timeout: std::time::Duration) {
    let (done, wait) = std::sync::mpsc::channel();
    delivered(move || {
        let _ = done.send(());
    });
    let _ = wait.recv_timeout(timeout);
}

/// Waits until every event queued so far has been told, or `timeout` has passed.
#[cfg(feature = "tokio")]
pub(crate) async fn delivered_async(timeout: std::time::Duration) {
    let (done, wait) = tokio::sync::oneshot::channel();
    delivered(move || {
        let _ = done.send(());
    });
    let _ = tokio::time::timeout(timeout, wait).await;
}
