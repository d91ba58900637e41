//! Listener events with HTTP details, `tracing` events and `metrics` counters (SPEC section 7).
//!
//! Listener events are handed to one background thread, so a slow listener never stalls a
//! call (when it falls 4096 events behind, newer events are dropped and counted in
//! `breaker_listener_events_dropped_total`); a listener that panics is contained by
//! [`Listeners::emit`].

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use breaker_core::{Event, EventKind, Listeners, Outcome, Recorded, Rejected, State, Transition};
use metrics::{Counter, Gauge};

use crate::redact::Redaction;

/// What listeners learn of the HTTP call behind an event, as its `context`
/// (`event.context.and_then(|c| c.downcast_ref::<HttpContext>())`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpContext {
    /// The request method.
    pub method: String,
    /// The request URL, without `user:password@`, and with the values of secret query
    /// parameters (`token`, `key`, `password`, `secret`, `signature`, also as the end of a
    /// longer name such as `api_key`, and the client's own) redacted unless the client
    /// reveals secrets.
    pub url: String,
    /// The response status, if a response arrived.
    pub status: Option<u16>,
    /// The error, if the call failed without a response.
    pub error: Option<String>,
    /// Request headers (secrets such as `Authorization`, cookies, `X-Api-Key` and the
    /// client's own redacted unless the client reveals them).
    pub request_headers: Vec<(String, String)>,
    /// Response headers (secrets redacted unless the client reveals them).
    pub response_headers: Vec<(String, String)>,
    /// The first bytes of the response body of a failed call, when the client captures them.
    pub body_prefix: Option<Vec<u8>>,
}

impl HttpContext {
    /// The request's side: method, URL and headers, with secrets redacted as `redaction` says.
    pub(crate) fn for_request(
        method: &str,
        url: &str,
        headers: &http::HeaderMap,
        redaction: &Redaction,
    ) -> HttpContext {
        HttpContext {
            method: method.to_owned(),
            url: redaction.url(url),
            request_headers: redaction.headers(headers),
            ..HttpContext::default()
        }
    }

