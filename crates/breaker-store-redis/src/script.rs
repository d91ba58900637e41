//! The record-and-decide script (`breaker.lua`): its arguments and its replies.

use std::sync::LazyLock;
use std::time::Duration;

use breaker_core::store;
use breaker_core::store::remote::RemoteState;
use breaker_core::{
    Counts, MAX_DURATION, Outcome, Override, Permit, PermitKind, Policy, RejectReason, Rejected,
    Snapshot, State, StoreError, StoreErrorKind, Timestamp, Transition, TripCause,
};
use redis::{Script, ScriptInvocation, Value};

use crate::error::store_error;
use crate::keys::Keys;
use crate::settings::Settings;

mod argv;

use argv::{Num, Numbers, REPLY_VALUE, REPLY_VALUE_BYTES, SHORT, Short, argv, number};

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

const TAIL: usize = 10;

/// A script call with its arguments, ready to send.
pub(crate) fn invocation(
    keys: &Keys,
    now: Option<Timestamp>,
    policy: &Policy,
    settings: &Settings,
    op: Op,
) -> ScriptInvocation<'static> {
    // The store's settings keep idle_ttl between 1 ms and MAX_DURATION.
    let idle_ttl = u64::try_from(settings.idle_ttl.min(MAX_DURATION).as_millis())
        .unwrap_or(1)
        .max(1);
    let mut numbers = Numbers::new(policy, idle_ttl, settings.history_len);
    if let Some(now) = now {
        numbers.set(Num::Now, number(now.as_millis()));
    }
    let (name, text) = match op {
        Op::Acquire => ("acquire", ""),
        Op::Snapshot => ("snapshot", ""),
        Op::Window => ("window", ""),
        Op::Record {
            generation,
            ticket,
            outcome,
            retry_after_ms,
        } => {
            numbers
                .set(Num::Op1, number(generation))
                .set(Num::Op2, f64::from(u8::from(ticket.is_some())))
                .set(Num::Op3, number(ticket.unwrap_or(0)))
                .set(
                    Num::Op4,
                    match outcome {
                        Outcome::Success => 0.0,
                        Outcome::Failure => 1.0,
                        Outcome::Ignored => 2.0,
                    },
                )
                .set(Num::Op5, number(retry_after_ms));
            ("record", settings.reporter.as_str())
        }
        Op::Batch {
            generation,
            successes,
            failures,
        } => {
            numbers
                .set(Num::Op1, number(generation))
                .set(Num::Op2, number(successes))
                .set(Num::Op3, number(failures));
            ("batch", settings.reporter.as_str())
        }
        Op::Override { mode, duration_ms } => {
            numbers
                .set(
                    Num::Op1,
                    match mode {
                        Override::Auto => 0.0,
                        Override::ForcedOpen => 1.0,
                        Override::ForcedClosed => 2.0,
                    },
                )
                // Longer than i64 can say: forever, as ever.
                .set(
                    Num::Op2,
                    duration_ms
                        .filter(|ms| i64::try_from(*ms).is_ok())
                        .map_or(-1.0, number),
                );
            ("override", settings.actor.as_str())
        }
        Op::Trip => ("trip", settings.actor.as_str()),
        Op::Reset => ("reset", settings.actor.as_str()),
    };
    let mut call = BREAKER.prepare_invoke();
    call.key(&keys.state).key(&keys.history);
    for arg in argv(name, numbers, text) {
        call.arg(arg);
    }
    call
}

