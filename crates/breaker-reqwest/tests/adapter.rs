//! The reqwest middleware against the shared adapter suite, on a real local HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use breaker_core::{ManualClock, Timestamp};
use breaker_http::Breakers;
use breaker_reqwest::BreakerMiddleware;
use breaker_store_memory::{MemoryBreaker, MemoryStore};
use breaker_testkit::adapter::{Adapter, Backing, Client};

#[derive(Clone)]
struct Reqwest(Backing<MemoryBreaker>);

impl Adapter for Reqwest {
    type Breaker = MemoryBreaker;

    fn backing(&self) -> &Backing<MemoryBreaker> {
        &self.0
    }

    fn client_over(&self, breakers: Breakers<MemoryBreaker>) -> Box<dyn Client> {
        support::client(BreakerMiddleware::from(breakers))
    }
}

fn memory() -> Backing<MemoryBreaker> {
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let store = MemoryStore::with_clock(clock.clone());
    Backing::new(clock, move |name, policy, listeners| {
        store
            .breaker(name, policy)
            .unwrap()
            .with_listeners(listeners)
    })
}

breaker_testkit::adapter_suite!(Reqwest(memory()));
