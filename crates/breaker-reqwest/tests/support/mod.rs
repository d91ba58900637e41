//! A reqwest client through the middleware, as the shared suites drive it.

use std::time::Duration;

use breaker_core::AsyncBreaker;
use breaker_reqwest::{BreakerMiddleware, BreakerOpen};
use breaker_testkit::adapter::{Answer, Client, Failed};
use breaker_testkit::runtime;
use reqwest_middleware::ClientWithMiddleware;

struct ReqwestClient<B>(ClientWithMiddleware, BreakerMiddleware<B>);

/// A client through `middleware`, with a 10 s timeout.
pub(crate) fn client<B: AsyncBreaker + 'static>(
    middleware: BreakerMiddleware<B>,
) -> Box<dyn Client> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(client)
        .with(middleware.clone())
        .build();
    Box::new(ReqwestClient(client, middleware))
}

impl<B: AsyncBreaker + 'static> Client for ReqwestClient<B> {
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, Failed> {
        runtime().block_on(async {
            let mut request = self.0.get(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let rejection = response.extensions().get::<BreakerOpen>().cloned();
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
