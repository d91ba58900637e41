//! A window of counters, striped so that threads recording at once touch different cache
//! lines, and owned so that the common case needs no atomic read-modify-write.
//!
//! Each breaker's window has one stripe (a copy of the bucket ring) per CPU, plus one shared
//! stripe. A thread claims a stripe number on its first call and gives it back when it exits;
//! while it holds stripe `i` it is the only writer of stripe `i` in every window, and counts
//! with a plain load and store. Threads that hold none count in the shared stripe with atomic
//! adds. Counting sums every stripe.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use breaker_core::store::{PolicyMillis, Window, bucket_is_live};
use breaker_core::{Counts, Policy, Timestamp};

/// A slot's tag while one thread recycles it for a newer bucket (shared stripe only).
const RECYCLING: u64 = u64::MAX;

/// Padding slots between stripes: with 32-byte slots, four keep stripes 128 bytes apart, so no
/// two stripes share a cache line (or an adjacent-line prefetch pair).
const GAP: usize = 4;

#[derive(Default)]
#[repr(align(32))]
struct Slot {
    /// Bucket number plus one; zero is an empty slot, [`RECYCLING`] one being reset.
    tag: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
}

/// The window of one breaker.
pub(crate) struct StripedWindow {
    /// `owned + 1` stripes of `buckets + GAP` slots; the last stripe is the shared one.
    slots: Box<[Slot]>,
    /// The number of owned stripes; stripe `owned` is the shared one.
    owned: usize,
    buckets: usize,
    /// Divides a timestamp by the bucket width (`bucket_of`).
    width: Divisor,
    /// Divides a bucket number by the number of buckets (`slot_of`).
    ring: Divisor,
}

/// Division by a fixed divisor as a multiplication, for the hot path: a 64-bit `div` costs
/// tens of cycles, more than the rest of a call. Exact for dividends below 2^53, which covers
/// every millisecond timestamp until the year 287 000; larger ones take the plain division.
#[derive(Clone, Copy, Debug)]
struct Divisor {
    divisor: u64,
    /// `ceil(2^(64 + shift) / divisor)`, below 2^65.
    multiplier: u128,
    /// `ceil(log2(divisor))`.
    shift: u32,
}

impl Divisor {
    fn new(divisor: u64) -> Divisor {
        let divisor = divisor.max(1);
        let shift = u64::BITS - (divisor - 1).leading_zeros();
        let multiplier = (1u128 << (64 + shift)).div_ceil(u128::from(divisor));
        Divisor {
            divisor,
            multiplier,
            shift,
        }
    }

    /// `n / divisor`. With `m = 2^(64+s)/d + e` (`0 <= e < 1`), `n*m / 2^(64+s)` exceeds
    /// `n/d` by less than `2^(53-64-s)`, which is under `1/d`, the smallest gap between `n/d`
    /// and the next integer: the floor is unchanged.
    #[inline]
    fn divide(&self, n: u64) -> u64 {
        if n < 1 << 53 {
            ((u128::from(n) * self.multiplier) >> (64 + self.shift)) as u64
        } else {
            n / self.divisor
        }
    }

    #[inline]
    fn remainder(&self, n: u64) -> u64 {
        n - self.divide(n) * self.divisor
    }
}

/// Owned stripes per window: the number of CPUs rounded up to a power of two (so a thread
/// finds its stripe with a mask, not a division), at most 64.
fn owned_stripes() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, usize::from)
            .next_power_of_two()
            .min(64)
    })
}

/// Bit `i` is set while a live thread owns stripe `i` (of every window).
static CLAIMED: AtomicU64 = AtomicU64::new(0);

/// A thread's claim on one owned stripe, given back when the thread exits so that thread
/// pools that come and go keep finding free stripes.
struct Lease(Option<usize>);

