//! Listener events with HTTP details, `tracing` events and `metrics` counters (SPEC section 7).
//!
//! Listener events are handed to the core's one listener thread ([`Listeners::tell_later`]),
//! the path the store's own events take too, so a slow listener never stalls a call (when it
//! falls 4096 events behind, newer events are dropped and counted in
//! `breaker_listener_events_dropped_total`); a listener that panics is contained.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker_core::{
    Event, EventKind, LaterEvent, Listener, Listeners, Outcome, Permit, PermitKind, Recorded,
    RejectReason, Rejected, State, Transition,
};
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

/// The metric series one breaker reports to: its own (labelled with its name), or its
/// on-demand mount's, shared by every breaker the mount makes.
pub(crate) struct Series {
    successes: Counter,
    failures: Counter,
    ignored: Counter,
    rejections: Counter,
    trips: Counter,
    half_opens: Counter,
    closes: Counter,
    dropped: Counter,
    states: States,
}

/// Where the state a process sees goes.
enum States {
    /// One breaker's `breaker_state` gauge, set to its state.
    Gauge(Gauge),
    /// A mount's `breaker_on_demand_breakers` gauges: how many of its live breakers are in
    /// each state (closed, open, half-open).
    Counts([Gauge; 3]),
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series").finish_non_exhaustive()
    }
}

impl Series {
    fn new(label: &str, states: States) -> Series {
        let label = label.to_owned();
        let calls = |outcome: &'static str| metrics::counter!("breaker_calls_total", "breaker" => label.clone(), "outcome" => outcome);
        let transitions = |to: &'static str| metrics::counter!("breaker_transitions_total", "breaker" => label.clone(), "to" => to);
        Series {
            successes: calls("success"),
            failures: calls("failure"),
            ignored: calls("ignored"),
            rejections: metrics::counter!("breaker_rejections_total", "breaker" => label.clone()),
            trips: transitions("open"),
            half_opens: transitions("half-open"),
            closes: transitions("closed"),
            dropped: metrics::counter!("breaker_listener_events_dropped_total", "breaker" => label),
            states,
        }
    }

    /// The series of one breaker, labelled `breaker = name`.
    pub(crate) fn per_breaker(name: &str) -> Series {
        let state = metrics::gauge!("breaker_state", "breaker" => name.to_owned());
        Series::new(name, States::Gauge(state))
    }

    /// The series of an on-demand mount, labelled `breaker = mount`, shared by its breakers.
    pub(crate) fn per_mount(mount: &str) -> Series {
        let count = |state: &'static str| metrics::gauge!("breaker_on_demand_breakers", "breaker" => mount.to_owned(), "state" => state);
        let counts = [count("closed"), count("open"), count("half-open")];
        Series::new(mount, States::Counts(counts))
    }
}

/// No state seen yet.
const UNSEEN: u8 = u8::MAX;

fn state_index(state: State) -> u8 {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
    }
}

/// The state a decision shows: a rejection because the breaker is open or forced open shows
/// it open, a busy probe slot half-open, a ramp after a close closed; a store failure shows
/// nothing.
fn rejected_state(rejected: &Rejected) -> Option<State> {
    match rejected.reason() {
        RejectReason::Open | RejectReason::ForcedOpen => Some(State::Open),
        RejectReason::ProbesBusy => Some(State::HalfOpen),
        RejectReason::RampingUp => Some(State::Closed),
        _ => None,
    }
}

/// The state a permit shows: a probe half-open, an ordinary call closed (or forced closed);
/// a call let through without the store's word shows nothing.
fn permit_state(permit: &Permit) -> Option<State> {
    match permit.kind() {
        PermitKind::Normal => Some(State::Closed),
        PermitKind::Probe { .. } => Some(State::HalfOpen),
        _ => None,
    }
}

/// What the metrics of one breaker hold: its series, and the state last written to them.
/// The breaker's watcher ([`Listeners::watch`]): transitions its store made itself (a batch's)
/// reach it on the listener thread, so the transition counters and the state gauge count them
/// once, as they count the ones this process's calls reported.
struct Metrics {
    series: Arc<Series>,
    /// The state last written to the series (`state_index`, or `UNSEEN`): the gauges are
    /// written only when it changes, so the hot path reads one atomic.
    seen: AtomicU8,
    /// Held while the state changes, so that the gauges end as `seen` says.
    changing: Mutex<()>,
}

