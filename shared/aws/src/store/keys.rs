//! Access keys: found by key id (the authorizer's one read), listed per
//! account through gsi1.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::keys::{KeyStatus, Role};
use serde::{Deserialize, Serialize};

use super::{Item, ListError, Listing, Page, Store, StoreError, condition_failed, n, s};
use crate::table_keys as k;

/// An access key as stored. The secret itself is never stored: only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub role: Role,
    pub status: KeyStatus,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    AlreadyRevoked,
    /// No such key in the caller's account (another account's key included).
    NotFound,
}

/// Expired keys stay listable for 30 days, then DynamoDB's TTL removes them.
const EXPIRED_KEY_RETENTION_SECS: i64 = 30 * 24 * 3600;

impl Store {
    fn key_item(&self, key: &KeyRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(key)?;
        item.insert(k::PK.into(), s(k::key_pk(&key.id)));
        item.insert(k::SK.into(), s(k::KEY_SK));
        item.insert(k::GSI1PK.into(), s(k::keys_of_account(&key.account_id)));
        item.insert(
            k::GSI1SK.into(),
            s(format!("{}#{}", key.created_at.to_rfc3339(), key.id)),
        );
        if let Some(expires) = key.expires {
            item.insert(
                k::EXPIRES_AT.into(),
                n(expires.timestamp() + EXPIRED_KEY_RETENTION_SECS),
            );
        }
        Ok(item)
    }

    /// The put of a new key, for a transaction; fails if the id exists.
    pub fn new_key_write(&self, key: &KeyRecord) -> Result<TransactWriteItem, StoreError> {
        self.put(self.key_item(key)?, Some("attribute_not_exists(pk)"))
    }

    /// Stores a new key, with the event announcing it when there is one
    /// (platform admin keys have none), in one transaction.
    pub async fn create_key(
        &self,
        key: &KeyRecord,
        event: Option<&Envelope>,
    ) -> Result<(), StoreError> {
        let mut items = vec![self.new_key_write(key)?];
        if let Some(event) = event {
            items.push(self.event_record(event)?);
        }
        self.transact(items).await
    }

    /// The key, read strongly consistently so that a revocation is seen at
    /// once by the authorizer (API Gateway's cache is the only delay).
    pub async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.get(k::key_pk(key_id), k::KEY_SK).await
    }

    /// An account's keys, oldest first.
    pub async fn list_keys(
        &self,
        account_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<KeyRecord>, ListError> {
        let listing = Listing::Gsi1 {
            pk: k::keys_of_account(account_id),
            newest_first: false,
        };
        self.page(listing, limit, cursor).await
    }

    /// Revokes an active key of `account_id`, with its event, in one
    /// transaction. The account is part of the condition, so a key of another
    /// account is "not found", never revoked; revoking a revoked key again
    /// changes nothing and emits nothing.
    pub async fn revoke_key(
        &self,
        account_id: &str,
        key_id: &str,
        now: DateTime<Utc>,
        event: &Envelope,
    ) -> Result<RevokeOutcome, StoreError> {
        let revoke = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::key_pk(key_id)))
            .key(k::SK, s(k::KEY_SK))
            .update_expression("SET #st = :revoked, revoked_at = :now")
            .condition_expression("account_id = :acc AND #st = :active")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":revoked", s(KeyStatus::Revoked.as_str()))
            .expression_attribute_values(":active", s(KeyStatus::Active.as_str()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":acc", s(account_id))
            .build()
            .map_err(StoreError::sdk)?;
        let items = vec![
            TransactWriteItem::builder().update(revoke).build(),
            self.event_record(event)?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(RevokeOutcome::Revoked),
            Err(failed) => match failed.as_slice() {
                // Not this account's active key: revoked already, or not ours.
                [true, ..] => match self.get_key(key_id).await? {
                    Some(key) if key.account_id == account_id => Ok(RevokeOutcome::AlreadyRevoked),
                    _ => Ok(RevokeOutcome::NotFound),
                },
                _ => Err(StoreError::Refused(failed.clone())),
            },
        }
    }

    /// Records that a key was used, unless another request already did so
    /// within the last minute (the condition makes concurrent calls cheap).
    pub async fn touch_key(
        &self,
        key_id: &str,
        now: DateTime<Utc>,
        not_since: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::key_pk(key_id)))
            .key(k::SK, s(k::KEY_SK))
            .update_expression("SET last_used_at = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(last_used_at) OR last_used_at < :since)",
            )
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":since", s(not_since.to_rfc3339()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk(e)),
        }
    }
}
