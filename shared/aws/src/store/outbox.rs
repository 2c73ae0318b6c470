//! The outbox: every event is written with the change that caused it and
//! stays in the sparse gsi2 until it has been sent to the events queue, so
//! an event whose send failed is found and sent again by `outbox-relay`.

use chrono::{DateTime, Utc};
use nuvem_domain::events::{Envelope, EventName};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, condition_failed, outbox_time, s};
use crate::table_keys as k;

/// An event as the table keeps it: its `data` (a tenant's free-form JSON for
/// custom events) as JSON text, which DynamoDB stores whatever it holds
/// (attribute maps refuse numbers beyond 38 digits and empty sets). Events
/// written before as attribute maps are still read.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: EventName,
    account_id: String,
    occurred_at: DateTime<Utc>,
    #[serde(
        serialize_with = "nuvem_domain::json_text::serialize",
        deserialize_with = "nuvem_domain::json_text::deserialize_text_or_value"
    )]
    data: serde_json::Value,
}

impl From<&Envelope> for StoredEvent {
    fn from(e: &Envelope) -> Self {
        StoredEvent {
            id: e.id.clone(),
            event_type: e.event_type.clone(),
            account_id: e.account_id.clone(),
            occurred_at: e.occurred_at,
            data: e.data.clone(),
        }
    }
}

impl From<StoredEvent> for Envelope {
    fn from(e: StoredEvent) -> Self {
        Envelope {
            id: e.id,
            event_type: e.event_type,
            account_id: e.account_id,
            occurred_at: e.occurred_at,
            data: e.data,
        }
    }
}

impl Store {
    /// Takes a sent event out of the outbox.
    pub async fn mark_published(&self, event: &Envelope) -> Result<(), StoreError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(&event.account_id)))
            .key(k::SK, s(k::event_sk(&event.id)))
            .update_expression("REMOVE gsi2pk, gsi2sk")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result {
            // Expired by TTL meanwhile: nothing left to mark.
            Err(e) if condition_failed(&e) => Ok(()),
            other => other.map(drop).map_err(StoreError::sdk),
        }
    }

    /// Events committed before `before` and still not sent, oldest first.
    pub async fn unsent_events(
        &self,
        before: DateTime<Utc>,
        limit: i32,
    ) -> Result<Vec<Envelope>, StoreError> {
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .index_name(k::GSI2)
            .key_condition_expression("gsi2pk = :outbox AND gsi2sk < :before")
            .expression_attribute_values(":outbox", s(k::OUTBOX))
            .expression_attribute_values(":before", s(outbox_time(before)))
            .limit(limit)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        let stored: Vec<StoredEvent> = serde_dynamo::from_items(out.items.unwrap_or_default())?;
        Ok(stored.into_iter().map(Envelope::from).collect())
    }
}

impl Store {
    /// The account's events of the retention period, newest first (event
    /// ids are ULIDs, so the sort key orders them by time).
    pub async fn list_events(
        &self,
        account_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<super::Page<Envelope>, super::ListError> {
        let listing = super::Listing::Prefix {
            pk: k::account_pk(account_id),
            sk_prefix: k::EVENT_PREFIX,
            newest_first: true,
        };
        let page: super::Page<StoredEvent> = self.page(listing, limit, cursor).await?;
        Ok(super::Page {
            items: page.items.into_iter().map(Envelope::from).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// One of the account's events, if it is still kept.
    pub async fn get_event(
        &self,
        account_id: &str,
        event_id: &str,
    ) -> Result<Option<Envelope>, StoreError> {
        let stored: Option<StoredEvent> = self
            .get(k::account_pk(account_id), &k::event_sk(event_id))
            .await?;
        Ok(stored.map(Envelope::from))
    }

    /// Stores a new event (a tenant's custom event) in the outbox.
    pub async fn put_event(&self, event: &Envelope) -> Result<(), StoreError> {
        self.transact(vec![self.event_record(event)?]).await
    }
}
