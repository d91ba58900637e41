//! The behaviour every store must show, written once. Expand [`conformance_suite!`](crate::conformance_suite)
//! in a store's test binary to get one `#[test]` per case.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breaker_core::{
    Action, Counts, Outcome, Override, Permit, Policy, RejectReason, Report, State, Transition,
    TripCause,
};

use crate::{Fixture, Subject};

fn policy() -> breaker_core::PolicyBuilder {
    Policy::builder()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn call(breaker: &dyn Subject, outcome: Outcome) -> Option<Transition> {
    let permit = breaker
        .acquire()
        .expect("the breaker should admit this call");
    breaker.record(permit, outcome.into()).transition
}

fn is_trip(transition: Option<Transition>) -> bool {
    matches!(transition, Some(Transition::Tripped { .. }))
}

/// With `minimum_failures = 3` and `failure_rate = 50`: failure, failure, success, success
/// leaves it closed; one more failure (3 of 5, 60 %) opens it.
pub fn trips_on_rate_and_minimum(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(3)
        .failure_rate(50.0)
        .build()
        .unwrap();
    let b = f.breaker("rate-and-minimum", p);
    for outcome in [
        Outcome::Failure,
        Outcome::Failure,
        Outcome::Success,
        Outcome::Success,
    ] {
        assert_eq!(call(&*b, outcome), None);
    }
    assert_eq!(b.snapshot().state, State::Closed);
    let tripped = call(&*b, Outcome::Failure);
    let Some(Transition::Tripped {
        cause, generation, ..
    }) = tripped
    else {
        panic!("expected a trip, got {tripped:?}");
    };
    assert_eq!(
        cause,
        TripCause::Threshold(Counts {
            calls: 5,
            failures: 3
        })
    );
    assert_eq!(generation, 1);
    assert_eq!(b.snapshot().state, State::Open);
}

/// The rate rule at its boundary: 2 failures in 5 calls is under 50 %, 3 in 6 is exactly 50 %.
pub fn rate_boundary_is_exact(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .failure_rate(50.0)
        .build()
        .unwrap();
    let b = f.breaker("rate-boundary", p);
    for _ in 0..3 {
        call(&*b, Outcome::Success);
    }
    assert_eq!(call(&*b, Outcome::Failure), None, "1 of 4");
    assert_eq!(call(&*b, Outcome::Failure), None, "2 of 5");
    assert!(is_trip(call(&*b, Outcome::Failure)), "3 of 6 is 50 %");
}

/// `minimum_calls` gates on volume even when every call failed.
pub fn minimum_calls_gates_volume(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .minimum_calls(4)
        .failure_rate(50.0)
        .build()
        .unwrap();
    let b = f.breaker("minimum-calls", p);
    for _ in 0..3 {
        assert_eq!(call(&*b, Outcome::Failure), None);
    }
    assert!(is_trip(call(&*b, Outcome::Failure)));
}

/// Three failures with `minimum_failures = 2` open it; a success reported while open (from a
/// permit given before the trip) does not close it.
pub fn late_success_does_not_close(f: &dyn Fixture) {
    let p = policy().minimum_failures(2).build().unwrap();
    let b = f.breaker("late-success", p);
    let permits: Vec<Permit> = (0..4).map(|_| b.acquire().unwrap()).collect();
    let mut permits = permits.into_iter();
    assert_eq!(
        b.record(permits.next().unwrap(), Outcome::Failure.into())
            .transition,
        None
    );
    assert!(is_trip(
        b.record(permits.next().unwrap(), Outcome::Failure.into())
            .transition
    ));
    assert_eq!(
        b.record(permits.next().unwrap(), Outcome::Failure.into())
            .transition,
        None
    );
    assert_eq!(
        b.record(permits.next().unwrap(), Outcome::Success.into())
            .transition,
        None
    );
    assert_eq!(b.snapshot().state, State::Open);
    assert_eq!(b.acquire().unwrap_err().reason(), RejectReason::Open);
}

/// Open for exactly `open_for`, then exactly `half_open_probes` probes at once.
pub fn open_for_exactly_then_probes(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .open_for(secs(30))
        .half_open_probes(3)
        .build()
        .unwrap();
    let b = f.breaker("open-then-probes", p);
    assert!(is_trip(call(&*b, Outcome::Failure)));
    f.clock().advance(Duration::from_millis(29_999));
    let rejected = b.acquire().unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Open);
    assert_eq!(rejected.retry_after(), Duration::from_millis(1));
    f.clock().advance(Duration::from_millis(1));
    let probes: Vec<Permit> = (0..3).map(|_| b.acquire().expect("a probe slot")).collect();
    assert!(probes.iter().all(Permit::is_probe));
    assert!(matches!(
        probes[0].transition(),
        Some(Transition::HalfOpened { generation: 1 })
    ));
    assert!(probes[1..].iter().all(|probe| probe.transition().is_none()));
    let busy = b.acquire().unwrap_err();
    assert_eq!(busy.reason(), RejectReason::ProbesBusy);
    assert_eq!(
        busy.retry_after(),
        secs(30),
        "the first lease ends after probe_lease"
    );
    assert_eq!(b.snapshot().state, State::HalfOpen);
    assert_eq!(b.snapshot().probes_in_flight, 3);
    for probe in probes {
        b.record(probe, Outcome::Ignored.into());
    }
}

