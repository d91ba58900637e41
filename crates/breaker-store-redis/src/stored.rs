//! A breaker's stored state read with plain commands and decided in Rust, by the rules of
//! the script's `snapshot` and `window` (breaker.lua), for operators' reads: listings,
//! `status`, the dashboard and `/metrics`. No script runs and nothing is written, so reading
//! the fleet costs Redis a few `HMGET`s a breaker.
//!
//! A read takes up to two steps: [`FIELDS`] of the breaker's hash (with the server's `TIME`
//! when the store does not inject time), then, when the window moved since the last write,
//! the buckets that left it ([`Stored::needed`]). A value that does not parse makes the
//! breaker unreadable, as the script's read says of garbage; the next call through it
//! repairs it. The differential test in tests/reads.rs holds these answers equal to the
//! script's.

use breaker_core::store::PolicyMillis;
use breaker_core::{
    Counts, Override, Policy, Snapshot, State, StoreError, StoreErrorKind, Timestamp,
};

/// The fields the first step reads, in this order: the packed state (`s`, `x`), the probe
/// leases (`pr`), and `st`, which only a key written by the layout before the packed state
/// holds.
pub(crate) const FIELDS: [&str; 4] = ["s", "x", "pr", "st"];

/// Bytes of the packed fields, and the widths of `s`'s whole numbers (breaker.lua's `HOT`:
/// flags gen ou ep sq tc tf wb xp ca).
const HOT_BYTES: usize = 60;
const HOT_WIDTHS: [usize; 10] = [1, 6, 7, 7, 6, 6, 6, 7, 7, 7];
const COLD_BYTES: usize = 40;
/// Whole numbers the script keeps stay below this (doubles are exact below it).
const MAX_WHOLE: u64 = 1 << 53;
/// What `pr` may hold (breaker.lua's `PROBES_MOST` and `PROBES_BYTES`).
const PROBES_MOST: usize = 1_000;
const PROBES_BYTES: usize = 34_000;

/// A field as a read returns it: missing, or its bytes.
pub(crate) type Field = Option<Vec<u8>>;

/// What the first step found of a breaker's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    /// 0 closed, 1 open, 2 half-open.
    st: u64,
    /// 0 auto, 1 forced open, 2 forced closed, and when it ends (0: never, or none).
    ov: u64,
    ovu: u64,
    generation: u64,
    open_until: u64,
    epoch: u64,
    /// The window's running totals, and the bucket they were last brought to.
    tc: u64,
    tf: u64,
    wb: u64,
    /// When probes last closed the breaker (0: the last close was a reset).
    ca: u64,
    /// The probes' leases' ends.
    probes: Vec<u64>,
}

/// What the second step must read: the buckets that left the window since the totals were
/// last brought to a bucket, or every bucket (the totals counted again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Needed {
    Nothing,
    Gone(Vec<u64>),
    All,
}

impl Needed {
    /// The bucket fields to read (`t<i>`, `c<i>`, `f<i>` of each slot), in the order
    /// [`Stored::snapshot`] takes their values.
    pub(crate) fn fields(&self, buckets: u64) -> Vec<String> {
        let slots: Vec<u64> = match self {
            Needed::Nothing => Vec::new(),
            Needed::Gone(gone) => gone.iter().map(|bucket| bucket % buckets).collect(),
            Needed::All => (0..buckets).collect(),
        };
        slots
            .iter()
            .flat_map(|slot| [format!("t{slot}"), format!("c{slot}"), format!("f{slot}")])
            .collect()
    }
}

fn unreadable(name: &str, what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Corrupt,
        format!(
            "breaker {name:?}: {what} in its stored state cannot be read (garbage); the next \
             call through the breaker repairs it"
        ),
    )
}

/// A whole number as the script's `whole()` reads text: missing is 0; anything else that is
/// not a whole number in [0, 2^53) (or is longer than 16 characters) is garbage (`None`).
fn whole(field: &Field) -> Option<u64> {
    let Some(bytes) = field else {
        return Some(0);
    };
    if bytes.len() > 16 {
        return None;
    }
    let number: f64 = std::str::from_utf8(bytes).ok()?.trim().parse().ok()?;
    (number.is_finite() && number >= 0.0 && number.fract() == 0.0 && number < MAX_WHOLE as f64)
        .then_some(number as u64)
}

