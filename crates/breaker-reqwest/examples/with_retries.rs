//! reqwest-retry around the breaker: every attempt is counted by the breaker, and once it
//! opens, the rejection ends the retries at once instead of being retried.
//!
//! ```sh
//! cargo run -p breaker-reqwest --example with_retries
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use breaker_core::Policy;
use breaker_reqwest::{BreakerMiddleware, BreakerOpen, rejection_of};
use breaker_store_memory::MemoryStore;
use breaker_testkit::http_server::{Reply, TestServer};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{
    DefaultRetryableStrategy, RetryTransientMiddleware, Retryable, RetryableStrategy,
};

/// The default strategy, except that a call the breaker rejected is final.
struct NeverRetryRejections;

impl RetryableStrategy for NeverRetryRejections {
    fn handle(&self, result: &reqwest_middleware::Result<reqwest::Response>) -> Option<Retryable> {
        if rejection_of(result).is_some() {
            return Some(Retryable::Fatal);
        }
        DefaultRetryableStrategy.handle(result)
    }
}

#[tokio::main]
async fn main() {
    let backend = TestServer::start();
    backend.set_default(Reply::Status(503));
    let policy = Policy::builder().minimum_failures(3).build().unwrap();
    let breaker = MemoryStore::new().breaker("orders", policy).unwrap();
    let backoff = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(10), Duration::from_millis(50))
        .build_with_max_retries(5);
    // The retry middleware first (outside), the breaker second (inside): each attempt asks
    // the breaker and is counted.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy_and_strategy(
            backoff,
            NeverRetryRejections,
        ))
        .with(
            BreakerMiddleware::new()
                .mount(&backend.url(""), breaker)
                .unwrap(),
        )
        .build();
    for call in 1..=3 {
        let response = client.get(backend.url("/orders")).send().await.unwrap();
        let rejected = response.extensions().get::<BreakerOpen>().is_some();
        println!(
            "call {call}: {}{}; the backend has received {} requests",
            response.status(),
            if rejected {
                " (rejected by the breaker)"
            } else {
                ""
            },
            backend.hits()
        );
    }
}
