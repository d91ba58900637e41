//! The ureq middleware with the blocking Redis store, through the shared Redis scenarios: a
//! store failure during a call costs no response, two processes share one breaker, and
//! breakers made on demand are shared. The test binary runs itself as the second process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::time::Duration;

use breaker_core::{Listeners, Policy};
use breaker_store_redis::{BlockingRedisStore, RedisConfig};
use breaker_testkit::adapter::Client;
use breaker_testkit::shared::{RedisClients, shared_through_redis};
use breaker_ureq::{BreakerMiddleware, OnDemand};

struct Ureq;

impl RedisClients for Ureq {
    fn mounted(
        &self,
        redis_url: &str,
        timeout: Duration,
        backend: &str,
        policy: Policy,
        listeners: Listeners,
    ) -> Box<dyn Client> {
        let config = RedisConfig::standalone(redis_url).timeout(timeout);
        let store = BlockingRedisStore::connect(config).unwrap();
        let breaker = store.breaker("shared-backend", policy).unwrap();
        let middleware = BreakerMiddleware::new().mount(backend, breaker.with_listeners(listeners));
        support::client(middleware.unwrap())
    }

    fn on_demand(&self, redis_url: &str, policy: Policy) -> Box<dyn Client> {
        let config = RedisConfig::standalone(redis_url).max_staleness(Duration::ZERO);
        let store = BlockingRedisStore::connect(config).unwrap();
        let per_host = OnDemand::new(move |name: &str| store.breaker(name, policy.clone()));
        support::client(BreakerMiddleware::new().on_demand(per_host))
    }
}

fn main() {
    shared_through_redis(&Ureq, "ureq");
}
