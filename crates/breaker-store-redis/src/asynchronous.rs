//! The async store (tokio): the transport, which only sends what an operation asks within the
//! store's timeout and hands back the reply. `push.rs` follows the changes Redis pushes;
//! `schedule.rs` runs what no caller waits for (batches, registrations) in tasks.

mod push;
mod schedule;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use breaker_core::store::remote::BatchDue;
use breaker_core::{
    Action, AsyncBreaker, AsyncOperate, Bucket, HistoryEntry, Listeners, Permit, Policy, Recorded,
    Rejected, Report, Snapshot, StoreError, Transition,
};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::{Mutex, oneshot};

use crate::config::{Deployment, RedisConfig};
use crate::engine::ops::{self, Ask, Operation, Request, Run};
use crate::engine::{Engine, Take};
use crate::error::{config_error, redact, store_error, store_error_in, timed_out};
use crate::handle::breaker_handle;
use crate::registry::BreakerInfo;
use crate::settings::Settings;

use push::Changes;

/// A Sentinel-managed master: found through the Sentinels, and found again after an error
/// (the master may have moved).
struct SentinelConnection {
    sentinels: Mutex<SentinelClient>,
    current: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
}

#[derive(Clone)]
pub(crate) enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(MultiplexedConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
            Connection::Sentinel(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Sentinel(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
            Connection::Sentinel(conn) => conn.get_db(),
        }
    }
}

enum Connector {
    Ready(Connection),
    Standalone(Box<StandaloneConnection>),
    Sentinel(Box<SentinelConnection>),
}

/// The first wait before a refused connection is made anew, and the longest (it doubles).
const REFUSED_FIRST_WAIT: Duration = Duration::from_millis(100);
const REFUSED_LONGEST_WAIT: Duration = Duration::from_secs(1);

/// A standalone server behind redis-rs's connection manager, which is made anew after Redis
/// refused its credentials. The manager reconnects by itself after an I/O error, but a
/// reconnection Redis refused (a password rotated and not yet back, a user switched off) is
/// kept and answered to every request for as long as the manager lives: this makes a new one,
/// at most once per wait (from [`REFUSED_FIRST_WAIT`], doubling to [`REFUSED_LONGEST_WAIT`]),
/// for as long as the store runs.
struct StandaloneConnection {
    client: redis::Client,
    config: ConnectionManagerConfig,
    current: std::sync::Mutex<Managed>,
}

struct Managed {
    manager: ConnectionManager,
    /// When the manager was last made anew because Redis refused it, and the wait before the
    /// next time.
    remade: Option<(std::time::Instant, Duration)>,
}

impl StandaloneConnection {
    fn manager(&self) -> ConnectionManager {
        self.lock().manager.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Managed> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Redis refused the credentials: a new manager, unless one was made within the wait.
    fn refused(&self) {
        let now = std::time::Instant::now();
        let mut managed = self.lock();
        let wait = match managed.remade {
            Some((at, wait)) if now < at + wait => return,
            // A refusal long after the last one starts a new series of waits.
            Some((at, wait)) if now < at + wait + REFUSED_LONGEST_WAIT * 10 => {
                (wait * 2).min(REFUSED_LONGEST_WAIT)
            }
            _ => REFUSED_FIRST_WAIT,
        };
        if let Ok(manager) =
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
        {
            managed.manager = manager;
        }
        managed.remade = Some((now, wait));
    }
}

/// Whether Redis refused a connection's credentials (a wrong or rotated password, a user
/// switched off or missing).
fn refused(err: &redis::RedisError) -> bool {
    err.kind() == redis::ErrorKind::AuthenticationFailed
        || err
            .code()
            .is_some_and(|code| code == "WRONGPASS" || code == "NOAUTH")
}

struct Inner {
    connector: Connector,
    settings: Settings,
    description: String,
    changes: Arc<Changes>,
    /// Policies earlier listings read, for those that reuse them.
    known_policies: crate::registry::KnownPolicies,
    requests: crate::requests::Requests,
    /// Dropped with the store: ends the task that listens for changes Redis pushes.
    _stop_listening: Option<oneshot::Sender<()>>,
}

/// A Redis store for async callers: many breakers sharing one multiplexed connection (or one
/// cluster connection). Cheap to clone.
///
/// Connections recover by themselves when Redis comes back. Every call waits at most the
/// configured timeout; past it, each breaker's store-failure policy decides.
#[derive(Clone)]
pub struct AsyncRedisStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for AsyncRedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRedisStore")
            .field("redis", &self.inner.description)
            .field("prefix", &self.inner.settings.prefix)
            .finish_non_exhaustive()
    }
}

