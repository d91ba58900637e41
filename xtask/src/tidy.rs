//! Checks that keep the project's rules, run as tests (`cargo test -p xtask`, part of
//! `cargo xtask test`): no ignored or should-panic tests, no leftover `todo!`, no sleep in a test
//! that is not a poll with a deadline or a deliberate delay, and every shared suite case listed
//! in its macro. Missing docs on public items are denied by the workspace lints in CI.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every Rust file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|name| name != "target" && name != "node_modules")
            {
                files.extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The workspace's Rust sources, with their text, this file left out (it names what it
/// forbids).
fn sources() -> Vec<(PathBuf, String)> {
    let root = root();
    let mut files = rust_files(&root.join("crates"));
    files.extend(rust_files(&root.join("xtask")));
    files
        .into_iter()
        .filter(|path| !path.ends_with("xtask/src/tidy.rs"))
        .filter_map(|path| {
            let text = fs::read_to_string(&path).ok()?;
            Some((
                path.strip_prefix(&root).unwrap_or(&path).to_path_buf(),
                text,
            ))
        })
        .collect()
}

fn offenders(what: impl Fn(&Path, &str) -> Vec<usize>) -> Vec<String> {
    sources()
        .iter()
        .flat_map(|(path, text)| {
            what(path, text)
                .into_iter()
                .map(move |line| format!("{}:{line}", path.display()))
        })
        .collect()
}

fn lines_containing(text: &str, needles: &[&str]) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| needles.iter().any(|needle| line.contains(needle)))
        .map(|(index, _)| index + 1)
        .collect()
}

#[test]
fn no_ignored_or_should_panic_tests() {
    let found = offenders(|_, text| lines_containing(text, &["#[ignore", "#[should_panic"]));
    assert!(
        found.is_empty(),
        "tests run or go; behaviour is asserted, not expected to panic: {found:#?}"
    );
}

#[test]
fn no_leftover_placeholders_in_library_code() {
    let found = offenders(|path, text| {
        if path.components().any(|part| part.as_os_str() == "src") {
            lines_containing(text, &["todo!(", "unimplemented!(", "dbg!("])
        } else {
            Vec::new()
        }
    });
    assert!(found.is_empty(), "placeholders left in: {found:#?}");
}

/// Whether `path` holds test code: a test binary, or the shared test kit.
fn is_test_code(path: &Path) -> bool {
    path.components().any(|part| part.as_os_str() == "tests")
        || path.starts_with("crates/breaker-testkit")
}

#[test]
fn sleeps_in_tests_poll_with_a_deadline_or_say_why() {
    // A test never sleeps to wait for state: it drives time with the manual clock, or polls
    // with a deadline. A sleep must say which it is (or that it stands for a slow peer) in a
    // comment on its line or just above.
    const REASONS: [&str; 5] = ["poll", "deadline", "slow", "pace", "stands for"];
    let found = offenders(|path, text| {
        if !is_test_code(path) {
            return Vec::new();
        }
        let lines: Vec<&str> = text.lines().collect();
        lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.contains("sleep("))
            .filter(|(index, _)| {
                // A poll: a deadline checked in the lines just before the sleep.
                let polls = lines[index.saturating_sub(8)..*index]
                    .iter()
                    .any(|line| line.contains("deadline") || line.contains("< limit"));
                let says_why = lines[index.saturating_sub(3)..=*index].iter().any(|line| {
                    line.split_once("//").is_some_and(|(_, comment)| {
                        let comment = comment.to_lowercase();
                        REASONS.iter().any(|reason| comment.contains(reason))
                    })
                });
                !polls && !says_why
            })
            .map(|(index, _)| index + 1)
            .collect()
    });
    assert!(
        found.is_empty(),
        "sleeps in tests that do not say they poll with a deadline (or stand for a slow peer): {found:#?}"
    );
}

/// The names of the `pub fn` cases in `file` and the names its suite macro lists.
fn suite(file: &str, macro_name: &str) -> (Vec<String>, String) {
    let text = fs::read_to_string(root().join(file)).unwrap_or_default();
    let cases = text
        .lines()
        .filter_map(|line| line.strip_prefix("pub fn "))
        .filter_map(|rest| rest.split('(').next())
        .map(str::to_owned)
        .collect();
    let listed = text
        .split_once(&format!("macro_rules! {macro_name}"))
        .map_or(String::new(), |(_, body)| body.to_owned());
    (cases, listed)
}

#[test]
fn every_conformance_case_is_in_the_suite() {
    let (cases, listed) = suite(
        "crates/breaker-testkit/src/conformance.rs",
        "conformance_suite",
    );
    assert!(!cases.is_empty(), "no conformance cases found");
    let missing: Vec<&String> = cases
        .iter()
        .filter(|case| !listed.contains(case.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "conformance cases no store runs (add them to conformance_suite!): {missing:?}"
    );
}
