//! Lines of ordered endpoints: the events of one subject wait in order of
//! occurrence, and only the first is delivered; when it succeeds or its
//! schedule runs out (it is parked, kept for replay) the next goes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Item, Store, StoreError, condition_failed, n, s};
use crate::deliveries::DeliveryTask;
use crate::table_keys as k;

/// One waiting event of a line, with the task that delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneEntry {
    pub position: String,
    pub task: DeliveryTask,
    /// When the entry's next attempt is due, while it is being retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Puts an event in its line (once: a duplicate changes nothing).
    pub async fn lane_enter(&self, lane: &str, entry: &LaneEntry) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(entry)?;
        item.insert(k::PK.into(), s(lane));
        item.insert(k::SK.into(), s(k::lane_sk(&entry.position)));
        item.insert(
            k::EXPIRES_AT.into(),
            n((entry.task.event.occurred_at + self.retention).timestamp()),
        );
        let result = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Err(e) if condition_failed(&e) => Ok(()),
            other => other.map(drop).map_err(StoreError::sdk),
        }
    }

    /// The first event of a line (the one to deliver now), if any.
    pub async fn lane_head(&self, lane: &str) -> Result<Option<LaneEntry>, StoreError> {
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :wait)")
            .expression_attribute_values(":p", s(lane))
            .expression_attribute_values(":wait", s(k::LANE_PREFIX))
            .consistent_read(true)
            .limit(1)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        let items = out.items.unwrap_or_default();
        Ok(items
            .into_iter()
            .next()
            .map(serde_dynamo::from_item)
            .transpose()?)
    }

    /// Records when the head's next attempt is due, so that the events
    /// behind it wait that long instead of polling.
    pub async fn lane_retry_at(
        &self,
        lane: &str,
        position: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(lane))
            .key(k::SK, s(k::lane_sk(position)))
            .update_expression("SET next_attempt_at = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            .send()
            .await;
        match result {
            Err(e) if condition_failed(&e) => Ok(()),
            other => other.map(drop).map_err(StoreError::sdk),
        }
    }

    /// Takes an event out of its line (delivered, parked or cancelled).
    pub async fn lane_leave(&self, lane: &str, position: &str) -> Result<(), StoreError> {
        self.db
            .delete_item()
            .table_name(&self.table)
            .key(k::PK, s(lane))
            .key(k::SK, s(k::lane_sk(position)))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }
}
