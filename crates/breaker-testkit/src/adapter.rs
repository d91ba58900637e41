//! The behaviour every HTTP adapter must show, written once, against a real local server.
//! Expand [`adapter_suite!`](crate::adapter_suite) in an adapter's test binary.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breaker_core::{
    BlockingBreaker, Event, EventKind, Listeners, ManualClock, Outcome, Policy, RejectReason,
    Transition,
};
use breaker_http::{
    Attempt, BreakerOpen, Breakers, Classifier, HttpContext, OnDemand, RejectionMode,
    default_classify,
};

use crate::http_server::{Reply, TestServer, refused_url};

/// How a client is set up for one case.
pub struct Spec<B> {
    /// Breakers, the prefixes they are mounted on, and their own rejection modes.
    pub mounts: Vec<(String, B, Option<RejectionMode>)>,
    /// What rejected calls return.
    pub mode: RejectionMode,
    /// How calls count.
    pub classifier: Classifier,
    /// Body bytes captured for listeners on failures.
    pub capture_body: Option<usize>,
    /// Breakers made on demand for requests no mount matches.
    pub on_demand: Option<OnDemand<B>>,
    /// Headers redacted besides the built-in ones.
    pub redact_headers: Vec<String>,
    /// Query parameters redacted besides the built-in ones.
    pub redact_query_params: Vec<String>,
    /// Whether listeners see secrets.
    pub reveal_secrets: bool,
}

impl<B: BlockingBreaker> Spec<B> {
    /// The client's breakers and options, as every adapter takes them.
    pub fn into_breakers(self) -> Breakers<B> {
        let mut breakers = Breakers::blocking()
            .rejection_mode(self.mode)
            .classifier(self.classifier);
        if let Some(bytes) = self.capture_body {
            breakers = breakers.capture_body(bytes);
        }
        if let Some(on_demand) = self.on_demand {
            breakers = breakers.on_demand(on_demand);
        }
        for name in &self.redact_headers {
            breakers = breakers.redact_header(name);
        }
        for name in &self.redact_query_params {
            breakers = breakers.redact_query_param(name);
        }
        breakers = breakers.reveal_secrets(self.reveal_secrets);
        for (prefix, breaker, rejection) in self.mounts {
            breakers = breakers.mount_with(&prefix, breaker, rejection).unwrap();
        }
        breakers
    }
}

impl<B> Spec<B> {
    /// These mounts, defaults otherwise.
    pub fn mounted(mounts: Vec<(String, B, Option<RejectionMode>)>) -> Spec<B> {
        Spec {
            mounts,
            mode: RejectionMode::Response,
            classifier: Classifier::default(),
            capture_body: None,
            on_demand: None,
            redact_headers: Vec::new(),
            redact_query_params: Vec::new(),
            reveal_secrets: false,
        }
    }

    /// One breaker on one prefix, defaults otherwise.
    pub fn one(prefix: String, breaker: B) -> Spec<B> {
        Spec::mounted(vec![(prefix, breaker, None)])
    }
}

/// What a call returned, as the caller sees it.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: String,
    /// The synthetic-rejection marker, if the response carries it.
    pub rejection: Option<BreakerOpen>,
}

impl Answer {
    /// An answer from the response's status, headers (as bytes), marker and whole body.
    pub fn new<'h>(
        status: u16,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        rejection: Option<BreakerOpen>,
        body: String,
    ) -> Answer {
        let headers = headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), String::from_utf8_lossy(value).into_owned()))
            .collect();
        Answer {
            status,
            headers,
            body,
            rejection,
        }
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A call that did not return a response.
#[derive(Debug)]
pub enum Failed {
    /// The breaker rejected it in error mode.
    Open(BreakerOpen),
    /// The client failed (transport error).
    Client(String),
}

/// A client built by the adapter under test.
pub trait Client: Send + Sync {
    /// `GET url` with extra request headers.
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, Failed>;
    /// How many breakers made on demand the client keeps.
    fn on_demand_breakers(&self) -> usize;
}

type Make<B> = dyn Fn(&str, Policy, Listeners) -> B + Send + Sync;

/// The breakers of one store on a manual clock, as an adapter's test binary makes them.
pub struct Backing<B> {
    clock: ManualClock,
    make: Arc<Make<B>>,
}

