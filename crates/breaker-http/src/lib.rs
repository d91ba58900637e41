//! The HTTP behaviour shared by breaker's client adapters (`breaker-reqwest`,
//! `breaker-ureq`), written once: breakers mounted on URL prefixes ([`Routes`]), how a call
//! counts ([`Classifier`]), what a rejected call returns ([`rejection_response`],
//! [`BreakerOpen`]), and what listeners, `tracing` and `metrics` are told ([`Observer`]).
//!
//! Metrics: `breaker_calls_total{breaker, outcome}`, `breaker_rejections_total{breaker}`,
//! `breaker_transitions_total{breaker, to}`, and the gauge `breaker_state{breaker}`
//! (0 closed, 1 open, 2 half-open).

mod classify;
mod observe;
mod reject;
mod route;

pub use classify::{Attempt, Classifier, ErrorKind, default_classify};
pub use observe::{HttpContext, Observer, header_list, url_without_credentials};
pub use reject::{
    BREAKER_HEADER, BREAKER_HEADER_VALUE, BreakerOpen, Rejection, RejectionMode, rejection_body,
    rejection_response, retry_after_secs,
};
pub use route::{Mount, MountError, Mounted, Mounts, Routes};

/// What a client does besides routing: rejection mode, classification, failure details.
#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    /// What a rejected call returns (default: the synthetic response).
    pub rejection: RejectionMode,
    /// How a finished call counts.
    pub classifier: Classifier,
    /// Capture the first bytes (at most this many) of a failed call's response body for
    /// listeners; the caller still receives the whole body. Off by default.
    pub capture_body: Option<usize>,
    /// Show `Authorization`, `Cookie`, `Set-Cookie` and `Proxy-Authorization` to listeners
    /// (redacted by default).
    pub reveal_secrets: bool,
}
