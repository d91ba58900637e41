//! [`Server`]: a router served over HTTP/1.1 with limits on what each connection may hold,
//! so that silent, slow or numerous clients cannot take the server from everyone else.
//!
//! Each connection is watched from outside hyper. A connection is *waiting* while no request
//! of it is being answered: from connecting until its first request head is read, and on a
//! kept-alive connection from the end of one response to the next head. A waiting connection
//! is closed when its deadline passes, when a newer connection needs its place, or when the
//! server shuts down; a connection answering a request finishes it first. hyper's own
//! `header_read_timeout` is not used: it counts a kept-alive connection's idle time as part of
//! the next head, and the two are given different limits here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// The most connections a [`Server`] holds at once unless told otherwise
/// ([`Server::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// How long a new connection has to send its first request head (TLS handshake included),
/// and a kept-alive one to finish a head it began, unless told otherwise.
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a kept-alive connection may wait for its next request unless told otherwise.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server waits before accepting again when it is short of file descriptors and
/// no connection could be closed to free one (unless a connection ends sooner).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Serves a [`Router`] (a [`Dashboard`](crate::Dashboard)'s, or any other) over HTTP/1.1,
/// with each client's address for the router ([`ConnectInfo<SocketAddr>`]: the dashboard
/// limits wrong tokens per address), and limits that keep the server answering whatever some
/// clients do:
///
/// - a new connection has [`header_read_timeout`](Server::header_read_timeout) (5 s by
///   default) to send its first request head, its TLS handshake included; a kept-alive
///   connection has as long to finish a head once it began one;
/// - a kept-alive connection is closed after [`idle_timeout`](Server::idle_timeout) (30 s by
///   default) without a request;
/// - at most [`max_connections`](Server::max_connections) connections (256 by default) are
///   held. Past that, a new connection takes the place of a connection that is only waiting
///   (one that never sent a whole request first, the one waiting longest first), or is
///   closed at once if every connection is answering a request. The same happens when the
///   process runs out of file descriptors before the cap: accept errors never stop the server,
///   and it never spins on them.
///
/// ```no_run
/// use breaker_dashboard::{Dashboard, RedisBreakers, Server};
/// use breaker_store_redis::{AsyncRedisStore, RedisConfig};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let store = AsyncRedisStore::connect(RedisConfig::standalone("redis://127.0.0.1:6379")).await?;
/// let router = Dashboard::new(RedisBreakers::new(store)).router();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7878").await?;
/// // Until the process ends; pass a future that resolves (on Ctrl-C, say) to stop gracefully.
/// let forever = std::future::pending();
/// Server::new(router).max_connections(64).serve(listener, forever).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Server {
    router: Router,
    limits: Limits,
}

/// What a connection may hold.
#[derive(Clone, Copy, Debug)]
struct Limits {
    header_read: Duration,
    idle: Duration,
    max_connections: usize,
}

impl Server {
    /// A server of `router` with the default limits.
    pub fn new(router: Router) -> Server {
        Server {
            router,
            limits: Limits {
                header_read: DEFAULT_HEADER_READ_TIMEOUT,
                idle: DEFAULT_IDLE_TIMEOUT,
                max_connections: DEFAULT_MAX_CONNECTIONS,
            },
        }
    }

