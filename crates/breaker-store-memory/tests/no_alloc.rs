//! The hot path (permit + record of a success on a closed breaker) allocates nothing.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use breaker_core::{Outcome, Policy, Timestamp};
use breaker_store_memory::MemoryStore;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Only the measured thread counts: the test harness's own threads allocate when they
    // please (output capture, timers), and must not fail the test.
    static MEASURED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if MEASURED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn success_path_does_not_allocate() {
    let store = MemoryStore::new();
    let breaker = store.breaker("hot", Policy::default()).unwrap();
    // Warm up: the thread's stripe number is assigned on first use.
    let permit = breaker.acquire_at(Timestamp::from_millis(1)).unwrap();
    breaker.record_at(Timestamp::from_millis(1), permit, Outcome::Success.into());

    MEASURED.with(|measured| measured.set(true));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for call in 0..100_000u64 {
        // Walk through many buckets so slot recycling is on the measured path too.
        let now = Timestamp::from_millis(1 + call * 7);
        let permit = breaker.acquire_at(now).unwrap();
        breaker.record_at(now, permit, Outcome::Success.into());
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    MEASURED.with(|measured| measured.set(false));
    assert_eq!(after - before, 0, "the success path allocated");
    assert!(
        breaker
            .snapshot_at(Timestamp::from_millis(1 + 99_999 * 7))
            .counts
            .calls
            > 0
    );
}
