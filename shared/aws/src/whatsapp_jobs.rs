//! The jobs of WhatsApp's queues.

use serde::{Deserialize, Serialize};

use crate::task_queue::TaskQueue;

/// Send outbound message `outbound_id` of `account_id`, attempt `attempt`
/// (the message's record decides; a job for another attempt is stale).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundJob {
    pub account_id: String,
    pub outbound_id: String,
    pub attempt: u32,
}

/// The `whatsapp-outbound` queue.
pub type OutboundQueue = TaskQueue<OutboundJob>;
