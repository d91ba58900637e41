//! Checks that keep the project's rules, run as tests (`cargo test -p xtask`, part of
//! `cargo xtask test`): no ignored or should-panic tests, no leftover `todo!`, no sleep in a test
//! that is not a poll with a deadline or a deliberate delay, every shared suite case listed
//! in its macro, and no import circle between the files of a crate. Missing docs on public
//! items are denied by the workspace lints in CI.

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

/// The import circles between files that were there when the check was written and are being
/// removed, one entry per circle: (crate directory, the top-level modules in it). The check
/// fails on any other circle, and on any circle that reaches beyond these files. Remove an
/// entry when its circle is gone; never add one: a circle is a type in the wrong file, so move
/// the type instead.
const KNOWN_IMPORT_CIRCLES: &[(&str, &[&str])] = &[];

#[test]
fn no_import_circles_between_files() {
    let found: Vec<String> = crate_sources()
        .iter()
        .flat_map(|(name, src)| {
            import_circles(src)
                .into_iter()
                .filter(|circle| !is_known_circle(name, &circle.modules))
                .map(move |circle| format!("{name}: {}", circle.edges.join(", ")))
        })
        .collect();
    assert!(
        found.is_empty(),
        "import circles between files (a circle is a type in the wrong file: move it to the \
         file of the idea it belongs to): {found:#?}"
    );
}

/// Whether `circle` (in crate directory `name`) lies within a known circle.
fn is_known_circle(name: &str, circle: &[String]) -> bool {
    KNOWN_IMPORT_CIRCLES.iter().any(|(known_crate, modules)| {
        *known_crate == name
            && circle
                .iter()
                .all(|module| modules.contains(&module.as_str()))
    })
}

/// The workspace crates each crate may depend on (normal dependencies): the layering that
/// ARCHITECTURE.md states. The core depends on no other workspace crate; stores on the core;
/// the HTTP flow on the core; adapters on the core and the flow; the dashboard on the core and
/// the Redis store it reads; the test kit on the core and the flow. The command and xtask are
/// not libraries and may use anything.
const LAYERS: &[(&str, &[&str])] = &[
    ("breaker-core", &[]),
    ("breaker-store-memory", &["breaker-core"]),
    ("breaker-store-redis", &["breaker-core"]),
    ("breaker-http", &["breaker-core"]),
    ("breaker-reqwest", &["breaker-core", "breaker-http"]),
    ("breaker-ureq", &["breaker-core", "breaker-http"]),
    ("breaker-tower", &["breaker-core", "breaker-http"]),
    (
        "breaker-dashboard",
        &["breaker-core", "breaker-store-redis"],
    ),
    ("breaker-testkit", &["breaker-core", "breaker-http"]),
];

