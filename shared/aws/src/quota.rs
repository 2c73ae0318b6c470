//! Re-evaluates an account's usage against its quota: after usage changed
//! (`quota-alerts`) and after the admin changed the quota (`approval`).

use chrono::{DateTime, Utc};
use nuvem_domain::account::quota_bytes;
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::threshold::{Level, crossing};
use serde_json::json;

use crate::Core;
use crate::store::StoreError;

/// Buckets named in an alert, biggest first.
const BIGGEST: usize = 5;

impl Core {
    /// Moves the account's alert level to what its usage and quota say, and
    /// emits one `quota.threshold_crossed` for an upward crossing. Falling
    /// below a level re-arms it; a concurrent evaluation that moved the
    /// level first wins, so a crossing is announced once.
    pub async fn evaluate_quota(
        &self,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(account) = self.store.get_account(account_id).await? else {
            return Ok(());
        };
        let usage = self.store.account_usage(account_id).await?;
        let used = u64::try_from(usage.bytes).unwrap_or(0);
        let quota = account.quota_gb.map(quota_bytes);
        self.hard_quota(&account, &usage, used, quota, now).await?;
        let Some(quota) = quota else {
            return Ok(());
        };
        let previous = Level::try_from(usage.level).unwrap_or_default();
        let (level, alert) = crossing(previous, used, quota);
        if level == previous {
            return Ok(());
        }
        let event = match alert {
            None => None,
            Some(alert) => Some(Envelope::new(
                EventType::QuotaThresholdCrossed,
                account_id,
                json!({
                    "level_percent": alert.percent(),
                    "used_bytes": used,
                    "quota_bytes": quota,
                    "biggest_buckets": self.biggest_buckets(account_id).await?,
                }),
                now,
            )),
        };
        let moved = self
            .store
            .set_usage_level(account_id, previous.into(), level.into(), event.as_ref())
            .await?;
        if moved && let Some(event) = event {
            self.emit(&event, None).await;
            if let Some(alert) = alert {
                crate::metrics::quota_alert(alert.percent());
            }
        }
        Ok(())
    }

    /// The hard quota: an account with `enforce_quota` whose usage reached
    /// its quota has its writes blocked, and gets them back below it (or
    /// when the hard quota is turned off or the quota removed). The move is
    /// one conditional write with its event (`quota.writes_blocked`,
    /// `quota.writes_restored`), so each crossing is announced once; the
    /// event's consumer (`fanout`) brings the storage keys' policies to the
    /// recorded state, whatever order events arrive in.
    async fn hard_quota(
        &self,
        account: &crate::store::AccountRecord,
        usage: &crate::store::AccountUsage,
        used: u64,
        quota: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let blocked = account.enforce_quota && quota.is_some_and(|q| used >= q);
        if blocked == usage.writes_blocked {
            return Ok(());
        }
        let kind = if blocked {
            EventType::QuotaWritesBlocked
        } else {
            EventType::QuotaWritesRestored
        };
        let event = Envelope::new(
            kind,
            &account.id,
            json!({ "used_bytes": used, "quota_bytes": quota }),
            now,
        );
        if self
            .store
            .set_writes_blocked(&account.id, usage.writes_blocked, blocked, &event)
            .await?
        {
            self.emit(&event, None).await;
        }
        Ok(())
    }

    async fn biggest_buckets(&self, account_id: &str) -> Result<serde_json::Value, StoreError> {
        let mut names = Vec::new();
        let mut cursor = None;
        loop {
            let page = match self
                .store
                .list_buckets(account_id, 100, cursor.as_deref())
                .await
            {
                Ok(page) => page,
                Err(crate::store::ListError::Store(e)) => return Err(e),
                Err(crate::store::ListError::BadCursor) => break,
            };
            names.extend(page.items.into_iter().map(|b| (b.bucket, b.name)));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        let physical: Vec<String> = names.iter().map(|(b, _)| b.clone()).collect();
        let usages = self.store.bucket_usages(&physical).await?;
        let mut sized: Vec<(String, u64)> = names
            .into_iter()
            .map(|(bucket, name)| (name, usages.get(&bucket).map_or(0, |u| u.bytes)))
            .collect();
        sized.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
        sized.truncate(BIGGEST);
        Ok(json!(
            sized
                .into_iter()
                .map(|(name, bytes)| json!({"name": name, "used_bytes": bytes}))
                .collect::<Vec<_>>()
        ))
    }
}
