//! The `breaker` command as users run it: the built binary, against a local HTTP server and
//! a throwaway Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};
use std::sync::OnceLock;

use breaker_testkit::http_server::{Reply, TestServer};
use breaker_testkit::redis_server::RedisServer;
use serde_json::Value;

fn redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

fn breaker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "exactly one JSON object: {stdout}"
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn run_reports_exactly_what_happened() {
    let server = TestServer::start();
    server.push([500, 500, 200, 200, 500].map(Reply::Status));
    let url = server.url("/x");
    let out = breaker(&[
        "run",
        "--url",
        &url,
        "--requests",
        "10",
        "--minimum-failures",
        "3",
        "--failure-rate",
        "50",
        "--json",
    ]);
    let report = json_of(&out);
    assert_eq!(report["sent"], 5);
    assert_eq!(report["rejected"], 5);
    assert_eq!(report["successes"], 2);
    assert_eq!(report["failures"], 3);
    assert_eq!(report["ignored"], 0);
    assert_eq!(report["state"], "open");
    assert_eq!(report["transitions"].as_array().unwrap().len(), 1);
    assert_eq!(report["transitions"][0]["to"], "open");
    assert_eq!(server.hits(), 5);

    let text = breaker(&["run", "--url", &url, "--requests", "2"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("sent      2"));
}

#[test]
fn two_processes_share_one_breaker_through_redis() {
    let server = TestServer::start();
    server.set_default(Reply::Status(503));
    let url = server.url("/");
    let store = redis().url();
    let first = json_of(&breaker(&[
        "run",
        "--url",
        &url,
        "--store",
        &store,
        "--name",
        "shared-run",
        "--requests",
        "3",
        "--minimum-failures",
        "3",
        "--json",
    ]));
    assert_eq!(
        (first["sent"].as_u64(), first["state"].as_str()),
        (Some(3), Some("open"))
    );
    let second = json_of(&breaker(&[
        "run",
        "--url",
        &url,
        "--store",
        &store,
        "--name",
        "shared-run",
        "--requests",
        "4",
        "--minimum-failures",
        "3",
        "--json",
    ]));
    assert_eq!(second["sent"], 0, "the second process sends nothing");
    assert_eq!(second["rejected"], 4);
    assert_eq!(server.hits(), 3);
}

#[test]
fn operators_override_what_running_clients_do() {
    let server = TestServer::start();
    let url = server.url("/");
    let store = redis().url();
    let run = |requests: &str| {
        json_of(&breaker(&[
            "run",
            "--url",
            &url,
            "--store",
            &store,
            "--name",
            "operated",
            "--requests",
            requests,
            "--max-staleness",
            "0s",
            "--json",
        ]))
    };
    assert_eq!(run("2")["sent"], 2);

    let with_env = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_breaker"))
            .args(args)
            .env("REDIS_URL", &store)
            .output()
            .unwrap()
    };
    let forced = with_env(&["force-open", "operated", "--for", "10m"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(run("3")["rejected"], 3, "forced open: nothing is sent");

    let status = json_of(&with_env(&["status", "--json"]));
    let entry = status
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "operated")
        .unwrap()
        .clone();
    assert_eq!(entry["override"], "forced-open");
    assert_eq!(entry["calls"], 2);
    let table = with_env(&["status"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("NAME") && table.contains("operated") && table.contains("forced-open"),
        "{table}"
    );

    assert!(with_env(&["auto", "operated"]).status.success());
    assert_eq!(run("1")["sent"], 1);
    assert!(with_env(&["trip", "operated"]).status.success());
    assert_eq!(run("1")["rejected"], 1);
    assert!(with_env(&["reset", "operated"]).status.success());
    assert_eq!(run("1")["sent"], 1);
    assert!(with_env(&["force-closed", "operated"]).status.success());
    server.set_default(Reply::Status(500));
    let forced_closed = run("5");
    assert_eq!(
        (
            forced_closed["sent"].as_u64(),
            forced_closed["state"].as_str()
        ),
        (Some(5), Some("closed"))
    );
}

#[test]
fn the_demo_runs_its_course() {
    let out = breaker(&["demo", "--duration", "6s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the breaker is open"), "{text}");
    assert!(text.contains("the breaker is half-open"), "{text}");
    assert!(text.contains("the breaker is closed"), "{text}");
    assert!(text.contains("final state closed"), "{text}");
}

#[test]
fn bad_input_is_one_clear_line_and_the_right_exit_code() {
    let server = TestServer::start();
    let url = server.url("/");
    let cases: [(&[&str], i32, &str); 7] = [
        (&["run", "--url", "not a url"], 2, "invalid value"),
        (&["run", "--url", "ftp://x/"], 2, "http"),
        (
            &["run", "--url", &url, "--failure-rate", "0"],
            2,
            "failure_rate = 0",
        ),
        (
            &["run", "--url", &url, "--store", "redis://127.0.0.1:1"],
            1,
            "cannot reach the Redis store",
        ),
        (
            &["run", "--url", &url, "--store", "mysql://x"],
            2,
            "--store must be",
        ),
        (
            &["trip", "nope", "--store", &redis().url()],
            1,
            "no breaker named \"nope\"",
        ),
        (&["status"], 2, "REDIS_URL"),
    ];
    for (args, code, message) in cases {
        let out = breaker(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.lines().filter(|line| line.starts_with("error")).count() == 1,
            "{args:?}: {err}"
        );
    }
    let help = breaker(&["run", "--help"]);
    assert!(
        help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--concurrency")
    );
    let bad_flag = breaker(&["run", "--nope"]);
    assert_eq!(bad_flag.status.code(), Some(2));
}
