//! The HTTP call flow every breaker adapter shares (`breaker-reqwest`, `breaker-ureq`,
//! `breaker-tower`), written once and without IO.
//!
//! [`Breakers`] holds a client's breakers, mounted on URL prefixes or made on demand
//! ([`OnDemand`]), and how it uses them: what a rejected call returns ([`RejectionMode`],
//! [`BreakerOpen`]), how a finished call counts ([`Classifier`]), what listeners see
//! ([`HttpContext`]). A call goes through it in steps, in the manner of quinn-proto:
//! [`Breakers::start_async`] (or [`Breakers::start_blocking`]) says before the request whether
//! to send it untouched, answer with a ready rejection, or send it under a permit ([`Start`]);
//! [`Call::response`] or [`Call::error`] classifies how it ended; [`Finish::record_async`] (or
//! [`Finish::record_blocking`]) records it and tells listeners, `tracing` and `metrics`. An adapter converts its client's requests and
//! responses, reads a body prefix when asked, and maps its errors; nothing else.
//!
//! Metrics: `breaker_calls_total{breaker, outcome}`, `breaker_rejections_total{breaker}`,
//! `breaker_transitions_total{breaker, to}` (the transitions this process made, by its calls
//! or by its store's batches), and
//! the gauge `breaker_state{breaker}` (0 closed, 1 open, 2 half-open). The gauge follows every
//! decision the process gets, whoever moved the breaker (another process, a batch, an
//! operator): a call rejected because the breaker is open or forced open shows it open, a
//! probe (or a rejection because the probe slots are taken) half-open, an ordinary permit
//! closed. Breakers made on demand share their mount's series by default
//! ([`MetricLabels::PerMount`], labelled with [`OnDemand::name`]), where
//! `breaker_on_demand_breakers{breaker, state}` counts the live breakers in each state, so
//! that a client calling a million hosts keeps a dozen series; [`MetricLabels::PerBreaker`]
//! gives each its own.

// Public types that may grow are `#[non_exhaustive]` by rule; the few that are complete by
// definition say so where they are declared.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod classify;
mod flow;
mod mounted;
mod observe;
mod on_demand;
mod redact;
mod reject;
mod request;
mod retry_after;
mod route;

pub use classify::{Attempt, Classifier, RequestErrorKind, default_classify};
pub use flow::{Breakers, Call, Finish, Start};
pub use observe::HttpContext;
pub use on_demand::{MetricLabels, OnDemand};
pub use reject::{BreakerOpen, RejectionMode};
pub use request::RequestHead;
pub use route::MountError;

/// Defines an adapter's client type around [`Breakers`], with the same builder methods
/// (`new`, `mount`, `mount_with`, `on_demand`, `rejection_mode`, `classifier`,
/// `capture_body`, `reveal_secrets`, `redact_header`, `redact_query_param`), so every adapter is configured alike by one piece of
/// code. `blocking` or `asynchronous` names the kind of breaker the client drives.
///
/// The type keeps its [`Breakers`] in a field named `breakers`.
#[macro_export]
macro_rules! client_type {
    ($(#[$attr:meta])* $name:ident, $kind:ident, $bound:path) => {
        $(#[$attr])*
        pub struct $name<B> {
            breakers: $crate::Breakers<B>,
        }

        impl<B> ::core::fmt::Debug for $name<B> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.breakers).finish()
            }
        }

        impl<B> ::core::clone::Clone for $name<B> {
            fn clone(&self) -> Self {
                $name {
                    breakers: self.breakers.clone(),
                }
            }
        }

        impl<B: $bound> ::core::default::Default for $name<B> {
            fn default() -> Self {
                $name::new()
            }
        }

        impl<B> ::core::convert::From<$crate::Breakers<B>> for $name<B> {
            fn from(breakers: $crate::Breakers<B>) -> Self {
                $name { breakers }
            }
        }

        impl<B: $bound> $name<B> {
            /// No breakers yet: every request passes through.
            pub fn new() -> Self {
                $name {
                    breakers: $crate::Breakers::$kind(),
                }
            }
        }

        impl<B> $name<B> {
            /// Mounts `breaker` on `prefix` (`scheme://host[:port][/path]`); the longest
            /// matching prefix decides. Its listeners receive every event with an
            /// [`HttpContext`]($crate::HttpContext).
            pub fn mount(self, prefix: &str, breaker: B) -> Result<Self, $crate::MountError> {
                self.mount_with(prefix, breaker, None)
            }

            /// Mounts `breaker` on `prefix`, choosing what its rejected calls return
            /// (`None`: the client's [`rejection_mode`](Self::rejection_mode)).
            pub fn mount_with(
                self,
                prefix: &str,
                breaker: B,
                rejection: Option<$crate::RejectionMode>,
            ) -> Result<Self, $crate::MountError> {
                let breakers = self.breakers.mount_with(prefix, breaker, rejection)?;
                Ok($name { breakers })
            }

            /// Makes a breaker on first use for each request no mount matches (one per
            /// authority by default), as [`OnDemand`]($crate::OnDemand) says.
            #[must_use]
            pub fn on_demand(self, on_demand: $crate::OnDemand<B>) -> Self {
                $name {
                    breakers: self.breakers.on_demand(on_demand),
                }
            }

            /// What rejected calls return (default: the synthetic response).
            #[must_use]
            pub fn rejection_mode(self, mode: $crate::RejectionMode) -> Self {
                $name {
                    breakers: self.breakers.rejection_mode(mode),
                }
            }

            /// How finished calls count (default: 5xx and transport errors fail).
            #[must_use]
            pub fn classifier(self, classifier: $crate::Classifier) -> Self {
                $name {
                    breakers: self.breakers.classifier(classifier),
                }
            }

            /// Gives listeners the first `bytes` of a failed call's response body; the
            /// caller still receives all of it.
            #[must_use]
            pub fn capture_body(self, bytes: usize) -> Self {
                $name {
                    breakers: self.breakers.capture_body(bytes),
                }
            }

            /// Shows secrets (headers such as `Authorization`, cookies and `X-Api-Key`,
            /// credentials in query strings) to listeners instead of redacting them.
            #[must_use]
            pub fn reveal_secrets(self, reveal: bool) -> Self {
                $name {
                    breakers: self.breakers.reveal_secrets(reveal),
                }
            }

            /// Also redacts header `name` in what listeners see, as
            /// [`Breakers::redact_header`]($crate::Breakers::redact_header) says.
            #[must_use]
            pub fn redact_header(self, name: &str) -> Self {
                $name {
                    breakers: self.breakers.redact_header(name),
                }
            }

            /// Also redacts query parameter `name` in the URLs listeners see, as
            /// [`Breakers::redact_query_param`]($crate::Breakers::redact_query_param) says.
            #[must_use]
            pub fn redact_query_param(self, name: &str) -> Self {
                $name {
                    breakers: self.breakers.redact_query_param(name),
                }
            }

            /// How many breakers made on demand the client keeps now.
            pub fn on_demand_breakers(&self) -> usize {
                self.breakers.on_demand_breakers()
            }
        }
    };
}
