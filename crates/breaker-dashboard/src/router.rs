//! The HTTP side: the page, the JSON API, and who may act.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use breaker_core::{Action, HistoryEntry, StoreError, StoreErrorKind};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::guard::{Attempts, Hosts, client_ip, same_origin};
use crate::metrics::{DEFAULT_METRICS_CAP, METRICS_CONTENT_TYPE};
use crate::shared::Latest;
use crate::store::{BreakerView, DashboardStore, StoreUsage};

/// History entries `/api/history` answers when the request does not say.
const DEFAULT_HISTORY: usize = 100;
/// The most history entries one request may ask for.
const MAX_HISTORY: usize = 1_000;

/// The dashboard of the breakers in a [`DashboardStore`]: a live page and a JSON API, as an
/// [axum](https://docs.rs/axum) [`Router`] to serve alone or to nest in a service's own.
///
/// Read-only unless built with [`token`](Dashboard::token): operator actions
/// (`POST /api/breakers/{name}/{action}`) are refused with `401` unless the request carries
/// `Authorization: Bearer <token>`, and a refused request changes nothing.
pub struct Dashboard<S> {
    store: S,
    token: Option<Token>,
    /// A token was given that no request can match (see [`Dashboard::token`]).
    unusable_token: bool,
    metrics_cap: usize,
    hosts: Hosts,
    log: Log,
    refresh: Duration,
}

/// How long one read of the store answers every page and scrape, unless told otherwise: the
/// page refreshes once a second.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(1);

/// Where refused requests are reported.
type Log = Arc<dyn Fn(&str) + Send + Sync>;

impl<S> fmt::Debug for Dashboard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl<S: DashboardStore> Dashboard<S> {
    /// A read-only dashboard of `store`.
    pub fn new(store: S) -> Dashboard<S> {
        Dashboard {
            store,
            token: None,
            unusable_token: false,
            metrics_cap: DEFAULT_METRICS_CAP,
            hosts: Hosts::default(),
            log: Arc::new(|line: &str| tracing::warn!("{line}")),
            refresh: DEFAULT_REFRESH,
        }
    }

    /// How long one read of the store (the listing, a history) answers every request for it
    /// (default [`DEFAULT_REFRESH`]): every open page and every `/metrics` scrape within it
    /// share that read, so ten viewers cost the store what one does. An operator's action
    /// through the dashboard is shown at once (it ends the shared reads). `Duration::ZERO`
    /// reads the store for each request.
    #[must_use]
    pub fn refresh(mut self, refresh: Duration) -> Dashboard<S> {
        self.refresh = refresh;
        self
    }

    /// Also answers requests whose `Host` names `host` (a name or address, with or without a
    /// port). Requests naming a loopback host (`localhost`, `127.0.0.1`, `[::1]`) are always
    /// answered; any other `Host` is refused with `403`, so a web page whose name was made to
    /// point at the dashboard (DNS rebinding) reads nothing. A dashboard listening beyond
    /// loopback allows its listen address and the names users reach it by.
    #[must_use]
    pub fn allow_host(mut self, host: impl AsRef<str>) -> Dashboard<S> {
        self.hosts.allow(host.as_ref());
        self
    }

    /// Reports refused requests (a foreign `Host` or `Origin`, a wrong token, too many
    /// wrong tokens) and a refused [`token`](Dashboard::token) to `log`, one line each,
    /// instead of to `tracing` at level WARN.
    #[must_use]
    pub fn log(mut self, log: impl Fn(&str) + Send + Sync + 'static) -> Dashboard<S> {
        self.log = Arc::new(log);
        self
    }

    /// The most breakers `GET /metrics` exposes (default [`DEFAULT_METRICS_CAP`]): open,
    /// half-open and overridden breakers first, then by name. The exposition says when it cut.
    #[must_use]
    pub fn metrics_cap(mut self, cap: usize) -> Dashboard<S> {
        self.metrics_cap = cap;
        self
    }

    /// Allows operator actions to requests that carry `token` as a bearer token. An empty
    /// token allows nothing: the dashboard stays read-only.
    ///
    /// So does a token that starts or ends with whitespace (often a newline or `\r` left
    /// from the file it was read from), and [`router`](Dashboard::router) says so to the
    /// [`log`](Dashboard::log): a request's credentials are read without surrounding
    /// whitespace, so no request could ever match it. Check a token read from a file before
    /// passing it, as the `breaker dashboard` command does (it refuses to start).
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Dashboard<S> {
        let token = token.into();
        self.unusable_token = token.trim() != token;
        self.token = (!token.is_empty() && !self.unusable_token).then(|| Token(token.into_bytes()));
        self
    }