/// A double of the packed `x` as a whole number, or garbage.
fn whole_double(bytes: &[u8]) -> Option<u64> {
    let number = f64::from_le_bytes(bytes.try_into().ok()?);
    (number.is_finite() && number >= 0.0 && number.fract() == 0.0 && number < MAX_WHOLE as f64)
        .then_some(number as u64)
}

/// The probe leases' ends in `pr` (`ticket:until,...`), or garbage.
fn probes(text: &[u8]) -> Option<Vec<u64>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    if text.len() > PROBES_BYTES {
        return None;
    }
    let mut ends = Vec::new();
    // As the script splits it: entries between commas, the last one possibly followed by a
    // comma; an empty entry anywhere else is garbage.
    let text = text.strip_suffix(b",").unwrap_or(text);
    for entry in text.split(|&byte| byte == b',') {
        let mut parts = entry.split(|&byte| byte == b':');
        let (Some(ticket), Some(until), None) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        if ticket.is_empty() || until.is_empty() || ends.len() >= PROBES_MOST {
            return None;
        }
        whole(&Some(ticket.to_vec()))?;
        ends.push(whole(&Some(until.to_vec()))?);
    }
    Some(ends)
}

/// Breaker `name`'s state from [`FIELDS`] (in that order): `None` when it has none yet (a
/// registered breaker whose key was never written, or was lost: it reads as a new one).
pub(crate) fn decode(name: &str, fields: &[Field]) -> Result<Option<Stored>, StoreError> {
    let [hot, cold, pr, old] = fields else {
        return Err(unreadable(name, "a reply of another shape"));
    };
    let hot = match hot {
        Some(hot) if !hot.is_empty() => hot,
        _ if old.is_some() => {
            return Err(StoreError::new(
                StoreErrorKind::Corrupt,
                format!(
                    "breaker {name:?} is stored in the layout before the packed state; the \
                     next call through it converts it"
                ),
            ));
        }
        _ => return Ok(None),
    };
    if hot.len() != HOT_BYTES {
        return Err(unreadable(name, "the packed state"));
    }
    let mut values = [0_u64; 10];
    let mut at = 0;
    for (value, width) in values.iter_mut().zip(HOT_WIDTHS) {
        let mut bytes = [0_u8; 8];
        bytes[..width].copy_from_slice(&hot[at..at + width]);
        *value = u64::from_le_bytes(bytes);
        at += width;
    }
    let [
        flags,
        generation,
        open_until,
        epoch,
        _sequence,
        tc,
        tf,
        wb,
        xp,
        ca,
    ] = values;
    let (st, ov, k) = (flags % 4, flags / 4 % 4, flags / 16);
    if st > 2
        || ov > 2
        || k > 1
        || values.iter().any(|&value| value >= MAX_WHOLE)
        || xp >= MAX_WHOLE
    {
        return Err(unreadable(name, "a value of the packed state"));
    }
    let ovu = match cold {
        Some(cold) if cold.len() == COLD_BYTES => {
            // om sc tk ovu qs: each a whole number, though only ovu is shown.
            let mut ovu = 0;
            for (i, double) in cold.chunks(8).enumerate() {
                let value = whole_double(double).ok_or_else(|| unreadable(name, "x"))?;
                if i == 3 {
                    ovu = value;
                }
            }
            ovu
        }
        Some(cold) if !cold.is_empty() => return Err(unreadable(name, "x")),
        _ => 0,
    };
    let probes = probes(pr.as_deref().unwrap_or_default())
        .ok_or_else(|| unreadable(name, "the probe leases (pr)"))?;
    Ok(Some(Stored {
        st,
        ov,
        ovu,
        generation,
        open_until,
        epoch,
        tc,
        tf,
        wb,
        ca,
        probes,
    }))
}

/// The server's clock from a `TIME` reply (seconds and microseconds), in milliseconds as
/// the script reads it.
pub(crate) fn server_time(reply: redis::Value) -> Result<Timestamp, StoreError> {
    let shape = |what: String| {
        StoreError::new(
            StoreErrorKind::Corrupt,
            format!("unexpected reply from redis (TIME): {what}"),
        )
    };
    let parts: Vec<u64> = redis::from_redis_value(reply).map_err(|err| shape(err.to_string()))?;
    let [seconds, micros] = parts[..] else {
        return Err(shape(format!("{} values, not 2", parts.len())));
    };
    Ok(Timestamp::from_millis(
        seconds.saturating_mul(1_000).saturating_add(micros / 1_000),
    ))
}

