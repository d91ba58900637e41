//! A reqwest client with a circuit breaker, against a local backend that fails for a while.
//!
//! ```sh
//! cargo run -p breaker-reqwest --example reqwest_breaker                 # memory store
//! cargo run -p breaker-reqwest --example reqwest_breaker -- --redis      # a throwaway redis-server
//! cargo run -p breaker-reqwest --example reqwest_breaker -- --redis redis://127.0.0.1:6379
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use breaker_core::{AsyncBreaker, Event, EventKind, Listeners, Policy};
use breaker_reqwest::{BreakerMiddleware, BreakerOpen, HttpContext};
use breaker_store_memory::MemoryStore;
use breaker_store_redis::{AsyncRedisStore, RedisConfig};
use breaker_testkit::http_server::{Reply, TestServer};
use breaker_testkit::redis_server::RedisServer;

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
        let url = event
            .context
            .and_then(|context| context.downcast_ref::<HttpContext>())
            .map(|context| context.url.clone())
            .unwrap_or_default();
        match event.kind {
            EventKind::Transition(transition) => println!("  [{}] {transition:?}", event.breaker),
            EventKind::Failure => println!("  [{}] failure: {url}", event.breaker),
            _ => {}
        }
    })
}

async fn run<B: AsyncBreaker + 'static>(backend: &TestServer, breaker: B) {
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            BreakerMiddleware::new()
                .mount(&backend.url(""), breaker)
                .unwrap(),
        )
        .build();
    backend.push(std::iter::repeat_n(Reply::Status(503), 3));
    for call in 1..=8 {
        let response = client.get(backend.url("/orders")).send().await.unwrap();
        let rejected = response.extensions().get::<BreakerOpen>().is_some();
        println!(
            "call {call}: {}{}",
            response.status(),
            if rejected {
                " (rejected by the breaker, no request sent)"
            } else {
                ""
            }
        );
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    println!("after the open period:");
    for call in 9..=10 {
        let response = client.get(backend.url("/orders")).send().await.unwrap();
        println!("call {call}: {}", response.status());
    }
    println!("the backend received {} requests of 10", backend.hits());
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backend = TestServer::start();
    match args.iter().position(|arg| arg == "--redis") {
        None => {
            println!("memory store:");
            let breaker = MemoryStore::new().breaker("orders", policy()).unwrap();
            run(&backend, breaker.with_listeners(listeners())).await;
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
            println!("redis store at {url}:");
            let config =
                RedisConfig::standalone(url).prefix(format!("example-{}", std::process::id()));
            let store = AsyncRedisStore::connect(config).await.unwrap();
            let breaker = store.breaker("orders", policy()).await.unwrap();
            run(&backend, breaker.with_listeners(listeners())).await;
        }
    }
}
