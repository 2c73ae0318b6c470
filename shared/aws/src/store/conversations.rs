//! WhatsApp conversations and messages.
//!
//! - A conversation lives in its account's partition
//!   (`WACONV#<store>#<conversation>`), listed per store by last activity
//!   on gsi1.
//! - Each identifier of a customer (`u:<BSUID>`, `p:<wa_id>`) of a store
//!   points at its conversation (`WACUST#<store>#<key>`), claimed by
//!   conditional write: whichever identifier arrives first, one person is
//!   one conversation, and the second identifier is linked to it when both
//!   appear.
//! - A message is one item per `wamid` (`WAMSG#<wamid>`), written once
//!   however often Meta re-sends it, listed per conversation on gsi1. The
//!   delivery state of a message we sent is kept on the same item and only
//!   moves forward (the domain's join), so a status that arrives before
//!   the message is recorded is kept there and applies when it is.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::whatsapp::identity::{CustomerIds, CustomerKey, IdentityMove};
use nuvem_domain::whatsapp::status::{DeliveryState, StatusUpdate};
use serde::{Deserialize, Serialize};

use super::{Item, ListError, Page, Store, StoreError, condition_failed, n, s};
use crate::table_keys as k;

/// How many times a write that lost a race is tried again.
const RACES: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: String,
    pub account_id: String,
    pub store_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub needs_human: bool,
    /// When a person last gave the conversation back to the bot: its
    /// replies are counted from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<DateTime<Utc>>,
    /// When the customer last wrote: the 24-hour customer-service window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_customer_at: Option<DateTime<Utc>>,
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The customer, to the store.
    Inbound,
    /// The store (its bot or a person), to the customer.
    Outbound,
}

/// A message as stored. `content` is the message as the API shows it
/// (type, text, media, …); `delivery` is set on messages we sent, by the
/// statuses Meta reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub wamid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryState>,
    /// Bumped by every change of `delivery` (optimistic concurrency).
    #[serde(default)]
    pub version: u64,
    /// For a message sent through nuvem: its outbound id and who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<nuvem_domain::whatsapp::outbound::Origin>,
}

/// One line of a conversation as listed: a message with a `wamid`
/// (received, or sent and accepted by Meta), or a message of ours that
/// Meta has not accepted (queued, being sent, or failed).
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationEntry {
    Message(MessageRecord),
    Pending(super::OutboundRecord),
}

/// A message to record: the conversation it belongs to and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage<'a> {
    pub wamid: &'a str,
    pub direction: Direction,
    pub conversation: &'a ConversationRecord,
    pub sent_at: DateTime<Utc>,
    pub content: serde_json::Value,
    /// The domain event of its arrival, written to the outbox with the
    /// message (so a re-sent webhook after a crash cannot lose it).
    pub event: Option<&'a Envelope>,
}

/// What a status did to its message.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusOutcome {
    /// The delivery state after it.
    pub state: DeliveryState,
    /// The event of the message's first failure, when this status was it
    /// (written to the outbox with the state).
    pub failure_event: Option<Envelope>,
}

impl Store {
    /// The conversation of a customer of a store, created at first sight.
    /// Identifiers seen for the first time are linked to it.
    pub async fn resolve_conversation(
        &self,
        account_id: &str,
        store_id: &str,
        ids: &CustomerIds,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        let keys: Vec<CustomerKey> = [
            ids.user_id.clone().map(CustomerKey::User),
            ids.wa_id.clone().map(CustomerKey::Phone),
        ]
        .into_iter()
        .flatten()
        .collect();
        if keys.is_empty() {
            return Ok(None);
        }
        for _ in 0..RACES {
            let mut found = None;
            let mut unlinked = Vec::new();
            for key in &keys {
                let claim: Option<CustomerClaim> = self
                    .get(
                        k::whatsapp_customer_pk(store_id, &key.as_key()),
                        k::WHATSAPP_CUSTOMER_SK,
                    )
                    .await?;
                match claim {
                    Some(claim) if claim.account_id == account_id => {
                        found.get_or_insert(claim.conversation_id);
                    }
                    Some(_) => return Ok(None),
                    None => unlinked.push(key),
                }
            }
            if let Some(conversation_id) = found {
                for key in unlinked {
                    // Lost races leave the key with whoever linked it first.
                    self.claim_customer(account_id, store_id, key, &conversation_id)
                        .await?;
                }
                let conversation = self
                    .get_conversation(account_id, store_id, &conversation_id)
                    .await?;
                if conversation.is_some() {
                    return Ok(conversation);
                }
                continue;
            }
            let conversation = ConversationRecord {
                id: nuvem_domain::ids::new_id("cv"),
                account_id: account_id.to_owned(),
                store_id: store_id.to_owned(),
                wa_id: ids.wa_id.clone(),
                user_id: ids.user_id.clone(),
                name: name.map(str::to_owned),
                needs_human: false,
                resumed_at: None,
                last_customer_at: None,
                last_activity_at: now,
                created_at: now,
            };
            let mut items = vec![self.put(
                self.conversation_item(&conversation)?,
                Some("attribute_not_exists(pk)"),
            )?];
            for key in &keys {
                items.push(self.customer_claim_put(account_id, store_id, key, &conversation.id)?);
            }
            if self.transact_checked(items).await?.is_ok() {
                return Ok(Some(conversation));
            }
            // Another delivery created it meanwhile: read theirs.
        }
        Err(StoreError::Dynamo(
            "the customer's conversation kept changing".into(),
        ))
    }

