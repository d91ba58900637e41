//! The dashboard's `/metrics` scraped by a real Prometheus: a breaker tripped by `breaker run`
//! shows as open in Prometheus, its hostile name intact as a label value; and
//! `breaker metrics` prints the same exposition once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use breaker_testkit::http_server::{Reply, TestServer};
use breaker_testkit::redis_server::RedisServer;
use serde_json::Value;

/// Quotes, braces, a backslash, a line feed and non-ASCII: everything a label value must
/// escape or carry through.
const HOSTILE: &str = "evil\"} breaker_state{name=\"x\\\n ü";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and waited for) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("breaker-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Prometheus on a free loopback port, scraping `target` (host:port) every second, with
/// its data in a directory of its own; stopped on drop.
struct Prometheus {
    url: String,
    _process: Killed,
    _dir: TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let binary = std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
        assert!(
            Path::new(&binary).exists(),
            "the metrics test needs Prometheus at {binary}: `sudo apt-get install -y \
             prometheus`, or `cargo xtask test`, which installs it"
        );
        let dir = TempDir::new("prometheus");
        let config = dir.0.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: breakers\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.0.join("log")).unwrap();
        let process = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            _process: Killed(process),
            _dir: dir,
        }
    }
}

impl Prometheus {
    /// The URL of an instant query.
    fn query(&self, query: &str) -> reqwest::Url {
        let base = format!("{}/api/v1/query", self.url);
        reqwest::Url::parse_with_params(&base, [("query", query)]).unwrap()
    }
}

fn breaker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_breaker"));
    command
        .env_remove("REDIS_URL")
        .env_remove("BREAKER_DASHBOARD_TOKEN");
    command
}

/// `breaker dashboard` on a free port; its address (host:port).
fn dashboard(store: &str) -> (Killed, String) {
    let mut child = breaker()
        .args(["dashboard", "--store", store, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let address = first
        .trim()
        .strip_prefix("breaker dashboard listening on http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
        .to_owned();
    (Killed(child), address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_a_tripped_breaker_open_with_its_hostile_name() {
    let redis = RedisServer::start();
    let (_dashboard, address) = dashboard(&redis.url());
    let prometheus = Prometheus::start(&address);

    let backend = TestServer::start();
    backend.set_default(Reply::Status(503));
    let run = breaker()
        .args(["run", "--url", &backend.url("/"), "--store", &redis.url()])
        .args([
            "--name",
            HOSTILE,
            "--requests",
            "5",
            "--minimum-failures",
            "3",
        ])
        .args(["--open-for", "1h"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // `breaker metrics` prints the same exposition once.
    let printed = breaker()
        .args(["metrics", "--store", &redis.url()])
        .output()
        .unwrap();
    assert!(printed.status.success());
    let printed = String::from_utf8(printed.stdout).unwrap();
    let escaped = "evil\\\"} breaker_state{name=\\\"x\\\\\\n ü";
    assert!(
        printed.contains(&format!(
            "breaker_state{{name=\"{escaped}\",state=\"open\"}} 1\n"
        )),
        "{printed}"
    );
    assert!(printed.contains("breaker_store_up 1\n"));

    // Prometheus scrapes the dashboard until the breaker shows as open there.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    loop {
        let answer = client
            .get(prometheus.query("breaker_state{state=\"open\"} == 1"))
            .send()
            .await;
        if let Ok(answer) = answer {
            let text = answer.text().await.unwrap_or_default();
            if let Ok(body) = serde_json::from_str::<Value>(&text) {
                let found = body["data"]["result"].as_array().is_some_and(|series| {
                    series
                        .iter()
                        .any(|s| s["metric"]["name"] == HOSTILE && s["value"][1] == "1")
                });
                if found {
                    break;
                }
                last = body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not see the breaker open within a minute: {last}"
        );
        // Poll: Prometheus scrapes once a second.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let up = client
        .get(prometheus.query("breaker_store_up"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let up: Value = serde_json::from_str(&up).unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}