impl Metrics {
    /// The process saw the breaker in `state`: the state metrics follow, written only when
    /// the state differs from the last one written.
    fn saw(&self, state: State) {
        let index = state_index(state);
        if self.seen.load(Ordering::Relaxed) == index {
            return;
        }
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = self.seen.swap(index, Ordering::Relaxed);
        if before == index {
            return;
        }
        match &self.series.states {
            States::Gauge(gauge) => gauge.set(f64::from(index)),
            States::Counts(counts) => {
                if let Some(before) = counts.get(usize::from(before)) {
                    before.decrement(1.0);
                }
                counts[usize::from(index)].increment(1.0);
            }
        }
    }

    /// A transition this process made (by a call or a batch): counted, and seen.
    fn transition(&self, transition: Transition) {
        let (counter, state) = match transition {
            Transition::Tripped { .. } => (&self.series.trips, State::Open),
            Transition::HalfOpened { .. } => (&self.series.half_opens, State::HalfOpen),
            Transition::Closed { .. } => (&self.series.closes, State::Closed),
            _ => return,
        };
        counter.increment(1);
        self.saw(state);
    }
}

impl Listener for Metrics {
    fn on_event(&self, event: &Event<'_>) {
        if let EventKind::Transition(transition) = event.kind {
            self.transition(transition);
        }
    }
}

impl Drop for Metrics {
    /// A breaker made on demand leaves its mount's count when it is dropped.
    fn drop(&mut self) {
        if let States::Counts(counts) = &self.series.states
            && let Some(count) = counts.get(usize::from(*self.seen.get_mut()))
        {
            count.decrement(1.0);
        }
    }
}

