//! The tower layer over hyper-util's client against the shared adapter suite, on a real local HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

breaker_testkit::adapter_suite!(memory, |breakers| support::client(
    breaker_tower::BreakerLayer::from(breakers)
));
