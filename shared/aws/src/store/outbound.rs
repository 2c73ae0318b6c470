//! WhatsApp messages a store sends, from request to Meta's `wamid`.
//!
//! An outbound message is one item in its account's partition
//! (`WAOUT#<id>`). While it is not sent it is listed in its conversation
//! (gsi1 `WAMSGS#<conversation>`, like every message); once Meta accepts
//! it, the same transaction writes the message item of its `wamid` (which
//! statuses update) and takes the outbound item out of the listing, so the
//! conversation shows it once, with its delivery.
//!
//! The state only moves `queued → sending → sent | failed` (and back to
//! `queued` for a throttled attempt), each step a conditional write, so
//! however often a job is delivered one sender holds the message at a time.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::whatsapp::identity::Recipient;
use nuvem_domain::whatsapp::outbound::{Origin, OutboundContent, OutboundState};
use serde::{Deserialize, Serialize};

use super::conversations::{Direction, activity_sort_key};
use super::{Item, NumberRecord, Store, StoreError, n, s};
use crate::idempotency::ClaimedBy;
use crate::table_keys as k;
use nuvem_domain::whatsapp::store::NumberStatus;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRecord {
    pub id: String,
    pub account_id: String,
    pub store_id: String,
    pub conversation_id: String,
    /// The number it is sent from.
    pub phone_number_id: String,
    pub to: Recipient,
    pub message: OutboundContent,
    pub origin: Origin,
    /// The customer's message it answers (bot replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub state: OutboundState,
    /// 1-based number of the attempt queued or made.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<DateTime<Utc>>,
    /// The job message whose delivery is sending it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<ClaimedBy>,
    /// A throttled message's next attempt is not made before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wamid: Option<String>,
    /// Why it failed, or why the last attempt was throttled: Meta's error
    /// (`code`, `title`, `message`, `details`) or nuvem's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OutboundRecord {
    /// A message to send to `to` in `conversation` from number
    /// `phone_number_id`, `queued` for its first attempt.
    pub fn queued(
        id: String,
        conversation: &super::ConversationRecord,
        phone_number_id: &str,
        to: Recipient,
        message: OutboundContent,
        origin: Origin,
        now: DateTime<Utc>,
    ) -> OutboundRecord {
        OutboundRecord {
            id,
            account_id: conversation.account_id.clone(),
            store_id: conversation.store_id.clone(),
            conversation_id: conversation.id.clone(),
            phone_number_id: phone_number_id.to_owned(),
            to,
            message,
            origin,
            reply_to: None,
            state: OutboundState::Queued,
            attempt: 1,
            claimed_at: None,
            claimed_by: None,
            not_before: None,
            wamid: None,
            error: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl Store {
    /// Records a message to send, `queued` for attempt 1. `false` when a
    /// message with this id exists (a bot reply already recorded).
    pub async fn create_outbound(&self, r: &OutboundRecord) -> Result<bool, StoreError> {
        Ok(self.write_all(vec![self.outbound_put(r)?]).await?.is_ok())
    }

    /// The write of a new outbound message (refused if its id exists).
    pub(crate) fn outbound_put(&self, r: &OutboundRecord) -> Result<TransactWriteItem, StoreError> {
        let mut item: Item = serde_dynamo::to_item(r)?;
        item.insert(k::PK.into(), s(k::account_pk(&r.account_id)));
        item.insert(k::SK.into(), s(k::whatsapp_outbound_sk(&r.id)));
        item.insert(
            k::GSI1PK.into(),
            s(k::messages_of_conversation(&r.conversation_id)),
        );
        item.insert(k::GSI1SK.into(), s(activity_sort_key(r.created_at, &r.id)));
        self.put(item, Some("attribute_not_exists(pk)"))
    }

    pub async fn get_outbound(
        &self,
        account_id: &str,
        id: &str,
    ) -> Result<Option<OutboundRecord>, StoreError> {
        self.get(k::account_pk(account_id), &k::whatsapp_outbound_sk(id))
            .await
    }

    /// An update of one outbound item whose state is `from` (and attempt
    /// `attempt`): the condition every step is written under.
    fn outbound_step(
        &self,
        r: &OutboundRecord,
        from: OutboundState,
        set: &str,
    ) -> Result<aws_sdk_dynamodb::types::builders::UpdateBuilder, StoreError> {
        Ok(Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(&r.account_id)))
            .key(k::SK, s(k::whatsapp_outbound_sk(&r.id)))
            .update_expression(set)
            .condition_expression("#state = :from AND attempt = :attempt")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":from", serde_dynamo::to_attribute_value(from)?)
            .expression_attribute_values(":attempt", n(r.attempt)))
    }

    /// Runs one step; `false` when the message was not in the expected
    /// state any more (another delivery of its job moved it).
    async fn step(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        Ok(self.write_all(items).await?.is_ok())
    }

    /// Claims a queued message for its attempt: `sending`, by the job
    /// message `by` if it comes from one. `false` when it was not queued
    /// for this attempt.
    pub async fn claim_outbound(
        &self,
        r: &OutboundRecord,
        by: Option<&ClaimedBy>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let set = match by {
            Some(_) => "SET #state = :to, claimed_at = :now, claimed_by = :by, updated_at = :now",
            None => "SET #state = :to, claimed_at = :now, updated_at = :now REMOVE claimed_by",
        };
        let mut update = self
            .outbound_step(r, OutboundState::Queued, set)?
            .expression_attribute_values(
                ":to",
                serde_dynamo::to_attribute_value(OutboundState::Sending)?,
            )
            .expression_attribute_values(":now", serde_dynamo::to_attribute_value(now)?);
        if let Some(by) = by {
            update =
                update.expression_attribute_values(":by", serde_dynamo::to_attribute_value(by)?);
        }
        self.step(vec![
            TransactWriteItem::builder()
                .update(update.build().map_err(StoreError::sdk)?)
                .build(),
        ])
        .await
    }

    /// Meta accepted the message: `sent` with its `wamid`, and the message
    /// item that its statuses update (kept if statuses came first), listed
    /// in the conversation in the outbound item's place.
    pub async fn outbound_sent(
        &self,
        r: &OutboundRecord,
        wamid: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sent = self
            .outbound_step(
                r,
                OutboundState::Sending,
                "SET #state = :to, wamid = :wamid, updated_at = :now REMOVE #error, gsi1pk, gsi1sk",
            )?
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(
                ":to",
                serde_dynamo::to_attribute_value(OutboundState::Sent)?,
            )
            .expression_attribute_values(":wamid", s(wamid))
            .expression_attribute_values(":now", serde_dynamo::to_attribute_value(now)?)
            .build()
            .map_err(StoreError::sdk)?;
        let message = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::whatsapp_message_pk(wamid)))
            .key(k::SK, s(k::WHATSAPP_MESSAGE_SK))
            .condition_expression("attribute_not_exists(direction)")
            .update_expression(
                "SET wamid = :wamid, direction = :direction, conversation_id = :conversation, \
                 sent_at = :sent_at, content = :content, outbound_id = :outbound, \
                 origin = :origin, gsi1pk = :gsi1pk, gsi1sk = :gsi1sk",
            )
            .expression_attribute_values(":wamid", s(wamid))
            .expression_attribute_values(
                ":direction",
                serde_dynamo::to_attribute_value(Direction::Outbound)?,
            )
            .expression_attribute_values(":conversation", s(&r.conversation_id))
            .expression_attribute_values(":sent_at", serde_dynamo::to_attribute_value(now)?)
            .expression_attribute_values(
                ":content",
                serde_dynamo::to_attribute_value(r.message.content())?,
            )
            .expression_attribute_values(":outbound", s(&r.id))
            .expression_attribute_values(":origin", serde_dynamo::to_attribute_value(r.origin)?)
            .expression_attribute_values(
                ":gsi1pk",
                s(k::messages_of_conversation(&r.conversation_id)),
            )
            .expression_attribute_values(":gsi1sk", s(activity_sort_key(r.created_at, &r.id)))
            .build()
            .map_err(StoreError::sdk)?;
        let done = self
            .step(vec![
                TransactWriteItem::builder().update(sent).build(),
                TransactWriteItem::builder().update(message).build(),
            ])
            .await?;
        if done {
            self.touch_conversation_of(&r.account_id, &r.store_id, &r.conversation_id, now)
                .await?;
        }
        Ok(done)
    }

    /// The attempt was throttled: `queued` again for attempt `attempt + 1`
    /// not before `not_before`, with the error that held it back.
    pub async fn outbound_retry(
        &self,
        r: &OutboundRecord,
        error: &serde_json::Value,
        not_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update = self
            .outbound_step(
                r,
                OutboundState::Sending,
                "SET #state = :to, attempt = :next, #error = :error, not_before = :not_before, updated_at = :now REMOVE claimed_at",
            )?
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(
                ":to",
                serde_dynamo::to_attribute_value(OutboundState::Queued)?,
            )
            .expression_attribute_values(":next", n(r.attempt + 1))
            .expression_attribute_values(
                ":not_before",
                serde_dynamo::to_attribute_value(not_before)?,
            )
            .expression_attribute_values(":error", serde_dynamo::to_attribute_value(error)?)
            .expression_attribute_values(":now", serde_dynamo::to_attribute_value(now)?)
            .build()
            .map_err(StoreError::sdk)?;
        self.step(vec![TransactWriteItem::builder().update(update).build()])
            .await
    }

    /// The message will not be sent: `failed` with `error`, from state
    /// `from`, its event (if any) in the outbox with it.
    pub async fn outbound_failed(
        &self,
        r: &OutboundRecord,
        from: OutboundState,
        error: &serde_json::Value,
        event: Option<&Envelope>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update = self.failed_update(r, from, error, now)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if let Some(event) = event {
            items.push(self.event_record(event)?);
        }
        self.step(items).await
    }

    /// Meta refused the message for its number (an expired token, a
    /// blocked number): the message `failed` and the number in `status`,
    /// with their events, all at once, so nothing more is sent from it.
    pub async fn outbound_stopped_number(
        &self,
        r: &OutboundRecord,
        error: &serde_json::Value,
        number: &NumberRecord,
        status: &NumberStatus,
        events: &[Envelope],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let failed = self.failed_update(r, OutboundState::Sending, error, now)?;
        let mut items = vec![
            TransactWriteItem::builder().update(failed).build(),
            TransactWriteItem::builder()
                .update(self.number_status_update(number, status, now)?)
                .build(),
        ];
        for event in events {
            items.push(self.event_record(event)?);
        }
        self.step(items).await
    }

    /// The step to `failed` with `error`, from state `from`.
    fn failed_update(
        &self,
        r: &OutboundRecord,
        from: OutboundState,
        error: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Update, StoreError> {
        self.outbound_step(
            r,
            from,
            "SET #state = :to, #error = :error, updated_at = :now",
        )?
        .expression_attribute_names("#error", "error")
        .expression_attribute_values(
            ":to",
            serde_dynamo::to_attribute_value(OutboundState::Failed)?,
        )
        .expression_attribute_values(":error", serde_dynamo::to_attribute_value(error)?)
        .expression_attribute_values(":now", serde_dynamo::to_attribute_value(now)?)
        .build()
        .map_err(StoreError::sdk)
    }
}
