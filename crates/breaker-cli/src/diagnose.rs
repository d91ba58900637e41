//! Store errors as operators read them: the cause named, with a hint that points the right
//! way (an untrusted certificate is not fixed by starting redis-server).

use std::error::Error;

use breaker_core::{StoreError, StoreErrorKind};

use crate::Failure;

/// Why a store call failed, as far as the command can tell.
#[derive(Debug, PartialEq, Eq)]
enum Cause {
    /// The server's certificate was signed by a CA the command does not trust.
    Untrusted,
    /// The server's certificate is itself a CA certificate (often a self-signed one given
    /// as `--store-ca` too), which TLS refuses as a server's.
    CaAsServer,
    /// The server's certificate does not name the host in the address.
    NameMismatch,
    /// The server asks for a client certificate and none (or an unknown one) was given.
    ClientCertificate,
    /// The user name or password was refused.
    WrongPassword,
    /// The ACL user may not run `command` (or touch a key or channel).
    Denied(String),
    /// Nothing answered at the address.
    Unreachable,
    /// Anything else.
    Other,
}

/// Every error in `err`'s chain, `err` first, looking inside `io::Error`s too (whose
/// `source` skips the error they wrap).
fn chain<'a>(err: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    let mut all = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        all.push(err);
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => err.source(),
        };
    }
    all
}

fn cause_of(err: &StoreError) -> Cause {
    let errors = chain(err);
    for err in &errors {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ) => Cause::NameMismatch,
                rustls::Error::InvalidCertificate(other)
                    if format!("{other:?}").contains("CaUsedAsEndEntity") =>
                {
                    Cause::CaAsServer
                }
                rustls::Error::InvalidCertificate(_) => Cause::Untrusted,
                rustls::Error::AlertReceived(
                    rustls::AlertDescription::CertificateRequired
                    | rustls::AlertDescription::BadCertificate
                    | rustls::AlertDescription::UnknownCA
                    | rustls::AlertDescription::HandshakeFailure,
                ) => Cause::ClientCertificate,
                _ => Cause::Other,
            };
        }
        if let Some(redis) = err.downcast_ref::<redis::RedisError>() {
            match redis.code() {
                Some("WRONGPASS") => return Cause::WrongPassword,
                Some("NOAUTH") => return Cause::WrongPassword,
                Some("NOPERM") => return Cause::Denied(denied_command(&redis.to_string())),
                _ => {}
            }
            if redis.kind() == redis::ErrorKind::AuthenticationFailed {
                return Cause::WrongPassword;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{ConnectionRefused, HostUnreachable, NetworkUnreachable};
            if matches!(
                io.kind(),
                ConnectionRefused | HostUnreachable | NetworkUnreachable
            ) {
                return Cause::Unreachable;
            }
        }
    }
    // Some paths keep only the text of the error they met.
    let text: String = errors
        .iter()
        .map(|err| err.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    if text.contains("CaUsedAsEndEntity") {
        Cause::CaAsServer
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        Cause::NameMismatch
    } else if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") {
        Cause::Untrusted
    } else if text.contains("CertificateRequired") {
        Cause::ClientCertificate
    } else if text.contains("WRONGPASS") || text.contains("AuthenticationFailed") {
        Cause::WrongPassword
    } else if text.contains("NOPERM") {
        Cause::Denied(denied_command(&text))
    } else if text.contains("Connection refused") {
        Cause::Unreachable
    } else {
        Cause::Other
    }
}

/// The command a `NOPERM` error names (`... no permissions to run the 'evalsha' command`),
/// or what else it denied (a key, a channel).
fn denied_command(message: &str) -> String {
    if let Some((_, rest)) = message.split_once("to run the '") {
        if let Some((command, _)) = rest.split_once('\'') {
            return command.to_uppercase();
        }
    }
    if message.contains("access a channel") {
        "a channel (Pub/Sub)".to_owned()
    } else if message.contains("access a key") {
        "a key".to_owned()
    } else {
        "a command".to_owned()
    }
}

/// A store error as a failure that names its cause and says what to do; configuration
/// mistakes are usage errors.
pub(crate) fn failure(err: StoreError) -> Failure {
    let hint = match cause_of(&err) {
        Cause::Untrusted => {
            "the Redis server's TLS certificate is not trusted: no trusted CA signed it. \
             Give the CA that signed it with --store-ca FILE (or BREAKER_STORE_CA)"
                .to_owned()
        }
        Cause::CaAsServer => "the Redis server's TLS certificate is itself a CA certificate \
             (basicConstraints CA:TRUE, as `openssl req -x509` makes a self-signed one by \
             default), which TLS refuses as a server's, even when it is the one given with \
             --store-ca: give Redis a certificate signed by a CA (and that CA with \
             --store-ca), or make the self-signed one without CA:TRUE"
            .to_owned(),
        Cause::NameMismatch => "the Redis server's TLS certificate does not name the host in \
             --store: connect by a name (or IP address) the certificate lists"
            .to_owned(),
        Cause::ClientCertificate => "the Redis server requires a client certificate (mutual \
             TLS) and refused the one given, or got none: pass --store-cert FILE and \
             --store-key FILE (or BREAKER_STORE_CERT and BREAKER_STORE_KEY) signed by a CA \
             the server trusts"
            .to_owned(),
        Cause::WrongPassword => "wrong user name or password (or the user is disabled): \
             check the user:password in --store or REDIS_URL"
            .to_owned(),
        Cause::Denied(what) => format!(
            "the Redis user may not use {what}: its ACL must allow it (see the README's \
             \"Managed Redis\" section for what the prefix needs)"
        ),
        Cause::Unreachable => "nothing answers at that address: is redis-server running? \
             check --store or REDIS_URL"
            .to_owned(),
        Cause::Other => return plain(err),
    };
    // The store refused or could not be reached: not a usage error, whatever the kind
    // (refused credentials are `Config` to the failure policy).
    Failure::Store(format!("{err} ({hint})"))
}

/// A store error with no cause to name: a malformed address or setting is bad usage, an
/// unknown breaker a failed command, anything else the store's failure.
fn plain(err: StoreError) -> Failure {
    match err.kind() {
        StoreErrorKind::Config => Failure::Usage(err.to_string()),
        StoreErrorKind::NotFound => Failure::Failed(err.to_string()),
        _ => Failure::Store(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_denied_command_is_named() {
        assert_eq!(
            denied_command("NOPERM: User app has no permissions to run the 'evalsha' command"),
            "EVALSHA"
        );
        assert_eq!(
            denied_command("NOPERM No permissions to access a channel"),
            "a channel (Pub/Sub)"
        );
    }
}
