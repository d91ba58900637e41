//! The dashboard over a Redis store.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use breaker_core::{Action, HistoryEntry, Policy, StoreError, StoreErrorKind};
use breaker_store_redis::{AsyncRedisBreaker, AsyncRedisStore, BreakerInfo, ListRequest, Listed};

use crate::store::{BreakerView, DashboardStore, StoreUsage};

/// The breakers registered in a [`AsyncRedisStore`], as operators see them: listed with their
/// windows, their history, and operator actions by name. Cheap to clone.
///
/// Listing reads many breakers per round trip and never registers a breaker or extends its
/// keys' life ([`AsyncRedisStore::list_many`]): a dashboard left open does not keep abandoned
/// breakers alive. A breaker that cannot be read is listed as unreadable. Operator actions go
/// through a handle made with the policy the breaker was last registered with; making one
/// registers the breaker (an operator acted on it), and handles are kept while the breaker is
/// listed.
#[derive(Clone)]
pub struct RedisBreakers {
    store: AsyncRedisStore,
    handles: Arc<Mutex<HashMap<String, (Policy, AsyncRedisBreaker)>>>,
    reuse_policies: Duration,
}

/// How long a listing reuses the policies an earlier one read, unless told otherwise.
pub const DEFAULT_REUSE_POLICIES: Duration = Duration::from_secs(10);

impl fmt::Debug for RedisBreakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBreakers")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl RedisBreakers {
    /// The breakers of `store`. Operator actions are recorded in the history as asked by the
    /// store's [`actor`](breaker_store_redis::RedisConfig::actor).
    pub fn new(store: AsyncRedisStore) -> RedisBreakers {
        RedisBreakers {
            store,
            handles: Arc::new(Mutex::new(HashMap::new())),
            reuse_policies: DEFAULT_REUSE_POLICIES,
        }
    }

    /// How long a listing of every breaker reuses the policies an earlier listing read
    /// (default [`DEFAULT_REUSE_POLICIES`]): policies change rarely and are most of what a
    /// listing reads of a breaker, so a dashboard of thousands reads them once in a while,
    /// not at each refresh. A policy conflict, and last-seen times, show up to this late.
    /// `Duration::ZERO` reads them at each listing.
    #[must_use]
    pub fn reuse_policies(mut self, fresh_for: Duration) -> RedisBreakers {
        self.reuse_policies = fresh_for;
        self
    }

    /// The store.
    pub fn store(&self) -> &AsyncRedisStore {
        &self.store
    }

    /// A handle on the registered breaker `name`, with the policy it was last registered
    /// with, for operator actions. An unregistered name is an error of kind
    /// [`NotFound`](StoreErrorKind::NotFound).
    pub async fn breaker(&self, name: &str) -> Result<AsyncRedisBreaker, StoreError> {
        let listing = self.store.list_many(&ListRequest::names([name])).await?;
        let listed = listing
            .breakers
            .into_iter()
            .find(|listed| listed.name == name)
            .ok_or_else(|| {
                StoreError::new(
                    StoreErrorKind::NotFound,
                    format!("no breaker named {name:?} in the store"),
                )
            })?;
        let policy = listed.info?.policies.into_iter().next().ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::NotFound,
                format!("breaker {name:?} has no registered policy"),
            )
        })?;
        self.handle(name, policy).await
    }

    /// The kept handle on `name` with `policy`, or a new one.
    async fn handle(&self, name: &str, policy: Policy) -> Result<AsyncRedisBreaker, StoreError> {
        if let Some((kept, breaker)) = self.handles().get(name) {
            if *kept == policy {
                return Ok(breaker.clone());
            }
        }
        let breaker = self.store.breaker(name, policy.clone()).await?;
        self.handles()
            .insert(name.to_owned(), (policy, breaker.clone()));
        Ok(breaker)
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Policy, AsyncRedisBreaker)>> {
        // A panic elsewhere cannot leave the map half-written: inserts and removals are whole.
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A listed breaker as the dashboard shows it: read, or unreadable and why.
fn view(listed: Listed) -> BreakerView {
    match listed.info {
        Ok(info) => {
            let mut view = BreakerView::from(info);
            view.buckets = listed.window;
            view
        }
        Err(err) => {
            let mut view = BreakerView::unreadable(listed.name, err);
            view.first_seen = Some(listed.first_seen);
            view
        }
    }
}

impl From<BreakerInfo> for BreakerView {
    fn from(info: BreakerInfo) -> BreakerView {
        let mut policies = info.policies.into_iter();
        let newest = policies.next().unwrap_or_default();
        let mut view = BreakerView::new(info.name, info.snapshot, newest);
        view.policies.extend(policies);
        view.first_seen = Some(info.first_seen);
        view.last_seen = Some(info.last_seen);
        view
    }
}

/// Up to this many breakers, a listing reads their windows too (the page draws them as
/// cards); beyond, only their states, and a breaker's window is read in its detail view.
pub const WINDOWS_UP_TO: usize = 60;

impl DashboardStore for RedisBreakers {
    async fn breakers(&self) -> Result<Vec<BreakerView>, StoreError> {
        let listing = self
            .store
            .list_many(
                &ListRequest::all()
                    .windows_up_to(WINDOWS_UP_TO)
                    .reuse_policies(self.reuse_policies),
            )
            .await?;
        // Handles are made only for actions; those of breakers gone from the registry go.
        self.handles()
            .retain(|name, _| listing.breakers.iter().any(|listed| &listed.name == name));
        Ok(listing.breakers.into_iter().map(view).collect())
    }

    async fn breaker(&self, name: &str) -> Result<Option<BreakerView>, StoreError> {
        let listing = self
            .store
            .list_many(&ListRequest::names([name]).windows(true))
            .await?;
        Ok(listing.breakers.into_iter().map(view).next())
    }

    async fn history(
        &self,
        name: Option<&str>,
        count: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        match name {
            Some(name) => self.store.history(Some(name), count).await,
            None => Ok(self.store.history_merged(count).await?.0),
        }
    }

    async fn act(&self, name: &str, action: Action) -> Result<(), StoreError> {
        self.breaker(name).await?.operate(action).await.map(drop)
    }

    async fn usage(&self) -> Result<Option<StoreUsage>, StoreError> {
        let usage = self.store.redis_usage().await?;
        Ok(Some(StoreUsage::new(
            usage.cpu,
            usage.script_calls,
            usage.commands,
        )))
    }
}
