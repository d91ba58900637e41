//! The script's arguments, declared once: the positions in `ARGV` and the numbers packed in
//! `ARGV[ARG_NUMBERS]`, in the order `breaker.lua` unpacks them into locals of the same names
//! (a test in `script.rs` holds the two lists equal). The store builds every call with
//! [`argv`]; the benches include this file to drive the script bare with the same layout.
//!
//! The numbers travel as little-endian doubles, which is what Lua's numbers are: the script
//! unpacks them with `struct.unpack` instead of parsing twenty decimal strings with `tonumber`
//! on every call, and sees the same values it would have parsed. The text (reporter or
//! actor) follows them in the same argument: each argument costs Redis about a thousand
//! instructions per call. The numbers the closed path needs come first, so it unpacks only
//! those.

use breaker_core::Policy;
use breaker_core::store::PolicyMillis;

/// `ARGV` position of the op (`record`, `acquire`, ...), counted from 1 as Lua does.
pub(crate) const ARG_OP: usize = 1;
/// `ARGV` position of the numbers ([`Num`], packed as little-endian doubles), followed by the
/// text: the reporter (`record`, `batch`) or the actor (`trip`, `reset`, `override`).
pub(crate) const ARG_NUMBERS: usize = 2;
/// How many arguments a call has.
pub(crate) const ARGS: usize = 2;