impl<B> Clone for Backing<B> {
    fn clone(&self) -> Self {
        Backing {
            clock: self.clock.clone(),
            make: self.make.clone(),
        }
    }
}

impl<B> Backing<B> {
    /// Breakers made by `make(name, policy, listeners)`, reading `clock`.
    pub fn new(
        clock: ManualClock,
        make: impl Fn(&str, Policy, Listeners) -> B + Send + Sync + 'static,
    ) -> Backing<B> {
        Backing {
            clock,
            make: Arc::new(make),
        }
    }
}

/// What an adapter's test binary provides.
pub trait Adapter: Clone + Send + Sync + 'static {
    /// The breaker type the adapter takes.
    type Breaker: BlockingBreaker + 'static;
    /// Where its breakers come from.
    fn backing(&self) -> &Backing<Self::Breaker>;
    /// A client of the adapter over `breakers`.
    fn client_over(&self, breakers: Breakers<Self::Breaker>) -> Box<dyn Client>;
    /// The clock the breakers read.
    fn clock(&self) -> &ManualClock {
        &self.backing().clock
    }
    /// A fresh breaker with `policy` and `listeners`.
    fn breaker(&self, name: &str, policy: Policy, listeners: Listeners) -> Self::Breaker {
        (self.backing().make)(name, policy, listeners)
    }
    /// A client set up as `spec` says.
    fn client(&self, spec: Spec<Self::Breaker>) -> Box<dyn Client> {
        self.client_over(spec.into_breakers())
    }
}

fn policy(minimum_failures: u64, failure_rate: f64) -> Policy {
    Policy::builder()
        .minimum_failures(minimum_failures)
        .failure_rate(failure_rate)
        .open_for(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn get(client: &dyn Client, url: &str) -> Answer {
    client
        .get(url, &[])
        .unwrap_or_else(|err| panic!("GET {url} failed: {err:?}"))
}

fn is_synthetic(answer: &Answer) -> bool {
    answer.rejection.is_some() && answer.header("x-circuit-breaker") == Some("breaker tripped")
}

/// Events as listeners received them, with the context's fields.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The breaker name.
    pub breaker: String,
    /// `success`, `failure`, `rejected`, `trip`, `half-open`, `closed`, `store-error`.
    pub kind: &'static str,
    /// Elapsed time, for finished calls.
    pub elapsed: Option<Duration>,
    /// The HTTP details.
    pub context: Option<HttpContext>,
}

/// Listeners that record every event.
pub fn recorder() -> (Listeners, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let listeners = Listeners::new().with(move |event: &Event<'_>| {
        let kind = match event.kind {
            EventKind::Success => "success",
            EventKind::Failure => "failure",
            EventKind::Rejected(rejected) if rejected.reason() == RejectReason::RampingUp => {
                "rejected-ramping"
            }
            EventKind::Rejected(_) => "rejected",
            EventKind::Transition(Transition::Tripped { .. }) => "trip",
            EventKind::Transition(Transition::HalfOpened { .. }) => "half-open",
            EventKind::Transition(Transition::Closed { .. }) => "closed",
            EventKind::StoreError(_) => "store-error",
            _ => "other",
        };
        sink.lock().unwrap().push(Seen {
            breaker: event.breaker.to_owned(),
            kind,
            elapsed: event.elapsed,
            context: event
                .context
                .and_then(|c| c.downcast_ref::<HttpContext>())
                .cloned(),
        });
    });
    (listeners, seen)
}

/// Waits (polling, with a deadline) until `seen` holds `count` events.
pub fn wait_for(seen: &Mutex<Vec<Seen>>, count: usize) -> Vec<Seen> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = seen.lock().unwrap().clone();
        if events.len() >= count {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} events, got {events:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The trip rule at its boundaries: with `minimum_failures = 3` and 50 %, 500, 500, 200, 200
/// leaves it closed; one more 500 opens it; then nothing reaches the server.
pub fn trips_at_the_boundary<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let breaker = a.breaker("boundary", policy(3, 50.0), Listeners::new());
    let client = a.client(Spec::one(server.url(""), breaker));
    server.push([500, 500, 200, 200].map(Reply::Status));
    for expected in [500, 500, 200, 200] {
        assert_eq!(get(&*client, &server.url("/x")).status, expected);
    }
    server.push([Reply::Status(500)]);
    let fifth = get(&*client, &server.url("/x"));
    assert!(!is_synthetic(&fifth), "the fifth call reached the server");
    assert_eq!(server.hits(), 5);
    for _ in 0..10 {
        assert!(is_synthetic(&get(&*client, &server.url("/x"))));
    }
    assert_eq!(server.hits(), 5, "no request reaches the server while open");
}