    /// How long a new connection has to complete its TLS handshake (if any) and send its
    /// first request head, and a kept-alive connection to finish a head once its first byte
    /// came (default 5 s). Past it the connection is closed without an answer. Must not be
    /// zero.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Server {
        self.limits.header_read = timeout;
        self
    }

    /// How long a kept-alive connection may wait, after a response, for its next request
    /// (default 30 s) before it is closed. Also how long [`serve`](Server::serve) waits, at
    /// shutdown, for the requests being answered. Must not be zero.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Server {
        self.limits.idle = timeout;
        self
    }

    /// The most connections held at once (default [`DEFAULT_MAX_CONNECTIONS`]); see
    /// [`Server`] for what happens past it. Must be at least 1.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Server {
        self.limits.max_connections = max;
        self
    }

    /// Serves plain HTTP on `listener` until `shutdown` resolves; then accepts nothing more,
    /// closes the connections waiting for a request, and waits for the requests being
    /// answered (at most [`idle_timeout`](Server::idle_timeout)).
    ///
    /// Fails, before serving, only when a limit is out of range (the error names it).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        self.serve_with_handshake(listener, |tcp| std::future::ready(Ok(tcp)), shutdown)
            .await
    }

    /// Serves as [`serve`](Server::serve) does, over what `handshake` makes of each accepted
    /// connection: for HTTPS, a TLS acceptor's handshake (with `tokio-rustls`,
    /// `move |tcp| acceptor.accept(tcp)`). The handshake counts against
    /// [`header_read_timeout`](Server::header_read_timeout) and the connection against
    /// [`max_connections`](Server::max_connections) from the moment it is accepted; a
    /// connection whose handshake fails is closed.
    pub async fn serve_with_handshake<H, F, I>(
        self,
        listener: TcpListener,
        mut handshake: H,
        shutdown: impl Future<Output = ()> + Send,
    ) -> io::Result<()>
    where
        H: FnMut(TcpStream) -> F + Send,
        F: Future<Output = io::Result<I>> + Send + 'static,
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limits = self.limits.checked()?;
        let mut shutdown = pin!(shutdown);
        let mut tasks = JoinSet::new();
        let mut live: HashMap<Id, Arc<Watch>> = HashMap::new();
        // Set while the server is short of file descriptors: accept again after this, or as
        // soon as a connection ends.
        let mut paused_until: Option<Instant> = None;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(ended) = tasks.join_next_with_id() => {
                    let id = match ended {
                        Ok((id, ())) => id,
                        Err(err) => err.id(),
                    };
                    live.remove(&id);
                    paused_until = None;
                }
                accepted = listener.accept(), if paused_until.is_none() => match accepted {
                    Ok((tcp, peer)) => {
                        if live.len() >= limits.max_connections && !make_room(&live) {
                            // Every connection is answering a request: this one is closed
                            // at once rather than held.
                            drop(tcp);
                            continue;
                        }
                        let _ = tcp.set_nodelay(true);
                        let watch = Arc::new(Watch::new(Instant::now()));
                        let connection = serve_connection(
                            handshake(tcp),
                            watch.clone(),
                            peer,
                            self.router.clone(),
                            limits,
                        );
                        let task = tasks.spawn(connection);
                        live.insert(task.id(), watch);
                    }
                    // The client gave up before it was accepted: nothing to do.
                    Err(err) if is_connection_error(&err) => {}
                    // Out of file descriptors (or memory): a connection that is only waiting
                    // is closed to free one for the next, and accepting waits until some
                    // connection ends rather than spinning on the error.
                    Err(err) => {
                        if !make_room(&live) {
                            tracing::warn!(
                                "cannot accept connections ({err}): trying again in {ACCEPT_PAUSE:?}"
                            );
                        }
                        paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    }
                },
                () = sleep_until(paused_until) => paused_until = None,
            }
        }
        drop(listener);
        for watch in live.values() {
            watch.close();
        }
        let drained = async { while tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(limits.idle, drained).await;
        // Dropping the tasks closes whatever is still open.
        Ok(())
    }
}

impl Limits {
    /// These limits, or an error naming the one out of range.
    fn checked(self) -> io::Result<Limits> {
        let refuse = |message: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        if self.max_connections == 0 {
            return refuse("max_connections must be at least 1");
        }
        if self.header_read.is_zero() {
            return refuse("header_read_timeout must be more than zero");
        }
        if self.idle.is_zero() {
            return refuse("idle_timeout must be more than zero");
        }
        Ok(self)
    }
}

/// Errors of one connection that does not exist any more, as opposed to the server's.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Asks the waiting connection that least deserves its place to close: one that has not
/// sent a whole request yet before a kept-alive one, and the one waiting longest first.
/// Whether there was one.
fn make_room(live: &HashMap<Id, Arc<Watch>>) -> bool {
    let victim = live
        .values()
        .filter_map(|watch| {
            let phase = watch.phase();
            (phase.in_flight == 0 && !phase.closing)
                .then_some(((phase.answered, phase.waiting_since), watch))
        })
        .min_by_key(|(order, _)| *order);
    match victim {
        Some((_, watch)) => {
            watch.close();
            true
        }
        None => false,
    }
}

/// Resolves at `deadline`, or never without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// One connection as the server sees it, shared by its task, its stream and its responses.
struct Watch {
    phase: Mutex<Phase>,
    /// Told each time the phase changes, so the connection's task reconsiders its deadline.
    changed: Notify,
}

