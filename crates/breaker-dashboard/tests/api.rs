//! The dashboard's API over real Redis, served on a real loopback listener and asked over
//! real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing;
use breaker_core::{Action, AsyncBreaker, Outcome, Policy, call_async};
use breaker_dashboard::{Dashboard, RedisBreakers, Server};
use breaker_store_redis::{AsyncRedisBreaker, AsyncRedisStore, ListRequest, RedisConfig};
use breaker_testkit::redis_server::RedisServer;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "s3cret-token";

async fn store(redis: &RedisServer, actor: &str) -> AsyncRedisStore {
    let config = RedisConfig::standalone(redis.url())
        .prefix("api-test")
        .timeout(Duration::from_secs(1))
        .actor(actor);
    AsyncRedisStore::connect(config).await.unwrap()
}

/// Serves a dashboard of `redis` on a free loopback port; its base URL. These tests change
/// the store between two requests, so each request reads the store (no shared read, no
/// policies reused).
async fn serve(redis: &RedisServer, token: Option<&str>) -> String {
    serve_dashboard(
        Dashboard::new(
            RedisBreakers::new(store(redis, "dashboard").await).reuse_policies(Duration::ZERO),
        )
        .refresh(Duration::ZERO),
        token,
    )
    .await
}

async fn serve_dashboard(mut dashboard: Dashboard<RedisBreakers>, token: Option<&str>) -> String {
    if let Some(token) = token {
        dashboard = dashboard.token(token);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, dashboard.router()).await });
    url
}

fn policy(minimum_failures: u64) -> Policy {
    Policy::builder()
        .minimum_failures(minimum_failures)
        .failure_rate(50.0)
        .build()
        .unwrap()
}

async fn record(breaker: &AsyncRedisBreaker, successes: usize, failures: usize) {
    for _ in 0..successes {
        let result: Result<(), _> = call_async(breaker, async { Ok::<(), ()>(()) }).await;
        result.unwrap();
    }
    for _ in 0..failures {
        let permit = breaker.acquire().await.unwrap();
        breaker.record(permit, Outcome::Failure.into()).await;
    }
}

async fn get(url: &str) -> (StatusCode, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{url}: not JSON: {text}")),
    )
}

async fn post(url: &str, authorization: Option<&str>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{url}: not JSON: {text}")),
    )
}

/// Every byte but the unreserved ones percent-encoded, as a careful client sends a name.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

