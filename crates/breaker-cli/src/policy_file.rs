//! `--policy FILE`: a breaker policy written in TOML, read and validated by the core's serde form.

use std::ops::Range;
use std::path::Path;

use breaker_core::Policy;

use crate::Failure;

/// Reads and validates the policy in the TOML file at `path`.
///
/// Every error is one line naming the file and, where TOML can point at it, the line and the
/// field: a usage error, like a bad flag.
pub(crate) fn load(path: &Path) -> Result<Policy, Failure> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        Failure::Usage(format!(
            "cannot read the policy file {}: {err}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|err| {
        Failure::Usage(format!(
            "policy file {}{}: {}",
            path.display(),
            location(&text, err.span()),
            one_line(err.message())
        ))
    })
}

/// `, line N` and, when the error points at a value, `, field` (for a value of the wrong type or
/// an unreadable duration, toml's message names the value but not the key it belongs to).
///
/// Errors the core's validation raises name their field themselves and point at the whole
/// document, so they get no location.
fn location(text: &str, span: Option<Range<usize>>) -> String {
    let Some(span) = span else {
        return String::new();
    };
    let Some(spanned) = text.get(span.clone()) else {
        return String::new();
    };
    if spanned.trim_end().contains('\n') {
        return String::new();
    }
    let line_start = text[..span.start].rfind('\n').map_or(0, |at| at + 1);
    let line_number = text[..span.start].matches('\n').count() + 1;
    // A policy is flat (`key = value` lines), so the key of a value is what precedes the `=`.
    match text[line_start..span.start].split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => {
            format!(", line {line_number}, {}", key.trim())
        }
        _ => format!(", line {line_number}"),
    }
}

/// toml's messages may span lines; the command prints one line per error.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        match toml::from_str::<Policy>(text) {
            Ok(_) => String::from("no error"),
            Err(err) => format!(
                "{}: {}",
                location(text, err.span()),
                one_line(err.message())
            ),
        }
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let bad_duration = error_of("failure_rate = 20\nwindow = \"soon\"\n");
        assert!(
            bad_duration.starts_with(", line 2, window: "),
            "{bad_duration}"
        );
        assert!(bad_duration.contains("soon"), "{bad_duration}");

        let wrong_type = error_of("buckets = \"many\"");
        assert!(
            wrong_type.starts_with(", line 1, buckets: "),
            "{wrong_type}"
        );

        let unknown = error_of("windw = \"1s\"");
        assert!(unknown.contains("windw"), "{unknown}");

        let invalid = error_of("failure_rate = 0");
        assert!(invalid.contains("failure_rate = 0"), "{invalid}");
        assert!(!invalid.contains('\n'), "{invalid}");

        let syntax = error_of("window = ");
        assert!(syntax.starts_with(", line 1"), "{syntax}");
        assert!(!syntax.contains('\n'), "{syntax}");
    }
}
