//! One read of the store for every page and scrape of a dashboard: a read made at most once
//! per refresh and shared by every request that asks for it meanwhile, so ten open pages and
//! a Prometheus scrape cost the store what one page does.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::time::{Duration, Instant};

use breaker_core::{StoreError, StoreErrorKind};
use tokio::sync::Mutex;

/// A store's failure as kept for the requests that share it.
type Kept<T> = Result<T, (StoreErrorKind, String)>;

/// The latest answer to each read (by key), while it is younger than `fresh_for`.
pub(crate) struct Latest<K, T> {
    fresh_for: Duration,
    /// Held across a read: the requests that ask meanwhile wait for its answer instead of
    /// reading the store again.
    answers: Mutex<HashMap<K, (Instant, Kept<T>)>>,
}

impl<K: Eq + Hash, T: Clone> Latest<K, T> {
    pub(crate) fn new(fresh_for: Duration) -> Latest<K, T> {
        Latest {
            fresh_for,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// The answer to `key`: the latest one if it is fresh, else `read`'s, kept for the next
    /// requests.
    pub(crate) async fn get<F, Fut>(&self, key: K, read: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut answers = self.answers.lock().await;
        if let Some((at, kept)) = answers.get(&key) {
            if at.elapsed() < self.fresh_for {
                return kept
                    .clone()
                    .map_err(|(kind, message)| StoreError::new(kind, message));
            }
        }
        let answer = read().await;
        if !self.fresh_for.is_zero() {
            // Answers of other keys that went stale go: the map holds only what is asked.
            answers.retain(|_, (at, _)| at.elapsed() < self.fresh_for);
            let kept = match &answer {
                Ok(value) => Ok(value.clone()),
                Err(err) => Err((err.kind(), err.to_string())),
            };
            answers.insert(key, (Instant::now(), kept));
        }
        answer
    }

    /// Forgets every answer: the next request reads the store (after an operator's action,
    /// so that the page shows it at once).
    pub(crate) async fn forget(&self) {
        self.answers.lock().await.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn requests_within_a_refresh_share_one_read() {
        let latest: Arc<Latest<(), usize>> = Arc::new(Latest::new(Duration::from_secs(60)));
        let reads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (latest, reads) = (latest.clone(), reads.clone());
            tasks.push(tokio::spawn(async move {
                latest
                    .get((), || async {
                        tokio::task::yield_now().await;
                        Ok(reads.fetch_add(1, Ordering::SeqCst))
                    })
                    .await
                    .unwrap()
            }));
        }
        for task in tasks {
            assert_eq!(
                task.await.unwrap(),
                0,
                "every request had the first read's answer"
            );
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        latest.forget().await;
        let again = latest
            .get((), || async { Ok(reads.fetch_add(1, Ordering::SeqCst)) })
            .await;
        assert_eq!(again.unwrap(), 1, "forgotten: read again");
    }

    #[tokio::test]
    async fn a_failure_is_shared_too_and_nothing_is_kept_when_fresh_for_is_zero() {
        let latest: Latest<(), usize> = Latest::new(Duration::from_secs(60));
        let failed = latest
            .get((), || async {
                Err(StoreError::new(StoreErrorKind::Timeout, "slow"))
            })
            .await
            .unwrap_err();
        let shared = latest.get((), || async { Ok(1) }).await.unwrap_err();
        assert_eq!(
            (failed.kind(), shared.kind()),
            (StoreErrorKind::Timeout, StoreErrorKind::Timeout)
        );
        let never: Latest<(), usize> = Latest::new(Duration::ZERO);
        assert_eq!(never.get((), || async { Ok(1) }).await.unwrap(), 1);
        assert_eq!(never.get((), || async { Ok(2) }).await.unwrap(), 2);
    }
}
