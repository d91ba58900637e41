//! The tower layer over hyper-util's client against the shared adapter suite, on a real
//! local HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::LazyLock;

use breaker_core::{ManualClock, Timestamp};
use breaker_http::Breakers;
use breaker_store_memory::{MemoryBreaker, MemoryStore};
use breaker_testkit::adapter::{Adapter, Answer, Backing, Client, Failed};
use breaker_tower::{BreakerLayer, BreakerService, Rejection};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

#[derive(Clone)]
struct Tower(Backing<MemoryBreaker>);

type Hyper = hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>;

struct TowerClient(
    BreakerService<Hyper, MemoryBreaker>,
    BreakerLayer<MemoryBreaker>,
);

impl Client for TowerClient {
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, Failed> {
        let mut request = http::Request::get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::new()).unwrap();
        RUNTIME.block_on(async {
            match self.0.clone().oneshot(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let rejection = parts.extensions.get::<Rejection>().cloned();
                    let body = body
                        .collect()
                        .await
                        .map_err(|err| Failed::Client(err.to_string()))?
                        .to_bytes();
                    let body = String::from_utf8_lossy(&body).into_owned();
                    let headers = parts
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_bytes()));
                    Ok(Answer::new(parts.status.as_u16(), headers, rejection, body))
                }
                Err(err) => match err.downcast::<Rejection>() {
                    Ok(open) => Err(Failed::Open(*open)),
                    Err(err) => Err(Failed::Client(err.to_string())),
                },
            }
        })
    }

    fn on_demand_breakers(&self) -> usize {
        self.1.on_demand_breakers()
    }
}

impl Adapter for Tower {
    type Breaker = MemoryBreaker;

    fn backing(&self) -> &Backing<MemoryBreaker> {
        &self.0
    }

    fn client_over(&self, breakers: Breakers<MemoryBreaker>) -> Box<dyn Client> {
        let layer = BreakerLayer::from(breakers);
        // The connection pool's tasks need the runtime's context when the client is built.
        let _entered = RUNTIME.enter();
        let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        Box::new(TowerClient(layer.layer(hyper), layer))
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

breaker_testkit::adapter_suite!(Tower(memory()));
