//! What the dashboard needs from a store, and the values it shows.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use breaker_core::{
    AsyncOperate, Bucket, HistoryEntry, Override, Policy, Snapshot, StoreError, Timestamp,
};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// What the dashboard reads from a store and asks of it: every breaker with its window, the
/// history of transitions, and operator actions on a breaker by name.
///
/// Implemented for Redis by [`RedisBreakers`](crate::RedisBreakers); a service can implement
/// it over its own in-process breakers to show them with the same page.
pub trait DashboardStore: Send + Sync + 'static {
    /// Every breaker the store knows, with its live state and, where the store can tell,
    /// its window's buckets.
    fn breakers(&self) -> impl Future<Output = Result<Vec<BreakerView>, StoreError>> + Send;

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
}

/// An operator action on one breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Open now.
    Trip,
    /// Close now and clear the window.
    Reset,
    /// Set an override (`Auto` lifts one) for a while, or until the next override (`None`).
    Override(Override, Option<Duration>),
}

impl Action {
    /// The actions' names, as [`parse`](Action::parse) takes them.
    pub const NAMES: [&'static str; 5] = ["trip", "reset", "force-open", "force-closed", "auto"];

    /// The action named as in the API's paths and the `breaker` command (`trip`, `reset`,
    /// `force-open`, `force-closed`, `auto`), with an optional duration for the overrides.
    pub fn parse(name: &str, duration: Option<Duration>) -> Result<Action, String> {
        let action = match name {
            "trip" => Action::Trip,
            "reset" => Action::Reset,
            "auto" => Action::Override(Override::Auto, None),
            "force-open" => return Ok(Action::Override(Override::ForcedOpen, duration)),
            "force-closed" => return Ok(Action::Override(Override::ForcedClosed, duration)),
            other => {
                return Err(format!(
                    "unknown action {other:?}: use trip, reset, force-open, force-closed or auto"
                ));
            }
        };
        match duration {
            None => Ok(action),
            Some(_) => Err(format!(
                "{name} takes no duration: only force-open and force-closed do"
            )),
        }
    }

    /// Applies this action to `breaker`, through the store's operator actions: what a
    /// [`DashboardStore::act`] does once it has found the breaker by name.
    pub async fn apply<B: AsyncOperate + Sync>(self, breaker: &B) -> Result<(), StoreError> {
        match self {
            Action::Trip => breaker.trip().await.map(drop),
            Action::Reset => breaker.reset().await.map(drop),
            Action::Override(mode, duration) => breaker.set_override(mode, duration).await,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Trip => f.write_str("trip"),
            Action::Reset => f.write_str("reset"),
            Action::Override(Override::Auto, _) => f.write_str("auto"),
            Action::Override(mode, duration) => {
                let name = match mode {
                    Override::ForcedOpen => "force-open",
                    Override::ForcedClosed => "force-closed",
                    _ => "override",
                };
                f.write_str(name)?;
                match duration {
                    Some(duration) => write!(f, " for {}", humantime::format_duration(*duration)),
                    None => Ok(()),
                }
            }
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
        let snapshot = breaker_core::Circuit::new().snapshot(&policy, Timestamp::ZERO, &window);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_as_the_command_names_them() {
        let ten = Some(Duration::from_secs(600));
        assert_eq!(Action::parse("trip", None), Ok(Action::Trip));
        assert_eq!(
            Action::parse("force-open", ten),
            Ok(Action::Override(Override::ForcedOpen, ten))
        );
        assert_eq!(
            Action::parse("auto", None),
            Ok(Action::Override(Override::Auto, None))
        );
        assert!(Action::parse("reset", ten).is_err());
        assert!(Action::parse("explode", None).is_err());
        assert_eq!(
            Action::Override(Override::ForcedClosed, ten).to_string(),
            "force-closed for 10m"
        );
    }
}
