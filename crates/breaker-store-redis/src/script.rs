//! The record-and-decide script (`breaker.lua`): its arguments and its replies.

use std::sync::LazyLock;
use std::time::Duration;

use breaker_core::store::{self, PolicyMillis};
use breaker_core::{
    Counts, MAX_DURATION, Outcome, Override, Permit, PermitKind, Policy, RejectReason, Rejected,
    Snapshot, State, StoreError, StoreErrorKind, Timestamp, Transition, TripCause,
};
use redis::{Script, ScriptInvocation};

use crate::engine::Settings;
use crate::keys::Keys;

static BREAKER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("breaker.lua")));

/// What one script call does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Acquire,
    Record {
        generation: u64,
        ticket: Option<u64>,
        outcome: Outcome,
        /// How long the backend asked every caller to wait (0: it did not).
        retry_after_ms: u64,
    },
    Snapshot,
    Trip,
    Reset,
    Override {
        mode: Override,
        duration_ms: Option<u64>,
    },
    /// The window's live buckets.
    Window,
    /// Outcomes of ordinary calls of one generation, added up in the process.
    Batch {
        generation: u64,
        successes: u64,
        failures: u64,
    },
}

/// The state every reply ends with, for the caller's cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tail {
    pub(crate) state: State,
    pub(crate) generation: u64,
    pub(crate) open_until: Timestamp,
    /// `Circuit::free_generation` is `Some(generation)`.
    pub(crate) free: bool,
    /// The script's clock.
    pub(crate) now: Timestamp,
    /// The operator override in force.
    pub(crate) override_mode: Override,
    /// This life of the breaker's key: another epoch means the key was lost and made again.
    pub(crate) epoch: u64,
    /// Writes to the key in this epoch: a larger one is a newer state.
    pub(crate) sequence: u64,
    /// How many fields held garbage and were repaired in place.
    pub(crate) repaired: u64,
    /// The window's running totals as of the reply.
    pub(crate) counts: Counts,
    /// When the override in force ends, by the script's clock (`ZERO`: never, or none).
    pub(crate) override_until: Timestamp,
    /// When probes last closed the breaker, by the script's clock (`ZERO`: the last close
    /// was a reset): a ramp may run from then (policy `ramp_up`).
    pub(crate) closed_by_probes: Timestamp,
}

const TAIL: usize = 13;

/// A script call with its arguments, ready to send.
pub(crate) fn invocation(
    keys: &Keys,
    now: Option<Timestamp>,
    policy: &Policy,
    settings: &Settings,
    op: Op,
) -> ScriptInvocation<'static> {
    let idle_ttl = settings.idle_ttl;
    let mut call = BREAKER.prepare_invoke();
    call.key(&keys.state).key(&keys.history);
    call.arg(match op {
        Op::Acquire => "acquire",
        Op::Record { .. } => "record",
        Op::Snapshot => "snapshot",
        Op::Trip => "trip",
        Op::Reset => "reset",
        Op::Override { .. } => "override",
        Op::Window => "window",
        Op::Batch { .. } => "batch",
    });
    match now {
        Some(now) => call.arg(now.as_millis()),
        None => call.arg(""),
    };
    call.arg(policy.bucket_millis())
        .arg(policy.buckets())
        // Rust's shortest round-trip formatting: Lua's tonumber reads back the same double.
        .arg(policy.failure_rate().to_string())
        .arg(policy.minimum_failures())
        .arg(policy.minimum_calls())
        .arg(policy.open_for_millis())
        .arg(policy.half_open_probes())
        .arg(policy.probe_lease_millis())
        .arg(policy.successes_to_close())
        .arg(policy.backoff().to_string())
        .arg(u64::try_from(policy.max_open_for().as_millis()).unwrap_or(u64::MAX))
        // The store's settings keep idle_ttl between 1 ms and MAX_DURATION.
        .arg(
            u64::try_from(idle_ttl.min(MAX_DURATION).as_millis())
                .unwrap_or(1)
                .max(1),
        )
        .arg(settings.history_len);
    match op {
        Op::Record {
            generation,
            ticket,
            outcome,
            retry_after_ms,
        } => {
            call.arg(generation)
                .arg(u8::from(ticket.is_some()))
                .arg(ticket.unwrap_or(0))
                .arg(match outcome {
                    Outcome::Success => 0,
                    Outcome::Failure => 1,
                    Outcome::Ignored => 2,
                })
                .arg(retry_after_ms)
                .arg(&settings.reporter)
                .arg(policy.minimum_reporters());
        }
        Op::Override { mode, duration_ms } => {
            call.arg(match mode {
                Override::Auto => 0,
                Override::ForcedOpen => 1,
                Override::ForcedClosed => 2,
            })
            .arg(duration_ms.map_or(-1, |ms| i64::try_from(ms).unwrap_or(-1)))
            .arg(&settings.actor);
        }
        Op::Trip | Op::Reset => {
            call.arg(&settings.actor);
        }
        Op::Batch {
            generation,
            successes,
            failures,
        } => {
            call.arg(generation)
                .arg(successes)
                .arg(failures)
                .arg(&settings.reporter)
                .arg(policy.minimum_reporters());
        }
        Op::Acquire | Op::Snapshot | Op::Window => {}
    }
    call
}