    /// The router: `/` (the page), `GET /api/config`, `GET /api/breakers[?name=]`,
    /// `GET /api/history?name=&count=`, `GET /api/cost`, `GET /metrics` and
    /// `POST /api/breakers/{name}/{action}?for=` (any other method there: `405`).
    pub fn router(self) -> Router {
        if self.unusable_token {
            (self.log)(
                "the dashboard's token starts or ends with whitespace (a newline or \\r from a \
                 file?), which no request can match: the dashboard is read-only",
            );
        }
        let shared = Arc::new(Shared {
            store: self.store,
            token: self.token,
            metrics_cap: self.metrics_cap,
            hosts: self.hosts,
            log: self.log,
            attempts: Attempts::default(),
            listing: Latest::new(self.refresh),
            histories: Latest::new(self.refresh),
            details: Latest::new(self.refresh),
            cost: Latest::new(self.refresh),
            usage: std::sync::Mutex::new(None),
        });
        // The token is asked of POSTs only: any other method is refused with 405 before it,
        // and is no failed attempt (a browser or a crawler following the URL locks no one
        // out). `MethodRouter::route_layer` leaves the method fallback out of the layer.
        let act = post(act::<S>)
            .route_layer(middleware::from_fn_with_state(
                shared.clone(),
                require_token::<S>,
            ))
            .fallback(only_post);
        Router::new()
            .route("/", get(page))
            .route("/api/config", get(config::<S>))
            .route("/api/breakers", get(breakers::<S>))
            .route("/api/history", get(history::<S>))
            .route("/api/cost", get(cost::<S>))
            .route("/metrics", get(metrics::<S>))
            .route("/api/breakers/{name}/{action}", act)
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(
                shared.clone(),
                check_host::<S>,
            ))
            .layer(middleware::map_response(safety_headers))
            .with_state(shared)
    }
}

/// The operator token; never printed.
struct Token(Vec<u8>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

struct Shared<S> {
    store: S,
    token: Option<Token>,
    metrics_cap: usize,
    hosts: Hosts,
    log: Log,
    attempts: Attempts,
    /// The latest listing, shared by the pages and scrapes that ask within a refresh.
    listing: Latest<(), Vec<BreakerView>>,
    /// Likewise each history asked for (by breaker, or merged, and count).
    histories: Latest<(Option<String>, usize), Vec<HistoryEntry>>,
    /// Likewise each breaker asked for on its own, with its window.
    details: Latest<String, Option<BreakerView>>,
    /// Likewise what the store's server spent, from the last two samples.
    cost: Latest<(), serde_json::Value>,
    /// The last sample of the server's usage, and when it was taken.
    usage: std::sync::Mutex<Option<(Instant, StoreUsage)>>,
}

impl<S: DashboardStore> Shared<S> {
    /// Every breaker, as the latest read shared by every page and scrape says.
    async fn breakers(&self) -> Result<Vec<BreakerView>, StoreError> {
        self.listing.get((), || self.store.breakers()).await
    }

    /// What the store's server spent a second since the previous sample, as `/api/cost`
    /// answers it.
    async fn cost(&self) -> Result<serde_json::Value, StoreError> {
        let usage = match self.store.usage().await {
            Ok(Some(usage)) => usage,
            Ok(None) => {
                return Ok(json!({ "unavailable": "this store does not say what it costs" }));
            }
            Err(err) if err.kind() == StoreErrorKind::Config => {
                return Ok(json!({
                    "unavailable": format!(
                        "the store's user may not read INFO ({err}); allow it (+info) to see \
                         what the fleet costs Redis"
                    )
                }));
            }
            Err(err) => return Err(err),
        };
        let now = Instant::now();
        let previous = self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace((now, usage));
        let Some((then, before)) = previous else {
            return Ok(json!({ "measuring": true }));
        };
        let seconds = now.duration_since(then).as_secs_f64();
        // A server that restarted counts from zero again: measure from this sample on.
        if seconds <= 0.0 || usage.commands < before.commands || usage.cpu < before.cpu {
            return Ok(json!({ "measuring": true }));
        }
        let per_second = |now: u64, before: u64| now.saturating_sub(before) as f64 / seconds;
        Ok(json!({
            "cpu_share": (usage.cpu - before.cpu).as_secs_f64() / seconds,
            "script_calls_per_second": per_second(usage.script_calls, before.script_calls),
            "commands_per_second": per_second(usage.commands, before.commands),
            "over_ms": (seconds * 1e3).round() as u64,
        }))
    }
}

impl<S> Shared<S> {
    /// Whether `headers` carry the configured token. Compared in constant time, so the
    /// answer's timing tells nothing of how much of a guess was right.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(Token(token)) = &self.token else {
            return false;
        };
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| bearer(value.as_bytes()))
        else {
            return false;
        };
        token.as_slice().ct_eq(given).into()
    }
}

