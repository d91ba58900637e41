//! The compare-and-swap store, made only from `breaker_core::store`, against the shared
//! conformance suite and against the core's state machine on random scenarios.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use breaker_core::{ManualClock, Policy, Timestamp};
use breaker_testkit::cas_store::CasStore;
use breaker_testkit::differential::{check, scenarios_stepping_back};
use breaker_testkit::{CoreSubject, Fixture, Subject};
use proptest::prelude::*;

struct Cas {
    clock: ManualClock,
    store: CasStore,
}

impl Cas {
    fn new() -> Cas {
        let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
        Cas {
            store: CasStore::with_clock(clock.clone()),
            clock,
        }
    }
}

impl Fixture for Cas {
    fn clock(&self) -> &ManualClock {
        &self.clock
    }

    fn breaker(&self, name: &str, policy: Policy) -> Box<dyn Subject> {
        Box::new(self.store.breaker(name, policy))
    }
}

breaker_testkit::conformance_suite!(Cas::new());

proptest! {
    #![proptest_config(ProptestConfig { cases: breaker_testkit::cases(64), ..ProptestConfig::default() })]

    #[test]
    fn cas_store_agrees_with_the_core((policy, steps) in scenarios_stepping_back(200)) {
        let fixture = Cas::new();
        let core = CoreSubject::new(policy.clone(), fixture.clock.clone());
        let cas = fixture.breaker("differential", policy);
        check(&fixture.clock, &core, &*cas, &steps)?;
    }
}
