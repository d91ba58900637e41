//! A throwaway Redis Sentinel deployment for failover tests: a primary, one replica and one
//! or more Sentinels, each a `redis-server` on a free loopback port (Sentinels run as
//! `redis-server <conf> --sentinel`). Everything stops when the value is dropped.
//!
//! A failover to a replica that lagged, step by step:
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use breaker_testkit::sentinel::RedisSentinel;
//!
//! let deployment = RedisSentinel::start();
//! deployment.pause_replica(); // from now on the replica receives nothing
//! deployment.primary().command(&["SET", "lost", "1"]).unwrap();
//! deployment.kill_primary();
//! deployment.resume_replica(); // Sentinel only promotes a replica that answers
//! let new_primary = deployment.wait_for_failover(Instant::now() + Duration::from_secs(30));
//! assert_eq!(new_primary, deployment.replica_url());
//! ```

use std::time::{Duration, Instant};

use crate::redis_server::{RedisServer, signal};
use crate::tls::TestCertificates;

/// The master name the Sentinels monitor.
const MASTER_NAME: &str = "mymaster";

/// How long a silent primary takes to be considered down, in milliseconds: short, so that a
/// failover takes a second or two.
const DOWN_AFTER_MS: u64 = 500;

/// How long Sentinel gives one failover attempt before trying again, in milliseconds.
const FAILOVER_TIMEOUT_MS: u64 = 2_000;

const HOW_TO_GET_SENTINEL: &str = "redis-server could not run in Sentinel mode \
(`redis-server <conf> --sentinel`). Debian's redis-server package includes it (`apt-get \
install -y redis-server redis-tools`); on other systems install the redis-sentinel package, \
or run `cargo xtask test`, which installs what is missing when run as root.";

/// A primary, its replica and the Sentinels that watch them (quorum 1), on loopback.
///
/// The primary and the replica keep the roles they started with in this value's names
/// (`primary_url` is the server that was primary at the start) whatever Sentinel does;
/// [`RedisSentinel::wait_for_failover`] says which one is primary after a failover.
#[derive(Debug)]
pub struct RedisSentinel {
    primary: RedisServer,
    replica: RedisServer,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// A primary, a replica and one Sentinel, ready: the replica is in sync and the Sentinel
    /// knows it.
    pub fn start() -> RedisSentinel {
        RedisSentinel::start_with_sentinels(1)
    }

    /// A primary, a replica and `count` Sentinels (at least one), ready: the replica is in
    /// sync, and every Sentinel knows the replica and the other Sentinels.
    pub fn start_with_sentinels(count: usize) -> RedisSentinel {
        RedisSentinel::launch(count, None)
    }

    /// Like [`RedisSentinel::start`], everything also over TLS with `certs`'s server
    /// certificate: the Sentinels watch and the replica follows the primary on TLS ports,
    /// and [`RedisSentinel::sentinel_urls`], [`RedisSentinel::address`] and the primary's
    /// URLs are `rediss://` ones. Plain ports stay open for the test's own commands.
    pub fn start_tls(certs: &TestCertificates) -> RedisSentinel {
        RedisSentinel::launch(1, Some(certs))
    }

