//! The `breaker` command as users run it: the built binary, against a local HTTP server and
//! throwaway Redis servers (standalone, Cluster, Sentinel, TLS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use breaker_core::{Action, AsyncBreaker, BlockingBreaker, Outcome, Policy};
use breaker_store_redis::{AsyncRedisStore, BlockingRedisStore, RedisConfig};
use breaker_testkit::RedisSentinel;
use breaker_testkit::http_server::{Reply, TestServer};
use breaker_testkit::redis_server::{RedisCluster, RedisServer};
use breaker_testkit::tls::TestCertificates;
use serde_json::Value;

fn redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// A command line's words (none of them has a space).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn breaker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("BREAKER_STORE_CA")
        .env_remove("BREAKER_STORE_CERT")
        .env_remove("BREAKER_STORE_KEY")
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

/// `breaker args` fails with `code` and exactly one error line, which contains `message`.
fn assert_one_error_line(args: &[&str], code: i32, message: &str) {
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

/// Writes `contents` to a fresh file in this test binary's scratch directory.
fn policy_file(name: &str, contents: &str) -> String {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("breaker-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

/// How many requests a `--json` report says were made, sent or not.
fn requests_of(report: &Value) -> u64 {
    ["rejected", "successes", "failures", "ignored"]
        .iter()
        .map(|field| report[field].as_u64().unwrap())
        .sum()
}

#[test]
fn run_reports_exactly_what_happened() {
    let server = TestServer::start();
    server.push([500, 500, 200, 200, 500].map(Reply::Status));
    let url = server.url("/x");
    let out = breaker(&words(&format!(
        "run --url {url} --requests 10 --minimum-failures 3 --failure-rate 50 --json"
    )));
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
    let first = json_of(&breaker(&words(&format!(
        "run --url {url} --store {store} --name shared-run --requests 3 --minimum-failures 3 --json"
    ))));
    assert_eq!(
        (first["sent"].as_u64(), first["state"].as_str()),
        (Some(3), Some("open"))
    );
    let second = json_of(&breaker(&words(&format!(
        "run --url {url} --store {store} --name shared-run --requests 4 --minimum-failures 3 --json"
    ))));
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
        json_of(&breaker(&words(&format!(
            "run --url {url} --store {store} --name operated --requests {requests} --max-staleness 0s --json"
        ))))
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
fn the_demo_shows_the_share_of_calls_growing_after_the_close() {
    // A short outage, probes at most a second apart and a two-second ramp, so that the ramp
    // runs well within the six seconds.
    let out = breaker(&[
        "demo",
        "--duration",
        "6s",
        "--ramp-up",
        "2s",
        "--max-open-for",
        "1s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the backend warms up over 2s"), "{text}");
    assert!(
        text.contains(
            "the breaker is closed; the share of calls let through grows from 10 % to 100 % over 2s"
        ),
        "{text}"
    );
    // Lines during the ramp say so, with the share of the last second's calls that were sent.
    let shares: Vec<f64> = text
        .lines()
        .filter(|line| line.contains("state ramping"))
        .filter_map(|line| line.split("sent in the last second").nth(1))
        .filter_map(|rest| rest.split('%').next()?.trim().parse().ok())
        .collect();
    assert!(shares.iter().any(|&share| share < 100.0), "{text}");
    let held_back: u64 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("of them, ramping"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no count of ramp rejections: {text}"));
    assert!(held_back > 0, "{text}");
    assert!(text.contains("the ramp is over"), "{text}");
    assert!(text.contains("final state closed"), "{text}");
}

#[test]
fn inputs_that_do_nothing_useful_are_refused() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["run", "--url", "http://127.0.0.1:1/", "--timeout", "0s"],
            "timeout of 0",
        ),
        (
            &["run", "--url", "http://127.0.0.1:1/", "--name", ""],
            "name cannot be empty",
        ),
        (
            &["run", "--url", "http://127.0.0.1:1/", "--name", "  "],
            "name cannot be empty",
        ),
    ];
    for (args, message) in cases {
        assert_one_error_line(args, 2, message);
    }
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
            3,
            "cannot reach the Redis store",
        ),
        (
            &["run", "--url", &url, "--store", "mysql://x"],
            2,
            "is not a Redis scheme",
        ),
        (
            &["trip", "nope", "--store", &redis().url()],
            1,
            "no breaker named \"nope\"",
        ),
        (&["status"], 2, "REDIS_URL"),
    ];
    for (args, code, message) in cases {
        assert_one_error_line(args, code, message);
    }
    let help = breaker(&["run", "--help"]);
    assert!(
        help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--concurrency")
    );
    let bad_flag = breaker(&["run", "--nope"]);
    assert_eq!(bad_flag.status.code(), Some(2));
}

#[test]
fn flags_override_the_policy_file() {
    let server = TestServer::start();
    server.set_default(Reply::Status(500));
    let url = server.url("/");
    let file = policy_file(
        "override",
        "minimum_failures = 100\nminimum_calls = 3\nfailure_rate = 50\nopen_for = \"5m\"\n",
    );
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--url", &url, "--policy", &file, "--requests", "6"];
        args.extend_from_slice(extra);
        args.push("--json");
        json_of(&breaker(&args))
    };

    let from_file = run(&[]);
    assert_eq!(
        (from_file["sent"].as_u64(), from_file["state"].as_str()),
        (Some(6), Some("closed")),
        "the file's minimum_failures = 100 holds: {from_file}"
    );

    // The flag lowers minimum_failures to 2; the file's minimum_calls = 3 still holds, so the
    // third failure trips the breaker, not the second.
    let overridden = run(&["--minimum-failures", "2"]);
    assert_eq!(overridden["sent"], 3, "{overridden}");
    assert_eq!(overridden["rejected"], 3, "{overridden}");
    assert_eq!(overridden["state"], "open", "{overridden}");
    assert_eq!(server.hits(), 6 + 3);
}

#[test]
fn a_bad_policy_file_is_one_line_naming_the_file_and_the_field() {
    let server = TestServer::start();
    let url = server.url("/");
    let cases = [
        ("rate", "failure_rate = 0\n", "failure_rate = 0"),
        (
            "duration",
            "failure_rate = 20\nwindow = \"soon\"\n",
            "line 2, window: invalid value: string \"soon\", expected a duration",
        ),
        ("type", "buckets = \"many\"\n", "buckets"),
        ("unknown", "windw = \"1s\"\n", "unknown field `windw`"),
        ("syntax", "window = \n", "line 1"),
        (
            "store",
            "on_store_failure = \"bogus\"\n",
            "on_store_failure",
        ),
    ];
    for (name, contents, message) in cases {
        let file = policy_file(name, contents);
        assert_one_error_line(&["run", "--url", &url, "--policy", &file], 2, &file);
        assert_one_error_line(&["run", "--url", &url, "--policy", &file], 2, message);
    }
    let missing = policy_file("missing", "");
    std::fs::remove_file(&missing).unwrap();
    assert_one_error_line(
        &["run", "--url", &url, "--policy", &missing],
        2,
        &format!("cannot read the policy file {missing}"),
    );
    assert_eq!(server.hits(), 0, "nothing is sent with a bad policy");
}

