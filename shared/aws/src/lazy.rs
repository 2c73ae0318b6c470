//! SDK clients built on first use.

use std::sync::{Arc, OnceLock};

/// An SDK client that is built the first time an event needs it, then
/// kept for the life of the instance (clones share it).
///
/// Why: constructing a client of a service crate makes that crate parse its
/// own copy of AWS's partition table (JSON, with a regex per partition) —
/// about 0.4 M instructions, more than a bare runtime's whole init — and
/// each crate has its own copy. When a request is waiting for the init
/// (on-demand), building a client there or in the first event costs that
/// request the same; built on first use, a client is never paid for by the
/// events that do not use it (a refused key, a forged signature). When init
/// runs ahead of any request ([`crate::config::init_ahead_of_requests`]),
/// the table's store builds its client at init instead ([`Self::built`]).
pub struct OnFirstUse<C> {
    sdk: aws_config::SdkConfig,
    build: fn(&aws_config::SdkConfig) -> C,
    client: Arc<OnceLock<C>>,
}

impl<C> OnFirstUse<C> {
    pub fn new(sdk: &aws_config::SdkConfig, build: fn(&aws_config::SdkConfig) -> C) -> Self {
        OnFirstUse {
            sdk: sdk.clone(),
            build,
            client: Arc::default(),
        }
    }

    /// A client configured by the caller, used as is (benches that count
    /// requests with an interceptor).
    pub fn ready(client: C) -> Self {
        OnFirstUse {
            sdk: aws_config::SdkConfig::builder().build(),
            build: |_| unreachable!("the client was given ready-made"),
            client: Arc::new(OnceLock::from(client)),
        }
    }

    pub fn get(&self) -> &C {
        self.client.get_or_init(|| (self.build)(&self.sdk))
    }

    /// Builds the client now rather than on first use.
    pub fn built(self) -> Self {
        self.get();
        self
    }

    /// Whether the client has been built yet.
    pub fn is_built(&self) -> bool {
        self.client.get().is_some()
    }
}

impl<C> std::ops::Deref for OnFirstUse<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.get()
    }
}

impl<C> Clone for OnFirstUse<C> {
    fn clone(&self) -> Self {
        OnFirstUse {
            sdk: self.sdk.clone(),
            build: self.build,
            client: self.client.clone(),
        }
    }
}

impl<C> std::fmt::Debug for OnFirstUse<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnFirstUse")
            .field("built", &self.is_built())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static BUILT: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn builds_once_on_first_use_and_clones_share_it() {
        let sdk = aws_config::SdkConfig::builder().build();
        let lazy = OnFirstUse::new(&sdk, |_| BUILT.fetch_add(1, Ordering::SeqCst) + 1);
        let twin = lazy.clone();
        assert_eq!(
            BUILT.load(Ordering::SeqCst),
            0,
            "nothing built at construction"
        );
        assert!(!lazy.is_built());
        assert_eq!(*twin.get(), 1);
        assert_eq!(*lazy, 1, "through Deref, the same client");
        assert!(lazy.is_built());
        assert_eq!(BUILT.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn built_builds_at_once() {
        let sdk = aws_config::SdkConfig::builder().build();
        let eager = OnFirstUse::new(&sdk, |_| 7).built();
        assert!(eager.is_built());
        assert_eq!(*eager, 7);
    }
}
