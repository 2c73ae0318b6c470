//! Deliveries and their attempts. A delivery item (`DELIVERY#<id>`) counts
//! the attempts made and leases the one in flight, so that a duplicated or
//! stale task never makes an attempt twice; every attempt is logged under
//! its endpoint for the attempts listing and the stats.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};
use nuvem_domain::webhook::stats::AttemptSample;
use serde::{Deserialize, Serialize};

use super::{
    Item, ListError, Listing, Page, Store, StoreError, WRITE_ID_VALUE, condition_failed, marked, n,
    refused_by_itself, s, update_refused,
};
use crate::deliveries::DeliveryTask;
use crate::table_keys as k;

/// Where a delivery stands after its last attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// More attempts to come.
    Pending,
    Succeeded,
    /// The schedule ran out; kept (with its event) for replay.
    Exhausted,
    /// Not attempted: the endpoint was deleted, disabled or no longer
    /// subscribes.
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Exhausted => "exhausted",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClaim {
    /// This worker makes the attempt; record it with [`Store::record_attempt`].
    Acquired,
    /// The delivery is over (succeeded, exhausted or cancelled): drop the task.
    Done,
    /// The delivery goes on, but not with this task: its attempt was made
    /// already (a duplicate), or it is a stale task whose attempt is still
    /// in its own message. Drop the task.
    Stale,
    /// Another worker holds the attempt's lease: retry the task later.
    Busy,
}

/// One HTTP attempt as logged (the response excerpt is ≤ 4 KiB; secrets in
/// the request headers are redacted before they get here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// `att_…`, sortable by time.
    pub id: String,
    pub account_id: String,
    pub webhook_id: String,
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    pub attempt: u32,
    /// `succeeded` or `failed`.
    pub outcome: AttemptOutcome,
    pub attempted_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    pub duration_ms: u64,
    pub request_headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response_excerpt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt is due, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
        }
    }
}