/// `successes_to_close` probe successes close the breaker and clear its window.
pub fn probe_successes_close_and_clear(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .open_for(secs(10))
        .successes_to_close(2)
        .build()
        .unwrap();
    let b = f.breaker("probes-close", p);
    call(&*b, Outcome::Failure);
    f.clock().advance(secs(10));
    assert_eq!(
        call(&*b, Outcome::Success),
        None,
        "one success is not enough"
    );
    assert_eq!(b.snapshot().state, State::HalfOpen);
    assert_eq!(
        call(&*b, Outcome::Success),
        Some(Transition::Closed { generation: 1 })
    );
    let snapshot = b.snapshot();
    assert_eq!(snapshot.state, State::Closed);
    assert_eq!(
        snapshot.counts,
        Counts::default(),
        "closing clears the window"
    );
    assert!(
        is_trip(call(&*b, Outcome::Failure)),
        "a fresh window counts again"
    );
}

/// With `ramp_up`, a close by probes lets a growing share of calls go (10 % at the close,
/// 55 % halfway, every call at the end), rejects the others with their own reason and a
/// `Retry-After`, and shows the ramp's end in the snapshot; a failure during the ramp trips as
/// usual; an operator's reset does not ramp.
pub fn a_close_by_probes_ramps_up(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .open_for(secs(10))
        .ramp_up(Some(secs(10)))
        .build()
        .unwrap();
    let b = f.breaker("ramp-up", p);
    call(&*b, Outcome::Failure);
    f.clock().advance(secs(10));
    assert!(matches!(
        call(&*b, Outcome::Success),
        Some(Transition::Closed { .. })
    ));
    let admitted = |calls: u32| -> u32 {
        (0..calls)
            .map(|_| match b.acquire() {
                Ok(permit) => {
                    b.record(permit, Outcome::Ignored.into());
                    1
                }
                Err(rejected) => {
                    assert_eq!(rejected.reason(), RejectReason::RampingUp);
                    assert!(rejected.retry_after() > Duration::ZERO);
                    0
                }
            })
            .sum()
    };
    assert_eq!(admitted(100), 10, "10 % at the close");
    f.clock().advance(secs(5));
    assert_eq!(admitted(100), 55, "55 % halfway");
    let snapshot = b.snapshot();
    assert_eq!(snapshot.state, State::Closed);
    assert!(snapshot.ramping_until.is_some());
    f.clock().advance(secs(5));
    assert_eq!(admitted(100), 100, "every call at the end");
    assert_eq!(b.snapshot().ramping_until, None);
    // Again: trip by threshold, probe, close; a failure during the ramp trips at once.
    call(&*b, Outcome::Failure);
    f.clock().advance(secs(10));
    call(&*b, Outcome::Success);
    assert!(
        is_trip(call(&*b, Outcome::Failure)),
        "trips during the ramp"
    );
    // A reset: every call goes at once.
    b.operate(Action::Reset);
    assert_eq!(admitted(20), 20, "a reset does not ramp");
}

