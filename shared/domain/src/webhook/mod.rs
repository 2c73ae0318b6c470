//! Webhook rules: endpoint settings, Standard Webhooks signatures, the SSRF
//! guard, the retry schedule, delivery bookkeeping and statistics.

pub mod delivery;
pub mod endpoint;
pub mod retry;
pub mod signature;
pub mod ssrf;
pub mod stats;

pub use delivery::{delivery_id, excerpt, ordering_subject, redact_headers};
pub use endpoint::{
    DeliveryMethod, EndpointPatch, EndpointRequest, EndpointSettings, UrlPolicy, subscribes,
};
pub use retry::{Next, Response, Verdict};
pub use signature::{SecretError, VerifyError, WebhookSecret};
pub use ssrf::Blocked;
pub use stats::{AttemptSample, DeliveryStats, StatsWindow};
