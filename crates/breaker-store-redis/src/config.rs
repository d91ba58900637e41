//! How to reach Redis, and the store's settings.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use breaker_core::{Clock, MAX_DURATION, MonotonicClock, StoreError, StoreErrorKind};

use crate::error::{config_error, redact};
use crate::keys::check_prefix;
use crate::settings::Settings;

/// Script calls a second one breaker's fleet sends in batched mode, by default.
const DEFAULT_FLEET_BUDGET: u32 = 500;

/// Which Redis deployment to use.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Deployment {
    Standalone(String),
    Cluster(Vec<String>),
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

/// Where the store's Redis is and how the store behaves. Credentials in URLs never appear
/// in `Debug` output or in errors.
///
/// ```
/// use std::time::Duration;
/// use breaker_store_redis::RedisConfig;
///
/// let config = RedisConfig::standalone("redis://app:secret@127.0.0.1:6379")
///     .prefix("payments")
///     .timeout(Duration::from_millis(50))
///     .max_staleness(Duration::from_secs(1));
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) deployment: Deployment,
    prefix: String,
    timeout: Duration,
    max_staleness: Duration,
    idle_ttl: Duration,
    clock: Arc<dyn Clock>,
    inject_time: bool,
    pub(crate) pool_size: u32,
    history_len: u32,
    actor: String,
    batch: Option<Duration>,
    fleet_budget: u32,
    pub(crate) push: bool,
    tls: Tls,
    reporter: String,
    master_auth: MasterAuth,
}

/// The credentials of the master that Sentinels name, when it asks for them. Never shown.
#[derive(Clone, Default)]
struct MasterAuth {
    username: Option<String>,
    password: Option<String>,
}

/// PEM text, or the file that holds it (read when the store connects). Only a build with
/// TLS reads it; without, any TLS setting is refused.
#[derive(Clone)]
#[cfg_attr(not(feature = "tls-rustls"), allow(dead_code))]
enum Pem {
    File(PathBuf),
    Bytes(Vec<u8>),
}

#[cfg_attr(not(feature = "tls-rustls"), allow(dead_code))]
impl Pem {
    /// The PEM text, which must hold a `-----BEGIN <label>` block (of any label ending so
    /// when `label` is `PRIVATE KEY`); `what` names it in errors.
    fn read(&self, what: &str, label: &str) -> Result<Vec<u8>, StoreError> {
        let (bytes, source) = match self {
            Pem::Bytes(bytes) => (bytes.clone(), "given".to_owned()),
            Pem::File(path) => (
                std::fs::read(path).map_err(|err| {
                    StoreError::new(
                        StoreErrorKind::Config,
                        format!("cannot read the {what} file {}: {err}", path.display()),
                    )
                    .with_source(err)
                })?,
                format!("in {}", path.display()),
            ),
        };
        let text = String::from_utf8_lossy(&bytes);
        let found = text.lines().any(|line| {
            line.starts_with("-----BEGIN ") && line.trim_end().ends_with(&format!("{label}-----"))
        });
        if !found {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                format!("the {what} {source} is not PEM: no -----BEGIN ...{label}----- line"),
            ));
        }
        Ok(bytes)
    }
}

/// Settings of TLS connections (`rediss://`) beyond the URL. Certificate checks are always on.
#[derive(Clone, Default)]
struct Tls {
    /// Trusted roots instead of the default ones.
    ca: Option<Pem>,
    /// A client certificate (with its chain) and its key, for mutual TLS.
    client: Option<(Pem, Pem)>,
}

impl RedisConfig {
    fn new(deployment: Deployment) -> RedisConfig {
        RedisConfig {
            deployment,
            prefix: "breaker".to_owned(),
            timeout: Duration::from_millis(50),
            max_staleness: Duration::from_secs(1),
            idle_ttl: Duration::from_secs(24 * 3600),
            clock: Arc::new(MonotonicClock::new()),
            inject_time: false,
            pool_size: 16,
            history_len: 1_000,
            actor: format!("process {}", std::process::id()),
            batch: None,
            fleet_budget: DEFAULT_FLEET_BUDGET,
            push: true,
            tls: Tls::default(),
            reporter: random_reporter(),
            master_auth: MasterAuth::default(),
        }
    }