impl std::str::FromStr for AttemptOutcome {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "succeeded" => Ok(AttemptOutcome::Succeeded),
            "failed" => Ok(AttemptOutcome::Failed),
            _ => Err(()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct DeliveryState {
    #[serde(default)]
    attempts: u32,
    status: Option<DeliveryStatus>,
}

impl Store {
    fn retention_ttl(&self, from: DateTime<Utc>) -> AttributeValue {
        n((from + self.retention).timestamp())
    }

    /// Claims attempt `attempt` of a delivery for `lease`: it succeeds only
    /// when exactly `attempt - 1` attempts were recorded, the delivery is
    /// still pending, and no other worker holds an unexpired lease. One
    /// conditional update; the item a refusal returns tells why. The update
    /// is marked (`write_id`), so that the SDK's retry of a claim whose
    /// first attempt applied finds its own lease, not another worker's.
    pub async fn claim_attempt(
        &self,
        task: &DeliveryTask,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<AttemptClaim, StoreError> {
        let (delivery_id, attempt) = (task.delivery_id.as_str(), task.attempt);
        let write_id = nuvem_domain::ids::new_id("w");
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::delivery_pk(delivery_id)))
            .key(k::SK, s(k::DELIVERY_SK))
            .update_expression(marked(
                "SET lease_until = :lease, account_id = :acc, endpoint_id = :wh, event_id = :evt, \
                 #st = if_not_exists(#st, :pending), attempts = if_not_exists(attempts, :zero), \
                 created_at = if_not_exists(created_at, :now), expires_at = if_not_exists(expires_at, :ttl)",
            ))
            .condition_expression(
                "attribute_not_exists(pk) OR (#st = :pending AND attempts = :prev \
                 AND (attribute_not_exists(lease_until) OR lease_until < :now))",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":lease", s((now + lease).to_rfc3339()))
            .expression_attribute_values(":acc", s(&task.event.account_id))
            .expression_attribute_values(":wh", s(&task.endpoint_id))
            .expression_attribute_values(":evt", s(&task.event.id))
            .expression_attribute_values(":pending", s(DeliveryStatus::Pending.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":prev", n(attempt.saturating_sub(1)))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":ttl", self.retention_ttl(now))
            .expression_attribute_values(WRITE_ID_VALUE, s(&write_id))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result {
            // (A later attempt may find no item: its earlier attempts expired
            // with their delivery item; nothing says it was made, so make it.)
            Ok(_) => Ok(AttemptClaim::Acquired),
            Err(e) if !condition_failed(&e) => Err(StoreError::sdk(e)),
            Err(e) => {
                let refused = update_refused(&e);
                if refused_by_itself(refused.as_ref(), &write_id) {
                    return Ok(AttemptClaim::Acquired);
                }
                let state: Option<DeliveryState> =
                    refused.map(serde_dynamo::from_item).transpose()?;
                Ok(match state {
                    Some(state) if state.status == Some(DeliveryStatus::Pending) => {
                        if state.attempts + 1 == attempt {
                            AttemptClaim::Busy
                        } else {
                            AttemptClaim::Stale
                        }
                    }
                    _ => AttemptClaim::Done,
                })
            }
        }
    }

    /// Logs an attempt and moves its delivery on, in one transaction; the
    /// condition on the attempt count makes a second recording of the same
    /// attempt (a worker whose lease ran out) change nothing.
    pub async fn record_attempt(
        &self,
        attempt: &AttemptRecord,
        status: DeliveryStatus,
    ) -> Result<(), StoreError> {
        let finish = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::delivery_pk(&attempt.delivery_id)))
            .key(k::SK, s(k::DELIVERY_SK))
            .update_expression(
                "SET attempts = :n, #st = :status, last_attempt_at = :at, \
                 account_id = :acc, endpoint_id = :wh, event_id = :evt, \
                 expires_at = if_not_exists(expires_at, :ttl) REMOVE lease_until",
            )
            .condition_expression("attribute_not_exists(attempts) OR attempts < :n")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":n", n(attempt.attempt))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":at", s(attempt.attempted_at.to_rfc3339()))
            .expression_attribute_values(":acc", s(&attempt.account_id))
            .expression_attribute_values(":wh", s(&attempt.webhook_id))
            .expression_attribute_values(":evt", s(&attempt.event_id))
            .expression_attribute_values(":ttl", self.retention_ttl(attempt.attempted_at))
            .build()
            .map_err(StoreError::sdk)?;
        let items = vec![
            TransactWriteItem::builder().update(finish).build(),
            self.put(
                self.attempt_item(attempt)?,
                Some("attribute_not_exists(pk)"),
            )?,
            self.rollup_update(attempt)?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) | Err(_) => Ok(()),
        }
    }

    /// Logs an attempt that belongs to no queued delivery (a test delivery).
    pub async fn log_attempt(&self, attempt: &AttemptRecord) -> Result<(), StoreError> {
        self.transact(vec![
            self.put(self.attempt_item(attempt)?, None)?,
            self.rollup_update(attempt)?,
        ])
        .await
    }

    /// Closes a delivery without an attempt (its endpoint is gone or off).
    pub async fn cancel_delivery(&self, delivery_id: &str) -> Result<(), StoreError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::delivery_pk(delivery_id)))
            .key(k::SK, s(k::DELIVERY_SK))
            .update_expression("SET #st = :cancelled REMOVE lease_until")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":cancelled", s(DeliveryStatus::Cancelled.as_str()))
            .send()
            .await;
        match result {
            Err(e) if condition_failed(&e) => Ok(()),
            other => other.map(drop).map_err(StoreError::sdk),
        }
    }

    fn attempt_item(&self, attempt: &AttemptRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(attempt)?;
        item.insert(
            k::PK.into(),
            s(k::attempts_pk(&attempt.account_id, &attempt.webhook_id)),
        );
        item.insert(k::SK.into(), s(k::attempt_sk(&attempt.id)));
        item.insert(
            k::GSI1PK.into(),
            s(k::attempts_by_outcome(
                &attempt.account_id,
                &attempt.webhook_id,
                attempt.outcome.as_str(),
            )),
        );
        item.insert(k::GSI1SK.into(), s(&attempt.id));
        item.insert(
            k::EXPIRES_AT.into(),
            self.retention_ttl(attempt.attempted_at),
        );
        Ok(item)
    }

    /// An endpoint's attempts, newest first, optionally of one outcome.
    pub async fn list_attempts(
        &self,
        account_id: &str,
        webhook_id: &str,
        outcome: Option<AttemptOutcome>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<AttemptRecord>, ListError> {
        let listing = match outcome {
            Some(outcome) => Listing::Gsi1 {
                pk: k::attempts_by_outcome(account_id, webhook_id, outcome.as_str()),
                newest_first: true,
            },
            None => Listing::Prefix {
                pk: k::attempts_pk(account_id, webhook_id),
                sk_prefix: k::ATTEMPT_PREFIX,
                newest_first: true,
            },
        };
        self.page(listing, limit, cursor).await
    }

    /// What the stats need of the attempts since `since` (attempt ids sort
    /// by time, so the window is a key range), newest first, projected to
    /// three numbers, and at most `cap` of them (the work of one stats call
    /// stays bounded however busy the endpoint is).
    pub async fn attempt_samples(
        &self,
        account_id: &str,
        webhook_id: &str,
        since_attempt_id: &str,
        cap: usize,
    ) -> Result<Vec<AttemptSample>, StoreError> {
        #[derive(Deserialize)]
        struct Sample {
            outcome: AttemptOutcome,
            response_status: Option<u16>,
            duration_ms: u64,
        }
        let query = self
            .sk_range(
                k::attempts_pk(account_id, webhook_id),
                k::attempt_sk(since_attempt_id),
                k::attempt_sk("~"),
            )
            .projection_expression("outcome, response_status, duration_ms")
            .scan_index_forward(false);
        let samples: Vec<Sample> = self.query_all(query, cap).await?;
        Ok(samples
            .into_iter()
            .map(|s| AttemptSample {
                status: s.response_status,
                duration_ms: s.duration_ms,
                succeeded: s.outcome == AttemptOutcome::Succeeded,
            })
            .collect())
    }
}
