//! The reqwest middleware with the async Redis store: a store failure during a call costs no
//! response, and two processes share one breaker (one trips it, the other stops sending).
//! The test binary runs itself as the second process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use breaker_core::{Event, EventKind, Listeners, Policy, StoreFailurePolicy};
use breaker_reqwest::{BreakerMiddleware, OnDemand, Rejection};
use breaker_store_redis::{RedisConfig, RedisStore};
use breaker_testkit::http_server::{Reply, TestServer};
use breaker_testkit::redis_server::RedisServer;
use reqwest_middleware::ClientWithMiddleware;
use std::sync::atomic::{AtomicUsize, Ordering};

async fn client(redis_url: &str, backend: &str, timeout: Duration) -> ClientWithMiddleware {
    let store = RedisStore::connect(RedisConfig::standalone(redis_url).timeout(timeout))
        .await
        .unwrap();
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
                .await
                .unwrap()
                .with_listeners(store_errors()),
        )
        .unwrap();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

/// A client whose breakers are made on demand, one per host, in the Redis store at `redis_url`.
async fn on_demand(redis_url: &str) -> ClientWithMiddleware {
    // Every call asks Redis, so the other client sees a trip on its next call.
    let config = RedisConfig::standalone(redis_url).max_staleness(Duration::ZERO);
    let store = RedisStore::connect(config).await.unwrap();
    let policy = Policy::builder().minimum_failures(3).build().unwrap();
    let per_host = OnDemand::new_async(move |name: String| {
        let (store, policy) = (store.clone(), policy.clone());
        async move { store.breaker(&name, policy).await }
    });
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BreakerMiddleware::new().on_demand(per_host))
        .build()
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let (Ok(redis), Ok(backend)) = (std::env::var("CHILD_REDIS"), std::env::var("CHILD_BACKEND"))
    {
        // The other process: its calls fail and trip the shared breaker.
        runtime.block_on(async {
            let client = client(&redis, &backend, Duration::from_secs(2)).await;
            for _ in 0..3 {
                assert_eq!(
                    client
                        .get(format!("{backend}/"))
                        .send()
                        .await
                        .unwrap()
                        .status(),
                    500
                );
            }
        });
        return;
    }

    let redis = Arc::new(RedisServer::start());
    let backend = TestServer::start();
    runtime.block_on(async {
        // A store failure during a call: Redis freezes while the backend answers.
        let here = client(&redis.url(), &backend.url(""), Duration::from_millis(50)).await;
        assert_eq!(
            here.get(backend.url("/")).send().await.unwrap().status(),
            200
        );
        let frozen = redis.clone();
        backend.push([Reply::Hook(Arc::new(move || frozen.pause()), 200)]);
        let answer = here.get(backend.url("/")).send().await.unwrap();
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
    });

    // Two processes: the child trips the breaker, then this process stops sending.
    backend.set_default(Reply::Status(500));
    let status = Command::new(std::env::current_exe().unwrap())
        .env("CHILD_REDIS", redis.url())
        .env("CHILD_BACKEND", backend.url(""))
        .status()
        .unwrap();
    assert!(status.success(), "the child process failed");
    let hits = backend.hits();
    runtime.block_on(async {
        let here = client(&redis.url(), &backend.url(""), Duration::from_secs(2)).await;
        let answer = here.get(backend.url("/")).send().await.unwrap();
        assert!(
            answer.extensions().get::<Rejection>().is_some(),
            "the shared breaker is open here too"
        );
    });
    assert_eq!(backend.hits(), hits, "this process sent nothing");

    // Breakers on demand through the async store: two clients make the same breaker for a
    // host, so one's failures stop the other's calls.
    let failing = TestServer::start();
    failing.set_default(Reply::Status(500));
    runtime.block_on(async {
        let (one, two) = (on_demand(&redis.url()).await, on_demand(&redis.url()).await);
        for _ in 0..3 {
            let answer = one.get(failing.url("/")).send().await.unwrap();
            assert_eq!(answer.status(), 500);
        }
        let hits = failing.hits();
        let answer = two.get(failing.url("/")).send().await.unwrap();
        assert!(
            answer.extensions().get::<Rejection>().is_some(),
            "the host's breaker is open for the other client too"
        );
        assert_eq!(failing.hits(), hits, "the other client sent nothing");
    });
    println!("reqwest with redis: 3 passed, 0 failed");
}