#[test]
fn every_policy_field_has_a_flag() {
    let server = TestServer::start();
    let url = server.url("/");
    let all = json_of(&breaker(&words(&format!(
        "run --url {url} --requests 3 --window 30s --buckets 30 --failure-rate 50 --minimum-failures 2 --minimum-calls 2 --open-for 1m --half-open-probes 2 --probe-lease 5s --successes-to-close 2 --backoff 2 --max-open-for 10m --slow-call 5s --on-store-failure local --ramp-up 30s --minimum-reporters 2 --json"
    ))));
    assert_eq!(
        (all["successes"].as_u64(), all["state"].as_str()),
        (Some(3), Some("closed"))
    );

    // A success slower than --slow-call counts as a failure: two of them trip the breaker.
    server.set_default(Reply::Delayed(Duration::from_millis(100), 200));
    let slow = json_of(&breaker(&words(&format!(
        "run --url {url} --requests 4 --minimum-failures 2 --slow-call 20ms --json"
    ))));
    assert_eq!(slow["sent"], 2, "{slow}");
    assert_eq!(slow["rejected"], 2, "{slow}");
    assert_eq!(slow["state"], "open", "{slow}");
    // `off` lifts a limit the policy file set.
    let file = policy_file("slow", "slow_call = \"20ms\"\nminimum_failures = 2\n");
    let off = json_of(&breaker(&words(&format!(
        "run --url {url} --requests 3 --policy {file} --slow-call off --json"
    ))));
    assert_eq!(
        (off["successes"].as_u64(), off["state"].as_str()),
        (Some(3), Some("closed"))
    );

    let cases: [(&[&str], &str); 11] = [
        (&["--buckets", "0"], "buckets = 0"),
        (&["--minimum-reporters", "17"], "minimum_reporters = 17"),
        (&["--ramp-up", "0s"], "ramp_up = 0s"),
        (&["--backoff", "0.5"], "backoff = 0.5"),
        (&["--on-store-failure", "bogus"], "--on-store-failure"),
        (&["--slow-call", "0s"], "slow_call = 0s"),
        (&["--slow-call", "soon"], "--slow-call"),
        (&["--probe-lease", "0s"], "probe_lease = 0s"),
        (
            &["--max-open-for", "1s", "--open-for", "1m"],
            "max_open_for = 1s",
        ),
        (&["--rate", "0"], "--rate"),
        (&["--duration", "forever"], "--duration"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run", "--url", &url];
        args.extend_from_slice(flags);
        assert_one_error_line(&args, 2, message);
    }
}

#[test]
fn rate_and_duration_pace_the_run() {
    let server = TestServer::start();
    let url = server.url("/");
    for concurrency in ["1", "4"] {
        let began = Instant::now();
        let report = json_of(&breaker(&words(&format!(
            "run --url {url} --rate 50 --duration 1s --concurrency {concurrency} --json"
        ))));
        let took = began.elapsed();
        // 50 per second for 1 s, whatever the concurrency: the rate is the total.
        let requests = requests_of(&report);
        assert!((35..=60).contains(&requests), "{concurrency}: {report}");
        assert_eq!(report["sent"].as_u64(), Some(requests), "{report}");
        assert!(report["elapsed_ms"].as_u64().unwrap() >= 900, "{report}");
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(
            took < Duration::from_secs(30),
            "it stops by itself: {took:?}"
        );
    }
}

#[test]
fn requests_end_a_run_before_its_duration() {
    let server = TestServer::start();
    let url = server.url("/");
    let began = Instant::now();
    let report = json_of(&breaker(&words(&format!(
        "run --url {url} --duration 10m --requests 5 --json"
    ))));
    assert_eq!(report["sent"], 5, "{report}");
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "{:?}",
        began.elapsed()
    );

    // The text report says how many requests were made and how long it took.
    let text = breaker(&["run", "--url", &url, "--requests", "3", "--rate", "100"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("after 3 requests"), "{text}");
    assert!(text.contains("elapsed"), "{text}");
}

#[test]
fn any_window_works_with_either_store() {
    let server = TestServer::start();
    let url = server.url("/");
    let redis_url = redis().url();
    // 10 s and 7 s do not divide into the default 60 buckets; 90 s, 10 m and 1 h are longer
    // than the default window.
    for store in ["memory", redis_url.as_str()] {
        for window in ["10s", "7s", "1s", "90s", "10m", "1h"] {
            let name = format!("window-{window}");
            let report = json_of(&breaker(&words(&format!(
                "run --url {url} --store {store} --name {name} --requests 5 --window {window} --json"
            ))));
            assert_eq!(
                (report["successes"].as_u64(), report["state"].as_str()),
                (Some(5), Some("closed")),
                "--window {window} --store {store}: {report}"
            );
        }
    }
}

/// A `breaker` command running in the background. Dropping it kills the process and reaps
/// it, so a test that fails half-way leaves no process behind.
struct Background(Option<Child>);

impl Background {
    fn spawn(args: &[&str]) -> Background {
        let child = Command::new(env!("CARGO_BIN_EXE_breaker"))
            .args(args)
            .env_remove("REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Background(Some(child))
    }

    fn running(&mut self) -> bool {
        let child = self.0.as_mut().unwrap();
        child.try_wait().unwrap().is_none()
    }

    /// Waits, at most `limit`, for the command to end by itself.
    fn finish(mut self, limit: Duration) -> Output {
        wait_for(limit, "the command ends by itself", || !self.running());
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `done` until it holds and returns how long that took; fails the test, saying
/// `what` was expected, once `limit` has passed.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let began = Instant::now();
    while !done() {
        assert!(began.elapsed() < limit, "expected {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    began.elapsed()
}

#[test]
fn an_operator_trip_and_reset_reach_a_running_process() {
    const NAME: &str = "reached-while-running";
    let server = TestServer::start();
    let url = server.url("/");
    let store = redis().url();
    // The open period is the default, 3 minutes, written out because the test is about it: a
    // process that only asked Redis again once it ended would see the reset after 3 minutes,
    // not within its max staleness (300 ms). The run lasts far longer than the test needs and
    // is killed at the end.
    let mut run = Background::spawn(&words(&format!(
        "run --url {url} --store {store} --name {NAME} --rate 100 --duration 60s --max-staleness 300ms --open-for 3m --json"
    )));
    wait_for(Duration::from_secs(15), "requests to the backend", || {
        server.hits() >= 10
    });
    let operate = |command: &str| {
        let out = breaker(&[command, NAME, "--store", &store]);
        assert!(out.status.success(), "{command}: {}", stderr(&out));
    };

    operate("trip");
    let tripped = Instant::now();
    // The trip reaches the process with its next call's round trip. Requests have stopped
    // once the count has not grown for 1 s; when it last grew says how soon they stopped.
    let (mut seen, mut last_growth) = (server.hits(), tripped);
    wait_for(Duration::from_secs(10), "the requests to stop", || {
        let hits = server.hits();
        if hits != seen {
            (seen, last_growth) = (hits, Instant::now());
        }
        last_growth.elapsed() >= Duration::from_secs(1)
    });
    let stopped_after = last_growth.saturating_duration_since(tripped);
    assert!(
        stopped_after < Duration::from_millis(1500),
        "requests went on for {stopped_after:?} after the trip"
    );
    assert!(run.running(), "the run stopped sending because it ended");

    let before = server.hits();
    let resetting = Instant::now();
    operate("reset");
    let command_took = resetting.elapsed();
    wait_for(
        Duration::from_secs(3),
        "requests again after the reset",
        || server.hits() > before,
    );
    // Measured from before the command started, so this includes the command's own start
    // and connection: an upper bound on how long the reset took to reach the process.
    let reached = resetting.elapsed();
    assert!(
        reached < Duration::from_secs(2),
        "the reset reached the running process after {reached:?} (the command took \
         {command_took:?}), expected about the max staleness, 300 ms"
    );
    assert!(run.running());
}

#[test]
fn a_running_process_keeps_working_through_a_redis_restart() {
    const NAME: &str = "through-a-restart";
    // A server of its own, because the test empties it.
    let mut redis_server = RedisServer::start();
    let store = redis_server.url();
    let server = TestServer::start();
    let url = server.url("/");
    let run = Background::spawn(&words(&format!(
        "run --url {url} --store {store} --name {NAME} --rate 100 --duration 6s --json"
    )));
    wait_for(Duration::from_secs(15), "requests to the backend", || {
        server.hits() >= 10
    });
    redis_server.restart();
    let at_restart = server.hits();

    let report = json_of(&run.finish(Duration::from_secs(60)));
    let after_restart = server.hits() - at_restart;
    assert!(
        after_restart >= 50,
        "{after_restart} requests after the restart: {report}"
    );
    // The default store-failure policy, fail-open, lets calls through while Redis is away,
    // and Redis comes back empty, that is closed: nothing is ever rejected.
    assert_eq!(report["rejected"], 0, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    assert_eq!(
        report["sent"].as_u64(),
        Some(server.hits() as u64),
        "{report}"
    );
    assert_eq!(report["state"], "closed", "{report}");
    // Fail-open alone would keep requests flowing too: the process went on using the new
    // Redis, which lists the breaker again and counted its calls.
    let status = json_of(&breaker(&["status", "--store", &store, "--json"]));
    let entry = status
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == NAME)
        .unwrap_or_else(|| panic!("{NAME} is registered in the new Redis: {status}"))
        .clone();
    let counted = entry["calls"].as_u64().unwrap();
    assert!(
        counted >= 50,
        "the new Redis counted {counted} calls of {after_restart}: {entry}"
    );
}

/// `breaker` with `USER` set, so that operator actions are recorded as asked by that user.
fn breaker_as(user: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args(args)
        .env_remove("REDIS_URL")
        .env("USER", user)
        .output()
        .unwrap()
}

#[test]
fn history_lists_transitions_and_operator_actions_with_who_asked() {
    const NAME: &str = "history-of-a-breaker";
    let server = TestServer::start();
    server.set_default(Reply::Status(503));
    let url = server.url("/");
    let store = redis().url();
    let run = json_of(&breaker(&words(&format!(
        "run --url {url} --store {store} --name {NAME} --requests 3 --minimum-failures 3 --json"
    ))));
    assert_eq!(run["state"], "open", "{run}");
    for command in [
        &["reset", NAME][..],
        &["force-open", NAME, "--for", "1m"],
        &["auto", NAME],
    ] {
        let mut args = command.to_vec();
        args.extend(["--store", &store]);
        let out = breaker_as("operator-ann", &args);
        assert!(out.status.success(), "{command:?}: {}", stderr(&out));
    }

    let history = json_of(&breaker(&["history", NAME, "--store", &store, "--json"]));
    let entries = history.as_array().unwrap();
    let events: Vec<(&str, &str)> = entries
        .iter()
        .map(|entry| {
            (
                entry["event"].as_str().unwrap(),
                entry["details"]["by"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("override", "breaker operator-ann"),
            ("override", "breaker operator-ann"),
            ("closed", "breaker operator-ann"),
            ("tripped", ""),
        ],
        "{history}"
    );
    assert_eq!(entries[1]["details"]["mode"], "forced-open");
    assert_eq!(entries[3]["details"]["cause"], "threshold");
    assert!(entries.iter().all(|entry| entry["name"] == NAME));

    let newest = json_of(&breaker(&[
        "history", NAME, "--store", &store, "--json", "--count", "1",
    ]));
    assert_eq!(newest.as_array().unwrap().len(), 1);
    assert_eq!(newest[0]["details"]["mode"], "auto");

    // The table reads down in time: the newest entry last.
    let table = breaker(&["history", NAME, "--store", &store]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8(table.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("WHEN"), "{text}");
    assert!(
        lines[1].contains("tripped") && lines[1].contains("cause=threshold"),
        "{text}"
    );
    assert!(
        lines[4].contains("mode=auto") && lines[4].contains("by=breaker operator-ann"),
        "{text}"
    );

    let none = breaker(&["history", "never-used", "--store", &store]);
    assert!(none.status.success());
    assert!(String::from_utf8_lossy(&none.stdout).contains("no history for breaker"));
    // Every breaker's history, merged: this one's entries are in it.
    let all = json_of(&breaker(&[
        "history", "--store", &store, "--json", "--count", "1000",
    ]));
    let mine = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["name"] == NAME)
        .count();
    assert_eq!(mine, 4, "{all}");
    assert_one_error_line(
        &["history", "--store", &store, "--count", "0"],
        2,
        "--count",
    );
}

/// `breaker dashboard` running in the background, killed when dropped; its URL is read from
/// the first line it prints.
struct DashboardProcess {
    child: std::process::Child,
    url: String,
    /// Kept open: the command's stdout is a pipe to this test.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl DashboardProcess {
    fn start(store: &str, token: Option<&str>) -> DashboardProcess {
        DashboardProcess::start_with(&["--store", store], token)
    }

    /// A dashboard with these store arguments.
    fn start_with(store_args: &[&str], token: Option<&str>) -> DashboardProcess {
        DashboardProcess::launch("127.0.0.1:0", store_args, token, Stdio::inherit())
    }

    /// A dashboard listening on `listen`, with these arguments, its standard error going
    /// to `stderr`.
    fn launch(listen: &str, args: &[&str], token: Option<&str>, stderr: Stdio) -> DashboardProcess {
        let command = Command::new(env!("CARGO_BIN_EXE_breaker"));
        DashboardProcess::run(command, listen, args, token, stderr)
    }

    /// A dashboard on a free loopback port, with these arguments, that may open at most
    /// `files` file descriptors.
    fn start_with_file_limit(files: u32, args: &[&str]) -> DashboardProcess {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_breaker"));
        DashboardProcess::run(command, "127.0.0.1:0", args, None, Stdio::inherit())
    }

    /// `command` (the `breaker` binary, or what runs it) as `breaker dashboard`.
    fn run(
        mut command: Command,
        listen: &str,
        args: &[&str],
        token: Option<&str>,
        stderr: Stdio,
    ) -> DashboardProcess {
        use std::io::{BufRead, BufReader};
        command
            .args(["dashboard", "--listen", listen])
            .args(args)
            .env_remove("REDIS_URL")
            .env_remove("BREAKER_DASHBOARD_TOKEN")
            // Operator actions through the dashboard are recorded as asked by this user.
            .env("USER", "ops")
            .stdout(std::process::Stdio::piped())
            .stderr(stderr);
        if let Some(token) = token {
            command.env("BREAKER_DASHBOARD_TOKEN", token);
        }
        let mut child = command.spawn().unwrap();
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix("breaker dashboard listening on ")
            .unwrap_or_else(|| panic!("the dashboard said {first:?}"))
            .trim_end_matches('/')
            // Listening on every address: reached through loopback.
            .replace("0.0.0.0", "127.0.0.1");
        DashboardProcess {
            child,
            url,
            _stdout: stdout,
        }
    }

    /// Stops the dashboard and returns what it wrote on its standard error (when started
    /// with `Stdio::piped()`).
    fn stop(mut self) -> String {
        use std::io::Read;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut written = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut written).unwrap();
        }
        written
    }
}

impl Drop for DashboardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET through a raw socket (the command's tests have no HTTP client): status and body.
fn http_get(url: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A GET through a raw socket that must be answered within `limit`: status and body, or
/// why not.
fn http_get_within(url: &str, limit: Duration) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let began = Instant::now();
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let address: std::net::SocketAddr = host.parse().unwrap();
    let mut stream = std::net::TcpStream::connect_timeout(&address, limit)
        .map_err(|err| format!("cannot connect: {err}"))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|err| format!("cannot send: {err}"))?;
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let left = limit
            .checked_sub(began.elapsed())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| format!("no whole answer within {limit:?}"))?;
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(err) => return Err(format!("no whole answer within {limit:?}: {err}")),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Opens `count` connections to the dashboard at `url` that send nothing.
fn silent_connections(url: &str, count: usize) -> Vec<std::net::TcpStream> {
    let address = url.strip_prefix("http://").unwrap();
    (0..count)
        .map(|_| std::net::TcpStream::connect(address).unwrap())
        .collect()
}

/// Whether the server closed `stream` within `limit` (anything it sent is read and dropped).
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    let deadline = Instant::now() + limit;
    let mut scratch = [0_u8; 1024];
    loop {
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
        else {
            return false;
        };
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut scratch) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn the_dashboard_answers_while_silent_clients_hold_more_connections_than_it_has_files() {
    let store = redis().url();
    let dashboard = DashboardProcess::start_with_file_limit(64, &["--store", &store]);
    let silent = silent_connections(&dashboard.url, 100);
    // Asked several times while the silent connections are held, in case one answer was luck.
    for attempt in 0..3 {
        let (status, body) = http_get_within(
            &format!("{}/api/breakers", dashboard.url),
            Duration::from_secs(2),
        )
        .unwrap_or_else(|why| panic!("attempt {attempt}: {why}"));
        assert_eq!(status, 200, "attempt {attempt}: {body}");
        assert!(body.starts_with('['), "{body}");
    }
    drop(silent);
    let (status, _) =
        http_get_within(&format!("{}/", dashboard.url), Duration::from_secs(2)).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn the_dashboard_holds_at_most_max_connections() {
    let store = redis().url();
    let dashboard =
        DashboardProcess::start_with(&["--store", &store, "--max-connections", "2"], None);
    let mut held = silent_connections(&dashboard.url, 2);
    assert!(
        !closed_within(&mut held[0], Duration::from_millis(300)),
        "closed below the cap"
    );
    // Past the cap, the connection waiting longest makes room: long before the 5s a silent
    // client has to send its request.
    let _third = silent_connections(&dashboard.url, 1);
    assert!(
        closed_within(&mut held[0], Duration::from_secs(2)),
        "a third connection did not take the first one's place"
    );
    let (status, _) = http_get_within(
        &format!("{}/api/config", dashboard.url),
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_one_error_line(
        &["dashboard", "--store", &store, "--max-connections", "0"],
        2,
        "--max-connections",
    );
}

/// `breaker dashboard` with `args` and the environment's token `token`, which must end by
/// itself within a few seconds (it is refused): its exit code and standard error.
fn dashboard_refused(args: &[&str], token: Option<&str>) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_breaker"));
    command
        .arg("dashboard")
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("BREAKER_DASHBOARD_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("BREAKER_DASHBOARD_TOKEN", token);
    }
    let mut child = Background(Some(command.spawn().unwrap()));
    let limit = Duration::from_secs(10);
    let began = Instant::now();
    while child.running() {
        assert!(
            began.elapsed() < limit,
            "{args:?} with {token:?}: started, not refused"
        );
        // Polls the process with a deadline.
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.0.take().unwrap().wait_with_output().unwrap();
    assert!(out.stdout.is_empty(), "{args:?} with {token:?}: it started");
    (out.status.code(), stderr(&out))
}

#[test]
fn a_dashboard_token_with_whitespace_around_it_is_refused_at_start() {
    const TOKEN: &str = "a-long-enough-operator-token";
    let store = redis().url();
    let base = ["--store", &store, "--listen", "127.0.0.1:0"];
    let tab = format!("{TOKEN}\t");
    let with_flag = [&base[..], &["--token", &tab]].concat();
    let cases = [
        (&base[..], format!("{TOKEN}\r")),
        (&base[..], format!("{TOKEN}\n")),
        (&base[..], format!(" {TOKEN}")),
        (&base[..], "  ".to_owned()),
        (&with_flag[..], String::new()),
    ];
    for (args, token) in cases {
        let token = Some(token.as_str()).filter(|token| !token.is_empty());
        let (code, err) = dashboard_refused(args, token);
        assert_eq!(code, Some(2), "{token:?}: {err}");
        assert!(
            err.contains("whitespace") && err.contains("--token or BREAKER_DASHBOARD_TOKEN"),
            "{token:?}: {err}"
        );
        assert_eq!(
            err.lines().filter(|line| line.starts_with("error")).count(),
            1,
            "{err}"
        );
        assert!(!err.contains(TOKEN), "the token was printed: {err}");
    }
}

#[test]
fn an_override_shorter_than_a_millisecond_is_refused_naming_for() {
    let store = redis().url();
    for command in ["force-open", "force-closed"] {
        for duration in ["0s", "1ns", "500us", "999us"] {
            let args = [command, "svc", "--for", duration, "--store", &store];
            assert_one_error_line(&args, 2, "--for");
            assert_one_error_line(&args, 2, "at least 1ms");
        }
    }
}

#[test]
fn the_dashboard_serves_the_store_it_is_given() {
    let store = redis().url();
    let out = breaker(&[
        "run",
        "--url",
        &TestServer::start().url("/"),
        "--store",
        &store,
        "--name",
        "shown-on-the-dashboard",
        "--requests",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dashboard = DashboardProcess::start(&store, None);
    let (status, body) = http_get(&format!("{}/api/breakers", dashboard.url));
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    let shown = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "shown-on-the-dashboard")
        .unwrap_or_else(|| panic!("not listed: {listed}"));
    assert_eq!(shown["calls"], 2);
    let (status, config) = http_get(&format!("{}/api/config", dashboard.url));
    assert_eq!((status, config.as_str()), (200, r#"{"actions":false}"#));
    let (status, page) = http_get(&format!("{}/", dashboard.url));
    assert_eq!(status, 200);
    assert!(page.contains("<title>breakers</title>"));

    assert_one_error_line(&["dashboard"], 2, "REDIS_URL");
    assert_one_error_line(
        &["dashboard", "--store", &store, "--listen", "256.0.0.1:1"],
        1,
        "cannot listen on 256.0.0.1:1",
    );
}

/// A GET over HTTPS trusting only the CA in `ca`: status and body, or why it failed.
fn https_get(url: &str, ca: &std::path::Path) -> Result<(u16, String), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::{Read, Write};
    let rest = url.strip_prefix("https://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.rsplit_once(':').unwrap().0.to_owned()).unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let socket = std::net::TcpStream::connect(host).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|err| err.to_string())?;
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        // Some servers close without TLS's close_notify once the answer is complete.
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(err) => return Err(err.to_string()),
    }
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// What a plain-HTTP GET of `/` to `address` gets back, whatever it is.
fn plain_answer(address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn the_dashboard_serves_https_with_the_certificate_it_is_given() {
    let certs = certificates();
    let store = redis().url();
    let tls = [
        "--tls-cert",
        path(&certs.server().cert),
        "--tls-key",
        path(&certs.server().key),
    ];
    let dashboard = DashboardProcess::start_with(&[&["--store", &store][..], &tls].concat(), None);
    assert!(
        dashboard.url.starts_with("https://127.0.0.1:"),
        "{}",
        dashboard.url
    );
    let (status, page) = https_get(&format!("{}/", dashboard.url), certs.ca()).unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<title>breakers</title>"));
    let (status, config) = https_get(&format!("{}/api/config", dashboard.url), certs.ca()).unwrap();
    assert_eq!((status, config.as_str()), (200, r#"{"actions":false}"#));

    // Plain HTTP to the HTTPS port gets no HTTP answer, and the server goes on serving.
    let address = dashboard.url.strip_prefix("https://").unwrap();
    let plain = plain_answer(address);
    assert!(
        !plain.starts_with("HTTP/"),
        "plain HTTP was answered: {plain}"
    );
    // A client that trusts another CA refuses the dashboard's certificate.
    let stranger = https_get(&format!("{}/", dashboard.url), &certs.stranger().cert);
    assert!(stranger.is_err(), "{stranger:?}");
    let (status, _) = https_get(&format!("{}/", dashboard.url), certs.ca()).unwrap();
    assert_eq!(status, 200);

    let base = ["dashboard", "--store", &store, "--listen", "127.0.0.1:0"];
    let dashboard_with = |extra: &[&'static str]| [&base[..], extra].concat();
    assert_one_error_line(
        &dashboard_with(&["--tls-cert", path(&certs.server().cert)]),
        2,
        "--tls-key",
    );
    fails_with(
        &dashboard_with(&[
            "--tls-cert",
            "/nope.pem",
            "--tls-key",
            path(&certs.server().key),
        ]),
        &["cannot read the certificate /nope.pem"],
    );
    // A key that is not the certificate's.
    fails_with(
        &dashboard_with(&[
            "--tls-cert",
            path(&certs.server().cert),
            "--tls-key",
            path(&certs.client().key),
        ]),
        &["do not make a usable certificate"],
    );
}

#[test]
fn a_dashboard_beyond_loopback_without_tls_warns() {
    let certs = certificates();
    let store = redis().url();
    let plain = DashboardProcess::launch("0.0.0.0:0", &["--store", &store], None, Stdio::piped());
    // Serving: the warning, written before, is there to read.
    let (status, _) = http_get(&format!("{}/api/config", plain.url));
    assert_eq!(status, 200);
    let warned = plain.stop();
    assert!(
        warned.contains("warning: listening on 0.0.0.0:")
            && warned.contains("without TLS")
            && warned.contains("--tls-cert"),
        "{warned}"
    );

    let tls = [
        "--store",
        &store,
        "--tls-cert",
        path(&certs.server().cert),
        "--tls-key",
        path(&certs.server().key),
    ];
    let secure = DashboardProcess::launch("0.0.0.0:0", &tls, None, Stdio::piped());
    let (status, _) = https_get(&format!("{}/api/config", secure.url), certs.ca()).unwrap();
    assert_eq!(status, 200);
    let quiet = secure.stop();
    assert!(!quiet.contains("without TLS"), "{quiet}");
}

/// What the browser test needs, or a failure saying how to get it.
fn browser_test_tools(dir: &std::path::Path) -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Command::new("node").arg("--version").output().is_ok(),
        "the dashboard's browser test needs Node.js: install it (`apt-get install -y nodejs npm`), \
         then run `cargo xtask test`, which installs the rest"
    );
    assert!(
        std::path::Path::new(&chromium).exists(),
        "the dashboard's browser test needs Chromium at {chromium} (or set CHROMIUM): install it \
         with `apt-get update && apt-get install -y chromium` (as root), or run `cargo xtask test`, \
         which installs it when run as root"
    );
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "the dashboard's browser test needs playwright-core: run `npm ci` in {}, or run \
         `cargo xtask test`, which does",
        dir.display()
    );
    chromium
}

#[test]
fn the_dashboard_in_a_real_browser() {
    use std::io::{BufRead, BufReader, Write};
    const TOKEN: &str = "browser-test-token-0123456789";
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../breaker-dashboard/tests/browser");
    let chromium = browser_test_tools(&dir);
    // A server of its own: the page shows every breaker in it, and the test stops it.
    let mut redis_server = RedisServer::start();
    let store = redis_server.url();
    let healthy = TestServer::start();
    let failing = TestServer::start();
    failing.set_default(Reply::Status(503));
    let policy = [
        "--minimum-failures",
        "3",
        "--failure-rate",
        "50",
        "--open-for",
        "10m",
    ];
    let healthy_url = healthy.url("/");
    let register = |name: &str, requests: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--url",
            &healthy_url,
            "--store",
            &store,
            "--name",
            name,
            "--requests",
            requests,
        ];
        args.extend(extra);
        let out = breaker(&args);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
    };
    // Calls spread over a few seconds, for the chart; the page is checked meanwhile.
    let mut steady = Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args([
            "run",
            "--url",
            &healthy_url,
            "--store",
            &store,
            "--name",
            "payments",
        ])
        .args(["--rate", "12", "--duration", "6s"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    register("checkout-api", "12", &policy);
    register("<img src=x onerror=alert(1)>", "3", &[]);
    // Another process with another policy: a conflict the page warns of.
    register("payments", "8", &["--failure-rate", "25"]);
    register("café-menu ☕", "5", &[]);

    let dashboard = DashboardProcess::start(&store, Some(TOKEN));
    let read_only = DashboardProcess::start(&store, None);
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let mut node = Command::new("node")
        .current_dir(&dir)
        .arg("dashboard.mjs")
        .args([&dashboard.url, TOKEN, env!("CARGO_BIN_EXE_breaker"), &store])
        .arg(failing.url("/"))
        .arg(&screenshot)
        .arg(&read_only.url)
        .env("CHROMIUM", &chromium)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut requests = node.stdin.take().unwrap();
    // The script asks for the outage on its stdout and waits for an answer on its stdin.
    for line in BufReader::new(node.stdout.take().unwrap()).lines() {
        match line.unwrap().as_str() {
            "kill-redis" => redis_server.kill(),
            "restart-redis" => redis_server.restart(),
            other => {
                println!("{other}");
                continue;
            }
        }
        writeln!(requests, "done").unwrap();
    }
    let status = node.wait().unwrap();
    assert!(steady.wait().unwrap().success());
    assert!(
        status.success(),
        "the browser test failed ({status}); its screenshot is under {}",
        screenshot.parent().unwrap().display()
    );
    assert!(screenshot.exists());
}

/// The fleet the browser test shows: 1,000 breakers named like hosts, some open, half-open,
/// forced, in conflict or unreadable. What it made, by kind, as the script reads it.
fn seed_fleet(store: &str) -> Value {
    use breaker_core::{Override, call_async};
    const SERVICES: [&str; 8] = [
        "accounts",
        "checkout",
        "inventory",
        "payments",
        "pricing",
        "reviews",
        "search",
        "shipping",
    ];
    let host = |service: &str, n: u32| format!("{service}-{n}.internal");
    // Listed in natural order, as the page must show them.
    let open = [
        host("inventory", 9),
        host("payments", 3),
        host("payments", 17),
        host("search", 42),
        host("search", 100),
        host("shipping", 2),
    ];
    let half_open = [
        host("accounts", 12),
        host("pricing", 5),
        host("reviews", 110),
    ];
    let forced = [
        (host("checkout", 4), Override::ForcedOpen),
        (host("search", 7), Override::ForcedOpen),
        (host("shipping", 31), Override::ForcedClosed),
    ];
    let conflict = host("pricing", 7);
    let unreadable = host("reviews", 13);
    let policy = |open_for: u64, rate: f64| {
        Policy::builder()
            .minimum_failures(3)
            .failure_rate(rate)
            .open_for(Duration::from_secs(open_for))
            .build()
            .unwrap()
    };
    runtime().block_on(async {
        // A busy machine answers a thousand callers at once slowly.
        let config = RedisConfig::standalone(store)
            .prefix("breaker")
            .timeout(Duration::from_secs(10));
        let redis = AsyncRedisStore::connect(config).await.unwrap();
        let mut tasks = Vec::new();
        for (s, service) in SERVICES.iter().enumerate() {
            for n in 1..=125u32 {
                let name = host(service, n);
                let redis = redis.clone();
                // Half-open breakers open for a second only: then they read half-open.
                let open_for = if half_open.contains(&name) { 1 } else { 600 };
                let successes = (n as usize + s) % 7 + 1;
                let failures = (n as usize) % 3;
                tasks.push(tokio::spawn(async move {
                    let breaker = redis.breaker(&name, policy(open_for, 50.0)).await.unwrap();
                    for _ in 0..successes {
                        let done: Result<(), _> =
                            call_async(&breaker, async { Ok::<(), ()>(()) }).await;
                        done.unwrap();
                    }
                    for _ in 0..failures {
                        let permit = breaker.acquire().await.unwrap();
                        breaker.record(permit, Outcome::Failure.into()).await;
                    }
                    (name, breaker)
                }));
            }
        }
        let mut made = std::collections::HashMap::new();
        for task in tasks {
            let (name, breaker) = task.await.unwrap();
            made.insert(name, breaker);
        }
        for name in open.iter().chain(&half_open) {
            made[name].operate(Action::Trip).await.unwrap();
        }
        for (name, mode) in &forced {
            made[name]
                .operate(Action::Override {
                    mode: *mode,
                    duration: Some(Duration::from_secs(3600)),
                })
                .await
                .unwrap();
        }
        // A second process with another policy.
        redis.breaker(&conflict, policy(600, 25.0)).await.unwrap();
        // Registrations are written in the background: poll until every one is, within a
        // deadline.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let listing = redis
                .list_many(&breaker_store_redis::ListRequest::all())
                .await
                .unwrap();
            let conflicting = listing
                .breakers
                .iter()
                .find(|b| b.name == conflict)
                .and_then(|b| b.info.as_ref().ok())
                .is_some_and(|info| info.policies.len() == 2);
            if listing.breakers.len() == SERVICES.len() * 125 && conflicting {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the fleet was not registered in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // A policy that does not parse: the breaker cannot be read until someone registers it
    // again.
    let policies_key = format!("breaker:{{={unreadable}}}:policies");
    let mut raw = redis::Client::open(store)
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("DEL").arg(&policies_key).exec(&mut raw).unwrap();
    redis::cmd("HSET")
        .arg(&policies_key)
        .arg("{not json")
        .arg("1")
        .exec(&mut raw)
        .unwrap();
    serde_json::json!({
        "total": SERVICES.len() * 125,
        "open": open,
        "half_open": half_open,
        "forced": forced.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        "conflict": [conflict],
        "unreadable": [unreadable],
        "live": host("checkout", 77),
    })
}

#[test]
fn the_dashboard_of_a_fleet_in_a_real_browser() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../breaker-dashboard/tests/browser");
    let chromium = browser_test_tools(&dir);
    const TOKEN: &str = "fleet-test-token-0123456789";
    let redis_server = RedisServer::start();
    let store = redis_server.url();
    let fleet = seed_fleet(&store);
    // The API agrees with the seed before the page is asked to.
    let dashboard = DashboardProcess::start(&store, Some(TOKEN));
    let (status, body) = http_get(&format!("{}/api/breakers", dashboard.url));
    assert_eq!(status, 200);
    let listed: Value = serde_json::from_str(&body).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1000);
    let in_state = |state: &str| listed.iter().filter(|b| b["state"] == state).count();
    // The half-open ones may still be open: their second may not have passed yet.
    assert_eq!(
        (
            in_state("open") + in_state("half-open"),
            in_state("unreadable")
        ),
        (9, 1),
        "{body:.2000}"
    );
    let failing = TestServer::start();
    failing.set_default(Reply::Status(503));
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-table.png");
    let out = Command::new("node")
        .current_dir(&dir)
        .arg("fleet.mjs")
        .args([&dashboard.url, TOKEN, env!("CARGO_BIN_EXE_breaker"), &store])
        .arg(failing.url("/"))
        .arg(&screenshot)
        .arg(fleet.to_string())
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(
        out.success(),
        "the fleet browser test failed ({out}); its screenshot is under {}",
        screenshot.parent().unwrap().display()
    );
    assert!(screenshot.exists());
}

#[test]
fn a_batched_run_trips_with_few_round_trips() {
    let redis = RedisServer::start();
    let server = TestServer::start();
    server.set_default(Reply::Status(200));
    let url = server.url("/");
    let scripts = |redis: &RedisServer| {
        let calls = redis.command_calls();
        calls.get("evalsha").copied().unwrap_or(0) + calls.get("eval").copied().unwrap_or(0)
    };
    let healthy = json_of(&breaker(&[
        "run",
        "--url",
        &url,
        "--store",
        &redis.url(),
        "--name",
        "batched",
        "--requests",
        "400",
        "--concurrency",
        "8",
        "--batch",
        "5ms",
        "--json",
    ]));
    assert_eq!(healthy["successes"], 400);
    assert_eq!(healthy["state"], "closed");
    let sent = scripts(&redis);
    assert!(sent <= 100, "{sent} script calls for 400 calls");
    // Every outcome reached Redis once the run ended (it flushes before reporting).
    let status = json_of(&breaker(&["status", "--store", &redis.url(), "--json"]));
    assert_eq!(status[0]["calls"], 400, "{status}");
    // Failing: the batch trips the breaker, and the run reports the trip.
    server.set_default(Reply::Status(503));
    let failing = json_of(&breaker(&[
        "run",
        "--url",
        &url,
        "--store",
        &redis.url(),
        "--name",
        "batched-failing",
        "--requests",
        "50",
        "--minimum-failures",
        "5",
        "--batch",
        "5ms",
        "--json",
    ]));
    assert_eq!(failing["state"], "open", "{failing}");
    assert_eq!(failing["sent"], 5, "no call passes the trip: {failing}");
    let transitions = failing["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 1, "{failing}");
    assert_batch_needs_redis(&url);
}

fn assert_batch_needs_redis(url: &str) {
    assert_one_error_line(
        &["run", "--url", url, "--batch", "5ms"],
        2,
        "--batch needs a Redis --store",
    );
}

#[test]
fn a_password_never_shows_whatever_characters_it_holds() {
    let server = TestServer::start();
    let url = server.url("/");
    for password in ["s3cr#et", "s3cr/et", "s3cr?et", "s3cr@et", "s3cr:et"] {
        let store = format!("redis://ops:{password}@127.0.0.1:1");
        let sentinel = format!("redis+sentinel://ops:{password}@127.0.0.1:1/mymaster");
        // No master name: refused before the dashboard starts serving.
        let bad_sentinel = format!("redis+sentinel://ops:{password}@127.0.0.1:1");
        let commands: [&[&str]; 6] = [
            &["status", "--store", &store],
            &["history", "--store", &store],
            &["trip", "some-breaker", "--store", &store],
            &["run", "--url", &url, "--requests", "1", "--store", &store],
            &[
                "run",
                "--url",
                &url,
                "--requests",
                "1",
                "--store",
                &sentinel,
            ],
            &[
                "dashboard",
                "--listen",
                "127.0.0.1:0",
                "--store",
                &bad_sentinel,
            ],
        ];
        for args in commands {
            let out = breaker(args);
            let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
            assert!(!out.status.success(), "{args:?}: {stdout} {err}");
            assert!(err.starts_with("error: "), "{args:?}: {err}");
            assert!(
                !stdout.contains("s3cr") && !err.contains("s3cr"),
                "{args:?} printed the password: {stdout} {err}"
            );
        }
    }
    // A password that breaks the URL gets a hint, with the address shown redacted.
    let out = breaker(&["status", "--store", "redis://ops:s3cr#et@127.0.0.1:1"]);
    let err = stderr(&out);
    assert!(err.contains("redis://ops:***@127.0.0.1:1"), "{err}");
    assert!(err.contains("percent-encoded"), "{err}");
}

/// A 503 with `Retry-After: 3` opens the breaker at once in `breaker run`, with the memory
/// store and with Redis, unless `--retry-after ignore`.
#[test]
fn run_honours_a_backends_retry_after() {
    let store = redis().url();
    for (extra, honoured) in [
        (String::new(), true),
        (format!("--store {store} --name asked-to-wait"), true),
        ("--retry-after ignore".to_owned(), false),
    ] {
        let server = TestServer::start();
        server.set_default(Reply::Headers(
            503,
            vec![("Retry-After".to_owned(), "3".to_owned())],
        ));
        let url = server.url("/");
        let report = json_of(&breaker(&words(&format!(
            "run --url {url} --requests 4 --minimum-failures 5 --json {extra}"
        ))));
        if honoured {
            assert_eq!(report["sent"], 1, "{extra}: {report}");
            assert_eq!(report["state"], "open", "{extra}: {report}");
            assert_eq!(report["transitions"][0]["cause"], "retry-after", "{report}");
        } else {
            assert_eq!(report["sent"], 4, "{extra}: {report}");
            assert_eq!(report["state"], "closed", "{extra}: {report}");
        }
    }
}

/// Every operator command, `run` and the dashboard, through the store arguments `store`
/// (`--store ...` once or more): a run counts calls, a trip opens the breaker for the next
/// run, status and history show it, the dashboard lists it, a reset closes it.
fn operate_through(store: &[&str], name: &str) {
    let server = TestServer::start();
    let url = server.url("/");
    let with_store = |command: &[&str]| {
        let mut args = command.to_vec();
        args.extend_from_slice(store);
        let out = breaker(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    let run = |requests: &str| {
        json_of(&with_store(&words(&format!(
            "run --url {url} --name {name} --requests {requests} --max-staleness 0s --json"
        ))))
    };
    let state = || {
        let listed = json_of(&with_store(&["status", "--json"]));
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {listed}"))["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(run("2")["sent"], 2);
    assert_eq!(state(), "closed");
    with_store(&["trip", name]);
    assert_eq!(state(), "open");
    assert_eq!(run("3")["rejected"], 3, "tripped: nothing is sent");
    let table = String::from_utf8_lossy(&with_store(&["status"]).stdout).into_owned();
    assert!(table.contains(name) && table.contains("open"), "{table}");

    let dashboard = DashboardProcess::start_with(store, None);
    let (status, body) = http_get(&format!("{}/api/breakers", dashboard.url));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(name) && body.contains("open"), "{body}");
    drop(dashboard);

    with_store(&["force-open", name, "--for", "1m"]);
    with_store(&["auto", name]);
    with_store(&["reset", name]);
    assert_eq!(state(), "closed");
    assert_eq!(run("1")["sent"], 1);
    let history = json_of(&with_store(&["history", name, "--json"]));
    let events: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["closed", "override", "override", "tripped"],
        "{history}"
    );
}

#[test]
fn every_command_reaches_a_sentinel_deployment() {
    let deployment = RedisSentinel::start();
    // The master asks for a password of its own; the Sentinels ask for none.
    deployment.require_master_password("m4ster");
    let address = deployment.address();
    operate_through(
        &["--store", &address, "--store-master-password", "m4ster"],
        "through-sentinel",
    );
    // The state lives on the primary the Sentinels name.
    let info = deployment
        .primary()
        .command_with_password("m4ster", &["INFO", "keyspace"])
        .unwrap();
    assert!(info.contains("db0:keys="), "no keys on the primary: {info}");
}

#[test]
fn every_command_reaches_a_cluster() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let mut store = Vec::new();
    for url in &urls {
        store.extend(["--store", url.as_str()]);
    }
    operate_through(&store, "through-the-cluster");
    // One seed node in one address reaches the whole Cluster too.
    let seed = format!("redis+cluster://{}", urls[1].trim_start_matches("redis://"));
    let listed = json_of(&breaker(&["status", "--json", "--store", &seed]));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "through-the-cluster"),
        "{listed}"
    );
}

#[test]
fn a_malformed_store_address_says_what_is_wrong() {
    let url = TestServer::start().url("/");
    let cases: [(&[&str], &str); 6] = [
        (
            &["status", "--store", "redis+sentinel://127.0.0.1:1"],
            "no master name",
        ),
        (
            &["trip", "x", "--store", "redis+sentinel://127.0.0.1:z/m"],
            "port `z` of host `127.0.0.1`",
        ),
        (
            &[
                "status",
                "--store",
                "redis://a:1",
                "--store",
                "redis+sentinel://b:2/m",
            ],
            "several addresses name the nodes of a Cluster",
        ),
        (
            &[
                "history",
                "--store",
                "redis://a:1",
                "--store",
                "rediss://b:2",
            ],
            "mix redis:// and rediss://",
        ),
        (
            &["run", "--url", &url, "--store", "mysql://u:pw@x"],
            "`mysql://` is not a Redis scheme",
        ),
        (
            &[
                "run",
                "--url",
                &url,
                "--store",
                "memory",
                "--store",
                "redis://a:1",
            ],
            "--store memory",
        ),
    ];
    for (args, message) in cases {
        assert_one_error_line(args, 2, message);
    }
}

// Reaching Redis as managed services offer it: TLS with a private CA, mutual TLS, and ACL
// users limited to the prefix's keys; the stores as a program uses them (this crate builds
// them with TLS) and the command as an operator runs it, with certificates the test makes.

fn certificates() -> &'static TestCertificates {
    static CERTIFICATES: OnceLock<TestCertificates> = OnceLock::new();
    CERTIFICATES.get_or_init(TestCertificates::new)
}

fn path(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

fn succeeds(args: &[&str]) -> String {
    let out = breaker(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `breaker args` fails with exactly one error line, which contains each of `expected`.
fn fails_with(args: &[&str], expected: &[&str]) {
    let out = breaker(args);
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} succeeded: {err}");
    assert_eq!(
        err.lines().filter(|line| line.starts_with("error")).count(),
        1,
        "{args:?}: {err}"
    );
    for text in expected {
        assert!(err.contains(text), "{args:?}: expected {text:?} in {err}");
    }
}

/// The state `status --json` output `listed` gives breaker `name`.
fn state_of(listed: &str, name: &str) -> String {
    let listed: Value = serde_json::from_str(listed.trim()).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {listed}"))["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn both_stores_and_the_command_trust_a_private_ca() {
    let certs = certificates();
    let server = RedisServer::start_tls(certs.server(), certs.ca(), false, &[]);
    let url = server.tls_url();

    // The async store, the CA from a file.
    runtime().block_on(async {
        let config = RedisConfig::standalone(&url)
            .tls_ca_file(certs.ca())
            .timeout(Duration::from_secs(2));
        let store = AsyncRedisStore::connect(config).await.unwrap();
        store.ping().await.unwrap();
        let breaker = store.breaker("tls-async", Policy::default()).await.unwrap();
        let permit = breaker.acquire().await.unwrap();
        breaker.record(permit, Outcome::Success.into()).await;
    });
    // The blocking store, the CA as bytes.
    let config = RedisConfig::standalone(&url).tls_ca_pem(certs.ca_pem());
    let store = BlockingRedisStore::connect(config).unwrap();
    let breaker = store.breaker("tls-blocking", Policy::default()).unwrap();
    let permit = breaker.acquire().unwrap();
    breaker.record(permit, Outcome::Failure.into());

    // The command: trip, status, history, reset, through --store-ca.
    let ca = ["--store", &url, "--store-ca", path(certs.ca())];
    let with_ca = |command: &[&str]| {
        let mut args = command.to_vec();
        args.extend(ca);
        succeeds(&args)
    };
    assert_eq!(
        state_of(&with_ca(&["status", "--json"]), "tls-async"),
        "closed"
    );
    with_ca(&["trip", "tls-async"]);
    assert_eq!(
        state_of(&with_ca(&["status", "--json"]), "tls-async"),
        "open"
    );
    assert!(with_ca(&["history", "tls-async"]).contains("tripped"));
    with_ca(&["reset", "tls-async"]);
    // The CA from the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args(["status", "--json", "--store", &url])
        .env("BREAKER_STORE_CA", certs.ca())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        state_of(&String::from_utf8_lossy(&out.stdout), "tls-async"),
        "closed"
    );
}

#[test]
fn tls_settings_that_cannot_work_are_refused_before_connecting() {
    let certs = certificates();
    let server = RedisServer::start_tls(certs.server(), certs.ca(), false, &[]);
    let url = server.tls_url();
    // Without the CA, the default roots do not trust the server: refused, and said why.
    fails_with(&["status", "--store", &url], &["not trusted", "--store-ca"]);
    // A CA given for an address without TLS is a mistake, not ignored.
    fails_with(
        &[
            "status",
            "--store",
            &server.url(),
            "--store-ca",
            path(certs.ca()),
        ],
        &["does not use TLS", "rediss://"],
    );
    fails_with(
        &[
            "status",
            "--store",
            &url,
            "--store-ca",
            "/nonexistent/ca.pem",
        ],
        &["cannot read the CA certificate file /nonexistent/ca.pem"],
    );
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let certs = certificates();
    let server = RedisServer::start_tls(certs.server(), certs.ca(), true, &[]);
    let url = server.tls_url();
    let ca = path(certs.ca());
    fails_with(
        &["status", "--store", &url, "--store-ca", ca],
        &["requires a client certificate", "--store-cert"],
    );
    let (cert, key) = (path(&certs.client().cert), path(&certs.client().key));
    succeeds(&[
        "status",
        "--store",
        &url,
        "--store-ca",
        ca,
        "--store-cert",
        cert,
        "--store-key",
        key,
    ]);
    runtime().block_on(async {
        let config = RedisConfig::standalone(&url)
            .tls_ca_file(certs.ca())
            .tls_client_cert_files(&certs.client().cert, &certs.client().key);
        AsyncRedisStore::connect(config)
            .await
            .unwrap()
            .ping()
            .await
            .unwrap();
    });
    let config = RedisConfig::standalone(&url)
        .tls_ca_pem(certs.ca_pem())
        .tls_client_cert_pem(
            std::fs::read(&certs.client().cert).unwrap(),
            std::fs::read(&certs.client().key).unwrap(),
        );
    BlockingRedisStore::connect(config).unwrap().ping().unwrap();
}

#[test]
fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let certs = certificates();
    let stranger = RedisServer::start_tls(certs.stranger(), certs.ca(), false, &[]);
    let ca = path(certs.ca());
    fails_with(
        &["status", "--store", &stranger.tls_url(), "--store-ca", ca],
        &["not trusted", "--store-ca"],
    );
    runtime().block_on(async {
        // Time enough for the handshake, so that its failure, not the timeout, is reported.
        let config = RedisConfig::standalone(stranger.tls_url())
            .tls_ca_file(certs.ca())
            .timeout(Duration::from_secs(2));
        let store = AsyncRedisStore::connect(config).await.unwrap();
        let err = store.ping().await.unwrap_err();
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    });
}

#[test]
fn a_self_signed_server_certificate_given_as_the_ca_is_named() {
    let certs = certificates();
    let own = RedisServer::start_tls(certs.self_signed(), certs.ca(), false, &[]);
    let given = path(&certs.self_signed().cert);
    fails_with(
        &["status", "--store", &own.tls_url(), "--store-ca", given],
        &["is itself a CA certificate"],
    );
}

#[test]
fn a_server_certificate_for_another_name_is_refused() {
    let certs = certificates();
    let ca = path(certs.ca());
    let misnamed = RedisServer::start_tls(certs.misnamed(), certs.ca(), false, &[]);
    fails_with(
        &["status", "--store", &misnamed.tls_url(), "--store-ca", ca],
        &["does not name the host"],
    );
}

/// A server with an ACL user `app` (password `app-secret`) allowed `rules`.
fn server_with_user(rules: &[&str]) -> RedisServer {
    let server = RedisServer::start();
    let mut command = vec!["ACL", "SETUSER", "app", "reset", "on", ">app-secret"];
    command.extend_from_slice(rules);
    server.command(&command).unwrap();
    server
}

#[test]
fn a_user_limited_to_the_prefix_runs_everything() {
    // What the README's "Managed Redis" section asks for.
    let server = server_with_user(&["~breaker:*", "&breaker:changes", "+@all", "-@dangerous"]);
    let store = format!("redis://app:app-secret@127.0.0.1:{}", server.port());
    let backend = TestServer::start();
    let url = backend.url("/");
    let report = succeeds(&[
        "run",
        "--url",
        &url,
        "--store",
        &store,
        "--name",
        "acl",
        "--requests",
        "2",
        "--json",
    ]);
    assert!(report.contains("\"sent\":2"), "{report}");
    succeeds(&["trip", "acl", "--store", &store]);
    assert_eq!(
        state_of(&succeeds(&["status", "--json", "--store", &store]), "acl"),
        "open"
    );
    let history = succeeds(&["history", "acl", "--json", "--store", &store]);
    assert!(history.contains("tripped"), "{history}");
    let dashboard = DashboardProcess::start(&store, None);
    let (status, body) = http_get(&format!("{}/api/breakers", dashboard.url));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"acl\""), "{body}");
    drop(dashboard);

    // The push of changes: a running async store that would not ask Redis again for an
    // hour hears of the command's reset through the channel.
    runtime().block_on(async {
        let config = RedisConfig::standalone(&store).max_staleness(Duration::from_secs(3600));
        let running = AsyncRedisStore::connect(config).await.unwrap();
        let breaker = running.breaker("acl", Policy::default()).await.unwrap();
        assert!(breaker.acquire().await.is_err(), "tripped by the command");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.command(&["CLIENT", "LIST"]).is_ok_and(|clients| {
            clients
                .lines()
                .any(|client| client.contains("user=app") && client.contains("sub=1"))
        }) {
            assert!(Instant::now() < deadline, "the store never subscribed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        succeeds(&["reset", "acl", "--store", &store]);
        while breaker.acquire().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the reset never reached the store"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

#[test]
fn a_running_dashboard_reads_again_within_seconds_of_a_password_coming_back() {
    let server = RedisServer::start();
    let config = |password: &str| {
        server
            .command(&["CONFIG", "SET", "requirepass", password])
            .unwrap()
    };
    config("first");
    let store = format!("redis://:first@127.0.0.1:{}", server.port());
    let dashboard = DashboardProcess::start(&store, None);
    let listing = format!("{}/api/breakers", dashboard.url);
    assert_eq!(http_get(&listing).0, 200);
    // The password changes and every client is cut off (the test's own commands authenticate
    // with the password of the moment).
    let admin = |password: &str, args: &[&str]| {
        let url = format!("redis://:{password}@127.0.0.1:{}", server.port());
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        let _: redis::Value = cmd.query(&mut conn).unwrap();
    };
    admin("first", &["CONFIG", "SET", "requirepass", "second"]);
    admin("second", &["CLIENT", "KILL", "TYPE", "normal"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while http_get(&listing).0 == 200 {
        assert!(
            Instant::now() < deadline,
            "the dashboard still read the store"
        );
        // Polls until the deadline above.
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stands for the operator's 3 s between changing the password and changing it back.
    std::thread::sleep(Duration::from_secs(3));
    admin("second", &["CONFIG", "SET", "requirepass", "first"]);
    let back = Instant::now();
    while http_get(&listing).0 != 200 {
        assert!(
            back.elapsed() < Duration::from_secs(3),
            "the dashboard did not read again within 3 s of the password's return"
        );
        // Polls until the 3 s deadline above.
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_wrong_password_or_a_denied_command_is_named() {
    let server = server_with_user(&["~breaker:*", "&breaker:changes", "+@all", "-evalsha"]);
    let wrong = format!("redis://app:wrong@127.0.0.1:{}", server.port());
    fails_with(
        &["status", "--store", &wrong],
        &["wrong user name or password"],
    );
    let denied = format!("redis://app:app-secret@127.0.0.1:{}", server.port());
    let backend = TestServer::start();
    let url = backend.url("/");
    fails_with(
        &["run", "--url", &url, "--store", &denied, "--name", "acl"],
        &["may not use EVALSHA"],
    );
    fails_with(
        &["status", "--store", "redis://127.0.0.1:1"],
        &["nothing answers", "is redis-server running?"],
    );
}

#[test]
fn every_command_reaches_a_tls_sentinel_deployment() {
    let certs = certificates();
    let deployment = RedisSentinel::start_tls(certs);
    let address = deployment.address();
    operate_through(
        &["--store", &address, "--store-ca", path(certs.ca())],
        "through-tls-sentinel",
    );
    fails_with(&["status", "--store", &address], &["not trusted"]);
}

#[test]
fn every_command_reaches_a_tls_cluster() {
    let certs = certificates();
    let cluster = RedisCluster::start_tls(certs);
    let urls = cluster.tls_urls();
    let mut store = vec!["--store-ca", path(certs.ca())];
    for url in &urls {
        store.extend(["--store", url.as_str()]);
    }
    operate_through(&store, "through-the-tls-cluster");
}
