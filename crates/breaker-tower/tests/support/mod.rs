//! hyper-util's client under the layer, as the shared suites drive it.

use breaker_core::AsyncBreaker;
use breaker_testkit::adapter::{Answer, Client, Failed};
use breaker_testkit::runtime;
use breaker_tower::{BreakerLayer, BreakerOpen, BreakerService};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

type Hyper = hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>;

struct TowerClient<B>(BreakerService<Hyper, B>, BreakerLayer<B>);

/// hyper-util's client under `layer`.
pub(crate) fn client<B: AsyncBreaker + 'static>(layer: BreakerLayer<B>) -> Box<dyn Client> {
    // The connection pool's tasks need the runtime's context when the client is built.
    let _entered = runtime().enter();
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    Box::new(TowerClient(layer.layer(hyper), layer))
}

impl<B: AsyncBreaker + 'static> Client for TowerClient<B> {
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, Failed> {
        let mut request = http::Request::get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::new()).unwrap();
        runtime().block_on(async {
            match self.0.clone().oneshot(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let rejection = parts.extensions.get::<BreakerOpen>().cloned();
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
                Err(err) => match err.downcast::<BreakerOpen>() {
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
