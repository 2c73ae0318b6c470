//! Webhook deliveries: the guarded HTTP client, the endpoints' sealed
//! secrets and one signed attempt.

pub mod attempt;
pub mod secrets;
pub mod sender;

pub use attempt::{Attempted, attempt};
pub use secrets::OpenSecrets;
pub use sender::{Lookup, LookupFuture, Sender};
