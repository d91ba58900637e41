//! Rotated credentials against a real `redis-server`: a password changed and changed back,
//! or an ACL user switched off and on, stops sharing only while it lasts. Both stores
//! reconnect by themselves within seconds of the credentials working again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use breaker_core::{BlockingBreaker, BlockingOperate, Outcome, Policy};
use breaker_store_redis::{AsyncRedisStore, BlockingRedisStore, RedisConfig};
use breaker_testkit::redis_server::RedisServer;
use breaker_testkit::runtime;
use breaker_testkit::sentinel::RedisSentinel;

/// How long the credentials stay wrong.
const OUTAGE: Duration = Duration::from_secs(3);
/// How soon after they work again every store must read and write again.
const RECOVERY: Duration = Duration::from_secs(3);

fn admin(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// A breaker in each store, asked for its state through the script (no cache) and recording
/// calls; `Ok` when both reached Redis.
struct Stores {
    blocking: breaker_store_redis::BlockingRedisBreaker,
    asynchronous: breaker_store_redis::AsyncRedisBreaker,
}

impl Stores {
    fn connect(url: &str, prefix: &str) -> Stores {
        Stores::connect_to(|| RedisConfig::standalone(url), prefix)
    }

    /// Both stores on the deployment `deployment` names, with `prefix`.
    fn connect_to(deployment: impl Fn() -> RedisConfig, prefix: &str) -> Stores {
        let config = || {
            deployment()
                .prefix(prefix)
                .max_staleness(Duration::ZERO)
                .timeout(Duration::from_millis(500))
        };
        let blocking = BlockingRedisStore::connect(config())
            .unwrap()
            .breaker("rotated", Policy::default())
            .unwrap();
        let asynchronous = runtime()
            .block_on(async {
                let store = AsyncRedisStore::connect(config()).await?;
                store.breaker("rotated", Policy::default()).await
            })
            .unwrap();
        Stores {
            blocking,
            asynchronous,
        }
    }

    /// Which of the two stores read their breaker's state from Redis.
    fn reach(&self) -> (bool, bool) {
        if let Ok(permit) = BlockingBreaker::acquire(&self.blocking) {
            BlockingBreaker::record(&self.blocking, permit, Outcome::Success.into());
        }
        let blocking = BlockingOperate::snapshot(&self.blocking).is_ok();
        let asynchronous = runtime().block_on(async {
            if let Ok(permit) = breaker_core::AsyncBreaker::acquire(&self.asynchronous).await {
                breaker_core::AsyncBreaker::record(
                    &self.asynchronous,
                    permit,
                    Outcome::Success.into(),
                )
                .await;
            }
            self.asynchronous.snapshot().await.is_ok()
        });
        (blocking, asynchronous)
    }

    /// Calls every 100 ms through an outage of `OUTAGE` made by `break_it`, ended by
    /// `mend_it`; then both stores must reach Redis within `RECOVERY`.
    fn through(
        &self,
        conn: &mut redis::Connection,
        break_it: impl FnOnce(&mut redis::Connection),
        mend_it: impl FnOnce(&mut redis::Connection),
    ) {
        assert_eq!(self.reach(), (true, true), "before");
        break_it(conn);
        let started = Instant::now();
        let mut refused = (false, false);
        while started.elapsed() < OUTAGE {
            let (blocking, asynchronous) = self.reach();
            refused = (refused.0 || !blocking, refused.1 || !asynchronous);
            // Paces the calls through the outage, which stands for a rotation of OUTAGE.
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(refused, (true, true), "the outage refused both stores");
        mend_it(conn);
        let mended = Instant::now();
        loop {
            let reached = self.reach();
            if reached == (true, true) {
                break;
            }
            assert!(
                mended.elapsed() < RECOVERY,
                "still refused {:?} after the credentials work again: {reached:?}",
                mended.elapsed()
            );
            // Polls until the RECOVERY deadline asserted above.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn kill_clients(conn: &mut redis::Connection) {
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(conn)
        .unwrap();
}

#[test]
fn a_password_changed_and_changed_back_stops_sharing_only_while_it_lasts() {
    let server = RedisServer::start();
    let mut conn = admin(&server.url());
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("first")
        .query(&mut conn)
        .unwrap();
    let url = format!("redis://:first@127.0.0.1:{}", server.port());
    let stores = Stores::connect(&url, "password");
    let mut conn = admin(&url);
    stores.through(
        &mut conn,
        |conn| {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("requirepass")
                .arg("second")
                .query(conn)
                .unwrap();
            kill_clients(conn);
        },
        |conn| {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("requirepass")
                .arg("first")
                .query(conn)
                .unwrap();
        },
    );
}

#[test]
fn an_acl_user_switched_off_and_on_stops_sharing_only_while_it_lasts() {
    let server = RedisServer::start();
    let mut conn = admin(&server.url());
    let acl = |conn: &mut redis::Connection, state: &str| {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("fleet")
            .arg(state)
            .arg(">secret")
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query(conn)
            .unwrap();
    };
    acl(&mut conn, "on");
    let url = format!("redis://fleet:secret@127.0.0.1:{}", server.port());
    let stores = Stores::connect(&url, "acl");
    stores.through(
        &mut conn,
        |conn| {
            acl(conn, "off");
            kill_clients(conn);
        },
        |conn| acl(conn, "on"),
    );
}

fn require_pass(conn: &mut redis::Connection, password: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query(conn)
        .unwrap();
}

#[test]
fn a_sentinel_masters_password_changed_and_changed_back_stops_sharing_only_while_it_lasts() {
    let deployment = RedisSentinel::start();
    deployment.require_master_password("first");
    let mut primary = admin(&format!(
        "redis://:first@127.0.0.1:{}",
        deployment.primary_port()
    ));
    let sentinels = deployment.sentinel_urls();
    let master = deployment.master_name().to_owned();
    let stores = Stores::connect_to(
        || RedisConfig::sentinel(sentinels.clone(), master.clone()).master_password("first"),
        "sentinel",
    );
    stores.through(
        &mut primary,
        |conn| {
            require_pass(conn, "second");
            kill_clients(conn);
        },
        |conn| require_pass(conn, "first"),
    );
}

#[test]
fn a_sentinel_master_refuses_a_store_without_its_password_and_names_it() {
    let deployment = RedisSentinel::start();
    deployment.require_master_password("first");
    let config = RedisConfig::sentinel(deployment.sentinel_urls(), deployment.master_name())
        .timeout(Duration::from_millis(500));
    let read = BlockingRedisStore::connect(config).and_then(|store| {
        let breaker = store.breaker("unauthenticated", Policy::default())?;
        BlockingOperate::snapshot(&breaker)
    });
    let Err(err) = read else {
        panic!("a master with a password accepted a store without one");
    };
    let message = err.to_string();
    assert!(message.contains("master_password"), "{message}");
}
