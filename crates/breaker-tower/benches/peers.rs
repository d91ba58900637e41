//! In process, in one run: the time each adapter adds to a call with a memory-store breaker
//! mounted on its URL, beside `tower-resilience-circuitbreaker`'s layer (its `standard()`
//! settings) over the same no-op tower service:
//!
//! - tower: a no-op `tower::service_fn` answering at once, bare, under this project's
//!   `BreakerLayer`, and under `tower-resilience-circuitbreaker`'s layer, each call through a
//!   clone as `oneshot` takes it, on a current-thread runtime;
//! - reqwest: a `reqwest-middleware` client whose last middleware answers at once (no
//!   network), bare, with a middleware that only calls the next one (what reqwest-middleware
//!   costs per middleware), and with this project's middleware;
//! - ureq: an agent whose last middleware answers at once, bare and with this project's
//!   middleware before it.
//!
//! A sample is a batch of calls; the variants' batches run interleaved, in a shuffled order
//! each round, so that a noisy machine slows them alike. Writes
//! `target/breaker-bench/in_process.txt` (nanoseconds per call, medians of the batches) for
//! `cargo xtask bench in-process`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::fmt::Write as _;

use breaker_core::Policy;
use breaker_store_memory::MemoryStore;
use breaker_testkit::latency::{Plan, Variant, compare};
use bytes::Bytes;
use http_body_util::Empty;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_resilience_circuitbreaker::CircuitBreakerLayer;

/// Calls per sample: enough that the clock's own cost is lost in the batch.
const BATCH: u32 = 200;

const URL: &str = "http://backend.test/";

type Request = http::Request<Empty<Bytes>>;

fn request() -> Request {
    http::Request::get(URL).body(Empty::new()).unwrap()
}

/// `BATCH` calls of `service`, each through a clone as `oneshot` takes it.
fn tower_calls<S>(runtime: &tokio::runtime::Runtime, service: &S)
where
    S: Service<Request> + Clone,
    S::Error: std::fmt::Debug,
{
    runtime.block_on(async {
        for _ in 0..BATCH {
            let response = service.clone().oneshot(request()).await.unwrap();
            std::hint::black_box(response);
        }
    });
}

/// A reqwest middleware that does nothing but call the next one: what reqwest-middleware
/// itself costs per middleware.
struct PassReqwest;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for PassReqwest {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        next.run(request, extensions).await
    }
}

/// The last middleware of a reqwest client: answers at once, without the network.
struct AnswerReqwest;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for AnswerReqwest {
    async fn handle(
        &self,
        _: reqwest::Request,
        _: &mut http::Extensions,
        _: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Ok(reqwest::Response::from(http::Response::new("")))
    }
}

fn reqwest_calls(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest_middleware::ClientWithMiddleware,
) {
    runtime.block_on(async {
        for _ in 0..BATCH {
            let response = client.get(URL).send().await.unwrap();
            std::hint::black_box(response);
        }
    });
}

/// The last middleware of a ureq agent: answers at once, without the network.
struct AnswerUreq;

impl ureq::middleware::Middleware for AnswerUreq {
    fn handle(
        &self,
        _: http::Request<ureq::SendBody<'_>>,
        _: ureq::middleware::MiddlewareNext<'_>,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        Ok(http::Response::new(ureq::Body::builder().data("")))
    }
}

fn ureq_calls(agent: &ureq::Agent) {
    for _ in 0..BATCH {
        let response = agent.get(URL).call().unwrap();
        std::hint::black_box(response);
    }
}

fn main() {
    let plan = Plan::from_args();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policy = Policy::builder().minimum_failures(1 << 40).build().unwrap();
    let store = MemoryStore::new();
    let breaker = |name: &str| store.breaker(name, policy.clone()).unwrap();

    let noop = service_fn(|_: Request| async {
        Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
    });
    let tower_ours = breaker_tower::BreakerLayer::new()
        .mount(URL, breaker("tower"))
        .unwrap()
        .layer(noop);
    let tower_theirs = CircuitBreakerLayer::standard().build().unwrap().layer(noop);

    let reqwest_bare = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AnswerReqwest)
        .build();
    let reqwest_pass = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PassReqwest)
        .with(AnswerReqwest)
        .build();
    let reqwest_ours = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            breaker_reqwest::BreakerMiddleware::new()
                .mount(URL, breaker("reqwest"))
                .unwrap(),
        )
        .with(AnswerReqwest)
        .build();

    let ureq_agent = |with_breaker: bool| -> ureq::Agent {
        let mut config = ureq::Agent::config_builder();
        if with_breaker {
            config = config.middleware(
                breaker_ureq::BreakerMiddleware::new()
                    .mount(URL, breaker("ureq"))
                    .unwrap(),
            );
        }
        config.middleware(AnswerUreq).build().new_agent()
    };
    let (ureq_bare, ureq_ours) = (ureq_agent(false), ureq_agent(true));

    let mut variants = [
        Variant {
            name: "tower_bare",
            call: Box::new(|| tower_calls(&runtime, &noop)),
        },
        Variant {
            name: "tower_ours",
            call: Box::new(|| tower_calls(&runtime, &tower_ours)),
        },
        Variant {
            name: "tower_resilience",
            call: Box::new(|| tower_calls(&runtime, &tower_theirs)),
        },
        Variant {
            name: "reqwest_bare",
            call: Box::new(|| reqwest_calls(&runtime, &reqwest_bare)),
        },
        Variant {
            name: "reqwest_pass_through",
            call: Box::new(|| reqwest_calls(&runtime, &reqwest_pass)),
        },
        Variant {
            name: "reqwest_ours",
            call: Box::new(|| reqwest_calls(&runtime, &reqwest_ours)),
        },
        Variant {
            name: "ureq_bare",
            call: Box::new(|| ureq_calls(&ureq_bare)),
        },
        Variant {
            name: "ureq_ours",
            call: Box::new(|| ureq_calls(&ureq_ours)),
        },
    ];
    // A tenth of the latency plan's rounds: each sample here is a batch of calls.
    let results = compare(&mut variants, plan.warmup / 10, plan.rounds / 10);
    let mut figures = String::new();
    for result in &results {
        let per_call = result.p50.as_nanos() as f64 / f64::from(BATCH);
        let _ = writeln!(figures, "{}_ns={per_call:.1}", result.name);
    }
    plan.report("in_process", &figures);
}
