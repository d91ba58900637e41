//! The breaker under reqwest-retry: every attempt goes through the breaker and counts, and a
//! rejection (the synthetic response or, in error mode, the error) is never retried.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use breaker_core::Policy;
use breaker_reqwest::{BreakerMiddleware, BreakerOpen, RejectionMode, rejection_of};
use breaker_store_memory::{MemoryBreaker, MemoryStore};
use breaker_testkit::adapter::{recorder, wait_for};
use breaker_testkit::http_server::{Reply, TestServer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{
    DefaultRetryableStrategy, RetryTransientMiddleware, Retryable, RetryableStrategy,
};

/// reqwest-retry's default strategy, except that a rejection is final.
struct NeverRetryRejections;

impl RetryableStrategy for NeverRetryRejections {
    fn handle(&self, result: &reqwest_middleware::Result<reqwest::Response>) -> Option<Retryable> {
        if rejection_of(result).is_some() {
            return Some(Retryable::Fatal);
        }
        DefaultRetryableStrategy.handle(result)
    }
}

/// Retries outside, the breaker inside: each attempt asks the breaker and is counted.
fn client(breakers: BreakerMiddleware<MemoryBreaker>) -> ClientWithMiddleware {
    let backoff = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(5);
    let retries =
        RetryTransientMiddleware::new_with_policy_and_strategy(backoff, NeverRetryRejections);
    ClientBuilder::new(reqwest::Client::new())
        .with(retries)
        .with(breakers)
        .build()
}

fn policy() -> Policy {
    Policy::builder().minimum_failures(3).build().unwrap()
}

#[tokio::test]
async fn every_attempt_counts_and_a_rejected_one_is_not_retried() {
    let server = TestServer::start();
    server.set_default(Reply::Status(500));
    let (listeners, seen) = recorder();
    let breaker = MemoryStore::new()
        .breaker("retried", policy())
        .unwrap()
        .with_listeners(listeners);
    let client = client(
        BreakerMiddleware::new()
            .mount(&server.url(""), breaker)
            .unwrap(),
    );

    // Three attempts fail and trip the breaker; the fourth is rejected and ends the retries.
    let response = client.get(server.url("/")).send().await.unwrap();
    assert!(response.extensions().get::<BreakerOpen>().is_some());
    assert_eq!(server.hits(), 3);
    let kinds: Vec<_> = wait_for(&seen, 5).iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["failure", "failure", "failure", "trip", "rejected"]);

    // While open, one call is one rejection: no retries, nothing sent.
    let again = client.get(server.url("/")).send().await.unwrap();
    assert!(again.extensions().get::<BreakerOpen>().is_some());
    assert_eq!(server.hits(), 3);
    assert_eq!(wait_for(&seen, 6).len(), 6, "one more rejection, no more");
}

#[tokio::test]
async fn in_error_mode_the_rejection_is_final_too() {
    let server = TestServer::start();
    server.set_default(Reply::Status(503));
    let breaker = MemoryStore::new()
        .breaker("retried-errors", policy())
        .unwrap();
    let middleware = BreakerMiddleware::new()
        .rejection_mode(RejectionMode::Error)
        .mount(&server.url(""), breaker)
        .unwrap();
    let client = client(middleware);
    let result = client.get(server.url("/")).send().await;
    assert!(result.is_err(), "an error, not a response");
    let rejection = rejection_of(&result).expect("the breaker's error, within the retry's");
    assert_eq!(rejection.name, "retried-errors");
    assert_eq!(server.hits(), 3);
}