/// Reports one breaker's calls: to its listeners (with [`HttpContext`]), `tracing` and
/// `metrics`. Metric handles are taken when it is made, so install a metrics recorder before
/// building clients.
///
/// The state metrics follow every decision the process gets, whoever moved the breaker (this
/// process, another one, an operator): a rejection because it is open shows it open, a probe
/// half-open, an ordinary permit closed. Transition counters count the transitions this
/// process made: its calls report theirs here, and its store's own (a batch's) reach the
/// [`Metrics`] on the listener thread.
pub(crate) struct Observer {
    name: Arc<str>,
    listeners: Listeners,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Observer {
    /// An observer of breaker `name`, telling `listeners`, with series of its own.
    pub(crate) fn new(name: &str, listeners: Listeners) -> Observer {
        Observer::with_series(name, listeners, Arc::new(Series::per_breaker(name)))
    }

    /// An observer of breaker `name`, telling `listeners`, reporting to `series` (its own, or
    /// its mount's), and watching the events the breaker's store makes itself.
    pub(crate) fn with_series(name: &str, listeners: Listeners, series: Arc<Series>) -> Observer {
        let metrics = Arc::new(Metrics {
            series,
            seen: AtomicU8::new(UNSEEN),
            changing: Mutex::new(()),
        });
        let watcher: Arc<dyn Listener> = metrics.clone();
        listeners.watch(name, Arc::downgrade(&watcher));
        Observer {
            name: Arc::from(name),
            listeners,
            metrics,
        }
    }

    /// The breaker's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether anyone listens: callers skip building an [`HttpContext`] otherwise.
    pub(crate) fn wants_context(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// Hands `kind` to the listener thread, counting it when it was dropped.
    fn send(
        &self,
        kind: EventKind<'static>,
        elapsed: Option<Duration>,
        context: &Arc<HttpContext>,
    ) {
        let mut event = LaterEvent::new(&self.name, kind).with_context(context.clone());
        if let Some(elapsed) = elapsed {
            event = event.with_elapsed(elapsed);
        }
        if !self.listeners.tell_later(event) {
            self.metrics.series.dropped.increment(1);
        }
    }

    /// A call was rejected.
    pub(crate) fn rejected(&self, rejected: &Rejected, context: impl FnOnce() -> HttpContext) {
        self.metrics.series.rejections.increment(1);
        if let Some(state) = rejected_state(rejected) {
            self.metrics.saw(state);
        }
        tracing::debug!(breaker = %self.name, reason = %rejected.reason(), retry_after = ?rejected.retry_after(), "call rejected by circuit breaker");
        if self.wants_context() {
            self.send(EventKind::Rejected(*rejected), None, &Arc::new(context()));
        }
    }

    /// A call was admitted under `permit`; giving it may have moved the breaker (open to
    /// half-open).
    pub(crate) fn admitted(&self, permit: &Permit, context: impl FnOnce() -> HttpContext) {
        if let Some(transition) = permit.transition() {
            self.transition(transition);
            if self.wants_context() {
                self.send(
                    EventKind::Transition(transition),
                    None,
                    &Arc::new(context()),
                );
            }
        } else if let Some(state) = permit_state(permit) {
            self.metrics.saw(state);
        }
    }

    /// A call finished and was recorded.
    pub(crate) fn finished(&self, recorded: &Recorded, context: impl FnOnce() -> HttpContext) {
        let series = &self.metrics.series;
        let kind = match recorded.outcome {
            Outcome::Success => {
                series.successes.increment(1);
                Some(EventKind::Success)
            }
            Outcome::Failure => {
                series.failures.increment(1);
                Some(EventKind::Failure)
            }
            Outcome::Ignored => {
                series.ignored.increment(1);
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
                self.send(EventKind::Transition(transition), None, &context);
            }
        }
    }

    /// A transition this process's call made: counted, seen, and traced.
    fn transition(&self, transition: Transition) {
        self.metrics.transition(transition);
        let name = &self.name;
        match transition {
            Transition::Tripped {
                open_for, cause, ..
            } => tracing::warn!(breaker = %name, ?open_for, ?cause, "circuit breaker opened"),
            Transition::HalfOpened { .. } => {
                tracing::info!(breaker = %name, "circuit breaker half-open: probing");
            }
            Transition::Closed { .. } => tracing::info!(breaker = %name, "circuit breaker closed"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod metrics_tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use breaker_core::store::permit;
    use breaker_core::{
        Action, BlockingBreaker, BlockingOperate, Counts, ManualClock, Override, Policy, Timestamp,
        TripCause,
    };
    use breaker_store_memory::{MemoryBreaker, MemoryStore};
    use breaker_store_redis::{BlockingRedisStore, RedisConfig};
    use breaker_testkit::redis_server::RedisServer;

    use crate::{Breakers, MetricLabels, OnDemand, RequestHead, Start};
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

    /// A counter's count, or a gauge's level.
    #[derive(Default)]
    struct Value {
        count: AtomicU64,
        level: Mutex<f64>,
    }

    impl CounterFn for Value {
        fn increment(&self, by: u64) {
            self.count.fetch_add(by, Ordering::SeqCst);
        }
        fn absolute(&self, value: u64) {
            self.count.store(value, Ordering::SeqCst);
        }
    }

    impl GaugeFn for Value {
        fn increment(&self, by: f64) {
            *self.level.lock().unwrap() += by;
        }
        fn decrement(&self, by: f64) {
            *self.level.lock().unwrap() -= by;
        }
        fn set(&self, value: f64) {
            *self.level.lock().unwrap() = value;
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

        /// A counter's count (0 if never registered).
        fn get(&self, name: &str) -> u64 {
            self.values
                .lock()
                .unwrap()
                .get(name)
                .map_or(0, |v| v.count.load(Ordering::SeqCst))
        }

        /// A gauge's level (`None` if never registered).
        fn level(&self, name: &str) -> Option<f64> {
            let values = self.values.lock().unwrap();
            values.get(name).map(|v| *v.level.lock().unwrap())
        }

        /// How many series were registered.
        fn series(&self) -> usize {
            self.values.lock().unwrap().len()
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
        assert_eq!(
            recorder.level("breaker_state{breaker=api}"),
            Some(1.0),
            "open"
        );
        let probe = permit(1, PermitKind::Probe { ticket: 1 }, Timestamp::ZERO, true);
        observer.admitted(&probe, HttpContext::default);
        assert_eq!(
            recorder.level("breaker_state{breaker=api}"),
            Some(2.0),
            "half-open"
        );
        observer.finished(
            &Recorded::new(
                Outcome::Success,
                Duration::ZERO,
                Some(Transition::Closed { generation: 1 }),
            ),
            HttpContext::default,
        );
        assert_eq!(
            recorder.level("breaker_state{breaker=api}"),
            Some(0.0),
            "closed"
        );
        assert_eq!(
            recorder.get("breaker_transitions_total{breaker=api,to=closed}"),
            1
        );
    }

    /// Sends `GET url` through `breakers`, answered with `status` if it is sent: whether it
    /// was sent.
    fn call<B: BlockingBreaker>(breakers: &Breakers<B>, url: &str, status: u16) -> bool {
        let uri: http::Uri = url.parse().unwrap();
        let headers = http::HeaderMap::new();
        match breakers.start_blocking(&RequestHead::new("GET", &uri, &headers)) {
            Start::Send(call) => {
                call.response(status, None).record_blocking();
                true
            }
            Start::Respond(_) | Start::Fail(_) => false,
            Start::Pass => panic!("{url} has a breaker"),
        }
    }

    #[test]
    fn the_state_gauge_follows_changes_made_elsewhere() {
        let recorder = Memory::default();
        metrics::with_local_recorder(&recorder, || {
            let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
            let store = MemoryStore::with_clock(clock.clone());
            let policy = Policy::builder()
                .minimum_failures(1)
                .open_for(Duration::from_secs(10))
                .build()
                .unwrap();
            let ours = store.breaker("api", policy.clone()).unwrap();
            // Another handle on the same breaker: another client, an operator, a batch.
            let theirs = store.breaker("api", policy).unwrap();
            let breakers = Breakers::blocking()
                .mount("http://api.example", ours)
                .unwrap();
            let state = || recorder.level("breaker_state{breaker=api}");
            let url = "http://api.example/x";

            assert!(call(&breakers, url, 200));
            assert_eq!(state(), Some(0.0), "closed");

            BlockingOperate::operate(&theirs, Action::Trip).unwrap();
            assert!(!call(&breakers, url, 200));
            assert_eq!(state(), Some(1.0), "open: tripped by someone else");
            assert_eq!(
                recorder.get("breaker_transitions_total{breaker=api,to=open}"),
                0,
                "not a transition of this process"
            );

            BlockingOperate::operate(&theirs, Action::Reset).unwrap();
            assert!(call(&breakers, url, 200));
            assert_eq!(state(), Some(0.0), "closed again by the operator");

            BlockingOperate::operate(
                &theirs,
                Action::Override {
                    mode: Override::ForcedOpen,
                    duration: None,
                },
            )
            .unwrap();
            assert!(!call(&breakers, url, 200));
            assert_eq!(state(), Some(1.0), "forced open");
            BlockingOperate::operate(
                &theirs,
                Action::Override {
                    mode: Override::Auto,
                    duration: None,
                },
            )
            .unwrap();

            // Someone else's failure trips it; after the open period someone else probes.
            let permit = BlockingBreaker::acquire(&theirs).unwrap();
            BlockingBreaker::record(&theirs, permit, Outcome::Failure.into());
            clock.advance(Duration::from_secs(10));
            let probe = BlockingBreaker::acquire(&theirs).unwrap();
            assert!(probe.is_probe());
            assert!(!call(&breakers, url, 200), "the only probe slot is taken");
            assert_eq!(state(), Some(2.0), "half-open");
            BlockingBreaker::record(&theirs, probe, Outcome::Success.into());
            assert!(call(&breakers, url, 200));
            assert_eq!(state(), Some(0.0), "closed by someone else's probe");
            assert_eq!(
                recorder.get("breaker_transitions_total{breaker=api,to=closed}"),
                0
            );

            // This process's own transitions are still counted, and seen.
            assert!(call(&breakers, url, 500));
            assert_eq!(state(), Some(1.0));
            assert_eq!(
                recorder.get("breaker_transitions_total{breaker=api,to=open}"),
                1
            );
        });
    }

    #[test]
    fn transitions_made_by_a_batch_or_another_process_are_counted_once() {
        let redis = RedisServer::start();
        let policy = Policy::builder()
            .minimum_failures(3)
            .open_for(Duration::from_secs(600))
            .build()
            .unwrap();
        // A process of its own: its store, its client on `url`, its metrics.
        let process = |config: RedisConfig, recorder: &Memory, name: &str, url: &str| {
            let store = BlockingRedisStore::connect(config).unwrap();
            let breaker = store.breaker(name, policy.clone()).unwrap();
            let handle = breaker.clone();
            let breakers = metrics::with_local_recorder(recorder, || {
                Breakers::blocking().mount(url, breaker).unwrap()
            });
            (breakers, handle)
        };
        let url = "http://api.example/x";
        let trips = |recorder: &Memory, name: &str| {
            recorder.get(&format!(
                "breaker_transitions_total{{breaker={name},to=open}}"
            ))
        };

        // Batched: the third failure's batch trips the breaker, and no call reports it.
        let batched = Memory::default();
        let config = RedisConfig::standalone(redis.url()).batch(Duration::from_secs(3_600));
        let (breakers, handle) = process(config, &batched, "batched", "http://api.example");
        for _ in 0..3 {
            assert!(call(&breakers, url, 500));
        }
        handle.flush().unwrap();
        assert_eq!(trips(&batched, "batched"), 1, "the batch's trip is counted");
        assert_eq!(batched.level("breaker_state{breaker=batched}"), Some(1.0));
        assert!(!call(&breakers, url, 200), "open for the whole fleet");
        handle.flush().unwrap();
        assert_eq!(trips(&batched, "batched"), 1, "and counted once");

        // Another process trips a breaker this one shares: its metrics count the trip, this
        // process's state gauge shows it at its next decision, and its counter does not.
        let (ours, theirs) = (Memory::default(), Memory::default());
        let unbatched = || RedisConfig::standalone(redis.url()).max_staleness(Duration::ZERO);
        let (our_client, _ours) = process(unbatched(), &ours, "shared", "http://api.example");
        let (their_client, _theirs) = process(unbatched(), &theirs, "shared", "http://api.example");
        assert!(call(&our_client, url, 200));
        assert_eq!(ours.level("breaker_state{breaker=shared}"), Some(0.0));
        for _ in 0..3 {
            assert!(call(&their_client, url, 500));
        }
        assert!(!call(&our_client, url, 200), "tripped by the other process");
        assert_eq!(ours.level("breaker_state{breaker=shared}"), Some(1.0));
        assert_eq!(trips(&theirs, "shared"), 1);
        assert_eq!(trips(&ours, "shared"), 0, "the other process's transition");
    }

    /// One client calling `hosts` hosts through breakers on demand (at most 100 kept); the
    /// client, which keeps them.
    fn on_demand_hosts(
        recorder: &Memory,
        labels: Option<MetricLabels>,
        hosts: usize,
    ) -> Breakers<MemoryBreaker> {
        metrics::with_local_recorder(recorder, || {
            let store = MemoryStore::new();
            let policy = Policy::builder().minimum_failures(1).build().unwrap();
            let mut on_demand =
                OnDemand::new(move |name: &str| store.breaker(name, policy.clone()))
                    .max_breakers(100);
            if let Some(labels) = labels {
                on_demand = on_demand.name("hosts").metric_labels(labels);
            }
            let breakers = Breakers::blocking().on_demand(on_demand);
            for host in 0..hosts {
                // Every third host fails, and its breaker opens.
                let status = if host % 3 == 0 { 500 } else { 200 };
                assert!(call(&breakers, &format!("http://h{host}.example/"), status));
            }
            assert_eq!(breakers.on_demand_breakers(), hosts.min(100));
            // A failed host's next call is rejected: its breaker is open.
            assert!(!call(
                &breakers,
                &format!("http://h{}.example/", hosts - 1),
                200
            ));
            breakers
        })
    }

    #[test]
    fn on_demand_series_stay_bounded_per_mount_by_default() {
        let recorder = Memory::default();
        let client = on_demand_hosts(&recorder, None, 1_000);
        let series = recorder.series();
        assert!(series <= 11, "{series} series for 1,000 hosts");
        let live = |state: &str| {
            recorder
                .level(&format!(
                    "breaker_on_demand_breakers{{breaker=on-demand,state={state}}}"
                ))
                .unwrap()
        };
        // Hosts 900 to 999 are kept; 34 of them failed (900, 903, ..., 999).
        assert_eq!(
            (live("closed"), live("open"), live("half-open")),
            (66.0, 34.0, 0.0)
        );
        assert_eq!(
            recorder.get("breaker_calls_total{breaker=on-demand,outcome=success}"),
            666
        );
        assert_eq!(
            recorder.get("breaker_transitions_total{breaker=on-demand,to=open}"),
            334
        );
        assert_eq!(
            recorder.get("breaker_rejections_total{breaker=on-demand}"),
            1
        );
        drop(client);
        assert_eq!(
            (live("closed"), live("open"), live("half-open")),
            (0.0, 0.0, 0.0),
            "dropped breakers leave the counts"
        );

        // Named, and per breaker when asked.
        let named = Memory::default();
        let _client = on_demand_hosts(&named, Some(MetricLabels::PerMount), 10);
        assert_eq!(
            named.level("breaker_on_demand_breakers{breaker=hosts,state=open}"),
            Some(4.0),
            "hosts 0, 3, 6 and 9"
        );
        let per_breaker = Memory::default();
        let _client = on_demand_hosts(&per_breaker, Some(MetricLabels::PerBreaker), 1_000);
        assert!(per_breaker.series() >= 9 * 1_000);
        assert_eq!(
            per_breaker.level("breaker_state{breaker=http://h999.example:80}"),
            Some(1.0)
        );
    }
}
