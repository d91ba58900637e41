//! The memory store against the shared conformance suite, and against the core's state
#![allow(clippy::expect_used, clippy::unwrap_used)]
//! machine on random scenarios.

use breaker_core::{Action, BlockingOperate, ManualClock, Policy, Timestamp};
use breaker_store_memory::MemoryStore;
use breaker_testkit::differential::{check, scenarios_stepping_back};
use breaker_testkit::{CoreSubject, Fixture, Subject};
use proptest::prelude::*;

struct Memory {
    clock: ManualClock,
    store: MemoryStore,
}

impl Memory {
    fn new() -> Memory {
        let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
        Memory {
            store: MemoryStore::with_clock(clock.clone()),
            clock,
        }
    }
}

impl Fixture for Memory {
    fn clock(&self) -> &ManualClock {
        &self.clock
    }

    fn breaker(&self, name: &str, policy: Policy) -> Box<dyn Subject> {
        Box::new(self.store.breaker(name, policy).expect("a fresh name"))
    }
}

breaker_testkit::conformance_suite!(Memory::new());

proptest! {
    #![proptest_config(ProptestConfig { cases: breaker_testkit::cases(256), ..ProptestConfig::default() })]

    #[test]
    fn memory_store_agrees_with_the_core((policy, steps) in scenarios_stepping_back(300)) {
        let fixture = Memory::new();
        let core = CoreSubject::new(policy.clone(), fixture.clock.clone());
        let memory = fixture.breaker("differential", policy);
        check(&fixture.clock, &core, &*memory, &steps)?;
    }
}

#[test]
fn one_name_one_policy() {
    let store = MemoryStore::new();
    let first = store.breaker("api", Policy::default()).unwrap();
    let again = store.breaker("api", Policy::default()).unwrap();
    BlockingOperate::operate(&first, Action::Trip).unwrap();
    assert_eq!(
        BlockingOperate::snapshot(&again).unwrap().generation,
        1,
        "same name, same breaker"
    );
    let other = Policy::builder().minimum_failures(1).build().unwrap();
    let err = store.breaker("api", other).unwrap_err();
    assert!(err.to_string().contains("different policy"), "{err}");
    assert_eq!(store.names(), vec!["api".to_owned()]);
    assert!(store.get("api").is_some() && store.get("nope").is_none());
}
