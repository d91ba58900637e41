//! A circuit breaker for [reqwest](https://docs.rs/reqwest), as a
//! [`reqwest_middleware::Middleware`], so it composes with the middleware you already run
//! (retries, tracing).
//!
//! Mount one or more breakers on URL prefixes; the longest prefix matching a request decides,
//! and requests no prefix matches pass through untouched. A rejected call costs no network IO
//! and answers, by default, with the synthetic response of the Python original (status 500,
//! `X-Circuit-Breaker: breaker tripped`, `Retry-After`, a JSON body, and a
//! [`Rejection`] response extension), or with a [`BreakerOpen`] error if you choose
//! [`RejectionMode::Error`].
//!
//! ```no_run
//! use breaker_core::Policy;
//! use breaker_reqwest::BreakerMiddleware;
//! use breaker_store_memory::MemoryStore;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let breakers = BreakerMiddleware::new()
//!     .mount("https://api.example.com", store.breaker("api", Policy::default())?)?
//!     .mount("https://api.example.com/slow", store.breaker("api-slow", Policy::default())?)?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(breakers)
//!     .build();
//! let response = client.get("https://api.example.com/users").send().await?;
//! if response.extensions().get::<breaker_reqwest::Rejection>().is_some() {
//!     // The breaker is open: this 500 never left the process.
//! }
//! # Ok(())
//! # }
//! ```

use breaker_core::{AsyncBreaker, Outcome, Rejected};
use breaker_http::{Attempt, ErrorKind, Mounts};
pub use breaker_http::{
    BreakerOpen, Classifier, HttpContext, MountError, Rejection, RejectionMode,
};
use bytes::Bytes;
use futures_util::StreamExt;
use http::Extensions;
use reqwest::{Request, Response, ResponseBuilderExt};
use reqwest_middleware::{Middleware, Next};

/// Circuit breakers for a reqwest client, mounted on URL prefixes. Works with any store whose
/// breakers implement [`AsyncBreaker`] (memory, Redis).
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

impl<B: AsyncBreaker> Default for BreakerMiddleware<B> {
    fn default() -> Self {
        BreakerMiddleware::new()
    }
}

impl<B: AsyncBreaker> BreakerMiddleware<B> {
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
    /// receives all of it.
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

fn error_kind(error: &reqwest_middleware::Error) -> ErrorKind {
    match error {
        reqwest_middleware::Error::Reqwest(err) if err.is_builder() => ErrorKind::NotSent,
        reqwest_middleware::Error::Reqwest(err) if err.is_timeout() => ErrorKind::Timeout,
        _ => ErrorKind::Transport,
    }
}

fn rejection(name: &str, rejected: &Rejected, request: &Request) -> Response {
    let (parts, body) = breaker_http::rejection_response(name, rejected).into_parts();
    let mut response = http::Response::builder()
        .status(parts.status)
        .url(request.url().clone())
        .body(body)
        .unwrap_or_default();
    *response.headers_mut() = parts.headers;
    response.extensions_mut().extend(parts.extensions);
    Response::from(response)
}

/// Reads up to `limit` bytes of the body for listeners, and gives back a response whose body
/// is still whole (the bytes read, then the rest).
async fn capture(response: Response, limit: usize) -> (Response, Vec<u8>) {
    let url = response.url().clone();
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let extensions = response.extensions().clone();
    let mut response = response;
    let mut read = Vec::new();
    let mut failed = None;
    while read.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => read.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => {
                failed = Some(err);
                break;
            }
        }
    }
    let prefix = read[..read.len().min(limit)].to_vec();
    let head = futures_util::stream::iter([Ok::<Bytes, reqwest::Error>(Bytes::from(read))]);
    let body = match failed {
        // The read failed: the caller meets the same error after the bytes that came.
        Some(err) => reqwest::Body::wrap_stream(head.chain(futures_util::stream::iter([Err(err)]))),
        None => reqwest::Body::wrap_stream(head.chain(response.bytes_stream())),
    };
    let mut rebuilt = http::Response::builder()
        .status(status)
        .version(version)
        .url(url)
        .body(body)
        .unwrap_or_default();
    *rebuilt.headers_mut() = headers;
    rebuilt.extensions_mut().extend(extensions);
    (Response::from(rebuilt), prefix)
}

#[async_trait::async_trait]
impl<B: AsyncBreaker + 'static> Middleware for BreakerMiddleware<B> {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let url = request.url();
        let route = self.mounts.route(
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default(),
            url.path(),
        );
        let Some(mounted) = route else {
            return next.run(request, extensions).await;
        };
        let (breaker, observer) = (&mounted.breaker, &mounted.observer);
        let reveal = self.mounts.options.reveal_secrets;
        // Built only when someone listens; the request is gone once sent.
        let context = observer.wants_context().then(|| {
            let (method, url) = (request.method().as_str(), request.url().as_str());
            HttpContext::for_request(method, url, request.headers(), reveal)
        });
        let context_with = |status, error| HttpContext::ended(context.as_ref(), status, error);

        let permit = match breaker.acquire().await {
            Ok(permit) => permit,
            Err(rejected) => {
                observer.rejected(&rejected, || context_with(None, None));
                return match mounted.rejection_mode(&self.mounts.options) {
                    RejectionMode::Error => {
                        Err(reqwest_middleware::Error::middleware(BreakerOpen {
                            name: breaker.name().to_owned(),
                            retry_after: rejected.retry_after(),
                        }))
                    }
                    _ => Ok(rejection(breaker.name(), &rejected, &request)),
                };
            }
        };
        observer.admitted(permit.transition(), || context_with(None, None));

        let result = next.run(request, extensions).await;
        let outcome = match &result {
            Ok(response) => self.mounts.options.classifier.classify(&Attempt::Response {
                status: response.status().as_u16(),
            }),
            Err(err) => self.mounts.options.classifier.classify(&Attempt::Error {
                kind: error_kind(err),
                error: err,
            }),
        };
        let (result, body_prefix, response_headers) =
            match (result, self.mounts.options.capture_body) {
                (Ok(response), Some(limit))
                    if outcome == Outcome::Failure && observer.wants_context() =>
                {
                    let headers = breaker_http::header_list(response.headers(), reveal);
                    let (response, prefix) = capture(response, limit).await;
                    (Ok(response), Some(prefix), headers)
                }
                (Ok(response), _) if observer.wants_context() => {
                    let headers = breaker_http::header_list(response.headers(), reveal);
                    (Ok(response), None, headers)
                }
                (result, _) => (result, None, Vec::new()),
            };
        let recorded = breaker.record(permit, outcome).await;
        observer.finished(&recorded, || {
            let status = result
                .as_ref()
                .ok()
                .map(|response| response.status().as_u16());
            let error = result.as_ref().err().map(ToString::to_string);
            let mut context = context_with(status, error);
            context.response_headers = response_headers;
            context.body_prefix = body_prefix;
            context
        });
        result
    }
}