/// A script reply as the values the parsers below take, whichever form it has: one string
/// of packed values (see [`argv::REPLY_VALUE`]: the script's replies but the window's), or an
/// array of integers (the window's, or a script from before the packed replies). Anything
/// else (a length that is not a whole number of values, another kind of reply) is corrupt.
pub(crate) fn values(reply: Value, what: &str) -> Result<Vec<i64>, StoreError> {
    let shape = |problem: String| {
        StoreError::new(
            StoreErrorKind::Corrupt,
            format!("unexpected reply from the breaker script ({what}): {problem}"),
        )
    };
    match reply {
        Value::BulkString(bytes) => {
            if bytes.len() % REPLY_VALUE_BYTES != 0 {
                return Err(shape(format!(
                    "a packed reply of {} bytes, not a whole number of {REPLY_VALUE_BYTES}-byte \
                     values ('{REPLY_VALUE}')",
                    bytes.len()
                )));
            }
            bytes
                .chunks_exact(REPLY_VALUE_BYTES)
                .enumerate()
                .map(|(at, value)| {
                    let value = value
                        .try_into()
                        .map(f64::from_le_bytes)
                        .map_err(|err| shape(format!("value {at} cannot be read: {err}")))?;
                    whole_value(value).ok_or_else(|| {
                        shape(format!(
                            "value {at} is {value}, not a whole number of 64 bits"
                        ))
                    })
                })
                .collect()
        }
        Value::Array(items) => redis::from_redis_value(Value::Array(items))
            .map_err(|err| shape(format!("an array that is not of integers: {err}"))),
        Value::ServerError(err) => Err(store_error(err.into())),
        other => Err(shape(format!(
            "neither a packed string nor an array of integers: {other:?}"
        ))),
    }
}

