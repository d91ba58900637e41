//! A third store, made only from what `breaker_core::store` gives store authors: it keeps each
//! breaker's state as bytes in a map and changes them with compare-and-swap, as a store over
//! Postgres, etcd or DynamoDB would. For every operation it loads the bytes, takes the step
//! with the core's [`LocalBreaker`] (every decision is the core's), and saves the result only
//! if the bytes are still the ones it loaded; otherwise it loads again and retries. It runs
//! the whole conformance suite, which shows the boundary is enough to write such a store.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use breaker_core::store::{self, LocalBreaker};
use breaker_core::{
    Action, BlockingBreaker, BlockingOperate, BreakerHandle, Clock, Listeners, Permit, Policy,
    Recorded, Rejected, Report, Snapshot, StoreError, Timestamp, Transition,
};

/// Many named breakers, each kept as the bytes of [`LocalBreaker::to_bytes`].
#[derive(Clone)]
pub struct CasStore {
    cells: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    clock: Arc<dyn Clock>,
    retries: Arc<AtomicU64>,
}

impl fmt::Debug for CasStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CasStore")
            .field("breakers", &self.cells.lock().unwrap().len())
            .field("retries", &self.retries())
            .finish()
    }
}

impl CasStore {
    /// An empty store on `clock` (a [`ManualClock`](breaker_core::ManualClock) in tests).
    pub fn with_clock(clock: impl Clock + 'static) -> CasStore {
        CasStore {
            cells: Arc::new(Mutex::new(HashMap::new())),
            clock: Arc::new(clock),
            retries: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A handle on the breaker named `name`, with `policy` (each handle has its own policy, as
    /// each process of a shared store has). The state is made on its first change.
    pub fn breaker(&self, name: &str, policy: Policy) -> CasBreaker {
        CasBreaker {
            name: name.to_owned(),
            policy,
            listeners: Listeners::new(),
            store: self.clone(),
        }
    }

    /// How many saves found the bytes changed since their load, and so loaded again.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The bytes kept for `name`, if any.
    pub fn load(&self, name: &str) -> Option<Vec<u8>> {
        self.cells.lock().unwrap().get(name).cloned()
    }

    /// Saves `new` for `name` if its bytes are still `expected` (`None`: no state yet).
    ///
    /// Comparing the whole value is sound: the bytes are the breaker's entire state, so a
    /// state that changed and changed back is the state the step was decided on.
    fn compare_and_swap(&self, name: &str, expected: Option<&[u8]>, new: Vec<u8>) -> bool {
        let mut cells = self.cells.lock().unwrap();
        if cells.get(name).map(Vec::as_slice) != expected {
            return false;
        }
        cells.insert(name.to_owned(), new);
        true
    }
}

/// A breaker of a [`CasStore`].
#[derive(Clone)]
pub struct CasBreaker {
    name: String,
    policy: Policy,
    listeners: Listeners,
    store: CasStore,
}

impl fmt::Debug for CasBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CasBreaker")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CasBreaker {
    /// Loads the breaker, takes `step` at the time of the call, and saves what it left with
    /// compare-and-swap, loading again and retaking the step while another caller saved in
    /// between. A step that changed nothing writes nothing.
    fn step<T>(&self, mut step: impl FnMut(&mut LocalBreaker, Timestamp) -> T) -> T {
        let now = self.store.clock.now();
        loop {
            let loaded = self.store.load(&self.name);
            let mut breaker = match &loaded {
                Some(bytes) => LocalBreaker::from_bytes(&self.policy, bytes)
                    .expect("the store holds only bytes the core wrote"),
                None => LocalBreaker::new(&self.policy),
            };
            let before = breaker.to_bytes();
            let result = step(&mut breaker, now);
            let after = breaker.to_bytes();
            if after == before
                || self
                    .store
                    .compare_and_swap(&self.name, loaded.as_deref(), after)
            {
                return result;
            }
            self.store.retries.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The same permit again, for a step that is retaken: a permit is handed back once, so a
/// retry rebuilds it from its fields, as a store rebuilds one from its own answer.
fn again(permit: &Permit) -> Permit {
    store::permit(
        permit.generation(),
        permit.kind(),
        permit.started(),
        permit.transition().is_some(),
    )
}

impl BreakerHandle for CasBreaker {
    fn name(&self) -> &str {
        &self.name
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    fn listeners(&self) -> &Listeners {
        &self.listeners
    }
}

impl BlockingBreaker for CasBreaker {
    fn acquire(&self) -> Result<Permit, Rejected> {
        self.step(|breaker, now| breaker.acquire(&self.policy, now))
    }

    fn record(&self, permit: Permit, report: Report) -> Recorded {
        self.step(|breaker, now| breaker.record(&self.policy, now, again(&permit), report))
    }
}

impl BlockingOperate for CasBreaker {
    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let now = self.store.clock.now();
        let breaker = match self.store.load(&self.name) {
            Some(bytes) => LocalBreaker::from_bytes(&self.policy, &bytes)?,
            None => LocalBreaker::new(&self.policy),
        };
        Ok(breaker.snapshot(&self.policy, now))
    }

    fn operate(&self, action: Action) -> Result<Option<Transition>, StoreError> {
        Ok(self.step(|breaker, now| breaker.operate(&self.policy, now, action)))
    }
}
