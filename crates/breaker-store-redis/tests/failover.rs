//! Real failovers: a primary, a replica and a Sentinel (real `redis-server` processes started
//! by the test kit), the stores reaching them through `RedisConfig::sentinel`, on the real
//! clock. The primary is killed under load; in the second test the replica has missed the
//! last writes (it lagged) when it is promoted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod load;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use breaker_core::{
    Action, BlockingBreaker, BlockingOperate, Outcome, Policy, State, StoreFailurePolicy,
};
use breaker_store_redis::{BlockingRedisStore, RedisConfig};
use breaker_testkit::{RedisSentinel, eventually};
use load::{Process, Running, one_at_a_time};

const TIMEOUT: Duration = Duration::from_millis(200);
const MAX_STALENESS: Duration = Duration::from_millis(500);
const NAME: &str = "failover";

fn config(deployment: &RedisSentinel, prefix: &str) -> RedisConfig {
    RedisConfig::sentinel(deployment.sentinel_urls(), deployment.master_name())
        .prefix(prefix)
        .timeout(TIMEOUT)
        .max_staleness(MAX_STALENESS)
}

fn policy() -> Policy {
    Policy::builder()
        .open_for(Duration::from_secs(60))
        .on_store_failure(StoreFailurePolicy::FailOpen)
        .build()
        .unwrap()
}

fn connect(deployment: &RedisSentinel, prefix: &str, asynchronous: bool) -> Process {
    Process::connect(config(deployment, prefix), NAME, policy(), asynchronous)
}

fn unique_prefix(test: &str) -> String {
    format!("failover-{test}-{}", std::process::id())
}

/// The primary dies under load: calls keep flowing (fail-open while no primary answers, no
/// call waits longer than the store's timeout plus a margin), every process follows the new
/// primary's state, and an operator's reset issued after the failover reaches every process.
#[test]
fn sentinel_promotes_the_replica_under_load() {
    let _serial = one_at_a_time();
    let deployment = RedisSentinel::start();
    let prefix = unique_prefix("load");
    let operator = || {
        BlockingRedisStore::connect(config(&deployment, &prefix))
            .unwrap()
            .breaker(NAME, policy())
            .unwrap()
    };
    let fleet: Vec<Running> = [false, true, false, true]
        .into_iter()
        .map(|asynchronous| Running::start(connect(&deployment, &prefix, asynchronous)))
        .collect();
    for process in &fleet {
        process.wait_until(true, "calls flow before the failover");
    }
    // An operator trips the breaker; the replica has it before the primary dies.
    BlockingOperate::operate(&operator(), Action::Trip).unwrap();
    let acked = deployment
        .primary()
        .command(&["WAIT", "1", "2000"])
        .unwrap();
    assert_eq!(acked, "1", "the replica has every write so far");
    for process in &fleet {
        process.wait_until(false, "every process rejects after the trip");
    }
    // WAIT alone was seen to answer before the replica held the write (it was resyncing).
    let key = format!("{prefix}:{{={NAME}}}");
    eventually("the replica holds the trip", || {
        common::read_state(|args| deployment.replica().command(args), &key, "st").as_deref()
            == Ok("1")
    });
    let killed = Instant::now();
    deployment.kill_primary();
    deployment.wait_for_failover(killed + Duration::from_secs(30));
    let failover = killed.elapsed();
    // The promoted replica holds the trip: every process keeps rejecting.
    let new_operator = operator();
    assert_eq!(
        BlockingOperate::snapshot(&new_operator).unwrap().state,
        State::Open
    );
    for process in &fleet {
        process.wait_until(
            false,
            "every process follows the new primary's state (open)",
        );
    }
    // A reset after the failover reaches every running process.
    let reset = Instant::now();
    BlockingOperate::operate(&new_operator, Action::Reset).unwrap();
    for process in &fleet {
        process.wait_until(true, "the reset reaches every process");
    }
    let reached = reset.elapsed();
    assert!(
        reached < MAX_STALENESS + TIMEOUT + Duration::from_secs(2),
        "the reset took {reached:?} to reach the fleet"
    );
    for process in fleet {
        let load = process.stop();
        let longest = load.longest();
        assert!(
            longest < TIMEOUT * 3 + Duration::from_millis(300),
            "a call waited {longest:?} (failover took {failover:?})"
        );
        assert!(load.admitted.load(Ordering::SeqCst) > 0);
    }
}

/// The replica missed the trip (it lagged) and is promoted: the new primary holds an older
/// copy of the breaker (the same epoch, a lower write sequence, closed). Running processes
/// take that state within max_staleness of the promotion, as new processes do, instead of
/// rejecting every call until their cached open period ends.
#[test]
fn a_replica_that_lagged_is_followed_after_its_promotion() {
    let _serial = one_at_a_time();
    let deployment = RedisSentinel::start();
    let prefix = unique_prefix("lagged");
    let operator = || {
        BlockingRedisStore::connect(config(&deployment, &prefix))
            .unwrap()
            .breaker(NAME, policy())
            .unwrap()
    };
    let fleet: Vec<Running> = [false, true]
        .into_iter()
        .map(|asynchronous| Running::start(connect(&deployment, &prefix, asynchronous)))
        .collect();
    for process in &fleet {
        process.wait_until(true, "calls flow, and the replica has the breaker");
    }
    let acked = deployment
        .primary()
        .command(&["WAIT", "1", "2000"])
        .unwrap();
    assert_eq!(acked, "1", "the replica has every write so far");
    // The replica holds this life of the key (its epoch): a rollback, not a lost key.
    let key = format!("{prefix}:{{={NAME}}}");
    let epoch = common::read_state(|args| deployment.primary().command(args), &key, "ep").unwrap();
    eventually("the replica holds the key", || {
        common::read_state(|args| deployment.replica().command(args), &key, "ep").as_ref()
            == Ok(&epoch)
    });
    // From now on the replica receives nothing: many writes, then the trip, reach the
    // primary alone, so the replica's copy is far behind in write sequence (a process that
    // ignored lower sequences would wait for hundreds of its own writes to catch up).
    deployment.pause_replica();
    let writer = operator();
    for _ in 0..300 {
        let permit = BlockingBreaker::acquire(&writer).unwrap();
        BlockingBreaker::record(&writer, permit, Outcome::Success.into());
    }
    BlockingOperate::operate(&writer, Action::Trip).unwrap();
    for process in &fleet {
        process.wait_until(false, "every process has seen the trip");
    }
    let killed = Instant::now();
    deployment.kill_primary();
    deployment.resume_replica();
    deployment.wait_for_failover(killed + Duration::from_secs(30));
    let promoted = Instant::now();
    assert_eq!(
        common::read_state(|args| deployment.replica().command(args), &key, "ep"),
        Ok(epoch),
        "the promoted replica holds the same life of the key"
    );
    // A new process sees the replica's copy: closed.
    assert_eq!(
        BlockingOperate::snapshot(&operator()).unwrap().state,
        State::Closed
    );
    for process in &fleet {
        process.wait_until(true, "running processes take the promoted replica's state");
    }
    let followed = promoted.elapsed();
    assert!(
        followed < MAX_STALENESS + TIMEOUT + Duration::from_secs(2),
        "running processes followed the promoted replica after {followed:?}"
    );
    for process in fleet {
        process.stop();
    }
}
