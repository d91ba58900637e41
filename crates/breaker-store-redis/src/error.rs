//! Redis errors as store errors: a kind the failure policy can act on, a message that says
//! what failed, never a credential.

use redis::{ErrorKind, RedisError};

use breaker_core::{StoreError, StoreErrorKind};

fn kind_of(err: &RedisError) -> StoreErrorKind {
    if err.is_timeout() {
        return StoreErrorKind::Timeout;
    }
    if err
        .code()
        .is_some_and(|code| code.starts_with("BREAKER_CORRUPT"))
    {
        return StoreErrorKind::Corrupt;
    }
    match err.kind() {
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig => StoreErrorKind::Config,
        ErrorKind::UnexpectedReturnType | ErrorKind::Parse => StoreErrorKind::Corrupt,
        _ if err
            .code()
            .is_some_and(|code| code == "WRONGPASS" || code == "NOAUTH" || code == "NOPERM") =>
        {
            StoreErrorKind::Config
        }
        _ => StoreErrorKind::Unavailable,
    }
}

/// What to check when `error` (a Redis client's message) says that no master was found
/// behind the Sentinels: redis-rs says so too when the master refused its connection.
pub(crate) fn sentinel_hint(error: &str) -> &'static str {
    if error.contains("MasterNameNotFoundBySentinel") {
        " (check the master's name, and that the master answers: a master that asks for a \
         password needs it in RedisConfig::master_password, or --store-master-password)"
    } else {
        ""
    }
}

/// A failed Redis request.
pub(crate) fn store_error(err: RedisError) -> StoreError {
    let kind = kind_of(&err);
    let text = err.to_string();
    let hint = sentinel_hint(&text);
    StoreError::new(kind, format!("redis request failed: {text}{hint}")).with_source(err)
}

/// A failed Redis request, with what was being done.
#[cfg(feature = "tokio")]
pub(crate) fn store_error_in(context: &str, err: RedisError) -> StoreError {
    let kind = kind_of(&err);
    let text = err.to_string();
    let hint = sentinel_hint(&text);
    StoreError::new(kind, format!("{context}: {text}{hint}")).with_source(err)
}

/// A URL or client setting Redis's client refused.
pub(crate) fn config_error(url: &str, err: RedisError) -> StoreError {
    // A password is the usual place for a character that ends the URL's host part early.
    let hint = if url.contains('@') {
        " (characters such as `#`, `/`, `?` and `@` in a user name or password must be \
         percent-encoded: %23, %2F, %3F, %40)"
    } else {
        ""
    };
    StoreError::new(
        StoreErrorKind::Config,
        format!("invalid Redis address {}: {err}{hint}", redact(url)),
    )
    .with_source(err)
}

/// A request that did not finish within the store's timeout.
#[cfg(feature = "tokio")]
pub(crate) fn timed_out(what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Timeout,
        format!("redis did not answer in time ({what})"),
    )
}

/// `url` with its credentials hidden: everything between `://` and the last `@` becomes
/// `***`, except a plain user name (the part before the first `:`, when it holds none of
/// `/`, `?`, `#`), which is kept to help with permission errors. The last `@` is taken
/// whatever comes before it, so a password holding `#`, `/`, `?` or `@` (which a URL parser
/// would read as the start of a path, query or fragment) is hidden all the same; an `@`
/// after the host only hides more than needed.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL: it could be anything, a password included, so it is not repeated.
        return "(not a URL)".to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) if !user.contains(['/', '?', '#']) => {
            format!("{scheme}://{user}:***@{host}")
        }
        // `redis://password@host` puts the password in the user part.
        _ => format!("{scheme}://***@{host}"),
    }
}
