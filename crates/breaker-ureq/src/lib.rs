//! A circuit breaker for [ureq](https://docs.rs/ureq) 3, the blocking HTTP client, as a
//! [`ureq::middleware::Middleware`].
//!
//! It behaves as `breaker-reqwest` does (both share `breaker-http`): breakers mounted on URL
//! prefixes, the longest match deciding; 5xx and transport errors counted as failures;
//! rejected calls answered without network IO by the synthetic `500` (with a [`Rejection`]
//! extension) or, in [`RejectionMode::Error`], by `ureq::Error::Other` holding a
//! [`BreakerOpen`].
//!
//! ureq turns 4xx/5xx statuses into `Err(ureq::Error::StatusCode)` at the end of its chain
//! (unless `http_status_as_error(false)`). The middleware counts a real `503` as a failure
//! either way, and its synthetic rejection reaches the caller as an `Ok` response.
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
//! if response.extensions().get::<breaker_ureq::Rejection>().is_some() {
//!     // The breaker is open: this 500 never left the process.
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{Cursor, Read};

use breaker_core::{Breaker, Outcome, Rejected};
use breaker_http::{Attempt, ErrorKind, Mounts};
pub use breaker_http::{
    BreakerOpen, Classifier, HttpContext, MountError, Rejection, RejectionMode,
};
use ureq::middleware::{Middleware, MiddlewareNext};
use ureq::{Body, SendBody};

/// Circuit breakers for a ureq agent, mounted on URL prefixes. Works with any store whose
/// breakers implement [`Breaker`] (memory, blocking Redis).
pub struct BreakerMiddleware<B> {
    mounts: Mounts<B>,
}

impl<B> std::fmt::Debug for BreakerMiddleware<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerMiddleware")
            .field("options", &self.mounts.options)
            .finish_non_exhaustive()
    }
}

impl<B: Breaker> Default for BreakerMiddleware<B> {
    fn default() -> Self {
        BreakerMiddleware::new()
    }
}

impl<B: Breaker> BreakerMiddleware<B> {
    /// No breakers yet: every request passes through.
    pub fn new() -> BreakerMiddleware<B> {
        BreakerMiddleware {
            mounts: Mounts::default(),
        }
    }

    /// Mounts `breaker` on `prefix` (`scheme://host[:port][/path]`). Its listeners receive
    /// every event with an [`HttpContext`].
    pub fn mount(self, prefix: &str, breaker: B) -> Result<BreakerMiddleware<B>, MountError> {
        self.mount_with(prefix, breaker, None)
    }

    /// Mounts `breaker` on `prefix`, choosing what its rejected calls return (`None`: the
    /// client's [`rejection_mode`](Self::rejection_mode)).
    pub fn mount_with(
        mut self,
        prefix: &str,
        breaker: B,
        rejection: Option<RejectionMode>,
    ) -> Result<BreakerMiddleware<B>, MountError> {
        let (name, listeners) = (breaker.name().to_owned(), breaker.listeners().clone());
        self.mounts = self
            .mounts
            .mount(prefix, breaker, &name, listeners, rejection)?;
        Ok(self)
    }

    /// What rejected calls return (default: the synthetic response).
    #[must_use]
    pub fn rejection_mode(mut self, mode: RejectionMode) -> BreakerMiddleware<B> {
        self.mounts.options.rejection = mode;
        self
    }

    /// How finished calls count (default: 5xx and transport errors fail).
    #[must_use]
    pub fn classifier(mut self, classifier: Classifier) -> BreakerMiddleware<B> {
        self.mounts.options.classifier = classifier;
        self
    }

    /// Gives listeners the first `bytes` of a failed call's response body; the caller still
    /// receives all of it. (With ureq's default `http_status_as_error`, a 5xx arrives as an
    /// error with no body to capture.)
    #[must_use]
    pub fn capture_body(mut self, bytes: usize) -> BreakerMiddleware<B> {
        self.mounts.options.capture_body = Some(bytes);
        self
    }

    /// Shows secret headers (`Authorization`, cookies) to listeners instead of redacting them.
    #[must_use]
    pub fn reveal_secrets(mut self, reveal: bool) -> BreakerMiddleware<B> {
        self.mounts.options.reveal_secrets = reveal;
        self
    }
}

