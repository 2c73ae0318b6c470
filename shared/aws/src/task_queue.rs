//! A queue of jobs of one type, as JSON: the `deliveries` queue between
//! `fanout` and `webhook-delivery`, WhatsApp's outbound and bot queues.

use std::marker::PhantomData;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::Serialize;

use crate::lazy::OnFirstUse;
use crate::queue::QueueError;

pub struct TaskQueue<T> {
    sqs: OnFirstUse<Client>,
    url: String,
    task: PhantomData<fn(&T)>,
}

impl<T> Clone for TaskQueue<T> {
    fn clone(&self) -> Self {
        TaskQueue {
            sqs: self.sqs.clone(),
            url: self.url.clone(),
            task: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for TaskQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskQueue").field("url", &self.url).finish()
    }
}

/// SQS's limit of entries per `SendMessageBatch`.
const BATCH: usize = 10;
/// SQS's longest message delay.
pub const MAX_DELAY_SECS: u32 = 900;

impl<T: Serialize> TaskQueue<T> {
    pub fn new(config: &aws_config::SdkConfig, url: impl Into<String>) -> Self {
        TaskQueue {
            sqs: OnFirstUse::new(config, Client::new),
            url: url.into(),
            task: PhantomData,
        }
    }

    /// A queue over a client configured by the caller (the fan-out bench
    /// counts its requests with an interceptor).
    pub fn from_client(sqs: Client, url: impl Into<String>) -> Self {
        TaskQueue {
            sqs: OnFirstUse::ready(sqs),
            url: url.into(),
            task: PhantomData,
        }
    }

    /// Sends tasks ten per request. Returns how many SQS did not accept
    /// (the caller fails its own input so that it is retried; consumers
    /// drop duplicates).
    pub async fn send_all(&self, tasks: &[T]) -> Result<usize, QueueError> {
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

    /// Sends one task now.
    pub async fn send(&self, task: &T) -> Result<(), QueueError> {
        self.send_delayed(task, 0).await
    }

    /// Sends one task, delayed by up to SQS's 15 minutes.
    pub async fn send_delayed(&self, task: &T, delay_secs: u32) -> Result<(), QueueError> {
        self.sqs
            .get()
            .send_message()
            .queue_url(&self.url)
            .message_body(body(task)?)
            .delay_seconds(delay_secs.min(MAX_DELAY_SECS) as i32)
            .send()
            .await
            .map_err(QueueError::sdk)?;
        Ok(())
    }
}

fn body<T: Serialize>(task: &T) -> Result<String, QueueError> {
    serde_json::to_string(task).map_err(|e| QueueError::new(e.to_string()))
}
