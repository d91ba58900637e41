//! The `breaker` command over a breaker whose stored state holds garbage: `status` lists it
//! as unreadable beside the others and writes nothing; a run repairs it and says so; the
//! history keeps the repair.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use breaker_testkit::http_server::TestServer;
use breaker_testkit::redis_server::RedisServer;
use serde_json::Value;

fn breaker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .unwrap()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn garbage_is_listed_as_unreadable_then_repaired_and_reported() {
    let backend = TestServer::start();
    let server = RedisServer::start();
    let store = server.url();
    let url = backend.url("/");
    for name in ["good", "bad"] {
        ok(breaker(&[
            "run",
            "--url",
            &url,
            "--store",
            &store,
            "--name",
            name,
            "--requests",
            "3",
        ]));
    }
    let mut conn = redis::Client::open(store.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let key = "breaker:{=bad}";
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg("rp")
        .arg("A".repeat(40_000))
        .arg("s")
        .arg("garbage")
        .query(&mut conn)
        .unwrap();
    let mut dump = || -> Vec<u8> { redis::cmd("DUMP").arg(key).query(&mut conn).unwrap() };
    let before = dump();

    let status = ok(breaker(&["status", "--store", &store]));
    let bad = status
        .lines()
        .find(|line| line.starts_with("bad "))
        .unwrap();
    assert!(
        bad.contains("unreadable") && bad.contains("garbage"),
        "{status}"
    );
    let good = status
        .lines()
        .find(|line| line.starts_with("good "))
        .unwrap();
    assert!(good.contains("closed"), "{status}");
    let json: Value =
        serde_json::from_str(&ok(breaker(&["status", "--store", &store, "--json"]))).unwrap();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "bad" && b["state"] == "unreadable"),
        "{json}"
    );
    assert_eq!(dump(), before, "reads never write");

    let run: Value = serde_json::from_str(&ok(breaker(&[
        "run",
        "--url",
        &url,
        "--store",
        &store,
        "--name",
        "bad",
        "--requests",
        "3",
        "--json",
    ])))
    .unwrap();
    assert!(run["corrupt"].as_u64().unwrap() > 0, "{run}");
    let history = ok(breaker(&["history", "bad", "--store", &store]));
    assert!(history.contains("repaired"), "{history}");
    let status = ok(breaker(&["status", "--store", &store]));
    assert!(!status.contains("unreadable"), "repaired: {status}");
}
