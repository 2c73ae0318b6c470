//! Adapters between nuvem's pure domain rules and AWS: DynamoDB store, the
//! events queue, SES mail, and API Gateway HTTP replies. Handlers build these
//! once per cold start and pass them to their `handle` functions.

pub mod config;
pub mod http;
pub mod idempotency;
pub mod mail;
pub mod queue;
pub mod runtime;
pub mod store;
pub mod table_keys;

/// What most functions need: the table and the events queue, from the
/// environment the template sets (`TABLE_NAME`, `EVENTS_QUEUE_URL`).
#[derive(Clone, Debug)]
pub struct Core {
    pub store: store::Store,
    pub events: queue::EventQueue,
}

impl Core {
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, config::ConfigError> {
        Self::from_lookup(sdk, &|name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, config::ConfigError> {
        Ok(Core {
            store: store::Store::new(sdk, config::required(lookup, "TABLE_NAME")?),
            events: queue::EventQueue::new(sdk, config::required(lookup, "EVENTS_QUEUE_URL")?),
        })
    }
}
