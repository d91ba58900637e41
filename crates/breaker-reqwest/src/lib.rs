//! A circuit breaker for [reqwest](https://docs.rs/reqwest), as a
//! [`reqwest_middleware::Middleware`], so it composes with the middleware you already run
//! (retries, tracing).
//!
//! Mount one or more breakers on URL prefixes; the longest prefix matching a request decides,
//! and requests no prefix matches pass through untouched. A rejected call costs no network IO
//! and answers, by default, with the synthetic response of the Python original (status 500,
//! `X-Circuit-Breaker: breaker tripped`, `Retry-After`, a JSON body, and a
//! [`BreakerOpen`] response extension), or with a [`BreakerOpen`] error
//! (`reqwest_middleware::Error::Middleware`) if you choose [`RejectionMode::Error`].
//! [`OnDemand`] gives each host its own breaker, made on first use. [`rejection_of`] tells a
//! retry policy not to retry a rejection (see `examples/with_retries.rs`).
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
//! if response.extensions().get::<breaker_reqwest::BreakerOpen>().is_some() {
//!     // The breaker is open: this 500 never left the process.
//! }
//! # Ok(())
//! # }
//! ```

// Public types that may grow are `#[non_exhaustive]` by rule; the few that are complete by
// definition say so where they are declared.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

use std::future::Future;
use std::pin::Pin;

use breaker_core::AsyncBreaker;
pub use breaker_core::Outcome;
pub use breaker_http::{
    Attempt, BreakerOpen, Classifier, HttpContext, MountError, OnDemand, RejectionMode,
    RequestErrorKind, RequestHead, default_classify,
};
use breaker_http::{Finish, Start};
use bytes::Bytes;
use futures_util::StreamExt;
use http::Extensions;
use reqwest::{Request, Response, ResponseBuilderExt};
use reqwest_middleware::{Middleware, Next};

breaker_http::client_type!(
    /// Circuit breakers for a reqwest client, mounted on URL prefixes or made on demand.
    /// Works with any store whose breakers implement [`AsyncBreaker`] (memory, Redis).
    BreakerMiddleware,
    asynchronous,
    AsyncBreaker
);

/// The [`BreakerOpen`] behind `result`, if a breaker rejected the call: the synthetic
/// response's marker or, in error mode, the error, also when another middleware (a retry
/// middleware) wrapped it. A retry policy should not retry such a call.
pub fn rejection_of(result: &reqwest_middleware::Result<Response>) -> Option<&BreakerOpen> {
    match result {
        Ok(response) => response.extensions().get::<BreakerOpen>(),
        Err(err) => rejection_in(err),
    }
}

fn rejection_in(error: &reqwest_middleware::Error) -> Option<&BreakerOpen> {
    let reqwest_middleware::Error::Middleware(error) = error else {
        return None;
    };
    error.chain().find_map(|cause| {
        cause.downcast_ref::<BreakerOpen>().or_else(|| {
            cause
                .downcast_ref::<reqwest_middleware::Error>()
                .and_then(rejection_in)
        })
    })
}

fn error_kind(error: &reqwest_middleware::Error) -> RequestErrorKind {
    match error {
        reqwest_middleware::Error::Reqwest(err) if err.is_builder() => RequestErrorKind::NotSent,
        reqwest_middleware::Error::Reqwest(err) if err.is_timeout() => RequestErrorKind::Timeout,
        _ => RequestErrorKind::Transport,
    }
}

fn response_of(rejection: http::Response<String>, request: &Request) -> Response {
    let (parts, body) = rejection.into_parts();
    let mut response = http::Response::builder()
        .status(parts.status)
        .url(request.url().clone())
        .body(body)
        .unwrap_or_default();
    *response.headers_mut() = parts.headers;
    response.extensions_mut().extend(parts.extensions);
    Response::from(response)
}

/// Reads the first `limit` bytes of the body for listeners, as `finish` asked, and gives back
/// a response whose body is still whole (the bytes read, then the rest).
async fn capture<B>(response: Response, limit: usize, finish: &mut Finish<B>) -> Response {
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
    finish.body_prefix(read.clone());
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
    Response::from(rebuilt)
}

/// The request as the call flow sees it.
fn head_of(request: &Request) -> RequestHead<'_> {
    let url = request.url();
    let parts = (
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default(),
        url.path(),
    );
    RequestHead::from_parts(request.method().as_str(), parts, url, request.headers())
}

// Written out rather than with `#[async_trait]`, which would keep the request by value in the
// boxed future for the whole call: boxed on its own first, it keeps the call's future within
// the allocator's small-size cache.
impl<B: AsyncBreaker + 'static> Middleware for BreakerMiddleware<B> {
    fn handle<'this, 'extensions, 'next, 'call>(
        &'this self,
        request: Request,
        extensions: &'extensions mut Extensions,
        next: Next<'next>,
    ) -> Pin<Box<dyn Future<Output = reqwest_middleware::Result<Response>> + Send + 'call>>
    where
        'this: 'call,
        'extensions: 'call,
        'next: 'call,
        Self: 'call,
    {
        let request = Box::new(request);
        Box::pin(async move {
            let call = match self.breakers.start_async(&head_of(&request)).await {
                Start::Pass => None,
                Start::Respond(rejection) => return Ok(response_of(rejection, &request)),
                Start::Fail(rejection) => {
                    return Err(reqwest_middleware::Error::middleware(rejection));
                }
                Start::Send(call) => Some(call),
            };
            let result = next.run(*request, extensions).await;
            let Some(call) = call else { return result };
            let mut finish = match &result {
                Ok(response) => call.response(response.status().as_u16(), Some(response.headers())),
                Err(err) => call.error(error_kind(err), err),
            };
            let result = match (result, finish.capture()) {
                // Rare (a failed call, with listeners that want its body): boxed, so that
                // every other call's future stays small.
                (Ok(response), Some(limit)) => {
                    Ok(Box::pin(capture(response, limit, &mut finish)).await)
                }
                (result, _) => result,
            };
            finish.record_async().await;
            result
        })
    }
}