    fn customer_claim_put(
        &self,
        account_id: &str,
        store_id: &str,
        key: &CustomerKey,
        conversation_id: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let item = customer_claim_item(account_id, store_id, key, conversation_id)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(StoreError::sdk)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn claim_customer(
        &self,
        account_id: &str,
        store_id: &str,
        key: &CustomerKey,
        conversation_id: &str,
    ) -> Result<(), StoreError> {
        let item = customer_claim_item(account_id, store_id, key, conversation_id)?;
        let put = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)");
        ignore_condition(put.send().await)
    }

    fn conversation_item(&self, c: &ConversationRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(c)?;
        item.insert(k::PK.into(), s(k::account_pk(&c.account_id)));
        item.insert(
            k::SK.into(),
            s(k::whatsapp_conversation_sk(&c.store_id, &c.id)),
        );
        item.insert(
            k::GSI1PK.into(),
            s(k::conversations_of_store(&c.account_id, &c.store_id)),
        );
        item.insert(
            k::GSI1SK.into(),
            s(activity_sort_key(c.last_activity_at, &c.id)),
        );
        item.insert(
            "activity_us".into(),
            n(c.last_activity_at.timestamp_micros()),
        );
        Ok(item)
    }

    pub async fn get_conversation(
        &self,
        account_id: &str,
        store_id: &str,
        conversation_id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        self.get(
            k::account_pk(account_id),
            &k::whatsapp_conversation_sk(store_id, conversation_id),
        )
        .await
    }

    /// A store's conversations, most recent activity first; only those a
    /// person has (or has not) when `needs_human` is given. With the
    /// filter a page may hold fewer than `limit` items and still have a
    /// next one.
    pub async fn list_conversations(
        &self,
        account_id: &str,
        store_id: &str,
        needs_human: Option<bool>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ConversationRecord>, ListError> {
        let mut query = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s(k::conversations_of_store(account_id, store_id)))
            .scan_index_forward(false);
        if let Some(wanted) = needs_human {
            query = query
                .filter_expression("needs_human = :wanted")
                .expression_attribute_values(
                    ":wanted",
                    aws_sdk_dynamodb::types::AttributeValue::Bool(wanted),
                );
        }
        self.page_of(query, Some(super::Index::Gsi1), limit, cursor)
            .await
    }

