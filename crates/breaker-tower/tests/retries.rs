//! The breaker under tower's retry layer: every attempt goes through the breaker and counts,
//! and a rejection (the synthetic response or, in error mode, the error) is never retried.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::{Ready, ready};

use breaker_core::Policy;
use breaker_store_memory::MemoryStore;
use breaker_testkit::http_server::{Reply, TestServer};
use breaker_tower::{BoxError, BreakerLayer, RejectionMode, rejection_of};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioExecutor;
use tower::retry::{Policy as RetryPolicy, RetryLayer};
use tower::{ServiceBuilder, ServiceExt};

type Request = http::Request<Empty<Bytes>>;

/// Retries 5xx and errors, at most `left` times, but never a call the breaker rejected.
#[derive(Clone)]
struct RetryFailures {
    left: usize,
}

impl<T> RetryPolicy<Request, http::Response<T>, BoxError> for RetryFailures {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request,
        result: &mut Result<http::Response<T>, BoxError>,
    ) -> Option<Ready<()>> {
        if rejection_of(result).is_some() {
            return None;
        }
        let failed = result
            .as_ref()
            .map_or(true, |response| response.status().is_server_error());
        (failed && self.left > 0).then(|| {
            self.left -= 1;
            ready(())
        })
    }

    fn clone_request(&mut self, request: &Request) -> Option<Request> {
        let mut clone = http::Request::new(Empty::new());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.headers_mut() = request.headers().clone();
        Some(clone)
    }
}

#[tokio::test]
async fn every_attempt_counts_and_a_rejection_is_never_retried() {
    for mode in [RejectionMode::Response, RejectionMode::Error] {
        let server = TestServer::start();
        server.set_default(Reply::Status(500));
        let policy = Policy::builder().minimum_failures(3).build().unwrap();
        let breaker = MemoryStore::new().breaker("retried", policy).unwrap();
        let breakers = BreakerLayer::new()
            .rejection_mode(mode)
            .mount(&server.url(""), breaker)
            .unwrap();
        let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Empty<Bytes>>();
        // Retries outside, the breaker inside: each attempt asks the breaker and is counted.
        let client = ServiceBuilder::new()
            .layer(RetryLayer::new(RetryFailures { left: 5 }))
            .layer(breakers)
            .service(hyper);

        // Three attempts fail and trip the breaker; the fourth is rejected and ends the
        // retries.
        let request = http::Request::get(server.url("/"))
            .body(Empty::new())
            .unwrap();
        let result = client.clone().oneshot(request).await;
        let rejection = rejection_of(&result).expect("rejected in the end");
        assert_eq!(rejection.name, "retried");
        assert_eq!(result.is_err(), mode == RejectionMode::Error);
        assert_eq!(server.hits(), 3, "{mode:?}");

        // While open, a call is one rejection: nothing sent, nothing retried.
        let request = http::Request::get(server.url("/"))
            .body(Empty::new())
            .unwrap();
        assert!(rejection_of(&client.oneshot(request).await).is_some());
        assert_eq!(server.hits(), 3, "{mode:?}");
    }
}