/// The synthetic response, byte for byte.
pub fn synthetic_response_in_every_detail<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let breaker = a.breaker("pay\"ments", policy(1, 10.0), Listeners::new());
    let client = a.client(Spec::one(server.url(""), breaker));
    server.push([Reply::Status(503)]);
    get(&*client, &server.url("/"));
    a.clock().advance(Duration::from_millis(500));
    let answer = get(&*client, &server.url("/"));
    assert_eq!(answer.status, 500);
    assert_eq!(answer.header("x-circuit-breaker"), Some("breaker tripped"));
    assert_eq!(
        answer.header("retry-after"),
        Some("30"),
        "29.5 s, rounded up"
    );
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.body,
        r#"{"errors": [{"msg": "Circuit breaker pay\"ments tripped"}]}"#
    );
    let rejection = answer.rejection.expect("marked as a rejection");
    assert_eq!(rejection.name, "pay\"ments");
    assert_eq!(rejection.retry_after, Duration::from_millis(29_500));
    // A real 500 carries no marker.
    let other = TestServer::start();
    other.push([Reply::Status(500)]);
    let real = get(&*client, &other.url("/"));
    assert!(real.rejection.is_none() && real.header("x-circuit-breaker").is_none());
}

/// Error mode, for the client or for one breaker: a `BreakerOpen` with the name and the time
/// to wait.
pub fn error_mode<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let breaker = a.breaker("error-mode", policy(1, 10.0), Listeners::new());
    let mut spec = Spec::one(server.url(""), breaker);
    spec.mode = RejectionMode::Error;
    let client = a.client(spec);
    server.push([Reply::Status(500)]);
    assert_eq!(get(&*client, &server.url("/")).status, 500);
    match client.get(&server.url("/"), &[]) {
        Err(Failed::Open(open)) => {
            assert_eq!(open.name, "error-mode");
            assert_eq!(open.retry_after, Duration::from_secs(30));
        }
        other => panic!("expected BreakerOpen, got {other:?}"),
    }
    assert_eq!(server.hits(), 1);

    // One breaker in error mode on a client that answers rejections with responses.
    let strict = a.breaker("strict", policy(1, 10.0), Listeners::new());
    let lenient = a.breaker("lenient", policy(1, 10.0), Listeners::new());
    let client = a.client(Spec::mounted(vec![
        (server.url("/strict"), strict, Some(RejectionMode::Error)),
        (server.url("/lenient"), lenient, None),
    ]));
    server.push([Reply::Status(500), Reply::Status(500)]);
    get(&*client, &server.url("/strict"));
    get(&*client, &server.url("/lenient"));
    assert!(
        matches!(client.get(&server.url("/strict"), &[]), Err(Failed::Open(open)) if open.name == "strict")
    );
    assert!(is_synthetic(&get(&*client, &server.url("/lenient"))));
}

/// Half-open: of a crowd, exactly `half_open_probes` requests reach the server.
pub fn half_open_probes_reach_the_server<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let p = Policy::builder()
        .minimum_failures(1)
        .open_for(Duration::from_secs(10))
        .half_open_probes(2)
        .build()
        .unwrap();
    let breaker = a.breaker("probes", p, Listeners::new());
    let client = a.client(Spec::one(server.url(""), breaker));
    server.push([Reply::Status(500)]);
    get(&*client, &server.url("/"));
    a.clock().advance(Duration::from_secs(10));
    // Probes are slow, so they overlap with the rest of the crowd.
    server.set_default(Reply::Delayed(Duration::from_millis(300), 200));
    let synthetic = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                if is_synthetic(&get(&*client, &server.url("/"))) {
                    synthetic.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(
        server.hits(),
        1 + 2,
        "exactly two probes reached the server"
    );
    assert_eq!(synthetic.load(Ordering::SeqCst), 6);
}

