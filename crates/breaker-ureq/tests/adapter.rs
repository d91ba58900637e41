//! The ureq middleware against the shared adapter suite, on a real local HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use breaker_core::{Listeners, ManualClock, Policy, Timestamp};
use breaker_store_memory::{MemoryBreaker, MemoryStore};
use breaker_testkit::adapter::{Adapter, Answer, Client, Failed, Spec};
use breaker_ureq::{BreakerMiddleware, BreakerOpen, Rejection};

struct Ureq {
    clock: ManualClock,
    store: MemoryStore,
}

impl Ureq {
    fn new() -> Ureq {
        let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
        Ureq {
            store: MemoryStore::with_clock(clock.clone()),
            clock,
        }
    }
}

struct UreqClient(ureq::Agent);

impl Client for UreqClient {
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, Failed> {
        let mut request = self.0.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.call() {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let headers = response
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                let rejection = response.extensions().get::<Rejection>().cloned();
                let body = response
                    .body_mut()
                    .read_to_string()
                    .map_err(|err| Failed::Client(err.to_string()))?;
                Ok(Answer {
                    status,
                    headers,
                    body,
                    rejection,
                })
            }
            Err(ureq::Error::Other(err)) => match err.downcast::<BreakerOpen>() {
                Ok(open) => Err(Failed::Open(*open)),
                Err(err) => Err(Failed::Client(err.to_string())),
            },
            Err(err) => Err(Failed::Client(err.to_string())),
        }
    }
}

impl Adapter for Ureq {
    type Breaker = MemoryBreaker;

    fn clock(&self) -> &ManualClock {
        &self.clock
    }

    fn breaker(&self, name: &str, policy: Policy, listeners: Listeners) -> MemoryBreaker {
        self.store
            .breaker(name, policy)
            .unwrap()
            .with_listeners(listeners)
    }

    fn client(&self, spec: Spec<MemoryBreaker>) -> Box<dyn Client> {
        let mut middleware = BreakerMiddleware::new()
            .rejection_mode(spec.mode)
            .classifier(spec.classifier);
        if let Some(bytes) = spec.capture_body {
            middleware = middleware.capture_body(bytes);
        }
        for (prefix, breaker, rejection) in spec.mounts {
            middleware = middleware.mount_with(&prefix, breaker, rejection).unwrap();
        }
        // Statuses as responses, so the suite reads 5xx bodies; the default (statuses as
        // errors) is covered by tests/ureq_defaults.rs.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .middleware(middleware)
            .build()
            .into();
        Box::new(UreqClient(agent))
    }
}

breaker_testkit::adapter_suite!(Ureq::new());