impl AsyncRedisStore {
    /// A store for `config`. A malformed URL is an error; an unreachable server is not (the
    /// connection is made in the background, and calls follow the failure policy until it
    /// is), except for a Cluster, whose topology must be read once.
    pub async fn connect(config: RedisConfig) -> Result<AsyncRedisStore, StoreError> {
        let settings = config.settings()?;
        let timeout = settings.timeout;
        let description = format!("{:?}", config.deployment);
        let connector = match &config.deployment {
            Deployment::Standalone(url) => {
                let client = config.client(url)?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let manager =
                    ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
                        .map_err(|err| config_error(url, err))?;
                Connector::Standalone(Box::new(StandaloneConnection {
                    client,
                    config: manager_config,
                    current: std::sync::Mutex::new(Managed {
                        manager,
                        remade: None,
                    }),
                }))
            }
            Deployment::Cluster(urls) => {
                let client = config
                    .cluster_builder(urls)?
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()
                    .map_err(|err| config_error(&urls.join(","), err))?;
                let connection = tokio::time::timeout(timeout * 20, client.get_async_connection())
                    .await
                    .map_err(|_| timed_out("connecting to the Redis Cluster"))?
                    .map_err(|err| {
                        let nodes: Vec<String> = urls.iter().map(|url| redact(url)).collect();
                        store_error_in(
                            &format!(
                                "could not connect to the Redis Cluster at {}",
                                nodes.join(",")
                            ),
                            err,
                        )
                    })?;
                Connector::Ready(Connection::Cluster(connection))
            }
            Deployment::Sentinel { sentinels, master } => {
                let client = config.sentinel_client(sentinels, master)?;
                Connector::Sentinel(Box::new(SentinelConnection {
                    sentinels: Mutex::new(client),
                    current: Mutex::new(None),
                    timeout,
                }))
            }
        };
        let (changes, stop_listening) = push::start(&config, &settings);
        Ok(AsyncRedisStore {
            inner: Arc::new(Inner {
                connector,
                settings,
                description,
                changes,
                known_policies: crate::registry::KnownPolicies::default(),
                requests: crate::requests::Requests::default(),
                _stop_listening: stop_listening,
            }),
        })
    }