/// A probe failure re-opens at once, each re-trip for `backoff` times longer, capped.
pub fn probe_failure_reopens_with_backoff(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .open_for(secs(10))
        .backoff(2.0)
        .max_open_for(secs(30))
        .build()
        .unwrap();
    let b = f.breaker("backoff", p);
    call(&*b, Outcome::Failure);
    for (generation, open_for) in [(2, 20), (3, 30), (4, 30)] {
        let waited = b.acquire().unwrap_err().retry_after();
        f.clock().advance(waited);
        let reopened = call(&*b, Outcome::Failure);
        let Some(Transition::Tripped {
            generation: g,
            open_for: d,
            cause,
            ..
        }) = reopened
        else {
            panic!("expected a re-trip, got {reopened:?}");
        };
        assert_eq!(
            (g, d, cause),
            (generation, secs(open_for), TripCause::ProbeFailed)
        );
    }
    // A close ends the streak: the next trip is back to `open_for`.
    f.clock().advance(secs(30));
    call(&*b, Outcome::Success);
    match call(&*b, Outcome::Failure) {
        Some(Transition::Tripped { open_for, .. }) => assert_eq!(open_for, secs(10)),
        other => panic!("expected a trip, got {other:?}"),
    }
}

/// A probe that never reports frees its slot after `probe_lease`.
pub fn crashed_probe_frees_its_slot(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .open_for(secs(5))
        .probe_lease(secs(20))
        .build()
        .unwrap();
    let b = f.breaker("crashed-probe", p);
    call(&*b, Outcome::Failure);
    f.clock().advance(secs(5));
    let lost = b.acquire().unwrap();
    assert!(lost.is_probe());
    drop(lost); // The probe crashed: its outcome never arrives.
    f.clock().advance(Duration::from_millis(19_999));
    assert_eq!(b.acquire().unwrap_err().reason(), RejectReason::ProbesBusy);
    f.clock().advance(Duration::from_millis(1));
    let probe = b.acquire().expect("the lease has ended");
    assert!(probe.is_probe());
    assert!(matches!(
        b.record(probe, Outcome::Success.into()).transition,
        Some(Transition::Closed { .. })
    ));
}

/// A report from an earlier cycle (its generation) changes nothing.
pub fn stale_generation_is_ignored(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .open_for(secs(1))
        .build()
        .unwrap();
    let b = f.breaker("stale-generation", p);
    let old = b.acquire().unwrap();
    call(&*b, Outcome::Failure);
    f.clock().advance(secs(1));
    call(&*b, Outcome::Success);
    assert_eq!(b.snapshot().state, State::Closed);
    let recorded = b.record(old, Outcome::Failure.into());
    assert_eq!(recorded.transition, None);
    assert_eq!(b.snapshot().counts, Counts::default());
}

/// Calls leave the window bucket by bucket.
pub fn window_slides(f: &dyn Fixture) {
    let p = policy()
        .window(secs(10))
        .buckets(10)
        .minimum_failures(3)
        .failure_rate(100.0)
        .build()
        .unwrap();
    let b = f.breaker("window-slides", p);
    call(&*b, Outcome::Failure);
    call(&*b, Outcome::Failure);
    f.clock().advance(secs(10));
    assert_eq!(b.snapshot().counts, Counts::default());
    assert_eq!(
        call(&*b, Outcome::Failure),
        None,
        "the first two have left the window"
    );
    assert_eq!(
        b.snapshot().counts,
        Counts {
            calls: 1,
            failures: 1
        }
    );
}

