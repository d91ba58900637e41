//! With ureq's default configuration (statuses as errors), a real 503 still counts as a
//! failure and reaches the caller as `Err(StatusCode(503))`, while the synthetic rejection
//! reaches the caller as an `Ok` response, exactly as SPEC section 5 gives it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use breaker_core::Policy;
use breaker_store_memory::MemoryStore;
use breaker_testkit::http_server::{Reply, TestServer};
use breaker_ureq::{BreakerMiddleware, BreakerOpen};

#[test]
fn statuses_as_errors_still_count_and_rejections_arrive_as_responses() {
    let server = TestServer::start();
    let store = MemoryStore::new();
    let policy = Policy::builder().minimum_failures(2).build().unwrap();
    let middleware = BreakerMiddleware::new()
        .mount(&server.url(""), store.breaker("defaults", policy).unwrap())
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .middleware(middleware)
        .build()
        .into();
    server.push([Reply::Status(503), Reply::Status(404), Reply::Status(503)]);
    for expected in [503, 404, 503] {
        match agent.get(server.url("/")).call() {
            Err(ureq::Error::StatusCode(status)) => assert_eq!(status, expected),
            other => panic!("expected status {expected} as an error, got {other:?}"),
        }
    }
    let mut rejected = agent
        .get(server.url("/"))
        .call()
        .expect("the rejection is a response");
    assert_eq!(rejected.status(), 500);
    assert_eq!(rejected.headers()["x-circuit-breaker"], "breaker tripped");
    assert_eq!(rejected.headers()["content-type"], "application/json");
    assert!(rejected.extensions().get::<BreakerOpen>().is_some());
    let body = rejected.body_mut().read_to_string().unwrap();
    assert_eq!(
        body,
        r#"{"errors": [{"msg": "Circuit breaker defaults tripped"}]}"#
    );
    assert_eq!(server.hits(), 3);
}
