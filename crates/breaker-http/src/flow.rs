//! One HTTP call flow, written once, without IO: which breaker a request goes through, what a
//! rejected call returns, how a finished call counts and who is told. Adapters only convert
//! requests and responses, read a body prefix and map their errors; the store calls (blocking
//! or async) are the only steps that differ between them, and they are here too.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Instant, SystemTime};

use breaker_core::{
    AsyncBreaker, BlockingBreaker, Outcome, Permit, Recorded, Rejected, Report, StoreError,
};

use crate::mounted::{Describe, Mounted, parts};
use crate::observe::Observer;
use crate::on_demand::{Factory, Registry};
use crate::redact::Redaction;
use crate::route::Routes;
use crate::{
    Attempt, BreakerOpen, Classifier, HttpContext, MountError, OnDemand, RejectionMode,
    RequestErrorKind, RequestHead,
};

/// What rejected calls return, how calls count, what listeners see.
#[derive(Clone, Debug, Default)]
struct Options {
    rejection: RejectionMode,
    classifier: Classifier,
    capture_body: Option<usize>,
    redaction: Arc<Redaction>,
}

/// The breakers of one client and how it uses them: breakers mounted on URL prefixes (the
/// longest match decides), breakers on demand for the rest, the rejection mode, the
/// classifier, body capture and secrets. Every adapter's client type wraps one and offers
/// these same builder methods; the call flow's steps are methods of it too.
///
/// Cheap to clone: clones share the breakers and the breakers made on demand.
pub struct Breakers<B> {
    describe: Describe<B>,
    routes: Routes<Arc<Mounted<B>>>,
    on_demand: Option<Arc<Registry<B>>>,
    options: Options,
}

impl<B> Clone for Breakers<B> {
    fn clone(&self) -> Self {
        Breakers {
            describe: self.describe,
            routes: self.routes.clone(),
            on_demand: self.on_demand.clone(),
            options: self.options.clone(),
        }
    }
}

impl<B> fmt::Debug for Breakers<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breakers")
            .field("options", &self.options)
            .field("on_demand", &self.on_demand.as_ref().map(|r| &r.config))
            .finish_non_exhaustive()
    }
}

impl<B: BlockingBreaker> Breakers<B> {
    /// No breakers yet, for a blocking client: every request passes through.
    pub fn blocking() -> Breakers<B> {
        Breakers::with(parts)
    }
}

impl<B: AsyncBreaker> Breakers<B> {
    /// No breakers yet, for an async client: every request passes through.
    pub fn asynchronous() -> Breakers<B> {
        Breakers::with(parts)
    }
}

impl<B> Breakers<B> {
    fn with(describe: Describe<B>) -> Breakers<B> {
        Breakers {
            describe,
            routes: Routes::new(),
            on_demand: None,
            options: Options::default(),
        }
    }

    /// Mounts `breaker` on `prefix` (`scheme://host[:port][/path]`). Its listeners receive
    /// every event with an [`HttpContext`].
    pub fn mount(self, prefix: &str, breaker: B) -> Result<Breakers<B>, MountError> {
        self.mount_with(prefix, breaker, None)
    }

    /// Mounts `breaker` on `prefix`, choosing what its rejected calls return (`None`: the
    /// client's [`rejection_mode`](Self::rejection_mode)).
    pub fn mount_with(
        mut self,
        prefix: &str,
        breaker: B,
        rejection: Option<RejectionMode>,
    ) -> Result<Breakers<B>, MountError> {
        let mounted = Mounted::new(breaker, self.describe, rejection, None);
        self.routes = self.routes.mount(prefix, Arc::new(mounted))?;
        Ok(self)
    }

    /// Makes a breaker on first use for each request no mount matches (per authority by
    /// default), as [`OnDemand`] says.
    #[must_use]
    pub fn on_demand(mut self, on_demand: OnDemand<B>) -> Breakers<B> {
        self.on_demand = Some(Arc::new(Registry::new(on_demand)));
        self
    }

