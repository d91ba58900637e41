//! A window of atomic counters, striped so that threads recording at once touch different
//! cache lines.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use breaker_core::{Counts, Policy, Timestamp, Window, bucket_is_live, bucket_of, slot_of};

/// A slot's tag while one thread recycles it for a newer bucket.
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

/// The window of one breaker: `stripes` copies of the bucket ring; a thread records into its
/// own stripe, and counting sums them all.
pub(crate) struct StripedWindow {
    slots: Box<[Slot]>,
    buckets: usize,
    stripe_mask: usize,
}

fn stripe_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, usize::from)
            .next_power_of_two()
            .min(64)
    })
}

/// This thread's stripe number, handed out round-robin on first use.
fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|stripe| match stripe.get() {
        usize::MAX => {
            let assigned = NEXT.fetch_add(1, Ordering::Relaxed) % 1024;
            stripe.set(assigned);
            assigned
        }
        assigned => assigned,
    })
}

impl StripedWindow {
    pub(crate) fn new(policy: &Policy) -> StripedWindow {
        let stripes = stripe_count();
        let buckets = policy.buckets() as usize;
        let slots = std::iter::repeat_with(Slot::default)
            .take(stripes * (buckets + GAP))
            .collect();
        StripedWindow {
            slots,
            buckets,
            stripe_mask: stripes - 1,
        }
    }

    fn slot(&self, stripe: usize, index: usize) -> Option<&Slot> {
        self.slots.get(stripe * (self.buckets + GAP) + index)
    }

    /// Counts one call in this thread's stripe.
    pub(crate) fn add(&self, policy: &Policy, now: Timestamp, failure: bool) {
        let bucket = bucket_of(policy, now);
        let tag = bucket.saturating_add(1).min(RECYCLING - 1);
        let Some(slot) = self.slot(thread_stripe() & self.stripe_mask, slot_of(policy, bucket)) else {
            return;
        };
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
            // wait the few instructions that takes.
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

/// The [`Window`] view the state machine writes through (it holds the breaker's lock; other
/// threads may be adding successes at the same time).
pub(crate) struct Shared<'a>(pub(crate) &'a StripedWindow);

impl Window for Shared<'_> {
    fn add(&mut self, policy: &Policy, now: Timestamp, failure: bool) {
        self.0.add(policy, now, failure);
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
    fn threads_recording_at_once_lose_nothing() {
        let policy = Policy::builder()
            .window(Duration::from_secs(10))
            .buckets(10)
            .build()
            .unwrap();
        let window = Arc::new(StripedWindow::new(&policy));
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let (window, policy) = (window.clone(), policy.clone());
                std::thread::spawn(move || {
                    for call in 0..10_000u64 {
                        // Each thread walks through five buckets, so slots are recycled
                        // while others record.
                        let now = Timestamp::from_millis(20_000 + call / 2_000 * 1_000);
                        window.add(&policy, now, (call + thread) % 4 == 0);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let counts = window.counts(&policy, Timestamp::from_millis(24_999));
        assert_eq!(counts, Counts { calls: 80_000, failures: 20_000 });
        window.clear();
        assert_eq!(window.counts(&policy, Timestamp::from_millis(24_999)), Counts::default());
    }
}