    /// `request` (if one was taken) with the call's status or error.
    pub(crate) fn ended(
        request: Option<&HttpContext>,
        status: Option<u16>,
        error: Option<String>,
    ) -> HttpContext {
        let mut context = request.cloned().unwrap_or_default();
        context.status = status;
        context.error = error;
        context
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Success,
    Failure,
    Rejected(Rejected),
    Transition(Transition),
}

struct Job {
    listeners: Listeners,
    name: Arc<str>,
    kind: Kind,
    elapsed: Option<Duration>,
    context: Arc<HttpContext>,
}

fn deliver(jobs: Receiver<Job>) {
    for job in jobs {
        let kind = match job.kind {
            Kind::Success => EventKind::Success,
            Kind::Failure => EventKind::Failure,
            Kind::Rejected(rejected) => EventKind::Rejected(rejected),
            Kind::Transition(transition) => EventKind::Transition(transition),
        };
        let mut event = Event::new(&job.name, kind).with_context(&*job.context);
        event.elapsed = job.elapsed;
        job.listeners.emit(&event);
    }
}

/// The sender to the listener thread, started on first use.
fn dispatcher() -> Option<SyncSender<Job>> {
    static SENDER: OnceLock<Option<Mutex<SyncSender<Job>>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (sender, receiver) = sync_channel(4096);
            std::thread::Builder::new()
                .name("breaker-listeners".to_owned())
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

/// Reports one breaker's calls: to its listeners (with [`HttpContext`]), `tracing` and
/// `metrics`. Metric handles are taken when it is made, so install a metrics recorder before
/// building clients.
pub(crate) struct Observer {
    name: Arc<str>,
    listeners: Listeners,
    sender: Option<SyncSender<Job>>,
    successes: Counter,
    failures: Counter,
    ignored: Counter,
    rejections: Counter,
    trips: Counter,
    half_opens: Counter,
    closes: Counter,
    dropped: Counter,
    state: Gauge,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn state_value(state: State) -> f64 {
    match state {
        State::Closed => 0.0,
        State::Open => 1.0,
        State::HalfOpen => 2.0,
    }
}

impl Observer {
    /// An observer of breaker `name`, telling `listeners`.
    pub(crate) fn new(name: &str, listeners: Listeners) -> Observer {
        let label = name.to_owned();
        let calls = |outcome: &'static str| metrics::counter!("breaker_calls_total", "breaker" => label.clone(), "outcome" => outcome);
        let transitions = |to: &'static str| metrics::counter!("breaker_transitions_total", "breaker" => label.clone(), "to" => to);
        Observer {
            name: Arc::from(name),
            sender: if listeners.is_empty() {
                None
            } else {
                dispatcher()
            },
            listeners,
            successes: calls("success"),
            failures: calls("failure"),
            ignored: calls("ignored"),
            rejections: metrics::counter!("breaker_rejections_total", "breaker" => label.clone()),
            trips: transitions("open"),
            half_opens: transitions("half-open"),
            closes: transitions("closed"),
            dropped: metrics::counter!("breaker_listener_events_dropped_total", "breaker" => label.clone()),
            state: metrics::gauge!("breaker_state", "breaker" => label),
        }
    }

    /// The breaker's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether anyone listens: callers skip building an [`HttpContext`] otherwise.
    pub(crate) fn wants_context(&self) -> bool {
        self.sender.is_some()
    }

    fn send(&self, kind: Kind, elapsed: Option<Duration>, context: &Arc<HttpContext>) {
        let Some(sender) = &self.sender else {
            return;
        };
        let job = Job {
            listeners: self.listeners.clone(),
            name: self.name.clone(),
            kind,
            elapsed,
            context: context.clone(),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sender.try_send(job) {
            self.dropped.increment(1);
        }
    }

    /// A call was rejected.
    pub(crate) fn rejected(&self, rejected: &Rejected, context: impl FnOnce() -> HttpContext) {
        self.rejections.increment(1);
        tracing::debug!(breaker = %self.name, reason = %rejected.reason(), retry_after = ?rejected.retry_after(), "call rejected by circuit breaker");
        if self.wants_context() {
            self.send(Kind::Rejected(*rejected), None, &Arc::new(context()));
        }
    }

    /// Giving a permit moved the breaker (open to half-open).
    pub(crate) fn admitted(
        &self,
        transition: Option<Transition>,
        context: impl FnOnce() -> HttpContext,
    ) {
        if let Some(transition) = transition {
            self.transition(transition);
            if self.wants_context() {
                self.send(Kind::Transition(transition), None, &Arc::new(context()));
            }
        }
    }

    /// A call finished and was recorded.
    pub(crate) fn finished(&self, recorded: &Recorded, context: impl FnOnce() -> HttpContext) {
        let kind = match recorded.outcome {
            Outcome::Success => {
                self.successes.increment(1);
                Some(Kind::Success)
            }
            Outcome::Failure => {
                self.failures.increment(1);
                Some(Kind::Failure)
            }
            Outcome::Ignored => {
                self.ignored.increment(1);
                None
            }
        };
        if let Some(transition) = recorded.transition {
            self.transition(transition);
        }
        if self.wants_context() {
            let context = Arc::new(context());
            if let Some(kind) = kind {
                self.send(kind, Some(recorded.elapsed), &context);
            }
            if let Some(transition) = recorded.transition {
                self.send(Kind::Transition(transition), None, &context);
            }
        }
    }

    fn transition(&self, transition: Transition) {
        let name = &self.name;
        match transition {
            Transition::Tripped {
                open_for, cause, ..
            } => {
                self.trips.increment(1);
                self.state.set(state_value(State::Open));
                tracing::warn!(breaker = %name, ?open_for, ?cause, "circuit breaker opened");
            }
            Transition::HalfOpened { .. } => {
                self.half_opens.increment(1);
                self.state.set(state_value(State::HalfOpen));
                tracing::info!(breaker = %name, "circuit breaker half-open: probing");
            }
            Transition::Closed { .. } => {
                self.closes.increment(1);
                self.state.set(state_value(State::Closed));
                tracing::info!(breaker = %name, "circuit breaker closed");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod metrics_tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use breaker_core::{Counts, RejectReason, Timestamp, TripCause};
    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    use super::*;

    /// Keeps every counter and gauge by its key, written out with labels.
    #[derive(Default)]
    struct Memory {
        values: Mutex<HashMap<String, Arc<Value>>>,
    }

    #[derive(Default)]
    struct Value(AtomicU64);

    impl CounterFn for Value {
        fn increment(&self, by: u64) {
            self.0.fetch_add(by, Ordering::SeqCst);
        }
        fn absolute(&self, value: u64) {
            self.0.store(value, Ordering::SeqCst);
        }
    }

    impl GaugeFn for Value {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, value: f64) {
            self.0.store(value as u64, Ordering::SeqCst);
        }
    }

    impl Memory {
        fn value(&self, key: &Key) -> Arc<Value> {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            self.values.lock().unwrap().entry(name).or_default().clone()
        }

        fn get(&self, name: &str) -> u64 {
            self.values
                .lock()
                .unwrap()
                .get(name)
                .map_or(0, |v| v.0.load(Ordering::SeqCst))
        }
    }

    impl Recorder for Memory {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.value(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.value(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn counters_and_the_state_gauge() {
        let recorder = Memory::default();
        let observer =
            metrics::with_local_recorder(&recorder, || Observer::new("api", Listeners::new()));
        let tripped = Transition::Tripped {
            generation: 1,
            open_until: Timestamp::from_millis(10),
            open_for: Duration::from_secs(1),
            cause: TripCause::Threshold(Counts {
                calls: 1,
                failures: 1,
            }),
        };
        observer.finished(
            &Recorded::new(Outcome::Success, Duration::ZERO, None),
            HttpContext::default,
        );
        observer.finished(
            &Recorded::new(Outcome::Failure, Duration::ZERO, Some(tripped)),
            HttpContext::default,
        );
        observer.finished(
            &Recorded::new(Outcome::Ignored, Duration::ZERO, None),
            HttpContext::default,
        );
        observer.rejected(
            &Rejected::new(RejectReason::Open, Duration::from_secs(1)),
            HttpContext::default,
        );
        assert_eq!(
            recorder.get("breaker_calls_total{breaker=api,outcome=success}"),
            1
        );
        assert_eq!(
            recorder.get("breaker_calls_total{breaker=api,outcome=failure}"),
            1
        );
        assert_eq!(
            recorder.get("breaker_calls_total{breaker=api,outcome=ignored}"),
            1
        );
        assert_eq!(recorder.get("breaker_rejections_total{breaker=api}"), 1);
        assert_eq!(
            recorder.get("breaker_transitions_total{breaker=api,to=open}"),
            1
        );
        assert_eq!(recorder.get("breaker_state{breaker=api}"), 1, "open");
        observer.admitted(
            Some(Transition::HalfOpened { generation: 1 }),
            HttpContext::default,
        );
        assert_eq!(recorder.get("breaker_state{breaker=api}"), 2, "half-open");
        observer.finished(
            &Recorded::new(
                Outcome::Success,
                Duration::ZERO,
                Some(Transition::Closed { generation: 1 }),
            ),
            HttpContext::default,
        );
        assert_eq!(recorder.get("breaker_state{breaker=api}"), 0, "closed");
        assert_eq!(
            recorder.get("breaker_transitions_total{breaker=api,to=closed}"),
            1
        );
    }
}