/// The credentials of a `Bearer` authorization (the scheme is case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

fn error(status: StatusCode, message: impl fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// A store failure: an unknown breaker is 404, anything else means the store cannot answer
/// now (503), which the page shows as an outage.
fn store_error(err: &StoreError) -> Response {
    let status = match err.kind() {
        StoreErrorKind::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, err)
}

/// The `Host` a request names: its header, or the URI's authority (HTTP/2).
fn host_of(request: &Request) -> Option<String> {
    match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok().map(str::to_owned),
        None => request.uri().authority().map(|a| a.as_str().to_owned()),
    }
}

fn client_of(request: &Request) -> IpAddr {
    let connected = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| *address);
    client_ip(connected)
}

/// Refuses requests that name a host other than this dashboard's (DNS rebinding).
async fn check_host<S: DashboardStore>(
    State(shared): State<Arc<Shared<S>>>,
    request: Request,
    next: Next,
) -> Response {
    let host = host_of(&request).unwrap_or_default();
    if shared.hosts.allows(&host) {
        return next.run(request).await;
    }
    (shared.log)(&format!(
        "refused a request from {} naming host {host:?}: not this dashboard's (start it with --allow-host to allow a name)",
        client_of(&request)
    ));
    error(
        StatusCode::FORBIDDEN,
        "this dashboard does not answer to that host name",
    )
}

async fn require_token<S: DashboardStore>(
    State(shared): State<Arc<Shared<S>>>,
    request: Request,
    next: Next,
) -> Response {
    let client = client_of(&request);
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let host = host_of(&request).unwrap_or_default();
        if !same_origin(origin, &host) {
            (shared.log)(&format!(
                "refused an action from {client}: foreign origin {origin:?}"
            ));
            return error(
                StatusCode::FORBIDDEN,
                "actions are taken only from the dashboard's own page",
            );
        }
    }
    let now = Instant::now();
    if let Some(wait) = shared.attempts.blocked(client, now) {
        (shared.log)(&format!(
            "refused an action from {client}: too many wrong tokens, {}s to wait",
            wait.as_secs() + 1
        ));
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong tokens from this address: wait, then try again",
        );
        if let Ok(value) = HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    if shared.authorized(request.headers()) {
        return next.run(request).await;
    }
    if shared.token.is_some() {
        shared.attempts.failed(client, now);
        (shared.log)(&format!(
            "refused an action from {client}: wrong or missing token"
        ));
    }
    let message = if shared.token.is_none() {
        "this dashboard is read-only: it was started without a token"
    } else {
        "actions need the dashboard's token as `Authorization: Bearer <token>`"
    };
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"breaker dashboard\""),
    );
    response
}

async fn config<S: DashboardStore>(State(shared): State<Arc<Shared<S>>>) -> Response {
    Json(json!({ "actions": shared.token.is_some() })).into_response()
}

#[derive(Deserialize)]
struct BreakersQuery {
    name: Option<String>,
}

