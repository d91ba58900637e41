//! A circuit breaker for any [tower](https://docs.rs/tower) HTTP client service, as a
//! [`tower::Layer`]: hyper-util's client, tonic channels, and anything built on them.
//!
//! It behaves as `breaker-reqwest` and `breaker-ureq` do (all three share `breaker-http`):
//! breakers mounted on URL prefixes (the longest match deciding) or made on demand
//! ([`OnDemand`]); 5xx and transport errors counted as failures; a 429 or 503 with
//! `Retry-After` opens the breaker until then; rejected calls answered without network IO by
//! the synthetic `500` (with a [`BreakerOpen`] response extension) or, in
//! [`RejectionMode::Error`], by an error that downcasts to [`BreakerOpen`].
//!
//! The service answers with [`BreakerBody`], which is the inner service's body or the
//! synthetic response's, and with [`BoxError`] errors, as tower's own layers do. Under
//! `tower::retry`, put the retry layer outside this one (every attempt then counts) and let
//! the policy stop at [`rejection_of`] (see `tests/retries.rs`).
//!
//! ```no_run
//! use breaker_core::Policy;
//! use breaker_store_memory::MemoryStore;
//! use breaker_tower::{BreakerLayer, BreakerOpen};
//! use http_body_util::Empty;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Layer, ServiceExt};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let store = MemoryStore::new();
//! let layer = BreakerLayer::new()
//!     .mount("http://api.example.com", store.breaker("api", Policy::default())?)?;
//! let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
//! let service = layer.layer(client);
//! let request = http::Request::get("http://api.example.com/users").body(Empty::new())?;
//! let response = service.oneshot(request).await?;
//! if response.extensions().get::<BreakerOpen>().is_some() {
//!     // The breaker is open: this 500 never left the process.
//! }
//! # Ok(())
//! # }
//! ```

// Public types that may grow are `#[non_exhaustive]` by rule; the few that are complete by
// definition say so where they are declared.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use breaker_core::AsyncBreaker;
pub use breaker_core::Outcome;
pub use breaker_http::{
    Attempt, BreakerOpen, Classifier, HttpContext, MountError, OnDemand, RejectionMode,
    RequestErrorKind, RequestHead, default_classify,
};
use breaker_http::{Breakers, Finish, Start};
use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};

/// The error of a [`BreakerService`]: the inner service's error, or a [`BreakerOpen`] in
/// [`RejectionMode::Error`] (`error.downcast_ref::<BreakerOpen>()`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

breaker_http::client_type!(
    /// Circuit breakers for a tower HTTP client service, mounted on URL prefixes or made on
    /// demand: a [`tower::Layer`] whose services share them. Works with any store whose
    /// breakers implement [`AsyncBreaker`] (memory, Redis).
    BreakerLayer,
    asynchronous,
    AsyncBreaker
);

impl<S, B> tower::Layer<S> for BreakerLayer<B> {
    type Service = BreakerService<S, B>;

    fn layer(&self, inner: S) -> BreakerService<S, B> {
        BreakerService {
            inner,
            breakers: Arc::new(self.breakers.clone()),
        }
    }
}

/// The service [`BreakerLayer`] wraps around an HTTP client service.
pub struct BreakerService<S, B> {
    inner: S,
    breakers: Arc<Breakers<B>>,
}

impl<S: Clone, B> Clone for BreakerService<S, B> {
    fn clone(&self) -> Self {
        BreakerService {
            inner: self.inner.clone(),
            breakers: self.breakers.clone(),
        }
    }
}

impl<S: std::fmt::Debug, B> std::fmt::Debug for BreakerService<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerService")
            .field("inner", &self.inner)
            .field("breakers", &self.breakers)
            .finish()
    }
}

/// The [`BreakerOpen`] behind `result`, if a breaker rejected the call: the synthetic
/// response's marker or, in error mode, the error (anywhere in its chain). A retry policy
/// should not retry such a call.
pub fn rejection_of<T>(result: &Result<http::Response<T>, BoxError>) -> Option<&BreakerOpen> {
    match result {
        Ok(response) => response.extensions().get::<BreakerOpen>(),
        Err(error) => {
            let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&**error);
            while let Some(error) = next {
                if let Some(rejection) = error.downcast_ref::<BreakerOpen>() {
                    return Some(rejection);
                }
                next = error.source();
            }
            None
        }
    }
}

/// Timeouts anywhere in the error's chain are timeouts; everything else the inner service
/// returns is a transport error (it cannot tell us what was not sent).
fn error_kind(error: &(dyn std::error::Error + 'static)) -> RequestErrorKind {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return RequestErrorKind::Timeout;
        }
        next = error.source();
    }
    RequestErrorKind::Transport
}

type Answer<R> = Result<http::Response<BreakerBody<R>>, BoxError>;

