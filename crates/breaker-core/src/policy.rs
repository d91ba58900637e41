//! The configuration of one breaker, validated when it is built.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outcome::{Counts, Outcome};

/// Durations are kept in whole milliseconds at most 2^50 (about 35 000 years), so that a time
/// plus a duration stays below 2^53 and a Lua script (whose numbers are doubles) computes with
/// them exactly as Rust does; Redis's `PEXPIRE` takes far more.
pub(crate) const MAX_MILLIS: u64 = 1 << 50;

/// The longest duration a policy holds, and the longest an operator override lasts before it
/// means "forever": 2^50 ms, about 35 000 years.
pub const MAX_DURATION: Duration = Duration::from_millis(MAX_MILLIS);

/// The most buckets a window may have: every store serves it (the Redis script reads a
/// window's buckets in one command, and Lua limits how many values one call may take).
pub const MAX_BUCKETS: u32 = 1_000;

/// The most probes a half-open breaker admits at once (`half_open_probes`): what a store keeps
/// of the probes in flight stays bounded, so reading it has a bounded cost.
pub(crate) const MAX_HALF_OPEN_PROBES: u32 = 100;

/// The largest quorum of reporters a policy may ask for (`minimum_reporters`): what a store
/// keeps to count them stays this small.
pub const MAX_REPORTERS: u32 = 16;

/// What a breaker does when its store cannot answer (down, slow, or holding unreadable data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StoreFailurePolicy {
    /// Allow the call (the default): a store outage never takes the backend down with it.
    #[default]
    FailOpen,
    /// Reject the call.
    FailClosed,
    /// Decide with an in-process breaker of the same policy until the store answers again.
    Local,
}

/// What a breaker does when the backend answers 429 or 503 with `Retry-After`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RetryAfterPolicy {
    /// Open the breaker, for the whole fleet, until the time the backend names (capped by
    /// `max_open_for`), whatever the window's counts say (the default).
    #[default]
    Honour,
    /// Count the response like any other.
    Ignore,
}

/// The validated configuration of one breaker (SPEC section 2).
///
/// Build one with [`Policy::builder`], or deserialize it (durations are human-readable:
/// `"60s"`, `"5m"`); both reject bad values with a [`PolicyError`] that names the field.
///
/// ```
/// use std::time::Duration;
/// use breaker_core::Policy;
///
/// // The original library's example: 5 or more failures that are 10 % or more of the calls
/// // in the last 120 s open the breaker for 300 s.
/// let policy = Policy::builder()
///     .window(Duration::from_secs(120))
///     .minimum_failures(5)
///     .failure_rate(10.0)
///     .open_for(Duration::from_secs(300))
///     .build()?;
/// assert_eq!(policy.window(), Duration::from_secs(120));
///
/// let err = Policy::builder().failure_rate(0.0).build().unwrap_err();
/// assert_eq!(err.field(), "failure_rate");
/// # Ok::<(), breaker_core::PolicyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PolicyConfig", into = "PolicyConfig")]
pub struct Policy {
    /// The fields as configured, all valid.
    config: PolicyConfig,
    /// What the fields come to in whole milliseconds, and the window's buckets as counted.
    millis: Millis,
}

/// A policy's times in whole milliseconds, as stores compute with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Millis {
    window: u64,
    bucket: u64,
    buckets: u32,
    open_for: u64,
    probe_lease: u64,
    max_open_for: u64,
    slow_call: Option<u64>,
    ramp_up: Option<u64>,
}

impl Default for Policy {
    fn default() -> Policy {
        // The defaults are valid by construction; `validate` is the one place that builds a Policy.
        match PolicyConfig::default().validate() {
            Ok(policy) => policy,
            Err(err) => unreachable!("the default policy is invalid: {err}"),
        }
    }
}

