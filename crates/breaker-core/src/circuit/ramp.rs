//! The ramp after a close by probes: which share of calls goes, and which calls.

use std::time::Duration;

use super::{RejectReason, Rejected};
use crate::Timestamp;

/// The share of calls a ramp admits at first, in per mille.
pub const RAMP_START_PER_MILLE: u64 = 100;

/// The share of calls admitted `elapsed_ms` into a ramp of `ramp_ms`, in per mille: it grows
/// in a straight line from [`RAMP_START_PER_MILLE`] (10 %) at the close to 1000 (100 %) at the
/// end of the ramp.
pub fn ramp_share(elapsed_ms: u64, ramp_ms: u64) -> u64 {
    if ramp_ms == 0 || elapsed_ms >= ramp_ms {
        return 1000;
    }
    let grown =
        u128::from(1000 - RAMP_START_PER_MILLE) * u128::from(elapsed_ms) / u128::from(ramp_ms);
    RAMP_START_PER_MILLE + u64::try_from(grown).unwrap_or(0)
}

/// Which calls a ramp admits, one process's calls in turn: each call adds the share (per
/// mille) to a credit, and a call is admitted when the credit reaches 1000, which it then
/// spends. So exactly the share of calls goes, spread evenly, with no randomness: every store
/// and the reference model admit the same calls. The first call of a ramp is admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RampCredit(pub(super) u64);

impl Default for RampCredit {
    fn default() -> RampCredit {
        RampCredit::new()
    }
}

impl RampCredit {
    /// The credit at the start of a ramp.
    pub fn new() -> RampCredit {
        RampCredit(1000 - 1)
    }

    /// The ramp's decision for one ordinary call at `now`, in a ramp of `ramp_ms` that started
    /// at `from` (a clock read before it counts as the start): `None` once the ramp is over
    /// (forget it), else whether the call goes, or its rejection (`RampingUp`, with the
    /// ramp's `Retry-After`).
    pub fn decide(
        &mut self,
        from: Timestamp,
        now: Timestamp,
        ramp_ms: u64,
    ) -> Option<Result<(), Rejected>> {
        let elapsed = u64::try_from(now.saturating_since(from).as_millis()).unwrap_or(u64::MAX);
        if elapsed >= ramp_ms {
            return None;
        }
        Some(if self.admit(ramp_share(elapsed, ramp_ms)) {
            Ok(())
        } else {
            Err(Rejected::new(
                RejectReason::RampingUp,
                ramp_retry_after(elapsed, ramp_ms),
            ))
        })
    }

    /// Whether the next call is admitted at `share_per_mille`.
    pub fn admit(&mut self, share_per_mille: u64) -> bool {
        self.0 = self.0.saturating_add(share_per_mille.min(1000));
        if self.0 >= 1000 {
            self.0 -= 1000;
            true
        } else {
            false
        }
    }
}

/// How long a call rejected by a ramp is asked to wait: a second, or what is left of the ramp
/// if less (at least a millisecond).
pub fn ramp_retry_after(elapsed_ms: u64, ramp_ms: u64) -> Duration {
    Duration::from_millis(ramp_ms.saturating_sub(elapsed_ms).clamp(1, 1000))
}
