//! Fixed-window rate limits kept as atomic counters with a TTL.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, condition_failed, n, s};
use crate::table_keys as k;

impl Store {
    /// Counts one attempt of `subject` in the current window of `bucket` and
    /// says whether it is within `limit`. One conditional `ADD`: concurrent
    /// attempts cannot both take the last slot.
    pub async fn take_rate_slot(
        &self,
        bucket: &str,
        subject: &str,
        limit: u32,
        window_secs: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let window = now.timestamp() / window_secs;
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::rate_pk(bucket, subject, window)))
            .key(k::SK, s(k::RATE_SK))
            .update_expression("ADD hits :one SET expires_at = :ttl")
            .condition_expression("attribute_not_exists(hits) OR hits < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":ttl", n((window + 2) * window_secs))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk(e)),
        }
    }
}