impl<S, B, Q, R> tower::Service<http::Request<Q>> for BreakerService<S, B>
where
    S: tower::Service<http::Request<Q>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: AsyncBreaker + 'static,
    Q: Send + 'static,
    R: Body + Unpin + Send + 'static,
    R::Data: From<Bytes> + Send,
    R::Error: Send,
{
    type Response = http::Response<BreakerBody<R>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Answer<R>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Q>) -> Self::Future {
        // The service that was polled ready goes with this call; a clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let breakers = self.breakers.clone();
        // The request waits in a box of its own while the breaker answers: the call's future
        // then stays under the allocator's small-size cache, a cheaper pair of allocations
        // than one large one.
        let request = Box::new(request);
        Box::pin(async move {
            let head =
                RequestHead::new(request.method().as_str(), request.uri(), request.headers());
            let call = match breakers.start_async(&head).await {
                Start::Pass => {
                    let response = inner.call(*request).await.map_err(Into::into)?;
                    return Ok(response.map(BreakerBody::inner));
                }
                Start::Respond(rejection) => return Ok(rejection.map(BreakerBody::rejection)),
                Start::Fail(rejection) => return Err(rejection.into()),
                Start::Send(call) => call,
            };
            let result = inner.call(*request).await.map_err(Into::into);
            let mut finish = match &result {
                Ok(response) => call.response(response.status().as_u16(), Some(response.headers())),
                Err(err) => call.error(error_kind(&**err), &**err),
            };
            let result = match result {
                Ok(response) => Ok(match finish.capture() {
                    None => response.map(BreakerBody::inner),
                    // Rare (a failed call, with listeners that want its body): boxed, so
                    // that every other call's future stays small.
                    Some(limit) => Box::pin(capture(response, limit, &mut finish)).await,
                }),
                Err(err) => Err(err),
            };
            finish.record_async().await;
            result
        })
    }
}

/// Reads the first `limit` bytes of the body for listeners, as `finish` asked; the caller
/// still gets the whole body (the frames read, then the rest).
async fn capture<B, R>(
    response: http::Response<R>,
    limit: usize,
    finish: &mut Finish<B>,
) -> http::Response<BreakerBody<R>>
where
    R: Body + Unpin,
    R::Data: From<Bytes>,
{
    let (parts, mut body) = response.into_parts();
    let mut head = VecDeque::new();
    let mut prefix = Vec::new();
    let mut failed = None;
    while prefix.len() < limit {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => {
                let frame = frame.map_data(|mut data| {
                    let bytes = data.copy_to_bytes(data.remaining());
                    let take = bytes.len().min(limit - prefix.len());
                    prefix.extend_from_slice(&bytes[..take]);
                    R::Data::from(bytes)
                });
                head.push_back(frame);
            }
            // The read failed: the caller meets the same error after the frames that came.
            Some(Err(err)) => {
                failed = Some(err);
                break;
            }
            None => break,
        }
    }
    finish.body_prefix(prefix);
    let body = BreakerBody {
        head,
        failed,
        body: Some(body),
        rejection: None,
    };
    http::Response::from_parts(parts, body)
}

/// The body of a response through a [`BreakerService`]: the inner service's body (with any
/// frames read for listeners given back first), or the synthetic rejection's JSON.
pub struct BreakerBody<R: Body> {
    head: VecDeque<Frame<R::Data>>,
    failed: Option<R::Error>,
    body: Option<R>,
    rejection: Option<Bytes>,
}

// The inner body is only ever polled through `Pin::new`, which needs it `Unpin`; the frames
// and error kept beside it are never pinned.
impl<R: Body + Unpin> Unpin for BreakerBody<R> {}

impl<R: Body> std::fmt::Debug for BreakerBody<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerBody")
            .field("rejection", &self.rejection.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: Body> BreakerBody<R> {
    fn inner(body: R) -> BreakerBody<R> {
        BreakerBody {
            head: VecDeque::new(),
            failed: None,
            body: Some(body),
            rejection: None,
        }
    }

    fn rejection(json: String) -> BreakerBody<R> {
        BreakerBody {
            head: VecDeque::new(),
            failed: None,
            body: None,
            rejection: Some(Bytes::from(json)),
        }
    }
}

impl<R> Body for BreakerBody<R>
where
    R: Body + Unpin,
    R::Data: From<Bytes>,
{
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<R::Data>, R::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.head.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(err) = this.failed.take() {
            return Poll::Ready(Some(Err(err)));
        }
        match &mut this.body {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(
                this.rejection
                    .take()
                    .map(|json| Ok(Frame::data(R::Data::from(json)))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_empty()
            && self.failed.is_none()
            && match &self.body {
                Some(body) => body.is_end_stream(),
                None => self.rejection.is_none(),
            }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.body, &self.rejection) {
            (None, Some(json)) => SizeHint::with_exact(json.len() as u64),
            (None, None) => SizeHint::with_exact(0),
            (Some(body), _) if self.head.is_empty() && self.failed.is_none() => body.size_hint(),
            (Some(_), _) => SizeHint::default(),
        }
    }
}