impl Lease {
    fn claim() -> Lease {
        let stripes = owned_stripes();
        let all = if stripes >= 64 {
            u64::MAX
        } else {
            (1u64 << stripes) - 1
        };
        let mut claimed = CLAIMED.load(Ordering::Relaxed);
        loop {
            let free = !claimed & all;
            if free == 0 {
                return Lease(None);
            }
            let bit = free.trailing_zeros();
            // Acquire: this thread's writes follow the previous owner's, which it released.
            match CLAIMED.compare_exchange_weak(
                claimed,
                claimed | 1 << bit,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Lease(Some(bit as usize)),
                Err(now) => claimed = now,
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(stripe) = self.0 {
            CLAIMED.fetch_and(!(1u64 << stripe), Ordering::Release);
        }
    }
}

thread_local! {
    static LEASE: Lease = Lease::claim();
}

/// The stripe this thread owns in every window, if it could claim one.
#[inline]
fn owned_stripe() -> Option<usize> {
    // During thread teardown the lease may be gone: the shared stripe takes the call.
    LEASE.try_with(|lease| lease.0).ok().flatten()
}

impl StripedWindow {
    pub(crate) fn new(policy: &Policy) -> StripedWindow {
        let owned = owned_stripes();
        let buckets = policy.buckets() as usize;
        let slots = std::iter::repeat_with(Slot::default)
            .take((owned + 1) * (buckets + GAP))
            .collect();
        StripedWindow {
            slots,
            owned,
            buckets,
            width: Divisor::new(policy.bucket_millis()),
            ring: Divisor::new(u64::from(policy.buckets())),
        }
    }

    #[inline]
    fn slot(&self, stripe: usize, index: usize) -> Option<&Slot> {
        self.slots.get(stripe * (self.buckets + GAP) + index)
    }

    /// Counts one call in the bucket of `now`
    /// ([`bucket_of`](breaker_core::bucket_of), at slot [`slot_of`](breaker_core::slot_of)).
    #[inline]
    pub(crate) fn add(&self, now: Timestamp, failure: bool) {
        let bucket = self.width.divide(now.as_millis());
        let tag = bucket.saturating_add(1).min(RECYCLING - 1);
        // The remainder is below `buckets`, a u32.
        let index = self.ring.remainder(bucket) as usize;
        match owned_stripe() {
            Some(stripe) => {
                if let Some(slot) = self.slot(stripe, index) {
                    add_owned(slot, tag, failure);
                }
            }
            None => {
                if let Some(slot) = self.slot(self.owned, index) {
                    add_shared(slot, tag, failure);
                }
            }
        }
    }

    pub(crate) fn counts(&self, policy: &Policy, now: Timestamp) -> Counts {
        let mut total = Counts::default();
        for slot in self.slots.iter() {
            let tag = slot.tag.load(Ordering::Acquire);
            if tag != 0 && tag != RECYCLING && bucket_is_live(policy, tag - 1, now) {
                total.calls += slot.calls.load(Ordering::Relaxed);
                total.failures += slot.failures.load(Ordering::Relaxed);
            }
        }
        total
    }

    pub(crate) fn clear(&self) {
        for slot in self.slots.iter() {
            slot.tag.store(0, Ordering::Release);
        }
    }
}

/// Counts a call in a slot this thread alone writes: plain loads and stores, no lock prefix.
///
/// The one other writer is `clear` (on close), which only zeroes the tag: a call racing with
/// it lands in a slot that no longer counts, which is what a report from the closed cycle
/// deserves.
#[inline]
fn add_owned(slot: &Slot, tag: u64, failure: bool) {
    let current = slot.tag.load(Ordering::Relaxed);
    if current >= tag {
        slot.calls
            .store(slot.calls.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if failure {
            slot.failures
                .store(slot.failures.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    } else {
        // The slot holds a bucket that has left the window: start it afresh.
        slot.calls.store(1, Ordering::Relaxed);
        slot.failures.store(u64::from(failure), Ordering::Relaxed);
        slot.tag.store(tag, Ordering::Release);
    }
}

/// Counts a call in the shared stripe, which any thread may write at once.
fn add_shared(slot: &Slot, tag: u64, failure: bool) {
    loop {
        let current = slot.tag.load(Ordering::Acquire);
        if current == RECYCLING {
            std::hint::spin_loop();
            continue;
        }
        // A slot holding this bucket, or a newer one (the clock stepped back), takes the call.
        if current >= tag {
            slot.calls.fetch_add(1, Ordering::Relaxed);
            if failure {
                slot.failures.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        // The slot holds a bucket that left the window: one thread resets it, the others
        // wait the few instructions that takes. A call by a thread whose clock is a whole
        // window behind, counted just as the slot is reset, is dropped with its old bucket.
        if slot
            .tag
            .compare_exchange(current, RECYCLING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            slot.calls.store(0, Ordering::Relaxed);
            slot.failures.store(0, Ordering::Relaxed);
            slot.tag.store(tag, Ordering::Release);
        }
    }
}

/// The [`Window`] view the state machine writes through (it holds the breaker's lock; other
/// threads may be adding successes at the same time).
pub(crate) struct Shared<'a>(pub(crate) &'a StripedWindow);

impl Window for Shared<'_> {
    fn add(&mut self, _policy: &Policy, now: Timestamp, failure: bool) {
        self.0.add(now, failure);
    }

    fn counts(&self, policy: &Policy, now: Timestamp) -> Counts {
        self.0.counts(policy, now)
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn divisor_agrees_with_division() {
        let dividends = [
            0,
            1,
            2,
            999,
            1_000,
            1_001,
            (1 << 53) - 1,
            1 << 53,
            u64::MAX - 1,
            u64::MAX,
        ];
        let divisors = [
            1,
            2,
            3,
            7,
            60,
            1_000,
            1_001,
            59_999,
            60_000,
            (1 << 32) - 1,
            1 << 40,
            (1 << 53) - 1,
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for &d in &divisors {
            let divisor = Divisor::new(d);
            let check = |n: u64| {
                assert_eq!(divisor.divide(n), n / d, "{n} / {d}");
                assert_eq!(divisor.remainder(n), n % d, "{n} % {d}");
            };
            for &n in &dividends {
                check(n);
                check(n.saturating_add(d));
                check(n / d * d);
                check((n / d * d).saturating_sub(1));
            }
            for _ in 0..10_000 {
                // xorshift: random dividends below 2^53 and near multiples of the divisor.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let n = seed >> 11;
                check(n);
                check(n / d * d);
                check((n / d * d).saturating_sub(1));
            }
        }
    }

    #[test]
    fn add_uses_the_cores_bucket_and_slot() {
        use breaker_core::store::{bucket_of, slot_of};
        let policy = Policy::builder()
            .window(Duration::from_millis(56 * 1_070))
            .buckets(56)
            .build()
            .unwrap();
        let window = StripedWindow::new(&policy);
        for ms in [0u64, 1, 1_070, 1_071, 1_700_000_000_123, (1 << 53) + 5] {
            let now = Timestamp::from_millis(ms);
            let bucket = bucket_of(&policy, now);
            assert_eq!(window.width.divide(ms), bucket);
            assert_eq!(
                window.ring.remainder(bucket) as usize,
                slot_of(&policy, bucket)
            );
        }
    }

    #[test]
    fn threads_recording_at_once_lose_nothing() {
        let policy = Policy::builder()
            .window(Duration::from_secs(10))
            .buckets(10)
            .build()
            .unwrap();
        let window = Arc::new(StripedWindow::new(&policy));
        // More threads than stripes: some own a stripe, the others share one.
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let window = window.clone();
                std::thread::spawn(move || {
                    for call in 0..10_000u64 {
                        // Each thread walks through five buckets, so slots are recycled
                        // while others record.
                        let now = Timestamp::from_millis(20_000 + call / 2_000 * 1_000);
                        window.add(now, (call + thread) % 4 == 0);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let counts = window.counts(&policy, Timestamp::from_millis(24_999));
        assert_eq!(
            counts,
            Counts {
                calls: 80_000,
                failures: 20_000
            }
        );
        window.clear();
        assert_eq!(
            window.counts(&policy, Timestamp::from_millis(24_999)),
            Counts::default()
        );
    }
}
