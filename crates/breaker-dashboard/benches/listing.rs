//! `GET /api/breakers` at fleet scale: 500 and 5,000 breakers in a throwaway `redis-server`
//! on loopback, each with a few calls in its window, listed through the dashboard's router
//! served on a loopback port and asked over HTTP, one request at a time. Reports the median
//! and slowest of the timed requests, the answer's size, the Redis round trips of one
//! listing (`Listing::round_trips`), the median of the same listing read straight from
//! the store (`AsyncRedisStore::list_many`), which says how much of the time is Redis's,
//! Redis's CPU per such listing (`INFO cpu` before and after), and Redis's CPU share while
//! one page, then ten, poll the dashboard once a second as the page does.
//!
//! Run by `cargo xtask bench dashboard`, which reads `target/breaker-bench/dashboard.txt`.
//! `cargo bench -p breaker-dashboard --bench listing` runs it alone; under `cargo test`
//! (no `--bench`) it lists 50 breakers once, to check that it still works.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use breaker_core::{Policy, call_async};
use breaker_dashboard::{DEFAULT_REUSE_POLICIES, Dashboard, RedisBreakers, WINDOWS_UP_TO};
use breaker_store_redis::{AsyncRedisStore, ListRequest, RedisConfig};
use breaker_testkit::latency::write_figures;
use breaker_testkit::redis_server::RedisServer;

/// Requests before the timed ones (connections made, scripts loaded).
const WARMUP: usize = 3;
/// Timed requests per fleet size.
const ROUNDS: usize = 15;
/// Breakers registered at once while filling Redis.
const AT_ONCE: usize = 250;

async fn store(redis: &RedisServer, actor: &str) -> AsyncRedisStore {
    // As `breaker dashboard` connects: a listing of thousands takes several pipelines.
    let config = RedisConfig::standalone(redis.url())
        .prefix("bench")
        .timeout(Duration::from_secs(10))
        .actor(actor);
    AsyncRedisStore::connect(config).await.unwrap()
}

