//! Latency added per call by the tower layer, against the bare hyper-util client, on one
//! local server, in one run, with the memory store.
//!
//! Writes `target/breaker-bench/tower.txt` for `cargo xtask bench adapters`.
#![allow(missing_docs, clippy::unwrap_used)]

use breaker_core::Policy;
use breaker_store_memory::MemoryStore;
use breaker_testkit::http_server::TestServer;
use breaker_testkit::latency::{Variant, as_lines, compare};
use breaker_tower::BreakerLayer;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let (warmup, rounds) = if measuring { (2_000, 20_000) } else { (10, 20) };
    // A worker thread runs the connections' tasks, so a connection is back in the pool as soon
    // as its response is read, whichever variant calls next.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = TestServer::start();
    let policy = Policy::builder().minimum_failures(1 << 40).build().unwrap();

    // One hyper client, so one pool of keep-alive connections for both variants: the memory
    // breaker is mounted on /memory, and /bare goes through the bare client.
    let bare = {
        let _entered = runtime.enter();
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Empty<Bytes>>()
    };
    let layered = BreakerLayer::new()
        .mount(
            &server.url("/memory"),
            MemoryStore::new().breaker("bench", policy).unwrap(),
        )
        .unwrap()
        .layer(bare.clone());
    let bare_url: http::Uri = server.url("/bare").parse().unwrap();
    let memory_url: http::Uri = server.url("/memory").parse().unwrap();
    let request = |uri: &http::Uri| http::Request::get(uri.clone()).body(Empty::new()).unwrap();

    let mut variants = [
        Variant {
            name: "bare",
            call: Box::new(|| {
                runtime.block_on(async {
                    let response = bare.request(request(&bare_url)).await.unwrap();
                    response.into_body().collect().await.unwrap();
                });
            }),
        },
        Variant {
            name: "memory",
            call: Box::new(|| {
                runtime.block_on(async {
                    let response = layered.clone().oneshot(request(&memory_url)).await.unwrap();
                    response.into_body().collect().await.unwrap();
                });
            }),
        },
    ];
    let out = as_lines(&compare(&mut variants, warmup, rounds));
    print!("{out}");
    if measuring {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/breaker-bench");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tower.txt"), out).unwrap();
    }
}
