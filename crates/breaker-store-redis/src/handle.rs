//! What a breaker handle is, whichever transport drives it: an engine (the breaker's cache,
//! batch and registration) and the store that sends its script calls.

/// Declares a breaker handle type over the store type `$store`: the struct, its `Debug`, its
/// `BreakerHandle` (name, policy, listeners) and `with_listeners`. The store provides
/// `follow(&Arc<Engine>)`, which makes a fresh engine hear pushed changes (or does nothing,
/// where nothing is pushed).
macro_rules! breaker_handle {
    ($(#[$meta:meta])* $name:ident over $store:ty) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name {
            engine: std::sync::Arc<crate::engine::Engine>,
            store: $store,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("name", &self.engine.name)
                    .field("policy", &self.engine.policy)
                    .field("store", &self.store)
                    .finish()
            }
        }

        impl breaker_core::BreakerHandle for $name {
            fn name(&self) -> &str {
                &self.engine.name
            }

            fn policy(&self) -> &breaker_core::Policy {
                &self.engine.policy
            }

            fn listeners(&self) -> &breaker_core::Listeners {
                &self.engine.listeners
            }
        }

        impl $name {
            /// This breaker with `listeners`. Call it when the breaker is made: a handle that
            /// shares its breaker with clones gets a fresh cache of the breaker's state.
            #[must_use]
            pub fn with_listeners(mut self, listeners: breaker_core::Listeners) -> $name {
                crate::engine::Engine::set_listeners(&mut self.engine, listeners);
                self.store.follow(&self.engine);
                self
            }
        }
    };
}

pub(crate) use breaker_handle;