    async fn connection(&self) -> Result<Connection, StoreError> {
        match &self.inner.connector {
            Connector::Ready(connection) => Ok(connection.clone()),
            Connector::Standalone(standalone) => Ok(Connection::Standalone(standalone.manager())),
            Connector::Sentinel(sentinel) => {
                let mut current = sentinel.current.lock().await;
                if let Some(connection) = &*current {
                    return Ok(Connection::Sentinel(connection.clone()));
                }
                let client = sentinel
                    .sentinels
                    .lock()
                    .await
                    .async_get_client()
                    .await
                    .map_err(store_error)?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(sentinel.timeout))
                    .set_response_timeout(Some(sentinel.timeout));
                let connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(store_error)?;
                *current = Some(connection.clone());
                Ok(Connection::Sentinel(connection))
            }
        }
    }

    /// Runs `request` on a connection, within the store's timeout.
    pub(crate) async fn request<T, F, Fut>(&self, what: &str, request: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let connection = self.connection().await?;
            self.inner.requests.count();
            request(connection).await.map_err(|err| {
                if let (Connector::Standalone(standalone), true) =
                    (&self.inner.connector, refused(&err))
                {
                    standalone.refused();
                }
                store_error(err)
            })
        };
        let result = match tokio::time::timeout(self.inner.settings.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(timed_out(what)),
        };
        if result.is_err() {
            if let Connector::Sentinel(sentinel) = &self.inner.connector {
                // The master may have moved: ask the Sentinels again next time.
                *sentinel.current.lock().await = None;
            }
        }
        result
    }

    /// Runs `op` to its end: sends what it asks and hands it the replies. Also says whether
    /// Redis answered the last request (false if none was sent).
    async fn run<O: Operation>(&self, op: O) -> (O::Output, bool) {
        let mut run = Run::new(op);
        loop {
            let Ask { request, what } = match run.next() {
                Ok(ask) => ask,
                Err(done) => return done,
            };
            let reply = self.request(what, |mut connection| async move {
                match request {
                    Request::Script(call) => call.invoke_async(&mut connection).await,
                    Request::Command(cmd) => cmd.query_async(&mut connection).await,
                    Request::Pipeline(pipe) => pipe.query_async(&mut connection).await,
                }
            });
            run.reply(reply.await);
        }
    }

    /// The requests this store has sent to Redis so far: script calls, commands and
    /// pipelines of reads, each one round trip (the subscription to pushed changes aside).
    /// Every store of the process also counts them in the `metrics` counter
    /// `breaker_redis_requests_total`. A script call that finds the script not yet loaded
    /// (once per server) makes two more round trips, counted as one.
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.so_far()
    }

    /// What Redis has spent so far (`INFO cpu commandstats stats`, one request): sampled
    /// twice, the fleet's cost per second. Behind a Cluster, the sum over its nodes. An ACL
    /// that forbids `INFO` makes this an error of kind
    /// [`Config`](breaker_core::StoreErrorKind::Config) (`NOPERM`).
    pub async fn redis_usage(&self) -> Result<crate::RedisUsage, StoreError> {
        let info: redis::Value = self
            .request("reading INFO", |mut connection| async move {
                redis::cmd("INFO")
                    .arg("cpu")
                    .arg("commandstats")
                    .arg("stats")
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        crate::RedisUsage::from_reply(&info).ok_or_else(|| {
            StoreError::new(
                breaker_core::StoreErrorKind::Corrupt,
                "Redis's INFO lacks the cpu or stats section",
            )
        })
    }

    /// Checks that Redis answers (one `PING`), within the timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(ops::ping()).await.0
    }

    /// The breaker named `name` with `policy`, registered in the store's registry now. While
    /// the breaker is used, the registration is refreshed in the background (about once per
    /// half `idle_ttl`, and at once when Redis lost the breaker's keys); one that fails is
    /// reported to tracing and tried again a few seconds later, and the breaker works
    /// meanwhile, under its store-failure policy.
    pub async fn breaker(
        &self,
        name: &str,
        policy: Policy,
    ) -> Result<AsyncRedisBreaker, StoreError> {
        let engine = Arc::new(Engine::new(name, policy, self.inner.settings.clone()));
        engine.registration()?;
        self.follow(&engine);
        let now = engine.now();
        if engine.registration_due(now) {
            let (ok, _) = self.run(ops::register(&engine)).await;
            engine.registered(now, ok);
        }
        Ok(AsyncRedisBreaker {
            engine,
            store: self.clone(),
        })
    }

    /// The store's settings (for reads of many breakers per round trip, in `listing.rs`).
    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The policies earlier listings read (in `listing.rs`).
    pub(crate) fn known_policies(&self) -> &crate::registry::KnownPolicies {
        &self.inner.known_policies
    }

    /// Makes `engine` hear the changes Redis pushes.
    fn follow(&self, engine: &Arc<Engine>) {
        self.inner.changes.add(engine);
    }

    /// How many breaker names this store keeps to hear pushed changes for: bounded by the
    /// live breakers (about twice as many at most), not by every name ever used.
    #[doc(hidden)]
    pub fn followed_breakers(&self) -> usize {
        self.inner.changes.len()
    }

    /// The newest `count` entries of the history of breaker `name`, or of every registered
    /// breaker merged, newest first.
    pub async fn history(
        &self,
        name: Option<&str>,
        count: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.run(ops::history(&self.inner.settings, name, count))
            .await
            .0
    }

    /// Every registered breaker with its live state and the policies it was registered
    /// with (more than one: processes disagree). Breakers whose keys have expired are
    /// dropped from the registry.
    pub async fn list(&self) -> Result<Vec<BreakerInfo>, StoreError> {
        self.run(ops::list(&self.inner.settings)).await.0
    }
}