/// Registers breakers `from..to`, each with a few successful calls in its window.
async fn fill(app: &AsyncRedisStore, from: usize, to: usize) {
    let policy = Policy::default();
    let mut tasks = Vec::new();
    for i in from..to {
        let app = app.clone();
        let policy = policy.clone();
        tasks.push(tokio::spawn(async move {
            let breaker = app
                .breaker(&format!("svc-{i}.internal"), policy)
                .await
                .unwrap();
            for _ in 0..(i % 3 + 1) {
                let done: Result<(), _> = call_async(&breaker, async { Ok::<(), ()>(()) }).await;
                done.unwrap();
            }
        }));
        if tasks.len() == AT_ONCE {
            for task in tasks.drain(..) {
                task.await.unwrap();
            }
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Registrations are written in the background: poll until all are, within a deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    while app
        .list_many(&ListRequest::all())
        .await
        .unwrap()
        .breakers
        .len()
        < to
    {
        assert!(Instant::now() < deadline, "breakers not registered in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redis's CPU share (of one core) while `viewers` pages poll `url` once a second, as the
/// page does, for `seconds`.
async fn viewers_cost(redis: &RedisServer, url: &str, viewers: usize, seconds: u64) -> f64 {
    let cpu = redis.cpu_time();
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for viewer in 0..viewers {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            // Pages opened at different moments within the first second.
            let offset = Duration::from_millis(1_000 * viewer as u64 / viewers as u64);
            let mut next = tokio::time::Instant::now() + offset;
            loop {
                tokio::time::sleep_until(next).await;
                if Instant::now() >= end {
                    break;
                }
                let response = client.get(&url).send().await.unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                let _ = response.bytes().await.unwrap();
                next += Duration::from_secs(1);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (redis.cpu_time() - cpu).as_secs_f64() / started.elapsed().as_secs_f64()
}

struct Figures {
    breakers: usize,
    median: Duration,
    slowest: Duration,
    bytes: usize,
    round_trips: usize,
    /// The median of the same listing read straight from the store, without HTTP or JSON.
    listing: Duration,
    /// Redis's CPU per listing read straight from the store.
    redis_cpu_per_listing: Duration,
    /// Redis's CPU share while one page, then ten, poll the dashboard once a second.
    one_viewer: f64,
    ten_viewers: f64,
}

async fn measure(
    redis: &RedisServer,
    url: &str,
    shared_url: &str,
    reader: &AsyncRedisStore,
    breakers: usize,
    rounds: usize,
) -> Figures {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for round in 0..WARMUP.min(rounds) + rounds {
        let started = Instant::now();
        let response = client.get(url).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let body = response.bytes().await.unwrap();
        let took = started.elapsed();
        bytes = body.len();
        if round >= WARMUP.min(rounds) {
            times.push(took);
        }
    }
    let listed: serde_json::Value =
        serde_json::from_slice(&client.get(url).send().await.unwrap().bytes().await.unwrap())
            .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), breakers);
    times.sort();
    let mut direct = Vec::with_capacity(rounds);
    let mut listing = None;
    let cpu = redis.cpu_time();
    for _ in 0..rounds {
        let started = Instant::now();
        let listed = reader
            .list_many(
                &ListRequest::all()
                    .windows_up_to(WINDOWS_UP_TO)
                    .reuse_policies(DEFAULT_REUSE_POLICIES),
            )
            .await
            .unwrap();
        direct.push(started.elapsed());
        listing = Some(listed);
    }
    let redis_cpu_per_listing = (redis.cpu_time() - cpu) / rounds as u32;
    direct.sort();
    let listing = listing.unwrap();
    assert_eq!(listing.breakers.len(), breakers);
    // Viewers: long enough for a few refreshes each (a check under `cargo test`: one).
    let seconds = if rounds > 1 { 6 } else { 1 };
    let one_viewer = viewers_cost(redis, shared_url, 1, seconds).await;
    let ten_viewers = viewers_cost(redis, shared_url, 10, seconds).await;
    Figures {
        breakers,
        median: times[times.len() / 2],
        slowest: times[times.len() - 1],
        bytes,
        round_trips: listing.round_trips,
        listing: direct[direct.len() / 2],
        redis_cpu_per_listing,
        one_viewer,
        ten_viewers,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs benches without it, as a check.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let sizes: &[usize] = if measuring { &[500, 5_000] } else { &[50] };
    let rounds = if measuring { ROUNDS } else { 1 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let figures = runtime.block_on(async {
        let redis = RedisServer::start();
        let app = store(&redis, "app").await;
        let reader = store(&redis, "reader").await;
        // Timed requests each read the store (no shared read); the viewers poll a dashboard
        // as `breaker dashboard` serves it (one read per refresh, shared).
        let each = Dashboard::new(RedisBreakers::new(store(&redis, "dashboard").await))
            .refresh(Duration::ZERO);
        let url = serve(each).await;
        let shared = Dashboard::new(RedisBreakers::new(store(&redis, "viewers").await));
        let shared_url = serve(shared).await;
        let mut figures = Vec::new();
        let mut registered = 0;
        for &size in sizes {
            fill(&app, registered, size).await;
            registered = size;
            figures.push(measure(&redis, &url, &shared_url, &reader, size, rounds).await);
        }
        figures
    });
    let mut text = String::new();
    for f in &figures {
        let n = f.breakers;
        let _ = writeln!(text, "breakers_{n}_median_ms={:.1}", ms(f.median));
        let _ = writeln!(text, "breakers_{n}_slowest_ms={:.1}", ms(f.slowest));
        let _ = writeln!(text, "breakers_{n}_bytes={}", f.bytes);
        let _ = writeln!(text, "breakers_{n}_round_trips={}", f.round_trips);
        let _ = writeln!(text, "breakers_{n}_list_many_ms={:.1}", ms(f.listing));
        let _ = writeln!(
            text,
            "breakers_{n}_redis_cpu_per_listing_ms={:.2}",
            ms(f.redis_cpu_per_listing)
        );
        let _ = writeln!(
            text,
            "breakers_{n}_one_viewer_cpu_pct={:.1}",
            f.one_viewer * 100.0
        );
        let _ = writeln!(
            text,
            "breakers_{n}_ten_viewers_cpu_pct={:.1}",
            f.ten_viewers * 100.0
        );
    }
    let _ = writeln!(text, "rounds={rounds}");
    print!("{text}");
    if measuring {
        write_figures("dashboard", &text);
    }
}

/// Serves `dashboard` on a loopback port: the URL of its listing.
async fn serve(dashboard: Dashboard<RedisBreakers>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/breakers", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, dashboard.router()).await });
    url
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
