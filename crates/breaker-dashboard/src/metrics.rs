//! The fleet's shared state in the Prometheus text exposition format (version 0.0.4).

use std::cmp::Ordering;
use std::fmt::Write as _;

use breaker_core::{Override, State, StoreError, Timestamp};

use crate::store::{BreakerView, DashboardStore};

/// How many breakers an exposition holds unless told otherwise.
pub const DEFAULT_METRICS_CAP: usize = 1_000;

/// The content type of the exposition.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Reads every breaker of `store` and renders the exposition of at most `cap` of them: open,
/// half-open and overridden breakers first, then the rest in natural order of their names.
/// When the store cannot answer, the exposition says so (`breaker_store_up 0`) and holds no
/// breaker.
pub async fn metrics<S: DashboardStore>(store: &S, cap: usize) -> String {
    render(&store.breakers().await, cap)
}

/// The exposition of a listing (or of the store's failure to list), at most `cap` breakers.
pub(crate) fn render(listing: &Result<Vec<BreakerView>, StoreError>, cap: usize) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let (up, views) = match listing {
        Ok(views) => (1, views),
        Err(_) => (0, &empty),
    };
    family(
        &mut out,
        "breaker_store_up",
        "Whether the store answered the dashboard's last read (1) or not (0).",
    );
    let _ = writeln!(out, "breaker_store_up {up}");
    let mut shown: Vec<&BreakerView> = views.iter().collect();
    shown.sort_by(|a, b| fleet_order(a, b));
    shown.truncate(cap);
    family(
        &mut out,
        "breaker_breakers",
        "Breakers registered in the store.",
    );
    let _ = writeln!(out, "breaker_breakers {}", views.len());
    family(
        &mut out,
        "breaker_breakers_exposed",
        "Breakers in this exposition: at most the cap (--metrics-cap).",
    );
    let _ = writeln!(out, "breaker_breakers_exposed {}", shown.len());
    family(
        &mut out,
        "breaker_exposition_truncated",
        "1 when the cap left breakers out of this exposition (open and overridden ones are kept first).",
    );
    let _ = writeln!(
        out,
        "breaker_exposition_truncated {}",
        u8::from(shown.len() < views.len())
    );

    let (readable, unreadable): (Vec<&BreakerView>, Vec<&BreakerView>) =
        shown.into_iter().partition(|v| v.unreadable.is_none());
    family(
        &mut out,
        "breaker_unreadable",
        "1 for a breaker the store lists but cannot read (garbage in its keys).",
    );
    for view in &unreadable {
        let _ = writeln!(
            out,
            "breaker_unreadable{{name=\"{}\"}} 1",
            escape(&view.name)
        );
    }
    family(
        &mut out,
        "breaker_state",
        "The breaker's automatic state: 1 for the current value of the state label, 0 for the others.",
    );
    for view in &readable {
        for state in [State::Closed, State::Open, State::HalfOpen] {
            let _ = writeln!(
                out,
                "breaker_state{{name=\"{}\",state=\"{state}\"}} {}",
                escape(&view.name),
                u8::from(view.snapshot.state == state)
            );
        }
    }
    family(
        &mut out,
        "breaker_override",
        "The operator override in force: 1 for the current value of the override label, 0 for the others.",
    );
    for view in &readable {
        for mode in [Override::Auto, Override::ForcedOpen, Override::ForcedClosed] {
            let _ = writeln!(
                out,
                "breaker_override{{name=\"{}\",override=\"{mode}\"}} {}",
                escape(&view.name),
                u8::from(view.snapshot.override_mode == mode)
            );
        }
    }
    let timestamps: [Family<Option<Timestamp>>; 4] = [
        (
            "breaker_open_until_timestamp_seconds",
            "When the breaker's open period ends (Unix time), while it is open.",
            |v| v.snapshot.open_until,
        ),
        (
            "breaker_override_until_timestamp_seconds",
            "When the operator override ends (Unix time), if it has an end.",
            |v| v.snapshot.override_until,
        ),
        (
            "breaker_ramping_until_timestamp_seconds",
            "When the ramp-up after a close ends (Unix time), while ramping.",
            |v| v.snapshot.ramping_until,
        ),
        (
            "breaker_last_seen_timestamp_seconds",
            "When a process last registered the breaker (Unix time).",
            |v| v.last_seen,
        ),
    ];
    for (name, help, read) in timestamps {
        family(&mut out, name, help);
        for view in &readable {
            if let Some(at) = read(view) {
                let _ = writeln!(
                    out,
                    "{name}{{name=\"{}\"}} {}",
                    escape(&view.name),
                    seconds(at)
                );
            }
        }
    }
    let gauges: [Family<String>; 6] = [
        (
            "breaker_generation",
            "The breaker's generation: it grows by one at each trip and each close.",
            |v| v.snapshot.generation.to_string(),
        ),
        (
            "breaker_window_calls",
            "Calls counted in the breaker's sliding window.",
            |v| v.snapshot.counts.calls.to_string(),
        ),
        (
            "breaker_window_failures",
            "Failures counted in the breaker's sliding window.",
            |v| v.snapshot.counts.failures.to_string(),
        ),
        (
            "breaker_window_failure_ratio",
            "Failures over calls in the breaker's sliding window (0 to 1).",
            |v| number(v.snapshot.counts.failure_rate() / 100.0),
        ),
        (
            "breaker_probes_in_flight",
            "Half-open probes holding a slot.",
            |v| v.snapshot.probes_in_flight.to_string(),
        ),
        (
            "breaker_policy_conflict",
            "1 when processes use the breaker with different policies.",
            |v| u8::from(v.policy_conflict()).to_string(),
        ),
    ];
    for (name, help, read) in gauges {
        family(&mut out, name, help);
        for view in &readable {
            let _ = writeln!(
                out,
                "{name}{{name=\"{}\"}} {}",
                escape(&view.name),
                read(view)
            );
        }
    }
    out
}

