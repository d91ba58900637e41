//! A ureq agent through the middleware, as the shared suites drive it.

use std::time::Duration;

use breaker_core::BlockingBreaker;
use breaker_testkit::adapter::{Answer, Client, Failed};
use breaker_ureq::{BreakerMiddleware, BreakerOpen};

struct UreqClient<B>(ureq::Agent, BreakerMiddleware<B>);

/// An agent through `middleware`, with a 10 s timeout. Statuses are responses, so the suites
/// read 5xx bodies; the default (statuses as errors) is covered by tests/ureq_defaults.rs.
pub(crate) fn client<B: BlockingBreaker + 'static>(
    middleware: BreakerMiddleware<B>,
) -> Box<dyn Client> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .middleware(middleware.clone())
        .build()
        .into();
    Box::new(UreqClient(agent, middleware))
}

impl<B: BlockingBreaker + 'static> Client for UreqClient<B> {
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, Failed> {
        let mut request = self.0.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.call() {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let rejection = response.extensions().get::<BreakerOpen>().cloned();
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
