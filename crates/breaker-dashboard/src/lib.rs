//! A live web page and a JSON API of circuit breakers: every breaker's state, calls and
//! failures in its window (with a small chart of the window's buckets), open-until,
//! overrides, policy conflicts and recent transitions, updated every second without
//! reloading; and operator actions (trip, reset, force-open, force-closed, auto) for whoever
//! holds the dashboard's token.
//!
//! [`Dashboard`] builds an [axum](https://docs.rs/axum) router over any [`DashboardStore`];
//! [`RedisBreakers`] is the one for breakers shared through Redis (the `redis` feature, on by
//! default), and the `breaker dashboard` command serves it. [`Server`] serves a router with
//! limits on what each connection may hold (a few seconds to send a request head, an idle
//! timeout, a cap on connections), so that silent or numerous clients cannot take the page
//! from everyone else; `axum::serve` has none of them.
//!
//! Read-only by default: without a token every action is refused with `401`, and with one a
//! request must carry `Authorization: Bearer <token>`. A refused request changes nothing.
//! When the store cannot answer, the API says `503` with a JSON error and the page shows an
//! outage until the store is back.
//!
//! ```no_run
//! use breaker_dashboard::{Dashboard, RedisBreakers, Server};
//! use breaker_store_redis::{RedisConfig, AsyncRedisStore};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisConfig::standalone("redis://127.0.0.1:6379").actor("ops dashboard");
//! let store = AsyncRedisStore::connect(config).await?;
//! let app = Dashboard::new(RedisBreakers::new(store))
//!     .token(std::env::var("BREAKER_DASHBOARD_TOKEN").unwrap_or_default())
//!     .router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7878").await?;
//! Server::new(app).serve(listener, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # The API
//!
//! - `GET /api/breakers`: every breaker as `breaker status --json` prints it (`name`,
//!   `state`, `calls`, `failures`, `failure_rate`, `open_until_ms`, `override`,
//!   `override_until_ms`, `policy_conflict`, `policies`, ...) plus `window_ms`, `bucket_ms`
//!   and `buckets` (`start_ms`, `calls`, `failures`, oldest first).
//! - `GET /api/history?name=&count=`: the newest transitions and operator actions, of one
//!   breaker or all, newest first (`count` 1 to 1000, default 100).
//! - `GET /api/config`: `{"actions": true}` when a token allows actions.
//! - `GET /api/cost`: what the store's server spent per second since the previous sample
//!   (one per refresh): `cpu_share` (of one core), `script_calls_per_second`,
//!   `commands_per_second` and `over_ms`; `{"measuring": true}` until a second sample;
//!   `{"unavailable": "..."}` when the store cannot say (an ACL without `INFO`).
//! - `POST /api/breakers/{name}/{trip|reset|force-open|force-closed|auto}?for=10m`: the name
//!   percent-encoded (any UTF-8); `for` only with the overrides, and at least `1ms`. Any other
//!   method is refused with `405` (`Allow: POST`) and counts as no wrong token.
//! - `GET /metrics`: the fleet's shared state in the Prometheus text format, per breaker
//!   (`name` label): `breaker_state` (a `state` label, 1 for the current value),
//!   `breaker_override`, `breaker_open_until_timestamp_seconds`, `breaker_generation`,
//!   `breaker_window_calls`, `breaker_window_failures`, `breaker_window_failure_ratio`,
//!   `breaker_policy_conflict` and more; plus `breaker_store_up`. At most
//!   [`metrics_cap`](Dashboard::metrics_cap) breakers (open and overridden ones first), and
//!   `breaker_exposition_truncated 1` when the cap cut.

// Public types that may grow are `#[non_exhaustive]` by rule; the few that are complete by
// definition say so where they are declared.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod guard;
mod metrics;
mod router;
mod serve;
mod shared;
mod store;

#[cfg(feature = "redis")]
mod redis;

pub use breaker_core::{Bucket, HistoryEntry};
pub use metrics::{DEFAULT_METRICS_CAP, METRICS_CONTENT_TYPE, metrics};
#[cfg(feature = "redis")]
pub use redis::{DEFAULT_REUSE_POLICIES, RedisBreakers, WINDOWS_UP_TO};
pub use router::{DEFAULT_REFRESH, Dashboard};
pub use serve::{DEFAULT_MAX_CONNECTIONS, Server};
pub use store::{BreakerView, DashboardStore, StoreUsage};
