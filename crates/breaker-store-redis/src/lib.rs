//! A Redis store for [`breaker_core`] breakers: many processes share one breaker's state, so
//! what one observed protects all the others.
//!
//! - One atomic Lua script per call records the outcome and returns the state: the closed
//!   path costs at most one round trip, and a script whose cost does not grow with
//!   `buckets`. The pre-call check is answered from the state the last round trip returned
//!   while it is younger than `max_staleness` (an open state included, so operator actions
//!   reach every process within it); the async store also hears of every change at once
//!   through Redis Pub/Sub ([`RedisConfig::push`]).
//! - Batched outcomes ([`RedisConfig::batch`]): added up in the process and sent once per
//!   interval, so the caller never waits for Redis on the closed path; `flush()` before a
//!   serverless handler returns.
//! - A process follows Redis through a restart or a lost key (each key has an epoch), keeps
//!   the registry of breakers true while it uses them, and a capped history of transitions
//!   and operator actions per breaker ([`AsyncRedisStore::history`]).
//! - Time comes from the Redis server (`TIME`), so hosts with skewed clocks agree.
//! - Counters live in fixed buckets (hash fields): memory per breaker is bounded by the
//!   policy's `buckets`. All keys of a breaker share a hash tag (Cluster works), every key has
//!   a TTL, any UTF-8 name works.
//! - Each store counts the requests it sends (`requests_sent()`, and the `metrics` counter
//!   `breaker_redis_requests_total` of the whole process).
//! - Every call has a timeout (default 50 ms); when Redis fails, the breaker's
//!   [`StoreFailurePolicy`](breaker_core::StoreFailurePolicy) decides (allow, reject, or an
//!   in-process breaker), listeners and `tracing` are told, and connections recover by
//!   themselves.
//!
//! [`AsyncRedisStore`] serves async callers (tokio); [`BlockingRedisStore`] blocking ones. Both
//! use the same keys and script, so they share breakers. Each is behind a cargo feature, both
//! on by default: `tokio` and `blocking`. A blocking program does not compile tokio with
//! `default-features = false, features = ["blocking"]`.
//!
//! ```no_run
//! use breaker_core::{call_async, CallError, Policy};
//! use breaker_store_redis::{RedisConfig, AsyncRedisStore};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let store = AsyncRedisStore::connect(RedisConfig::standalone("redis://127.0.0.1:6379")).await?;
//! let breaker = store.breaker("payments-api", Policy::default()).await?;
//! let answer: Result<u32, CallError<std::io::Error>> = call_async(&breaker, async { Ok(42) }).await;
//! # Ok(())
//! # }
//! ```

// Public types that may grow are `#[non_exhaustive]` by rule; the few that are complete by
// definition say so where they are declared.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod handle;

#[cfg(feature = "tokio")]
mod asynchronous;
#[cfg(feature = "blocking")]
mod blocking;
mod config;
mod engine;
mod error;
mod history;
mod keys;
#[cfg(feature = "tokio")]
mod listing;
mod registry;
mod requests;
mod script;
mod settings;
mod stored;

#[cfg(feature = "tokio")]
pub use asynchronous::{AsyncRedisBreaker, AsyncRedisStore};
#[cfg(feature = "blocking")]
pub use blocking::{BlockingRedisBreaker, BlockingRedisStore};
pub use breaker_core::{Bucket, HistoryEntry};
pub use config::RedisConfig;
#[cfg(feature = "tokio")]
pub use listing::{ListRequest, Listed, Listing};
pub use registry::BreakerInfo;
pub use requests::RedisUsage;