    /// What rejected calls return (default: the synthetic response).
    #[must_use]
    pub fn rejection_mode(mut self, mode: RejectionMode) -> Breakers<B> {
        self.options.rejection = mode;
        self
    }

    /// How finished calls count (default: 5xx and transport errors fail).
    #[must_use]
    pub fn classifier(mut self, classifier: Classifier) -> Breakers<B> {
        self.options.classifier = classifier;
        self
    }

    /// Gives listeners the first `bytes` of a failed call's response body; the caller still
    /// receives all of it.
    #[must_use]
    pub fn capture_body(mut self, bytes: usize) -> Breakers<B> {
        self.options.capture_body = Some(bytes);
        self
    }

    /// Shows secrets to listeners instead of redacting them: secret headers and query
    /// parameters (see [`redact_header`](Self::redact_header) and
    /// [`redact_query_param`](Self::redact_query_param)). A URL's `user:password@` is never
    /// shown.
    #[must_use]
    pub fn reveal_secrets(mut self, reveal: bool) -> Breakers<B> {
        Arc::make_mut(&mut self.options.redaction).reveal(reveal);
        self
    }

    /// Also redacts header `name` (any case) in what listeners see. Always redacted:
    /// `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`, `X-Api-Key`, `Api-Key`
    /// and `X-Auth-Token`.
    #[must_use]
    pub fn redact_header(mut self, name: &str) -> Breakers<B> {
        Arc::make_mut(&mut self.options.redaction).add_header(name);
        self
    }

    /// Also redacts the value of query parameter `name` in the URLs listeners see. A name
    /// matches in any case, whole or as the end of a longer name after `_`, `-` or `.`
    /// (`pin` also redacts `card_pin`). Always redacted: `token`, `key`, `password`,
    /// `secret` and `signature`, so also `access_token`, `api_key`, `client_secret` and
    /// `X-Amz-Signature`; the same holds in a URL's fragment.
    #[must_use]
    pub fn redact_query_param(mut self, name: &str) -> Breakers<B> {
        Arc::make_mut(&mut self.options.redaction).add_param(name);
        self
    }

    /// How many breakers made on demand this client keeps now.
    pub fn on_demand_breakers(&self) -> usize {
        self.on_demand.as_ref().map_or(0, |registry| registry.len())
    }

    /// Step one, no IO: the breaker `request` goes through, found or to be made, at `now`
    /// (asked only for breakers on demand).
    fn route(&self, request: &RequestHead<'_>, now: impl FnOnce() -> Instant) -> Route<'_, B> {
        if let Some(mounted) =
            self.routes
                .route(request.scheme, request.host, request.port, request.path)
        {
            return Route::Found(mounted.clone());
        }
        let Some(registry) = &self.on_demand else {
            return Route::Pass;
        };
        let Some(key) = registry.key(request) else {
            return Route::Pass;
        };
        match registry.get(&key, now()) {
            Some(mounted) => Route::Found(mounted),
            None => Route::Make(Make {
                key,
                registry,
                describe: self.describe,
            }),
        }
    }

    /// Step two, no IO: given the breaker's answer, what to do with the request; `release`
    /// gives back a probe permit whose call is dropped before it is recorded.
    fn decide(
        &self,
        mounted: Arc<Mounted<B>>,
        decision: Result<Permit, Rejected>,
        request: &RequestHead<'_>,
        release: Release<B>,
    ) -> Start<'_, B> {
        let observer = &mounted.observer;
        // Built only when someone listens; the request is gone once sent.
        let context = observer
            .wants_context()
            .then(|| Box::new(request.context(&self.options.redaction)));
        let with = || HttpContext::ended(context.as_deref(), None, None);
        match decision {
            Ok(permit) => {
                observer.admitted(&permit, with);
                Start::Send(Call {
                    breakers: self,
                    held: Held {
                        mounted,
                        permit: Some(permit),
                        release,
                    },
                    context,
                })
            }
            Err(rejected) => {
                observer.rejected(&rejected, with);
                let rejection = BreakerOpen::new(observer.name(), rejected.retry_after());
                match mounted.rejection.unwrap_or(self.options.rejection) {
                    RejectionMode::Error => Start::Fail(rejection),
                    _ => Start::Respond(rejection.response()),
                }
            }
        }
    }
}