/// Every breaker; or with `?name=`, that one alone with its window (a list of one, or none).
async fn breakers<S: DashboardStore>(
    State(shared): State<Arc<Shared<S>>>,
    query: Result<Query<BreakersQuery>, QueryRejection>,
) -> Response {
    let name = match query {
        Ok(Query(query)) => query.name,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let listed = match name {
        None => shared.breakers().await,
        Some(name) => {
            let read = || shared.store.breaker(&name);
            let one = shared.details.get(name.clone(), read).await;
            one.map(|view| view.into_iter().collect())
        }
    };
    match listed {
        Ok(views) => Json(views).into_response(),
        Err(err) => store_error(&err),
    }
}

/// What the store's server spent a second, shared by every page within a refresh.
async fn cost<S: DashboardStore>(State(shared): State<Arc<Shared<S>>>) -> Response {
    match shared.cost.get((), || shared.cost()).await {
        Ok(cost) => Json(cost).into_response(),
        Err(err) => store_error(&err),
    }
}

async fn metrics<S: DashboardStore>(State(shared): State<Arc<Shared<S>>>) -> Response {
    let text = crate::metrics::render(&shared.breakers().await, shared.metrics_cap);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(METRICS_CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

#[derive(Deserialize)]
struct HistoryQuery {
    name: Option<String>,
    count: Option<usize>,
}

async fn history<S: DashboardStore>(
    State(shared): State<Arc<Shared<S>>>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let count = query.count.unwrap_or(DEFAULT_HISTORY);
    if !(1..=MAX_HISTORY).contains(&count) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("count must be from 1 to {MAX_HISTORY}"),
        );
    }
    let key = (query.name.clone(), count);
    let read = || shared.store.history(query.name.as_deref(), count);
    match shared.histories.get(key, read).await {
        Ok(entries) => Json(entries).into_response(),
        Err(err) => store_error(&err),
    }
}

#[derive(Deserialize)]
struct ActionQuery {
    #[serde(rename = "for")]
    duration: Option<String>,
}

async fn act<S: DashboardStore>(
    State(shared): State<Arc<Shared<S>>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ActionQuery>, QueryRejection>,
) -> Response {
    let (name, action) = match path {
        Ok(Path(path)) => path,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let (duration, text) = match query {
        Ok(Query(ActionQuery { duration: None })) => (None, None),
        Ok(Query(ActionQuery {
            duration: Some(text),
        })) => match humantime::parse_duration(&text) {
            Ok(duration) => (Some(duration), Some(text)),
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("for={text:?}: {err} (write durations like 30s, 10m, 1h)"),
                );
            }
        },
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let action = match Action::parse(&action, duration) {
        Ok(action) => action,
        // An action that does not exist is a page that does not exist; one that exists but
        // was asked wrongly (a duration on a trip, or too short an override) is a bad
        // request, which names the `for` it was given.
        Err(message) if Action::NAMES.contains(&action.as_str()) => {
            let message = match text {
                Some(text) if action.starts_with("force-") => {
                    format!("for={text:?}: {message} (leave out `for` to hold it until `auto`)")
                }
                Some(text) => format!("for={text:?}: {message}"),
                None => message,
            };
            return error(StatusCode::BAD_REQUEST, message);
        }
        Err(message) => return error(StatusCode::NOT_FOUND, message),
    };
    let acted = shared.store.act(&name, action).await;
    // The page shows the action at its next refresh, not one shared read later.
    shared.listing.forget().await;
    shared.histories.forget().await;
    shared.details.forget().await;
    match acted {
        Ok(()) => Json(json!({ "name": name, "action": action.to_string() })).into_response(),
        Err(err) => store_error(&err),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such page")
}

/// Any method but POST on an action's URL.
async fn only_post() -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "actions are taken with POST",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// The page, built once: its inline script and style are allowed by their hashes in the
/// Content-Security-Policy, so markup that slipped into the page could run no script.
struct Page {
    html: String,
    policy: HeaderValue,
}

fn built_page() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| {
        let style = include_str!("page.css");
        let script = include_str!("page.js");
        let html = include_str!("page.html")
            .replace("/* STYLE */", style)
            .replace("/* SCRIPT */", script);
        let hash = |text: &str| {
            let digest = Sha256::digest(text.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        };
        let policy = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash(script),
            hash(style)
        );
        Page {
            html,
            policy: HeaderValue::from_str(&policy)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        }
    })
}

async fn page() -> Response {
    let page = built_page();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, page.policy.clone()),
        ],
        page.html.as_str(),
    )
        .into_response()
}

/// Headers on every answer: never sniffed, framed, cached or sent on as a referrer.
async fn safety_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials_are_read_whatever_the_scheme_case() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
    }

    #[test]
    fn the_page_has_its_script_and_style_inline() {
        let page = built_page();
        assert!(!page.html.contains("/* SCRIPT */"));
        assert!(!page.html.contains("/* STYLE */"));
        let policy = page.policy.to_str().unwrap_or_default();
        assert_eq!(policy.matches("'sha256-").count(), 2, "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
    }
}
