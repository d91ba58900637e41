//! The ureq middleware against the shared adapter suite, on a real local HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use breaker_core::{ManualClock, Timestamp};
use breaker_http::Breakers;
use breaker_store_memory::{MemoryBreaker, MemoryStore};
use breaker_testkit::adapter::{Adapter, Answer, Backing, Client, Failed};
use breaker_ureq::{BreakerMiddleware, BreakerOpen, Rejection};

#[derive(Clone)]
struct Ureq(Backing<MemoryBreaker>);

struct UreqClient(ureq::Agent, BreakerMiddleware<MemoryBreaker>);

impl Client for UreqClient {
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, Failed> {
        let mut request = self.0.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.call() {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let rejection = response.extensions().get::<Rejection>().cloned();
                let body = response
                    .body_mut()
                    .read_to_string()
                    .map_err(|err| Failed::Client(err.to_string()))?;
                let headers = response.headers().iter();
                let headers = headers.map(|(n, v)| (n.as_str(), v.as_bytes()));
                Ok(Answer::new(status, headers, rejection, body))
            }
            Err(ureq::Error::Other(err)) => match err.downcast::<BreakerOpen>() {
                Ok(open) => Err(Failed::Open(*open)),
                Err(err) => Err(Failed::Client(err.to_string())),
            },
            Err(err) => Err(Failed::Client(err.to_string())),
        }
    }

    fn on_demand_breakers(&self) -> usize {
        self.1.on_demand_breakers()
    }
}

impl Adapter for Ureq {
    type Breaker = MemoryBreaker;

    fn backing(&self) -> &Backing<MemoryBreaker> {
        &self.0
    }

    fn client_over(&self, breakers: Breakers<MemoryBreaker>) -> Box<dyn Client> {
        let middleware = BreakerMiddleware::from(breakers);
        // Statuses as responses, so the suite reads 5xx bodies; the default (statuses as
        // errors) is covered by tests/ureq_defaults.rs.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .middleware(middleware.clone())
            .build()
            .into();
        Box::new(UreqClient(agent, middleware))
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

breaker_testkit::adapter_suite!(Ureq(memory()));
