//! Hourly counters of each endpoint's attempts (`HOUR#<hour>` next to the
//! attempts), added to in the same transaction that logs an attempt, so
//! that stats over any window read at most 169 small items however many
//! attempts it holds, and count every one.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use nuvem_domain::webhook::stats::{AttemptSample, LATENCY_BUCKETS_MS, Rollup};

use super::{Store, StoreError, n, s};
use crate::table_keys as k;

use super::deliveries::{AttemptOutcome, AttemptRecord};

/// The hour an instant falls in, as rollups are keyed (`2026-11-24T14`).
pub fn hour_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

/// Attribute names of the counters.
const CLASSES: [&str; 5] = ["c2xx", "c3xx", "c4xx", "c5xx", "cnone"];

fn latency_attr(bucket: usize) -> String {
    format!("l{bucket:02}")
}

impl Store {
    /// The update that counts `attempt` in its hour's rollup.
    pub(crate) fn rollup_update(
        &self,
        attempt: &AttemptRecord,
    ) -> Result<TransactWriteItem, StoreError> {
        let one = Rollup::of(&AttemptSample {
            status: attempt.response_status,
            duration_ms: attempt.duration_ms,
            succeeded: attempt.outcome == AttemptOutcome::Succeeded,
        });
        let mut adds = vec!["attempts".to_owned()];
        if one.succeeded > 0 {
            adds.push("succeeded".to_owned());
        }
        let classes = [
            one.classes.s2xx,
            one.classes.s3xx,
            one.classes.s4xx,
            one.classes.s5xx,
            one.classes.no_response,
        ];
        adds.extend(
            CLASSES
                .iter()
                .zip(classes)
                .filter(|(_, count)| *count > 0)
                .map(|(name, _)| (*name).to_owned()),
        );
        adds.extend(
            one.latency
                .iter()
                .enumerate()
                .filter(|(_, count)| **count > 0)
                .map(|(bucket, _)| latency_attr(bucket)),
        );
        let expression = format!(
            "SET expires_at = if_not_exists(expires_at, :ttl) ADD {}",
            adds.iter()
                .map(|a| format!("{a} :one"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let update = Update::builder()
            .table_name(&self.table)
            .key(
                k::PK,
                s(k::attempts_pk(&attempt.account_id, &attempt.webhook_id)),
            )
            .key(k::SK, s(k::rollup_sk(&hour_of(attempt.attempted_at))))
            .update_expression(expression)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(
                ":ttl",
                n((attempt.attempted_at + self.retention).timestamp()),
            )
            .build()
            .map_err(StoreError::sdk)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The endpoint's counters from the hour of `since` on, summed.
    pub async fn rollup_since(
        &self,
        account_id: &str,
        webhook_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Rollup, StoreError> {
        let query = self.sk_range(
            k::attempts_pk(account_id, webhook_id),
            k::rollup_sk(&hour_of(since)),
            k::rollup_sk("~"),
        );
        // A week is 169 hours at most: one page of small items.
        let hours: Vec<Counters> = self.query_all(query, 24 * 8).await?;
        let mut total = Rollup::default();
        for item in &hours {
            total.add(&rollup_of(item));
        }
        Ok(total)
    }
}

/// A rollup item as read: its counters by attribute name (keys and TTL too).
type Counters = HashMap<String, serde_json::Value>;

fn rollup_of(item: &Counters) -> Rollup {
    let count = |name: &str| -> u64 { item.get(name).and_then(|v| v.as_u64()).unwrap_or(0) };
    let mut rollup = Rollup {
        attempts: count("attempts"),
        succeeded: count("succeeded"),
        ..Rollup::default()
    };
    let c = &mut rollup.classes;
    [c.s2xx, c.s3xx, c.s4xx, c.s5xx, c.no_response] = CLASSES.map(count);
    for bucket in 0..LATENCY_BUCKETS_MS.len() {
        rollup.latency[bucket] = count(&latency_attr(bucket));
    }
    rollup
}