    fn launch(count: usize, tls: Option<&TestCertificates>) -> RedisSentinel {
        // No delay before a full sync: Redis 7 otherwise waits 5 s for more replicas. The
        // replica gets the same setting because it may become the primary.
        let mut common = vec!["--repl-diskless-sync-delay", "0"];
        if tls.is_some() {
            common.extend(["--tls-replication", "yes"]);
        }
        let start = |extra: &[&str]| match tls {
            Some(certs) => RedisServer::start_tls(certs.server(), certs.ca(), false, extra),
            None => RedisServer::start_with(extra),
        };
        let primary = start(&common);
        let watched_port = primary
            .tls_port()
            .unwrap_or_else(|| primary.port())
            .to_string();
        let mut replica_args = common.clone();
        replica_args.extend(["--replicaof", "127.0.0.1", &watched_port]);
        let replica = start(&replica_args);
        let mut config = format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 {watched_port} 1\n\
             sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n"
        );
        if tls.is_some() {
            config.push_str("tls-replication yes\n");
        }
        let sentinels = (0..count.max(1))
            .map(|_| {
                let certs = tls.map(|certs| (certs.server(), certs.ca()));
                RedisServer::try_start_configured(config.clone(), &["--sentinel"], certs)
                    .unwrap_or_else(|err| panic!("{err}. {HOW_TO_GET_SENTINEL}"))
            })
            .collect();
        let deployment = RedisSentinel {
            primary,
            replica,
            sentinels,
        };
        deployment.wait_until_ready();
        deployment
    }

    /// The URL clients use for `server`: `rediss://` on its TLS port when the deployment
    /// serves TLS.
    fn url_of(server: &RedisServer) -> String {
        if server.has_tls() {
            server.tls_url()
        } else {
            server.url()
        }
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        poll(
            deadline,
            "the replica to be in sync with the primary",
            || {
                self.replica
                    .command(&["INFO", "replication"])
                    .is_ok_and(|info| info.contains("master_link_status:up"))
            },
        );
        let expected = format!("slaves=1,sentinels={}", self.sentinels.len());
        for sentinel in &self.sentinels {
            poll(
                deadline,
                &format!(
                    "the Sentinel on port {} to know the replica and its peers",
                    sentinel.port()
                ),
                || master_line(sentinel).is_some_and(|line| line.ends_with(&expected)),
            );
        }
    }

    /// The name the Sentinels know the master by (`mymaster`).
    pub fn master_name(&self) -> &str {
        MASTER_NAME
    }

    /// Each Sentinel's URL, `redis://127.0.0.1:<port>`, as `RedisConfig::sentinel` takes them.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisSentinel::url_of).collect()
    }

    /// The whole deployment as one address,
    /// `redis+sentinel://127.0.0.1:<port>[,127.0.0.1:<port>...]/mymaster`.
    pub fn address(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| {
                let port = sentinel.tls_port().unwrap_or_else(|| sentinel.port());
                format!("127.0.0.1:{port}")
            })
            .collect();
        let scheme = if self.primary.has_tls() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// Makes the primary and the replica ask for `password` (`requirepass`, and `masterauth`
    /// so that either follows the other), and tells the Sentinels (`auth-pass`); the
    /// Sentinels themselves ask for none. From then on the two servers answer
    /// [`RedisServer::command_with_password`] only.
    pub fn require_master_password(&self, password: &str) {
        for server in [&self.replica, &self.primary] {
            let set = |name: &str| {
                server
                    .command(&["CONFIG", "SET", name, password])
                    .unwrap_or_else(|err| panic!("CONFIG SET {name} on {}: {err}", server.port()))
            };
            set("masterauth");
            set("requirepass");
        }
        for sentinel in &self.sentinels {
            sentinel
                .command(&["SENTINEL", "SET", MASTER_NAME, "auth-pass", password])
                .unwrap_or_else(|err| panic!("SENTINEL SET auth-pass: {err}"));
        }
    }

    /// The Sentinels.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// The server that was the primary at the start.
    pub fn primary(&self) -> &RedisServer {
        &self.primary
    }

    /// The URL of the server that was the primary at the start (`rediss://` on its TLS port
    /// in a deployment started with [`RedisSentinel::start_tls`]).
    pub fn primary_url(&self) -> String {
        RedisSentinel::url_of(&self.primary)
    }

    /// The plain port of the server that was the primary at the start.
    pub fn primary_port(&self) -> u16 {
        self.primary.port()
    }

    /// The server that was the replica at the start.
    pub fn replica(&self) -> &RedisServer {
        &self.replica
    }

    /// The URL of the server that was the replica at the start (`rediss://` on its TLS port
    /// in a deployment started with [`RedisSentinel::start_tls`]).
    pub fn replica_url(&self) -> String {
        RedisSentinel::url_of(&self.replica)
    }

    /// The plain port of the server that was the replica at the start.
    pub fn replica_port(&self) -> u16 {
        self.replica.port()
    }

    /// Kills the primary (SIGKILL), as a crash would. Sentinel notices within about half a
    /// second and promotes the replica, once the replica answers. It takes `&self`, so that
    /// threads and closures sharing the deployment can go on using it.
    pub fn kill_primary(&self) {
        signal("KILL", self.primary.pid());
    }

    /// Makes the replica miss every write from now on, as a replica that lags: it is frozen
    /// (SIGSTOP) and the primary then drops its replication link (`CLIENT KILL TYPE
    /// replica`), so that nothing written later reaches even the replica's socket buffer.
    /// Until [`RedisSentinel::resume_replica`], Sentinel will not promote it.
    pub fn pause_replica(&self) {
        signal("STOP", self.replica.pid());
        // The primary may be gone already; then there is no link to drop.
        let _ = self.primary.command(&["CLIENT", "KILL", "TYPE", "replica"]);
    }

    /// Thaws the replica (SIGCONT). With the primary alive it reconnects and catches up;
    /// with the primary killed it keeps only what it had before the pause, and Sentinel can
    /// promote it.
    pub fn resume_replica(&self) {
        signal("CONT", self.replica.pid());
    }

    /// The URL of the primary every Sentinel names now, if they agree (`rediss://` with
    /// TLS).
    pub fn current_primary_url(&self) -> Option<String> {
        let mut ports = self
            .sentinels
            .iter()
            .map(|sentinel| master_line(sentinel).and_then(|line| address_port(&line)));
        let first = ports.next().flatten()?;
        let scheme = if self.primary.has_tls() {
            "rediss"
        } else {
            "redis"
        };
        ports
            .all(|port| port == Some(first))
            .then(|| format!("{scheme}://127.0.0.1:{first}"))
    }

    /// Waits until every Sentinel names the replica as the primary, and the replica says it
    /// is one; returns its URL. Panics at `deadline`.
    pub fn wait_for_failover(&self, deadline: Instant) -> String {
        let promoted = self.replica_url();
        poll(
            deadline,
            "Sentinel to promote the replica (a paused replica is never promoted)",
            || {
                self.current_primary_url().as_ref() == Some(&promoted)
                    && self
                        .replica
                        .command(&["INFO", "replication"])
                        .is_ok_and(|info| info.contains("role:master"))
            },
        );
        promoted
    }
}

