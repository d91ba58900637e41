//! Random event sequences driven through two breakers at once, demanding identical decisions.

use std::time::Duration;

use breaker_core::{
    Action, Clock, ManualClock, Outcome, Override, Permit, PermitKind, Policy, Recorded, Rejected,
    Report, RetryAfterPolicy, Snapshot, Timestamp, Transition,
};
use proptest::prelude::*;

use crate::Subject;

/// One step of a scenario.
#[derive(Clone, Debug)]
pub enum Step {
    /// Move the clock forward.
    Advance(u64),
    /// Move the clock back (a wall clock stepped back), never before its start.
    StepBack(u64),
    /// Ask for a permit and hold it.
    Acquire,
    /// Report the held permit at this index (modulo the number held) with this outcome.
    Record(usize, Outcome),
    /// The same, of a response that asked every caller to wait this many milliseconds (a 429
    /// or 503 with `Retry-After`).
    RecordRetryAfter(usize, Outcome, u64),
    /// An operator's action.
    Operate(Action),
}

/// A policy small enough that scenarios of a few hundred steps visit every state.
pub fn policies() -> impl Strategy<Value = Policy> {
    (
        (
            prop_oneof![
                (1u64..=8).prop_map(|s| s * 1_000),
                // Windows that do not divide evenly into their buckets.
                prop::sample::select(vec![1_000u64, 7_000, 999, 1_001, 2_500]),
            ],
            prop::sample::select(vec![1u32, 2, 4, 5, 10, 12, 60, 250, 1_000]),
        ),
        prop::sample::select(vec![10.0, 100.0 / 3.0, 50.0, 75.0, 100.0]),
        0u64..=4,
        0u64..=6,
        1u64..=4,
        (1u32..=3, 1u32..=3),
        prop::sample::select(vec![1.0, 1.5, 2.0]),
        (1u64..=3, prop::option::of(200u64..=900)),
        (
            prop::option::of(prop::sample::select(vec![1u64, 700, 2_000, 6_000])),
            prop::sample::select(vec![1u32, 1, 1, 2]),
        ),
    )
        .prop_map(
            |(
                (window_ms, buckets),
                rate,
                minimum_failures,
                minimum_calls,
                open_s,
                (probes, successes),
                backoff,
                (lease_s, slow_ms),
                (ramp_ms, reporters),
            )| {
                Policy::builder()
                    .window(Duration::from_millis(window_ms))
                    .buckets(buckets.min(u32::try_from(window_ms).unwrap_or(u32::MAX)))
                    .failure_rate(rate)
                    .minimum_failures(minimum_failures)
                    .minimum_calls(minimum_calls)
                    .open_for(Duration::from_secs(open_s))
                    .max_open_for(Duration::from_secs(open_s * 3))
                    .half_open_probes(probes)
                    .successes_to_close(successes)
                    .backoff(backoff)
                    .probe_lease(Duration::from_secs(lease_s))
                    .slow_call(slow_ms.map(Duration::from_millis))
                    .ramp_up(ramp_ms.map(Duration::from_millis))
                    .minimum_reporters(reporters)
                    .retry_after(if open_s == 2 {
                        RetryAfterPolicy::Ignore
                    } else {
                        RetryAfterPolicy::Honour
                    })
                    .build()
                    .expect("generated policies are valid")
            },
        )
}

fn outcomes() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Success),
        4 => Just(Outcome::Failure),
        1 => Just(Outcome::Ignored),
    ]
}

/// One random step; most steps are calls, a few are operator actions.
pub fn steps() -> impl Strategy<Value = Step> {
    steps_stepping_back(0)
}

/// Like [`steps`], with the clock stepping back once in about `1 + 40 / weight` steps
/// (`weight` 0: never). Stores are compared with the core on these; the naive model
/// does not say what a window counts when time runs backwards.
pub fn steps_stepping_back(weight: u32) -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => Just(Step::Acquire),
        14 => (any::<usize>(), outcomes()).prop_map(|(which, outcome)| Step::Record(which, outcome)),
        2 => (
            any::<usize>(),
            outcomes(),
            prop_oneof![Just(0u64), 1u64..=12_000, Just(u64::from(u32::MAX))],
        )
            .prop_map(|(which, outcome, ms)| Step::RecordRetryAfter(which, outcome, ms)),
        6 => prop_oneof![0u64..=50, 0u64..=1_500, 0u64..=9_000].prop_map(Step::Advance),
        weight => (1u64..=20_000).prop_map(Step::StepBack),
        3 => actions().prop_map(Step::Operate),
    ]
}

