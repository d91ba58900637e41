//! A ureq agent with a circuit breaker, against a local backend that fails for a while.
//!
//! ```sh
//! cargo run -p breaker-ureq --example ureq_breaker                 # memory store
//! cargo run -p breaker-ureq --example ureq_breaker -- --redis      # a throwaway redis-server
//! cargo run -p breaker-ureq --example ureq_breaker -- --redis redis://127.0.0.1:6379
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use breaker_core::{BlockingBreaker, Event, EventKind, Listeners, Policy};
use breaker_store_memory::MemoryStore;
use breaker_store_redis::{BlockingRedisStore, RedisConfig};
use breaker_testkit::http_server::{Reply, TestServer};
use breaker_testkit::redis_server::RedisServer;
use breaker_ureq::{BreakerMiddleware, BreakerOpen};

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

fn run<B: BlockingBreaker + 'static>(backend: &TestServer, breaker: B) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .middleware(
            BreakerMiddleware::new()
                .mount(&backend.url(""), breaker)
                .unwrap(),
        )
        .build()
        .into();
    backend.push(std::iter::repeat_n(Reply::Status(503), 3));
    for call in 1..=8 {
        let response = agent.get(backend.url("/orders")).call().unwrap();
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
    std::thread::sleep(Duration::from_millis(600));
    println!("after the open period:");
    for call in 9..=10 {
        println!(
            "call {call}: {}",
            agent.get(backend.url("/orders")).call().unwrap().status()
        );
    }
    println!("the backend received {} requests of 10", backend.hits());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backend = TestServer::start();
    match args.iter().position(|arg| arg == "--redis") {
        None => {
            println!("memory store:");
            let breaker = MemoryStore::new().breaker("orders", policy()).unwrap();
            run(&backend, breaker.with_listeners(listeners()));
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
            let store = BlockingRedisStore::connect(config).unwrap();
            run(
                &backend,
                store
                    .breaker("orders", policy())
                    .unwrap()
                    .with_listeners(listeners()),
            );
        }
    }
}