impl Policy {
    /// A builder starting from the defaults of SPEC section 2.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            config: PolicyConfig::default(),
        }
    }

    /// A builder starting from this policy's values.
    pub fn to_builder(&self) -> PolicyBuilder {
        PolicyBuilder {
            config: self.config.clone(),
        }
    }

    /// The sliding window over which calls are counted.
    pub fn window(&self) -> Duration {
        self.config.window
    }

    /// The number of buckets the window is counted in; events expire in steps of
    /// [`bucket`](Policy::bucket).
    ///
    /// When `window` divides evenly into the configured `buckets` whole milliseconds, this is
    /// `buckets`. Otherwise each bucket is `window / buckets` rounded up to a whole millisecond
    /// and this is the fewest such buckets that cover the window (at most the configured
    /// number): the counted window is then `buckets() * bucket()`, between `window` and
    /// `window` plus one bucket.
    pub fn buckets(&self) -> u32 {
        self.millis.buckets
    }

    /// The width of one bucket of the window.
    pub fn bucket(&self) -> Duration {
        Duration::from_millis(self.millis.bucket)
    }

    /// Failure percentage (0 < rate <= 100) at or above which the breaker trips.
    pub fn failure_rate(&self) -> f64 {
        self.config.failure_rate
    }

    /// Never trip with fewer failures than this in the window.
    pub fn minimum_failures(&self) -> u64 {
        self.config.minimum_failures
    }

    /// Never trip with fewer calls than this in the window.
    pub fn minimum_calls(&self) -> u64 {
        self.config.minimum_calls
    }

    /// How long the breaker stays open after a trip from closed.
    pub fn open_for(&self) -> Duration {
        self.config.open_for
    }

    /// Calls admitted at once, fleet-wide, once the open period has passed.
    pub fn half_open_probes(&self) -> u32 {
        self.config.half_open_probes
    }

    /// How long a probe that never reports back holds its slot.
    pub fn probe_lease(&self) -> Duration {
        self.config.probe_lease
    }

    /// Probe successes needed to close again.
    pub fn successes_to_close(&self) -> u32 {
        self.config.successes_to_close
    }

    /// Factor applied to the open time on each consecutive re-trip.
    pub fn backoff(&self) -> f64 {
        self.config.backoff
    }

    /// Cap on the backed-off open time.
    pub fn max_open_for(&self) -> Duration {
        self.config.max_open_for
    }

    /// Calls slower than this count as failures, if set.
    pub fn slow_call(&self) -> Option<Duration> {
        self.config.slow_call
    }

    /// After a close, how long the fleet's admitted share of calls takes to grow back to
    /// 100 %, if set (see [`store::ramp_share`](crate::store::ramp_share) for the curve).
    pub fn ramp_up(&self) -> Option<Duration> {
        self.config.ramp_up
    }

    /// The breaker trips only when the window's failures came from at least this many
    /// distinct reporters (processes); 1, the default, is any failure.
    pub fn minimum_reporters(&self) -> u32 {
        self.config.minimum_reporters
    }

    /// What the breaker does when its store fails.
    pub fn on_store_failure(&self) -> StoreFailurePolicy {
        self.config.on_store_failure
    }

    /// What the breaker does with a backend's `Retry-After` on a 429 or 503.
    pub fn retry_after(&self) -> RetryAfterPolicy {
        self.config.retry_after
    }

    /// Whether `counts` (just after a failure was recorded) trip the breaker:
    /// `failures >= minimum_failures && calls >= minimum_calls && failures * 100 >= failure_rate * calls`.
    ///
    /// The rate comparison uses IEEE doubles, exactly as the Redis script does; for whole-number
    /// rates and counts below 2^53 it is exact.
    pub fn trips(&self, counts: Counts) -> bool {
        counts.failures >= self.config.minimum_failures
            && counts.calls >= self.config.minimum_calls
            && (counts.failures as f64) * 100.0 >= self.config.failure_rate * (counts.calls as f64)
    }

    /// The outcome a call finally counts as: a success slower than `slow_call` is a failure.
    #[inline]
    pub fn counts_as(&self, outcome: Outcome, elapsed: Duration) -> Outcome {
        match (outcome, self.millis.slow_call) {
            (Outcome::Success, Some(limit)) if elapsed > Duration::from_millis(limit) => {
                Outcome::Failure
            }
            (outcome, _) => outcome,
        }
    }
}

