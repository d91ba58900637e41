//! What listeners must not see: secret headers and credentials in URLs (SPEC section 7).

use std::borrow::Cow;

/// Headers redacted whatever the client adds: credentials and session cookies, and the
/// common API key headers.
const SECRET_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
];

/// Query parameters redacted whatever the client adds. A name also matches as the last part
/// of a longer one (`api_key`, `access_token`, `client_secret`, `X-Amz-Signature`).
const SECRET_PARAMS: [&str; 5] = ["token", "key", "password", "secret", "signature"];

/// What takes a secret's place.
pub(crate) const REDACTED: &str = "[redacted]";

/// Which headers and query parameters listeners see redacted, unless the client reveals
/// secrets.
#[derive(Clone, Debug, Default)]
pub(crate) struct Redaction {
    reveal: bool,
    /// Header names the client added, in lower case.
    headers: Vec<Box<str>>,
    /// Query parameter names the client added, in lower case.
    params: Vec<Box<str>>,
}

impl Redaction {
    /// Shows every secret (`true`) or redacts them (`false`, the default).
    pub(crate) fn reveal(&mut self, reveal: bool) {
        self.reveal = reveal;
    }

    /// Also redacts header `name` (any case).
    pub(crate) fn add_header(&mut self, name: &str) {
        self.headers.push(name.to_ascii_lowercase().into());
    }

    /// Also redacts query parameter `name` (any case, also as the last part of a longer name).
    pub(crate) fn add_param(&mut self, name: &str) {
        self.params.push(name.to_ascii_lowercase().into());
    }

    fn secret_header(&self, name: &http::HeaderName) -> bool {
        // `HeaderName` is always in lower case.
        let name = name.as_str();
        SECRET_HEADERS.contains(&name) || self.headers.iter().any(|added| **added == *name)
    }

    fn secret_param(&self, name: &str) -> bool {
        let name = percent_decoded(name).to_ascii_lowercase();
        SECRET_PARAMS
            .iter()
            .copied()
            .chain(self.params.iter().map(|added| &**added))
            .any(|secret| names_param(&name, secret))
    }

    /// The headers as text, each secret one's value replaced by `[redacted]` unless the
    /// client reveals secrets.
    pub(crate) fn headers(&self, headers: &http::HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| {
                let value = if !self.reveal && self.secret_header(name) {
                    REDACTED.to_owned()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_owned(), value)
            })
            .collect()
    }

    /// `url` without a `user:password@` part (always: a client never needs it in an event)
    /// and, unless the client reveals secrets, with the values of secret query (and fragment)
    /// parameters replaced by `[redacted]`.
    pub(crate) fn url(&self, url: &str) -> String {
        let url = without_user_info(url);
        if self.reveal {
            return url.into_owned();
        }
        let Some(start) = url.find(['?', '#']) else {
            return url.into_owned();
        };
        let mut redacted = String::with_capacity(url.len());
        redacted.push_str(&url[..start]);
        // The query, then the fragment: both are `&`-separated `name=value` pairs when they
        // carry credentials (OAuth puts tokens in fragments).
        let mut rest = &url[start..];
        while let Some(part_start) = rest.chars().next() {
            redacted.push(part_start);
            let after = &rest[1..];
            let end = if part_start == '?' {
                after.find('#').unwrap_or(after.len())
            } else {
                after.len()
            };
            self.push_pairs(&mut redacted, &after[..end]);
            rest = &after[end..];
        }
        redacted
    }

    fn push_pairs(&self, out: &mut String, pairs: &str) {
        for (i, pair) in pairs.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, value)) if !value.is_empty() && self.secret_param(name) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
    }
}

/// Whether parameter `name` (decoded, in lower case) is `secret`, or ends with it after a
/// `_`, `-` or `.` (`access_token`, `x-amz-signature`), but not as part of a word (`monkey`).
fn names_param(name: &str, secret: &str) -> bool {
    match name.strip_suffix(secret) {
        Some("") => true,
        Some(head) => head.ends_with(['_', '-', '.']),
        None => false,
    }
}

/// `name` with `%XX` escapes decoded, so that `api%5Fkey` is `api_key`.
fn percent_decoded(name: &str) -> Cow<'_, str> {
    if !name.contains('%') {
        return Cow::Borrowed(name);
    }
    let bytes = name.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&decoded).into_owned())
}

/// `url` without a `user:password@` part.
fn without_user_info(url: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Cow::Borrowed(url);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => Cow::Owned(format!("{scheme}://{host}{}", &rest[end..])),
        None => Cow::Borrowed(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.parse().unwrap(), value.parse().unwrap()))
            .collect()
    }

    #[test]
    fn secret_headers_are_redacted_unless_revealed() {
        let sent = headers(&[
            ("authorization", "Bearer s3cret"),
            ("cookie", "id=s3cret"),
            ("X-Api-Key", "s3cret"),
            ("api-key", "s3cret"),
            ("x-auth-token", "s3cret"),
            ("x-tenant-pin", "s3cret"),
            ("x-request-id", "42"),
        ]);
        let mut redaction = Redaction::default();
        redaction.add_header("X-Tenant-PIN");
        let hidden = redaction.headers(&sent);
        assert_eq!(hidden.len(), 7);
        for (name, value) in &hidden {
            let expected = if name == "x-request-id" {
                "42"
            } else {
                REDACTED
            };
            assert_eq!(value, expected, "{name}");
        }
        redaction.reveal(true);
        let shown = redaction.headers(&sent);
        assert!(shown.contains(&("authorization".to_owned(), "Bearer s3cret".to_owned())));
        assert!(shown.contains(&("x-tenant-pin".to_owned(), "s3cret".to_owned())));
    }

    #[test]
    fn urls_lose_user_info_and_secret_parameters() {
        let mut redaction = Redaction::default();
        redaction.add_param("PIN");
        let url = |url| redaction.url(url);
        assert_eq!(url("https://u:p@h:1/a?b@c"), "https://h:1/a?b@c");
        assert_eq!(url("http://h/x"), "http://h/x");
        assert_eq!(
            url("https://h/a?q=1&Token=t&api_key=k&X-Amz-Signature=s&monkey=m&keys=k&pin=1"),
            "https://h/a?q=1&Token=[redacted]&api_key=[redacted]\
             &X-Amz-Signature=[redacted]&monkey=m&keys=k&pin=[redacted]"
        );
        assert_eq!(
            url("https://h/cb?state=x&code=c#access_token=t&token_type=bearer"),
            "https://h/cb?state=x&code=c#access_token=[redacted]&token_type=bearer"
        );
        assert_eq!(
            url("https://h/?api%5Fkey=k&password=&secret"),
            "https://h/?api%5Fkey=[redacted]&password=&secret",
            "an escaped name is still a name; nothing to hide in an empty value"
        );
        assert_eq!(
            url("https://h/#password=p"),
            "https://h/#password=[redacted]"
        );
        redaction.reveal(true);
        assert_eq!(
            redaction.url("https://u:p@h/?token=t"),
            "https://h/?token=t",
            "user info never reaches listeners"
        );
    }
}