/// The longest prefix decides; unmatched requests pass through untouched.
pub fn prefix_routing<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let other = TestServer::start();
    let api = a.breaker("routing-api", policy(1, 10.0), Listeners::new());
    let host = a.breaker("routing-host", policy(1, 10.0), Listeners::new());
    let client = a.client(Spec::mounted(vec![
        (server.url("/api"), api, None),
        (server.url(""), host, None),
    ]));
    server.push([Reply::Status(500)]);
    get(&*client, &server.url("/api/users"));
    assert!(
        is_synthetic(&get(&*client, &server.url("/api/users"))),
        "/api is open"
    );
    assert!(
        !is_synthetic(&get(&*client, &server.url("/apix"))),
        "/apix is the host's"
    );
    assert!(!is_synthetic(&get(&*client, &server.url("/other"))));
    // Another host: no breaker, its failures count nowhere.
    other.set_default(Reply::Status(500));
    for _ in 0..3 {
        assert_eq!(get(&*client, &other.url("/api")).status, 500);
    }
    assert_eq!(other.hits(), 3);
}

/// A classifier of one's own: 429 fails, 404 is ignored; the default counts 404 as success.
pub fn classifier<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let (listeners, seen) = recorder();
    let breaker = a.breaker("classifier", policy(2, 100.0), listeners);
    let mut spec = Spec::one(server.url(""), breaker);
    spec.classifier = Classifier::new(|attempt: &Attempt<'_>| match attempt {
        Attempt::Response { status: 429 } => Outcome::Failure,
        Attempt::Response { status: 404 } => Outcome::Ignored,
        other => default_classify(other),
    });
    let client = a.client(spec);
    server.push([404, 404, 429, 404, 429].map(Reply::Status));
    for _ in 0..5 {
        get(&*client, &server.url("/"));
    }
    assert!(
        is_synthetic(&get(&*client, &server.url("/"))),
        "two 429s of two counted calls"
    );
    let events = wait_for(&seen, 4);
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds[..3],
        ["failure", "failure", "trip"],
        "404s count nowhere: {kinds:?}"
    );
}

/// Refused and dropped connections are failures.
pub fn transport_errors_are_failures<A: Adapter>(a: &A) {
    let refused = refused_url("");
    let breaker = a.breaker("refused", policy(1, 10.0), Listeners::new());
    let client = a.client(Spec::one(refused.clone(), breaker));
    assert!(matches!(
        client.get(&format!("{refused}/x"), &[]),
        Err(Failed::Client(_))
    ));
    assert!(is_synthetic(&get(&*client, &format!("{refused}/x"))));

    let server = TestServer::start();
    let breaker = a.breaker("dropped", policy(1, 10.0), Listeners::new());
    let client = a.client(Spec::one(server.url(""), breaker));
    server.set_default(Reply::Drop);
    assert!(client.get(&server.url("/"), &[]).is_err());
    assert!(is_synthetic(&get(&*client, &server.url("/"))));
}

/// A call slower than `slow_call` is a failure (the server moves the breaker's clock).
pub fn slow_calls_fail<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let p = Policy::builder()
        .minimum_failures(1)
        .slow_call(Some(Duration::from_millis(100)))
        .build()
        .unwrap();
    let breaker = a.breaker("slow", p, Listeners::new());
    let client = a.client(Spec::one(server.url(""), breaker));
    let clock = a.clock().clone();
    let tick = clock.clone();
    server.push([Reply::Hook(
        Arc::new(move || tick.advance(Duration::from_millis(100))),
        200,
    )]);
    get(&*client, &server.url("/"));
    assert!(
        !is_synthetic(&get(&*client, &server.url("/"))),
        "100 ms is not slow"
    );
    server.push([Reply::Hook(
        Arc::new(move || clock.advance(Duration::from_millis(101))),
        200,
    )]);
    assert_eq!(
        get(&*client, &server.url("/")).status,
        200,
        "the caller keeps the response"
    );
    assert!(is_synthetic(&get(&*client, &server.url("/"))));
}