/// A policy's times in whole milliseconds, as a store computes and keeps them (a Redis script's
/// numbers are doubles: every time stays below 2^53).
pub trait PolicyMillis {
    /// The window, as configured.
    fn window_millis(&self) -> u64;
    /// The width of one bucket.
    fn bucket_millis(&self) -> u64;
    /// The open time of a first trip: `open_for`, capped by `max_open_for`.
    fn open_for_millis(&self) -> u64;
    /// The probe lease.
    fn probe_lease_millis(&self) -> u64;
    /// The cap on the backed-off open time.
    fn max_open_for_millis(&self) -> u64;
    /// The open time that follows one lasting `previous_ms`: multiplied by `backoff`, rounded
    /// down to whole milliseconds, capped by `max_open_for`.
    fn next_open_millis(&self, previous_ms: u64) -> u64;
    /// How long the breaker stays open for a backend that asked to wait `wait` (rounded up to
    /// whole milliseconds, capped by `max_open_for`); `None` when the policy ignores
    /// `Retry-After` or there is nothing to wait for.
    fn hold_off_millis(&self, wait: Duration) -> Option<u64>;
    /// The ramp after a close, if the policy has one.
    fn ramp_up_millis(&self) -> Option<u64>;
}

impl PolicyMillis for Policy {
    #[inline]
    fn window_millis(&self) -> u64 {
        self.millis.window
    }

    #[inline]
    fn bucket_millis(&self) -> u64 {
        self.millis.bucket
    }

    fn open_for_millis(&self) -> u64 {
        self.millis.open_for.min(self.millis.max_open_for)
    }

    fn probe_lease_millis(&self) -> u64 {
        self.millis.probe_lease
    }

    fn max_open_for_millis(&self) -> u64 {
        self.millis.max_open_for
    }

    fn next_open_millis(&self, previous_ms: u64) -> u64 {
        let next = ((previous_ms as f64) * self.config.backoff).floor();
        if next >= self.millis.max_open_for as f64 {
            self.millis.max_open_for
        } else {
            next as u64
        }
    }

    fn ramp_up_millis(&self) -> Option<u64> {
        self.millis.ramp_up
    }

    fn hold_off_millis(&self, wait: Duration) -> Option<u64> {
        if self.config.retry_after == RetryAfterPolicy::Ignore || wait.is_zero() {
            return None;
        }
        let ms = u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        Some(ms.min(self.millis.max_open_for))
    }
}

/// Builds a [`Policy`]; [`PolicyBuilder::build`] validates every field.
#[derive(Clone, Debug)]
#[must_use]
pub struct PolicyBuilder {
    config: PolicyConfig,
}

impl PolicyBuilder {
    /// Validates every field and returns the policy, or an error naming the first bad field.
    pub fn build(self) -> Result<Policy, PolicyError> {
        self.config.validate()
    }
}