impl<B: BlockingBreaker> Breakers<B> {
    /// Before a request, for a blocking client: routes it, makes its breaker if it is made on
    /// demand, and asks the breaker.
    pub fn start_blocking(&self, request: &RequestHead<'_>) -> Start<'_, B> {
        let mounted = match self.route(request, Instant::now) {
            Route::Pass => return Start::Pass,
            Route::Found(mounted) => mounted,
            Route::Make(make) => {
                let made = match &make.registry.config.factory {
                    Factory::Blocking(factory) => factory(&make.key),
                    Factory::Async(_) => Err(StoreError::new(
                        breaker_core::StoreErrorKind::Config,
                        "a blocking client needs a blocking factory (OnDemand::new)",
                    )),
                };
                match make.made(made, Instant::now()) {
                    Some(mounted) => mounted,
                    None => return Start::Pass,
                }
            }
        };
        let decision = mounted.breaker.acquire();
        self.decide(mounted, decision, request, release_blocking)
    }
}

impl<B: AsyncBreaker + 'static> Breakers<B> {
    /// Before a request, for an async client: routes it, makes its breaker if it is made on
    /// demand, and asks the breaker.
    ///
    /// If the call's future is dropped while it holds a half-open probe (a timeout around
    /// the client, a cancelled request), the probe's slot is given back at once, as an
    /// ignored outcome, rather than when its lease ends: on the current tokio runtime, or
    /// at once for a store that answers without waiting (the memory store). With no tokio
    /// runtime at hand, a store that must wait (Redis) frees the slot when the lease ends.
    pub async fn start_async(&self, request: &RequestHead<'_>) -> Start<'_, B> {
        let mounted = match self.route(request, Instant::now) {
            Route::Pass => return Start::Pass,
            Route::Found(mounted) => mounted,
            Route::Make(make) => {
                let made = match make.registry.config.factory.clone() {
                    Factory::Blocking(factory) => factory(&make.key),
                    Factory::Async(factory) => factory(make.key.clone()).await,
                };
                match make.made(made, Instant::now()) {
                    Some(mounted) => mounted,
                    None => return Start::Pass,
                }
            }
        };
        let decision = mounted.breaker.acquire().await;
        self.decide(mounted, decision, request, release_async)
    }
}

/// Gives back a probe permit whose call was dropped before it was recorded.
type Release<B> = fn(Arc<Mounted<B>>, Permit);

/// The permit of an admitted call until it goes to the store. Dropped with it (the call's
/// future was dropped: a timeout, a cancelled request), a probe permit is given back as an
/// ignored outcome, which frees its slot for the fleet without counting; an ordinary permit
/// needs nothing sent.
struct Held<B> {
    mounted: Arc<Mounted<B>>,
    permit: Option<Permit>,
    release: Release<B>,
}

impl<B> Held<B> {
    /// The permit, to be recorded: from now on the store has it.
    fn take(&mut self) -> Option<Permit> {
        self.permit.take()
    }
}

impl<B> Drop for Held<B> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take()
            && permit.is_probe()
        {
            (self.release)(self.mounted.clone(), permit);
        }
    }
}

/// Gives a dropped call's probe back to a blocking breaker, on the dropping thread.
fn release_blocking<B: BlockingBreaker>(mounted: Arc<Mounted<B>>, permit: Permit) {
    mounted.breaker.record(permit, Outcome::Ignored.into());
}