/// The bucket of time `at` for `policy`.
fn bucket_of(at: Timestamp, policy: &Policy) -> u64 {
    at.as_millis() / policy.bucket_millis().max(1)
}

impl Stored {
    /// What the second step must read for a snapshot at `now`.
    ///
    /// As the script brings its totals to `now`: nothing when they are of this bucket; the
    /// buckets that left the window since, when fewer than the window's; every bucket when
    /// the clock is behind the last write. One difference, for cost: a breaker idle for a
    /// whole window reads as empty without reading its buckets (the script counts them
    /// again, and finds none live unless Redis's clock stepped back by a bucket or more and
    /// then forward again), and likewise one whose totals are zero.
    pub(crate) fn needed(&self, now: Timestamp, policy: &Policy) -> Needed {
        let current = bucket_of(now, policy);
        let buckets = u64::from(policy.buckets());
        if self.epoch == 0 || current == self.wb {
            return Needed::Nothing;
        }
        if current < self.wb {
            return Needed::All;
        }
        if current - self.wb >= buckets || (self.tc == 0 && self.tf == 0) {
            return Needed::Nothing;
        }
        // Buckets wb - buckets + 1 ..= current - buckets left the window (none below 0).
        let first = (self.wb + 1).saturating_sub(buckets);
        let last = current + 1;
        Needed::Gone((first..last.saturating_sub(buckets)).collect())
    }

    /// The window's totals at `now`, given the values of `needed`'s fields; `None` when
    /// they must be counted again from every bucket (the script's recount).
    fn totals(
        &self,
        name: &str,
        now: Timestamp,
        policy: &Policy,
        needed: &Needed,
        values: &[Field],
    ) -> Result<Option<Counts>, StoreError> {
        let current = bucket_of(now, policy);
        let buckets = u64::from(policy.buckets());
        let counts = |calls, failures| Counts { calls, failures };
        if self.epoch == 0 {
            return Ok(Some(counts(0, 0)));
        }
        match needed {
            Needed::Nothing if current == self.wb => Ok(Some(counts(self.tc, self.tf))),
            Needed::Nothing => Ok(Some(counts(0, 0))),
            Needed::All => {
                let (mut calls, mut failures) = (0, 0);
                for slot in values.chunks(3) {
                    let (t, c, f) = read_bucket(name, slot)?;
                    if t != 0 && t - 1 + buckets > current {
                        calls += c;
                        failures += f;
                    }
                }
                Ok(Some(counts(calls, failures)))
            }
            Needed::Gone(gone) => {
                let (mut calls, mut failures) = (self.tc as i128, self.tf as i128);
                for (bucket, slot) in gone.iter().zip(values.chunks(3)) {
                    let (t, c, f) = read_bucket(name, slot)?;
                    if t == bucket + 1 {
                        calls -= i128::from(c);
                        failures -= i128::from(f);
                    }
                }
                if calls < 0 || failures < 0 || failures > calls {
                    return Ok(None);
                }
                Ok(Some(counts(calls as u64, failures as u64)))
            }
        }
    }

    /// The snapshot at `now` (the store's clock) under `policy`, as the script's `snapshot`
    /// answers, given the values of `needed`'s fields; `None` when every bucket must be read
    /// (then call again with [`Needed::All`] and its values).
    pub(crate) fn snapshot(
        &self,
        name: &str,
        now: Timestamp,
        policy: &Policy,
        needed: &Needed,
        values: &[Field],
    ) -> Result<Option<Snapshot>, StoreError> {
        let Some(counts) = self.totals(name, now, policy, needed, values)? else {
            return Ok(None);
        };
        let at = now.as_millis();
        let (mut ov, mut ovu) = (self.ov, self.ovu);
        if ovu != 0 && ovu <= at {
            (ov, ovu) = (0, 0);
        }
        let state = match self.st {
            0 => State::Closed,
            1 if self.open_until > at => State::Open,
            _ => State::HalfOpen,
        };
        let override_mode = match ov {
            1 => Override::ForcedOpen,
            2 => Override::ForcedClosed,
            _ => Override::Auto,
        };
        let mut snapshot = fresh_snapshot();
        snapshot.state = state;
        snapshot.override_mode = override_mode;
        snapshot.override_until = (ovu != 0).then(|| Timestamp::from_millis(ovu));
        snapshot.generation = self.generation;
        snapshot.open_until = (self.st == 1).then(|| Timestamp::from_millis(self.open_until));
        snapshot.counts = counts;
        let live = self.probes.iter().filter(|&&end| end > at).count();
        snapshot.probes_in_flight = u32::try_from(live).unwrap_or(u32::MAX);
        // The ramp after a close by probes, as a process that never saw the close runs it.
        snapshot.ramping_until = policy.ramp_up_millis().and_then(|ramp_ms| {
            let until = self.ca.saturating_add(ramp_ms);
            (self.st == 0 && override_mode == Override::Auto && self.ca != 0 && at < until)
                .then(|| Timestamp::from_millis(until))
        });
        Ok(Some(snapshot))
    }
}

