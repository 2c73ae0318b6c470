//! Exact usage: per-object state, per-bucket and per-account counters, and
//! the account's alert level. An object's state and the counters move in one
//! transaction conditioned on the state that was read, so two deliveries
//! racing on one key cannot both count.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use nuvem_domain::events::Envelope;
use nuvem_domain::usage::{ObjectState, Outcome};
use serde::{Deserialize, Serialize};

use super::{Item, Store, StoreError, n, s};
use crate::table_keys as k;

/// An object's recorded state and its revision (the optimistic lock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredObject {
    #[serde(flatten)]
    pub state: ObjectState,
    pub rev: u64,
    /// When this state was written (epoch seconds); absent on items written
    /// before it was kept. The usage reconciler leaves recent changes alone.
    #[serde(default)]
    pub changed_at: Option<i64>,
}

/// An account's used bytes and the alert level they last reached (percent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountUsage {
    #[serde(default)]
    pub bytes: i64,
    #[serde(default)]
    pub level: u8,
    /// Whether the hard quota has taken writing away from the account's
    /// storage keys (what their policies converge to).
    #[serde(default)]
    pub writes_blocked: bool,
}

/// Deleted keys are remembered this long, for records arriving late.
const TOMBSTONE_SECS: i64 = 30 * 24 * 3600;

impl Store {
    pub async fn object_state(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<StoredObject>, StoreError> {
        self.get(k::object_pk(bucket, key), k::OBJECT_SK).await
    }

    /// Records an object's new state and adds the deltas to its bucket's and
    /// account's usage, if nobody changed the object since `previous` was
    /// read. Returns false when someone did (read again and retry).
    /// `now_epoch` is kept as the state's `changed_at`.
    pub async fn record_object_change(
        &self,
        account_id: &str,
        bucket: &str,
        key: &str,
        previous: Option<&StoredObject>,
        change: &Outcome,
        now_epoch: i64,
    ) -> Result<bool, StoreError> {
        let Outcome {
            new_state: state,
            bytes_delta,
            objects_delta,
        } = change;
        let (bytes_delta, objects_delta) = (*bytes_delta, *objects_delta);
        let stored = StoredObject {
            state: state.clone(),
            rev: previous.map_or(1, |p| p.rev + 1),
            changed_at: Some(now_epoch),
        };
        let mut item: Item = serde_dynamo::to_item(&stored)?;
        item.insert(k::PK.into(), s(k::object_pk(bucket, key)));
        item.insert(k::SK.into(), s(k::OBJECT_SK));
        // Lists the bucket's objects by key, for the usage reconciler.
        item.insert(k::GSI1PK.into(), s(k::objects_of_bucket(bucket)));
        item.insert(k::GSI1SK.into(), s(key));
        if !state.live {
            item.insert(k::EXPIRES_AT.into(), n(now_epoch + TOMBSTONE_SECS));
        }
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match previous {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(p) => put
                .condition_expression("rev = :rev")
                .expression_attribute_values(":rev", n(p.rev)),
        }
        .build()
        .map_err(StoreError::sdk)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if bytes_delta != 0 || objects_delta != 0 {
            for pk in [k::bucket_pk(bucket), k::account_pk(account_id)] {
                let add = Update::builder()
                    .table_name(&self.table)
                    .key(k::PK, s(pk))
                    .key(k::SK, s(k::USAGE_SK))
                    .update_expression("ADD #b :b, objects :o")
                    .expression_attribute_names("#b", "bytes")
                    .expression_attribute_values(":b", n(bytes_delta))
                    .expression_attribute_values(":o", n(objects_delta))
                    .build()
                    .map_err(StoreError::sdk)?;
                items.push(TransactWriteItem::builder().update(add).build());
            }
        }
        match self.transact_checked(items).await? {
            Ok(()) => Ok(true),
            Err(failed) => match failed.as_slice() {
                [true, ..] => Ok(false),
                _ => Err(StoreError::Refused(failed.clone())),
            },
        }
    }

    pub async fn account_usage(&self, account_id: &str) -> Result<AccountUsage, StoreError> {
        Ok(self
            .get(k::account_pk(account_id), k::USAGE_SK)
            .await?
            .unwrap_or_default())
    }

    /// Moves the account's alert level from `from` to `to`, with the alert's
    /// event when there is one, unless another evaluation already moved it.
    pub async fn set_usage_level(
        &self,
        account_id: &str,
        from: u8,
        to: u8,
        alert: Option<&Envelope>,
    ) -> Result<bool, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(account_id)))
            .key(k::SK, s(k::USAGE_SK))
            .update_expression("SET #l = :to")
            .condition_expression("attribute_not_exists(#l) AND :from = :zero OR #l = :from")
            .expression_attribute_names("#l", "level")
            .expression_attribute_values(":to", n(to))
            .expression_attribute_values(":from", n(from))
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(StoreError::sdk)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if let Some(event) = alert {
            items.push(self.event_record(event)?);
        }
        match self.transact_checked(items).await? {
            Ok(()) => Ok(true),
            Err(failed) => match failed.as_slice() {
                [true, ..] => Ok(false),
                _ => Err(StoreError::Refused(failed.clone())),
            },
        }
    }

    /// Moves the account's hard-quota state from `from` to `to`, with its
    /// event, unless another evaluation already moved it (so a crossing is
    /// announced once).
    pub async fn set_writes_blocked(
        &self,
        account_id: &str,
        from: bool,
        to: bool,
        event: &Envelope,
    ) -> Result<bool, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(account_id)))
            .key(k::SK, s(k::USAGE_SK))
            .update_expression("SET writes_blocked = :to")
            .condition_expression(
                "(attribute_not_exists(writes_blocked) AND :from = :false) OR writes_blocked = :from",
            )
            .expression_attribute_values(":to", AttributeValue::Bool(to))
            .expression_attribute_values(":from", AttributeValue::Bool(from))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .build()
            .map_err(StoreError::sdk)?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.event_record(event)?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(true),
            Err(failed) => match failed.as_slice() {
                [true, ..] => Ok(false),
                _ => Err(StoreError::Refused(failed.clone())),
            },
        }
    }
}