/// Listeners hear every step, with the HTTP details; secrets are redacted; a failure's body
/// prefix is captured while the caller gets the whole body.
pub fn listener_events_and_fields<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let (listeners, seen) = recorder();
    let breaker = a.breaker("events", policy(1, 10.0), listeners);
    let mut spec = Spec::one(server.url(""), breaker);
    spec.capture_body = Some(5);
    let client = a.client(spec);
    let secret = [("authorization", "Bearer s3cret"), ("x-trace", "t-1")];
    get(&*client, &server.url("/ok"));
    server.push([Reply::Body(500, "0123456789".to_owned())]);
    let failed = client.get(&server.url("/fail?q=1"), &secret).unwrap();
    assert_eq!(failed.body, "0123456789", "the caller gets the whole body");
    assert!(
        server
            .last_request_headers()
            .contains(&("authorization".to_owned(), "Bearer s3cret".to_owned()))
    );
    get(&*client, &server.url("/rejected"));
    let events = wait_for(&seen, 4);
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["success", "failure", "trip", "rejected"]);
    assert!(events.iter().all(|e| e.breaker == "events"));
    let success = events[0].context.clone().unwrap();
    assert_eq!(
        (success.method.as_str(), success.status),
        ("GET", Some(200))
    );
    assert_eq!(success.url, server.url("/ok"));
    assert!(events[0].elapsed.is_some());
    let failure = events[1].context.clone().unwrap();
    assert_eq!(failure.status, Some(500));
    assert_eq!(failure.url, server.url("/fail?q=1"));
    assert_eq!(failure.body_prefix.as_deref(), Some(&b"01234"[..]));
    let header = |list: &[(String, String)], name: &str| {
        list.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    };
    assert_eq!(
        header(&failure.request_headers, "authorization").as_deref(),
        Some("[redacted]")
    );
    assert_eq!(
        header(&failure.request_headers, "x-trace").as_deref(),
        Some("t-1")
    );
    assert_eq!(
        header(&failure.response_headers, "set-cookie").as_deref(),
        Some("[redacted]")
    );
    assert_eq!(
        header(&failure.response_headers, "x-test").as_deref(),
        Some("yes")
    );
    let rejected = events[3].context.clone().unwrap();
    assert_eq!(
        (rejected.status, rejected.url),
        (None, server.url("/rejected"))
    );
}

/// Listeners never see secrets unless the client reveals them: credential and key headers
/// (built in and the client's own) and credentials in query strings, for calls that failed
/// and calls that were rejected; the server still receives them all.
pub fn secrets_are_redacted<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let sent = [
        ("authorization", "Bearer s3cret"),
        ("x-api-key", "s3cret"),
        ("api-key", "s3cret"),
        ("x-auth-token", "s3cret"),
        ("x-tenant-pin", "s3cret"),
        ("x-trace", "t-1"),
    ];
    let path = "/fail?q=1&token=s3cret&API_KEY=s3cret&X-Amz-Signature=s3cret&card_pin=s3cret";
    for reveal in [false, true] {
        let (listeners, seen) = recorder();
        let name = if reveal {
            "secrets-revealed"
        } else {
            "secrets"
        };
        let breaker = a.breaker(name, policy(1, 10.0), listeners);
        let mut spec = Spec::one(server.url(""), breaker);
        spec.redact_headers = vec!["X-Tenant-Pin".to_owned()];
        spec.redact_query_params = vec!["pin".to_owned()];
        spec.reveal_secrets = reveal;
        let client = a.client(spec);
        server.push([Reply::Status(500)]);
        assert_eq!(client.get(&server.url(path), &sent).unwrap().status, 500);
        let received = server.last_request_headers();
        for (name, value) in sent {
            assert!(
                received.contains(&(name.to_owned(), value.to_owned())),
                "the server gets {name}"
            );
        }
        client.get(&server.url(path), &sent).unwrap();
        let events = wait_for(&seen, 3);
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["failure", "trip", "rejected"]);
        for event in [&events[0], &events[2]] {
            let context = event.context.clone().unwrap();
            let shown = |name: &str| {
                context
                    .request_headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(shown("x-trace"), Some("t-1"));
            if reveal {
                assert_eq!(context.url, server.url(path));
                for (name, value) in sent {
                    assert_eq!(shown(name), Some(value), "{name} revealed");
                }
            } else {
                assert_eq!(
                    context.url,
                    server.url(
                        "/fail?q=1&token=[redacted]&API_KEY=[redacted]\
                         &X-Amz-Signature=[redacted]&card_pin=[redacted]"
                    )
                );
                for (name, _) in &sent[..5] {
                    assert_eq!(shown(name), Some("[redacted]"), "{name}");
                }
            }
        }
    }
}

