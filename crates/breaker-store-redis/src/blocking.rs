//! The blocking store: a pool of plain connections, each request bounded by the timeout.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breaker_core::store::remote::BatchDue;
use breaker_core::{
    Action, BlockingBreaker, BlockingOperate, Bucket, HistoryEntry, Listeners, Permit, Policy,
    Recorded, Rejected, Report, Snapshot, StoreError, StoreErrorKind, Transition,
};
use redis::sentinel::SentinelClient;
use redis::{ConnectionLike, RedisError, RedisResult, Value};

use crate::config::{Deployment, RedisConfig};
use crate::engine::ops::{self, Ask, Operation, Request, Run};
use crate::engine::{Engine, Take};
use crate::error::{config_error, sentinel_hint, store_error};
use crate::handle::breaker_handle;
use crate::registry::BreakerInfo;
use crate::settings::Settings;

enum Client {
    Standalone(redis::Client),
    Cluster(redis::cluster::ClusterClient),
    Sentinel(Mutex<SentinelClient>),
}

/// Makes pooled connections with timeouts on every socket operation.
struct Manager {
    client: Client,
    timeout: Duration,
}

enum Socket {
    Standalone(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

/// A pooled connection. After any error it is dropped rather than reused: a reply that
/// arrives after a timeout would otherwise be read as the answer to the next request.
struct Conn {
    socket: Socket,
    broken: bool,
}

impl Conn {
    fn set_timeout(&self, timeout: Duration) -> RedisResult<()> {
        match &self.socket {
            Socket::Standalone(conn) => {
                conn.set_read_timeout(Some(timeout))?;
                conn.set_write_timeout(Some(timeout))
            }
            Socket::Cluster(conn) => {
                conn.set_read_timeout(Some(timeout))?;
                conn.set_write_timeout(Some(timeout))
            }
        }
    }

    fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match &mut self.socket {
            Socket::Standalone(conn) => conn,
            Socket::Cluster(conn) => &mut **conn,
        }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    fn connect(&self) -> Result<Conn, RedisError> {
        let socket = match &self.client {
            Client::Standalone(client) => {
                Socket::Standalone(client.get_connection_with_timeout(self.timeout)?)
            }
            Client::Cluster(client) => Socket::Cluster(Box::new(client.get_connection()?)),
            Client::Sentinel(sentinels) => {
                let client = sentinels
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .get_client()?;
                Socket::Standalone(client.get_connection_with_timeout(self.timeout)?)
            }
        };
        let conn = Conn {
            socket,
            broken: false,
        };
        conn.set_timeout(self.timeout)?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), RedisError> {
        redis::cmd("PING")
            .query::<String>(conn.as_dyn())
            .map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || !conn.as_dyn().is_open()
    }
}

struct Inner {
    pool: r2d2::Pool<Manager>,
    settings: Settings,
    description: String,
    requests: crate::requests::Requests,
}

/// A Redis store for blocking callers: a pool of connections shared by many breakers.
/// Cheap to clone. It uses the same keys and script as [`AsyncRedisStore`](crate::AsyncRedisStore), so
/// blocking and async processes share breakers.
#[derive(Clone)]
pub struct BlockingRedisStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for BlockingRedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingRedisStore")
            .field("redis", &self.inner.description)
            .field("prefix", &self.inner.settings.prefix)
            .finish_non_exhaustive()
    }
}

