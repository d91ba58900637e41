//! The ureq middleware with the blocking Redis store: a store failure during a call costs no
//! response, and two processes share one breaker (one trips it, the other stops sending).
//! The test binary runs itself as the second process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use breaker_core::{Event, EventKind, Listeners, Policy, StoreFailurePolicy};
use breaker_store_redis::{BlockingRedisStore, RedisConfig};
use breaker_testkit::http_server::{Reply, TestServer};
use breaker_testkit::redis_server::RedisServer;
use breaker_ureq::{BreakerMiddleware, OnDemand, Rejection};
use std::sync::atomic::{AtomicUsize, Ordering};

fn agent(redis_url: &str, backend: &str, timeout: Duration) -> ureq::Agent {
    let store =
        BlockingRedisStore::connect(RedisConfig::standalone(redis_url).timeout(timeout)).unwrap();
    let policy = Policy::builder()
        .minimum_failures(3)
        .on_store_failure(StoreFailurePolicy::FailOpen)
        .build()
        .unwrap();
    let middleware = BreakerMiddleware::new()
        .mount(
            backend,
            store
                .breaker("shared-backend", policy)
                .unwrap()
                .with_listeners(store_errors()),
        )
        .unwrap();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .middleware(middleware)
        .build()
        .into()
}

static STORE_ERRORS: AtomicUsize = AtomicUsize::new(0);

/// Counts the store errors breakers report.
fn store_errors() -> Listeners {
    Listeners::new().with(|event: &Event<'_>| {
        if let EventKind::StoreError(_) = event.kind {
            STORE_ERRORS.fetch_add(1, Ordering::SeqCst);
        }
    })
}

fn main() {
    if let (Ok(redis), Ok(backend)) = (std::env::var("CHILD_REDIS"), std::env::var("CHILD_BACKEND"))
    {
        // The other process: its calls fail and trip the shared breaker.
        let agent = agent(&redis, &backend, Duration::from_secs(2));
        for _ in 0..3 {
            assert_eq!(
                agent.get(&format!("{backend}/")).call().unwrap().status(),
                500
            );
        }
        return;
    }

    let redis = Arc::new(RedisServer::start());
    let backend = TestServer::start();

    // A store failure during a call: Redis freezes while the backend answers.
    let agent_here = agent(&redis.url(), &backend.url(""), Duration::from_millis(50));
    assert_eq!(
        agent_here.get(&backend.url("/")).call().unwrap().status(),
        200
    );
    let frozen = redis.clone();
    backend.push([Reply::Hook(Arc::new(move || frozen.pause()), 200)]);
    let answer = agent_here.get(&backend.url("/")).call().unwrap();
    redis.resume();
    assert_eq!(
        answer.status(),
        200,
        "the backend's response arrives although recording failed"
    );
    assert!(
        STORE_ERRORS.load(Ordering::SeqCst) > 0,
        "recording did fail"
    );

    // Two processes: the child trips the breaker, then this process stops sending.
    backend.set_default(Reply::Status(500));
    let status = Command::new(std::env::current_exe().unwrap())
        .env("CHILD_REDIS", redis.url())
        .env("CHILD_BACKEND", backend.url(""))
        .status()
        .unwrap();
    assert!(status.success(), "the child process failed");
    let hits = backend.hits();
    let agent_here = agent(&redis.url(), &backend.url(""), Duration::from_secs(2));
    let answer = agent_here.get(&backend.url("/")).call().unwrap();
    assert!(
        answer.extensions().get::<Rejection>().is_some(),
        "the shared breaker is open here too"
    );
    assert_eq!(backend.hits(), hits, "this process sent nothing");

    // Breakers on demand through the blocking store: two agents make the same breaker for a
    // host, so one's failures stop the other's calls.
    let on_demand = |redis_url: &str| -> ureq::Agent {
        // Every call asks Redis, so the other agent sees a trip on its next call.
        let config = RedisConfig::standalone(redis_url).max_staleness(Duration::ZERO);
        let store = BlockingRedisStore::connect(config).unwrap();
        let policy = Policy::builder().minimum_failures(3).build().unwrap();
        let per_host = OnDemand::new(move |name: &str| store.breaker(name, policy.clone()));
        let middleware = BreakerMiddleware::new().on_demand(per_host);
        let config = ureq::Agent::config_builder().http_status_as_error(false);
        config.middleware(middleware).build().into()
    };
    let (one, two) = (on_demand(&redis.url()), on_demand(&redis.url()));
    let failing = TestServer::start();
    failing.set_default(Reply::Status(500));
    for _ in 0..3 {
        assert_eq!(one.get(failing.url("/")).call().unwrap().status(), 500);
    }
    let hits = failing.hits();
    let answer = two.get(failing.url("/")).call().unwrap();
    assert!(
        answer.extensions().get::<Rejection>().is_some(),
        "the host's breaker is open for the other agent too"
    );
    assert_eq!(failing.hits(), hits, "the other agent sent nothing");
    println!("ureq with redis: 3 passed, 0 failed");
}
