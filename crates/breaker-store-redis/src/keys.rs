//! Where a breaker lives in Redis (see docs/redis.md).

use breaker_core::{StoreError, StoreErrorKind};

/// The keys of one breaker. Both share the hash tag `{=<name>}`, so they sit in one Cluster
/// slot; the registry is one key per prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keys {
    /// Hash: state fields and window buckets.
    pub(crate) state: String,
    /// Hash: policy (JSON) -> last time a process registered the breaker with it.
    pub(crate) policies: String,
    /// Stream: the breaker's transitions and operator actions, capped.
    pub(crate) history: String,
    /// Hash: breaker name -> first time it was registered.
    pub(crate) registry: String,
}

/// Escapes `%`, `{` and `}` so that any name gives a hash tag of its own: the tag ends at the
/// first `}`, and escaping is one-to-one, so two names never share keys.
fn escape(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len() + 1);
    for c in name.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '{' => escaped.push_str("%7B"),
            '}' => escaped.push_str("%7D"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Checks a key prefix: it must not contain `{` or `}`, which would move the hash tag.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.contains(['{', '}']) {
        return Err(StoreError::new(
            StoreErrorKind::Config,
            format!(
                "key prefix {prefix:?} must not contain '{{' or '}}' (they mark Redis Cluster hash tags)"
            ),
        ));
    }
    Ok(())
}

impl Keys {
    /// The keys of breaker `name` under `prefix`. The tag starts with `=` so it is never
    /// empty (an empty `{}` would not be a tag at all).
    pub(crate) fn new(prefix: &str, name: &str) -> Keys {
        let tag = format!("{{={}}}", escape(name));
        Keys {
            state: format!("{prefix}:{tag}"),
            policies: format!("{prefix}:{tag}:policies"),
            history: format!("{prefix}:{tag}:history"),
            registry: format!("{prefix}:registry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_names_get_distinct_tagged_keys() {
        let names = ["", "a", "{a}", "%7Ba%7D", "a}b", "ü", "a:b", "%"];
        let keys: Vec<Keys> = names
            .iter()
            .map(|name| Keys::new("breaker", name))
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a.state, b.state);
            }
            let tag_start = a.state.find('{').unwrap();
            let tag_end = a.state.find('}').unwrap();
            assert!(
                tag_end > tag_start + 1,
                "the tag is never empty: {}",
                a.state
            );
            assert!(
                a.state.ends_with('}'),
                "the tag ends the state key: {}",
                a.state
            );
            assert!(a.policies.starts_with(&a.state));
        }
        assert_eq!(Keys::new("p", "{a}").state, "p:{=%7Ba%7D}");
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(check_prefix("app:breaker").is_ok());
        let err = check_prefix("app{x}").unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Config);
    }
}
