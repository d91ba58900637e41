//! Load for the failover tests (Sentinel and Cluster): processes of a fleet, each a blocking or
//! an async store's breaker, calling in a loop on a thread of its own, with the calls decided
//! by Redis's state told apart from those decided by the failure policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use breaker_core::{
    AsyncBreaker, BlockingBreaker, Outcome, Permit, PermitKind, Policy, RejectReason, Rejected,
};
use breaker_store_redis::{
    AsyncRedisBreaker, AsyncRedisStore, BlockingRedisBreaker, BlockingRedisStore, RedisConfig,
};
use breaker_testkit::{eventually, runtime};

/// One process of the fleet: a blocking store's breaker, or an async one's.
#[derive(Clone)]
pub(crate) enum Process {
    Blocking(BlockingRedisBreaker),
    Async(AsyncRedisBreaker),
}

impl Process {
    /// A new store for `config` (async or blocking) and its breaker `name`.
    pub(crate) fn connect(
        config: RedisConfig,
        name: &str,
        policy: Policy,
        asynchronous: bool,
    ) -> Process {
        if asynchronous {
            let store = runtime()
                .block_on(AsyncRedisStore::connect(config))
                .unwrap();
            Process::Async(runtime().block_on(store.breaker(name, policy)).unwrap())
        } else {
            let store = BlockingRedisStore::connect(config).unwrap();
            Process::Blocking(store.breaker(name, policy).unwrap())
        }
    }

    /// One call that succeeds, if admitted: whether the breaker's state in Redis admitted it
    /// (`None`: Redis did not answer, and the failure policy decided).
    pub(crate) fn call(&self) -> Option<bool> {
        let decided = |decision: &Result<Permit, Rejected>| match decision {
            Ok(permit) => (permit.kind() != PermitKind::Unchecked).then_some(true),
            Err(rejected) => (rejected.reason() != RejectReason::StoreUnavailable).then_some(false),
        };
        match self {
            Process::Blocking(b) => {
                let decision = BlockingBreaker::acquire(b);
                let decided = decided(&decision);
                if let Ok(permit) = decision {
                    BlockingBreaker::record(b, permit, Outcome::Success.into());
                }
                decided
            }
            Process::Async(b) => runtime().block_on(async {
                let decision = AsyncBreaker::acquire(b).await;
                let decided = decided(&decision);
                if let Ok(permit) = decision {
                    AsyncBreaker::record(b, permit, Outcome::Success.into()).await;
                }
                decided
            }),
        }
    }
}

/// A process calling in a loop on a thread of its own: how many calls, how many admitted,
/// whether the last was admitted, and the longest call.
#[derive(Default)]
pub(crate) struct Load {
    calls: AtomicU64,
    /// Calls decided by Redis's state (not by the failure policy).
    decided: AtomicU64,
    /// Decided calls in a row with the same answer as the last.
    streak: AtomicU64,
    pub(crate) admitted: AtomicU64,
    last_admitted: AtomicBool,
    longest_us: AtomicU64,
}

impl Load {
    /// The longest call so far.
    pub(crate) fn longest(&self) -> Duration {
        Duration::from_micros(self.longest_us.load(Ordering::SeqCst))
    }
}

pub(crate) struct Running {
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    pub(crate) fn start(process: Process) -> Running {
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
    pub(crate) fn wait_until(&self, admitted: bool, what: &str) {
        let since = self.load.decided.load(Ordering::SeqCst);
        eventually(what, || {
            self.load.decided.load(Ordering::SeqCst) >= since + 10
                && self.load.last_admitted.load(Ordering::SeqCst) == admitted
                && self.load.streak.load(Ordering::SeqCst) >= 10
        });
    }

    pub(crate) fn stop(mut self) -> Arc<Load> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.load.clone()
    }
}

/// One deployment at a time: two running side by side (free ports drawn at once, Sentinels
/// reconfiguring servers, cluster nodes gossiping) were seen to disturb each other.
pub(crate) fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
