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

/// Answer the customer's message `wamid` (if the bot should): queued by
/// the webhook on every delivery of a message with text; the bot's claim
/// makes it one reply however often it comes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotJob {
    pub account_id: String,
    pub store_id: String,
    pub conversation_id: String,
    /// The number the customer wrote to: the reply goes out from it.
    pub phone_number_id: String,
    pub wamid: String,
}

/// The `whatsapp-bot` queue.
pub type BotQueue = TaskQueue<BotJob>;
