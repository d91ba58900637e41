//! The reqwest adapter with the async Redis store, through the shared Redis scenarios: a store
//! failure during a call costs no response, two processes share one breaker, and breakers
//! made on demand are shared. The test binary runs itself as the second process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

breaker_testkit::redis_scenarios!("reqwest", async, |breakers| support::client(
    breaker_reqwest::BreakerMiddleware::from(breakers)
));
