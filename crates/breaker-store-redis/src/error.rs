//! Redis errors as store errors: a kind the failure policy can act on, a message that says
//! what failed, never a credential.

use redis::{ErrorKind, RedisError};

use breaker_core::{StoreError, StoreErrorKind};

use crate::config::redact;

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

/// A failed Redis request.
pub(crate) fn store_error(err: RedisError) -> StoreError {
    let kind = kind_of(&err);
    StoreError::new(kind, format!("redis request failed: {err}")).with_source(err)
}

/// A failed Redis request, with what was being done.
#[cfg(feature = "tokio")]
pub(crate) fn store_error_in(context: &str, err: RedisError) -> StoreError {
    let kind = kind_of(&err);
    StoreError::new(kind, format!("{context}: {err}")).with_source(err)
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