    /// One Redis server: `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS
    /// (with the `tls-rustls` feature).
    pub fn standalone(url: impl Into<String>) -> RedisConfig {
        RedisConfig::new(Deployment::Standalone(url.into()))
    }

    /// A Redis Cluster, reached through any of `urls`.
    pub fn cluster<I, S>(urls: I) -> RedisConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisConfig::new(Deployment::Cluster(
            urls.into_iter().map(Into::into).collect(),
        ))
    }

    /// The master named `master`, found through the Sentinels at `sentinels`.
    pub fn sentinel<I, S>(sentinels: I, master: impl Into<String>) -> RedisConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisConfig::new(Deployment::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master: master.into(),
        })
    }

    /// The deployment that operators' addresses name, as the `breaker` command takes them:
    ///
    /// - one server: `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS;
    /// - a Cluster: several `redis://` (or `rediss://`) URLs, one per node, or one
    ///   `redis+cluster://[user[:password]@]host[:port][,host[:port]...]` (`rediss+cluster://`
    ///   for TLS; port 6379 by default);
    /// - Sentinel: `redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master`
    ///   (`rediss+sentinel://` for TLS; port 26379 by default). The user and password are
    ///   those of the Sentinels.
    ///
    /// A malformed address is a [`StoreErrorKind::Config`] error that says what is wrong
    /// (with any password hidden).
    ///
    /// ```
    /// use breaker_store_redis::RedisConfig;
    ///
    /// let sentinel = RedisConfig::from_addresses(["redis+sentinel://s1:26379,s2/mymaster"]);
    /// assert!(format!("{:?}", sentinel.unwrap()).contains("redis://s2:26379"));
    /// let cluster = RedisConfig::from_addresses(["redis://a:7000", "redis://b:7001"]);
    /// assert!(format!("{:?}", cluster.unwrap()).starts_with("RedisConfig { deployment: Cluster"));
    /// let missing = RedisConfig::from_addresses(["redis+sentinel://s1:26379"]);
    /// assert!(missing.unwrap_err().to_string().contains("no master name"));
    /// ```
    pub fn from_addresses<I, S>(addresses: I) -> Result<RedisConfig, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let addresses: Vec<String> = addresses
            .into_iter()
            .map(|address| address.as_ref().trim().to_owned())
            .collect();
        let deployment = match addresses.as_slice() {
            [] => return Err(address_error("no Redis address given".to_owned())),
            [address] => parse_address(address)?,
            nodes => {
                let mut scheme = None;
                for node in nodes {
                    let this = node.split_once("://").map(|(scheme, _)| scheme);
                    match this {
                        Some("redis" | "rediss") => {}
                        _ => {
                            return Err(address_error(format!(
                                "{}: several addresses name the nodes of a Cluster, each a \
                                 redis:// or rediss:// URL (a Sentinel deployment is one \
                                 redis+sentinel://host:port,host:port/master address)",
                                redact(node)
                            )));
                        }
                    }
                    if scheme.is_some_and(|scheme| scheme != this) {
                        return Err(address_error(format!(
                            "{}: the Cluster's nodes mix redis:// and rediss:// (TLS); give \
                             them all one scheme",
                            redact(node)
                        )));
                    }
                    scheme = Some(this);
                }
                Deployment::Cluster(nodes.to_vec())
            }
        };
        Ok(RedisConfig::new(deployment))
    }

    /// Prefix of every key (default `breaker`), to keep applications apart.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> RedisConfig {
        self.prefix = prefix.into();
        self
    }

    /// Longest wait for any store call (default 50 ms); past it the breaker's
    /// store-failure policy decides.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> RedisConfig {
        self.timeout = timeout;
        self
    }

    /// How long the state from the last round trip may answer the pre-call check
    /// (default 1 s; zero asks Redis before every call).
    #[must_use]
    pub fn max_staleness(mut self, max_staleness: Duration) -> RedisConfig {
        self.max_staleness = max_staleness;
        self
    }

    /// How long a breaker's keys outlive its last call (default 24 h).
    #[must_use]
    pub fn idle_ttl(mut self, idle_ttl: Duration) -> RedisConfig {
        self.idle_ttl = idle_ttl;
        self
    }

    /// Connections kept by the blocking store's pool (default 16).
    #[must_use]
    pub fn pool_size(mut self, size: u32) -> RedisConfig {
        self.pool_size = size;
        self
    }

    /// Batched outcomes (off by default): outcomes of ordinary calls are added up in the
    /// process per breaker and sent in one script call per `interval`, or at once when a
    /// failure could trip the breaker by the last totals Redis sent. The pre-call check is
    /// served from the cached state, so on the closed path a caller never waits for Redis.
    /// Half-open probes are still granted and reported one by one. Pending outcomes are sent
    /// by `flush()`, which a serverless function calls before its handler returns, and
    /// (best effort) when the last handle of a breaker is dropped. Batches of successes are
    /// spaced further apart when the fleet would otherwise send more than its budget
    /// ([`RedisConfig::fleet_budget`]).
    #[must_use]
    pub fn batch(mut self, interval: Duration) -> RedisConfig {
        self.batch = Some(interval);
        self
    }

    /// In batched mode ([`RedisConfig::batch`]), the script calls a second that one
    /// breaker's whole fleet may send, shared out among its processes by their share of the
    /// fleet's calls (500 by default). Each process learns the fleet's call rate from the
    /// replies it receives, and spaces its batches of successes to its share: from the batch
    /// interval up to 1 s (and four fifths of `max_staleness`). A batch whose failures reach the policy's failure rate always goes
    /// after the batch interval, so a failing backend trips the breaker as soon as without
    /// the budget. docs/redis.md explains the choice of default and the bounds.
    #[must_use]
    pub fn fleet_budget(mut self, calls_per_second: u32) -> RedisConfig {
        self.fleet_budget = calls_per_second;
        self
    }

    /// Whether the async store listens for changes Redis pushes (default on): the breaker
    /// script publishes every transition and operator action on `<prefix>:changes`, and a
    /// running process then asks Redis again at once instead of within `max_staleness`. It
    /// takes one more connection per store. The blocking store, and Sentinel deployments,
    /// rely on `max_staleness` alone.
    #[must_use]
    pub fn push(mut self, enabled: bool) -> RedisConfig {
        self.push = enabled;
        self
    }

    /// How many transitions and operator actions each breaker's history keeps (about:
    /// trimming is approximate; default 1000; 0 keeps none).
    #[must_use]
    pub fn history_len(mut self, entries: u32) -> RedisConfig {
        self.history_len = entries;
        self
    }

    /// Who this store acts for, as the history of operator actions records it (default
    /// `process <pid>`; the `breaker` command says `breaker <user>`).
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> RedisConfig {
        self.actor = actor.into();
        self
    }

    /// Who this store is among the processes that report outcomes, for policies with
    /// `minimum_reporters` above 1 (default: drawn at random when the configuration is made,
    /// so each process is one reporter). Processes that should count as one (say, one host's
    /// workers behind one network path) can share an id. 1 to 64 characters of letters,
    /// digits, `-`, `_` and `.`.
    #[must_use]
    pub fn reporter(mut self, reporter: impl Into<String>) -> RedisConfig {
        self.reporter = reporter.into();
        self
    }

    /// The password of the master that Sentinels name, and of its replicas, which become
    /// the master after a failover: for a master with `requirepass` or an ACL user. The
    /// password in a `redis+sentinel://` address is the Sentinels' own, not the master's.
    /// Only a Sentinel deployment takes it ([`RedisConfig::check`] refuses it otherwise).
    ///
    /// ```
    /// use breaker_store_redis::RedisConfig;
    ///
    /// let config = RedisConfig::sentinel(["redis://s1:26379"], "mymaster")
    ///     .master_username("app")
    ///     .master_password("s3cret");
    /// config.check().unwrap();
    /// assert!(!format!("{config:?}").contains("s3cret"));
    /// ```
    #[must_use]
    pub fn master_password(mut self, password: impl Into<String>) -> RedisConfig {
        self.master_auth.password = Some(password.into());
        self
    }

    /// The ACL user of the master that Sentinels name (with
    /// [`RedisConfig::master_password`]); the default user if not given.
    #[must_use]
    pub fn master_username(mut self, username: impl Into<String>) -> RedisConfig {
        self.master_auth.username = Some(username.into());
        self
    }

    /// Trusts the certificate authorities in this PEM file (one certificate or more) for
    /// TLS (`rediss://`), instead of the default roots (the public CAs of webpki-roots): for
    /// a Redis whose certificate a private CA signed. The file is read when the store
    /// connects. Certificates are always checked, names included; the store has no setting
    /// that turns the checks off (`rediss://...#insecure` is refused).
    #[must_use]
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> RedisConfig {
        self.tls.ca = Some(Pem::File(path.into()));
        self
    }

    /// Like [`tls_ca_file`](RedisConfig::tls_ca_file), with the PEM text itself.
    #[must_use]
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> RedisConfig {
        self.tls.ca = Some(Pem::Bytes(pem.into()));
        self
    }

    /// Presents this client certificate (PEM, with any intermediate certificates after it)
    /// and its private key (PEM) to servers that ask for one: mutual TLS. The files are
    /// read when the store connects.
    #[must_use]
    pub fn tls_client_cert_files(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> RedisConfig {
        self.tls.client = Some((Pem::File(cert.into()), Pem::File(key.into())));
        self
    }

    /// Like [`tls_client_cert_files`](RedisConfig::tls_client_cert_files), with the PEM text
    /// itself.
    #[must_use]
    pub fn tls_client_cert_pem(
        mut self,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> RedisConfig {
        self.tls.client = Some((Pem::Bytes(cert.into()), Pem::Bytes(key.into())));
        self
    }

    /// Takes time from `clock` and sends it to Redis instead of using the server's `TIME`:
    /// for tests that drive time with a [`ManualClock`](breaker_core::ManualClock).
    #[must_use]
    pub fn injected_clock(mut self, clock: impl Clock + 'static) -> RedisConfig {
        self.clock = Arc::new(clock);
        self.inject_time = true;
        self
    }

    pub(crate) fn settings(&self) -> Result<Settings, StoreError> {
        check_prefix(&self.prefix)?;
        if self.timeout.is_zero() {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                "store timeout must be greater than zero",
            ));
        }
        if self
            .batch
            .is_some_and(|interval| interval < Duration::from_millis(1))
        {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                "batch interval must be at least 1 ms",
            ));
        }
        if self.fleet_budget == 0 {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                "fleet_budget = 0: the fleet needs at least 1 script call a second per breaker",
            ));
        }
        if self.idle_ttl < Duration::from_millis(1) || self.idle_ttl > MAX_DURATION {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                format!(
                    "idle_ttl = {}: must be at least 1 ms and at most 2^50 ms (about 35 000 years)",
                    humantime::format_duration(self.idle_ttl)
                ),
            ));
        }
        Ok(Settings {
            prefix: self.prefix.clone(),
            timeout: self.timeout,
            max_staleness: self.max_staleness,
            idle_ttl: self.idle_ttl,
            clock: self.clock.clone(),
            inject_time: self.inject_time,
            history_len: self.history_len,
            actor: self.actor.clone(),
            batch: self.batch,
            fleet_budget: self.fleet_budget,
            reporter: check_reporter(&self.reporter)?,
        })
    }
}

