//! What operators read besides the live state, whatever the store: a breaker's history of
//! transitions and operator actions, and its window's buckets.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::time::Timestamp;

/// Calls and failures counted in one bucket of a breaker's window.
///
/// Serializes as `{"start_ms", "calls", "failures"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bucket {
    /// When the bucket starts (the store's clock).
    pub start: Timestamp,
    /// Calls counted in it.
    pub calls: u64,
    /// Failures counted in it.
    pub failures: u64,
}

impl Bucket {
    /// A bucket starting at `start` with these counts.
    pub fn new(start: Timestamp, calls: u64, failures: u64) -> Bucket {
        Bucket {
            start,
            calls,
            failures,
        }
    }
}

impl Serialize for Bucket {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("start_ms", &self.start.as_millis())?;
        map.serialize_entry("calls", &self.calls)?;
        map.serialize_entry("failures", &self.failures)?;
        map.end()
    }
}

/// One transition or operator action in a breaker's history.
///
/// Serializes as `{"name", "at_ms", "event", "generation", "details"}`, the details an
/// object in the order the store gave them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// The breaker's name.
    pub name: String,
    /// When it happened (milliseconds since the Unix epoch, by the store's clock).
    pub at: Timestamp,
    /// What happened: `tripped`, `half-opened`, `closed` or `override`.
    pub event: String,
    /// The breaker's generation after it.
    pub generation: u64,
    /// What else is known, in the order the store gave it: for a trip its `cause`
    /// (`threshold`, `probe-failed`, `operator`, `retry-after`), `open_until`, `open_ms`,
    /// `calls` and `failures`; for an override its `mode` and `until` (0: none); for
    /// operator actions `by`, who asked.
    pub details: Vec<(String, String)>,
}

impl HistoryEntry {
    /// An entry with no details.
    pub fn new(
        name: impl Into<String>,
        at: Timestamp,
        event: impl Into<String>,
        generation: u64,
    ) -> HistoryEntry {
        HistoryEntry {
            name: name.into(),
            at,
            event: event.into(),
            generation,
            details: Vec::new(),
        }
    }

    /// This entry with one more detail.
    #[must_use]
    pub fn with_detail(
        mut self,
        field: impl Into<String>,
        value: impl Into<String>,
    ) -> HistoryEntry {
        self.details.push((field.into(), value.into()));
        self
    }

    /// The detail named `field`, if the entry has it.
    pub fn detail(&self, field: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.as_str())
    }
}

impl Serialize for HistoryEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Details<'a>(&'a [(String, String)]);
        impl Serialize for Details<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (field, value) in self.0 {
                    map.serialize_entry(field, value)?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("at_ms", &self.at.as_millis())?;
        map.serialize_entry("event", &self.event)?;
        map.serialize_entry("generation", &self.generation)?;
        map.serialize_entry("details", &Details(&self.details))?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_details_serialize_as_an_object_in_order() {
        let entry = HistoryEntry::new("a", Timestamp::from_millis(5), "tripped", 2)
            .with_detail("cause", "operator")
            .with_detail("by", "ops");
        assert_eq!(entry.detail("by"), Some("ops"));
        assert_eq!(entry.detail("mode"), None);
        let json = serde_json::to_string(&entry).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"name":"a","at_ms":5,"event":"tripped","generation":2,"details":{"cause":"operator","by":"ops"}}"#
        );
        let bucket = serde_json::to_string(&Bucket::new(Timestamp::from_millis(7), 3, 1));
        assert_eq!(
            bucket.unwrap_or_default(),
            r#"{"start_ms":7,"calls":3,"failures":1}"#
        );
    }
}
