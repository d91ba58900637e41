//! The work the async store does in tasks of its own, so no caller waits for it: sending a
//! batch when it is due, and refreshing a breaker's registration.

use std::sync::Arc;
use std::time::Duration;

use breaker_core::StoreError;
use breaker_core::store::remote::BatchDue;

use super::AsyncRedisStore;
use crate::engine::Engine;
use crate::engine::ops;

impl AsyncRedisStore {
    /// Sends `engine`'s pending outcomes when `due` says, in a task of its own so that no
    /// caller waits for it.
    pub(super) fn schedule_flush(&self, engine: &Arc<Engine>, due: BatchDue) {
        let delay = match due {
            BatchDue::No => return,
            BatchDue::Later(interval) => interval,
            BatchDue::Now | BatchDue::Trip => Duration::ZERO,
        };
        // Without a tokio runtime the batch waits for the next call, `flush()` or drop.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.clone();
        let engine = engine.clone();
        runtime.spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let _ = store.flush_engine(&engine).await;
        });
    }

    /// Sends `engine`'s pending outcomes, if any, in one script call.
    pub(super) async fn flush_engine(&self, engine: &Arc<Engine>) -> Result<(), StoreError> {
        let (result, answered) = self.run(ops::flush(engine)).await;
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