/// A reporter id drawn at random: the process id and the time, hashed by the standard
/// library's random keys.
fn random_reporter() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos()),
    );
    format!("{:016x}", hasher.finish())
}

/// `reporter` if it is a valid id (the script keeps ids in a `id:bucket,...` list).
fn check_reporter(reporter: &str) -> Result<String, StoreError> {
    let valid = (1..=64).contains(&reporter.len())
        && reporter
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(reporter.to_owned())
    } else {
        Err(StoreError::new(
            StoreErrorKind::Config,
            format!("reporter {reporter:?}: must be 1 to 64 letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// Clients for the deployment, with the TLS settings applied.
impl RedisConfig {
    /// Checks the configuration without connecting: the settings, every address, and the
    /// TLS settings (their files are read, and they need `rediss://` addresses). An
    /// operator's tool calls it to refuse a bad configuration before anything else.
    pub fn check(&self) -> Result<(), StoreError> {
        self.settings()?;
        let master_auth = &self.master_auth;
        if !matches!(self.deployment, Deployment::Sentinel { .. })
            && (master_auth.username.is_some() || master_auth.password.is_some())
        {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                "a master password or user is given, but the store is not behind Sentinels; \
                 put the credentials in the address (redis://user:password@host)",
            ));
        }
        if master_auth.username.is_some() && master_auth.password.is_none() {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                "a master user is given without its password (RedisConfig::master_password)",
            ));
        }
        match &self.deployment {
            Deployment::Standalone(url) => self.client(url).map(drop),
            Deployment::Cluster(urls) => self
                .cluster_builder(urls)?
                .build()
                .map(drop)
                .map_err(|err| config_error(&urls.join(","), err)),
            Deployment::Sentinel { sentinels, master } => {
                self.sentinel_client(sentinels, master).map(drop)
            }
        }
    }

    /// Whether TLS settings beyond the URL were given.
    fn has_tls_settings(&self) -> bool {
        self.tls.ca.is_some() || self.tls.client.is_some()
    }

    /// The TLS settings, read, or `None` when there are none.
    #[cfg(feature = "tls-rustls")]
    fn certificates(&self) -> Result<Option<redis::TlsCertificates>, StoreError> {
        if !self.has_tls_settings() {
            return Ok(None);
        }
        let root_cert = match &self.tls.ca {
            Some(ca) => Some(ca.read("CA certificate", "CERTIFICATE")?),
            None => None,
        };
        let client_tls = match &self.tls.client {
            Some((cert, key)) => Some(redis::ClientTlsConfig {
                client_cert: cert.read("client certificate", "CERTIFICATE")?,
                client_key: key.read("client key", "PRIVATE KEY")?,
            }),
            None => None,
        };
        Ok(Some(redis::TlsCertificates {
            client_tls,
            root_cert,
        }))
    }

    /// Refuses what the TLS settings cannot apply to: an address without TLS, or a build
    /// without it, and `#insecure`, which would turn certificate checks off.
    fn check_tls(&self, urls: &[String]) -> Result<(), StoreError> {
        if let Some(url) = urls.iter().find(|url| url.ends_with("#insecure")) {
            return Err(address_error(format!(
                "{}: `#insecure` would turn certificate checks off, which the store never \
                 does; trust the server's CA instead (RedisConfig::tls_ca_file)",
                redact(url)
            )));
        }
        if !self.has_tls_settings() {
            return Ok(());
        }
        if let Some(url) = urls.iter().find(|url| !url.starts_with("rediss://")) {
            return Err(address_error(format!(
                "{}: a CA or a client certificate is given, but this address does not use \
                 TLS; write rediss:// (or rediss+sentinel://, rediss+cluster://)",
                redact(url)
            )));
        }
        if !cfg!(feature = "tls-rustls") {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                "TLS settings need breaker-store-redis's `tls-rustls` feature",
            ));
        }
        Ok(())
    }

    /// A client of the one server at `url`.
    pub(crate) fn client(&self, url: &str) -> Result<redis::Client, StoreError> {
        self.check_tls(std::slice::from_ref(&url.to_owned()))?;
        #[cfg(feature = "tls-rustls")]
        if let Some(certificates) = self.certificates()? {
            return redis::Client::build_with_tls(url, certificates)
                .map_err(|err| config_error(url, err));
        }
        redis::Client::open(url).map_err(|err| config_error(url, err))
    }

    /// A builder of a client of the Cluster whose nodes include `urls`.
    pub(crate) fn cluster_builder(
        &self,
        urls: &[String],
    ) -> Result<redis::cluster::ClusterClientBuilder, StoreError> {
        self.check_tls(urls)?;
        let builder = redis::cluster::ClusterClient::builder(urls.iter().map(String::as_str));
        #[cfg(feature = "tls-rustls")]
        if let Some(certificates) = self.certificates()? {
            return Ok(builder.certs(certificates));
        }
        Ok(builder)
    }

    /// A client of the master named `master`, found through the Sentinels at `sentinels`
    /// (with the credentials of the first address that has some), and reached with the
    /// master's credentials. With TLS (`rediss://` Sentinels) the master is reached over TLS
    /// too, with the same settings.
    pub(crate) fn sentinel_client(
        &self,
        sentinels: &[String],
        master: &str,
    ) -> Result<redis::sentinel::SentinelClient, StoreError> {
        use redis::IntoConnectionInfo;
        use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
        self.check_tls(sentinels)?;
        let shown = || {
            sentinels
                .iter()
                .map(|url| redact(url))
                .collect::<Vec<_>>()
                .join(",")
        };
        let tls = sentinels.iter().any(|url| url.starts_with("rediss://"));
        #[cfg(not(feature = "tls-rustls"))]
        if tls {
            return Err(address_error(format!(
                "{}: rediss:// needs breaker-store-redis's `tls-rustls` feature",
                shown()
            )));
        }
        let mut addresses = Vec::new();
        let mut credentials = None;
        for url in sentinels {
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|err| config_error(url, err))?;
            let settings = info.redis_settings();
            if credentials.is_none()
                && (settings.username().is_some() || settings.password().is_some())
            {
                credentials = Some((
                    settings.username().map(str::to_owned),
                    settings.password().map(str::to_owned),
                ));
            }
            addresses.push(info.addr().clone());
        }
        let mut builder = SentinelClientBuilder::new(addresses, master, SentinelServerType::Master)
            .map_err(|err| config_error(&shown(), err))?;
        if let Some((username, password)) = credentials {
            if let Some(username) = username {
                builder = builder.set_client_to_sentinel_username(username);
            }
            if let Some(password) = password {
                builder = builder.set_client_to_sentinel_password(password);
            }
        }
        if let Some(username) = &self.master_auth.username {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = &self.master_auth.password {
            builder = builder.set_client_to_redis_password(password);
        }
        #[cfg(feature = "tls-rustls")]
        if tls {
            builder = builder
                .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure)
                .set_client_to_redis_tls_mode(redis::TlsMode::Secure);
            if let Some(certificates) = self.certificates()? {
                builder = builder
                    .set_client_to_sentinel_certificates(certificates.clone())
                    .set_client_to_redis_certificates(certificates);
            }
        }
        builder.build().map_err(|err| config_error(&shown(), err))
    }
}