/// A layout the script and the store share: an enum of named positions, in order, and the
/// script's name of each (a local of the script), which a test holds equal to the script's.
macro_rules! layout {
    (
        $(#[doc = $what:literal])+
        $layout:ident {
            $($(#[doc = $doc:literal])+ $name:ident = $lua:literal,)*
        }
    ) => {
        $(#[doc = $what])+
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum $layout {
            $($(#[doc = $doc])+ $name,)*
        }

        impl $layout {
            /// The script's name of each, in order.
            pub(crate) const NAMES: &'static [&'static str] = &[$($lua,)*];
        }
    };
}

layout! {
    /// The numbers in `ARGV[ARG_NUMBERS]`, in order; each is a local of the script named as
    /// in [`Num::NAMES`].
    Num {
        /// The time in ms, or -1: the script reads the server's clock (`TIME`).
        Now = "now",
        /// The policy's bucket width in ms.
        BucketMs = "bucket_ms",
        /// The policy's number of buckets.
        Buckets = "buckets",
        /// The store's idle TTL in ms.
        IdleTtl = "idle_ttl",
        /// The op's first number: `record`, `batch`: the generation; `override`: the mode
        /// (0 auto, 1 forced-open, 2 forced-closed).
        Op1 = "op1",
        /// `record`: the permit's kind (0 normal, 1 probe); `batch`: the successes;
        /// `override`: the duration in ms (-1 forever).
        Op2 = "op2",
        /// `record`: the probe's ticket; `batch`: the failures.
        Op3 = "op3",
        /// `record`: the outcome (0 success, 1 failure, 2 ignored).
        Op4 = "op4",
        /// `record`: how long the backend asked every caller to wait, in ms (0: it did not).
        Op5 = "op5",
        /// The policy's failure rate, in percent.
        Rate = "rate",
        /// The policy's minimum failures to trip.
        MinFailures = "min_failures",
        /// The policy's minimum calls to trip.
        MinCalls = "min_calls",
        /// The policy's open period in ms.
        OpenMs = "open_ms_policy",
        /// The policy's probes admitted at once.
        Probes = "max_probes",
        /// The policy's probe lease in ms.
        LeaseMs = "lease_ms",
        /// The policy's probe successes to close.
        ToClose = "to_close",
        /// The policy's backoff factor.
        Backoff = "backoff",
        /// The policy's longest open period in ms.
        MaxOpenMs = "max_open_ms",
        /// The store's history length (entries kept, about; 0: no history).
        HistoryLen = "history_len",
        /// The policy's quorum of reporters.
        MinimumReporters = "minimum_reporters",
    }
}

/// How many numbers a call carries.
pub(crate) const NUMBERS: usize = Num::NAMES.len();

/// A whole number as Lua's `tonumber` reads its decimal text: the nearest double (exact
/// below 2^53, which bounds every duration and count the script keeps).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn number(value: u64) -> f64 {
    value as f64
}

/// The numbers of one call: zero until set, `Now` at -1 (the server's clock).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Numbers([f64; NUMBERS]);

impl Numbers {
    /// The numbers of a call under `policy`, with the store's idle TTL and history length.
    pub(crate) fn new(policy: &Policy, idle_ttl_ms: u64, history_len: u32) -> Numbers {
        let mut numbers = Numbers([0.0; NUMBERS]);
        numbers
            .set(Num::Now, -1.0)
            .set(Num::BucketMs, number(policy.bucket_millis()))
            .set(Num::Buckets, f64::from(policy.buckets()))
            .set(Num::IdleTtl, number(idle_ttl_ms))
            .set(Num::Rate, policy.failure_rate())
            .set(Num::MinFailures, number(policy.minimum_failures()))
            .set(Num::MinCalls, number(policy.minimum_calls()))
            .set(Num::OpenMs, number(policy.open_for_millis()))
            .set(Num::Probes, f64::from(policy.half_open_probes()))
            .set(Num::LeaseMs, number(policy.probe_lease_millis()))
            .set(Num::ToClose, f64::from(policy.successes_to_close()))
            .set(Num::Backoff, policy.backoff())
            .set(
                Num::MaxOpenMs,
                number(u64::try_from(policy.max_open_for().as_millis()).unwrap_or(u64::MAX)),
            )
            .set(Num::HistoryLen, f64::from(history_len))
            .set(Num::MinimumReporters, f64::from(policy.minimum_reporters()));
        numbers
    }

    /// Sets one number.
    pub(crate) fn set(&mut self, num: Num, value: f64) -> &mut Numbers {
        self.0[num as usize] = value;
        self
    }
}

/// A call's arguments, in `ARGV` order.
pub(crate) fn argv(op: &str, numbers: Numbers, text: &str) -> [Vec<u8>; ARGS] {
    let mut argv: [Vec<u8>; ARGS] = Default::default();
    argv[ARG_OP - 1] = op.as_bytes().to_vec();
    let mut packed = Vec::with_capacity(8 * NUMBERS + text.len());
    for value in numbers.0 {
        packed.extend_from_slice(&value.to_le_bytes());
    }
    packed.extend_from_slice(text.as_bytes());
    argv[ARG_NUMBERS - 1] = packed;
    argv
}

/// The script's replies (all but `window`'s) are one string each: their values as
/// little-endian doubles ([`REPLY_VALUE`], `struct.pack`'s format for each: the script's
/// numbers themselves, whole numbers below 2^53 that a double holds exactly), in the order of
/// the array they stand for. Redis's conversion of an array reply costs it about 9k
/// instructions whatever its length; packing a few values costs it about 3k.
pub(crate) const REPLY_VALUE: &str = "d";
/// How many bytes each value of a packed reply takes.
pub(crate) const REPLY_VALUE_BYTES: usize = 8;

layout! {
    /// The values of the hot path's reply while closed (`SHORT` in the script), in order;
    /// the script packs its locals named as in [`Short::NAMES`].
    Short {
        /// The generation.
        Generation = "gen",
        /// The script's clock.
        Now = "now",
        /// The key's epoch.
        Epoch = "ep",
        /// The key's sequence.
        Sequence = "sq",
        /// The window's calls.
        Calls = "tc",
        /// The window's failures.
        Failures = "tf",
        /// When probes last closed the breaker (0: the last close was a reset).
        ClosedByProbes = "ca",
    }
}

/// How many values the hot path's reply while closed has.
pub(crate) const SHORT: usize = Short::NAMES.len();
