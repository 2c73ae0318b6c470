//! Storage keys in their account's partition (`SKEY#<id>`), with a count
//! item (`SKEYCOUNT`) that the same transactions keep, so that the
//! per-account cap holds under concurrent creations.
//!
//! A key's life: `creating` (written before any IAM call, so a crash leaves
//! a record to clean up from) → `active` → `revoked` (kept 30 days, then
//! DynamoDB's TTL removes it). The IAM user's name is derived from the id.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::keys::Actor;
use nuvem_domain::storage_key::{Access, MAX_KEYS_PER_ACCOUNT};
use serde::{Deserialize, Serialize};

use super::{AuditRecord, Item, ListError, Listing, Page, Store, StoreError, n, s};
use crate::table_keys as k;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageKeyStatus {
    /// Written before its IAM user; a key left here by a failure has no
    /// usable credentials and is cleaned up by revoking it.
    Creating,
    Active,
    Revoked,
}

impl StorageKeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKeyStatus::Creating => "creating",
            StorageKeyStatus::Active => "active",
            StorageKeyStatus::Revoked => "revoked",
        }
    }
}

/// A storage key as stored. Its secret never is: IAM shows it once, in the
/// answer that creates (or rotates) it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageKeyRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub access: Access,
    /// The tenant's names of the buckets it covers; `None`: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<String>>,
    pub iam_user: String,
    pub status: StorageKeyStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The new access key of a rotation the tenant has not confirmed yet
    /// (both work until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_access_key_id: Option<String>,
    /// Whether its policy is the hard quota's (no `s3:PutObject`).
    #[serde(default)]
    pub writes_blocked: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency counter: every change is conditioned on it.
    #[serde(default)]
    pub version: u64,
}

/// Revoked keys stay listable this long.
const REVOKED_RETENTION_SECS: i64 = 30 * 24 * 3600;

impl Store {
    fn storage_key_item(&self, key: &StorageKeyRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(key)?;
        item.insert(k::PK.into(), s(k::account_pk(&key.account_id)));
        item.insert(k::SK.into(), s(k::storage_key_sk(&key.id)));
        if let Some(at) = key.revoked_at {
            item.insert(
                k::EXPIRES_AT.into(),
                n(at.timestamp() + REVOKED_RETENTION_SECS),
            );
        }
        Ok(item)
    }

    fn storage_key_count(
        &self,
        account_id: &str,
        delta: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(account_id)))
            .key(k::SK, s(k::STORAGE_KEY_COUNT_SK))
            .update_expression("ADD held :delta")
            .expression_attribute_values(":delta", n(delta));
        if delta > 0 {
            update = update
                .condition_expression("attribute_not_exists(held) OR held < :max")
                .expression_attribute_values(":max", n(i64::from(MAX_KEYS_PER_ACCOUNT)));
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(StoreError::sdk)?)
            .build())
    }

    /// Writes a new key in `creating`, counted against the account's cap;
    /// `false` when the account already holds the most it may.
    pub async fn begin_storage_key(&self, key: &StorageKeyRecord) -> Result<bool, StoreError> {
        let items = vec![
            self.put(
                self.storage_key_item(key)?,
                Some("attribute_not_exists(pk)"),
            )?,
            self.storage_key_count(&key.account_id, 1)?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(true),
            Err(failed) if failed.get(1) == Some(&true) => Ok(false),
            Err(failed) => Err(StoreError::Refused(failed)),
        }
    }

    /// Writes `after` over `before` if nobody changed it since `before` was
    /// read, with the change's event and audit entry; a key that becomes
    /// revoked gives its place under the cap back. `false`: someone did.
    pub async fn save_storage_key(
        &self,
        before: &StorageKeyRecord,
        after: &StorageKeyRecord,
        event: Option<&Envelope>,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError> {
        let mut next = after.clone();
        next.version = before.version + 1;
        let mut items = vec![self.put_if_version(self.storage_key_item(&next)?, before.version)?];
        if before.status != StorageKeyStatus::Revoked && after.status == StorageKeyStatus::Revoked {
            items.push(self.storage_key_count(&after.account_id, -1)?);
        }
        if let Some(event) = event {
            items.push(self.event_record(event)?);
        }
        if let Some(audit) = audit {
            items.push(self.audit_write(audit)?);
        }
        match self.transact_checked(items).await? {
            Ok(()) => Ok(true),
            Err(failed) if failed.first() == Some(&true) => Ok(false),
            Err(failed) => Err(StoreError::Refused(failed)),
        }
    }

    /// Takes back a key that never got its IAM user (the creation failed
    /// and undid what it had done): gone, and no longer counted.
    pub async fn forget_storage_key(&self, key: &StorageKeyRecord) -> Result<(), StoreError> {
        let items = vec![
            self.delete_item(
                k::account_pk(&key.account_id),
                k::storage_key_sk(&key.id),
                "attribute_exists(pk)",
            )?,
            self.storage_key_count(&key.account_id, -1)?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) | Err(_) => Ok(()),
        }
    }

    /// A key of `account_id` (another account's id is simply not found).
    pub async fn get_storage_key(
        &self,
        account_id: &str,
        key_id: &str,
    ) -> Result<Option<StorageKeyRecord>, StoreError> {
        self.get(k::account_pk(account_id), &k::storage_key_sk(key_id))
            .await
    }

    /// An account's storage keys, oldest first.
    pub async fn list_storage_keys(
        &self,
        account_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<StorageKeyRecord>, ListError> {
        let listing = Listing::Prefix {
            pk: k::account_pk(account_id),
            sk_prefix: k::STORAGE_KEY_PREFIX,
            newest_first: false,
        };
        self.page(listing, limit, cursor).await
    }

    /// Every key of the account that is not revoked (at most the cap, plus
    /// revoked ones skipped), for changes that touch all of their policies.
    pub async fn live_storage_keys(
        &self,
        account_id: &str,
    ) -> Result<Vec<StorageKeyRecord>, StoreError> {
        let prefix = k::STORAGE_KEY_PREFIX;
        let query = self.sk_range(
            k::account_pk(account_id),
            prefix.to_owned(),
            format!("{prefix}\u{10ffff}"),
        );
        let all: Vec<StorageKeyRecord> = self.query_all(query, 10_000).await?;
        Ok(all
            .into_iter()
            .filter(|k| k.status != StorageKeyStatus::Revoked)
            .collect())
    }
}