/// A panicking listener breaks nothing; a slow one stalls nothing.
pub fn misbehaving_listeners<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let (recording, seen) = recorder();
    let listeners = recording
        .with(|_: &Event<'_>| panic!("listener bug"))
        // Stands for a slow listener: the call must not wait for it.
        .with(|_: &Event<'_>| std::thread::sleep(Duration::from_millis(300)));
    let breaker = a.breaker("misbehaving", policy(100, 50.0), listeners);
    let client = a.client(Spec::one(server.url(""), breaker));
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(get(&*client, &server.url("/")).status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "five calls took {:?} behind a 300 ms listener",
        started.elapsed()
    );
    assert_eq!(
        wait_for(&seen, 5).len(),
        5,
        "the other listener still hears every call"
    );
}

/// Half-open probe success closes; a listener sees half-open and closed.
pub fn probe_success_closes<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let (listeners, seen) = recorder();
    let breaker = a.breaker("recovers", policy(1, 10.0), listeners);
    let client = a.client(Spec::one(server.url(""), breaker));
    server.push([Reply::Status(500)]);
    get(&*client, &server.url("/"));
    let rejected = get(&*client, &server.url("/"));
    assert_eq!(
        rejected.rejection.map(|r| r.retry_after),
        Some(Duration::from_secs(30))
    );
    a.clock().advance(Duration::from_secs(30));
    assert_eq!(get(&*client, &server.url("/")).status, 200);
    assert_eq!(get(&*client, &server.url("/")).status, 200);
    assert_eq!(server.hits(), 3);
    let kinds: Vec<_> = wait_for(&seen, 7).iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            "failure",
            "trip",
            "rejected",
            "half-open",
            "success",
            "closed",
            "success"
        ]
    );
}

/// A 429 or 503 with `Retry-After` opens the breaker until then, whatever the counts say:
/// later calls are rejected without reaching the server and carry that `Retry-After`; a
/// header that is garbage changes nothing.
pub fn retry_after_opens_the_breaker<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let breaker = a.breaker("retry-after", policy(5, 50.0), Listeners::new());
    let client = a.client(Spec::one(server.url(""), breaker));
    let asking =
        |value: &str| Reply::Headers(503, vec![("retry-after".to_owned(), value.to_owned())]);
    server.push([asking("soon")]);
    assert_eq!(get(&*client, &server.url("/")).status, 503);
    assert!(
        !is_synthetic(&get(&*client, &server.url("/"))),
        "a Retry-After of garbage asks nothing"
    );
    server.push([asking("3")]);
    assert_eq!(get(&*client, &server.url("/")).status, 503);
    let hits = server.hits();
    for _ in 0..5 {
        let rejected = get(&*client, &server.url("/"));
        assert!(is_synthetic(&rejected), "one 503 asking for 3 s opened it");
        assert_eq!(rejected.header("retry-after"), Some("3"));
    }
    assert_eq!(server.hits(), hits, "nothing reached the server while open");
    a.clock().advance(Duration::from_secs(3));
    assert_eq!(
        get(&*client, &server.url("/")).status,
        200,
        "a probe goes after 3 s"
    );
    assert!(
        !is_synthetic(&get(&*client, &server.url("/"))),
        "and closed it"
    );
}

/// With `ramp_up`, once probes close the breaker only a share of calls goes at first (the
/// first of them at once): the others get the synthetic response with a `Retry-After`,
/// reach nothing, and listeners hear that the ramp rejected them.
pub fn ramp_rejections_say_so<A: Adapter>(a: &A) {
    let server = TestServer::start();
    let (listeners, seen) = recorder();
    let policy = policy(1, 10.0)
        .to_builder()
        .ramp_up(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let breaker = a.breaker("ramping", policy, listeners);
    let client = a.client(Spec::one(server.url(""), breaker));
    server.push([Reply::Status(500)]);
    get(&*client, &server.url("/"));
    a.clock().advance(Duration::from_secs(30));
    assert_eq!(get(&*client, &server.url("/")).status, 200, "the probe");
    assert_eq!(
        get(&*client, &server.url("/")).status,
        200,
        "the ramp's first"
    );
    let rejected = get(&*client, &server.url("/"));
    assert!(is_synthetic(&rejected), "outside the ramp's share");
    assert_eq!(rejected.header("retry-after"), Some("1"));
    assert_eq!(server.hits(), 3);
    let kinds: Vec<_> = wait_for(&seen, 7).iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            "failure",
            "trip",
            "half-open",
            "success",
            "closed",
            "success",
            "rejected-ramping"
        ]
    );
}

