//! Real Cluster failovers: three masters with a replica each (real `redis-server` processes
//! started by the test kit), the stores reaching them through `RedisConfig::cluster`, on the
//! real clock. Under load, the replica of the master that serves the breaker's key takes
//! over: asked to (`CLUSTER FAILOVER`), forced to (`CLUSTER FAILOVER FORCE`), or because its
//! master was killed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod load;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use breaker_core::{Action, BlockingOperate, Policy, State, StoreFailurePolicy};
use breaker_store_redis::{BlockingRedisStore, RedisConfig};
use breaker_testkit::eventually;
use breaker_testkit::redis_server::{RedisCluster, RedisServer};
use load::{Process, Running, one_at_a_time};

const TIMEOUT: Duration = Duration::from_millis(200);
const MAX_STALENESS: Duration = Duration::from_millis(500);
const NAME: &str = "cluster-failover";

/// The stores reach the cluster through every node, `first` first: an async store listens
/// for pushed changes on the first node it can reach.
fn config(cluster: &RedisCluster, first: &RedisServer, prefix: &str) -> RedisConfig {
    let others = cluster.urls().into_iter().filter(|url| *url != first.url());
    RedisConfig::cluster(std::iter::once(first.url()).chain(others))
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

/// How the replica of the breaker's master takes over.
#[derive(Debug, Clone, Copy)]
enum Handover {
    /// `CLUSTER FAILOVER`: the master hands over every write first.
    Asked,
    /// `CLUSTER FAILOVER FORCE`: the replica takes over without the master's agreement.
    Forced,
    /// The master is killed; the cluster notices and promotes the replica.
    MasterKilled,
}

/// Trips the breaker, makes sure the replica of the master that serves its key holds the
/// trip, and has that replica take over under load (four processes calling, blocking and
/// async): calls keep flowing (none waits longer than a few store timeouts), every process
/// keeps following the breaker's state (open) from the new master, and an operator's reset
/// issued after the failover reaches every process.
fn fail_over_under_load(handover: Handover) {
    let _serial = one_at_a_time();
    let cluster = RedisCluster::start_with_replicas();
    let prefix = format!("cluster-{handover:?}-{}", std::process::id());
    let key = format!("{prefix}:{{={NAME}}}");
    let master = cluster.master_of(&key);
    let replica = cluster.replica_of(master);
    let operator = || {
        BlockingRedisStore::connect(config(&cluster, replica, &prefix))
            .unwrap()
            .breaker(NAME, policy())
            .unwrap()
    };
    // Async processes listen for pushed changes on the master that fails over. The last
    // one learns of changes from them alone: it would ask Redis once a minute.
    let fleet: Vec<Running> = [
        (false, MAX_STALENESS),
        (true, MAX_STALENESS),
        (false, MAX_STALENESS),
        (true, MAX_STALENESS),
        (true, Duration::from_secs(60)),
    ]
    .into_iter()
    .map(|(asynchronous, max_staleness)| {
        let config = config(&cluster, master, &prefix).max_staleness(max_staleness);
        Running::start(Process::connect(config, NAME, policy(), asynchronous))
    })
    .collect();
    for process in &fleet {
        process.wait_until(true, "calls flow before the failover");
    }
    BlockingOperate::operate(&operator(), Action::Trip).unwrap();
    for process in &fleet {
        process.wait_until(false, "every process rejects after the trip");
    }
    eventually("the replica holds the trip", || {
        common::read_state(|args| replica.command_readonly(args), &key, "st").as_deref() == Ok("1")
    });
    let started = Instant::now();
    match handover {
        Handover::Asked => cluster.failover(replica),
        Handover::Forced => cluster.force_failover(replica),
        Handover::MasterKilled => {
            cluster.kill(master);
            cluster.wait_for_promotion(replica, started + Duration::from_secs(30));
        }
    }
    let failover = started.elapsed();
    assert_eq!(cluster.master_of(&key).port(), replica.port());
    // The new master holds the trip: every process keeps rejecting, deciding by its state.
    let new_operator = operator();
    assert_eq!(
        BlockingOperate::snapshot(&new_operator).unwrap().state,
        State::Open
    );
    for process in &fleet {
        process.wait_until(false, "every process follows the new master's state (open)");
    }
    // A reset after the failover reaches every running process.
    let reset = Instant::now();
    BlockingOperate::operate(&new_operator, Action::Reset).unwrap();
    for (index, process) in fleet.iter().enumerate() {
        process.wait_until(true, &format!("the reset reaches process {index}"));
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
            "a call waited {longest:?} (the failover took {failover:?})"
        );
        assert!(load.admitted.load(Ordering::SeqCst) > 0);
    }
}

#[test]
fn a_replica_asked_to_take_over_is_followed_under_load() {
    fail_over_under_load(Handover::Asked);
}

#[test]
fn a_replica_forced_to_take_over_is_followed_under_load() {
    fail_over_under_load(Handover::Forced);
}

#[test]
fn a_replica_taking_over_from_a_killed_master_is_followed_under_load() {
    fail_over_under_load(Handover::MasterKilled);
}