fn corrupt(what: &str, reply: &[i64]) -> StoreError {
    StoreError::new(
        StoreErrorKind::Corrupt,
        format!("unexpected reply from the breaker script ({what}): {reply:?}"),
    )
}

fn whole(value: i64) -> Option<u64> {
    u64::try_from(value).ok()
}

fn state_of(code: i64) -> Option<State> {
    match code {
        0 => Some(State::Closed),
        1 => Some(State::Open),
        2 => Some(State::HalfOpen),
        _ => None,
    }
}

fn override_of(code: u64) -> Option<Override> {
    match code {
        0 => Some(Override::Auto),
        1 => Some(Override::ForcedOpen),
        2 => Some(Override::ForcedClosed),
        _ => None,
    }
}

/// Splits a reply into the op's values and the tail.
fn split(reply: &[i64], op_len: usize, what: &str) -> Result<(Vec<u64>, Tail), StoreError> {
    if reply.len() != op_len + TAIL {
        return Err(corrupt(what, reply));
    }
    let values: Option<Vec<u64>> = reply.iter().map(|v| whole(*v)).collect();
    let values = values.ok_or_else(|| corrupt(what, reply))?;
    let (head, tail) = values.split_at(op_len);
    let tail = Tail {
        state: state_of(reply[op_len]).ok_or_else(|| corrupt(what, reply))?,
        generation: tail[1],
        open_until: Timestamp::from_millis(tail[2]),
        free: tail[3] == 1,
        now: Timestamp::from_millis(tail[4]),
        override_mode: override_of(tail[5]).ok_or_else(|| corrupt(what, reply))?,
        epoch: tail[6],
        sequence: tail[7],
        repaired: tail[8],
        counts: Counts {
            calls: tail[9],
            failures: tail[10],
        },
        override_until: Timestamp::from_millis(tail[11]),
        closed_by_probes: Timestamp::from_millis(tail[12]),
    };
    Ok((head.to_vec(), tail))
}

/// The reply to `acquire`, as a permit (started at `started`, by the caller's clock) or a
/// rejection.
pub(crate) fn parse_acquire(
    reply: &[i64],
    started: Timestamp,
) -> Result<(Result<Permit, Rejected>, Tail), StoreError> {
    let (v, tail) = split(reply, 5, "acquire")?;
    let decision = match v[0] {
        0 => {
            let reason = match v[3] {
                1 => RejectReason::Open,
                2 => RejectReason::ProbesBusy,
                3 => RejectReason::ForcedOpen,
                _ => return Err(corrupt("acquire", reply)),
            };
            Err(Rejected::new(reason, Duration::from_millis(v[4])))
        }
        1 => Ok(store::permit(
            tail.generation,
            PermitKind::Normal,
            started,
            false,
        )),
        2 => Ok(store::permit(
            tail.generation,
            PermitKind::Probe { ticket: v[1] },
            started,
            v[2] == 1,
        )),
        _ => return Err(corrupt("acquire", reply)),
    };
    Ok((decision, tail))
}

/// A transition from its seven reply values, if any.
fn transition(v: &[u64], reply: &[i64], what: &str) -> Result<Option<Transition>, StoreError> {
    Ok(match v[0] {
        0 => None,
        1 => Some(Transition::Tripped {
            generation: v[1],
            open_until: Timestamp::from_millis(v[2]),
            open_for: Duration::from_millis(v[3]),
            cause: match v[4] {
                1 => TripCause::Threshold(Counts {
                    calls: v[5],
                    failures: v[6],
                }),
                2 => TripCause::ProbeFailed,
                3 => TripCause::Operator,
                4 => TripCause::RetryAfter,
                _ => return Err(corrupt(what, reply)),
            },
        }),
        3 => Some(Transition::Closed { generation: v[1] }),
        // The trip rule was met but the quorum of reporters is short: no transition (see
        // `quorum_short`).
        4 => None,
        _ => return Err(corrupt(what, reply)),
    })
}