    /// Records a message once: `false` when this `wamid` was recorded
    /// already (a re-sent webhook, a redelivered job); either way the
    /// conversation's last activity is moved up to it. An item that only
    /// held the delivery state of a message we sent (its statuses came
    /// first) is completed, its state kept.
    pub async fn record_message(&self, message: &NewMessage<'_>) -> Result<bool, StoreError> {
        let c = message.conversation;
        let update = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::whatsapp_message_pk(message.wamid)))
            .key(k::SK, s(k::WHATSAPP_MESSAGE_SK))
            .condition_expression("attribute_not_exists(direction)")
            .update_expression(
                "SET wamid = :wamid, direction = :direction, conversation_id = :conversation, \
                 sent_at = :sent_at, content = :content, gsi1pk = :gsi1pk, gsi1sk = :gsi1sk",
            )
            .expression_attribute_values(":wamid", s(message.wamid))
            .expression_attribute_values(
                ":direction",
                serde_dynamo::to_attribute_value(message.direction)?,
            )
            .expression_attribute_values(":conversation", s(&c.id))
            .expression_attribute_values(
                ":sent_at",
                serde_dynamo::to_attribute_value(message.sent_at)?,
            )
            .expression_attribute_values(
                ":content",
                serde_dynamo::to_attribute_value(&message.content)?,
            )
            .expression_attribute_values(":gsi1pk", s(k::messages_of_conversation(&c.id)))
            .expression_attribute_values(
                ":gsi1sk",
                s(activity_sort_key(message.sent_at, message.wamid)),
            )
            .build()
            .map_err(StoreError::sdk)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if let Some(event) = message.event {
            items.push(self.event_record(event)?);
        }
        let first = self.write_all(items).await?.is_ok();
        // A repeat moves the conversation on too: the delivery that stored
        // the message may have failed before this (the touch only moves
        // forward, so doing it again changes nothing), and without it a
        // customer's message would leave the window closed to the bot.
        self.touch_conversation(c, message.sent_at, message.direction == Direction::Inbound)
            .await?;
        Ok(first)
    }

    /// Moves a conversation's last activity (and, for a customer's message,
    /// its last customer message) forward, never back: messages arrive in
    /// any order.
    async fn touch_conversation(
        &self,
        c: &ConversationRecord,
        at: DateTime<Utc>,
        from_customer: bool,
    ) -> Result<(), StoreError> {
        self.touch(&c.account_id, &c.store_id, &c.id, at, from_customer)
            .await
    }

    /// [`Store::touch_conversation`] for a message of ours sent at `at`.
    pub(crate) async fn touch_conversation_of(
        &self,
        account_id: &str,
        store_id: &str,
        conversation_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.touch(account_id, store_id, conversation_id, at, false)
            .await
    }

    async fn touch(
        &self,
        account_id: &str,
        store_id: &str,
        conversation_id: &str,
        at: DateTime<Utc>,
        from_customer: bool,
    ) -> Result<(), StoreError> {
        // Compared as microseconds: RFC 3339 text of varying precision
        // does not sort as time.
        let key =
            |u: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder| {
                Ok::<_, StoreError>(
                    u.table_name(&self.table)
                        .key(k::PK, s(k::account_pk(account_id)))
                        .key(
                            k::SK,
                            s(k::whatsapp_conversation_sk(store_id, conversation_id)),
                        )
                        .expression_attribute_values(":at", serde_dynamo::to_attribute_value(at)?)
                        .expression_attribute_values(":us", n(at.timestamp_micros())),
                )
            };
        let activity = key(self.db.update_item())?
            .update_expression("SET last_activity_at = :at, activity_us = :us, gsi1sk = :sk")
            .condition_expression("attribute_exists(pk) AND activity_us < :us")
            .expression_attribute_values(":sk", s(activity_sort_key(at, conversation_id)));
        ignore_condition(activity.send().await)?;
        if from_customer {
            let customer = key(self.db.update_item())?
                .update_expression("SET last_customer_at = :at, customer_us = :us")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(customer_us) OR customer_us < :us)",
                );
            ignore_condition(customer.send().await)?;
        }
        Ok(())
    }

    pub async fn get_message(&self, wamid: &str) -> Result<Option<MessageRecord>, StoreError> {
        self.get(k::whatsapp_message_pk(wamid), k::WHATSAPP_MESSAGE_SK)
            .await
    }

    /// A conversation's lines from `since` on (all when `None`), oldest
    /// first, at most `limit` of them.
    pub async fn conversation_entries(
        &self,
        conversation_id: &str,
        since: Option<DateTime<Utc>>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ConversationEntry>, ListError> {
        let mut query = self
            .db
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":p", s(k::messages_of_conversation(conversation_id)))
            .scan_index_forward(true);
        query = match since {
            Some(since) => query
                .key_condition_expression("gsi1pk = :p AND gsi1sk >= :since")
                .expression_attribute_values(":since", s(activity_sort_key(since, ""))),
            None => query.key_condition_expression("gsi1pk = :p"),
        };
        let page: Page<serde_json::Value> = self
            .page_of(query, Some(super::Index::Gsi1), limit, cursor)
            .await?;
        let malformed =
            |e: serde_json::Error| ListError::from(StoreError::Malformed(e.to_string()));
        let items = page
            .items
            .into_iter()
            .map(|item| {
                let sk = item.get(k::SK).and_then(|v| v.as_str()).unwrap_or_default();
                if sk == k::WHATSAPP_MESSAGE_SK {
                    serde_json::from_value(item).map(ConversationEntry::Message)
                } else {
                    serde_json::from_value(item).map(ConversationEntry::Pending)
                }
                .map_err(malformed)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    /// Hands a conversation to a person: `needs_human`, the fallback text
    /// recorded to be sent, and the handoff event, all at once and only if
    /// it was not already with a person. `false` when it was.
    pub async fn hand_off(
        &self,
        conversation: &ConversationRecord,
        fallback: &super::OutboundRecord,
        event: &Envelope,
    ) -> Result<bool, StoreError> {
        let c = conversation;
        let flag = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(&c.account_id)))
            .key(k::SK, s(k::whatsapp_conversation_sk(&c.store_id, &c.id)))
            .update_expression("SET needs_human = :yes")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(needs_human) OR needs_human = :no)",
            )
            .expression_attribute_values(
                ":yes",
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            )
            .expression_attribute_values(
                ":no",
                aws_sdk_dynamodb::types::AttributeValue::Bool(false),
            )
            .build()
            .map_err(StoreError::sdk)?;
        let items = vec![
            TransactWriteItem::builder().update(flag).build(),
            self.outbound_put(fallback)?,
            self.event_record(event)?,
        ];
        Ok(self.transact_checked(items).await?.is_ok())
    }

    /// Gives a conversation back to the bot, its reply count starting
    /// afresh. `None`: no such conversation.
    pub async fn resume_conversation(
        &self,
        account_id: &str,
        store_id: &str,
        conversation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(account_id)))
            .key(
                k::SK,
                s(k::whatsapp_conversation_sk(store_id, conversation_id)),
            )
            .update_expression("SET needs_human = :no, resumed_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":no",
                aws_sdk_dynamodb::types::AttributeValue::Bool(false),
            )
            .expression_attribute_values(":now", serde_dynamo::to_attribute_value(now)?)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.attributes.map(serde_dynamo::from_item).transpose()?),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(StoreError::sdk(e)),
        }
    }

    /// Merges a status Meta reported into the message's delivery state. The
    /// merge is the domain's join, so any order and any repetition of
    /// statuses end in the same state; a write is conditional on the
    /// version read, and a lost race merges again. The event
    /// `on_first_failure` makes of the message (as stored, if it is) and its
    /// new state is written to the outbox with the write that records the
    /// message's first failure, and only then.
    pub async fn apply_status(
        &self,
        update: &StatusUpdate,
        on_first_failure: impl Fn(Option<&MessageRecord>, &DeliveryState) -> Option<Envelope>,
    ) -> Result<StatusOutcome, StoreError> {
        let incoming = DeliveryState::from_update(update);
        for _ in 0..RACES {
            let current = self.get_message(&update.id).await?;
            let (state, version) = match &current {
                Some(m) => (m.delivery.as_ref(), m.version),
                None => (None, 0),
            };
            let merged = match state {
                Some(state) => state.merge(&incoming),
                None => incoming.clone(),
            };
            if state == Some(&merged) {
                return Ok(StatusOutcome {
                    state: merged,
                    failure_event: None,
                });
            }
            let first_failure =
                merged.failure.is_some() && state.is_none_or(|s| s.failure.is_none());
            let write = Update::builder()
                .table_name(&self.table)
                .key(k::PK, s(k::whatsapp_message_pk(&update.id)))
                .key(k::SK, s(k::WHATSAPP_MESSAGE_SK))
                .update_expression("SET delivery = :delivery, version = :next, wamid = :wamid")
                .condition_expression("attribute_not_exists(version) OR version = :version")
                .expression_attribute_values(
                    ":delivery",
                    serde_dynamo::to_attribute_value(&merged)?,
                )
                .expression_attribute_values(":next", n(version + 1))
                .expression_attribute_values(":version", n(version))
                .expression_attribute_values(":wamid", s(&update.id))
                .build()
                .map_err(StoreError::sdk)?;
            let mut items = vec![TransactWriteItem::builder().update(write).build()];
            let failure_event = first_failure
                .then(|| on_first_failure(current.as_ref(), &merged))
                .flatten();
            if let Some(event) = &failure_event {
                items.push(self.event_record(event)?);
            }
            if self.write_all(items).await?.is_ok() {
                return Ok(StatusOutcome {
                    state: merged,
                    failure_event,
                });
            }
        }
        Err(StoreError::Dynamo(format!(
            "the delivery state of {} kept changing",
            update.id
        )))
    }

    /// Moves a customer's conversation from an identifier they gave up to
    /// their new one (a changed number or BSUID): the new identifier is
    /// linked to the conversation, the old one released (a recycled phone
    /// number starts a conversation of its own), and the conversation shows
    /// the new identifier. When the new identifier already leads to another
    /// conversation, that link is kept and the old one left as it is.
    pub async fn move_customer(
        &self,
        conversation: &ConversationRecord,
        change: &IdentityMove,
    ) -> Result<(), StoreError> {
        let c = conversation;
        let claim = Put::builder()
            .table_name(&self.table)
            .set_item(Some(customer_claim_item(
                &c.account_id,
                &c.store_id,
                &change.new,
                &c.id,
            )?))
            .condition_expression("attribute_not_exists(pk) OR conversation_id = :conversation")
            .expression_attribute_values(":conversation", s(&c.id))
            .build()
            .map_err(StoreError::sdk)?;
        let release = Delete::builder()
            .table_name(&self.table)
            .key(
                k::PK,
                s(k::whatsapp_customer_pk(&c.store_id, &change.old.as_key())),
            )
            .key(k::SK, s(k::WHATSAPP_CUSTOMER_SK))
            .condition_expression("attribute_not_exists(pk) OR conversation_id = :conversation")
            .expression_attribute_values(":conversation", s(&c.id))
            .build()
            .map_err(StoreError::sdk)?;
        let (field, value) = match &change.new {
            CustomerKey::User(id) => ("user_id", id),
            CustomerKey::Phone(id) => ("wa_id", id),
        };
        let show = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(&c.account_id)))
            .key(k::SK, s(k::whatsapp_conversation_sk(&c.store_id, &c.id)))
            .update_expression("SET #field = :value")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#field", field)
            .expression_attribute_values(":value", s(value))
            .build()
            .map_err(StoreError::sdk)?;
        let items = vec![
            TransactWriteItem::builder().put(claim).build(),
            TransactWriteItem::builder().delete(release).build(),
            TransactWriteItem::builder().update(show).build(),
        ];
        if let Err(refused) = self.transact_checked(items).await? {
            tracing::warn!(
                conversation_id = %c.id,
                refused = ?refused,
                "identity not moved: the new identifier has a conversation of its own"
            );
        }
        Ok(())
    }

    /// Counts webhook items for a number no store claims (a number of the
    /// Meta app that was never connected here, or was removed): kept per
    /// number so an operator can see what is arriving unrouted.
    pub async fn count_unrouted_whatsapp(
        &self,
        phone_number_id: &str,
        items: usize,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::whatsapp_unrouted_pk(phone_number_id)))
            .key(k::SK, s(k::WHATSAPP_UNROUTED_SK))
            .update_expression("SET last_seen_at = :now ADD arrived :n")
            .expression_attribute_values(":n", n(items))
            .expression_attribute_values(":now", serde_dynamo::to_attribute_value(now)?)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    /// How many webhook items arrived for an unclaimed number.
    pub async fn unrouted_whatsapp_items(&self, phone_number_id: &str) -> Result<u64, StoreError> {
        #[derive(Deserialize)]
        struct Count {
            arrived: u64,
        }
        let found: Option<Count> = self
            .get(
                k::whatsapp_unrouted_pk(phone_number_id),
                k::WHATSAPP_UNROUTED_SK,
            )
            .await?;
        Ok(found.map_or(0, |c| c.arrived))
    }
}

fn customer_claim_item(
    account_id: &str,
    store_id: &str,
    key: &CustomerKey,
    conversation_id: &str,
) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(CustomerClaim {
        account_id: account_id.to_owned(),
        conversation_id: conversation_id.to_owned(),
    })?;
    item.insert(
        k::PK.into(),
        s(k::whatsapp_customer_pk(store_id, &key.as_key())),
    );
    item.insert(k::SK.into(), s(k::WHATSAPP_CUSTOMER_SK));
    Ok(item)
}

#[derive(Serialize, Deserialize)]
struct CustomerClaim {
    account_id: String,
    conversation_id: String,
}

/// Sorts by time, then id (RFC 3339 in UTC with fixed precision sorts as
/// text in time order).
pub(crate) fn activity_sort_key(at: DateTime<Utc>, id: &str) -> String {
    format!(
        "{}#{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

fn ignore_condition<T, E>(
    result: Result<
        T,
        aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    >,
) -> Result<(), StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if condition_failed(&e) => Ok(()),
        Err(e) => Err(StoreError::sdk(e)),
    }
}