/// A gauge family of one sample per breaker: its name, its help, and the sample's value.
type Family<T> = (&'static str, &'static str, fn(&BreakerView) -> T);

/// `# HELP` and `# TYPE` of a gauge family.
fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

fn seconds(at: Timestamp) -> String {
    let ms = at.as_millis();
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn number(value: f64) -> String {
    if value.is_finite() {
        value.to_string()
    } else {
        "NaN".to_owned()
    }
}

/// A label value as the text format wants it: backslash, double quote and line feed escaped.
pub(crate) fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// How an operator wants a fleet ordered: open, half-open and overridden breakers (and
/// unreadable ones) first, then names in natural order (`svc-2` before `svc-10`).
pub(crate) fn fleet_order(a: &BreakerView, b: &BreakerView) -> Ordering {
    let rank = |v: &BreakerView| {
        if v.unreadable.is_some() {
            return 0;
        }
        match (v.snapshot.state, v.snapshot.override_mode) {
            (State::Open, _) | (_, Override::ForcedOpen) => 1,
            (State::HalfOpen, _) => 2,
            (_, Override::ForcedClosed) => 3,
            _ => 4,
        }
    };
    rank(a)
        .cmp(&rank(b))
        .then_with(|| natural(&a.name, &b.name))
}

/// Natural order: runs of digits compare as numbers, the rest as text.
pub(crate) fn natural(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (digits(a), digits(b));
                let trim = |s: &[u8]| -> usize { s.iter().take_while(|c| **c == b'0').count() };
                let (na, nb) = (
                    &a[trim(&a[..da]).min(da)..da],
                    &b[trim(&b[..db]).min(db)..db],
                );
                let order = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if order != Ordering::Equal {
                    return order;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use breaker_core::{Policy, StoreErrorKind};

    use super::*;

    fn view(name: &str) -> BreakerView {
        BreakerView::unreadable(name, "x")
    }

    #[test]
    fn names_sort_naturally() {
        let mut names = vec!["svc-10", "svc-2", "svc-1", "svc-02x", "a", "svc-100"];
        names.sort_by(|a, b| natural(a, b));
        assert_eq!(
            names,
            ["a", "svc-1", "svc-2", "svc-02x", "svc-10", "svc-100"]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd}"), "a\\\"b\\\\c\\nd}");
    }

    #[test]
    fn the_exposition_has_one_state_at_one_and_says_when_it_cut() {
        let mut open = BreakerView::unreadable("svc-9", "x");
        open.unreadable = None;
        open.policies = vec![Policy::default()];
        open.snapshot.state = State::Open;
        open.snapshot.open_until = Some(Timestamp::from_millis(1_500));
        let mut closed = open.clone();
        closed.name = "svc-1".to_owned();
        closed.snapshot.state = State::Closed;
        closed.snapshot.open_until = None;
        let text = render(&Ok(vec![closed.clone(), open.clone(), view("bad\"one")]), 2);
        assert!(
            text.contains("breaker_state{name=\"svc-9\",state=\"open\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("breaker_state{name=\"svc-9\",state=\"closed\"} 0\n"));
        assert!(text.contains("breaker_open_until_timestamp_seconds{name=\"svc-9\"} 1.500\n"));
        assert!(text.contains("breaker_unreadable{name=\"bad\\\"one\"} 1\n"));
        assert!(
            !text.contains("svc-1\""),
            "the cap keeps the unreadable and open first"
        );
        assert!(text.contains("breaker_exposition_truncated 1\n"));
        assert!(text.contains("breaker_breakers 3\n"));
        assert!(!text.contains("_total"));
        let down = render(
            &Err(StoreError::new(StoreErrorKind::Unavailable, "down")),
            10,
        );
        assert!(down.contains("breaker_store_up 0\n"));
        // Each family's samples sit together, after its HELP and TYPE.
        let mut seen = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let family = line.split(['{', ' ']).next().unwrap_or_default().to_owned();
            if seen.last() != Some(&family) {
                assert!(!seen.contains(&family), "{family} split in two");
                seen.push(family);
            }
        }
    }
}