/// The policy's fields, written once: the serde form of configuration files (with durations
/// as people write them, `"60s"`, `"5m"`), its defaults, and the builder's setters all come
/// from this list.
macro_rules! policy_fields {
    ($(
        $(#[doc = $doc:literal])*
        $(#[serde($($serde:tt)*)])?
        $field:ident: $ty:ty = $default:expr;
    )*) => {
        /// The unvalidated form of a policy, as written in configuration files.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct PolicyConfig {
            $($(#[serde($($serde)*)])? $field: $ty,)*
        }

        impl Default for PolicyConfig {
            fn default() -> PolicyConfig {
                PolicyConfig { $($field: $default,)* }
            }
        }

        impl PolicyBuilder {
            $(
                $(#[doc = $doc])*
                pub fn $field(mut self, $field: $ty) -> Self {
                    self.config.$field = $field;
                    self
                }
            )*
        }
    };
}

policy_fields! {
    /// Sets the sliding window (default 60 s).
    #[serde(with = "humantime_serde")]
    window: Duration = Duration::from_secs(60);
    /// Sets the number of buckets (default 60, at most 1000).
    buckets: u32 = 60;
    /// Sets the failure percentage that trips the breaker (default 10).
    failure_rate: f64 = 10.0;
    /// Sets the minimum number of failures in the window to trip (default 5).
    minimum_failures: u64 = 5;
    /// Sets the minimum number of calls in the window to trip (default 1).
    minimum_calls: u64 = 1;
    /// Sets how long the breaker stays open after a trip (default 180 s).
    #[serde(with = "humantime_serde")]
    open_for: Duration = Duration::from_secs(180);
    /// Sets how many probes are admitted at once when half-open (default 1).
    half_open_probes: u32 = 1;
    /// Sets how long an unreported probe holds its slot (default 30 s).
    #[serde(with = "humantime_serde")]
    probe_lease: Duration = Duration::from_secs(30);
    /// Sets how many probe successes close the breaker (default 1).
    successes_to_close: u32 = 1;
    /// Sets the backoff factor on consecutive re-trips (default 1.0, a fixed open time).
    backoff: f64 = 1.0;
    /// Sets the cap on the backed-off open time (default 1 h).
    #[serde(with = "humantime_serde")]
    max_open_for: Duration = Duration::from_secs(3600);
    /// Counts calls slower than the limit as failures (default off).
    #[serde(with = "humantime_serde")]
    slow_call: Option<Duration> = None;
    /// Sets what happens when the store fails (default fail-open).
    on_store_failure: StoreFailurePolicy = StoreFailurePolicy::FailOpen;
    /// Sets what a backend's `Retry-After` on a 429 or 503 does (default honour).
    retry_after: RetryAfterPolicy = RetryAfterPolicy::Honour;
    /// After a close, lets the fleet's share of calls grow from 10 % to 100 % over this time
    /// (default off: every call flows at once).
    #[serde(with = "humantime_serde")]
    ramp_up: Option<Duration> = None;
    /// Trips only when the window's failures came from at least this many distinct
    /// processes (default 1: any failure; at most 16).
    minimum_reporters: u32 = 1;
}

/// A policy value was rejected; the error names the field and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    field: &'static str,
    value: String,
    reason: &'static str,
}

impl PolicyError {
    fn new(field: &'static str, value: impl fmt::Display, reason: &'static str) -> PolicyError {
        PolicyError {
            field,
            value: value.to_string(),
            reason,
        }
    }

    /// The name of the offending field, as in configuration files (`failure_rate`).
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The rejected value, as written.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid breaker policy: {} = {}: {}",
            self.field, self.value, self.reason
        )
    }
}

impl std::error::Error for PolicyError {}

fn millis(field: &'static str, value: Duration) -> Result<u64, PolicyError> {
    let shown = || humantime::format_duration(value);
    if value.subsec_nanos() % 1_000_000 != 0 {
        return Err(PolicyError::new(
            field,
            shown(),
            "must be a whole number of milliseconds",
        ));
    }
    match u64::try_from(value.as_millis()) {
        Ok(ms) if ms <= MAX_MILLIS => Ok(ms),
        _ => Err(PolicyError::new(
            field,
            shown(),
            "is too large (at most 2^50 milliseconds, about 35 000 years)",
        )),
    }
}

fn positive_millis(field: &'static str, value: Duration) -> Result<u64, PolicyError> {
    match millis(field, value)? {
        0 => Err(PolicyError::new(
            field,
            humantime::format_duration(value),
            "must be greater than zero",
        )),
        ms => Ok(ms),
    }
}

fn at_most_exact(field: &'static str, value: u64) -> Result<u64, PolicyError> {
    if value > MAX_MILLIS {
        Err(PolicyError::new(
            field,
            value,
            "is too large (at most 2^50)",
        ))
    } else {
        Ok(value)
    }
}

impl PolicyConfig {
    fn validate(self) -> Result<Policy, PolicyError> {
        let window_ms = positive_millis("window", self.window)?;
        if self.buckets == 0 {
            return Err(PolicyError::new(
                "buckets",
                self.buckets,
                "must be at least 1",
            ));
        }
        if self.buckets > MAX_BUCKETS {
            return Err(PolicyError::new(
                "buckets",
                self.buckets,
                "is too large (at most 1000)",
            ));
        }
        if window_ms < u64::from(self.buckets) {
            return Err(PolicyError::new(
                "buckets",
                self.buckets,
                "makes buckets shorter than 1 ms (window / buckets must be at least 1 ms)",
            ));
        }
        // A window that does not divide evenly gets buckets rounded up to a whole millisecond,
        // as few as cover it: the counted window is at most one bucket longer than asked.
        let bucket_ms = window_ms.div_ceil(u64::from(self.buckets));
        let slots = u32::try_from(window_ms.div_ceil(bucket_ms)).unwrap_or(self.buckets);
        let rate = self.failure_rate;
        if !(rate.is_finite() && rate > 0.0 && rate <= 100.0) {
            return Err(PolicyError::new(
                "failure_rate",
                rate,
                "must be a percentage greater than 0 and at most 100",
            ));
        }
        at_most_exact("minimum_failures", self.minimum_failures)?;
        at_most_exact("minimum_calls", self.minimum_calls)?;
        let open_for_ms = positive_millis("open_for", self.open_for)?;
        if self.half_open_probes == 0 || self.half_open_probes > MAX_HALF_OPEN_PROBES {
            return Err(PolicyError::new(
                "half_open_probes",
                self.half_open_probes,
                "must be between 1 and 100",
            ));
        }
        let probe_lease_ms = positive_millis("probe_lease", self.probe_lease)?;
        if self.successes_to_close == 0 {
            return Err(PolicyError::new(
                "successes_to_close",
                0,
                "must be at least 1",
            ));
        }
        let backoff = self.backoff;
        if !(backoff.is_finite() && backoff >= 1.0) {
            return Err(PolicyError::new(
                "backoff",
                backoff,
                "must be a finite factor of at least 1.0",
            ));
        }
        let max_open_for_ms = positive_millis("max_open_for", self.max_open_for)?;
        if max_open_for_ms < open_for_ms {
            return Err(PolicyError::new(
                "max_open_for",
                humantime::format_duration(self.max_open_for),
                "must be at least open_for",
            ));
        }
        let slow_call_ms = match self.slow_call {
            Some(limit) => Some(positive_millis("slow_call", limit)?),
            None => None,
        };
        if self.minimum_reporters == 0 || self.minimum_reporters > MAX_REPORTERS {
            return Err(PolicyError::new(
                "minimum_reporters",
                self.minimum_reporters,
                "must be between 1 and 16",
            ));
        }
        let ramp_up_ms = match self.ramp_up {
            Some(ramp) => Some(positive_millis("ramp_up", ramp)?),
            None => None,
        };
        Ok(Policy {
            millis: Millis {
                window: window_ms,
                bucket: bucket_ms,
                buckets: slots,
                open_for: open_for_ms,
                probe_lease: probe_lease_ms,
                max_open_for: max_open_for_ms,
                slow_call: slow_call_ms,
                ramp_up: ramp_up_ms,
            },
            config: self,
        })
    }
}

impl TryFrom<PolicyConfig> for Policy {
    type Error = PolicyError;

    fn try_from(config: PolicyConfig) -> Result<Policy, PolicyError> {
        config.validate()
    }
}

impl From<Policy> for PolicyConfig {
    fn from(policy: Policy) -> PolicyConfig {
        policy.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(builder: PolicyBuilder) -> (&'static str, String) {
        let err = builder.build().expect_err("policy should be rejected");
        assert!(err.to_string().contains(err.field()), "{err}");
        (err.field(), err.value().to_owned())
    }

    #[test]
    fn defaults_match_the_spec() {
        let p = Policy::default();
        assert_eq!(p.window(), Duration::from_secs(60));
        assert_eq!(p.failure_rate(), 10.0);
        assert_eq!(p.minimum_failures(), 5);
        assert_eq!(p.minimum_calls(), 1);
        assert_eq!(p.open_for(), Duration::from_secs(180));
        assert_eq!(p.half_open_probes(), 1);
        assert_eq!(p.probe_lease(), Duration::from_secs(30));
        assert_eq!(p.successes_to_close(), 1);
        assert_eq!(p.backoff(), 1.0);
        assert_eq!(p.max_open_for(), Duration::from_secs(3600));
        assert_eq!(p.slow_call(), None);
        assert_eq!(p.buckets(), 60);
        assert_eq!(p.bucket_millis(), 1000);
        assert_eq!(p.on_store_failure(), StoreFailurePolicy::FailOpen);
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let b = Policy::builder;
        let cases = [
            (b().failure_rate(0.0), "failure_rate", "0"),
            (b().failure_rate(100.5), "failure_rate", "100.5"),
            (b().failure_rate(f64::NAN), "failure_rate", "NaN"),
            (b().failure_rate(-3.0), "failure_rate", "-3"),
            (b().window(Duration::ZERO), "window", "0s"),
            (
                b().window(Duration::from_micros(1500)),
                "window",
                "1ms 500us",
            ),
            (b().buckets(0), "buckets", "0"),
            (
                b().window(Duration::from_millis(10)).buckets(11),
                "buckets",
                "11",
            ),
            (b().buckets(1_001), "buckets", "1001"),
            (b().backoff(0.5), "backoff", "0.5"),
            (b().backoff(f64::INFINITY), "backoff", "inf"),
            (b().open_for(Duration::ZERO), "open_for", "0s"),
            (b().open_for(Duration::MAX), "open_for", ""),
            (
                b().window(Duration::from_secs(u64::MAX / 1000)),
                "window",
                "",
            ),
            (b().half_open_probes(0), "half_open_probes", "0"),
            (b().half_open_probes(101), "half_open_probes", "101"),
            (b().successes_to_close(0), "successes_to_close", "0"),
            (b().probe_lease(Duration::ZERO), "probe_lease", "0s"),
            (
                b().max_open_for(Duration::from_secs(10)),
                "max_open_for",
                "10s",
            ),
            (b().slow_call(Some(Duration::ZERO)), "slow_call", "0s"),
            (b().minimum_failures(u64::MAX), "minimum_failures", ""),
        ];
        for (builder, field, value) in cases {
            let (got_field, got_value) = field_of(builder);
            assert_eq!(got_field, field);
            if !value.is_empty() {
                assert_eq!(got_value, value);
            }
        }
    }

    #[test]
    fn any_sensible_window_works_with_the_default_buckets() {
        for secs in [1, 7, 10, 60, 90, 600, 3_600] {
            let window = Duration::from_secs(secs);
            let p = Policy::builder().window(window).build().unwrap();
            let counted = u64::from(p.buckets()) * p.bucket_millis();
            let asked = p.window_millis();
            assert!(
                counted >= asked && counted < asked + p.bucket_millis(),
                "{secs}s: {} buckets of {} ms",
                p.buckets(),
                p.bucket_millis()
            );
            assert!(p.buckets() <= 60);
            assert_eq!(p.to_builder().build().unwrap(), p, "round trip");
        }
        let ten = Policy::builder()
            .window(Duration::from_secs(10))
            .build()
            .unwrap();
        assert_eq!((ten.buckets(), ten.bucket_millis()), (60, 167));
        let one = Policy::builder()
            .window(Duration::from_secs(1))
            .build()
            .unwrap();
        assert_eq!((one.buckets(), one.bucket_millis()), (59, 17));
        let json = serde_json::to_string(&one).unwrap();
        assert!(json.contains(r#""buckets":60"#), "as configured: {json}");
        let most = Policy::builder().buckets(MAX_BUCKETS).build().unwrap();
        assert_eq!(most.buckets(), MAX_BUCKETS);
    }

    #[test]
    fn trip_rule_is_exact_at_its_boundary() {
        let p = Policy::builder()
            .failure_rate(50.0)
            .minimum_failures(3)
            .minimum_calls(4)
            .build()
            .unwrap();
        let c = |calls, failures| Counts { calls, failures };
        assert!(p.trips(c(6, 3)));
        assert!(!p.trips(c(7, 3)), "3/7 is under 50 %");
        assert!(!p.trips(c(2, 2)), "too few failures");
        assert!(!p.trips(c(3, 3)), "too few calls");
        assert!(p.trips(c(4, 4)));
        let third = Policy::builder()
            .failure_rate(100.0 / 3.0)
            .minimum_failures(1)
            .build()
            .unwrap();
        assert!(third.trips(c(3, 1)));
    }

    #[test]
    fn backoff_multiplies_and_caps() {
        let p = Policy::builder()
            .open_for(Duration::from_secs(10))
            .backoff(2.5)
            .max_open_for(Duration::from_secs(60))
            .build()
            .unwrap();
        assert_eq!(p.open_for_millis(), 10_000);
        assert_eq!(p.next_open_millis(10_000), 25_000);
        assert_eq!(p.next_open_millis(25_000), 60_000);
        assert_eq!(p.next_open_millis(60_000), 60_000);
    }

    #[test]
    fn slow_successes_are_failures() {
        let p = Policy::builder()
            .slow_call(Some(Duration::from_millis(100)))
            .build()
            .unwrap();
        use Outcome::*;
        assert_eq!(p.counts_as(Success, Duration::from_millis(100)), Success);
        assert_eq!(p.counts_as(Success, Duration::from_millis(101)), Failure);
        assert_eq!(p.counts_as(Ignored, Duration::from_secs(5)), Ignored);
        assert_eq!(
            Policy::default().counts_as(Success, Duration::from_secs(500)),
            Success
        );
    }

    #[test]
    fn deserializes_human_durations_and_validates() {
        let p: Policy = toml::from_str(
            r#"
            window = "2m"
            failure_rate = 10
            minimum_failures = 5
            open_for = "5m"
            slow_call = "1s 500ms"
            on_store_failure = "fail-closed"
            "#,
        )
        .unwrap();
        assert_eq!(p.window(), Duration::from_secs(120));
        assert_eq!(p.open_for(), Duration::from_secs(300));
        assert_eq!(p.slow_call(), Some(Duration::from_millis(1500)));
        assert_eq!(p.on_store_failure(), StoreFailurePolicy::FailClosed);
        assert_eq!(p.buckets(), 60, "unset fields keep their defaults");

        let err = toml::from_str::<Policy>("failure_rate = 0").unwrap_err();
        assert!(err.to_string().contains("failure_rate = 0"), "{err}");
        let err = toml::from_str::<Policy>(r#"window = "soon""#).unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
        let err = toml::from_str::<Policy>("windw = 3").unwrap_err();
        assert!(err.to_string().contains("windw"), "{err}");
    }

    #[test]
    fn serde_round_trips() {
        let p = Policy::builder()
            .slow_call(Some(Duration::from_millis(250)))
            .backoff(2.0)
            .build()
            .unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""window":"1m""#), "{json}");
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
        assert_eq!(p.to_builder().build().unwrap(), p);
    }
}