/// In a reply to `record` or `batch`: the trip rule was met but the window's failures came
/// from too few reporters, as (reporters, needed).
pub(crate) fn quorum_short(reply: &[i64]) -> Option<(u32, u32)> {
    match reply {
        [4, reporters, needed, ..] => Some((
            u32::try_from(*reporters).ok()?,
            u32::try_from(*needed).ok()?,
        )),
        _ => None,
    }
}

/// The reply to `record`, `trip` or `reset`.
pub(crate) fn parse_transition(
    reply: &[i64],
    what: &str,
) -> Result<(Option<Transition>, Tail), StoreError> {
    let (v, tail) = split(reply, 7, what)?;
    Ok((transition(&v, reply, what)?, tail))
}

/// The reply to `override`.
pub(crate) fn parse_tail(reply: &[i64]) -> Result<Tail, StoreError> {
    Ok(split(reply, 0, "override")?.1)
}

/// The reply to `snapshot`.
pub(crate) fn parse_snapshot(reply: &[i64]) -> Result<(Snapshot, Tail), StoreError> {
    let (v, tail) = split(reply, 8, "snapshot")?;
    let mut snapshot = fresh_snapshot();
    snapshot.state = state_of(reply[0]).ok_or_else(|| corrupt("snapshot", reply))?;
    snapshot.override_mode = override_of(v[1]).ok_or_else(|| corrupt("snapshot", reply))?;
    snapshot.override_until = (v[2] != 0).then(|| Timestamp::from_millis(v[2]));
    snapshot.generation = v[3];
    snapshot.open_until = (v[4] != 0).then(|| Timestamp::from_millis(v[4]));
    snapshot.counts = Counts {
        calls: v[5],
        failures: v[6],
    };
    snapshot.probes_in_flight = u32::try_from(v[7]).unwrap_or(u32::MAX);
    Ok((snapshot, tail))
}

/// The reply to `window`: each live bucket's number, calls and failures.
pub(crate) fn parse_window(reply: &[i64]) -> Result<Vec<[u64; 3]>, StoreError> {
    let body = reply
        .len()
        .checked_sub(TAIL)
        .filter(|len| len % 3 == 0)
        .ok_or_else(|| corrupt("window", reply))?;
    let (values, _) = split(reply, body, "window")?;
    Ok(values
        .chunks_exact(3)
        .map(|bucket| [bucket[0], bucket[1], bucket[2]])
        .collect())
}

/// `Snapshot` is non-exhaustive: start from the core's view of a fresh breaker.
fn fresh_snapshot() -> Snapshot {
    let policy = Policy::default();
    let window = breaker_core::store::BucketWindow::new(&policy);
    breaker_core::Circuit::new().snapshot(&policy, Timestamp::ZERO, &window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_replies_are_corrupt_not_panics() {
        let started = Timestamp::from_millis(5);
        for reply in [
            vec![],
            vec![1, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
            vec![0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
            vec![1, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
            vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 1, 1, 0, 0, 0, 0, 0],
            vec![-1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
        ] {
            let err = parse_acquire(&reply, started).unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{reply:?}");
        }
        assert!(
            parse_transition(
                &[5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
                "record"
            )
            .is_err()
        );
        assert!(
            parse_snapshot(&[
                0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0
            ])
            .is_err()
        );
    }

    #[test]
    fn replies_become_core_values() {
        let started = Timestamp::from_millis(5);
        let (probe, tail) = parse_acquire(
            &[2, 9, 1, 0, 0, 2, 3, 100, 0, 50, 0, 1, 1, 0, 0, 0, 0, 0],
            started,
        )
        .unwrap();
        let probe = probe.unwrap();
        assert_eq!(probe.kind(), PermitKind::Probe { ticket: 9 });
        assert_eq!(
            probe.transition(),
            Some(Transition::HalfOpened { generation: 3 })
        );
        assert_eq!(tail.state, State::HalfOpen);
        let (tripped, _) = parse_transition(
            &[
                1, 4, 900, 300, 1, 10, 5, 1, 4, 900, 0, 600, 0, 1, 1, 0, 0, 0, 0, 0,
            ],
            "record",
        )
        .unwrap();
        assert!(matches!(
            tripped,
            Some(Transition::Tripped {
                cause: TripCause::Threshold(Counts {
                    calls: 10,
                    failures: 5
                }),
                ..
            })
        ));
    }
}
