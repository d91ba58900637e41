//! A request as the call flow sees it, borrowed from the client's own request type.

use std::fmt;

use crate::HttpContext;
use crate::redact::Redaction;
use crate::route::default_port;

/// A request as the call flow sees it: method, URL parts and headers, borrowed from the
/// client's own request type.
#[derive(Clone, Copy)]
pub struct RequestHead<'a> {
    pub(crate) method: &'a str,
    pub(crate) scheme: &'a str,
    pub(crate) host: &'a str,
    pub(crate) port: Option<u16>,
    pub(crate) path: &'a str,
    pub(crate) url: &'a (dyn fmt::Display + Sync),
    pub(crate) headers: &'a http::HeaderMap,
}

impl fmt::Debug for RequestHead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

impl<'a> RequestHead<'a> {
    /// A request for `uri` (absolute; a relative one gets no breaker).
    pub fn new(method: &'a str, uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Self {
        let (host, port) = uri
            .authority()
            .map_or(("", None), |authority| host_and_port(authority.as_str()));
        RequestHead {
            method,
            scheme: uri.scheme_str().unwrap_or_default(),
            host,
            port,
            path: uri.path(),
            url: uri,
            headers,
        }
    }

    /// A request whose URL the client keeps in its own type (reqwest's `Url`): its parts,
    /// and the whole URL for listeners.
    pub fn from_parts(
        method: &'a str,
        (scheme, host, port, path): (&'a str, &'a str, Option<u16>, &'a str),
        url: &'a (dyn fmt::Display + Sync),
        headers: &'a http::HeaderMap,
    ) -> Self {
        RequestHead {
            method,
            scheme,
            host,
            port,
            path,
            url,
            headers,
        }
    }

    /// The method.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The URL's scheme (`http`, `https`).
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// The URL's host.
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// The URL's port, or the scheme's default port.
    pub fn port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(self.scheme))
    }

    /// The URL's path.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The request headers.
    pub fn headers(&self) -> &'a http::HeaderMap {
        self.headers
    }

    pub(crate) fn context(&self, redaction: &Redaction) -> HttpContext {
        HttpContext::for_request(self.method, &self.url.to_string(), self.headers, redaction)
    }
}

/// The host and port of a parsed authority (`user@host:port`, `[::1]:8080`), found in one
/// pass from the end: what `Authority::host` and `Authority::port_u16` give, without parsing
/// the authority twice on every call.
fn host_and_port(authority: &str) -> (&str, Option<u16>) {
    let host_port = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    match host_port.rfind([':', ']']) {
        Some(colon) if host_port.as_bytes()[colon] == b':' => {
            (&host_port[..colon], host_port[colon + 1..].parse().ok())
        }
        _ => (host_port, None),
    }
}

#[cfg(test)]
mod tests {
    use super::host_and_port;

    #[test]
    fn host_and_port_agree_with_http() {
        for authority in [
            "example.com",
            "example.com:8080",
            "user:secret@example.com:81",
            "user@example.com",
            "[::1]",
            "[::1]:9000",
            "u:p@[fe80::1]:1",
            "example.com:",
            "127.0.0.1:6379",
        ] {
            let parsed: http::uri::Authority = authority.parse().unwrap();
            assert_eq!(
                host_and_port(authority),
                (parsed.host(), parsed.port_u16()),
                "{authority}"
            );
        }
    }
}
