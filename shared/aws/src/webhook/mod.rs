//! Webhook deliveries: the guarded HTTP client and one signed attempt.

pub mod attempt;
pub mod sender;

pub use attempt::{Attempted, attempt};
pub use sender::{Lookup, LookupFuture, Sender};
