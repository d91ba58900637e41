//! A driver for counting instructions per call under callgrind: the success path of a closed
//! breaker (`acquire_at` then `record_at`, `now` passed in and crossing a bucket every 4096
//! calls, as in the `hot_path` bench), or an uncontended atomic increment, `calls` times.
//!
//! ```text
//! cargo build --release -p breaker-store-memory --example instructions
//! valgrind --tool=callgrind target/release/examples/instructions memory 1000000
//! valgrind --tool=callgrind target/release/examples/instructions atomic 1000000
//! callgrind_annotate --auto=yes callgrind.out.<pid>
//! ```
#![allow(missing_docs)]

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use breaker_core::{Outcome, Policy, Timestamp};
use breaker_store_memory::{MemoryBreaker, MemoryStore};

#[inline(never)]
fn breaker_call(breaker: &MemoryBreaker, call: u64) {
    let now = Timestamp::from_millis(1_700_000_000_000 + call / 4096);
    if let Ok(permit) = breaker.acquire_at(now) {
        let recorded = breaker.record_at(now, permit, Outcome::Success.into());
        black_box((recorded.outcome, recorded.transition.is_some()));
    }
}

#[inline(never)]
fn atomic_call(counter: &AtomicU64) {
    black_box(counter).fetch_add(1, Ordering::Relaxed);
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(which), Some(Ok(calls))) = (args.next(), args.next().map(|n| n.parse::<u64>()))
    else {
        eprintln!("usage: instructions memory|atomic CALLS");
        return ExitCode::FAILURE;
    };
    match which.as_str() {
        "memory" => {
            let Ok(breaker) = MemoryStore::new().breaker("driver", Policy::default()) else {
                return ExitCode::FAILURE;
            };
            for call in 0..calls {
                breaker_call(&breaker, call);
            }
        }
        "atomic" => {
            let counter = AtomicU64::new(0);
            for _ in 0..calls {
                atomic_call(&counter);
            }
        }
        _ => {
            eprintln!("usage: instructions memory|atomic CALLS");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
