//! The work the async store does in tasks of its own, so no caller waits for it: sending a
//! batch when it is due, and refreshing a breaker's registration.

use std::sync::Arc;
use std::time::Duration;

use breaker_core::StoreError;
use breaker_core::store::remote::BatchDue;

use super::AsyncRedisStore;
use crate::engine::ops;
use crate::engine::{Engine, Take};

impl AsyncRedisStore {
    /// Sends `engine`'s pending outcomes when `due` says, in a task of its own so that no
    /// caller waits for it. One task per breaker keeps time for its batches; a batch that
    /// must go sooner than that task wakes (one that was found due, or whose failures now
    /// reach the failure rate) gets a task of its own, which sends it only if it is due.
    pub(super) fn schedule_flush(&self, engine: &Arc<Engine>, due: BatchDue) {
        let (delay, take) = match due {
            BatchDue::No => return,
            BatchDue::Later(delay) => (delay, Take::Due),
            BatchDue::Now => (Duration::ZERO, Take::Due),
            BatchDue::Trip => (Duration::ZERO, Take::All),
        };
        // Without a tokio runtime the batch waits for the next call, `flush()` or drop.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.clone();
        let engine = engine.clone();
        if matches!(due, BatchDue::Later(_)) && engine.arm_timer() {
            runtime.spawn(store.keep_time(engine));
            return;
        }
        runtime.spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let _ = store.flush_engine(&engine, take).await;
        });
    }

    /// Sends `engine`'s batches as each comes due, until nothing is pending.
    async fn keep_time(self, engine: Arc<Engine>) {
        loop {
            match engine.batch_due_in() {
                Some(wait) if wait.is_zero() => {
                    let _ = self.flush_engine(&engine, Take::Due).await;
                }
                Some(wait) => tokio::time::sleep(wait).await,
                None => {
                    engine.disarm_timer();
                    // A batch begun meanwhile found the timer armed: keep time for it.
                    if engine.batch_due_in().is_none() || !engine.arm_timer() {
                        return;
                    }
                }
            }
        }
    }

    /// Sends `engine`'s pending outcomes (as `take` says), if any, in one script call.
    pub(super) async fn flush_engine(
        &self,
        engine: &Arc<Engine>,
        take: Take,
    ) -> Result<(), StoreError> {
        let (result, answered) = self.run(ops::flush(engine, take)).await;
        if answered {
            self.refresh_registration(engine);
        }
        result
    }

    /// After Redis answered a call: refreshes the breaker's registration when it is due, in
    /// a task of its own so that the call does not wait for it.
    pub(super) fn refresh_registration(&self, engine: &Arc<Engine>) {
        let now = engine.now();
        if !engine.registration_due(now) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            engine.registered(now, false);
            return;
        };
        let store = self.clone();
        let engine = engine.clone();
        runtime.spawn(async move {
            let (ok, _) = store.run(ops::register(&engine)).await;
            engine.registered(now, ok);
        });
    }
}
