//! Reading a breaker's history of transitions and operator actions: a capped stream per
//! breaker, written by the script.

use breaker_core::{HistoryEntry, StoreError, Timestamp};
use redis::Cmd;

use crate::keys::Keys;

/// The newest `count` entries of one breaker's history, newest first.
pub(crate) fn read(keys: &Keys, count: usize) -> Cmd {
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(&keys.history)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(count);
    cmd
}

/// Parses `XREVRANGE` entries. Fields that do not parse are kept as text; an entry with no
/// time or event is skipped, so one bad writer cannot hide the others.
pub(crate) fn parse(name: &str, raw: Vec<(String, Vec<String>)>) -> Vec<HistoryEntry> {
    raw.into_iter()
        .filter_map(|(_, fields)| {
            let mut pairs: Vec<(String, String)> = fields
                .chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            let mut take = |field: &str| {
                let at = pairs.iter().position(|(name, _)| name == field)?;
                Some(pairs.remove(at).1)
            };
            let at = take("at")?.parse().ok()?;
            let event = take("event")?;
            let generation = take("gen")
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            let mut entry = HistoryEntry::new(name, Timestamp::from_millis(at), event, generation);
            entry.details = pairs;
            Some(entry)
        })
        .collect()
}

/// Several breakers' entries merged, newest first, at most `count`.
pub(crate) fn merge(mut entries: Vec<HistoryEntry>, count: usize) -> Vec<HistoryEntry> {
    entries.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.name.cmp(&b.name)));
    entries.truncate(count);
    entries
}

/// An error if `count` is zero (`XREVRANGE ... COUNT 0` would answer everything).
pub(crate) fn check_count(count: usize) -> Result<(), StoreError> {
    if count == 0 {
        return Err(StoreError::new(
            breaker_core::StoreErrorKind::Config,
            "history count must be at least 1",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_merge_newest_first() {
        let raw = vec![
            (
                "2-0".to_owned(),
                ["at", "20", "event", "closed", "gen", "2", "by", "ops"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            ("1-0".to_owned(), vec!["garbage".to_owned()]),
        ];
        let a = parse("a", raw);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].detail("by"), Some("ops"));
        let b = parse(
            "b",
            vec![(
                "3-0".to_owned(),
                ["at", "30", "event", "tripped"].map(str::to_owned).to_vec(),
            )],
        );
        let merged = merge([a, b].concat(), 5);
        assert_eq!(merged[0].name, "b");
        assert_eq!(merged[1].generation, 2);
        assert!(check_count(0).is_err());
    }
}
