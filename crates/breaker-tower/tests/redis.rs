//! The tower layer with the async Redis store, through the shared Redis scenarios: a store
//! failure during a call costs no response, two processes share one breaker, and breakers
//! made on demand are shared. The test binary runs itself as the second process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::time::Duration;

use breaker_core::{Listeners, Policy};
use breaker_store_redis::{RedisConfig, RedisStore};
use breaker_testkit::adapter::Client;
use breaker_testkit::runtime;
use breaker_testkit::shared::{RedisClients, shared_through_redis};
use breaker_tower::{BreakerLayer, OnDemand};

struct Tower;

impl RedisClients for Tower {
    fn mounted(
        &self,
        redis_url: &str,
        timeout: Duration,
        backend: &str,
        policy: Policy,
        listeners: Listeners,
    ) -> Box<dyn Client> {
        let breaker = runtime().block_on(async {
            let config = RedisConfig::standalone(redis_url).timeout(timeout);
            let store = RedisStore::connect(config).await.unwrap();
            let breaker = store.breaker("shared-backend", policy).await.unwrap();
            breaker.with_listeners(listeners)
        });
        support::client(BreakerLayer::new().mount(backend, breaker).unwrap())
    }

    fn on_demand(&self, redis_url: &str, policy: Policy) -> Box<dyn Client> {
        let config = RedisConfig::standalone(redis_url).max_staleness(Duration::ZERO);
        let store = runtime().block_on(RedisStore::connect(config)).unwrap();
        let per_host = OnDemand::new_async(move |name: String| {
            let (store, policy) = (store.clone(), policy.clone());
            async move { store.breaker(&name, policy).await }
        });
        support::client(BreakerLayer::new().on_demand(per_host))
    }
}

fn main() {
    shared_through_redis(&Tower, "tower");
}