fn error_kind(error: &ureq::Error) -> ErrorKind {
    match error {
        ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::BodyExceedsLimit(_) => ErrorKind::NotSent,
        ureq::Error::Timeout(_) => ErrorKind::Timeout,
        _ => ErrorKind::Transport,
    }
}

fn rejection(name: &str, rejected: &Rejected) -> http::Response<Body> {
    let (parts, body) = breaker_http::rejection_response(name, rejected).into_parts();
    let body = Body::builder().mime_type("application/json").data(body);
    http::Response::from_parts(parts, body)
}

/// Reads up to `limit` bytes of the body for listeners, and gives back a response whose body
/// is still whole (the bytes read, then the rest).
fn capture(response: http::Response<Body>, limit: usize) -> (http::Response<Body>, Vec<u8>) {
    let (parts, body) = response.into_parts();
    let mime = body.mime_type().map(str::to_owned);
    let mut reader = body.into_reader();
    let mut read = Vec::new();
    // A read error here is met again by the caller, who reads the rest.
    let _ = (&mut reader).take(limit as u64).read_to_end(&mut read);
    let prefix = read.clone();
    let mut builder = Body::builder();
    if let Some(mime) = mime {
        builder = builder.mime_type(mime);
    }
    let body = builder.reader(Cursor::new(read).chain(reader));
    (http::Response::from_parts(parts, body), prefix)
}

impl<B: Breaker + 'static> Middleware for BreakerMiddleware<B> {
    fn handle(
        &self,
        request: http::Request<SendBody<'_>>,
        next: MiddlewareNext<'_>,
    ) -> Result<http::Response<Body>, ureq::Error> {
        let Some(mounted) = self.mounts.route_uri(request.uri()) else {
            return next.handle(request);
        };
        let (breaker, observer) = (&mounted.breaker, &mounted.observer);
        let reveal = self.mounts.options.reveal_secrets;
        let context = observer.wants_context().then(|| {
            let url = request.uri().to_string();
            HttpContext::for_request(request.method().as_str(), &url, request.headers(), reveal)
        });
        let context_with = |status, error| HttpContext::ended(context.as_ref(), status, error);

        let permit = match breaker.acquire() {
            Ok(permit) => permit,
            Err(rejected) => {
                observer.rejected(&rejected, || context_with(None, None));
                return match mounted.rejection_mode(&self.mounts.options) {
                    RejectionMode::Error => Err(ureq::Error::Other(Box::new(BreakerOpen {
                        name: breaker.name().to_owned(),
                        retry_after: rejected.retry_after(),
                    }))),
                    _ => Ok(rejection(breaker.name(), &rejected)),
                };
            }
        };
        observer.admitted(permit.transition(), || context_with(None, None));

        let result = next.handle(request);
        let attempt_status = match &result {
            Ok(response) => Some(response.status().as_u16()),
            // ureq reports 4xx/5xx as errors inside the chain: they are responses all the same.
            Err(ureq::Error::StatusCode(status)) => Some(*status),
            Err(_) => None,
        };
        let outcome = match (&result, attempt_status) {
            (_, Some(status)) => self
                .mounts
                .options
                .classifier
                .classify(&Attempt::Response { status }),
            (Err(err), None) => self.mounts.options.classifier.classify(&Attempt::Error {
                kind: error_kind(err),
                error: err,
            }),
            (Ok(_), None) => Outcome::Success,
        };
        let (result, body_prefix, response_headers) =
            match (result, self.mounts.options.capture_body) {
                (Ok(response), Some(limit))
                    if outcome == Outcome::Failure && observer.wants_context() =>
                {
                    let headers = breaker_http::header_list(response.headers(), reveal);
                    let (response, prefix) = capture(response, limit);
                    (Ok(response), Some(prefix), headers)
                }
                (Ok(response), _) if observer.wants_context() => {
                    let headers = breaker_http::header_list(response.headers(), reveal);
                    (Ok(response), None, headers)
                }
                (result, _) => (result, None, Vec::new()),
            };
        let recorded = breaker.record(permit, outcome);
        observer.finished(&recorded, || {
            let error = result
                .as_ref()
                .err()
                .filter(|_| attempt_status.is_none())
                .map(ToString::to_string);
            let mut context = context_with(attempt_status, error);
            context.response_headers = response_headers;
            context.body_prefix = body_prefix;
            context
        });
        result
    }
}