/// Gives a dropped call's probe back to an async breaker: polled once here, so that a store
/// that answers at once frees the slot before the caller goes on, then finished on the
/// current tokio runtime.
fn release_async<B: AsyncBreaker + 'static>(mounted: Arc<Mounted<B>>, permit: Permit) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::debug!(breaker = %mounted.observer.name(), "a cancelled probe keeps its slot until its lease ends: no tokio runtime to give it back on");
        return;
    };
    let mut release = Box::pin(async move {
        mounted
            .breaker
            .record(permit, Outcome::Ignored.into())
            .await;
    });
    // While unwinding, the store's future is left to the runtime alone.
    if !std::thread::panicking()
        && let Poll::Ready(()) = release
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    {
        return;
    }
    drop(runtime.spawn(release));
}

enum Route<'a, B> {
    Pass,
    Found(Arc<Mounted<B>>),
    Make(Make<'a, B>),
}

/// A breaker to make on demand for `key`.
struct Make<'a, B> {
    key: String,
    registry: &'a Registry<B>,
    describe: Describe<B>,
}

impl<B> Make<'_, B> {
    /// Keeps the breaker the factory made; a factory that failed lets the request pass.
    fn made(self, made: Result<B, StoreError>, now: Instant) -> Option<Arc<Mounted<B>>> {
        match made {
            Ok(breaker) => {
                let registry = self.registry;
                let mounted = Mounted::new(
                    breaker,
                    self.describe,
                    registry.config.rejection,
                    registry.series(),
                );
                Some(self.registry.insert(self.key, mounted, now))
            }
            Err(err) => {
                tracing::warn!(key = %self.key, error = %err, "no breaker could be made; the request passes without one");
                None
            }
        }
    }
}

/// What to do with a request, decided before it is sent.
#[must_use]
#[allow(clippy::exhaustive_enums)] // Pass, reject (by response or by error) or admit: complete.
pub enum Start<'a, B> {
    /// No breaker watches this request: send it untouched.
    Pass,
    /// Rejected: answer with this synthetic response (it carries a [`BreakerOpen`] extension)
    /// and send nothing.
    Respond(http::Response<String>),
    /// Rejected, in error mode: fail with this error and send nothing.
    Fail(BreakerOpen),
    /// Admitted: send the request, then tell the [`Call`] how it ended.
    Send(Call<'a, B>),
}

impl<B> fmt::Debug for Start<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::Pass => f.write_str("Pass"),
            Start::Respond(response) => write!(f, "Respond({})", response.status()),
            Start::Fail(rejection) => write!(f, "Fail({rejection})"),
            Start::Send(call) => write!(f, "Send({})", call.held.mounted.observer.name()),
        }
    }
}

/// An admitted call, between sending the request and its end. Dropped before it is
/// recorded (its future cancelled), a half-open probe gives its slot back at once.
#[must_use]
pub struct Call<'a, B> {
    breakers: &'a Breakers<B>,
    held: Held<B>,
    /// The request's side for listeners, when someone listens (boxed: a call's future
    /// carries it across the request, and most calls have none).
    context: Option<Box<HttpContext>>,
}

