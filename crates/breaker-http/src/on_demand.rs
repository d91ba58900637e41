//! Breakers made on first use, one per key (by default per authority), dropped when idle and
//! bounded in number (SPEC section 6).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breaker_core::StoreError;

use crate::RejectionMode;
use crate::RequestHead;
use crate::mounted::Mounted;
use crate::observe::Series;

type MakeBlocking<B> = dyn Fn(&str) -> Result<B, StoreError> + Send + Sync;
type Made<B> = Pin<Box<dyn Future<Output = Result<B, StoreError>> + Send>>;
type MakeAsync<B> = dyn Fn(String) -> Made<B> + Send + Sync;
type KeyOf = dyn Fn(&RequestHead<'_>) -> Option<String> + Send + Sync;

/// How a breaker is made for a name: the store's own `breaker(name, policy)`, blocking (the
/// memory store, the blocking Redis store) or async (the async Redis store).
pub(crate) enum Factory<B> {
    Blocking(Arc<MakeBlocking<B>>),
    Async(Arc<MakeAsync<B>>),
}

impl<B> Clone for Factory<B> {
    fn clone(&self) -> Self {
        match self {
            Factory::Blocking(make) => Factory::Blocking(make.clone()),
            Factory::Async(make) => Factory::Async(make.clone()),
        }
    }
}

/// How the `metrics` series of breakers made on demand are labelled.
///
/// The `breaker` label of every series (`breaker_calls_total`, `breaker_rejections_total`,
/// `breaker_transitions_total`, `breaker_listener_events_dropped_total`) is either each
/// breaker's name or the on-demand mount's [`name`](OnDemand::name).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricLabels {
    /// One set of series for the whole mount, labelled with its name, however many hosts
    /// it calls: the counters add up its breakers' calls, and instead of a `breaker_state`
    /// gauge per breaker, `breaker_on_demand_breakers{breaker, state}` counts the mount's
    /// live breakers in each state (`closed`, `open`, `half-open`). The default: the number
    /// of series stays bounded.
    #[default]
    PerMount,
    /// One set of series per breaker (per host), labelled with its name, `breaker_state`
    /// gauge included, as for mounted breakers: about nine series per breaker ever made,
    /// which a metrics recorder keeps after the breaker is dropped. For a few known hosts.
    PerBreaker,
}

/// Breakers on demand: a client that calls many hosts gets one breaker per key, made on first
/// use by a factory (one policy, one store), kept while in use, dropped from the process after
/// [`idle_after`](Self::idle_after) without calls, and at most
/// [`max_breakers`](Self::max_breakers) at once (the least recently used goes first).
///
/// The key is the request's authority, `scheme://host:port`, unless [`key`](Self::key) says
/// otherwise; it is also the breaker's name, so processes sharing a Redis store share each
/// key's breaker. Mounted prefixes come first: only requests no mount matches get a breaker
/// on demand.
///
/// Their `metrics` series are the mount's, labelled with its [`name`](Self::name), unless
/// [`metric_labels`](Self::metric_labels) asks for series per breaker (see [`MetricLabels`]).
///
/// ```
/// use breaker_core::Policy;
/// use breaker_http::OnDemand;
/// use breaker_store_memory::{MemoryBreaker, MemoryStore};
///
/// let store = MemoryStore::new();
/// let policy = Policy::default();
/// let per_host: OnDemand<MemoryBreaker> =
///     OnDemand::new(move |name: &str| store.breaker(name, policy.clone()))
///         .max_breakers(500);
/// ```
pub struct OnDemand<B> {
    pub(crate) factory: Factory<B>,
    key: Arc<KeyOf>,
    idle_after: Duration,
    max_breakers: usize,
    pub(crate) rejection: Option<RejectionMode>,
    name: Arc<str>,
    labels: MetricLabels,
}

impl<B> fmt::Debug for OnDemand<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnDemand")
            .field("idle_after", &self.idle_after)
            .field("max_breakers", &self.max_breakers)
            .field("rejection", &self.rejection)
            .field("name", &self.name)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl<B> Clone for OnDemand<B> {
    fn clone(&self) -> Self {
        OnDemand {
            factory: self.factory.clone(),
            key: self.key.clone(),
            idle_after: self.idle_after,
            max_breakers: self.max_breakers,
            rejection: self.rejection,
            name: self.name.clone(),
            labels: self.labels,
        }
    }
}

/// The default key: `scheme://host:port`, the port filled in from the scheme.
fn authority(request: &RequestHead<'_>) -> Option<String> {
    let port = request.port()?;
    let (scheme, host) = (request.scheme(), request.host());
    if scheme.is_empty() || host.is_empty() {
        return None;
    }
    // Hosts and schemes compare without case: `API.example.com` is `api.example.com`.
    let key = format!("{scheme}://{host}:{port}");
    Some(key.to_ascii_lowercase())
}

impl<B> OnDemand<B> {
    fn with(factory: Factory<B>) -> OnDemand<B> {
        OnDemand {
            factory,
            key: Arc::new(authority),
            idle_after: Duration::from_secs(600),
            max_breakers: 1_000,
            rejection: None,
            name: Arc::from("on-demand"),
            labels: MetricLabels::PerMount,
        }
    }

    /// Breakers made by `make(name)`, a blocking factory such as
    /// `move |name: &str| store.breaker(name, policy.clone())`. Works with every adapter.
    pub fn new(make: impl Fn(&str) -> Result<B, StoreError> + Send + Sync + 'static) -> Self {
        OnDemand::with(Factory::Blocking(Arc::new(make)))
    }