/// Ignored calls count nowhere.
pub fn ignored_counts_nowhere(f: &dyn Fixture) {
    let b = f.breaker("ignored", policy().minimum_failures(1).build().unwrap());
    for _ in 0..5 {
        assert_eq!(call(&*b, Outcome::Ignored), None);
    }
    assert_eq!(b.snapshot().counts, Counts::default());
}

/// A success slower than `slow_call` counts as a failure.
pub fn slow_calls_fail(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .slow_call(Some(Duration::from_millis(100)))
        .build()
        .unwrap();
    let b = f.breaker("slow-calls", p);
    let quick = b.acquire().unwrap();
    f.clock().advance(Duration::from_millis(100));
    let recorded = b.record(quick, Outcome::Success.into());
    assert_eq!(
        (recorded.outcome, recorded.elapsed),
        (Outcome::Success, Duration::from_millis(100))
    );
    let slow = b.acquire().unwrap();
    f.clock().advance(Duration::from_millis(101));
    let recorded = b.record(slow, Outcome::Success.into());
    assert_eq!(recorded.outcome, Outcome::Failure);
    assert!(is_trip(recorded.transition));
}

/// Forced-open rejects until it expires; forced-closed admits and counts but never trips.
pub fn overrides(f: &dyn Fixture) {
    let b = f.breaker("overrides", policy().minimum_failures(2).build().unwrap());
    b.operate(Action::Override {
        mode: Override::ForcedOpen,
        duration: Some(secs(60)),
    });
    let rejected = b.acquire().unwrap_err();
    assert_eq!(
        (rejected.reason(), rejected.retry_after()),
        (RejectReason::ForcedOpen, secs(60))
    );
    f.clock().advance(secs(60));
    assert_eq!(b.snapshot().override_mode, Override::Auto);
    assert!(b.acquire().is_ok_and(|permit| !permit.is_probe()));

    b.operate(Action::Override {
        mode: Override::ForcedClosed,
        duration: None,
    });
    for _ in 0..5 {
        assert_eq!(call(&*b, Outcome::Failure), None);
    }
    assert_eq!(
        b.snapshot().counts,
        Counts {
            calls: 5,
            failures: 5
        }
    );
    b.operate(Action::Override {
        mode: Override::Auto,
        duration: None,
    });
    assert!(is_trip(call(&*b, Outcome::Failure)));

    b.operate(Action::Override {
        mode: Override::ForcedClosed,
        duration: Some(secs(5)),
    });
    assert!(b.acquire().is_ok(), "forced closed admits while open");
    f.clock().advance(secs(5));
    assert_eq!(b.acquire().unwrap_err().reason(), RejectReason::Open);
}

/// Operator trip and reset.
pub fn operator_trip_and_reset(f: &dyn Fixture) {
    let b = f.breaker("operator", policy().open_for(secs(42)).build().unwrap());
    call(&*b, Outcome::Failure);
    let Transition::Tripped {
        open_for, cause, ..
    } = b.operate(Action::Trip).expect("a trip")
    else {
        panic!("trip reports a trip");
    };
    assert_eq!((open_for, cause), (secs(42), TripCause::Operator));
    assert_eq!(b.acquire().unwrap_err().reason(), RejectReason::Open);
    assert!(matches!(
        b.operate(Action::Reset),
        Some(Transition::Closed { .. })
    ));
    assert_eq!(b.operate(Action::Reset), None, "already closed");
    let snapshot = b.snapshot();
    assert_eq!(
        (snapshot.state, snapshot.counts),
        (State::Closed, Counts::default())
    );
}