/// One operator action: a trip, a reset, or an override for a while or forever.
pub fn actions() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Trip),
        Just(Action::Reset),
        (
            prop::sample::select(vec![
                Override::Auto,
                Override::ForcedOpen,
                Override::ForcedClosed
            ]),
            prop::option::of(prop_oneof![
                4 => (1u64..=5_000).prop_map(Duration::from_millis),
                // Overrides longer than any store keeps: they mean forever.
                1 => Just(Duration::MAX),
                1 => Just(Duration::from_millis(1u64 << 51)),
            ]),
        )
            .prop_map(|(mode, duration)| Action::Override { mode, duration }),
    ]
}

/// A policy and a sequence of steps.
pub fn scenarios(max_steps: usize) -> impl Strategy<Value = (Policy, Vec<Step>)> {
    (policies(), prop::collection::vec(steps(), 1..max_steps))
}

/// A policy and a sequence of steps in which the clock sometimes steps back.
pub fn scenarios_stepping_back(max_steps: usize) -> impl Strategy<Value = (Policy, Vec<Step>)> {
    (
        policies(),
        prop::collection::vec(steps_stepping_back(1), 1..max_steps),
    )
}

/// Permit and rejection as compared: tickets are each implementation's own numbering.
#[derive(Debug, PartialEq)]
enum Decision {
    Permit {
        generation: u64,
        probe: bool,
        unchecked: bool,
        started: u64,
        transition: Option<Transition>,
    },
    Rejected(Rejected),
}

fn decision(result: &Result<Permit, Rejected>) -> Decision {
    match result {
        Ok(permit) => Decision::Permit {
            generation: permit.generation(),
            probe: permit.is_probe(),
            unchecked: permit.kind() == PermitKind::Unchecked,
            started: permit.started().as_millis(),
            transition: permit.transition(),
        },
        Err(rejected) => Decision::Rejected(*rejected),
    }
}

/// Drives `steps` through `expected` and `actual`, which both read `clock`, and fails at the
/// first step where their decisions, transitions or snapshots differ.
pub fn check(
    clock: &ManualClock,
    expected: &dyn Subject,
    actual: &dyn Subject,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let mut held: Vec<(Permit, Permit)> = Vec::new();
    let start = clock.now().as_millis();
    for (index, step) in steps.iter().enumerate() {
        match step {
            Step::Advance(ms) => clock.advance(Duration::from_millis(*ms)),
            Step::StepBack(ms) => {
                let now = clock.now().as_millis();
                clock.set(Timestamp::from_millis(now.saturating_sub(*ms).max(start)));
            }
            Step::Acquire => {
                let (want, got) = (expected.acquire(), actual.acquire());
                prop_assert_eq!(
                    decision(&want),
                    decision(&got),
                    "step {}: {:?}",
                    index,
                    step
                );
                if let (Ok(want), Ok(got)) = (want, got) {
                    held.push((want, got));
                }
            }
            Step::Record(which, outcome) => {
                if held.is_empty() {
                    continue;
                }
                let (want, got) = held.swap_remove(which % held.len());
                let want: Recorded = expected.record(want, (*outcome).into());
                let got: Recorded = actual.record(got, (*outcome).into());
                prop_assert_eq!(want, got, "step {}: {:?}", index, step);
            }
            Step::RecordRetryAfter(which, outcome, ms) => {
                if held.is_empty() {
                    continue;
                }
                let (want, got) = held.swap_remove(which % held.len());
                let wait = Duration::from_millis(*ms);
                let want: Recorded =
                    expected.record(want, Report::new(*outcome).with_retry_after(wait));
                let got: Recorded =
                    actual.record(got, Report::new(*outcome).with_retry_after(wait));
                prop_assert_eq!(want, got, "step {}: {:?}", index, step);
            }
            Step::Operate(action) => {
                prop_assert_eq!(
                    expected.operate(*action),
                    actual.operate(*action),
                    "step {}: {:?}",
                    index,
                    step
                );
            }
        }
        let (want, got): (Snapshot, Snapshot) = (expected.snapshot(), actual.snapshot());
        prop_assert_eq!(want, got, "snapshot after step {}: {:?}", index, step);
    }
    Ok(())
}