/// An address that is not one the store understands.
fn address_error(message: String) -> StoreError {
    StoreError::new(
        StoreErrorKind::Config,
        format!("invalid Redis address: {message}"),
    )
}

/// One address: a server, a `+cluster` list of nodes, or a `+sentinel` list and master.
fn parse_address(address: &str) -> Result<Deployment, StoreError> {
    let shown = redact(address);
    let Some((scheme, rest)) = address.split_once("://") else {
        return Err(address_error(format!(
            "{shown}: expected a URL such as redis://host:6379, \
             redis+sentinel://host:26379/mymaster or redis+cluster://host:7000"
        )));
    };
    let (base, kind) = match scheme.split_once('+') {
        None => (scheme, None),
        Some((base, kind)) => (base, Some(kind)),
    };
    if base != "redis" && base != "rediss" || !matches!(kind, None | Some("sentinel" | "cluster")) {
        // Only a scheme made of plain characters is repeated; anything else is not a scheme.
        let scheme = if scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            format!("`{scheme}://`")
        } else {
            "this scheme".to_owned()
        };
        return Err(address_error(format!(
            "{shown}: {scheme} is not a Redis scheme; use redis:// or rediss:// (TLS), \
             redis+sentinel:// or redis+cluster:// (rediss+... for TLS)"
        )));
    }
    let Some(kind) = kind else {
        return Ok(Deployment::Standalone(address.to_owned()));
    };
    // The credentials end at the last `@`, whatever the password holds (as in `redact`).
    let (userinfo, hosts_and_path) = match rest.rsplit_once('@') {
        Some((userinfo, after)) => (Some(userinfo), after),
        None => (None, rest),
    };
    let (hosts, path) = hosts_and_path
        .split_once('/')
        .unwrap_or((hosts_and_path, ""));
    let default_port = if kind == "sentinel" { 26379 } else { 6379 };
    let mut urls = Vec::new();
    for host in hosts.split(',') {
        let (name, port) = match host.rsplit_once(':') {
            // An IPv6 address in brackets holds colons of its own.
            Some((name, port)) if !port.contains(']') => (name, Some(port)),
            _ => (host, None),
        };
        if name.is_empty() {
            return Err(address_error(format!(
                "{shown}: a host is missing in the list (hosts are separated by commas, as in \
                 {scheme}://host1:{default_port},host2:{default_port})"
            )));
        }
        let port = match port {
            None => default_port,
            Some(port) => port.parse::<u16>().map_err(|_| {
                address_error(format!(
                    "{shown}: port `{port}` of host `{name}` is not a number from 1 to 65535"
                ))
            })?,
        };
        let credentials = userinfo.map_or(String::new(), |userinfo| format!("{userinfo}@"));
        urls.push(format!("{base}://{credentials}{name}:{port}"));
    }
    if kind == "cluster" {
        if !path.is_empty() {
            return Err(address_error(format!(
                "{shown}: a Cluster has one database and takes no /path after its nodes"
            )));
        }
        return Ok(Deployment::Cluster(urls));
    }
    let master = path.split(['?', '#']).next().unwrap_or_default();
    if master.is_empty() {
        return Err(address_error(format!(
            "{shown}: no master name: add /<name> after the Sentinels, as in \
             {scheme}://host:26379/mymaster"
        )));
    }
    if master.contains('/') {
        return Err(address_error(format!(
            "{shown}: `{master}` is not a master name: write one name after the Sentinels, \
             as in {scheme}://host:26379/mymaster"
        )));
    }
    Ok(Deployment::Sentinel {
        sentinels: urls,
        master: master.to_owned(),
    })
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |urls: &[String]| urls.iter().map(|url| redact(url)).collect::<Vec<_>>();
        match self {
            Deployment::Standalone(url) => f.debug_tuple("Standalone").field(&redact(url)).finish(),
            Deployment::Cluster(urls) => f.debug_tuple("Cluster").field(&redacted(urls)).finish(),
            Deployment::Sentinel { sentinels, master } => f
                .debug_struct("Sentinel")
                .field("sentinels", &redacted(sentinels))
                .field("master", master)
                .finish(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("deployment", &self.deployment)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("max_staleness", &self.max_staleness)
            .field("idle_ttl", &self.idle_ttl)
            .field("inject_time", &self.inject_time)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://u:pw@h:6379/0"), "redis://u:***@h:6379/0");
        assert_eq!(redact("rediss://:pw@h"), "rediss://:***@h");
        assert_eq!(redact("redis://pw@h"), "redis://***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact("garbage pw"), "(not a URL)");
        assert_eq!(
            redact("redis+sentinel://u:pw@s1:26379,s2:26379/mymaster"),
            "redis+sentinel://u:***@s1:26379,s2:26379/mymaster"
        );
    }

    #[test]
    fn passwords_with_url_delimiters_are_redacted() {
        for password in [
            "s3cr#et", "s3cr/et", "s3cr?et", "s3cr@et", "s3:cr#et", "#/?@:",
        ] {
            for url in [
                format!("redis://ops:{password}@host:6379"),
                format!("rediss://:{password}@host:6379/0"),
                format!("redis://{password}@host"),
                format!("redis+sentinel://ops:{password}@s1:26379,s2:26380/mymaster"),
            ] {
                let shown = redact(&url);
                assert!(shown.contains("***@"), "{url} -> {shown}");
                assert!(
                    !shown.contains("cr") && !shown.contains("et@"),
                    "{url} -> {shown}"
                );
            }
            let secret = format!("redis://ops:{password}@h:1");
            let configs = [
                RedisConfig::standalone(secret.clone()),
                RedisConfig::cluster([secret.clone(), secret.clone()]),
                RedisConfig::sentinel([secret.clone()], "mymaster"),
            ];
            for config in configs {
                let debug = format!("{config:?}");
                assert!(!debug.contains(password), "{debug}");
                assert!(debug.contains("ops:***@h:1"), "{debug}");
            }
        }
        assert_eq!(
            redact("redis://ops:s3cr#et@host:6379"),
            "redis://ops:***@host:6379"
        );
        assert_eq!(redact("redis://s3cr/et:x@host"), "redis://***@host");
        let config = RedisConfig::cluster(["redis://a:s3cret@h1", "redis://a:s3cret@h2"]);
        assert!(!format!("{config:?}").contains("s3cret"));
        let config = RedisConfig::sentinel(["redis://:s3cret@s1"], "mymaster");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    fn deployment_of(addresses: &[&str]) -> Deployment {
        RedisConfig::from_addresses(addresses).unwrap().deployment
    }

    fn address_error_of(addresses: &[&str]) -> String {
        let err = RedisConfig::from_addresses(addresses).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Config);
        err.to_string()
    }

    #[test]
    fn addresses_name_every_deployment() {
        assert_eq!(
            deployment_of(&["redis://u:p@h:1/2"]),
            Deployment::Standalone("redis://u:p@h:1/2".to_owned())
        );
        assert_eq!(
            deployment_of(&["rediss://a:1", "rediss://b:2"]),
            Deployment::Cluster(vec!["rediss://a:1".to_owned(), "rediss://b:2".to_owned()])
        );
        assert_eq!(
            deployment_of(&["redis+cluster://u:p@a:1,b"]),
            Deployment::Cluster(vec![
                "redis://u:p@a:1".to_owned(),
                "redis://u:p@b:6379".to_owned()
            ])
        );
        assert_eq!(
            deployment_of(&["rediss+sentinel://:s3cr#et@s1:5,[::1]:6,s3/mymaster"]),
            Deployment::Sentinel {
                sentinels: vec![
                    "rediss://:s3cr#et@s1:5".to_owned(),
                    "rediss://:s3cr#et@[::1]:6".to_owned(),
                    "rediss://:s3cr#et@s3:26379".to_owned(),
                ],
                master: "mymaster".to_owned(),
            }
        );
    }

    #[test]
    fn a_malformed_address_says_what_is_wrong() {
        let cases: [(&[&str], &str); 9] = [
            (&[], "no Redis address given"),
            (&["localhost:6379"], "expected a URL"),
            (&["mysql://u:s3cr#et@h"], "`mysql://` is not a Redis scheme"),
            (&["redis+sentinel://u:s3cr#et@h:1"], "no master name"),
            (&["redis+sentinel://h:1/a/b"], "`a/b` is not a master name"),
            (
                &["redis+sentinel://u:s3cr/et@h:x/m"],
                "port `x` of host `h`",
            ),
            (&["redis+cluster://a:1,,b:2"], "a host is missing"),
            (
                &["redis://a:1", "redis+sentinel://b:2/m"],
                "several addresses",
            ),
            (
                &["redis://a:1", "rediss://u:s3cr?et@b:2"],
                "mix redis:// and rediss://",
            ),
        ];
        for (addresses, expected) in cases {
            let message = address_error_of(addresses);
            assert!(message.contains(expected), "{addresses:?}: {message}");
            assert!(!message.contains("s3cr"), "{addresses:?}: {message}");
        }
    }

    #[test]
    fn tls_settings_that_cannot_apply_are_refused() {
        let check = |config: RedisConfig| config.check().unwrap_err().to_string();
        let plain = check(RedisConfig::standalone("redis://h:1").tls_ca_pem("x"));
        assert!(plain.contains("does not use TLS"), "{plain}");
        let cluster = check(
            RedisConfig::cluster(["rediss://a:1", "redis://b:2"]).tls_client_cert_pem("c", "k"),
        );
        assert!(cluster.contains("redis://b:2"), "{cluster}");
        let insecure = check(RedisConfig::standalone("rediss://u:s3cret@h:1/#insecure"));
        assert!(
            insecure.contains("turn certificate checks off"),
            "{insecure}"
        );
        assert!(!insecure.contains("s3cret"), "{insecure}");
        RedisConfig::sentinel(["redis://s:1"], "m").check().unwrap();
        #[cfg(feature = "tls-rustls")]
        {
            RedisConfig::standalone("rediss://h:1").check().unwrap();
            let missing = check(RedisConfig::standalone("rediss://h:1").tls_ca_file("/nope.pem"));
            assert!(
                missing.contains("cannot read the CA certificate file /nope.pem"),
                "{missing}"
            );
            let garbage = RedisConfig::standalone("rediss://h:1").tls_ca_pem("not PEM");
            assert_eq!(garbage.check().unwrap_err().kind(), StoreErrorKind::Config);
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        let bad_prefix = RedisConfig::standalone("redis://h").prefix("a{b}");
        assert_eq!(
            bad_prefix.settings().unwrap_err().kind(),
            StoreErrorKind::Config
        );
        let huge = RedisConfig::standalone("redis://h").idle_ttl(Duration::MAX);
        assert!(
            huge.settings()
                .unwrap_err()
                .to_string()
                .contains("idle_ttl")
        );
        let master = RedisConfig::standalone("redis://h").master_password("pw");
        let refused = master.check().unwrap_err().to_string();
        assert!(refused.contains("not behind Sentinels"), "{refused}");
        let user_only = RedisConfig::sentinel(["redis://s:1"], "m").master_username("app");
        let refused = user_only.check().unwrap_err().to_string();
        assert!(refused.contains("without its password"), "{refused}");
        let zero = RedisConfig::standalone("redis://h").timeout(Duration::ZERO);
        assert!(zero.settings().unwrap_err().to_string().contains("timeout"));
    }
}
