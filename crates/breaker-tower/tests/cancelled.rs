//! A call whose future is dropped (a timeout around the service, a cancelled request) while
//! it holds a half-open probe frees the probe slot at once, not when its lease ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use breaker_core::{BlockingOperate, ManualClock, Policy, Timestamp};
use breaker_store_memory::MemoryStore;
use breaker_testkit::http_server::{Reply, TestServer};
use breaker_tower::{BreakerLayer, BreakerOpen};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

fn get(url: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(url).body(Empty::new()).unwrap()
}

#[tokio::test]
async fn a_dropped_probe_frees_its_slot_at_once() {
    let server = TestServer::start();
    // The clock stands still after the open period: a probe's lease (a minute) never ends
    // in this test, so only the dropped call can free the slot.
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let store = MemoryStore::with_clock(clock.clone());
    let policy = Policy::builder()
        .minimum_failures(1)
        .open_for(Duration::from_secs(10))
        .half_open_probes(1)
        .probe_lease(Duration::from_secs(60))
        .build()
        .unwrap();
    let breaker = store.breaker("cancelled", policy).unwrap();
    let operator = store.get("cancelled").unwrap();
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let service = BreakerLayer::new()
        .mount(&server.url(""), breaker)
        .unwrap()
        .layer(hyper);

    server.push([Reply::Status(500)]);
    let tripped = service
        .clone()
        .oneshot(get(&server.url("/")))
        .await
        .unwrap();
    assert_eq!(tripped.status(), 500);
    assert!(tripped.extensions().get::<BreakerOpen>().is_none());
    clock.advance(Duration::from_secs(10));

    // The probe's backend is slow; the timeout drops the call's future.
    server.push([Reply::Delayed(Duration::from_secs(2), 200)]);
    let probe = service.clone().oneshot(get(&server.url("/")));
    let dropped = tokio::time::timeout(Duration::from_millis(200), probe).await;
    assert!(dropped.is_err(), "the probe timed out");
    assert_eq!(server.hits(), 2, "the probe reached the server");
    assert_eq!(
        operator.snapshot().unwrap().probes_in_flight,
        0,
        "the dropped probe holds no slot"
    );

    // The next call is the probe, at once: it reaches the server and closes the breaker.
    let next = service
        .clone()
        .oneshot(get(&server.url("/")))
        .await
        .unwrap();
    assert!(
        next.extensions().get::<BreakerOpen>().is_none(),
        "admitted as a probe, not rejected until the lease ends"
    );
    assert_eq!(next.status(), 200);
    assert_eq!(server.hits(), 3);
    assert_eq!(
        operator.snapshot().unwrap().state,
        breaker_core::State::Closed
    );
}