breaker_handle! {
    /// One breaker in a [`AsyncRedisStore`]. Cheap to clone.
    AsyncRedisBreaker over AsyncRedisStore
}

impl AsyncRedisBreaker {
    /// The breaker's state, read from Redis.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.store.run(ops::snapshot(&self.engine)).await.0
    }

    /// Applies an operator's `action` for every process: the transition it made (see
    /// [`AsyncOperate::operate`]).
    pub async fn operate(&self, action: Action) -> Result<Option<Transition>, StoreError> {
        self.store.run(ops::operate(&self.engine, action)).await.0
    }

    /// Sends the outcomes this breaker has added up in batched mode
    /// ([`RedisConfig::batch`](crate::RedisConfig::batch)), now, and waits for Redis to take
    /// them. A serverless function calls it before its handler returns. When Redis fails,
    /// the breaker's store-failure policy applies to the batch as to a call, listeners are
    /// told (before it returns, as they are of every store event made so far), and the
    /// error is returned; the outcomes are not kept for a retry.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let on_their_way = self.engine.batches_taken();
        let result = self.store.flush_engine(&self.engine, Take::All).await;
        // Batches sent in the background before this one may still await their reply.
        let deadline = tokio::time::Instant::now() + self.engine.settings.timeout;
        while !self.engine.batches_done(on_their_way) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Listeners have heard of what the batches did.
        let (done, told) = tokio::sync::oneshot::channel();
        Listeners::when_told(move || {
            let _ = done.send(());
        });
        let _ = tokio::time::timeout(self.engine.settings.timeout, told).await;
        result
    }

    /// The window's live buckets, oldest first, read from Redis.
    pub async fn window(&self) -> Result<Vec<Bucket>, StoreError> {
        self.store.run(ops::window(&self.engine)).await.0
    }
}

impl AsyncOperate for AsyncRedisBreaker {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        AsyncRedisBreaker::snapshot(self).await
    }

    async fn operate(&self, action: Action) -> Result<Option<Transition>, StoreError> {
        AsyncRedisBreaker::operate(self, action).await
    }
}

impl Drop for AsyncRedisBreaker {
    /// The last handle of a breaker sends what its batch holds, in a task of its own (best
    /// effort: only inside a tokio runtime that goes on running; call
    /// [`flush`](AsyncRedisBreaker::flush) to be sure).
    fn drop(&mut self) {
        if self.engine.settings.batch.is_some() && Arc::strong_count(&self.engine) == 1 {
            self.store.schedule_flush(&self.engine, BatchDue::Trip);
        }
    }
}

impl AsyncBreaker for AsyncRedisBreaker {
    async fn acquire(&self) -> Result<Permit, Rejected> {
        let (decision, answered) = self.store.run(ops::acquire(&self.engine)).await;
        if answered {
            self.store.refresh_registration(&self.engine);
        }
        decision
    }

    async fn record(&self, permit: Permit, report: Report) -> Recorded {
        let op = ops::record(&self.engine, permit, report);
        let ((recorded, due), answered) = self.store.run(op).await;
        match due {
            // The caller whose failure could trip the breaker waits for the batch.
            BatchDue::Trip => {
                let _ = self.store.flush_engine(&self.engine, Take::All).await;
            }
            due => self.store.schedule_flush(&self.engine, due),
        }
        if answered {
            self.store.refresh_registration(&self.engine);
        }
        recorded
    }
}
