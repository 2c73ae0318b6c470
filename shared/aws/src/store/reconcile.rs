//! What the usage reconciler reads and writes besides objects' states: every
//! tenant bucket (gsi2 `BUCKETS`), a bucket's recorded live objects in key
//! order (gsi1 `OBJECTS#<bucket>`), where an unfinished cycle stopped, and
//! one record per run per bucket of what was corrected.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    BucketRecord, Index, Item, ListError, Page, Store, StoreError, StoredObject, n, outbox_time, s,
};
use crate::table_keys as k;

/// A recorded object of a bucket, with its (decoded) key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordedObject {
    #[serde(rename = "gsi1sk")]
    pub key: String,
    #[serde(flatten)]
    pub object: StoredObject,
}

/// Where a reconciliation cycle stopped: the bucket it was in, S3's
/// continuation token of the next page and the last key already compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileCursor {
    pub bucket: String,
    pub continuation_token: Option<String>,
    pub last_key: Option<String>,
    pub saved_at: DateTime<Utc>,
}

/// What one run did to one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileRun {
    pub bucket: String,
    pub account_id: String,
    pub started_at: DateTime<Utc>,
    /// Objects S3 listed to this run.
    pub listed: u64,
    /// Objects in S3 that nuvem did not count.
    pub added: u64,
    /// Objects counted with the wrong size.
    pub fixed: u64,
    /// Objects counted that S3 no longer has.
    pub removed: u64,
    pub bytes_delta: i64,
    pub objects_delta: i64,
    /// Differences left alone because one side changed too recently.
    pub settling: u64,
    /// Corrections dropped because an event changed the object first.
    pub lost_races: u64,
    /// False when the run stopped inside the bucket (resumed next run).
    pub complete: bool,
}

/// Runs are kept this long.
const RUN_SECS: i64 = 90 * 24 * 3600;

impl Store {
    /// One page of all tenant buckets by physical name, from `from` on.
    pub async fn all_buckets(
        &self,
        from: Option<&str>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<BucketRecord>, ListError> {
        let query = self
            .db
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":p", s(k::ALL_BUCKETS));
        let query = match from {
            None => query.key_condition_expression("gsi2pk = :p"),
            Some(from) => query
                .key_condition_expression("gsi2pk = :p AND gsi2sk >= :from")
                .expression_attribute_values(":from", s(from)),
        };
        self.page_of(query, Some(Index::Gsi2), limit, cursor).await
    }

    /// One page of a bucket's recorded live objects with keys after `after`
    /// and up to `through` (either end open when `None`), in key order.
    /// Read from the index, so possibly a little stale: decide on a fresh
    /// [`Store::object_state`] before writing.
    pub async fn live_objects(
        &self,
        bucket: &str,
        after: Option<&str>,
        through: Option<&str>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<RecordedObject>, ListError> {
        let query = self
            .db
            .query()
            .table_name(&self.table)
            .filter_expression("live = :live")
            .expression_attribute_values(
                ":live",
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            )
            .expression_attribute_values(":p", s(k::objects_of_bucket(bucket)));
        // BETWEEN is inclusive: the key equal to `after` is dropped below.
        let query = match (after, through) {
            (None, None) => query.key_condition_expression("gsi1pk = :p"),
            (Some(a), None) => query
                .key_condition_expression("gsi1pk = :p AND gsi1sk > :a")
                .expression_attribute_values(":a", s(a)),
            (None, Some(t)) => query
                .key_condition_expression("gsi1pk = :p AND gsi1sk <= :t")
                .expression_attribute_values(":t", s(t)),
            (Some(a), Some(t)) => query
                .key_condition_expression("gsi1pk = :p AND gsi1sk BETWEEN :a AND :t")
                .expression_attribute_values(":a", s(a))
                .expression_attribute_values(":t", s(t)),
        };
        let page: Page<RecordedObject> = self
            .page_of(query, Some(Index::Gsi1), limit, cursor)
            .await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .filter(|o| Some(o.key.as_str()) != after)
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    pub async fn reconcile_cursor(&self) -> Result<Option<ReconcileCursor>, StoreError> {
        self.get(k::RECONCILE_STATE_PK.to_owned(), k::RECONCILE_STATE_SK)
            .await
    }

    pub async fn save_reconcile_cursor(&self, cursor: &ReconcileCursor) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(cursor)?;
        item.insert(k::PK.into(), s(k::RECONCILE_STATE_PK));
        item.insert(k::SK.into(), s(k::RECONCILE_STATE_SK));
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    /// The cycle is finished: the next run starts from the first bucket.
    pub async fn clear_reconcile_cursor(&self) -> Result<(), StoreError> {
        self.db
            .delete_item()
            .table_name(&self.table)
            .key(k::PK, s(k::RECONCILE_STATE_PK))
            .key(k::SK, s(k::RECONCILE_STATE_SK))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    pub async fn record_reconcile_run(&self, run: &ReconcileRun) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(run)?;
        item.insert(k::PK.into(), s(k::reconcile_pk(&run.bucket)));
        item.insert(
            k::SK.into(),
            s(k::reconcile_run_sk(&outbox_time(run.started_at))),
        );
        item.insert(
            k::EXPIRES_AT.into(),
            n(run.started_at.timestamp() + RUN_SECS),
        );
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    /// A bucket's runs, oldest first.
    pub async fn reconcile_runs(&self, bucket: &str) -> Result<Vec<ReconcileRun>, StoreError> {
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :run)")
            .expression_attribute_values(":p", s(k::reconcile_pk(bucket)))
            .expression_attribute_values(":run", s(k::reconcile_run_sk("")))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(serde_dynamo::from_items(out.items.unwrap_or_default())?)
    }
}
