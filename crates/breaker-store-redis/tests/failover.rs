//! Real failovers: a primary, a replica and a Sentinel (real `redis-server` processes started
//! by the test kit), the stores reaching them through `RedisConfig::sentinel`, on the real
//! clock. The primary is killed under load; in the second test the replica has missed the
//! last writes (it lagged) when it is promoted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use breaker_core::{
    AsyncBreaker, Breaker, Operate, Outcome, Permit, PermitKind, Policy, RejectReason, Rejected,
    State, StoreFailurePolicy,
};
use breaker_store_redis::{
    BlockingRedisBreaker, BlockingRedisStore, RedisBreaker, RedisConfig, RedisStore,
};
use breaker_testkit::{RedisSentinel, eventually, runtime};

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

/// One process of the fleet: a blocking store's breaker, or an async one's.
#[derive(Clone)]
enum Process {
    Blocking(BlockingRedisBreaker),
    Async(RedisBreaker),
}

impl Process {
    fn connect(deployment: &RedisSentinel, prefix: &str, asynchronous: bool) -> Process {
        let config = config(deployment, prefix);
        if asynchronous {
            let store = runtime().block_on(RedisStore::connect(config)).unwrap();
            Process::Async(runtime().block_on(store.breaker(NAME, policy())).unwrap())
        } else {
            let store = BlockingRedisStore::connect(config).unwrap();
            Process::Blocking(store.breaker(NAME, policy()).unwrap())
        }
    }

    /// One call that succeeds, if admitted: whether the breaker's state in Redis admitted it
    /// (`None`: Redis did not answer, and the failure policy decided).
    fn call(&self) -> Option<bool> {
        let decided = |decision: &Result<Permit, Rejected>| match decision {
            Ok(permit) => (permit.kind() != PermitKind::Unchecked).then_some(true),
            Err(rejected) => (rejected.reason() != RejectReason::StoreUnavailable).then_some(false),
        };
        match self {
            Process::Blocking(b) => {
                let decision = Breaker::acquire(b);
                let decided = decided(&decision);
                if let Ok(permit) = decision {
                    Breaker::record(b, permit, Outcome::Success);
                }
                decided
            }
            Process::Async(b) => runtime().block_on(async {
                let decision = AsyncBreaker::acquire(b).await;
                let decided = decided(&decision);
                if let Ok(permit) = decision {
                    AsyncBreaker::record(b, permit, Outcome::Success).await;
                }
                decided
            }),
        }
    }
}

/// A process calling in a loop on a thread of its own: how many calls, how many admitted,
/// whether the last was admitted, and the longest call.
#[derive(Default)]
struct Load {
    calls: AtomicU64,
    /// Calls decided by Redis's state (not by the failure policy).
    decided: AtomicU64,
    /// Decided calls in a row with the same answer as the last.
    streak: AtomicU64,
    admitted: AtomicU64,
    last_admitted: AtomicBool,
    longest_us: AtomicU64,
}

struct Running {
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(process: Process) -> Running {
        let load = Arc::new(Load::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (counting, stopping) = (load.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                let started = Instant::now();
                let decided = process.call();
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                counting.longest_us.fetch_max(took, Ordering::SeqCst);
                counting.calls.fetch_add(1, Ordering::SeqCst);
                // Decided by the failure policy (fail-open: admitted), not by Redis's state.
                let admitted = decided.unwrap_or(true);
                counting
                    .admitted
                    .fetch_add(u64::from(admitted), Ordering::SeqCst);
                if let Some(admitted) = decided {
                    counting.decided.fetch_add(1, Ordering::SeqCst);
                    if counting.last_admitted.swap(admitted, Ordering::SeqCst) == admitted {
                        counting.streak.fetch_add(1, Ordering::SeqCst);
                    } else {
                        counting.streak.store(1, Ordering::SeqCst);
                    }
                }
                // Paces the load: about 500 calls a second per process.
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Running {
            load,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until Redis's state, as this process sees it, admits its calls (`true`) or
    /// rejects them (`false`): ten decided calls in a row, after this point, say so (an open
    /// breaker lets one call ask Redis now and then, which one admitted call must not pass
    /// for).
    fn wait_until(&self, admitted: bool, what: &str) {
        let since = self.load.decided.load(Ordering::SeqCst);
        eventually(what, || {
            self.load.decided.load(Ordering::SeqCst) >= since + 10
                && self.load.last_admitted.load(Ordering::SeqCst) == admitted
                && self.load.streak.load(Ordering::SeqCst) >= 10
        });
    }

    fn stop(mut self) -> Arc<Load> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.load.clone()
    }
}

/// One deployment at a time: two running side by side (free ports drawn at once, Sentinels
/// reconfiguring servers) were seen to disturb each other.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        .map(|asynchronous| Running::start(Process::connect(&deployment, &prefix, asynchronous)))
        .collect();
    for process in &fleet {
        process.wait_until(true, "calls flow before the failover");
    }
    // An operator trips the breaker; the replica has it before the primary dies.
    Operate::trip(&operator()).unwrap();
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
        deployment
            .replica()
            .command(&["HGET", &key, "st"])
            .as_deref()
            == Ok("1")
    });
    let killed = Instant::now();
    deployment.kill_primary();
    deployment.wait_for_failover(killed + Duration::from_secs(30));
    let failover = killed.elapsed();
    // The promoted replica holds the trip: every process keeps rejecting.
    let new_operator = operator();
    assert_eq!(Operate::snapshot(&new_operator).unwrap().state, State::Open);
    for process in &fleet {
        process.wait_until(
            false,
            "every process follows the new primary's state (open)",
        );
    }
    // A reset after the failover reaches every running process.
    let reset = Instant::now();
    Operate::reset(&new_operator).unwrap();
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
        let longest = Duration::from_micros(load.longest_us.load(Ordering::SeqCst));
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
        .map(|asynchronous| Running::start(Process::connect(&deployment, &prefix, asynchronous)))
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
    let epoch = deployment.primary().command(&["HGET", &key, "ep"]).unwrap();
    eventually("the replica holds the key", || {
        deployment.replica().command(&["HGET", &key, "ep"]).as_ref() == Ok(&epoch)
    });
    // From now on the replica receives nothing: many writes, then the trip, reach the
    // primary alone, so the replica's copy is far behind in write sequence (a process that
    // ignored lower sequences would wait for hundreds of its own writes to catch up).
    deployment.pause_replica();
    let writer = operator();
    for _ in 0..300 {
        let permit = Breaker::acquire(&writer).unwrap();
        Breaker::record(&writer, permit, Outcome::Success);
    }
    Operate::trip(&writer).unwrap();
    for process in &fleet {
        process.wait_until(false, "every process has seen the trip");
    }
    let killed = Instant::now();
    deployment.kill_primary();
    deployment.resume_replica();
    deployment.wait_for_failover(killed + Duration::from_secs(30));
    let promoted = Instant::now();
    assert_eq!(
        deployment.replica().command(&["HGET", &key, "ep"]),
        Ok(epoch),
        "the promoted replica holds the same life of the key"
    );
    // A new process sees the replica's copy: closed.
    assert_eq!(Operate::snapshot(&operator()).unwrap().state, State::Closed);
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
