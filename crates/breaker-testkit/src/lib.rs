//! Test kit shared by every store: one conformance suite, one naive reference model, and one
//! differential runner, written once.
//!
//! A store's test binary implements [`Fixture`] and expands [`conformance_suite!`]; it can
//! also run [`differential::check`] under proptest against [`CoreSubject`] (the core's own
//! state machine), as the core itself is checked against [`model::Model`]. [`cas_store`] is a
//! third store, built only from `breaker_core::store`, that keeps each breaker as bytes and
//! saves them with compare-and-swap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod adapter;
pub mod capacity;
pub mod cas_store;
pub mod conformance;
pub mod differential;
pub mod http_server;
pub mod latency;
pub mod model;
pub mod redis_server;
pub mod sentinel;
pub mod shared;
pub mod tls;

pub use sentinel::RedisSentinel;

use std::sync::Mutex;
use std::time::Duration;

use breaker_core::store::LocalBreaker;
use breaker_core::{
    Action, BlockingBreaker, BlockingOperate, Clock, ManualClock, Permit, Policy, Recorded,
    Rejected, Report, Snapshot, Transition,
};

/// One breaker under test, driven on the fixture's manual clock.
pub trait Subject: Send + Sync {
    /// Asks to make a call now.
    fn acquire(&self) -> Result<Permit, Rejected>;
    /// Reports how a call went, now.
    fn record(&self, permit: Permit, report: Report) -> Recorded;
    /// The state now.
    fn snapshot(&self) -> Snapshot;
    /// Applies an operator's action now: the transition it made.
    fn operate(&self, action: Action) -> Option<Transition>;
}

impl<B: BlockingBreaker + BlockingOperate> Subject for B {
    fn acquire(&self) -> Result<Permit, Rejected> {
        BlockingBreaker::acquire(self)
    }

    fn record(&self, permit: Permit, report: Report) -> Recorded {
        BlockingBreaker::record(self, permit, report)
    }

    fn snapshot(&self) -> Snapshot {
        BlockingOperate::snapshot(self).expect("snapshot")
    }

    fn operate(&self, action: Action) -> Option<Transition> {
        BlockingOperate::operate(self, action).expect("operate")
    }
}

/// What a store's test binary provides to the shared suites.
pub trait Fixture: Sync {
    /// The manual clock every breaker of this fixture reads.
    fn clock(&self) -> &ManualClock;
    /// A fresh breaker (a name no other test uses) with `policy`.
    fn breaker(&self, name: &str, policy: Policy) -> Box<dyn Subject>;
}

/// The core's state machine with a plain window, behind a lock: the reference that stores are
/// compared with.
#[derive(Debug)]
pub struct CoreSubject {
    policy: Policy,
    clock: ManualClock,
    state: Mutex<LocalBreaker>,
}

impl CoreSubject {
    /// A closed breaker with `policy`, on `clock`.
    pub fn new(policy: Policy, clock: ManualClock) -> CoreSubject {
        CoreSubject {
            state: Mutex::new(LocalBreaker::new(&policy)),
            policy,
            clock,
        }
    }
}

impl Subject for CoreSubject {
    fn acquire(&self) -> Result<Permit, Rejected> {
        let now = self.clock.now();
        self.state.lock().unwrap().acquire(&self.policy, now)
    }

    fn record(&self, permit: Permit, report: Report) -> Recorded {
        let now = self.clock.now();
        self.state
            .lock()
            .unwrap()
            .record(&self.policy, now, permit, report)
    }

    fn snapshot(&self) -> Snapshot {
        let now = self.clock.now();
        self.state.lock().unwrap().snapshot(&self.policy, now)
    }

    fn operate(&self, action: Action) -> Option<Transition> {
        let now = self.clock.now();
        self.state
            .lock()
            .unwrap()
            .operate(&self.policy, now, action)
    }
}

/// The runtime async clients in tests and benchmarks run on: two workers, IO and time.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Polls `done` until it holds, failing with `what` after five seconds: for what happens on
/// another thread, such as listeners hearing of a store's own events.
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How many cases a random test runs: `ci` times the `BREAKER_SOAK` multiplier (1 unless set;
/// `cargo xtask soak` sets 10).
pub fn cases(ci: u32) -> u32 {
    let soak = std::env::var("BREAKER_SOAK")
        .ok()
        .and_then(|value| value.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    ci.saturating_mul(soak)
}
