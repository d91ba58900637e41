//! The core's state machine against the naive reference model, on random scenarios.

use breaker_core::{ManualClock, Timestamp};
use breaker_testkit::CoreSubject;
use breaker_testkit::differential::{check, scenarios};
use breaker_testkit::model::Model;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: breaker_testkit::cases(512), ..ProptestConfig::default() })]

    #[test]
    fn core_agrees_with_the_naive_model((policy, steps) in scenarios(300)) {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let model = Model::new(policy.clone(), clock.clone());
        let core = CoreSubject::new(policy, clock.clone());
        check(&clock, &model, &core, &steps)?;
    }
}
