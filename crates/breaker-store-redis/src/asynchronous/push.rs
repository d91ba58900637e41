//! Changes Redis pushes: the breaker script publishes every transition and operator action on
//! `<prefix>:changes`; a task of the store listens and makes the changed breakers' caches
//! stale, so a running process follows them within milliseconds. Polling within
//! `max_staleness` stays the safety net.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{self, Either};
use tokio::sync::oneshot;

use crate::config::{Deployment, RedisConfig};
use crate::engine::Engine;
use crate::settings::Settings;

/// Starts listening for the changes Redis pushes, when `config` asks for it and a tokio
/// runtime runs: through one Redis node (a standalone server, or any node of a Cluster, where a
/// published message reaches every node), each in turn while one fails; behind Sentinels,
/// polling only. The breakers to tell, and what stops the listening task when dropped.
pub(super) fn start(
    config: &RedisConfig,
    settings: &Settings,
) -> (Arc<Changes>, Option<oneshot::Sender<()>>) {
    let changes = Arc::new(Changes::default());
    let push_urls = match &config.deployment {
        Deployment::Standalone(url) if config.push => std::slice::from_ref(url),
        Deployment::Cluster(urls) if config.push => urls.as_slice(),
        _ => &[],
    };
    let push_clients: Vec<redis::Client> = push_urls
        .iter()
        .filter_map(|url| config.client(url).ok())
        .collect();
    let stop_listening = match tokio::runtime::Handle::try_current() {
        Ok(runtime) if !push_clients.is_empty() => {
            let (stop, stopped) = oneshot::channel();
            let channel = format!("{}:changes", settings.prefix);
            // A process subscribes once it has lived long enough to profit from it: before
            // `max_staleness` has passed, polling gives the same bound, so a short-lived
            // process (a function that makes one call and exits) never opens the second
            // connection or sends the SUBSCRIBE.
            let wait = settings.max_staleness.min(LONGEST_WAIT_TO_SUBSCRIBE);
            runtime.spawn(listen(
                push_clients,
                channel,
                changes.clone(),
                wait,
                stopped,
            ));
            Some(stop)
        }
        _ => None,
    };
    (changes, stop_listening)
}

/// The longest a store waits before it subscribes to pushed changes (it waits its
/// `max_staleness` when shorter).
const LONGEST_WAIT_TO_SUBSCRIBE: Duration = Duration::from_secs(1);

/// The breakers this store made, by state key, so a change Redis pushes reaches them.
#[derive(Default)]
pub(super) struct Changes {
    followed: std::sync::Mutex<Followed>,
}

/// Breakers by state key; entries whose breakers were all dropped are swept away whenever
/// the map has doubled since the last sweep, so it holds at most about twice the live
/// breakers (plus a few), however many names were ever used.
#[derive(Default)]
struct Followed {
    engines: HashMap<String, Vec<Weak<Engine>>>,
    /// Entries after the last sweep.
    swept: usize,
}

/// The map is swept once it holds this many entries at least.
const SWEEP_FLOOR: usize = 64;

impl Changes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Followed> {
        // Nothing panics while holding this lock; a poisoned map still holds valid entries.
        self.followed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn add(&self, engine: &Arc<Engine>) {
        let mut followed = self.lock();
        if followed.engines.len() >= (2 * followed.swept).max(SWEEP_FLOOR) {
            followed.engines.retain(|_, list| {
                list.retain(|weak| weak.strong_count() > 0);
                !list.is_empty()
            });
            followed.engines.shrink_to_fit();
            followed.swept = followed.engines.len();
        }
        let list = followed
            .engines
            .entry(engine.keys.state.clone())
            .or_default();
        list.retain(|weak| weak.strong_count() > 0);
        list.push(Arc::downgrade(engine));
    }

    /// How many breaker names the map holds.
    pub(super) fn len(&self) -> usize {
        self.lock().engines.len()
    }

    /// The breaker whose state key is `key` changed: its cache is stale.
    fn changed(&self, key: &str) {
        let mut followed = self.lock();
        if let Some(list) = followed.engines.get_mut(key) {
            list.retain(|weak| weak.strong_count() > 0);
            for engine in list.iter().filter_map(Weak::upgrade) {
                engine.make_stale();
            }
        }
    }

    /// Changes may have been missed (no subscription was live): every cache is stale.
    fn all_changed(&self) {
        for list in self.lock().engines.values() {
            for engine in list.iter().filter_map(Weak::upgrade) {
                engine.make_stale();
            }
        }
    }
}

/// After `wait`, listens for the changes the breaker script publishes (transitions and
/// operator actions) on `<prefix>:changes` and makes the changed breakers' caches stale
/// (all of them when the subscription starts: changes before it were missed), so a running process
/// follows them within milliseconds; when the connection drops, reconnects a second later to
/// the next of `clients` (a Cluster's node may be gone for good after a failover, while any
/// other node hears every message), and ends when the store is dropped. Polling within
/// `max_staleness` stays the safety net.
async fn listen(
    clients: Vec<redis::Client>,
    channel: String,
    changes: Arc<Changes>,
    wait: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    if !wait.is_zero() {
        let pause = Box::pin(tokio::time::sleep(wait));
        if let Either::Right(_) = future::select(pause, &mut stop).await {
            return;
        }
    }
    for client in clients.iter().cycle() {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            changes.all_changed();
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                if let Ok(key) = message.get_payload::<String>() {
                    changes.changed(&key);
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        if let Either::Right(_) = future::select(Box::pin(session), &mut stop).await {
            return;
        }
        let pause = Box::pin(tokio::time::sleep(Duration::from_secs(1)));
        if let Either::Right(_) = future::select(pause, &mut stop).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use breaker_core::{ManualClock, Policy, Timestamp};

    use super::*;

    #[test]
    fn names_of_dropped_breakers_are_swept() {
        let settings = Settings::for_tests(ManualClock::new(Timestamp::ZERO));
        let changes = Changes::default();
        let kept: Vec<Arc<Engine>> = (0..10)
            .map(|i| {
                Arc::new(Engine::new(
                    &format!("kept-{i}"),
                    Policy::default(),
                    settings.clone(),
                ))
            })
            .collect();
        for engine in &kept {
            changes.add(engine);
        }
        // Breakers on demand: a new name each time, dropped soon after.
        for i in 0..20_000 {
            let engine = Arc::new(Engine::new(
                &format!("host-{i}"),
                Policy::default(),
                settings.clone(),
            ));
            changes.add(&engine);
        }
        assert!(
            changes.len() <= 2 * SWEEP_FLOOR,
            "{} names kept",
            changes.len()
        );
        // The live ones still hear their changes.
        let followed = changes.lock();
        for engine in &kept {
            assert_eq!(followed.engines[&engine.keys.state].len(), 1);
        }
    }
}
