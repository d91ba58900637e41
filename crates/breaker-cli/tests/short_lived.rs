//! A short-lived process (a function that starts, makes one call and exits), as `breaker run
//! --requests 1` is: what it costs the Redis its fleet shares, counted by Redis itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use breaker_testkit::http_server::TestServer;
use breaker_testkit::redis_server::RedisServer;

/// Calls of `command` since the server started (commands run inside a script included).
fn calls(redis: &RedisServer, command: &str) -> u64 {
    redis.command_calls().get(command).copied().unwrap_or(0)
}

#[test]
fn a_process_that_makes_one_call_uses_one_connection() {
    let backend = TestServer::start();
    let redis = RedisServer::start();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_breaker"))
            .args(["run", "--url", &backend.url("/"), "--requests", "1"])
            .args(["--store", &redis.url(), "--name", "function", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        summary["redis_requests"].as_u64().unwrap()
    };
    // The first process makes the breaker's key.
    run();
    let counted = ["hsetnx", "subscribe", "evalsha", "ping"];
    let before: Vec<u64> = counted.iter().map(|c| calls(&redis, c)).collect();
    let opened = redis.connections_received();
    let requests = run();
    // One connection of the process, and the one the count asks on: none to subscribe
    // to pushed changes.
    assert_eq!(redis.connections_received() - opened, 2, "connections");
    let sent: Vec<u64> = counted
        .iter()
        .zip(&before)
        .map(|(command, before)| calls(&redis, command) - before)
        .collect();
    // No SUBSCRIBE, three script calls (acquire, record, and the run's final read), the PING
    // with which the command checks that the store answers, and the registration twice (the
    // name in the registry is the one HSETNX, which the script never sends): when the
    // breaker is made, and again once the first reply names the key's epoch, since Redis may
    // have lost the registry between the two. Riding the registration on the script is what
    // would bring this to one.
    assert_eq!(sent, [2, 0, 3, 1], "{counted:?}");
    // The process counts them itself: the three script calls, the PING and the two
    // registrations, each two requests (the policy, then the name with names drawn at
    // random to check), where each command was a request of its own before (20 in all).
    assert_eq!(requests, 8, "the requests the process says it sent");
}