/// A packed value as the integer Redis would have replied with: a whole number in `i64`'s
/// range (the script's are below 2^53 in size), or nothing.
#[allow(clippy::cast_possible_truncation)]
fn whole_value(value: f64) -> Option<i64> {
    // 2^63 as a double: every whole double from -2^63 to below 2^63 fits `i64`.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (value.fract() == 0.0 && (-LIMIT..LIMIT).contains(&value)).then_some(value as i64)
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
fn split(reply: &[i64], op_len: usize, what: &str) -> Result<(Vec<u64>, RemoteState), StoreError> {
    if reply.len() != op_len + TAIL {
        return Err(corrupt(what, reply));
    }
    let values: Option<Vec<u64>> = reply.iter().map(|v| whole(*v)).collect();
    let values = values.ok_or_else(|| corrupt(what, reply))?;
    let (head, tail) = values.split_at(op_len);
    let state =
        state_of(i64::try_from(tail[0] % 4).unwrap_or(-1)).ok_or_else(|| corrupt(what, reply))?;
    let override_mode = override_of(tail[0] / 4 % 4).ok_or_else(|| corrupt(what, reply))?;
    let values = tail;
    let mut tail = RemoteState::new(state, values[1], Timestamp::from_millis(values[3]));
    tail.open_until = Timestamp::from_millis(values[2]);
    // As the script's `free`: closed and no override, or forced closed for good.
    tail.free = match override_mode {
        Override::Auto => state == State::Closed,
        Override::ForcedClosed => values[8] == 0,
        Override::ForcedOpen => false,
    };
    tail.override_mode = override_mode;
    tail.epoch = values[4];
    tail.sequence = values[5];
    tail.repaired = values[0] / 16;
    tail.counts = Counts {
        calls: values[6],
        failures: values[7],
    };
    tail.override_until = Timestamp::from_millis(values[8]);
    tail.closed_by_probes = Timestamp::from_millis(values[9]);
    Ok((head.to_vec(), tail))
}

/// The reply to `acquire`, as a permit (started at `started`, by the caller's clock) or a
/// rejection.
pub(crate) fn parse_acquire(
    reply: &[i64],
    started: Timestamp,
) -> Result<(Result<Permit, Rejected>, RemoteState), StoreError> {
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

/// The values a transition takes at the head of a reply: one (0) when there is none, seven
/// otherwise.
fn transition_len(reply: &[i64]) -> usize {
    if reply.first() == Some(&0) { 1 } else { 7 }
}

/// A transition from its reply values (see [`transition_len`]), if any.
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
    if reply.len() != 7 + TAIL {
        return None;
    }
    match reply {
        [4, reporters, needed, ..] => Some((
            u32::try_from(*reporters).ok()?,
            u32::try_from(*needed).ok()?,
        )),
        _ => None,
    }
}

/// The reply to `record`, `batch`, `trip` or `reset`.
pub(crate) fn parse_transition(
    reply: &[i64],
    what: &str,
) -> Result<(Option<Transition>, RemoteState), StoreError> {
    // The short reply of the script's hot path, while closed (see [`Short`]). No transition,
    // closed, no override, nothing repaired; the open time, read only while open, is left
    // out.
    if let Ok(short) = <&[i64; SHORT]>::try_from(reply) {
        let value = |name: Short| short[name as usize];
        let full = [
            0,
            0,
            value(Short::Generation),
            0,
            value(Short::Now),
            value(Short::Epoch),
            value(Short::Sequence),
            value(Short::Calls),
            value(Short::Failures),
            0,
            value(Short::ClosedByProbes),
        ];
        let (_, tail) = split(&full, 1, what)?;
        return Ok((None, tail));
    }
    let (v, tail) = split(reply, transition_len(reply), what)?;
    Ok((transition(&v, reply, what)?, tail))
}

/// The reply to `override`.
pub(crate) fn parse_tail(reply: &[i64]) -> Result<RemoteState, StoreError> {
    Ok(split(reply, 0, "override")?.1)
}

/// The reply to `snapshot`.
pub(crate) fn parse_snapshot(reply: &[i64]) -> Result<(Snapshot, RemoteState), StoreError> {
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
    breaker_core::store::Circuit::new().snapshot(&policy, Timestamp::ZERO, &window)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tail: closed, generation 0, the script's clock at 1, epoch 1.
    const TAIL_CLOSED: [i64; TAIL] = [0, 0, 0, 1, 1, 0, 0, 0, 0, 0];

    fn reply(head: &[i64], tail: &[i64]) -> Vec<i64> {
        head.iter().chain(tail).copied().collect()
    }

    #[test]
    fn malformed_replies_are_corrupt_not_panics() {
        let started = Timestamp::from_millis(5);
        let mut bad_state = TAIL_CLOSED;
        bad_state[0] = 3;
        let mut bad_override = TAIL_CLOSED;
        bad_override[0] = 12;
        let mut negative = TAIL_CLOSED;
        negative[5] = -1;
        for reply in [
            vec![],
            vec![1, 0, 0, 0, 0, 0, 0, 0, 0],
            reply(&[9, 0, 0, 0, 0], &TAIL_CLOSED),
            reply(&[0, 0, 0, 7, 0], &TAIL_CLOSED),
            reply(&[1, 0, 0, 0, 0], &bad_state),
            reply(&[1, 0, 0, 0, 0], &bad_override),
            reply(&[1, 0, 0, 0, 0], &negative),
            reply(&[-1, 0, 0, 0, 0], &TAIL_CLOSED),
            reply(&[1, 0, 0, 0], &TAIL_CLOSED),
        ] {
            let err = parse_acquire(&reply, started).unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{reply:?}");
        }
        for head in [&[5, 0, 0, 0, 0, 0, 0][..], &[1, 0, 0, 0, 9, 0, 0], &[0, 0]] {
            assert!(parse_transition(&reply(head, &TAIL_CLOSED), "record").is_err());
        }
        assert!(parse_snapshot(&reply(&[0, 9, 0, 0, 0, 0, 0, 0], &TAIL_CLOSED)).is_err());
    }

    #[allow(clippy::cast_precision_loss)]
    fn packed(values: &[i64]) -> Value {
        Value::BulkString(
            values
                .iter()
                .flat_map(|v| (*v as f64).to_le_bytes())
                .collect(),
        )
    }

    #[test]
    fn a_reply_is_read_packed_or_as_an_array() {
        let short = [2, 600, 7, 8, 3, 1, 550];
        assert_eq!(values(packed(&short), "record").unwrap(), short);
        let array = Value::Array(short.iter().map(|v| Value::Int(*v)).collect());
        assert_eq!(values(array, "record").unwrap(), short);
        // Whole numbers come back as they went, negative ones too (refused later).
        let edges = [i64::MIN, -1, 0, 1, (1 << 53) - 1, 1 << 53, 1 << 62];
        assert_eq!(values(packed(&edges), "snapshot").unwrap(), edges);
        assert_eq!(values(packed(&[]), "record").unwrap(), Vec::<i64>::new());
        // The short reply, packed, is the same tail as the array was.
        let (none, tail) =
            parse_transition(&values(packed(&short), "record").unwrap(), "record").unwrap();
        assert_eq!(none, None);
        assert_eq!(
            (tail.generation, tail.now, tail.epoch, tail.sequence),
            (2, Timestamp::from_millis(600), 7, 8)
        );
        assert_eq!(
            (
                tail.counts.calls,
                tail.counts.failures,
                tail.closed_by_probes
            ),
            (3, 1, Timestamp::from_millis(550))
        );
    }

    #[test]
    fn a_reply_of_another_shape_is_corrupt_not_a_panic() {
        let mut cases = vec![
            Value::Nil,
            Value::Int(1),
            Value::Okay,
            Value::SimpleString("OK".into()),
            Value::Array(vec![Value::Int(1), Value::Nil]),
            Value::Array(vec![Value::Int(1), Value::Array(vec![])]),
            Value::Array(vec![Value::BulkString(b"x:y".to_vec())]),
        ];
        // Wrong lengths: not a whole number of 8-byte values.
        for len in [1, 7, 9, 55, 57, 87] {
            cases.push(Value::BulkString(vec![0xa5; len]));
        }
        for reply in cases {
            let err = values(reply.clone(), "record").unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{reply:?}");
            assert!(err.to_string().contains("(record)"), "{err}");
        }
        let err = values(Value::BulkString(vec![0; 13]), "record").unwrap_err();
        assert!(err.to_string().contains("13 bytes"), "{err}");
        // Values that are no whole number in i64's range: NaN, infinities, fractions, 2^63.
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.5,
            -1.25,
            9.3e18,
            -1e300,
        ] {
            let mut bytes: Vec<u8> = [1.0_f64; 7].iter().flat_map(|v| v.to_le_bytes()).collect();
            bytes[8 * 3..8 * 4].copy_from_slice(&bad.to_le_bytes());
            let err = values(Value::BulkString(bytes), "record").unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{bad}");
            assert!(err.to_string().contains("value 3"), "{err}");
        }
        // Garbage bytes of a right length: corrupt, or numbers the parsers refuse.
        for byte in [0x00, 0x12, 0x7f, 0xa5, 0xff] {
            for len in [7, 11, 17, 18] {
                let bytes = Value::BulkString(vec![byte; 8 * len]);
                let Ok(reply) = values(bytes, "record") else {
                    continue;
                };
                if reply.iter().all(|v| *v == 0) {
                    continue;
                }
                assert!(parse_transition(&reply, "record").is_err(), "{byte} {len}");
                assert!(parse_snapshot(&reply).is_err(), "{byte} {len}");
            }
        }
    }

    #[test]
    fn replies_become_core_values() {
        let started = Timestamp::from_millis(5);
        let (probe, tail) = parse_acquire(
            &reply(&[2, 9, 1, 0, 0], &[2, 3, 100, 50, 1, 1, 0, 0, 0, 0]),
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
        assert!(!tail.free);
        let (tripped, tail) = parse_transition(
            &reply(
                &[1, 4, 900, 300, 1, 10, 5],
                &[1, 4, 900, 600, 1, 1, 10, 5, 0, 0],
            ),
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
        assert_eq!((tail.state, tail.counts.calls), (State::Open, 10));
        // No transition: one value, then the tail; state, override and repaired in one.
        let (none, tail) = parse_transition(
            &reply(&[0], &[2 * 16, 2, 0, 600, 7, 8, 3, 1, 0, 550]),
            "record",
        )
        .unwrap();
        assert_eq!(none, None);
        assert_eq!(
            (tail.generation, tail.now, tail.epoch, tail.sequence),
            (2, Timestamp::from_millis(600), 7, 8)
        );
        assert_eq!((tail.state, tail.repaired), (State::Closed, 2));
        assert_eq!((tail.counts.calls, tail.counts.failures), (3, 1));
        assert_eq!(tail.closed_by_probes, Timestamp::from_millis(550));
        assert!(tail.free);
        // The hot path's short reply: no transition, closed, no override.
        let (none, short) = parse_transition(&[2, 600, 7, 8, 3, 1, 550], "record").unwrap();
        assert_eq!(none, None);
        let mut unrepaired = tail;
        unrepaired.repaired = 0;
        assert_eq!(short, unrepaired);
        assert!(parse_transition(&[2, 600, 7, -8, 3, 1, 550], "record").is_err());
        assert_eq!(quorum_short(&[4, 2, 0, 600, 7, 8, 3]), None);
        // Forced closed for good is free; until a time, or forced open, is not.
        for (mode, until, free) in [(2, 0, true), (2, 900, false), (1, 0, false)] {
            let (_, tail) = parse_transition(
                &reply(&[0], &[1 + 4 * mode, 2, 0, 600, 7, 8, 0, 0, until, 0]),
                "record",
            )
            .unwrap();
            assert_eq!(tail.state, State::Open);
            assert_eq!(tail.free, free, "override {mode} until {until}");
        }
    }

    /// The script unpacks the numbers into locals named as [`Num::NAMES`], in that order, and
    /// names the `ARGV` positions as [`argv`] does: the layout is declared once.
    #[test]
    fn the_script_takes_the_arguments_in_the_declared_order() {
        let script = include_str!("breaker.lua");
        let positions = format!(
            "\nlocal ARG_OP, ARG_NUMBERS = {}, {}\n",
            argv::ARG_OP,
            argv::ARG_NUMBERS
        );
        assert!(script.contains(&positions), "{positions}");
        // Every `local a, b, ... = struct.unpack('<dd...', ARGV[ARG_NUMBERS][, offset])` names
        // the numbers from its offset on, and together they name them all.
        let mut named = vec![false; argv::NUMBERS];
        for (at, _) in script.match_indices("struct.unpack('<") {
            let start = script[..at].rfind("local ").expect("a local") + "local ".len();
            let Some(left) = script[start..at].trim_end().strip_suffix('=') else {
                continue;
            };
            let statement = &script[start..];
            let (format, rest) = script[at + "struct.unpack('<".len()..]
                .split_once('\'')
                .expect("a format");
            let Some(rest) = rest.strip_prefix(", ARGV[ARG_NUMBERS]") else {
                continue;
            };
            let offset: usize = match rest.strip_prefix(", ") {
                None => 1,
                Some(rest) => rest
                    .split_once(')')
                    .and_then(|(offset, _)| offset.parse().ok())
                    .expect("an offset"),
            };
            assert_eq!(offset % 8, 1, "{statement:.80}");
            let first = offset / 8;
            let unpacked: Vec<&str> = left
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .collect();
            assert_eq!(format, "d".repeat(unpacked.len()), "{statement:.80}");
            assert_eq!(
                unpacked,
                Num::NAMES[first..first + unpacked.len()],
                "{statement:.80}"
            );
            named[first..first + unpacked.len()].fill(true);
        }
        assert!(named.iter().all(|named| *named), "{named:?}");
        let text = format!("string.sub(ARGV[ARG_NUMBERS], {})", 8 * argv::NUMBERS + 1);
        assert!(script.contains(&text), "{text}");
        // The replies: packed as declared, the hot path's short one naming its values in
        // the order of [`Short::NAMES`].
        let value = argv::REPLY_VALUE;
        let short = format!(
            "\nlocal SHORT = '<{}' -- {}\n",
            value.repeat(SHORT),
            Short::NAMES.join(" ")
        );
        assert!(script.contains(&short), "{short}");
        let packs = format!("struct.pack(SHORT, {})", Short::NAMES.join(", "));
        assert_eq!(script.matches(&packs).count(), 2, "{packs}");
        let long = format!("\nlocal NO_TRANSITION = '<{}'\n", value.repeat(1 + TAIL));
        assert!(script.contains(&long), "{long}");
        let general = format!("struct.pack('<' .. string.rep('{value}', #reply), unpack(reply))");
        assert!(script.contains(&general), "{general}");
        assert_eq!(argv::REPLY_VALUE_BYTES, 8);
        let args = argv::argv("record", Numbers::new(&Policy::default(), 1, 0), "me");
        assert_eq!(args[argv::ARG_OP - 1], b"record");
        assert_eq!(args[argv::ARG_NUMBERS - 1].len(), 8 * argv::NUMBERS + 2);
        assert!(args[argv::ARG_NUMBERS - 1].ends_with(b"me"));
    }
}
