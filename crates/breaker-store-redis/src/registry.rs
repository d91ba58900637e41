//! The registry: which breakers exist, with which policies. Written when a breaker is
//! created, never on the call path.

use std::collections::HashMap;

use breaker_core::{Policy, Snapshot, StoreError, StoreErrorKind, Timestamp};
use redis::Cmd;

use crate::keys::Keys;

/// One breaker as the registry knows it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BreakerInfo {
    /// The breaker's name.
    pub name: String,
    /// When a process first registered it (milliseconds since the Unix epoch, or the
    /// injected clock's time).
    pub first_seen: Timestamp,
    /// When a process last registered it.
    pub last_seen: Timestamp,
    /// Every policy processes registered it with, newest first: more than one means processes
    /// disagree.
    pub policies: Vec<Policy>,
    /// Its live state, read with the newest policy.
    pub snapshot: Snapshot,
}

impl BreakerInfo {
    /// Whether processes registered this breaker with different policies.
    pub fn policy_conflict(&self) -> bool {
        self.policies.len() > 1
    }
}

/// A breaker's policies, read: the newest (what its state is read with), all of them newest
/// first, and when a process last registered it.
#[cfg(feature = "tokio")]
pub(crate) type Found = (Policy, Vec<Policy>, Timestamp);

/// The policies earlier listings of a store read, by breaker name, with when: reused by
/// listings that ask for it ([`ListRequest::reuse_policies`]). Holds only the names of the
/// last listing that used it.
#[cfg(feature = "tokio")]
#[derive(Default)]
pub(crate) struct KnownPolicies(std::sync::Mutex<HashMap<String, (std::time::Instant, Found)>>);

#[cfg(feature = "tokio")]
impl KnownPolicies {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (std::time::Instant, Found)>> {
        // Entries are inserted and removed whole: a panic elsewhere leaves none half-made.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `name`'s policies, if read within `fresh_for`.
    pub(crate) fn fresh(&self, name: &str, fresh_for: std::time::Duration) -> Option<Found> {
        let known = self.lock();
        let (at, found) = known.get(name)?;
        (at.elapsed() < fresh_for).then(|| found.clone())
    }

    pub(crate) fn remember(&self, name: &str, found: &Found) {
        self.lock()
            .insert(name.to_owned(), (std::time::Instant::now(), found.clone()));
    }

    /// Forgets every name but `names`.
    pub(crate) fn keep_only<'a>(&self, names: impl Iterator<Item = &'a str>) {
        let names: std::collections::HashSet<&str> = names.collect();
        self.lock().retain(|name, _| names.contains(name.as_str()));
    }
}

/// Registration: the name in the registry (first-seen kept), the policy in the breaker's
/// policies hash, both with a TTL that only ever grows. Plain commands, one key each: in a Cluster the registry
/// and the breaker live in different slots, and the blocking cluster client has no pipelines.
pub(crate) fn register(
    keys: &Keys,
    name: &str,
    policy: &Policy,
    now: Timestamp,
    ttl_ms: u64,
) -> Result<[redis::Pipeline; 2], StoreError> {
    let policy_json = serde_json::to_string(policy).map_err(|err| {
        StoreError::new(
            StoreErrorKind::Config,
            format!("policy of {name:?} cannot be encoded"),
        )
        .with_source(err)
    })?;
    let ttl_ms = i64::try_from(ttl_ms).unwrap_or(i64::MAX);
    // Two requests, each on one key (one Cluster slot), the policy first: a listing that
    // meets a name without policies prunes it, so the name goes in only once its policy is
    // there.
    let mut policies = redis::pipe();
    policies.add_command(Cmd::hset(&keys.policies, policy_json, now.as_millis()));
    for cmd in extend(&keys.policies, ttl_ms) {
        policies.add_command(cmd);
    }
    let mut registry = redis::pipe();
    registry.add_command(Cmd::hset_nx(&keys.registry, name, now.as_millis()));
    for cmd in extend(&keys.registry, ttl_ms) {
        registry.add_command(cmd);
    }
    Ok([policies, registry])
}

/// Sets `key` to expire in `ttl_ms` unless it already lives longer: a key without an expiry
/// gets one (`NX`), and one with a shorter expiry gets this one (`GT`). So the registry lives
/// as long as the longest idle TTL of the processes that use it, never as short as the last
/// caller's.
fn extend(key: &str, ttl_ms: i64) -> [Cmd; 2] {
    let pexpire = |condition: &str| {
        let mut cmd = redis::cmd("PEXPIRE");
        cmd.arg(key).arg(ttl_ms).arg(condition);
        cmd
    };
    [pexpire("NX"), pexpire("GT")]
}

/// Reads the registry's names and first-seen times.
pub(crate) fn names(keys_prefix: &str) -> Cmd {
    Cmd::hgetall(format!("{keys_prefix}:registry"))
}

/// Parses the registry hash.
pub(crate) fn parse_names(raw: HashMap<String, String>) -> Vec<(String, Timestamp)> {
    let mut names: Vec<(String, Timestamp)> = raw
        .into_iter()
        .map(|(name, first)| (name, Timestamp::from_millis(first.parse().unwrap_or(0))))
        .collect();
    names.sort();
    names
}

/// Parses one breaker's policies hash: policies newest first, with the last time seen.
/// Entries that do not parse are skipped, so one bad writer cannot hide the others.
pub(crate) fn parse_policies(raw: HashMap<String, String>) -> (Vec<Policy>, Timestamp) {
    let mut seen: Vec<(u64, Policy)> = raw
        .into_iter()
        .filter_map(|(json, at)| Some((at.parse().ok()?, serde_json::from_str(&json).ok()?)))
        .collect();
    seen.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let last = seen.first().map_or(0, |(at, _)| *at);
    (
        seen.into_iter().map(|(_, policy)| policy).collect(),
        Timestamp::from_millis(last),
    )
}
