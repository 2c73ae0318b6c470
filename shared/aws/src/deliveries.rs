//! The `deliveries` queue between `fanout` and `webhook-delivery`: one
//! message per (event, endpoint) and attempt.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use nuvem_domain::events::Envelope;
use serde::{Deserialize, Serialize};

use crate::lazy::OnFirstUse;
use crate::queue::QueueError;

/// One attempt to make: which event goes to which endpoint, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryTask {
    /// Derived from event and endpoint (`webhook::delivery::delivery_id`), so
    /// that duplicates of one event collapse into one delivery; a replay gets
    /// a fresh id.
    pub delivery_id: String,
    pub endpoint_id: String,
    /// 1-based.
    pub attempt: u32,
    /// Waits longer than SQS's 15-minute delay are chained: a task that
    /// arrives before this is queued again for the rest of the wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// The event travels with the task, so that an attempt reads no event.
    pub event: Envelope,
}

#[derive(Clone, Debug)]
pub struct DeliveryQueue {
    sqs: OnFirstUse<Client>,
    url: String,
}

/// SQS's limit of entries per `SendMessageBatch`.
const BATCH: usize = 10;

impl DeliveryQueue {
    pub fn new(config: &aws_config::SdkConfig, url: impl Into<String>) -> Self {
        DeliveryQueue {
            sqs: OnFirstUse::new(config, Client::new),
            url: url.into(),
        }
    }

    /// A queue over a client configured by the caller (the fan-out bench
    /// counts its requests with an interceptor).
    pub fn from_client(sqs: Client, url: impl Into<String>) -> Self {
        DeliveryQueue {
            sqs: OnFirstUse::ready(sqs),
            url: url.into(),
        }
    }

    /// Sends tasks ten per request. Returns the tasks that SQS did not
    /// accept (the caller fails the event so that the whole fan-out is
    /// retried; duplicates collapse by delivery id).
    pub async fn send_all(&self, tasks: &[DeliveryTask]) -> Result<usize, QueueError> {
        let mut failed = 0;
        for chunk in tasks.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, task)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body(task)?)
                        .build()
                        .map_err(|e| QueueError::new(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .sqs
                .get()
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(QueueError::sdk)?;
            failed += out.failed.len();
        }
        Ok(failed)
    }

    /// Sends one task, delayed by up to SQS's 15 minutes.
    pub async fn send_delayed(
        &self,
        task: &DeliveryTask,
        delay_secs: u32,
    ) -> Result<(), QueueError> {
        self.sqs
            .get()
            .send_message()
            .queue_url(&self.url)
            .message_body(body(task)?)
            .delay_seconds(delay_secs.min(900) as i32)
            .send()
            .await
            .map_err(QueueError::sdk)?;
        Ok(())
    }
}

fn body(task: &DeliveryTask) -> Result<String, QueueError> {
    serde_json::to_string(task).map_err(|e| QueueError::new(e.to_string()))
}
