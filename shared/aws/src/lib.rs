//! Adapters between nuvem's pure domain rules and AWS: DynamoDB store, the
//! events queue, SES mail, and API Gateway HTTP replies. Handlers build these
//! once per cold start and pass them to their `handle` functions.

pub mod api_client;
pub mod blobs;
pub mod chat;
pub mod config;
pub mod deliveries;
pub mod deployment_secret;
pub mod graph;
pub mod http;
pub mod iam;
pub mod idempotency;
pub mod invoices;
pub mod lazy;
pub mod mail;
pub mod metrics;
pub mod queue;
pub mod quota;
pub mod rpa_api;
pub mod rpa_jobs;
pub mod runtime;
pub mod s3_links;
pub mod sdk_error;
pub mod secrets;
pub mod storage_access;
pub mod store;
pub mod table_keys;
pub mod task_queue;
pub mod webhook;
pub mod whatsapp_jobs;

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

    /// Sends a committed event (its outbox copy was written with the change)
    /// and takes it out of the outbox. A send that fails even after the SDK's
    /// retries does not fail the committed request: the event stays in the
    /// outbox and `outbox-relay` sends it later.
    /// Records a new event in the outbox on its own (no change goes with
    /// it), then sends it as [`Core::emit`] does.
    pub async fn publish(
        &self,
        event: &nuvem_domain::events::Envelope,
    ) -> Result<(), store::StoreError> {
        self.store.put_event(event).await?;
        self.emit(event, None).await;
        Ok(())
    }

    pub async fn emit(&self, event: &nuvem_domain::events::Envelope, secret: Option<(&str, &str)>) {
        if let Err(e) = self.events.publish_with_secret(event, secret).await {
            tracing::error!(event_id = %event.id, error = %e, "event committed but not queued; left to the outbox relay");
            return;
        }
        if let Err(e) = self.store.mark_published(event).await {
            // Harmless: the relay sends it again and consumers drop duplicates.
            tracing::warn!(event_id = %event.id, error = %e, "event queued but still in the outbox");
        }
    }

    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, config::ConfigError> {
        Ok(Core {
            store: store::Store::new(sdk, config::required(lookup, "TABLE_NAME")?)
                .with_retention_days(config::optional(
                    lookup,
                    "RETENTION_DAYS",
                    store::DEFAULT_RETENTION_DAYS,
                )?),
            events: queue::EventQueue::new(sdk, config::required(lookup, "EVENTS_QUEUE_URL")?),
        })
    }
}