/// Breakers on demand: each authority gets its own breaker, made on first use and named
/// after it; a thousand hosts through one client keep at most `max_breakers` of them alive.
pub fn breakers_on_demand<A: Adapter>(a: &A) {
    // Each breaker made holds a clone of `alive` in its listeners, so the count of clones
    // is the count of breakers still alive anywhere in the process.
    let alive = Arc::new(());
    let (maker, counted) = (a.clone(), alive.clone());
    let on_demand = OnDemand::new(move |name: &str| {
        let token = counted.clone();
        let listeners = Listeners::new().with(move |_: &Event<'_>| {
            let _ = &token;
        });
        Ok(maker.breaker(name, policy(1, 10.0), listeners))
    })
    .max_breakers(8);
    let mut spec = Spec::mounted(Vec::new());
    spec.on_demand = Some(on_demand);
    let client = a.client(spec);

    let (failing, healthy) = (TestServer::start(), TestServer::start());
    failing.push([Reply::Status(500)]);
    assert_eq!(get(&*client, &failing.url("/a")).status, 500);
    let rejected = get(&*client, &failing.url("/b"));
    assert_eq!(
        rejected.rejection.map(|r| r.name),
        Some(failing.url("")),
        "the failing host's own breaker, named after its authority"
    );
    assert_eq!(
        get(&*client, &healthy.url("/")).status,
        200,
        "another host is not affected"
    );
    assert_eq!(client.on_demand_breakers(), 2);

    for _ in 0..1_000 {
        // A port seen before may come again: its breaker is open by then.
        let host = refused_url("/");
        match client.get(&host, &[]) {
            Err(Failed::Client(_)) => {}
            Ok(answer) if is_synthetic(&answer) => {}
            other => panic!("{host} refuses, or its breaker is open: {other:?}"),
        }
        assert!(client.on_demand_breakers() <= 8);
    }
    // Two clones are not breakers: `alive` itself and the factory's.
    let breakers_alive = || Arc::strong_count(&alive) - 2;
    let deadline = Instant::now() + Duration::from_secs(10);
    while breakers_alive() > 8 {
        assert!(
            Instant::now() < deadline,
            "{} breakers still alive",
            breakers_alive()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One `#[test]` per adapter case, given an expression that makes the [`Adapter`], or, with
/// `memory, $client`, over the memory store on a manual clock, for an adapter whose test
/// client `$client` (a function or non-capturing closure) makes from a `Breakers` (expanded
/// where `breaker_store_memory` and `breaker_http` are dependencies).
#[macro_export]
macro_rules! adapter_suite {
    (memory, $client:expr) => {
        type Handle = breaker_store_memory::MemoryBreaker;

        #[derive(Clone)]
        struct OverMemory($crate::adapter::Backing<Handle>);

        impl $crate::adapter::Adapter for OverMemory {
            type Breaker = Handle;

            fn backing(&self) -> &$crate::adapter::Backing<Handle> {
                &self.0
            }

            fn client_over(
                &self,
                breakers: breaker_http::Breakers<Handle>,
            ) -> Box<dyn $crate::adapter::Client> {
                let client: fn(breaker_http::Breakers<Handle>) -> Box<dyn $crate::adapter::Client> =
                    $client;
                client(breakers)
            }
        }

        fn over_memory() -> OverMemory {
            let start = breaker_core::Timestamp::from_millis(1_700_000_000_000);
            let clock = breaker_core::ManualClock::new(start);
            let store = breaker_store_memory::MemoryStore::with_clock(clock.clone());
            OverMemory($crate::adapter::Backing::new(clock, move |name, policy, listeners| {
                store.breaker(name, policy).unwrap().with_listeners(listeners)
            }))
        }

        $crate::adapter_suite!(over_memory());
    };
    ($adapter:expr) => {
        $crate::adapter_suite!(@cases $adapter;
            trips_at_the_boundary, synthetic_response_in_every_detail, error_mode,
            half_open_probes_reach_the_server, prefix_routing, classifier,
            transport_errors_are_failures, slow_calls_fail, listener_events_and_fields,
            secrets_are_redacted, misbehaving_listeners, probe_success_closes, retry_after_opens_the_breaker, ramp_rejections_say_so,
            breakers_on_demand);
    };
    (@cases $adapter:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let adapter = $adapter;
                $crate::adapter::$case(&adapter);
            }
        )*
    };
}
