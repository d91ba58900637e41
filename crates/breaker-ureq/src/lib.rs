//! A circuit breaker for [ureq](https://docs.rs/ureq) 3, the blocking HTTP client, as a
//! [`ureq::middleware::Middleware`].
//!
//! It behaves as `breaker-reqwest` does (both share `breaker-http`): breakers mounted on URL
//! prefixes, the longest match deciding; 5xx and transport errors counted as failures;
//! rejected calls answered without network IO by the synthetic `500` (with a [`BreakerOpen`]
//! extension) or, in [`RejectionMode::Error`], by `ureq::Error::Other` holding a
//! [`BreakerOpen`]. [`OnDemand`] gives each host its own breaker, made on first use.
//!
//! ureq turns 4xx/5xx statuses into `Err(ureq::Error::StatusCode)` at the end of its chain
//! (unless `http_status_as_error(false)`). The middleware counts a real `503` as a failure
//! either way, and its synthetic rejection reaches the caller as an `Ok` response. A 5xx that
//! arrives as an error has neither headers nor body, so its `Retry-After` is honoured (and
//! its body captured for listeners) only with `http_status_as_error(false)`.
//!
//! ```no_run
//! use breaker_core::Policy;
//! use breaker_store_memory::MemoryStore;
//! use breaker_ureq::BreakerMiddleware;
//!
//! let store = MemoryStore::new();
//! let breakers = BreakerMiddleware::new()
//!     .mount("https://api.example.com", store.breaker("api", Policy::default())?)?;
//! let agent: ureq::Agent = ureq::Agent::config_builder().middleware(breakers).build().into();
//! let response = agent.get("https://api.example.com/users").call()?;
//! if response.extensions().get::<breaker_ureq::BreakerOpen>().is_some() {
//!     // The breaker is open: this 500 never left the process.
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Public types that may grow are `#[non_exhaustive]` by rule; the few that are complete by
// definition say so where they are declared.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

use std::io::{Cursor, Read};

use breaker_core::BlockingBreaker;
pub use breaker_core::Outcome;
pub use breaker_http::{
    Attempt, BreakerOpen, Classifier, HttpContext, MountError, OnDemand, RejectionMode,
    RequestErrorKind, RequestHead, default_classify,
};
use breaker_http::{Finish, Start};
use ureq::middleware::{Middleware, MiddlewareNext};
use ureq::{Body, SendBody};

breaker_http::client_type!(
    /// Circuit breakers for a ureq agent, mounted on URL prefixes or made on demand. Works
    /// with any store whose breakers implement [`BlockingBreaker`] (memory, blocking Redis).
    BreakerMiddleware,
    blocking,
    BlockingBreaker
);

fn error_kind(error: &ureq::Error) -> RequestErrorKind {
    match error {
        ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::BodyExceedsLimit(_) => RequestErrorKind::NotSent,
        ureq::Error::Timeout(_) => RequestErrorKind::Timeout,
        _ => RequestErrorKind::Transport,
    }
}

fn response_of(rejection: http::Response<String>) -> http::Response<Body> {
    let (parts, body) = rejection.into_parts();
    let body = Body::builder().mime_type("application/json").data(body);
    http::Response::from_parts(parts, body)
}

/// Reads the first bytes of the body for listeners when `finish` asks, and gives back a
/// response whose body is still whole (the bytes read, then the rest).
fn capture<B>(response: http::Response<Body>, finish: &mut Finish<B>) -> http::Response<Body> {
    let Some(limit) = finish.capture() else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let mime = body.mime_type().map(str::to_owned);
    let mut reader = body.into_reader();
    let mut read = Vec::new();
    // A read error here is met again by the caller, who reads the rest.
    let _ = (&mut reader).take(limit as u64).read_to_end(&mut read);
    finish.body_prefix(read.clone());
    let mut builder = Body::builder();
    if let Some(mime) = mime {
        builder = builder.mime_type(mime);
    }
    let body = builder.reader(Cursor::new(read).chain(reader));
    http::Response::from_parts(parts, body)
}

impl<B: BlockingBreaker + 'static> Middleware for BreakerMiddleware<B> {
    fn handle(
        &self,
        request: http::Request<SendBody<'_>>,
        next: MiddlewareNext<'_>,
    ) -> Result<http::Response<Body>, ureq::Error> {
        let head = RequestHead::new(request.method().as_str(), request.uri(), request.headers());
        let call = match self.breakers.start_blocking(&head) {
            Start::Pass => return next.handle(request),
            Start::Respond(rejection) => return Ok(response_of(rejection)),
            Start::Fail(rejection) => return Err(ureq::Error::Other(Box::new(rejection))),
            Start::Send(call) => call,
        };
        let result = next.handle(request);
        let mut finish = match &result {
            Ok(response) => call.response(response.status().as_u16(), Some(response.headers())),
            // ureq reports 4xx/5xx as errors inside the chain: they are responses all the same.
            Err(ureq::Error::StatusCode(status)) => call.response(*status, None),
            Err(err) => call.error(error_kind(err), err),
        };
        let result = result.map(|response| capture(response, &mut finish));
        finish.record_blocking();
        result
    }
}
