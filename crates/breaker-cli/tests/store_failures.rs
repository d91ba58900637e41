//! The `breaker` command when the store fails: a run while the store's password is rotated
//! and rotated back, and while the store is gone at the end (it resumes sharing by itself,
//! and always prints its summary with the store errors counted; the exit code says what
//! happened), and a TLS address at a plaintext server (the error says so).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use breaker_testkit::http_server::TestServer;
use breaker_testkit::redis_server::RedisServer;
use serde_json::Value;

fn set_password(conn: &mut redis::Connection, password: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query(conn)
        .unwrap();
}

fn script_calls(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    info.lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .filter_map(|line| {
            let calls = line.split("calls=").nth(1)?.split(',').next()?;
            calls.parse::<u64>().ok()
        })
        .sum()
}

#[test]
fn a_run_through_a_password_rotation_resumes_and_reports_its_store_errors() {
    let backend = TestServer::start();
    let redis_server = RedisServer::start();
    let mut admin = redis::Client::open(redis_server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    set_password(&mut admin, "first");
    let store = format!("redis://:first@127.0.0.1:{}", redis_server.port());
    let child = Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args([
            "run",
            "--url",
            &backend.url("/"),
            "--store",
            &store,
            "--max-staleness",
            "0s",
            "--duration",
            "9s",
            "--rate",
            "50",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Paces the scenario: the run shares state for a while before the rotation.
    std::thread::sleep(Duration::from_millis(1_500));
    // The password changes and every client is cut off; 3 s later it is back.
    set_password(&mut admin, "second");
    let _: redis::Value = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query(&mut admin)
        .unwrap();
    // Stands for the operator's 3 s between changing the password and changing it back.
    std::thread::sleep(Duration::from_secs(3));
    set_password(&mut admin, "first");
    let mended = Instant::now();
    let before = script_calls(&mut admin);
    // Within 3 s of the password's return, the run writes again.
    let resumed = loop {
        // Polls until the 3 s deadline asserted below.
        std::thread::sleep(Duration::from_millis(100));
        if script_calls(&mut admin) > before + 10 {
            break mended.elapsed();
        }
        assert!(
            mended.elapsed() < Duration::from_secs(3),
            "no script call within 3 s of the password's return"
        );
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        summary["store_errors"].as_u64().unwrap() > 0,
        "the outage is counted: {summary}"
    );
    assert_eq!(summary["state"], "closed", "{summary}");
    assert!(resumed < Duration::from_secs(3));
}

#[test]
fn a_store_gone_at_the_end_still_prints_the_summary_and_exits_3() {
    let backend = TestServer::start();
    let mut redis_server = RedisServer::start();
    let child = Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args([
            "run",
            "--url",
            &backend.url("/"),
            "--store",
            &redis_server.url(),
            "--duration",
            "2s",
            "--rate",
            "20",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Paces the scenario: the run calls for a while before the store goes.
    std::thread::sleep(Duration::from_millis(1_000));
    redis_server.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["state"], "unknown", "{summary}");
    assert!(summary["successes"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["store_errors"].as_u64().unwrap() > 0, "{summary}");
}

#[test]
fn a_tls_address_at_a_plaintext_server_says_so() {
    let server = RedisServer::start();
    let address = format!("rediss://127.0.0.1:{}", server.port());
    let out = Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args(["status", "--store", &address])
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is the server plaintext"), "{stderr}");
}
