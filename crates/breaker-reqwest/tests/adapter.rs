//! The reqwest middleware against the shared adapter suite, on a real local HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::LazyLock;
use std::time::Duration;

use breaker_core::{ManualClock, Timestamp};
use breaker_http::Breakers;
use breaker_reqwest::{BreakerMiddleware, BreakerOpen, Rejection};
use breaker_store_memory::{MemoryBreaker, MemoryStore};
use breaker_testkit::adapter::{Adapter, Answer, Backing, Client, Failed};
use reqwest_middleware::ClientWithMiddleware;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

#[derive(Clone)]
struct Reqwest(Backing<MemoryBreaker>);

struct ReqwestClient(ClientWithMiddleware, BreakerMiddleware<MemoryBreaker>);

impl Client for ReqwestClient {
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, Failed> {
        RUNTIME.block_on(async {
            let mut request = self.0.get(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let rejection = response.extensions().get::<Rejection>().cloned();
                    let body = response
                        .text()
                        .await
                        .map_err(|err| Failed::Client(err.to_string()))?;
                    let headers = headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
                    Ok(Answer::new(status, headers, rejection, body))
                }
                Err(reqwest_middleware::Error::Middleware(err)) => {
                    match err.downcast::<BreakerOpen>() {
                        Ok(open) => Err(Failed::Open(open)),
                        Err(err) => Err(Failed::Client(err.to_string())),
                    }
                }
                Err(err) => Err(Failed::Client(err.to_string())),
            }
        })
    }

    fn on_demand_breakers(&self) -> usize {
        self.1.on_demand_breakers()
    }
}

impl Adapter for Reqwest {
    type Breaker = MemoryBreaker;

    fn backing(&self) -> &Backing<MemoryBreaker> {
        &self.0
    }

    fn client_over(&self, breakers: Breakers<MemoryBreaker>) -> Box<dyn Client> {
        let middleware = BreakerMiddleware::from(breakers);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let client = reqwest_middleware::ClientBuilder::new(client)
            .with(middleware.clone())
            .build();
        Box::new(ReqwestClient(client, middleware))
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
