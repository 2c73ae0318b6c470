//! The `deliveries` queue between `fanout` and `webhook-delivery`: one
//! message per (event, endpoint) and attempt.

use chrono::{DateTime, Utc};
use nuvem_domain::events::Envelope;
use serde::{Deserialize, Serialize};

use crate::task_queue::TaskQueue;

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

/// The `deliveries` queue.
pub type DeliveryQueue = TaskQueue<DeliveryTask>;