async fn breakers(url: &str) -> Vec<Value> {
    let (status, body) = get(&format!("{url}/api/breakers")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

async fn one(url: &str, name: &str) -> Value {
    breakers(url)
        .await
        .into_iter()
        .find(|breaker| breaker["name"] == name)
        .unwrap_or_else(|| panic!("{name:?} is not listed"))
}

/// Polls `done` until it holds, failing after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakers_are_listed_with_their_buckets_history_and_conflicts() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let payments = app.breaker("payments", policy(3)).await.unwrap();
    record(&payments, 1, 3).await;
    let search = app.breaker("search", policy(5)).await.unwrap();
    record(&search, 2, 1).await;
    let url = serve(&redis, None).await;

    let listed = breakers(&url).await;
    let names: Vec<&str> = listed.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["payments", "search"]);
    let payments_view = &listed[0];
    assert_eq!(payments_view["state"], "open");
    assert_eq!(
        (&payments_view["calls"], &payments_view["failures"]),
        (&Value::from(4), &Value::from(3))
    );
    assert_eq!(payments_view["failure_rate"], 75.0);
    assert!(payments_view["open_until_ms"].as_u64().unwrap() > 0);
    assert_eq!(payments_view["override"], "auto");
    assert_eq!(payments_view["policy_conflict"], false);
    assert_eq!(payments_view["window_ms"], 60_000);
    assert_eq!(payments_view["bucket_ms"], 1_000);
    let buckets = payments_view["buckets"].as_array().unwrap();
    assert!(!buckets.is_empty());
    let sum = |field: &str| -> u64 { buckets.iter().map(|b| b[field].as_u64().unwrap()).sum() };
    assert_eq!((sum("calls"), sum("failures")), (4, 3));
    assert!(
        buckets
            .iter()
            .all(|b| b["start_ms"].as_u64().unwrap() % 1_000 == 0)
    );
    let search_view = &listed[1];
    assert_eq!(search_view["state"], "closed");
    assert_eq!(search_view["open_until_ms"], Value::Null);

    // The same fields as `breaker status --json`, which prints the same type.
    for field in [
        "name",
        "state",
        "calls",
        "failures",
        "failure_rate",
        "open_until_ms",
        "override",
        "override_until_ms",
        "policy_conflict",
        "policies",
    ] {
        assert!(payments_view.get(field).is_some(), "{field} missing");
    }

    // History: the trip, with its cause and counts.
    let (status, history) = get(&format!("{url}/api/history")).await;
    assert_eq!(status, StatusCode::OK);
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["name"], "payments");
    assert_eq!(history[0]["event"], "tripped");
    assert_eq!(history[0]["details"]["cause"], "threshold");
    assert_eq!(history[0]["details"]["failures"], "3");
    let (_, none) = get(&format!("{url}/api/history?name=search")).await;
    assert_eq!(none, Value::Array(vec![]));
    for bad in ["count=0", "count=1001", "count=many"] {
        let (status, body) = get(&format!("{url}/api/history?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string());
    }

    // A second process with another policy: a conflict.
    let other = store(&redis, "other app").await;
    let _conflicting = other.breaker("search", policy(9)).await.unwrap();
    let search_view = one(&url, "search").await;
    assert_eq!(search_view["policy_conflict"], true);
    assert_eq!(search_view["policies"].as_array().unwrap().len(), 2);

    // Unknown paths answer JSON too.
    let (status, _) = get(&format!("{url}/api/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_change_nothing_without_the_token_and_work_with_it() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let _payments = app.breaker("payments", policy(3)).await.unwrap();
    let read_only = serve(&redis, None).await;
    let guarded = serve(&redis, Some(TOKEN)).await;
    // Refusals go to a dashboard of their own: after a few wrong tokens it refuses even the
    // right one for a while (429), and the actions below need this one's allowance.
    let refusing = serve(&redis, Some(TOKEN)).await;

    let (_, config) = get(&format!("{read_only}/api/config")).await;
    assert_eq!(config["actions"], false);
    let (_, config) = get(&format!("{guarded}/api/config")).await;
    assert_eq!(config["actions"], true);

    let before = one(&guarded, "payments").await;
    let bearer = format!("Bearer {TOKEN}");
    let refused: [(&str, Option<&str>); 6] = [
        (&read_only, None),
        (&read_only, Some(&bearer)),
        (&refusing, None),
        (&refusing, Some("Bearer wrong")),
        (&refusing, Some(TOKEN)),
        (&refusing, Some("Basic czNjcmV0LXRva2Vu")),
    ];
    for (url, authorization) in refused {
        for action in [
            "trip",
            "reset",
            "force-open?for=10m",
            "force-closed",
            "auto",
            "explode",
            "force-open?for=never",
        ] {
            let (status, body) = post(
                &format!("{url}/api/breakers/payments/{action}"),
                authorization,
            )
            .await;
            assert!(
                [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&status),
                "{action} with {authorization:?}: {status} {body}"
            );
            assert!(body["error"].is_string());
        }
    }
    let (_, history) = get(&format!("{guarded}/api/history")).await;
    assert_eq!(
        history,
        Value::Array(vec![]),
        "a refused action wrote history"
    );
    assert_eq!(
        one(&guarded, "payments").await,
        before,
        "a refused action changed the breaker"
    );

    // With the token.
    let act = |action: &'static str| post_action(&guarded, "payments", action, &bearer);
    assert_eq!(act("trip").await, StatusCode::OK);
    assert_eq!(one(&guarded, "payments").await["state"], "open");
    assert_eq!(act("reset").await, StatusCode::OK);
    assert_eq!(one(&guarded, "payments").await["state"], "closed");
    let start = now_ms();
    assert_eq!(act("force-open?for=10m").await, StatusCode::OK);
    let forced = one(&guarded, "payments").await;
    assert_eq!(forced["override"], "forced-open");
    let until = forced["override_until_ms"].as_u64().unwrap();
    assert!(
        until >= start + 590_000 && until <= now_ms() + 610_000,
        "{until}"
    );
    assert_eq!(act("force-closed").await, StatusCode::OK);
    let forced = one(&guarded, "payments").await;
    assert_eq!(forced["override"], "forced-closed");
    assert_eq!(forced["override_until_ms"], Value::Null);
    assert_eq!(act("auto").await, StatusCode::OK);
    assert_eq!(one(&guarded, "payments").await["override"], "auto");

    // Every action is in the history, with who asked.
    let (_, history) = get(&format!("{guarded}/api/history?name=payments")).await;
    let events: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap(),
                e["details"]["by"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("override", "dashboard"),
            ("override", "dashboard"),
            ("override", "dashboard"),
            ("closed", "dashboard"),
            ("tripped", "dashboard"),
        ]
    );

    // Asked wrongly, with the token.
    assert_eq!(act("explode").await, StatusCode::NOT_FOUND);
    assert_eq!(act("reset?for=10m").await, StatusCode::BAD_REQUEST);
    assert_eq!(act("force-open?for=soon").await, StatusCode::BAD_REQUEST);
    assert_eq!(
        post_action(&guarded, "nobody", "trip", &bearer).await,
        StatusCode::NOT_FOUND
    );
    let status = reqwest::Client::new()
        .get(format!("{guarded}/api/breakers/payments/trip"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn post_action(url: &str, name: &str, action: &str, authorization: &str) -> StatusCode {
    let (status, body) = post(
        &format!("{url}/api/breakers/{}/{action}", encode(name)),
        Some(authorization),
    )
    .await;
    if status == StatusCode::OK {
        assert_eq!(body["name"], name, "{body}");
    }
    status
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_utf8_name_round_trips_through_the_api() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let names = [
        "<img src=x onerror=alert(1)>",
        "café ☕ 𝄞",
        "a/b?c#d%20e&f=g",
        " spaced  out ",
        "\"quoted\" 'and' \\ back",
    ];
    let mut handles = Vec::new();
    for name in names {
        handles.push(app.breaker(name, policy(3)).await.unwrap());
    }
    let url = serve(&redis, Some(TOKEN)).await;
    let listed: Vec<String> = breakers(&url)
        .await
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    for name in names {
        assert!(
            listed.iter().any(|listed| listed == name),
            "{name:?} in {listed:?}"
        );
    }
    let bearer = format!("Bearer {TOKEN}");
    for name in names {
        assert_eq!(
            post_action(&url, name, "trip", &bearer).await,
            StatusCode::OK,
            "{name:?}"
        );
        assert_eq!(one(&url, name).await["state"], "open", "{name:?}");
        let (status, history) = get(&format!("{url}/api/history?name={}", encode(name))).await;
        assert_eq!(status, StatusCode::OK);
        let history = history.as_array().unwrap();
        assert_eq!(history.len(), 1, "{name:?}: {history:?}");
        assert_eq!(history[0]["name"], name);
    }
    // Only the names tripped: nothing else changed.
    assert!(
        breakers(&url)
            .await
            .iter()
            .all(|b| b["state"] == "open" && b["generation"] == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_one_self_contained_document() {
    let redis = RedisServer::start();
    let url = serve(&redis, None).await;
    let response = reqwest::get(format!("{url}/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    let page = response.text().await.unwrap();
    assert!(page.contains("<script>") && page.contains("<style>"));
    // Nothing from elsewhere, and nothing from the store ever parsed as markup.
    for banned in [
        "src=\"http",
        "href=\"http",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
    ] {
        assert!(!page.contains(banned), "the page contains {banned}");
    }
    // API answers are JSON, never sniffed as a page.
    let response = reqwest::get(format!("{url}/api/breakers")).await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_503_and_the_api_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let _payments = app.breaker("payments", policy(3)).await.unwrap();
    let url = serve(&redis, Some(TOKEN)).await;
    assert_eq!(breakers(&url).await.len(), 1);

    redis.kill();
    for path in ["/api/breakers", "/api/history"] {
        let target = format!("{url}{path}");
        eventually(
            Duration::from_secs(10),
            "503 while Redis is down",
            || async {
                let (status, body) = get(&target).await;
                status == StatusCode::SERVICE_UNAVAILABLE && body["error"].is_string()
            },
        )
        .await;
    }
    let (status, body) = post(
        &format!("{url}/api/breakers/payments/trip"),
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Back, empty (no persistence): the API answers again without a restart.
    redis.restart();
    let target = format!("{url}/api/breakers");
    eventually(
        Duration::from_secs(10),
        "200 once Redis is back",
        || async { get(&target).await.0 == StatusCode::OK },
    )
    .await;
    let again = app.breaker("payments", policy(3)).await.unwrap();
    record(&again, 0, 3).await;
    eventually(
        Duration::from_secs(10),
        "the breaker listed again",
        || async {
            breakers(&url)
                .await
                .iter()
                .any(|b| b["name"] == "payments" && b["state"] == "open")
        },
    )
    .await;
}

/// Registers `count` breakers named `svc-0`, `svc-1`, ... in `app`, many at a time.
async fn fleet(app: &AsyncRedisStore, count: usize) -> Vec<AsyncRedisBreaker> {
    let mut made = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        let handles = chunk
            .iter()
            .map(|i| app.breaker_owned(format!("svc-{i}"), policy(3)));
        for handle in futures_join(handles).await {
            made.push(handle);
        }
    }
    made
}

/// Runs `futures` at once and collects their outputs in order.
async fn futures_join<F: std::future::Future<Output = AsyncRedisBreaker> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<AsyncRedisBreaker> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

trait OwnedBreaker {
    fn breaker_owned(
        &self,
        name: String,
        policy: Policy,
    ) -> impl std::future::Future<Output = AsyncRedisBreaker> + Send + 'static;
}

impl OwnedBreaker for AsyncRedisStore {
    fn breaker_owned(
        &self,
        name: String,
        policy: Policy,
    ) -> impl std::future::Future<Output = AsyncRedisBreaker> + Send + 'static {
        let store = self.clone();
        async move { store.breaker(&name, policy).await.unwrap() }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_reads_many_breakers_per_round_trip_and_registers_none() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let made = fleet(&app, 600).await;
    record(&made[7], 1, 3).await;
    let policies_key = "api-test:{=svc-7}:policies";
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut policies = || -> std::collections::HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(policies_key)
            .query(&mut raw)
            .unwrap()
    };
    let before = policies();
    let ttl_before: u64 = redis
        .command(&["PTTL", "api-test:registry"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Pace: let the wall clock pass a few milliseconds, so that a registration during the
    // listing would write a later last-seen time than the one kept above.
    let deadline = Instant::now() + Duration::from_millis(5);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let url = serve(&redis, None).await;
    let listed = breakers(&url).await;
    assert_eq!(listed.len(), 600);
    assert_eq!(one(&url, "svc-7").await["state"], "open");
    assert_eq!(
        policies(),
        before,
        "listing registered a breaker again (its last-seen time moved)"
    );
    let ttl_after: u64 = redis
        .command(&["PTTL", "api-test:registry"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(ttl_after <= ttl_before, "listing extended the registry");

    // The registry, the server's time, then 600 breakers' policies and states in one
    // pipeline and their windows in another; no script.
    let reader = store(&redis, "reader").await;
    let scripts = redis.script_calls();
    let listing = reader
        .list_many(&ListRequest::all().windows(true))
        .await
        .unwrap();
    assert_eq!(redis.script_calls(), scripts, "a listing runs no script");
    assert_eq!(listing.breakers.len(), 600);
    assert_eq!(
        listing.round_trips,
        1 + 1 + 1 + 1,
        "{}",
        listing.round_trips
    );
    let seven = listing.breakers.iter().find(|b| b.name == "svc-7").unwrap();
    let info = seven.info.as_ref().unwrap();
    assert_eq!(info.snapshot.counts.calls, 4);
    let window = seven.window.as_ref().unwrap();
    assert_eq!(window.iter().map(|b| b.failures).sum::<u64>(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unreadable_breaker_is_shown_as_such_and_the_rest_are_listed() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let _made = fleet(&app, 4).await;
    // Garbage: a string where the state hash should be, and a policy that does not parse.
    redis.command(&["DEL", "api-test:{=svc-1}"]).unwrap();
    redis
        .command(&["SET", "api-test:{=svc-1}", "garbage"])
        .unwrap();
    redis
        .command(&["DEL", "api-test:{=svc-2}:policies"])
        .unwrap();
    redis
        .command(&["HSET", "api-test:{=svc-2}:policies", "{not json", "1"])
        .unwrap();
    let url = serve(&redis, None).await;
    let listed = breakers(&url).await;
    let states: Vec<(&str, &str)> = listed
        .iter()
        .map(|b| (b["name"].as_str().unwrap(), b["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("svc-0", "closed"),
            ("svc-1", "unreadable"),
            ("svc-2", "unreadable"),
            ("svc-3", "closed"),
        ]
    );
    assert!(
        listed[1]["error"].as_str().unwrap().contains("WRONGTYPE"),
        "{}",
        listed[1]
    );
    assert!(listed[2]["error"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_merges_the_newest_entries_reading_a_page_per_stream() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let made = fleet(&app, 40).await;
    // Each breaker: tripped and reset a few times, so every stream holds several entries.
    for breaker in &made {
        for _ in 0..3 {
            breaker.operate(Action::Trip).await.unwrap();
            breaker.operate(Action::Reset).await.unwrap();
        }
    }
    let reader = store(&redis, "reader").await;
    for count in [1, 10, 100, 1000] {
        let (merged, round_trips) = reader.history_merged(count).await.unwrap();
        // Every stream read whole, then merged: what the merge must equal.
        let mut whole = Vec::new();
        for i in 0..40 {
            whole.extend(
                reader
                    .history(Some(&format!("svc-{i}")), 1000)
                    .await
                    .unwrap(),
            );
        }
        whole.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.name.cmp(&b.name)));
        whole.truncate(count);
        let key = |e: &breaker_core::HistoryEntry| (e.name.clone(), e.at, e.event.clone());
        assert_eq!(
            merged.iter().map(key).collect::<Vec<_>>(),
            whole.iter().map(key).collect::<Vec<_>>(),
            "count {count}"
        );
        assert!(
            round_trips <= 1 + 8,
            "count {count}: {round_trips} round trips"
        );
    }
    // One page of every stream, then more only of the few streams whose pages were all
    // among the newest ten.
    let streams_read = || redis.command_calls().get("xrevrange").copied().unwrap_or(0);
    let before = streams_read();
    let (merged, round_trips) = reader.history_merged(10).await.unwrap();
    assert_eq!(merged.len(), 10);
    let pages = streams_read() - before;
    assert!(
        (40..=45).contains(&pages),
        "{pages} pages read in {round_trips} round trips"
    );
}

/// Serves `dashboard` with each client's address (through [`Server`]); its base URL.
async fn serve_with_addresses(dashboard: Dashboard<RedisBreakers>) -> String {
    start(Server::new(dashboard.router())).await
}

/// Runs `server` on a free loopback port; its base URL.
async fn start(server: Server) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener, std::future::pending()));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_or_origin_is_refused() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let _made = fleet(&app, 1).await;
    let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = logged.clone();
    let dashboard = Dashboard::new(RedisBreakers::new(store(&redis, "dashboard").await))
        .token(TOKEN)
        .allow_host("dash.example.org")
        .log(move |line| log.lock().unwrap().push(line.to_owned()));
    let url = serve_with_addresses(dashboard).await;
    let client = reqwest::Client::new();
    let get_as = |host: &'static str, path: &'static str| {
        client
            .get(format!("{url}{path}"))
            .header("host", host)
            .send()
    };
    // DNS rebinding: a page at evil.example whose name now points at 127.0.0.1.
    for path in ["/", "/api/breakers", "/api/history", "/metrics"] {
        let answer = get_as("evil.example:7878", path).await.unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{path}");
    }
    for host in ["localhost:1234", "dash.example.org", "127.0.0.1"] {
        let answer = get_as(host, "/api/breakers").await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{host}");
    }
    assert!(logged.lock().unwrap()[0].contains("evil.example"));

    // A POST from another origin is refused even with the token, and changes nothing.
    let trip = format!("{url}/api/breakers/svc-0/trip");
    let answer = client
        .post(&trip)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert_eq!(one(&url, "svc-0").await["state"], "closed");
    let own_origin = format!("http://{}", url.trim_start_matches("http://"));
    let answer = client
        .post(&trip)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("origin", own_origin)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(one(&url, "svc-0").await["state"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_are_limited_per_client_address() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let _made = fleet(&app, 1).await;
    let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = logged.clone();
    let dashboard = Dashboard::new(RedisBreakers::new(store(&redis, "dashboard").await))
        .token(TOKEN)
        .log(move |line| log.lock().unwrap().push(line.to_owned()));
    let url = serve_with_addresses(dashboard).await;
    let trip = format!("{url}/api/breakers/svc-0/trip");
    let mut statuses = Vec::new();
    for guess in 0..7 {
        let (status, _) = post(&trip, Some(&format!("Bearer guess-{guess}"))).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    // Blocked, the right token waits too: the guesser cannot tell when it found it.
    let response = reqwest::Client::new()
        .post(&trip)
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(one(&url, "svc-0").await["state"], "closed");
    let logged = logged.lock().unwrap();
    assert!(
        logged
            .iter()
            .any(|line| line.contains("too many wrong tokens")),
        "{logged:?}"
    );
    // Counted against the client's own address, which the server gave the router.
    assert!(
        logged.iter().all(|line| line.contains("from 127.0.0.1")),
        "{logged:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_url_asked_with_get_is_405_and_no_failed_attempt() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let _made = fleet(&app, 1).await;
    let dashboard =
        Dashboard::new(RedisBreakers::new(store(&redis, "dashboard").await)).token(TOKEN);
    let url = serve_with_addresses(dashboard).await;
    let trip = format!("{url}/api/breakers/svc-0/trip");
    let client = reqwest::Client::new();
    // More than the wrong tokens an address may try: a link followed, a page reloaded.
    for attempt in 0..10 {
        let request = match attempt % 3 {
            0 => client.get(&trip),
            1 => client.put(&trip).header("authorization", "Bearer wrong"),
            _ => client.delete(&trip),
        };
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "attempt {attempt}"
        );
        assert_eq!(response.headers()["allow"], "POST");
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert!(body["error"].as_str().unwrap().contains("POST"), "{body}");
    }
    let (status, body) = post(&trip, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(one(&url, "svc-0").await["state"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_shorter_than_a_millisecond_is_refused_naming_for() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let _made = fleet(&app, 1).await;
    let url = serve(&redis, Some(TOKEN)).await;
    let bearer = format!("Bearer {TOKEN}");
    for action in ["force-open", "force-closed"] {
        for duration in ["0s", "1ns", "500us", "999us"] {
            let (status, body) = post(
                &format!("{url}/api/breakers/svc-0/{action}?for={duration}"),
                Some(&bearer),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{action} for {duration}");
            let message = body["error"].as_str().unwrap();
            assert!(
                message.contains(&format!("for=\"{duration}\"")) && message.contains("1ms"),
                "{message}"
            );
        }
    }
    let (_, history) = get(&format!("{url}/api/history")).await;
    assert_eq!(
        history,
        Value::Array(vec![]),
        "a refused override wrote history"
    );
    assert_eq!(one(&url, "svc-0").await["override"], "auto");
    // A millisecond is an override.
    let (status, body) = post(
        &format!("{url}/api/breakers/svc-0/force-open?for=1ms"),
        Some(&bearer),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_surrounding_whitespace_leaves_the_dashboard_read_only() {
    let redis = RedisServer::start();
    let logged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = logged.clone();
    let dashboard = Dashboard::new(RedisBreakers::new(store(&redis, "dashboard").await))
        .log(move |line| log.lock().unwrap().push(line.to_owned()))
        .token(format!("{TOKEN}\r"));
    let url = start(Server::new(dashboard.router())).await;
    let (_, config) = get(&format!("{url}/api/config")).await;
    assert_eq!(config["actions"], false);
    let logged = logged.lock().unwrap();
    assert!(
        logged.len() == 1 && logged[0].contains("whitespace") && !logged[0].contains(TOKEN),
        "{logged:?}"
    );
}

/// A router for the server's own tests: `/` answers at once, `/who` with the client's
/// address, and `/slow` once `gate` lets it (counting the requests that reached it).
fn slow_router(gate: Arc<tokio::sync::Semaphore>, reached: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route("/", routing::get(|| async { "hello" }))
        .route(
            "/who",
            routing::get(|ConnectInfo(client): ConnectInfo<SocketAddr>| async move {
                client.ip().to_string()
            }),
        )
        .route(
            "/slow",
            routing::get(move || async move {
                reached.fetch_add(1, Ordering::SeqCst);
                let _permit = gate.acquire().await;
                "slow"
            }),
        )
}

fn quick_router() -> Router {
    slow_router(
        Arc::new(tokio::sync::Semaphore::new(0)),
        Arc::new(AtomicUsize::new(0)),
    )
}

async fn connect(url: &str) -> TcpStream {
    TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Sends a GET of `path`, kept alive.
async fn send_get(stream: &mut TcpStream, path: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
}

/// Reads one response: its status and body (the server sends `content-length`).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut read = Vec::new();
    let mut byte = [0_u8; 1];
    while !read.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("no response within 5s")
            .unwrap();
        assert_eq!(n, 1, "closed mid-head: {}", String::from_utf8_lossy(&read));
        read.push(byte[0]);
    }
    let head = String::from_utf8(read).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// How long after `since` the server closed `stream` (whatever it still sent is read and
/// dropped), or `None` if it is still open after `limit`.
async fn closed_after(stream: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut scratch = [0_u8; 1024];
    let deadline = tokio::time::Instant::from_std(since + limit);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut scratch)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_half_sent_connection_is_closed_after_the_header_read_timeout() {
    let timeout = Duration::from_millis(400);
    let url = start(Server::new(quick_router()).header_read_timeout(timeout)).await;
    let began = Instant::now();
    let mut silent = connect(&url).await;
    let mut half = connect(&url).await;
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    for (what, stream) in [("silent", &mut silent), ("half a head", &mut half)] {
        let closed = closed_after(stream, began, Duration::from_secs(5)).await;
        let closed = closed.unwrap_or_else(|| panic!("{what}: still open after 5s"));
        assert!(
            closed >= timeout - Duration::from_millis(50)
                && closed < timeout + Duration::from_secs(2),
            "{what}: closed after {closed:?}"
        );
    }
    // A client that sends its request is answered, with its own address.
    let mut prompt = connect(&url).await;
    send_get(&mut prompt, "/who").await;
    assert_eq!(
        read_response(&mut prompt).await,
        (200, "127.0.0.1".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let head = Duration::from_millis(300);
    let idle = Duration::from_millis(1_500);
    let url = start(
        Server::new(quick_router())
            .header_read_timeout(head)
            .idle_timeout(idle),
    )
    .await;
    let mut kept = connect(&url).await;
    send_get(&mut kept, "/").await;
    assert_eq!(read_response(&mut kept).await.0, 200);
    // Stands for a client idle longer than a head may take, and less than the idle timeout:
    // the connection is still there for its next request.
    tokio::time::sleep(head * 2).await;
    send_get(&mut kept, "/").await;
    assert_eq!(read_response(&mut kept).await.0, 200);
    let answered = Instant::now();
    let closed = closed_after(&mut kept, answered, Duration::from_secs(6))
        .await
        .expect("a kept-alive connection still open 6s after its last answer");
    assert!(
        closed >= idle - Duration::from_millis(50) && closed < idle + Duration::from_secs(2),
        "closed after {closed:?}"
    );

    // A head begun after a response has the header-read timeout, not the idle one.
    let mut slow = connect(&url).await;
    send_get(&mut slow, "/").await;
    assert_eq!(read_response(&mut slow).await.0, 200);
    let begun = Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: ").await.unwrap();
    let closed = closed_after(&mut slow, begun, Duration::from_secs(6))
        .await
        .expect("half a head still open 6s after it began");
    assert!(
        closed < idle - Duration::from_millis(300),
        "closed after {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_waiting_connection_makes_room_and_a_busy_one_does_not() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let reached = Arc::new(AtomicUsize::new(0));
    // Timeouts far away: only the cap closes connections here.
    let url = start(
        Server::new(slow_router(gate.clone(), reached.clone()))
            .header_read_timeout(Duration::from_secs(30))
            .max_connections(2),
    )
    .await;
    let began = Instant::now();
    let mut first = connect(&url).await;
    let mut second = connect(&url).await;
    // Both held: the cap is not passed yet.
    assert_eq!(
        closed_after(&mut first, began, Duration::from_millis(300)).await,
        None
    );
    // A third client is answered; the connection waiting longest made room for it.
    let mut third = connect(&url).await;
    send_get(&mut third, "/").await;
    assert_eq!(read_response(&mut third).await, (200, "hello".to_owned()));
    assert!(
        closed_after(&mut first, began, Duration::from_secs(5))
            .await
            .is_some(),
        "the oldest waiting connection was not closed"
    );

    // Two requests being answered fill the cap (each makes room by closing a waiting one).
    let mut busy = Vec::new();
    for expected in 1..=2 {
        let mut stream = connect(&url).await;
        send_get(&mut stream, "/slow").await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while reached.load(Ordering::SeqCst) < expected {
            assert!(Instant::now() < deadline, "request {expected} not answered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        busy.push(stream);
    }
    for (what, stream) in [("second", &mut second), ("third", &mut third)] {
        assert!(
            closed_after(stream, began, Duration::from_secs(5))
                .await
                .is_some(),
            "{what} not closed"
        );
    }
    // Nothing is waiting: a new connection is closed at once, unanswered.
    let refused_at = Instant::now();
    let mut refused = connect(&url).await;
    send_get(&mut refused, "/").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), refused.read_to_end(&mut answer))
        .await
        .expect("a connection past the cap was held");
    assert!(
        read.is_err() || answer.is_empty(),
        "answered past the cap: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(refused_at.elapsed() < Duration::from_secs(1));
    // The requests being answered finish.
    gate.add_permits(2);
    for stream in &mut busy {
        assert_eq!(read_response(stream).await, (200, "slow".to_owned()));
    }
}

/// Redis's count of commands processed so far (the `INFO` that asks counts once it is
/// done: a difference of two counts holds the first `INFO`).
fn commands(redis: &RedisServer) -> u64 {
    let info = redis.command(&["INFO", "stats"]).unwrap();
    info.lines()
        .find_map(|line| line.trim().strip_prefix("total_commands_processed:"))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_viewers_and_a_scrape_within_a_refresh_cost_the_store_one_read() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    for i in 0..20 {
        let breaker = app.breaker(&format!("svc-{i}"), policy(3)).await.unwrap();
        record(&breaker, 2, 1).await;
    }
    // The default refresh (1 s), long enough here for every request to fall within it.
    let dashboard = Dashboard::new(RedisBreakers::new(store(&redis, "dashboard").await))
        .refresh(Duration::from_secs(30));
    let url = serve_dashboard(dashboard, None).await;
    let before = commands(&redis);
    let (status, _) = get(&format!("{url}/api/breakers")).await;
    assert_eq!(status, StatusCode::OK);
    let one = commands(&redis) - before - 1;
    assert!(one > 0);
    // Ten pages and a scrape at once, then again: no more reads of the store.
    let before = commands(&redis);
    let mut asked = Vec::new();
    for i in 0..11 {
        let path = if i == 10 { "metrics" } else { "api/breakers" };
        let url = format!("{url}/{path}");
        asked.push(tokio::spawn(async move {
            reqwest::get(&url).await.unwrap().status()
        }));
    }
    for status in asked {
        assert_eq!(status.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        commands(&redis) - before - 1,
        0,
        "shared: one listing answered all"
    );
    // Ten viewers from a cold start cost what one did.
    let cold = Dashboard::new(RedisBreakers::new(store(&redis, "dashboard").await))
        .refresh(Duration::from_secs(30));
    let url = serve_dashboard(cold, None).await;
    let before = commands(&redis);
    let mut asked = Vec::new();
    for _ in 0..10 {
        let url = format!("{url}/api/breakers");
        asked.push(tokio::spawn(async move {
            reqwest::get(&url).await.unwrap().status()
        }));
    }
    for status in asked {
        assert_eq!(status.await.unwrap(), StatusCode::OK);
    }
    // (The first listing above also paid for its store's new connection.)
    let ten = commands(&redis) - before - 1;
    assert!(
        ten <= one,
        "ten viewers read the store once: {ten} commands, one viewer {one}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_fleet_is_listed_without_windows_and_a_breaker_alone_with_its_own() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let count = breaker_dashboard::WINDOWS_UP_TO + 1;
    for i in 0..count {
        let breaker = app.breaker(&format!("svc-{i}"), policy(3)).await.unwrap();
        record(&breaker, 1, 1).await;
    }
    let url = serve(&redis, None).await;
    let listed = breakers(&url).await;
    assert_eq!(listed.len(), count);
    assert!(
        listed.iter().all(|b| b.get("buckets").is_none()),
        "a fleet past WINDOWS_UP_TO is listed without windows"
    );
    let (status, one) = get(&format!("{url}/api/breakers?name=svc-7")).await;
    assert_eq!(status, StatusCode::OK);
    let one = one.as_array().unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["name"], "svc-7");
    let buckets = one[0]["buckets"].as_array().expect("its window");
    assert_eq!(
        buckets
            .iter()
            .map(|b| b["failures"].as_u64().unwrap())
            .sum::<u64>(),
        1
    );
    let (status, none) = get(&format!("{url}/api/breakers?name=nobody")).await;
    assert_eq!((status, none), (StatusCode::OK, Value::Array(vec![])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_reuses_the_policies_an_earlier_one_read_for_a_while() {
    let redis = RedisServer::start();
    let app = store(&redis, "app").await;
    let _search = app.breaker("search", policy(3)).await.unwrap();
    let reused = Duration::from_millis(500);
    let dashboard =
        Dashboard::new(RedisBreakers::new(store(&redis, "dashboard").await).reuse_policies(reused))
            .refresh(Duration::ZERO);
    let url = serve_dashboard(dashboard, None).await;
    let listed = Instant::now();
    assert_eq!(one(&url, "search").await["policy_conflict"], false);
    // Another process registers another policy: the next listing within the reuse still
    // shows the policies read before, and reads no policies hash.
    let other = store(&redis, "other app").await;
    let _conflicting = other.breaker("search", policy(9)).await.unwrap();
    let before = redis.command_calls().get("hgetall").copied().unwrap_or(0);
    let view = one(&url, "search").await;
    if listed.elapsed() < reused {
        assert_eq!(view["policy_conflict"], false, "reused");
        let after = redis.command_calls().get("hgetall").copied().unwrap_or(0);
        // The registry is an HGETALL too; the breaker's policies are not read.
        assert_eq!(after, before + 1, "no policies read");
    }
    // Past the reuse, read again: the conflict shows.
    eventually(Duration::from_secs(5), "the conflict shows", || async {
        one(&url, "search").await["policy_conflict"] == true
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_fleet_costs_redis_is_shown_and_an_acl_without_info_is_named() {
    let redis = RedisServer::start();
    let url = serve(&redis, None).await;
    let (status, first) = get(&format!("{url}/api/cost")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        first["measuring"], true,
        "one sample says no rate yet: {first}"
    );
    let app = store(&redis, "app").await;
    let breaker = app.breaker("costly", policy(1_000)).await.unwrap();
    record(&breaker, 50, 0).await;
    let (status, cost) = get(&format!("{url}/api/cost")).await;
    assert_eq!(status, StatusCode::OK, "{cost}");
    let rate = |field: &str| {
        cost[field]
            .as_f64()
            .unwrap_or_else(|| panic!("no {field}: {cost}"))
    };
    // At least the 50 script calls that recorded the 50 calls (their checks answered from
    // the cached state), over the time since the first sample.
    let over = rate("over_ms") / 1e3;
    assert!(rate("script_calls_per_second") * over >= 49.5, "{cost}");
    assert!(
        rate("commands_per_second") >= rate("script_calls_per_second"),
        "{cost}"
    );
    assert!((0.0..=2.0).contains(&rate("cpu_share")), "{cost}");

    // A dashboard whose user may not read INFO says so, and lists breakers all the same.
    redis
        .command(&[
            "ACL", "SETUSER", "viewer", "on", ">pw", "~*", "&*", "+@all", "-info",
        ])
        .unwrap();
    let config = RedisConfig::standalone(format!("redis://viewer:pw@127.0.0.1:{}", redis.port()))
        .prefix("api-test")
        .timeout(Duration::from_secs(1));
    let viewer = AsyncRedisStore::connect(config).await.unwrap();
    let limited = serve_dashboard(
        Dashboard::new(RedisBreakers::new(viewer)).refresh(Duration::ZERO),
        None,
    )
    .await;
    let (status, cost) = get(&format!("{limited}/api/cost")).await;
    assert_eq!(status, StatusCode::OK, "{cost}");
    let unavailable = cost["unavailable"].as_str().unwrap_or_default();
    assert!(unavailable.contains("INFO"), "{cost}");
    assert_eq!(breakers(&limited).await.len(), 1);
}
