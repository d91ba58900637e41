//! What the dashboard needs from a store, and the values it shows.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use breaker_core::{Action, Bucket, HistoryEntry, Policy, Snapshot, StoreError, Timestamp};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// What the dashboard reads from a store and asks of it: every breaker with its window, the
/// history of transitions, and operator actions on a breaker by name.
///
/// Implemented for Redis by [`RedisBreakers`](crate::RedisBreakers); a service can implement
/// it over its own in-process breakers to show them with the same page.
pub trait DashboardStore: Send + Sync + 'static {
    /// Every breaker the store knows, with its live state and, where the store can tell
    /// at little cost, its window's buckets.
    fn breakers(&self) -> impl Future<Output = Result<Vec<BreakerView>, StoreError>> + Send;

    /// Breaker `name` with its live state and, where the store can tell, its window's
    /// buckets (`None`: the store does not know it). By default, found in
    /// [`breakers`](DashboardStore::breakers).
    fn breaker(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<BreakerView>, StoreError>> + Send {
        async move {
            let views = self.breakers().await?;
            Ok(views.into_iter().find(|view| view.name == name))
        }
    }

    /// The newest `count` entries of breaker `name`'s history, or of every breaker's merged,
    /// newest first. `count` is at least 1.
    fn history(
        &self,
        name: Option<&str>,
        count: usize,
    ) -> impl Future<Output = Result<Vec<HistoryEntry>, StoreError>> + Send;

    /// Applies `action` to breaker `name`, for every process sharing the store. A name the
    /// store does not know is an error of kind
    /// [`NotFound`](breaker_core::StoreErrorKind::NotFound).
    fn act(
        &self,
        name: &str,
        action: Action,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What the store's server has spent so far, for the page's cost line: counters the
    /// dashboard samples at each refresh. `None` (the default): the store cannot say. An
    /// error of kind [`Config`](breaker_core::StoreErrorKind::Config) means the store's
    /// credentials may not ask (an ACL without `INFO`), which the page says.
    fn usage(&self) -> impl Future<Output = Result<Option<StoreUsage>, StoreError>> + Send {
        async { Ok(None) }
    }
}

/// What a store's server has spent since it started: the dashboard divides the change
/// between two samples by the time between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreUsage {
    /// CPU time, all threads.
    pub cpu: Duration,
    /// Script calls (for Redis, `EVALSHA` and `EVAL`).
    pub script_calls: u64,
    /// Commands processed (those that scripts run included).
    pub commands: u64,
}

impl StoreUsage {
    /// Usage counters as the store's server reports them.
    pub fn new(cpu: Duration, script_calls: u64, commands: u64) -> StoreUsage {
        StoreUsage {
            cpu,
            script_calls,
            commands,
        }
    }
}

/// One breaker as the dashboard shows it. Serialized as `breaker status --json` prints each
/// breaker, plus `buckets` when they are known.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BreakerView {
    /// The breaker's name (any UTF-8).
    pub name: String,
    /// Its live state.
    pub snapshot: Snapshot,
    /// Every policy processes use it with, newest first: more than one means they disagree.
    pub policies: Vec<Policy>,
    /// When a process first registered it, if the store keeps a registry.
    pub first_seen: Option<Timestamp>,
    /// When a process last registered it, if the store keeps a registry.
    pub last_seen: Option<Timestamp>,
    /// The window's live buckets, oldest first, if the store can read them.
    pub buckets: Option<Vec<Bucket>>,
    /// Why the breaker could not be read (garbage in its keys, a policy that does not
    /// parse), if it could not: then only its name is known, and the rest are still listed.
    pub unreadable: Option<String>,
}

impl BreakerView {
    /// A breaker `name` in state `snapshot`, used with `policy`; nothing else known yet.
    pub fn new(name: impl Into<String>, snapshot: Snapshot, policy: Policy) -> BreakerView {
        BreakerView {
            name: name.into(),
            snapshot,
            policies: vec![policy],
            first_seen: None,
            last_seen: None,
            buckets: None,
            unreadable: None,
        }
    }

    /// A breaker `name` that the store lists but cannot read, and why. It reads as a closed
    /// breaker with the default policy and no calls, and serializes with `"state":
    /// "unreadable"` and `"error"`.
    pub fn unreadable(name: impl Into<String>, why: impl fmt::Display) -> BreakerView {
        let policy = Policy::default();
        let window = breaker_core::store::BucketWindow::new(&policy);
        let snapshot =
            breaker_core::store::Circuit::new().snapshot(&policy, Timestamp::ZERO, &window);
        let mut view = BreakerView::new(name, snapshot, policy);
        view.policies.clear();
        view.unreadable = Some(why.to_string());
        view
    }

    /// Whether processes use this breaker with different policies.
    pub fn policy_conflict(&self) -> bool {
        self.policies.len() > 1
    }
}

impl Serialize for BreakerView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let snapshot = &self.snapshot;
        let policy = self.policies.first();
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        if let Some(why) = &self.unreadable {
            map.serialize_entry("state", "unreadable")?;
            map.serialize_entry("error", why)?;
            return map.end();
        }
        map.serialize_entry("state", &snapshot.state.to_string())?;
        map.serialize_entry("calls", &snapshot.counts.calls)?;
        map.serialize_entry("failures", &snapshot.counts.failures)?;
        map.serialize_entry("failure_rate", &snapshot.counts.failure_rate())?;
        map.serialize_entry("open_until_ms", &snapshot.open_until.map(millis))?;
        map.serialize_entry("override", &snapshot.override_mode.to_string())?;
        map.serialize_entry("override_until_ms", &snapshot.override_until.map(millis))?;
        map.serialize_entry("ramping_until_ms", &snapshot.ramping_until.map(millis))?;
        map.serialize_entry("generation", &snapshot.generation)?;
        map.serialize_entry("probes_in_flight", &snapshot.probes_in_flight)?;
        map.serialize_entry("policy_conflict", &self.policy_conflict())?;
        map.serialize_entry("policies", &self.policies)?;
        map.serialize_entry("first_seen_ms", &self.first_seen.map(millis))?;
        map.serialize_entry("last_seen_ms", &self.last_seen.map(millis))?;
        map.serialize_entry("window_ms", &policy.map(|p| p.window().as_millis() as u64))?;
        map.serialize_entry("bucket_ms", &policy.map(|p| p.bucket().as_millis() as u64))?;
        if let Some(buckets) = &self.buckets {
            map.serialize_entry("buckets", buckets)?;
        }
        map.end()
    }
}

fn millis(at: Timestamp) -> u64 {
    at.as_millis()
}