impl<B> Call<'_, B> {
    /// A response arrived (no IO): the call is classified by its status, and its headers
    /// (if the client still has them) go to listeners and give the wait a 429 or 503 asks
    /// with `Retry-After`.
    pub fn response(self, status: u16, headers: Option<&http::HeaderMap>) -> Finish<B> {
        self.finish(&Attempt::Response { status }, headers)
    }

    /// The call failed without a response (no IO).
    pub fn error(
        self,
        kind: RequestErrorKind,
        error: &(dyn std::error::Error + 'static),
    ) -> Finish<B> {
        self.finish(&Attempt::Error { kind, error }, None)
    }

    fn finish(
        self,
        attempt: &Attempt<'_>,
        response_headers: Option<&http::HeaderMap>,
    ) -> Finish<B> {
        let options = &self.breakers.options;
        let outcome = options.classifier.classify(attempt);
        let status = match attempt {
            Attempt::Response { status } => Some(*status),
            Attempt::Error { .. } => None,
        };
        let wait = match (status, response_headers) {
            // Only a 429 or 503 can ask to wait; the clock is read only when one does.
            (Some(status @ (429 | 503)), Some(headers))
                if headers.contains_key(http::header::RETRY_AFTER) =>
            {
                crate::retry_after::requested_wait(status, headers, SystemTime::now())
            }
            _ => None,
        };
        let Call { held, context, .. } = self;
        // What only listeners read is gathered only when someone listens.
        let heard = context.map(|context| {
            Box::new(Heard {
                error: match attempt {
                    Attempt::Error { error, .. } => Some(error.to_string()),
                    Attempt::Response { .. } => None,
                },
                response_headers: response_headers
                    .map(|headers| options.redaction.headers(headers))
                    .unwrap_or_default(),
                body_prefix: None,
                context,
            })
        });
        let capture = options.capture_body.filter(|_| {
            heard.is_some() && outcome == Outcome::Failure && response_headers.is_some()
        });
        Finish {
            held,
            capture,
            told: Told {
                report: wait.map_or(Report::new(outcome), |wait| {
                    Report::new(outcome).with_retry_after(wait)
                }),
                status,
                heard,
            },
        }
    }
}

/// A finished call, to be recorded and told. Dropped before it is recorded (its future
/// cancelled while the body prefix is read), a half-open probe gives its slot back at once.
#[must_use]
pub struct Finish<B> {
    held: Held<B>,
    capture: Option<usize>,
    told: Told,
}

impl<B> Finish<B> {
    /// How many bytes of the response body listeners want (a failed call's, when the client
    /// captures bodies); the adapter reads them with [`body_prefix`](Self::body_prefix),
    /// leaving the caller the whole body.
    pub fn capture(&self) -> Option<usize> {
        self.capture
    }

    /// The first bytes of the response body, read for listeners.
    pub fn body_prefix(&mut self, mut prefix: Vec<u8>) {
        prefix.truncate(self.capture.unwrap_or(0));
        if let Some(heard) = &mut self.told.heard {
            heard.body_prefix = Some(prefix);
        }
    }

    /// How the call counts.
    pub fn outcome(&self) -> Outcome {
        self.told.report.outcome
    }
}

/// A call whose permit went to the store: what listeners will be told.
struct Told {
    /// The outcome, and the wait the response asked for (a 429 or 503 with `Retry-After`).
    report: Report,
    status: Option<u16>,
    /// What only listeners read, when someone listens.
    heard: Option<Box<Heard>>,
}

/// The parts of a finished call only listeners read.
struct Heard {
    error: Option<String>,
    response_headers: Vec<(String, String)>,
    body_prefix: Option<Vec<u8>>,
    context: Box<HttpContext>,
}

impl Told {
    /// Tells listeners, `tracing` and `metrics` what recording did (no IO).
    fn told(self, observer: &Observer, recorded: &Recorded) {
        let Told { status, heard, .. } = self;
        observer.finished(recorded, || match heard.map(|heard| *heard) {
            Some(Heard {
                error,
                response_headers,
                body_prefix,
                context,
            }) => {
                let mut context = HttpContext::ended(Some(&context), status, error);
                context.response_headers = response_headers;
                context.body_prefix = body_prefix;
                context
            }
            None => HttpContext::ended(None, status, None),
        });
    }
}

impl<B: BlockingBreaker> Finish<B> {
    /// Records the call in its breaker (blocking) and tells listeners.
    pub fn record_blocking(self) {
        let Finish { mut held, told, .. } = self;
        let Some(permit) = held.take() else { return };
        let mounted = &held.mounted;
        let recorded = mounted.breaker.record(permit, told.report);
        told.told(&mounted.observer, &recorded);
    }
}

