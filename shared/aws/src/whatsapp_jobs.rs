//! The jobs of WhatsApp's queues.

use serde::{Deserialize, Serialize};

use crate::queue::QueueError;
use crate::store::OutboundRecord;
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

/// Queues the first attempt of a message that still waits for it: after a
/// crash between recording a message and queueing it, the next delivery of
/// whatever recorded it calls this. A second job for it is harmless (the
/// sender claims the message once).
pub async fn queue_if_waiting(
    queue: &OutboundQueue,
    message: &OutboundRecord,
) -> Result<(), QueueError> {
    use nuvem_domain::whatsapp::outbound::OutboundState;
    if message.state != OutboundState::Queued || message.attempt != 1 {
        return Ok(());
    }
    queue
        .send(&OutboundJob {
            account_id: message.account_id.clone(),
            outbound_id: message.id.clone(),
            attempt: 1,
        })
        .await
}
