//! Waiting for what happens asynchronously (a queue consumer, an email, a
//! retry): poll a condition until it holds, with one generous cap that only
//! a hung test reaches. No deadline is tuned to how fast the machine is, so
//! a loaded machine makes a test slower, never red.
//!
//! ```ignore
//! eventually("the 80 % alert", || async { alerts().await.len() == 1 }).await;
//! let mail = eventually_some("the activation email", || async { find(&to).await }).await;
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(200);
/// How long a condition may take before the test fails: far beyond what a
/// slow machine needs, reached only by something that will never happen.
pub const CAP: Duration = Duration::from_secs(120);

/// Waits until `check` returns true (polled every [`POLL`]); panics naming
/// `what` after [`CAP`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_some(what, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Waits until `check` returns `Some` and returns its value (polled every
/// [`POLL`]); panics naming `what` after [`CAP`].
pub async fn eventually_some<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < CAP,
            "timed out after {} s waiting for {what}",
            CAP.as_secs()
        );
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        eventually("the third call", || async {
            calls.fetch_add(1, Ordering::SeqCst) == 2
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let n = AtomicU32::new(0);
        let got = eventually_some("a value", || async {
            let k = n.fetch_add(1, Ordering::SeqCst);
            (k >= 1).then_some(k * 10)
        })
        .await;
        assert_eq!(got, 10);
    }
}
