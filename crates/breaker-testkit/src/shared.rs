//! What an HTTP adapter must show when its breakers live in Redis, written once: a store
//! failure during a call costs no response, two processes share one breaker, and breakers
//! made on demand are shared by clients that each have their own store connection.
//!
//! An adapter's `tests/redis.rs` (with `harness = false`: the binary runs itself as the
//! second process) expands [`redis_scenarios!`](crate::redis_scenarios), which implements
//! [`RedisClients`] over the async or blocking store and calls [`shared_through_redis`].

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breaker_core::{Event, EventKind, Listeners, Policy, StoreFailurePolicy};

use crate::adapter::{Answer, Client};
use crate::http_server::{Reply, TestServer};
use crate::redis_server::RedisServer;

/// How an adapter's clients get breakers that live in Redis.
pub trait RedisClients {
    /// A client with one breaker named `shared-backend` with `policy`, mounted on the prefix
    /// `backend`, in the Redis at `redis_url` whose requests time out after `timeout`, telling
    /// `listeners`.
    fn mounted(
        &self,
        redis_url: &str,
        timeout: Duration,
        backend: &str,
        policy: Policy,
        listeners: Listeners,
    ) -> Box<dyn Client>;

    /// A client whose breakers, with `policy`, are made on demand (one per host) in the Redis
    /// at `redis_url`, with a `max_staleness` of zero: every call asks Redis.
    fn on_demand(&self, redis_url: &str, policy: Policy) -> Box<dyn Client>;
}

const CHILD_REDIS: &str = "BREAKER_TEST_CHILD_REDIS";
const CHILD_BACKEND: &str = "BREAKER_TEST_CHILD_BACKEND";

/// Three failures trip it; a store failure lets the call through.
fn policy() -> Policy {
    Policy::builder()
        .minimum_failures(3)
        .on_store_failure(StoreFailurePolicy::FailOpen)
        .build()
        .unwrap()
}

fn get(client: &dyn Client, url: &str) -> Answer {
    client.get(url, &[]).unwrap()
}