impl<B: AsyncBreaker> Finish<B> {
    /// Records the call in its breaker and tells listeners.
    pub fn record_async(self) -> impl Future<Output = ()> {
        // Taken apart before the future is made, so that it carries each part once.
        let Finish { mut held, told, .. } = self;
        let permit = held.take();
        async move {
            let Some(permit) = permit else { return };
            let mounted = &held.mounted;
            let recorded = mounted.breaker.record(permit, told.report).await;
            told.told(&mounted.observer, &recorded);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use breaker_core::{Listeners, Policy};
    use breaker_store_memory::{MemoryBreaker, MemoryStore};

    use super::*;

    /// Routes a request to `url` at `now`, making its breaker if needed; the breaker's name.
    fn use_at(breakers: &Breakers<MemoryBreaker>, url: &str, now: Instant) -> String {
        let uri: http::Uri = url.parse().unwrap();
        let headers = http::HeaderMap::new();
        let mounted = match breakers.route(&RequestHead::new("GET", &uri, &headers), || now) {
            Route::Found(mounted) => mounted,
            Route::Make(make) => {
                let Factory::Blocking(factory) = &make.registry.config.factory else {
                    panic!("a blocking factory")
                };
                let made = factory(&make.key);
                make.made(made, now).unwrap()
            }
            Route::Pass => panic!("{url} passed"),
        };
        mounted.observer.name().to_owned()
    }

    #[test]
    fn on_demand_breakers_per_authority_bounded_and_dropped_when_idle() {
        let store = MemoryStore::new();
        let on_demand = OnDemand::new(move |name: &str| store.breaker(name, Policy::default()))
            .idle_after(Duration::from_secs(60))
            .max_breakers(3);
        let breakers = Breakers::blocking().on_demand(on_demand);
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(
            use_at(&breakers, "https://a.example/x?q=1", at(0)),
            "https://a.example:443"
        );
        assert_eq!(
            use_at(&breakers, "HTTP://b.example:8080/", at(1)),
            "http://b.example:8080"
        );
        use_at(&breakers, "https://c.example", at(2));
        assert_eq!(
            use_at(&breakers, "https://A.Example/", at(2)),
            "https://a.example:443",
            "the same authority"
        );
        use_at(&breakers, "https://a.example/other", at(3));
        assert_eq!(breakers.on_demand_breakers(), 3);
        // A fourth host drops the least recently used: b, not a (used again at 3).
        use_at(&breakers, "https://d.example", at(4));
        assert_eq!(breakers.on_demand_breakers(), 3);
        let registry = breakers.on_demand.as_ref().unwrap();
        assert!(registry.get("https://a.example:443", at(5)).is_some());
        assert!(registry.get("http://b.example:8080", at(5)).is_none());
        // A minute without calls drops c (last used at 2) and d (at 4), not a (at 5).
        use_at(&breakers, "https://e.example", at(64));
        assert_eq!(breakers.on_demand_breakers(), 2, "a and e");
        assert!(registry.get("https://a.example:443", at(64)).is_some());
    }

    #[test]
    fn a_call_dropped_before_it_is_recorded_gives_its_probe_back() {
        use breaker_core::{BlockingOperate, ManualClock, Timestamp};

        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let store = MemoryStore::with_clock(clock.clone());
        let policy = Policy::builder()
            .minimum_failures(1)
            .open_for(Duration::from_secs(10))
            .half_open_probes(1)
            .probe_lease(Duration::from_secs(60))
            .build()
            .unwrap();
        let breaker = store.breaker("dropped", policy).unwrap();
        let operator = store.get("dropped").unwrap();
        let breakers = Breakers::blocking()
            .mount("http://api.example", breaker)
            .unwrap();
        let uri: http::Uri = "http://api.example/".parse().unwrap();
        let headers = http::HeaderMap::new();
        let head = RequestHead::new("GET", &uri, &headers);
        let send = || match breakers.start_blocking(&head) {
            Start::Send(call) => call,
            other => panic!("expected a permit, got {other:?}"),
        };
        let in_flight = || operator.snapshot().unwrap().probes_in_flight;

        // An ordinary call dropped: nothing is counted.
        drop(send());
        assert_eq!(operator.snapshot().unwrap().counts.calls, 0);
        send().response(500, None).record_blocking();
        clock.advance(Duration::from_secs(10));

        // A probe dropped before its response, then one dropped after it (while its body is
        // read): each time the slot is free at once, with the lease far from over.
        drop(send());
        assert_eq!(in_flight(), 0);
        drop(send().response(200, None));
        assert_eq!(in_flight(), 0);
        let probe = send();
        assert_eq!(in_flight(), 1);
        probe.response(200, None).record_blocking();
        let snapshot = operator.snapshot().unwrap();
        assert_eq!(
            (snapshot.state, snapshot.probes_in_flight),
            (breaker_core::State::Closed, 0)
        );
    }

    /// A memory breaker whose store takes a turn of the runtime to answer a record, as a
    /// remote store does.
    struct Remote(MemoryBreaker);

    /// Pending once, then ready: one turn of the runtime.
    struct Turn(bool);

    impl Future for Turn {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    impl breaker_core::BreakerHandle for Remote {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn policy(&self) -> &Policy {
            self.0.policy()
        }
        fn listeners(&self) -> &Listeners {
            self.0.listeners()
        }
    }

    impl AsyncBreaker for Remote {
        fn acquire(&self) -> impl Future<Output = Result<Permit, Rejected>> + Send {
            std::future::ready(BlockingBreaker::acquire(&self.0))
        }
        async fn record(&self, permit: Permit, report: Report) -> Recorded {
            Turn(false).await;
            BlockingBreaker::record(&self.0, permit, report)
        }
    }

    #[test]
    fn an_async_store_that_must_wait_gets_the_probe_back_on_the_runtime() {
        use breaker_core::{Action, BlockingOperate, ManualClock, Timestamp};

        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let store = MemoryStore::with_clock(clock.clone());
        let policy = Policy::builder()
            .minimum_failures(1)
            .half_open_probes(1)
            .probe_lease(Duration::from_secs(60))
            .build()
            .unwrap();
        let breaker = Remote(store.breaker("remote", policy).unwrap());
        let operator = store.get("remote").unwrap();
        BlockingOperate::operate(&operator, Action::Trip).unwrap();
        clock.advance(Policy::default().open_for());
        let breakers = Breakers::asynchronous()
            .mount("http://api.example", breaker)
            .unwrap();
        let uri: http::Uri = "http://api.example/".parse().unwrap();
        let headers = http::HeaderMap::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let head = RequestHead::new("GET", &uri, &headers);
            let Start::Send(probe) = breakers.start_async(&head).await else {
                panic!("a probe")
            };
            drop(probe);
            assert_eq!(
                operator.snapshot().unwrap().probes_in_flight,
                1,
                "the store has not answered yet"
            );
            // The release runs on the runtime, without waiting for the lease.
            let deadline = Instant::now() + Duration::from_secs(10);
            while operator.snapshot().unwrap().probes_in_flight > 0 {
                assert!(Instant::now() < deadline, "the probe was never given back");
                tokio::task::yield_now().await;
            }
            assert!(matches!(breakers.start_async(&head).await, Start::Send(_)));
        });
    }

    #[test]
    fn a_key_of_ones_own_and_requests_it_leaves_out() {
        let store = MemoryStore::new();
        let on_demand = OnDemand::new(move |name: &str| store.breaker(name, Policy::default()))
            .key(|request: &RequestHead<'_>| {
                let tenant = request.headers().get("x-tenant")?.to_str().ok()?;
                Some(format!("tenant-{tenant}"))
            });
        let breakers = Breakers::blocking().on_demand(on_demand);
        let uri: http::Uri = "https://api.example/".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        let none = breakers.route(&RequestHead::new("GET", &uri, &headers), Instant::now);
        assert!(matches!(none, Route::Pass));
        headers.insert("x-tenant", "blue".parse().unwrap());
        let head = RequestHead::new("GET", &uri, &headers);
        assert!(matches!(breakers.start_blocking(&head), Start::Send(_)));
        assert_eq!(breakers.on_demand_breakers(), 1);
    }
}