/// A permit given before a close (an operator's reset of a closed breaker included) reports
/// into a cycle that has ended: its outcome changes nothing. Forced closed never trips, even on
/// a probe that was in flight when it was set.
pub fn cycles_end_at_close_and_forced_closed_never_trips(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .open_for(secs(1))
        .build()
        .unwrap();
    let b = f.breaker("cycles", p);
    let before_reset = b.acquire().unwrap();
    assert_eq!(b.operate(Action::Reset), None, "closed already");
    assert_eq!(
        b.record(before_reset, Outcome::Failure.into()).transition,
        None
    );
    assert_eq!(b.snapshot().counts, Counts::default());
    assert_eq!(b.snapshot().state, State::Closed);

    assert!(is_trip(call(&*b, Outcome::Failure)));
    f.clock().advance(secs(1));
    let probe = b.acquire().unwrap();
    assert!(probe.is_probe());
    b.operate(Action::Override {
        mode: Override::ForcedClosed,
        duration: None,
    });
    assert_eq!(b.record(probe, Outcome::Failure.into()).transition, None);
    let permit = b.acquire().expect("forced closed admits");
    b.record(permit, Outcome::Failure.into());
    b.operate(Action::Override {
        mode: Override::Auto,
        duration: None,
    });
    assert_ne!(
        b.snapshot().state,
        State::Open,
        "no trip while forced closed"
    );
}

/// A 429 or 503 with `Retry-After` opens the breaker until then (capped by `max_open_for`),
/// whatever the window says, reported as a trip with its cause; no wait changes nothing; with
/// `retry_after = ignore` it is an ordinary outcome.
pub fn retry_after_opens_until_then(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(100)
        .max_open_for(secs(3600))
        .build()
        .unwrap();
    let b = f.breaker("retry-after", p.clone());
    let permit = b.acquire().unwrap();
    assert_eq!(
        b.record(
            permit,
            Report::new(Outcome::Failure).with_retry_after(Duration::ZERO)
        )
        .transition,
        None,
        "no wait, no trip"
    );
    let permit = b.acquire().unwrap();
    let Some(Transition::Tripped {
        open_for, cause, ..
    }) = b
        .record(
            permit,
            Report::new(Outcome::Failure).with_retry_after(Duration::from_millis(2_500)),
        )
        .transition
    else {
        panic!("a Retry-After opens the breaker");
    };
    assert_eq!(
        (open_for, cause),
        (Duration::from_millis(2_500), TripCause::RetryAfter)
    );
    let rejected = b.acquire().unwrap_err();
    assert_eq!(
        (rejected.reason(), rejected.retry_after()),
        (RejectReason::Open, Duration::from_millis(2_500))
    );
    assert_eq!(b.snapshot().counts.calls, 2, "both calls counted");
    f.clock().advance(Duration::from_millis(2_500));
    assert!(b.acquire().unwrap().is_probe(), "then probes go as usual");

    let capped = f.breaker(
        "retry-after-capped",
        p.to_builder()
            .open_for(secs(1))
            .max_open_for(secs(10))
            .build()
            .unwrap(),
    );
    let permit = capped.acquire().unwrap();
    let recorded = capped.record(
        permit,
        Report::new(Outcome::Success).with_retry_after(secs(86_400)),
    );
    assert!(matches!(
        recorded.transition,
        Some(Transition::Tripped { open_for, .. }) if open_for == secs(10)
    ));

    let ignoring = f.breaker(
        "retry-after-ignored",
        p.to_builder()
            .retry_after(breaker_core::RetryAfterPolicy::Ignore)
            .build()
            .unwrap(),
    );
    let permit = ignoring.acquire().unwrap();
    assert_eq!(
        ignoring
            .record(
                permit,
                Report::new(Outcome::Failure).with_retry_after(secs(30))
            )
            .transition,
        None
    );
    assert_eq!(ignoring.snapshot().state, State::Closed);
}

