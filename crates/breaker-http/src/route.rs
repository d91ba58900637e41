//! Several breakers per client, each mounted on a URL prefix; the longest match wins.

use std::fmt;

/// A URL prefix a breaker is mounted on: scheme, host, port, and an optional path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    scheme: String,
    host: String,
    port: u16,
    /// Without a trailing `/`; empty for the whole host.
    path: String,
}

/// A mount prefix that is not an absolute `http`/`https` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountError {
    prefix: String,
    reason: &'static str,
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid breaker mount {:?}: {}",
            self.prefix, self.reason
        )
    }
}

impl std::error::Error for MountError {}

pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

impl Mount {
    /// Parses `https://host[:port][/path]`. Query strings and fragments are refused.
    pub(crate) fn parse(prefix: &str) -> Result<Mount, MountError> {
        let error = |reason| MountError {
            prefix: prefix.to_owned(),
            reason,
        };
        let uri: http::Uri = prefix
            .parse()
            .map_err(|_| error("not a URL (expected http[s]://host[:port][/path])"))?;
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| error("no scheme (expected http:// or https://)"))?
            .to_ascii_lowercase();
        let host = uri
            .host()
            .ok_or_else(|| error("no host"))?
            .to_ascii_lowercase();
        let port = match uri.port_u16() {
            Some(port) => port,
            None => default_port(&scheme).ok_or_else(|| error("unknown scheme; give a port"))?,
        };
        if uri.query().is_some() || prefix.contains('#') {
            return Err(error("a mount is a prefix: no query string or fragment"));
        }
        let path = uri.path().trim_end_matches('/').to_owned();
        Ok(Mount {
            scheme,
            host,
            port,
            path,
        })
    }

    /// Whether a request to these URL parts falls under this mount: same scheme, host and
    /// port, and a path equal to the prefix or below it (at a `/`).
    pub(crate) fn matches(&self, scheme: &str, host: &str, port: Option<u16>, path: &str) -> bool {
        let port = port.or_else(|| default_port(scheme));
        scheme.eq_ignore_ascii_case(&self.scheme)
            && host.eq_ignore_ascii_case(&self.host)
            && port == Some(self.port)
            && (self.path.is_empty()
                || path == self.path
                || path
                    .strip_prefix(&self.path)
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    fn specificity(&self) -> usize {
        self.path.len()
    }
}

impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}{}",
            self.scheme, self.host, self.port, self.path
        )
    }
}

/// Breakers mounted on URL prefixes.
#[derive(Clone, Debug)]
pub(crate) struct Routes<B> {
    mounts: Vec<(Mount, B)>,
}

impl<B> Default for Routes<B> {
    fn default() -> Self {
        Routes { mounts: Vec::new() }
    }
}

impl<B> Routes<B> {
    /// No mounts: every request passes through.
    pub(crate) fn new() -> Routes<B> {
        Routes::default()
    }

    /// Adds `breaker` on `prefix` (`https://api.example.com/v1`).
    pub(crate) fn mount(mut self, prefix: &str, breaker: B) -> Result<Routes<B>, MountError> {
        let mount = Mount::parse(prefix)?;
        if self.mounts.iter().any(|(existing, _)| *existing == mount) {
            return Err(MountError {
                prefix: prefix.to_owned(),
                reason: "this prefix already has a breaker",
            });
        }
        self.mounts.push((mount, breaker));
        // Longest path first, so the first match is the longest.
        self.mounts
            .sort_by_key(|(mount, _)| std::cmp::Reverse(mount.specificity()));
        Ok(self)
    }

    /// The breaker for a request to these URL parts, if any mount matches.
    pub(crate) fn route(
        &self,
        scheme: &str,
        host: &str,
        port: Option<u16>,
        path: &str,
    ) -> Option<&B> {
        self.mounts
            .iter()
            .find(|(mount, _)| mount.matches(scheme, host, port, path))
            .map(|(_, breaker)| breaker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_at_segment_boundaries() {
        let routes = Routes::new()
            .mount("https://api.example.com", "host")
            .unwrap()
            .mount("https://api.example.com/v1/", "v1")
            .unwrap()
            .mount("https://api.example.com/v1/slow", "slow")
            .unwrap()
            .mount("http://127.0.0.1:8080/x", "local")
            .unwrap();
        let route = |scheme, host, port, path| routes.route(scheme, host, port, path).copied();
        assert_eq!(route("https", "api.example.com", None, "/"), Some("host"));
        assert_eq!(
            route("https", "API.example.com", Some(443), "/v1"),
            Some("v1")
        );
        assert_eq!(
            route("https", "api.example.com", None, "/v1/users"),
            Some("v1")
        );
        assert_eq!(
            route("https", "api.example.com", None, "/v1/slow/x"),
            Some("slow")
        );
        assert_eq!(
            route("https", "api.example.com", None, "/v1slow"),
            Some("host")
        );
        assert_eq!(
            route("http", "api.example.com", None, "/v1"),
            None,
            "scheme differs"
        );
        assert_eq!(
            route("https", "api.example.com", Some(8443), "/v1"),
            None,
            "port differs"
        );
        assert_eq!(
            route("http", "127.0.0.1", Some(8080), "/x/y"),
            Some("local")
        );
        assert_eq!(route("http", "127.0.0.1", Some(8080), "/xy"), None);
    }

    #[test]
    fn bad_prefixes_are_refused_with_a_reason() {
        for prefix in [
            "api.example.com",
            "ftp://x",
            "https://x/a?b=c",
            "",
            "https://x/#f",
        ] {
            let err = Routes::new().mount(prefix, ()).unwrap_err();
            assert!(err.to_string().contains("invalid breaker mount"), "{err}");
        }
        let twice = Routes::new()
            .mount("https://x/a", 1)
            .unwrap()
            .mount("https://x/a/", 2);
        assert!(twice.is_err());
    }
}