    /// Breakers made by an async factory, such as the async Redis store's
    /// `move |name: String| { let store = store.clone(); let policy = policy.clone();
    /// async move { store.breaker(&name, policy).await } }`. For async clients (reqwest,
    /// tower); a blocking client (ureq) cannot wait for it and fails the call with the
    /// [`StoreError`] that says so.
    pub fn new_async<F, Fut>(make: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B, StoreError>> + Send + 'static,
    {
        OnDemand::with(Factory::Async(Arc::new(move |name| Box::pin(make(name)))))
    }

    /// The key (and breaker name) of a request; `None` lets the request pass without a
    /// breaker. The default is the authority, `scheme://host:port`.
    #[must_use]
    pub fn key(
        mut self,
        key: impl Fn(&RequestHead<'_>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.key = Arc::new(key);
        self
    }

    /// A breaker unused for this long is dropped from the process (default 10 minutes). Its
    /// state in a shared store stays; the next call makes it again.
    #[must_use]
    pub fn idle_after(mut self, idle_after: Duration) -> Self {
        self.idle_after = idle_after;
        self
    }

    /// At most this many breakers are kept at once (default 1000, at least 1); making one
    /// more drops the least recently used.
    #[must_use]
    pub fn max_breakers(mut self, max_breakers: usize) -> Self {
        self.max_breakers = max_breakers.max(1);
        self
    }

    /// What calls rejected by these breakers return, if not the client's choice.
    #[must_use]
    pub fn rejection_mode(mut self, mode: RejectionMode) -> Self {
        self.rejection = Some(mode);
        self
    }

    /// The mount's name (default `on-demand`): the `breaker` label of its metrics when they
    /// are labelled per mount. Give each client's mount its own name to tell them apart.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self
    }

    /// How the metrics of these breakers are labelled (default [`MetricLabels::PerMount`]).
    #[must_use]
    pub fn metric_labels(mut self, labels: MetricLabels) -> Self {
        self.labels = labels;
        self
    }
}

struct Entry<B> {
    mounted: Arc<Mounted<B>>,
    last_used: Instant,
}

/// The breakers made on demand that this process keeps.
pub(crate) struct Registry<B> {
    pub(crate) config: OnDemand<B>,
    /// The mount's series, when its metrics are labelled per mount.
    series: Option<Arc<Series>>,
    live: Mutex<Live<B>>,
}

struct Live<B> {
    entries: HashMap<String, Entry<B>>,
    swept: Option<Instant>,
}

impl<B> Registry<B> {
    pub(crate) fn new(config: OnDemand<B>) -> Registry<B> {
        let series = match config.labels {
            MetricLabels::PerMount => Some(Arc::new(Series::per_mount(&config.name))),
            MetricLabels::PerBreaker => None,
        };
        Registry {
            config,
            series,
            live: Mutex::new(Live {
                entries: HashMap::new(),
                swept: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live<B>> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The series a breaker made here reports to, if not its own.
    pub(crate) fn series(&self) -> Option<&Arc<Series>> {
        self.series.as_ref()
    }

    /// The key of `request`, if it gets a breaker.
    pub(crate) fn key(&self, request: &RequestHead<'_>) -> Option<String> {
        (self.config.key)(request)
    }

    /// The live breaker for `key`, marked used at `now`.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<Arc<Mounted<B>>> {
        let mut live = self.lock();
        let expired = self.sweep(&mut live, now);
        let found = live.entries.get_mut(key).map(|entry| {
            entry.last_used = now;
            entry.mounted.clone()
        });
        drop(live);
        // Breakers are dropped outside the lock: a store's breaker may do work when dropped.
        drop(expired);
        found
    }

    /// Keeps `mounted` for `key` (or the one another call made first), evicting the least
    /// recently used beyond the bound.
    pub(crate) fn insert(&self, key: String, mounted: Mounted<B>, now: Instant) -> Arc<Mounted<B>> {
        let mut live = self.lock();
        let mut dropped = self.sweep(&mut live, now);
        if let Some(existing) = live.entries.get_mut(&key) {
            existing.last_used = now;
            return existing.mounted.clone();
        }
        while live.entries.len() >= self.config.max_breakers {
            let oldest = live
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(key, _)| key.clone());
            match oldest.and_then(|key| live.entries.remove(&key)) {
                Some(entry) => dropped.push(entry),
                None => break,
            }
        }
        let mounted = Arc::new(mounted);
        live.entries.insert(
            key,
            Entry {
                mounted: mounted.clone(),
                last_used: now,
            },
        );
        drop(live);
        drop(dropped);
        mounted
    }

    /// Removes breakers idle for `idle_after`, looking at most once per tenth of it.
    fn sweep(&self, live: &mut Live<B>, now: Instant) -> Vec<Entry<B>> {
        let idle = self.config.idle_after;
        if live
            .swept
            .is_some_and(|swept| now.saturating_duration_since(swept) < idle / 10)
        {
            return Vec::new();
        }
        live.swept = Some(now);
        let stale: Vec<String> = live
            .entries
            .iter()
            .filter(|(_, entry)| now.saturating_duration_since(entry.last_used) >= idle)
            .map(|(key, _)| key.clone())
            .collect();
        stale
            .iter()
            .filter_map(|key| live.entries.remove(key))
            .collect()
    }

    /// How many breakers the process keeps now.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}