/// Breakers of different names never share state, whatever the names.
pub fn names_are_distinct(f: &dyn Fixture) {
    let long = "x".repeat(10 * 1024);
    let names = [
        "",
        "{tag}",
        "a:b",
        "a",
        "b",
        "ünïcödé ✓",
        long.as_str(),
        "{",
        "}",
    ];
    let p = policy().minimum_failures(1).build().unwrap();
    let breakers: Vec<_> = names
        .iter()
        .map(|name| f.breaker(name, p.clone()))
        .collect();
    for (tripped, breaker) in breakers.iter().enumerate() {
        assert!(
            is_trip(call(&**breaker, Outcome::Failure)),
            "{:?}",
            names[tripped]
        );
        for other in &breakers[tripped + 1..] {
            assert_eq!(other.snapshot().state, State::Closed);
            assert_eq!(other.snapshot().counts, Counts::default());
        }
    }
}

/// Many threads recording at once: counts are exact (no lost update), and of many failures
/// racing past the threshold exactly one reports the trip.
pub fn concurrent_records_are_exact(f: &dyn Fixture) {
    let never = policy().minimum_failures(1 << 40).build().unwrap();
    let counted = f.breaker("concurrent-counts", never);
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let counted = &counted;
            scope.spawn(move || {
                for call_no in 0..500 {
                    let failed = (call_no + thread) % 2 == 0;
                    call(
                        &**counted,
                        if failed {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        },
                    );
                }
            });
        }
    });
    assert_eq!(
        counted.snapshot().counts,
        Counts {
            calls: 2000,
            failures: 1000
        }
    );

    let p = policy()
        .minimum_failures(50)
        .failure_rate(50.0)
        .build()
        .unwrap();
    let racing = f.breaker("concurrent-trip", p);
    let trips = AtomicUsize::new(0);
    let start = std::sync::Barrier::new(4);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (racing, trips, start) = (&racing, &trips, &start);
            scope.spawn(move || {
                let permits: Vec<Permit> = (0..100).map(|_| racing.acquire().unwrap()).collect();
                start.wait();
                for permit in permits {
                    if is_trip(racing.record(permit, Outcome::Failure.into()).transition) {
                        trips.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(
        trips.load(Ordering::SeqCst),
        1,
        "exactly one trip is reported"
    );
    assert_eq!(racing.snapshot().generation, 1);
}

/// When half-open, a crowd asking at once gets exactly `half_open_probes` probes.
pub fn half_open_crowd_gets_exact_probes(f: &dyn Fixture) {
    let p = policy()
        .minimum_failures(1)
        .open_for(secs(1))
        .half_open_probes(3)
        .build()
        .unwrap();
    let b = f.breaker("crowd", p);
    call(&*b, Outcome::Failure);
    f.clock().advance(secs(1));
    let granted = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let (b, granted) = (&b, &granted);
            scope.spawn(move || {
                for _ in 0..25 {
                    if let Ok(permit) = b.acquire() {
                        granted.lock().unwrap().push(permit);
                    }
                }
            });
        }
    });
    let granted = granted.into_inner().unwrap();
    assert_eq!(granted.len(), 3);
    let half_opened: HashSet<_> = granted.iter().filter_map(Permit::transition).collect();
    assert_eq!(
        half_opened.len(),
        1,
        "one caller reports the half-open transition"
    );
    for permit in granted {
        b.record(permit, Outcome::Ignored.into());
    }
}

/// One `#[test]` for each conformance case, given an expression that makes the [`Fixture`].
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:expr) => {
        $crate::conformance_suite!(@cases $fixture;
            trips_on_rate_and_minimum, rate_boundary_is_exact, minimum_calls_gates_volume,
            late_success_does_not_close, open_for_exactly_then_probes,
            probe_successes_close_and_clear, probe_failure_reopens_with_backoff,
            crashed_probe_frees_its_slot, stale_generation_is_ignored, window_slides,
            ignored_counts_nowhere, slow_calls_fail, overrides, operator_trip_and_reset,
            names_are_distinct, concurrent_records_are_exact, half_open_crowd_gets_exact_probes,
            cycles_end_at_close_and_forced_closed_never_trips, retry_after_opens_until_then,
            a_close_by_probes_ramps_up);
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let fixture = $fixture;
                $crate::conformance::$case(&fixture);
            }
        )*
    };
}