#[derive(Clone, Copy, Debug)]
struct Phase {
    /// Requests being answered: from the head read to the last byte of the response.
    in_flight: usize,
    /// When the connection began waiting: accepted, or its last response written.
    waiting_since: Instant,
    /// Whether a response was written: waiting is then a kept-alive connection's idle time.
    answered: bool,
    /// When the first byte of a kept-alive connection's next head came.
    head_begun: Option<Instant>,
    /// Asked to close: for a newer connection, or because the server shuts down.
    closing: bool,
}

impl Phase {
    /// When a waiting connection is closed; `None` while it answers a request.
    fn deadline(&self, limits: Limits) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match (self.answered, self.head_begun) {
            (false, _) => self.waiting_since + limits.header_read,
            (true, None) => self.waiting_since + limits.idle,
            (true, Some(begun)) => begun + limits.header_read,
        })
    }

    /// Whether the connection must close now: waiting, and asked to or past its deadline.
    fn must_close(&self, limits: Limits, now: Instant) -> bool {
        self.deadline(limits)
            .is_some_and(|deadline| self.closing || deadline <= now)
    }
}

impl Watch {
    fn new(now: Instant) -> Watch {
        Watch {
            phase: Mutex::new(Phase {
                in_flight: 0,
                waiting_since: now,
                answered: false,
                head_begun: None,
                closing: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        // Every change leaves the phase whole: a panic elsewhere cannot leave it half-written.
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn phase(&self) -> Phase {
        *self.lock()
    }

    fn update(&self, change: impl FnOnce(&mut Phase)) {
        change(&mut self.lock());
        self.changed.notify_one();
    }

    fn close(&self) {
        self.update(|phase| phase.closing = true);
    }

    /// Bytes came in: on a kept-alive connection waiting for a request, a head has begun.
    fn bytes_read(&self) {
        let mut phase = self.lock();
        if phase.in_flight == 0 && phase.answered && phase.head_begun.is_none() {
            phase.head_begun = Some(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// Resolves once the connection, waiting, must close: asked to, or past its deadline.
    async fn expired(&self, limits: Limits) {
        loop {
            let changed = self.changed.notified();
            let phase = self.phase();
            if phase.must_close(limits, Instant::now()) {
                return;
            }
            tokio::select! {
                () = changed => {}
                () = sleep_until(phase.deadline(limits)) => {}
            }
        }
    }
}

/// One request being answered, until its response is written out (or dropped).
struct Answering(Arc<Watch>);

impl Answering {
    fn begin(watch: &Arc<Watch>) -> Answering {
        watch.update(|phase| {
            phase.in_flight += 1;
            phase.head_begun = None;
        });
        Answering(watch.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.update(|phase| {
            phase.in_flight = phase.in_flight.saturating_sub(1);
            if phase.in_flight == 0 {
                phase.waiting_since = Instant::now();
                phase.answered = true;
                phase.head_begun = None;
            }
        });
    }
}

/// A response body that keeps its request counted as being answered until hyper has written
/// it out and dropped it: a client reading a long answer slowly is not a waiting connection.
struct Answer {
    body: Body,
    _answering: Answering,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's stream, telling its [`Watch`] when bytes come in.
struct Watched<I> {
    io: I,
    watch: Arc<Watch>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.watch.bytes_read();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// One connection, from its handshake to its close.
async fn serve_connection<F, I>(
    handshake: F,
    watch: Arc<Watch>,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
) where
    F: Future<Output = io::Result<I>>,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = tokio::select! {
        shaken = handshake => match shaken {
            Ok(io) => io,
            Err(_) => return,
        },
        () = watch.expired(limits) => return,
    };
    let answering = watch.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let answering = Answering::begin(&answering);
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = router.clone().oneshot(request);
        async move {
            let response = match response.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| Answer {
                body,
                _answering: answering,
            }))
        }
    });
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.header_read_timeout(None);
    let http = http1.serve_connection(
        TokioIo::new(Watched {
            io,
            watch: watch.clone(),
        }),
        service,
    );
    let mut http = pin!(http);
    let mut finishing = false;
    loop {
        // Made before the phase is read: a change from here on wakes the select below.
        let changed = watch.changed.notified();
        let phase = watch.phase();
        if phase.must_close(limits, Instant::now()) {
            // Dropping the connection closes it: it was waiting, so no answer is cut short.
            return;
        }
        if phase.closing && !finishing {
            // Asked to close while answering: hyper closes once the response is written.
            http.as_mut().graceful_shutdown();
            finishing = true;
        }
        tokio::select! {
            _ = http.as_mut() => return,
            () = changed => {}
            () = sleep_until(phase.deadline(limits)) => {}
        }
    }
}
