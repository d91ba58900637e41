//! The sliding window: calls and failures counted in fixed buckets.

use crate::bytes::{Reader, corrupt, put_u32, put_u64};
use crate::error::StoreError;
use crate::outcome::Counts;
use crate::policy::{Policy, PolicyMillis};
use crate::time::Timestamp;

/// The bucket a timestamp falls in: `now / (window / buckets)`.
pub fn bucket_of(policy: &Policy, now: Timestamp) -> u64 {
    now.as_millis() / policy.bucket_millis()
}

/// Whether events recorded in `bucket` still count at `now`.
///
/// A bucket counts while it is one of the last `buckets` buckets: an event at time `t` stops
/// counting at the start of bucket `t / width + buckets`, so its life in the window is between
/// `window - width` and `window`. A bucket later than `now` (a clock that stepped back) counts.
pub fn bucket_is_live(policy: &Policy, bucket: u64, now: Timestamp) -> bool {
    bucket_of(policy, now) < bucket.saturating_add(u64::from(policy.buckets()))
}

/// Where a store keeps the window's counts; the state machine in [`Circuit`](crate::store::Circuit)
/// reads and writes the window only through this trait.
pub trait Window {
    /// Counts one call at `now`, a failure or a success.
    fn add(&mut self, policy: &Policy, now: Timestamp, failure: bool);
    /// The counts of every bucket still live at `now`.
    fn counts(&self, policy: &Policy, now: Timestamp) -> Counts;
    /// Forgets every call (done when the breaker closes).
    fn clear(&mut self);
}

/// A plain (single-owner) bucketed window: `buckets` slots of (bucket number, calls, failures).
///
/// Memory is fixed by the policy's `buckets`, whatever the traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketWindow {
    slots: Box<[Slot]>,
    /// The width of a bucket under the policy the window was made for: its bucket numbers
    /// mean times only under that width.
    bucket_ms: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    /// Bucket number plus one; zero marks an empty slot.
    tag: u64,
    counts: Counts,
}

impl BucketWindow {
    /// An empty window with the policy's number of buckets.
    pub fn new(policy: &Policy) -> BucketWindow {
        BucketWindow {
            slots: vec![Slot::default(); policy.buckets() as usize].into_boxed_slice(),
            bucket_ms: policy.bucket_millis(),
        }
    }

    /// Appends the window's stored form to `out` (see
    /// [`LocalBreaker::to_bytes`](crate::store::LocalBreaker::to_bytes)).
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u64(out, self.bucket_ms);
        put_u32(out, u32::try_from(self.slots.len()).unwrap_or(u32::MAX));
        for slot in &self.slots {
            put_u64(out, slot.tag);
            put_u64(out, slot.counts.calls);
            put_u64(out, slot.counts.failures);
        }
    }

    /// Reads what [`BucketWindow::write`] wrote, checking every field. A window counted in
    /// buckets other than `policy`'s (its window or buckets changed since) comes back empty:
    /// its bucket numbers would mean other times.
    pub(crate) fn read(
        policy: &Policy,
        input: &mut Reader<'_>,
    ) -> Result<BucketWindow, StoreError> {
        let bucket_ms = input.u64("bucket width")?;
        let len = input.u32("bucket count")?;
        // Read one by one, never allocated from the count (see `Circuit::read`).
        let mut slots = Vec::new();
        for _ in 0..len {
            let slot = Slot {
                tag: input.count("bucket number")?,
                counts: Counts {
                    calls: input.count("calls")?,
                    failures: input.count("failures")?,
                },
            };
            if slot.counts.failures > slot.counts.calls {
                return Err(corrupt("a bucket has more failures than calls"));
            }
            slots.push(slot);
        }
        if bucket_ms != policy.bucket_millis() || slots.len() != policy.buckets() as usize {
            return Ok(BucketWindow::new(policy));
        }
        Ok(BucketWindow {
            slots: slots.into_boxed_slice(),
            bucket_ms,
        })
    }
}

/// The slot index of a bucket.
pub fn slot_of(policy: &Policy, bucket: u64) -> usize {
    // The remainder is below `buckets`, a u32, so it fits a usize.
    (bucket % u64::from(policy.buckets())) as usize
}

impl Window for BucketWindow {
    fn add(&mut self, policy: &Policy, now: Timestamp, failure: bool) {
        let bucket = bucket_of(policy, now);
        let Some(slot) = self.slots.get_mut(slot_of(policy, bucket)) else {
            return;
        };
        // A slot holding an older bucket is recycled; one holding a newer bucket (the clock
        // stepped back) keeps it and takes the call, so no call is lost.
        if slot.tag < bucket + 1 {
            *slot = Slot {
                tag: bucket + 1,
                counts: Counts::default(),
            };
        }
        slot.counts.calls += 1;
        if failure {
            slot.counts.failures += 1;
        }
    }

    fn counts(&self, policy: &Policy, now: Timestamp) -> Counts {
        let mut total = Counts::default();
        for slot in self.slots.iter() {
            if slot.tag != 0 && bucket_is_live(policy, slot.tag - 1, now) {
                total.calls += slot.counts.calls;
                total.failures += slot.counts.failures;
            }
        }
        total
    }

    fn clear(&mut self) {
        self.slots.fill(Slot::default());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> Policy {
        Policy::builder()
            .window(Duration::from_secs(10))
            .buckets(10)
            .build()
            .unwrap()
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn events_expire_bucket_by_bucket() {
        let p = policy();
        let mut w = BucketWindow::new(&p);
        w.add(&p, at(500), true);
        w.add(&p, at(1_500), false);
        assert_eq!(
            w.counts(&p, at(1_999)),
            Counts {
                calls: 2,
                failures: 1
            }
        );
        // The first event's bucket (0..1000) stops counting at 10 000 ms.
        assert_eq!(
            w.counts(&p, at(9_999)),
            Counts {
                calls: 2,
                failures: 1
            }
        );
        assert_eq!(
            w.counts(&p, at(10_000)),
            Counts {
                calls: 1,
                failures: 0
            }
        );
        assert_eq!(w.counts(&p, at(11_000)), Counts::default());
    }

    #[test]
    fn slots_are_recycled_not_grown() {
        let p = policy();
        let mut w = BucketWindow::new(&p);
        for second in 0..1_000u64 {
            w.add(&p, at(second * 1_000), second % 2 == 0);
        }
        assert_eq!(w.slots.len(), 10);
        assert_eq!(
            w.counts(&p, at(999_000)),
            Counts {
                calls: 10,
                failures: 5
            }
        );
    }

    #[test]
    fn a_clock_stepping_back_loses_nothing() {
        let p = policy();
        let mut w = BucketWindow::new(&p);
        w.add(&p, at(20_000), false);
        w.add(&p, at(10_000), true);
        assert_eq!(
            w.counts(&p, at(20_000)),
            Counts {
                calls: 2,
                failures: 1
            }
        );
        w.clear();
        assert_eq!(w.counts(&p, at(20_000)), Counts::default());
    }

    #[test]
    fn failure_rate_of_counts() {
        assert_eq!(Counts::default().failure_rate(), 0.0);
        assert_eq!(
            Counts {
                calls: 4,
                failures: 1
            }
            .failure_rate(),
            25.0
        );
    }
}