impl BlockingRedisStore {
    /// A store for `config`. A malformed URL is an error; an unreachable server is not
    /// (connections are made when needed, and calls follow the failure policy until then).
    pub fn connect(config: RedisConfig) -> Result<BlockingRedisStore, StoreError> {
        let settings = config.settings()?;
        let timeout = settings.timeout;
        let client = match &config.deployment {
            Deployment::Standalone(url) => Client::Standalone(config.client(url)?),
            Deployment::Cluster(urls) => Client::Cluster(
                config
                    .cluster_builder(urls)?
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()
                    .map_err(|err| config_error(&urls.join(","), err))?,
            ),
            Deployment::Sentinel { sentinels, master } => {
                Client::Sentinel(Mutex::new(config.sentinel_client(sentinels, master)?))
            }
        };
        // No test on checkout: it would cost a PING round trip per call. Broken connections
        // are found by `has_broken` instead.
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(timeout)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Manager { client, timeout });
        Ok(BlockingRedisStore {
            inner: Arc::new(Inner {
                pool,
                description: format!("{:?}", config.deployment),
                settings,
                requests: crate::requests::Requests::default(),
            }),
        })
    }

    /// Runs `request` on a pooled connection; checkout and request together take at most
    /// the store's timeout.
    fn request<T>(
        &self,
        what: &str,
        request: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let timeout = self.inner.settings.timeout;
        let started = Instant::now();
        let mut conn = self.inner.pool.get_timeout(timeout).map_err(|err| {
            let text = err.to_string();
            let hint = sentinel_hint(&text);
            StoreError::new(
                StoreErrorKind::Unavailable,
                format!("no connection to redis within {timeout:?} ({what}): {text}{hint}"),
            )
        })?;
        let remaining = timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        self.inner.requests.count();
        let result = conn
            .set_timeout(remaining)
            .and_then(|()| request(conn.as_dyn()));
        if result.is_err() {
            conn.broken = true;
        }
        result.map_err(store_error)
    }

    /// Runs `op` to its end: sends what it asks and hands it the replies. Also says whether
    /// Redis answered the last request (false if none was sent).
    fn run<O: Operation>(&self, op: O) -> (O::Output, bool) {
        let mut run = Run::new(op);
        loop {
            let Ask { request, what } = match run.next() {
                Ok(ask) => ask,
                Err(done) => return done,
            };
            run.reply(self.request(what, |conn| {
                match &request {
                    Request::Script(call) => call.invoke(conn),
                    Request::Command(cmd) => cmd.query(conn),
                    // A blocking Cluster connection takes no pipeline: one command at a time.
                    Request::Pipeline(pipe) if !conn.supports_pipelining() => pipe
                        .cmd_iter()
                        .map(|cmd| cmd.query::<Value>(conn))
                        .collect::<RedisResult<Vec<Value>>>()
                        .map(Value::Array),
                    Request::Pipeline(pipe) => pipe.query(conn),
                }
            }));
        }
    }

    /// The requests this store has sent to Redis so far: script calls and commands, each
    /// one round trip. Every store of the process also counts them in the `metrics` counter
    /// `breaker_redis_requests_total`. A script call that finds the script not yet loaded
    /// (once per server) makes two more round trips, counted as one.
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.so_far()
    }

    /// Checks that Redis answers (one `PING`), within the timeout.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.run(ops::ping()).0
    }

    /// The breaker named `name` with `policy`, registered in the store's registry. A
    /// registration that fails is reported to tracing and the breaker still works, under its
    /// store-failure policy.
    pub fn breaker(&self, name: &str, policy: Policy) -> Result<BlockingRedisBreaker, StoreError> {
        let engine = Arc::new(Engine::new(name, policy, self.inner.settings.clone()));
        engine.registration()?;
        self.refresh_registration(&engine);
        Ok(BlockingRedisBreaker {
            engine,
            store: self.clone(),
        })
    }

    /// Nothing is pushed to the blocking store: it polls within `max_staleness`.
    fn follow(&self, _engine: &Arc<Engine>) {}

    /// Sends `engine`'s pending outcomes (as `take` says), if any, in one script call.
    fn flush_engine(&self, engine: &Engine, take: Take) -> Result<(), StoreError> {
        let (result, answered) = self.run(ops::flush(engine, take));
        if answered {
            self.refresh_registration(engine);
        }
        result
    }

    /// Writes `engine`'s breaker into the registry when it is due (see [`Engine::registration_due`]):
    /// rarely, so the caller that finds it due pays for it, and only after Redis answered it.
    fn refresh_registration(&self, engine: &Engine) {
        let now = engine.now();
        if !engine.registration_due(now) {
            return;
        }
        let (ok, _) = self.run(ops::register(engine));
        engine.registered(now, ok);
    }

    /// The newest `count` entries of the history of breaker `name`, or of every registered
    /// breaker merged, newest first.
    pub fn history(
        &self,
        name: Option<&str>,
        count: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.run(ops::history(&self.inner.settings, name, count)).0
    }

    /// Every registered breaker with its live state; see [`AsyncRedisStore::list`](crate::AsyncRedisStore::list).
    pub fn list(&self) -> Result<Vec<BreakerInfo>, StoreError> {
        self.run(ops::list(&self.inner.settings)).0
    }
}

breaker_handle! {
    /// One breaker in a [`BlockingRedisStore`]. Cheap to clone.
    BlockingRedisBreaker over BlockingRedisStore
}

impl BlockingRedisBreaker {
    /// Sends the outcomes this breaker has added up in batched mode
    /// ([`RedisConfig::batch`](crate::RedisConfig::batch)), now. A serverless function calls
    /// it before its handler returns. When Redis fails, the breaker's store-failure policy
    /// applies to the batch as to a call, listeners are told (before it returns, as they are of
    /// every store event made so far), and the error is returned; the
    /// outcomes are not kept for a retry.
    pub fn flush(&self) -> Result<(), StoreError> {
        let on_their_way = self.engine.batches_taken();
        let result = self.store.flush_engine(&self.engine, Take::All);
        // Batches other threads' calls are sending may still await their reply.
        let deadline = Instant::now() + self.engine.settings.timeout;
        while !self.engine.batches_done(on_their_way) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Listeners have heard of what the batches did.
        let (done, told) = std::sync::mpsc::channel();
        Listeners::when_told(move || {
            let _ = done.send(());
        });
        let _ = told.recv_timeout(self.engine.settings.timeout);
        result
    }

    /// The window's live buckets, oldest first, read from Redis.
    pub fn window(&self) -> Result<Vec<Bucket>, StoreError> {
        self.store.run(ops::window(&self.engine)).0
    }
}

impl Drop for BlockingRedisBreaker {
    /// The last handle of a breaker sends what its batch holds.
    fn drop(&mut self) {
        if self.engine.settings.batch.is_some() && Arc::strong_count(&self.engine) == 1 {
            let _ = self.store.flush_engine(&self.engine, Take::All);
        }
    }
}

impl BlockingBreaker for BlockingRedisBreaker {
    fn acquire(&self) -> Result<Permit, Rejected> {
        let (decision, answered) = self.store.run(ops::acquire(&self.engine));
        if answered {
            self.store.refresh_registration(&self.engine);
        }
        decision
    }

    fn record(&self, permit: Permit, report: Report) -> Recorded {
        let op = ops::record(&self.engine, permit, report);
        let ((recorded, due), answered) = self.store.run(op);
        // No timer here: the call that finds the interval passed sends the batch.
        match due {
            BatchDue::Now => {
                let _ = self.store.flush_engine(&self.engine, Take::Due);
            }
            BatchDue::Trip => {
                let _ = self.store.flush_engine(&self.engine, Take::All);
            }
            BatchDue::No | BatchDue::Later(_) => {}
        }
        if answered {
            self.store.refresh_registration(&self.engine);
        }
        recorded
    }
}

impl BlockingOperate for BlockingRedisBreaker {
    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.store.run(ops::snapshot(&self.engine)).0
    }

    fn operate(&self, action: Action) -> Result<Option<Transition>, StoreError> {
        self.store.run(ops::operate(&self.engine, action)).0
    }
}
