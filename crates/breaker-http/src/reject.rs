//! What a rejected call returns (SPEC section 5).

use std::fmt;
use std::time::Duration;

/// The header that marks a synthetic rejection, as the Python original sends it.
const BREAKER_HEADER: &str = "x-circuit-breaker";
/// Its value.
const BREAKER_HEADER_VALUE: &str = "breaker tripped";

/// What a client answers when a breaker rejects a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionMode {
    /// A synthetic `500` response, without network IO (the default, compatible with the
    /// Python original), carrying a [`BreakerOpen`] response extension.
    #[default]
    Response,
    /// An error: a [`BreakerOpen`], as the adapter's error type carries it.
    Error,
}

/// A call the breaker rejected without sending it: the response extension that marks the
/// synthetic `500` (`response.extensions().get::<BreakerOpen>()`), and the error a client returns
/// in [`RejectionMode::Error`] (downcast the client's error to it).
///
/// Retry policies should treat it as final: retrying a rejection only asks the same breaker
/// again, and the answer is the same until `retry_after` has passed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerOpen {
    /// The breaker that rejected the call.
    pub name: String,
    /// How long until a probe may go.
    pub retry_after: Duration,
}

impl BreakerOpen {
    /// A rejection by breaker `name`, with `retry_after` until a probe may go.
    pub fn new(name: impl Into<String>, retry_after: Duration) -> BreakerOpen {
        BreakerOpen {
            name: name.into(),
            retry_after,
        }
    }

    /// The synthetic rejection response of SPEC section 5: status 500, `X-Circuit-Breaker:
    /// breaker tripped`, `Retry-After`, `Content-Type: application/json`, the JSON body, and
    /// this rejection as a response extension.
    pub(crate) fn response(self) -> http::Response<String> {
        let body = rejection_body(&self.name);
        let mut response = http::Response::new(body);
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        let length = response.body().len();
        let headers = response.headers_mut();
        headers.insert(
            BREAKER_HEADER,
            http::HeaderValue::from_static(BREAKER_HEADER_VALUE),
        );
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(retry_after_secs(self.retry_after)),
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(length),
        );
        response.extensions_mut().insert(self);
        response
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "circuit breaker {:?} is open; retry after {} s",
            self.name,
            retry_after_secs(self.retry_after)
        )
    }
}

impl std::error::Error for BreakerOpen {}

/// `Retry-After` in whole seconds, rounded up (a wait of 1 ms is 1 s, not 0).
fn retry_after_secs(retry_after: Duration) -> u64 {
    retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
}

/// The body of a synthetic rejection: `{"errors": [{"msg": "Circuit breaker <name> tripped"}]}`.
fn rejection_body(name: &str) -> String {
    // serde_json writes the message as a JSON string, escaping whatever the name holds.
    let message = serde_json::Value::String(format!("Circuit breaker {name} tripped"));
    format!("{{\"errors\": [{{\"msg\": {message}}}]}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_response_in_every_detail() {
        let response = BreakerOpen::new("pay\"ments", Duration::from_millis(2_001)).response();
        assert_eq!(response.status(), 500);
        let header = |name: &str| response.headers().get(name).unwrap().to_str().unwrap();
        assert_eq!(header("X-Circuit-Breaker"), "breaker tripped");
        assert_eq!(header("Retry-After"), "3");
        assert_eq!(header("Content-Type"), "application/json");
        assert_eq!(
            response.body(),
            r#"{"errors": [{"msg": "Circuit breaker pay\"ments tripped"}]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(
            parsed["errors"][0]["msg"],
            "Circuit breaker pay\"ments tripped"
        );
        let marker = response.extensions().get::<BreakerOpen>().unwrap();
        assert_eq!(marker.name, "pay\"ments");
        assert_eq!(retry_after_secs(Duration::ZERO), 0);
        assert_eq!(retry_after_secs(Duration::from_secs(5)), 5);
    }
}