/// The workspace crates a `Cargo.toml` lists under `[dependencies]`.
fn workspace_dependencies(manifest: &str) -> Vec<String> {
    let mut in_dependencies = false;
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && line.starts_with("breaker-") {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn crates_depend_only_on_the_layers_below() {
    let mut wrong = Vec::new();
    for entry in fs::read_dir(root().join("crates"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "breaker-cli" {
            continue;
        }
        let Ok(manifest) = fs::read_to_string(entry.path().join("Cargo.toml")) else {
            continue;
        };
        let Some((_, allowed)) = LAYERS.iter().find(|(crate_name, _)| *crate_name == name) else {
            wrong.push(format!(
                "{name}: not in LAYERS (xtask/src/tidy.rs): say what it may depend on"
            ));
            continue;
        };
        for dependency in workspace_dependencies(&manifest) {
            if !allowed.contains(&dependency.as_str()) {
                wrong.push(format!("{name} depends on {dependency}"));
            }
        }
    }
    assert!(wrong.is_empty(), "crates out of their layer: {wrong:#?}");
}

#[test]
fn dependencies_are_read_from_the_dependencies_table_only() {
    let manifest = "[package]\nname = \"breaker-x\"\n\n[dependencies]\nbreaker-core.workspace = true\n\
                    breaker-http = { path = \"../breaker-http\" }\nserde = \"1\"\n\n\
                    [dev-dependencies]\nbreaker-store-redis.workspace = true\n";
    assert_eq!(
        workspace_dependencies(manifest),
        ["breaker-core", "breaker-http"]
    );
}

/// Each crate of the workspace: its directory's name and its `src` directory.
fn crate_sources() -> Vec<(String, PathBuf)> {
    let root = root();
    let mut crates: Vec<(String, PathBuf)> = fs::read_dir(root.join("crates"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.join("src").is_dir())
        .map(|path| {
            let name = path
                .file_name()
                .map_or(String::new(), |name| name.to_string_lossy().into_owned());
            (name, path.join("src"))
        })
        .collect();
    crates.push(("xtask".to_owned(), root.join("xtask/src")));
    crates.sort();
    crates
}

/// A set of files that import each other.
#[derive(Debug)]
struct Circle {
    /// The top-level modules in it, sorted.
    modules: Vec<String>,
    /// Which imports which, as `from → to`.
    edges: Vec<String>,
}

/// The import circles between the files of the crate in `src`.
///
/// A file is a node: each top-level module of the crate (`src/x.rs` with its children in
/// `src/x/`, which count as its own). An edge is any path into another module, in a `use` or
/// in code: `crate::x::...`, `super::x::...` from a top-level file, or `crate::Name` where the
/// crate root imports `Name` from module `x`; code under `#[cfg(test)]` is left out (a unit
/// test may use any file). The crate root (`lib.rs`, `main.rs`) is the facade every module is
/// declared in, not a node.
fn import_circles(src: &Path) -> Vec<Circle> {
    let mut modules: Vec<String> = Vec::new();
    let mut files: Vec<(String, PathBuf, bool)> = Vec::new();
    let mut roots: Vec<PathBuf> = Vec::new();
    for path in rust_files(src) {
        let Ok(relative) = path.strip_prefix(src) else {
            continue;
        };
        let mut parts = relative.components().map(|part| part.as_os_str());
        let Some(first) = parts.next().and_then(|part| part.to_str()) else {
            continue;
        };
        let top_level = parts.next().is_none();
        let module = first.trim_end_matches(".rs").to_owned();
        if top_level && (module == "lib" || module == "main") {
            roots.push(path);
            continue;
        }
        if !modules.contains(&module) {
            modules.push(module.clone());
        }
        files.push((module, path, top_level));
    }
    // What the root imports: `crate::Name` means the module `Name` comes from.
    let mut imported: Vec<(String, String)> = Vec::new();
    for root in &roots {
        let tokens = tokens(&fs::read_to_string(root).unwrap_or_default());
        for (path, name) in use_trees(&tokens) {
            let mut path = path.as_slice();
            if let [first, rest @ ..] = path
                && (first == "crate" || first == "self")
            {
                path = rest;
            }
            if let Some(module) = path.first().filter(|module| modules.contains(module)) {
                imported.push((name, module.clone()));
            }
        }
    }
    let mut edges: Vec<(String, String)> = Vec::new();
    for (module, path, top_level) in &files {
        let tokens = without_test_code(tokens(&fs::read_to_string(path).unwrap_or_default()));
        for first in paths_into_crate(&tokens, *top_level) {
            let target = if modules.contains(&first) {
                Some(first)
            } else {
                imported
                    .iter()
                    .find(|(name, _)| *name == first)
                    .map(|(_, module)| module.clone())
            };
            let edge = target
                .filter(|target| target != module)
                .map(|target| (module.clone(), target));
            if let Some(edge) = edge.filter(|edge| !edges.contains(edge)) {
                edges.push(edge);
            }
        }
    }
    edges.sort();
    strongly_connected(&modules, &edges)
        .into_iter()
        .map(|modules| Circle {
            edges: edges
                .iter()
                .filter(|(from, to)| modules.contains(from) && modules.contains(to))
                .map(|(from, to)| format!("{from} → {to}"))
                .collect(),
            modules,
        })
        .collect()
}

/// The sets of two or more modules that reach each other along `edges`, each sorted.
fn strongly_connected(modules: &[String], edges: &[(String, String)]) -> Vec<Vec<String>> {
    let reach = |from: &String| {
        let mut seen = vec![from.clone()];
        let mut next = 0;
        while let Some(node) = seen.get(next).cloned() {
            next += 1;
            for (_, to) in edges.iter().filter(|(edge_from, _)| *edge_from == node) {
                if !seen.contains(to) {
                    seen.push(to.clone());
                }
            }
        }
        seen
    };
    let reached: Vec<Vec<String>> = modules.iter().map(reach).collect();
    let mut circles: Vec<Vec<String>> = Vec::new();
    for (index, module) in modules.iter().enumerate() {
        let mut circle: Vec<String> = modules
            .iter()
            .enumerate()
            .filter(|(other, name)| {
                reached[index].contains(name) && reached[*other].contains(module)
            })
            .map(|(_, name)| name.clone())
            .collect();
        circle.sort();
        if circle.len() > 1 && !circles.contains(&circle) {
            circles.push(circle);
        }
    }
    circles.sort();
    circles
}

/// `tokens` without the items under `#[cfg(test)]` (unit tests may use any file).
fn without_test_code(tokens: Vec<String>) -> Vec<String> {
    const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
    let mut kept = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        if !tokens[at..].starts_with(&CFG_TEST.map(str::to_owned)) {
            kept.push(tokens[at].clone());
            at += 1;
            continue;
        }
        // The item ends at its `;`, or at the brace that closes its body.
        at += CFG_TEST.len();
        let mut depth = 0;
        while let Some(token) = tokens.get(at) {
            at += 1;
            match token.as_str() {
                ";" if depth == 0 => break,
                "{" => depth += 1,
                "}" => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    kept
}

/// The first segment of every path into the crate: after `crate::` (not `$crate::`), or after
/// `super::` where it names the crate root (in a top-level file, outside any inline module).
/// A group (`crate::{a::X, Y}`) gives the first segment of each of its paths.
fn paths_into_crate(tokens: &[String], top_level: bool) -> Vec<String> {
    let mut found = Vec::new();
    // For each open brace, whether it opened an inline module (`mod tests {`).
    let mut braces: Vec<bool> = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let previous = |back: usize| {
            index
                .checked_sub(back)
                .and_then(|at| tokens.get(at))
                .map_or("", String::as_str)
        };
        match token.as_str() {
            "{" => braces.push(previous(2) == "mod"),
            "}" => {
                braces.pop();
            }
            _ => {}
        }
        let into_root = match token.as_str() {
            "crate" => previous(1) != "$",
            "super" => top_level && !braces.contains(&true) && previous(1) != "::",
            _ => false,
        };
        if !into_root || tokens.get(index + 1).map(String::as_str) != Some("::") {
            continue;
        }
        match tokens.get(index + 2).map(String::as_str) {
            Some("{") => {
                let mut depth = 0;
                let mut expect_path = true;
                for token in &tokens[index + 2..] {
                    match token.as_str() {
                        "{" => {
                            depth += 1;
                            expect_path = depth == 1;
                        }
                        "}" => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        "," if depth == 1 => expect_path = true,
                        _ if expect_path && depth == 1 => {
                            if is_ident(token) {
                                found.push(token.clone());
                            }
                            expect_path = false;
                        }
                        _ => {}
                    }
                }
            }
            Some(next) if is_ident(next) => found.push(next.to_owned()),
            _ => {}
        }
    }
    found
}

/// Every `use` declaration's paths, flattened: (the path's segments, the name it brings in).
fn use_trees(tokens: &[String]) -> Vec<(Vec<String>, String)> {
    let mut found = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        if token == "use" {
            let mut at = index + 1;
            use_tree(tokens, &mut at, &[], &mut found);
        }
    }
    found
}

/// One use tree at `tokens[*at]`, under `prefix`.
fn use_tree(
    tokens: &[String],
    at: &mut usize,
    prefix: &[String],
    found: &mut Vec<(Vec<String>, String)>,
) {
    let mut path = prefix.to_vec();
    loop {
        let Some(token) = tokens.get(*at) else {
            return;
        };
        *at += 1;
        match token.as_str() {
            "::" => {}
            "{" => {
                while tokens.get(*at).is_some_and(|token| token != "}") {
                    use_tree(tokens, at, &path, found);
                    if tokens.get(*at).is_some_and(|token| token == ",") {
                        *at += 1;
                    }
                }
                *at += 1;
                return;
            }
            "as" => {
                if let Some(alias) = tokens.get(*at) {
                    *at += 1;
                    found.push((path, alias.clone()));
                }
                return;
            }
            "*" => return,
            _ if is_ident(token) => {
                path.push(token.clone());
                if tokens
                    .get(*at)
                    .is_none_or(|next| next != "::" && next != "as")
                {
                    if let Some(name) = path.last() {
                        found.push((path.clone(), name.clone()));
                    }
                    return;
                }
            }
            _ => return,
        }
    }
}

fn is_ident(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|first| first.is_alphabetic() || first == '_')
}

/// The tokens of Rust source that paths are made of: identifiers, `::`, and single
/// punctuation characters, with comments and the insides of string and character literals
/// left out.
fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while let Some(&c) = chars.get(at) {
        let next = chars.get(at + 1).copied();
        if c == '/' && next == Some('/') {
            while chars.get(at).is_some_and(|&c| c != '\n') {
                at += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while at < chars.len() {
                if chars[at] == '/' && chars.get(at + 1) == Some(&'*') {
                    depth += 1;
                    at += 2;
                } else if chars[at] == '*' && chars.get(at + 1) == Some(&'/') {
                    depth -= 1;
                    at += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    at += 1;
                }
            }
        } else if c == '"' {
            at += 1;
            while let Some(&c) = chars.get(at) {
                at += if c == '\\' { 2 } else { 1 };
                if c == '"' {
                    break;
                }
            }
        } else if c == '\'' {
            // A character literal ('x', '\n'); otherwise a lifetime or a label.
            if next == Some('\\') {
                at += 2;
                while chars.get(at).is_some_and(|&c| c != '\'') {
                    at += 1;
                }
                at += 1;
            } else if chars.get(at + 2) == Some(&'\'') {
                at += 3;
            } else {
                at += 1;
            }
        } else if ident(c) {
            let start = at;
            while chars.get(at).is_some_and(|&c| ident(c)) {
                at += 1;
            }
            let word: String = chars[start..at].iter().collect();
            // A raw string: r"...", r#"..."#, br"...".
            let hashes = chars[at..].iter().take_while(|&&c| c == '#').count();
            if (word == "r" || word == "br") && chars.get(at + hashes) == Some(&'"') {
                at += hashes + 1;
                let closing: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                while at < chars.len() && !chars[at..].starts_with(&closing) {
                    at += 1;
                }
                at += closing.len();
            } else {
                tokens.push(word);
            }
        } else if c == ':' && next == Some(':') {
            tokens.push("::".to_owned());
            at += 2;
        } else {
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
            at += 1;
        }
    }
    tokens
}

/// The circle check on a crate made for it: it sees a circle through a `use`, through a path in
/// code, through a name the root imports and through `super::`, and nothing through test code,
/// a module's own children, comments or strings.
#[test]
fn import_circles_are_found_and_only_them() {
    let src = std::env::temp_dir().join(format!("breaker-tidy-{}/src", std::process::id()));
    let files: &[(&str, &str)] = &[
        (
            "lib.rs",
            "mod a;\nmod b;\nmod c;\nmod d;\nmod e;\npub use c::Thing;\n",
        ),
        (
            "a.rs",
            "use crate::b::B;\n// crate::d::D\nconst S: &str = \"crate::e\";\n",
        ),
        ("b.rs", "pub struct B;\nfn f() -> crate::a::A { todo() }\n"),
        ("c.rs", "use super::d::D;\npub struct Thing;\n"),
        ("c/inner.rs", "use super::Thing;\n"),
        (
            "d.rs",
            "use crate::{Thing, e::E};\n#[cfg(test)]\nmod tests { use crate::a::A; }\n",
        ),
        ("e.rs", "pub struct E;\n"),
    ];
    for (path, text) in files {
        let path = src.join(path);
        fs::create_dir_all(path.parent().unwrap_or(&src)).unwrap();
        fs::write(path, text).unwrap();
    }
    let circles: Vec<Vec<String>> = import_circles(&src)
        .into_iter()
        .map(|circle| circle.edges)
        .collect();
    fs::remove_dir_all(src.parent().unwrap_or(&src)).unwrap();
    assert_eq!(
        circles,
        vec![
            vec!["a → b".to_owned(), "b → a".to_owned()],
            vec!["c → d".to_owned(), "d → c".to_owned()],
        ]
    );
}