/// Runs the scenarios for the adapter `name` (or, in the child process this starts, the
/// child's part), and prints a summary line.
pub fn shared_through_redis(clients: &dyn RedisClients, name: &str) {
    if let (Ok(redis), Ok(backend)) = (std::env::var(CHILD_REDIS), std::env::var(CHILD_BACKEND)) {
        // The other process: its calls fail and trip the shared breaker.
        let timeout = Duration::from_secs(2);
        let client = clients.mounted(&redis, timeout, &backend, policy(), Listeners::new());
        for _ in 0..3 {
            assert_eq!(get(&*client, &format!("{backend}/")).status, 500);
        }
        return;
    }
    let redis = Arc::new(RedisServer::start());
    let backend = TestServer::start();

    // A store failure during a call: Redis freezes while the backend answers.
    let errors = Arc::new(AtomicUsize::new(0));
    let counted = errors.clone();
    let listeners = Listeners::new().with(move |event: &Event<'_>| {
        if let EventKind::StoreError(_) = event.kind {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let timeout = Duration::from_millis(50);
    let here = clients.mounted(&redis.url(), timeout, &backend.url(""), policy(), listeners);
    assert_eq!(get(&*here, &backend.url("/")).status, 200);
    let frozen = redis.clone();
    backend.push([Reply::Hook(Arc::new(move || frozen.pause()), 200)]);
    let answer = get(&*here, &backend.url("/"));
    redis.resume();
    assert_eq!(
        answer.status, 200,
        "the backend's response arrives although recording failed"
    );
    crate::eventually("listeners hear that recording failed", || {
        errors.load(Ordering::SeqCst) > 0
    });

    // Two processes: the child trips the breaker, then this process stops sending.
    backend.set_default(Reply::Status(500));
    let status = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_REDIS, redis.url())
        .env(CHILD_BACKEND, backend.url(""))
        .status()
        .unwrap();
    assert!(status.success(), "the child process failed");
    let hits = backend.hits();
    let timeout = Duration::from_secs(2);
    let here = clients.mounted(
        &redis.url(),
        timeout,
        &backend.url(""),
        policy(),
        Listeners::new(),
    );
    let answer = get(&*here, &backend.url("/"));
    assert!(
        answer.rejection.is_some(),
        "the shared breaker is open here too"
    );
    assert_eq!(backend.hits(), hits, "this process sent nothing");

    // Breakers on demand: two clients make the same breaker for a host, so one's failures
    // stop the other's calls, and both still call a healthy host.
    let (failing, healthy) = (TestServer::start(), TestServer::start());
    failing.set_default(Reply::Status(500));
    let (one, two) = (
        clients.on_demand(&redis.url(), policy()),
        clients.on_demand(&redis.url(), policy()),
    );
    for client in [&one, &two] {
        assert_eq!(get(&**client, &healthy.url("/")).status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(&*one, &failing.url("/")).status, 500);
    }
    let hits = failing.hits();
    for _ in 0..3 {
        let answer = get(&*two, &failing.url("/"));
        assert!(
            answer.rejection.is_some(),
            "the host's breaker is open for the other client too"
        );
    }
    assert_eq!(failing.hits(), hits, "the other client sent nothing");
    assert_eq!(
        get(&*two, &healthy.url("/")).status,
        200,
        "and still calls the healthy host"
    );
    println!("{name} with redis: 3 passed, 0 failed");
}

/// Expands to an adapter's Redis test binary (its `main`, with `harness = false`): the
/// scenarios of [`shared_through_redis`] for the adapter `$name`, whose test client `$client`
/// (a function or non-capturing closure) makes from a `Breakers` over the async (`async`) or
/// blocking (`blocking`) Redis store. Expanded where `breaker_store_redis` and `breaker_http`
/// are dependencies.
#[macro_export]
macro_rules! redis_scenarios {
    ($name:literal, async, $client:expr) => {
        type Store = breaker_store_redis::AsyncRedisStore;
        type Handle = breaker_store_redis::AsyncRedisBreaker;

        fn connect(config: breaker_store_redis::RedisConfig) -> Store {
            $crate::runtime().block_on(Store::connect(config)).unwrap()
        }

        fn breaker(store: &Store, policy: breaker_core::Policy) -> Handle {
            $crate::runtime().block_on(store.breaker("shared-backend", policy)).unwrap()
        }

        fn on_demand(store: Store, policy: breaker_core::Policy) -> breaker_http::OnDemand<Handle> {
            breaker_http::OnDemand::new_async(move |name: String| {
                let (store, policy) = (store.clone(), policy.clone());
                async move { store.breaker(&name, policy).await }
            })
        }

        $crate::redis_scenarios!(@clients $name, $client, breaker_http::Breakers::asynchronous());
    };
    ($name:literal, blocking, $client:expr) => {
        type Store = breaker_store_redis::BlockingRedisStore;
        type Handle = breaker_store_redis::BlockingRedisBreaker;

        fn connect(config: breaker_store_redis::RedisConfig) -> Store {
            Store::connect(config).unwrap()
        }

        fn breaker(store: &Store, policy: breaker_core::Policy) -> Handle {
            store.breaker("shared-backend", policy).unwrap()
        }

        fn on_demand(store: Store, policy: breaker_core::Policy) -> breaker_http::OnDemand<Handle> {
            breaker_http::OnDemand::new(move |name: &str| store.breaker(name, policy.clone()))
        }

        $crate::redis_scenarios!(@clients $name, $client, breaker_http::Breakers::blocking());
    };
    (@clients $name:literal, $client:expr, $breakers:expr) => {
        struct OverRedis;

        fn client(breakers: breaker_http::Breakers<Handle>) -> Box<dyn $crate::adapter::Client> {
            let client: fn(breaker_http::Breakers<Handle>) -> Box<dyn $crate::adapter::Client> =
                $client;
            client(breakers)
        }

        impl $crate::shared::RedisClients for OverRedis {
            fn mounted(
                &self,
                redis_url: &str,
                timeout: std::time::Duration,
                backend: &str,
                policy: breaker_core::Policy,
                listeners: breaker_core::Listeners,
            ) -> Box<dyn $crate::adapter::Client> {
                let config = breaker_store_redis::RedisConfig::standalone(redis_url).timeout(timeout);
                let handle = breaker(&connect(config), policy).with_listeners(listeners);
                client($breakers.mount(backend, handle).unwrap())
            }

            fn on_demand(
                &self,
                redis_url: &str,
                policy: breaker_core::Policy,
            ) -> Box<dyn $crate::adapter::Client> {
                let config = breaker_store_redis::RedisConfig::standalone(redis_url)
                    .max_staleness(std::time::Duration::ZERO);
                client($breakers.on_demand(on_demand(connect(config), policy)))
            }
        }

        fn main() {
            $crate::shared::shared_through_redis(&OverRedis, $name);
        }
    };
}