impl Stored {
    /// The snapshot at `now` given the values of every bucket's fields (`Needed::All`'s),
    /// whatever `needed` says: what it would read is taken from them.
    pub(crate) fn snapshot_from_all(
        &self,
        name: &str,
        now: Timestamp,
        policy: &Policy,
        all: &[Field],
    ) -> Result<Snapshot, StoreError> {
        let needed = self.needed(now, policy);
        let buckets = u64::from(policy.buckets());
        let subset: Vec<Field> = match &needed {
            Needed::Gone(gone) => gone
                .iter()
                .flat_map(|bucket| {
                    let slot = usize::try_from(bucket % buckets).unwrap_or(0) * 3;
                    all.get(slot..slot + 3).unwrap_or_default().iter().cloned()
                })
                .collect(),
            Needed::All => all.to_vec(),
            Needed::Nothing => Vec::new(),
        };
        if let Some(snapshot) = self.snapshot(name, now, policy, &needed, &subset)? {
            return Ok(snapshot);
        }
        // Counted again from every bucket, which always answers.
        self.snapshot(name, now, policy, &Needed::All, all)?
            .ok_or_else(|| unreadable(name, "the window"))
    }
}

impl Stored {
    /// The snapshot at `now` from the values of the bucket fields [`Stored::needed`] named
    /// (the buckets that left the window) or of every bucket; `None` when the totals must be
    /// counted again, from every bucket (read them, then call again).
    pub(crate) fn snapshot_from_buckets(
        &self,
        name: &str,
        now: Timestamp,
        policy: &Policy,
        values: &[Field],
    ) -> Result<Option<Snapshot>, StoreError> {
        // Fewer buckets than the window's left it since the last write.
        if values.len() < 3 * policy.buckets() as usize {
            return self.snapshot(name, now, policy, &self.needed(now, policy), values);
        }
        self.snapshot_from_all(name, now, policy, values).map(Some)
    }
}

/// One slot's tag, calls and failures; garbage makes the breaker unreadable.
fn read_bucket(name: &str, slot: &[Field]) -> Result<(u64, u64, u64), StoreError> {
    let [t, c, f] = slot else {
        return Err(unreadable(name, "a bucket"));
    };
    match (whole(t), whole(c), whole(f)) {
        (Some(t), Some(c), Some(f)) => Ok((t, c, f)),
        _ => Err(unreadable(name, "a bucket of the window")),
    }
}

/// The live buckets at `now`, oldest first, from every slot's fields (`Needed::All`'s), as
/// the script's `window` answers (a slot holding garbage is left out).
#[cfg(feature = "tokio")]
pub(crate) fn window(
    now: Timestamp,
    policy: &Policy,
    values: &[Field],
) -> Vec<breaker_core::Bucket> {
    use breaker_core::Bucket;
    let oldest = bucket_of(now, policy).saturating_sub(u64::from(policy.buckets()));
    let width = policy.bucket_millis();
    let mut live: Vec<Bucket> = values
        .chunks(3)
        .filter_map(|slot| {
            let [t, c, f] = slot else { return None };
            let (t, c, f) = (whole(t)?, whole(c)?, whole(f)?);
            (t != 0 && t - 1 > oldest)
                .then(|| Bucket::new(Timestamp::from_millis((t - 1).saturating_mul(width)), c, f))
        })
        .collect();
    live.sort_by_key(|bucket| bucket.start);
    live
}

