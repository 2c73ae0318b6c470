//! Rate limits kept as atomic counters per window with a TTL: fixed
//! windows, and sliding ones that also weigh the previous window.

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

#[derive(serde::Deserialize)]
struct Hits {
    hits: u32,
}

impl Store {
    /// [`Store::take_rate_slot`] over a sliding window: the previous
    /// window's attempts still count in proportion to how much of it lies
    /// within `window_secs` of `now` (rounded up), so attempts that straddle
    /// a window's boundary cannot get twice the limit, and "N per hour"
    /// means any hour, not each clock hour. One read of the previous window
    /// (which no longer changes) and the same conditional `ADD`.
    pub async fn take_sliding_rate_slot(
        &self,
        bucket: &str,
        subject: &str,
        limit: u32,
        window_secs: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let window = now.timestamp().div_euclid(window_secs);
        let left_of_previous = window_secs - now.timestamp().rem_euclid(window_secs);
        let previous: Option<Hits> = self
            .get(k::rate_pk(bucket, subject, window - 1), k::RATE_SK)
            .await?;
        let previous = i64::from(previous.map_or(0, |p| p.hits));
        let carried = (previous * left_of_previous + window_secs - 1) / window_secs;
        match u32::try_from(i64::from(limit) - carried) {
            Ok(room) if room > 0 => {
                self.take_rate_slot(bucket, subject, room, window_secs, now)
                    .await
            }
            _ => Ok(false),
        }
    }
}