/// The `master0:` line of a Sentinel's `INFO sentinel`.
fn master_line(sentinel: &RedisServer) -> Option<String> {
    let info = sentinel.command(&["INFO", "sentinel"]).ok()?;
    info.lines()
        .find_map(|line| line.trim().strip_prefix("master0:").map(str::to_owned))
}

/// The port in `address=127.0.0.1:<port>` of a `master0:` line.
fn address_port(line: &str) -> Option<u16> {
    line.split(',')
        .find_map(|field| field.strip_prefix("address="))?
        .rsplit_once(':')?
        .1
        .parse()
        .ok()
}

/// Polls `done` every 20 ms until it is true; panics at `deadline`, saying it waited for
/// `what`.
fn poll(deadline: Instant, what: &str, mut done: impl FnMut() -> bool) {
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_promotes_the_replica_when_the_primary_dies() {
        let deployment = RedisSentinel::start();
        assert_eq!(
            deployment.current_primary_url(),
            Some(deployment.primary_url())
        );
        deployment.primary().command(&["SET", "kept", "1"]).unwrap();
        poll(
            Instant::now() + Duration::from_secs(10),
            "the write to reach the replica",
            || deployment.replica().command(&["GET", "kept"]).as_deref() == Ok("1"),
        );
        deployment.pause_replica();
        deployment.primary().command(&["SET", "lost", "1"]).unwrap();
        deployment.kill_primary();
        deployment.resume_replica();
        let promoted = deployment.wait_for_failover(Instant::now() + Duration::from_secs(30));
        assert_eq!(promoted, deployment.replica_url());
        // The promoted replica lagged: it has what it had before the pause, nothing after.
        assert_eq!(
            deployment.replica().command(&["GET", "kept"]).as_deref(),
            Ok("1")
        );
        assert_eq!(
            deployment.replica().command(&["GET", "lost"]).as_deref(),
            Ok("")
        );
    }

    #[test]
    fn a_tls_deployment_fails_over_on_its_tls_ports() {
        let certs = TestCertificates::new();
        let deployment = RedisSentinel::start_tls(&certs);
        assert!(
            deployment
                .address()
                .starts_with("rediss+sentinel://127.0.0.1:")
        );
        assert!(deployment.primary_url().starts_with("rediss://"));
        assert_eq!(
            deployment.current_primary_url(),
            Some(deployment.primary_url())
        );
        deployment.kill_primary();
        let promoted = deployment.wait_for_failover(Instant::now() + Duration::from_secs(30));
        assert_eq!(promoted, deployment.replica_url());
    }

    #[test]
    fn several_sentinels_know_each_other() {
        let deployment = RedisSentinel::start_with_sentinels(3);
        assert_eq!(deployment.sentinel_urls().len(), 3);
        assert!(
            deployment
                .address()
                .starts_with("redis+sentinel://127.0.0.1:")
                && deployment.address().ends_with("/mymaster")
        );
        assert_eq!(
            deployment.current_primary_url(),
            Some(deployment.primary_url())
        );
    }
}
