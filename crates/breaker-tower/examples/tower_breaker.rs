//! hyper-util's client behind the breaker's tower layer, against two local backends: one
//! fails for a while, the other stays healthy. Each backend gets its own breaker on demand
//! (one per authority), made on first use.
//!
//! ```sh
//! cargo run -p breaker-tower --example tower_breaker                 # memory store
//! cargo run -p breaker-tower --example tower_breaker -- --redis      # a throwaway redis-server
//! cargo run -p breaker-tower --example tower_breaker -- --redis redis://127.0.0.1:6379
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use breaker_core::{AsyncBreaker, Event, EventKind, Listeners, Policy};
use breaker_store_memory::MemoryStore;
use breaker_store_redis::{AsyncRedisStore, RedisConfig};
use breaker_testkit::http_server::{Reply, TestServer};
use breaker_testkit::redis_server::RedisServer;
use breaker_tower::{BreakerLayer, BreakerOpen, OnDemand};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

fn policy() -> Policy {
    Policy::builder()
        .minimum_failures(3)
        .failure_rate(50.0)
        .open_for(Duration::from_millis(500))
        .build()
        .expect("a valid policy")
}

fn listeners() -> Listeners {
    Listeners::new().with(|event: &Event<'_>| {
        if let EventKind::Transition(transition) = event.kind {
            println!("  [{}] {transition:?}", event.breaker);
        }
    })
}

async fn run<B: AsyncBreaker + 'static>(
    failing: &TestServer,
    healthy: &TestServer,
    on_demand: OnDemand<B>,
) {
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let client = BreakerLayer::new().on_demand(on_demand).layer(hyper);
    failing.push(std::iter::repeat_n(Reply::Status(503), 3));
    for call in 1..=6 {
        for backend in [failing, healthy] {
            let request = http::Request::get(backend.url("/orders"))
                .body(Empty::new())
                .unwrap();
            let response = client.clone().oneshot(request).await.unwrap();
            let rejected = response.extensions().get::<BreakerOpen>().is_some();
            println!(
                "call {call} to {}: {}{}",
                backend.url(""),
                response.status(),
                if rejected {
                    " (rejected by the breaker, no request sent)"
                } else {
                    ""
                }
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let request = http::Request::get(failing.url("/orders"))
        .body(Empty::new())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    println!("after the open period: {}", response.status());
    println!(
        "the failing backend received {} requests of 7, the healthy one {} of 6",
        failing.hits(),
        healthy.hits()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (failing, healthy) = (TestServer::start(), TestServer::start());
    match args.iter().position(|arg| arg == "--redis") {
        None => {
            println!("memory store, a breaker per backend:");
            let store = MemoryStore::new();
            let on_demand = OnDemand::new(move |name: &str| {
                Ok(store.breaker(name, policy())?.with_listeners(listeners()))
            });
            run(&failing, &healthy, on_demand).await;
        }
        Some(at) => {
            let (_server, url) = match args.get(at + 1) {
                Some(url) => (None, url.clone()),
                None => {
                    let server = RedisServer::start();
                    let url = server.url();
                    (Some(server), url)
                }
            };
            println!("redis store at {url}, a breaker per backend:");
            let config =
                RedisConfig::standalone(url).prefix(format!("example-{}", std::process::id()));
            let store = AsyncRedisStore::connect(config).await.unwrap();
            let on_demand = OnDemand::new_async(move |name: String| {
                let store = store.clone();
                async move {
                    Ok(store
                        .breaker(&name, policy())
                        .await?
                        .with_listeners(listeners()))
                }
            });
            run(&failing, &healthy, on_demand).await;
        }
    }
}