/// A closed breaker with nothing counted: the snapshot every field is then set on.
fn fresh_snapshot() -> Snapshot {
    let policy = Policy::default();
    let window = breaker_core::store::BucketWindow::new(&policy);
    breaker_core::store::Circuit::new().snapshot(&policy, Timestamp::ZERO, &window)
}

/// A breaker registered but not yet written (or lost): closed, nothing counted.
pub(crate) fn new_breaker() -> Snapshot {
    fresh_snapshot()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hot(values: [u64; 10]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (value, width) in values.iter().zip(HOT_WIDTHS) {
            bytes.extend_from_slice(&value.to_le_bytes()[..width]);
        }
        bytes
    }

    #[test]
    fn garbage_is_unreadable_never_a_panic() {
        let good = hot([0, 1, 0, 5, 1, 2, 1, 100, 0, 0]);
        assert!(decode("b", &[Some(good.clone()), None, None, None]).is_ok());
        let cases: Vec<[Field; 4]> = vec![
            [Some(b"garbage".to_vec()), None, None, None],
            [
                Some(hot([3, 1, 0, 5, 1, 2, 1, 100, 0, 0])),
                None,
                None,
                None,
            ],
            [
                Some(hot([0, 1, 1 << 54, 5, 1, 2, 1, 100, 0, 0])),
                None,
                None,
                None,
            ],
            [Some(good.clone()), Some(vec![1; 39]), None, None],
            [
                Some(good.clone()),
                Some(f64::NAN.to_le_bytes().repeat(5)),
                None,
                None,
            ],
            [Some(good.clone()), None, Some(b"A".repeat(40_000)), None],
            [Some(good.clone()), None, Some(b"1:z".to_vec()), None],
            [Some(good.clone()), None, Some(b"1:2,,3:4".to_vec()), None],
            [Some(good.clone()), None, Some(b",1:2".to_vec()), None],
            [None, None, None, Some(b"0".to_vec())],
        ];
        for fields in cases {
            let err = decode("b", &fields).unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{fields:?}");
        }
        assert_eq!(decode("b", &[None, None, None, None]).unwrap(), None);
        let probes = |pr: &[u8]| {
            decode("b", &[Some(good.clone()), None, Some(pr.to_vec()), None])
                .unwrap()
                .unwrap()
                .probes
        };
        assert_eq!(probes(b"1:20,2:30,"), [20, 30]);
        assert_eq!(probes(b""), Vec::<u64>::new());
        assert_eq!(whole(&Some(b"12345678901234567".to_vec())), None);
        assert_eq!(whole(&Some(b"1e3".to_vec())), Some(1_000));
        assert_eq!(whole(&None), Some(0));
    }

    #[test]
    fn the_window_moves_as_the_script_moves_it() {
        let policy = Policy::default(); // 60 buckets of 1 s
        let stored = decode(
            "b",
            &[
                Some(hot([0, 1, 0, 5, 1, 10, 4, 1_000, 0, 0])),
                None,
                None,
                None,
            ],
        )
        .unwrap()
        .unwrap();
        let at = |bucket: u64| Timestamp::from_millis(bucket * 1_000);
        assert_eq!(stored.needed(at(1_000), &policy), Needed::Nothing);
        assert_eq!(stored.needed(at(999), &policy), Needed::All);
        assert_eq!(stored.needed(at(1_060), &policy), Needed::Nothing);
        assert_eq!(
            stored.needed(at(1_002), &policy),
            Needed::Gone(vec![941, 942])
        );
        let needed = stored.needed(at(1_002), &policy);
        assert_eq!(
            needed.fields(60),
            ["t41", "c41", "f41", "t42", "c42", "f42"]
        );
        let field = |n: u64| Some(n.to_string().into_bytes());
        // Bucket 941 held 3 calls, 1 failure; slot 42 holds a newer bucket than 942.
        let values = [
            field(942),
            field(3),
            field(1),
            field(1_003),
            field(9),
            field(9),
        ];
        let snapshot = stored
            .snapshot("b", at(1_002), &policy, &needed, &values)
            .unwrap()
            .unwrap();
        assert_eq!((snapshot.counts.calls, snapshot.counts.failures), (7, 3));
        // Totals below what left: counted again.
        let values = [field(942), field(30), field(1), None, None, None];
        assert_eq!(
            stored
                .snapshot("b", at(1_002), &policy, &needed, &values)
                .unwrap(),
            None
        );
    }
}
