//! Breakers on demand shared through Redis: two clients (each with its own store connection)
//! make the same breaker for a host, so what one observed protects the other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use breaker_core::Policy;
use breaker_store_redis::{RedisBreaker, RedisConfig, RedisStore};
use breaker_testkit::http_server::{Reply, TestServer};
use breaker_testkit::redis_server::RedisServer;
use breaker_tower::{BreakerLayer, BreakerService, OnDemand, Rejection};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

type Hyper = hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>;
type Service = BreakerService<Hyper, RedisBreaker>;

async fn client(redis_url: &str) -> Service {
    // Every call asks Redis, so the other client sees a trip on its next call.
    let config = RedisConfig::standalone(redis_url).max_staleness(Duration::ZERO);
    let store = RedisStore::connect(config).await.unwrap();
    let policy = Policy::builder().minimum_failures(3).build().unwrap();
    let on_demand = OnDemand::new_async(move |name: String| {
        let (store, policy) = (store.clone(), policy.clone());
        async move { store.breaker(&name, policy).await }
    });
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    BreakerLayer::new().on_demand(on_demand).layer(hyper)
}

/// Whether a GET to `server` was rejected by the breaker (and the status otherwise).
async fn rejected(client: &Service, server: &TestServer) -> (bool, u16) {
    let request = http::Request::get(server.url("/"))
        .body(Empty::new())
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    let rejected = response.extensions().get::<Rejection>().is_some();
    (rejected, response.status().as_u16())
}

#[test]
fn two_clients_on_one_redis_share_each_hosts_breaker() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis = RedisServer::start();
    let (failing, healthy) = (TestServer::start(), TestServer::start());
    runtime.block_on(async {
        let (here, there) = (client(&redis.url()).await, client(&redis.url()).await);
        for client in [&here, &there] {
            for server in [&failing, &healthy] {
                assert_eq!(rejected(client, server).await, (false, 200));
            }
        }
        failing.set_default(Reply::Status(500));
        for _ in 0..3 {
            assert_eq!(rejected(&here, &failing).await, (false, 500));
        }
        assert!(rejected(&here, &failing).await.0, "tripped here");

        // The other client's breaker for that host is the same one in Redis.
        let hits = failing.hits();
        for _ in 0..5 {
            assert!(rejected(&there, &failing).await.0, "open there too");
        }
        assert_eq!(
            failing.hits(),
            hits,
            "the other client sends nothing to the failing host"
        );
        assert_eq!(
            rejected(&there, &healthy).await,
            (false, 200),
            "and still calls the healthy one"
        );
    });
}
