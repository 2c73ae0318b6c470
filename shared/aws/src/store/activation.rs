//! Single-use activation tokens, stored by hash and redeemed atomically
//! together with the creation of the account's first key and its event.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use nuvem_domain::events::Envelope;
use serde::{Deserialize, Serialize};

use nuvem_domain::secret::Secret;
use nuvem_domain::{ids, keys, token};
use serde_json::json;

use super::{AuditRecord, Item, KeyRecord, Store, StoreError, n, s};
use crate::table_keys as k;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationRecord {
    pub account_id: String,
    pub created_at: DateTime<Utc>,
    /// Epoch seconds; also the item's TTL.
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<DateTime<Utc>>,
    /// The owner key the token bought, set with `used_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The salt of that key's secret (`keys::first_key_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_salt: Option<String>,
}

/// What a token redeemed.
#[derive(Debug)]
pub enum Redeemed {
    /// The account is activated now: its first key and the key's event.
    New(KeyRecord, Envelope),
    /// The token was used within [`token::ACTIVATION_REPEAT_WINDOW`]: the
    /// key it bought, still usable, and the salt of its secret, for the
    /// caller to answer again.
    Repeat(KeyRecord, String),
}

#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// Unknown, expired or already used: the caller learns no more than that.
    #[error("the activation token is invalid, expired or already used")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// A fresh single-use activation token of `account_id`: the secret to
    /// email (never stored: only its hash is), its expiry, and the write
    /// that stores the hash, for the caller's transaction.
    pub fn new_activation(
        &self,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(Secret, DateTime<Utc>, TransactWriteItem), StoreError> {
        let token = token::generate_activation_token();
        let expires_at = token::activation_expires_at(now);
        let write = self.activation_write(
            &token::hash_token(token.expose()),
            &ActivationRecord {
                account_id: account_id.to_owned(),
                created_at: now,
                expires_at: expires_at.timestamp(),
                used_at: None,
                key_id: None,
                key_salt: None,
            },
        )?;
        Ok((token, expires_at, write))
    }

    /// Stores a fresh activation token of `account_id` on its own (see
    /// [`Store::new_activation`]).
    pub async fn put_new_activation(
        &self,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(Secret, DateTime<Utc>), StoreError> {
        let (token, expires_at, write) = self.new_activation(account_id, now)?;
        self.transact(vec![write]).await?;
        Ok((token, expires_at))
    }

    /// The put of a new activation token, for the approval transaction.
    pub fn activation_write(
        &self,
        token_hash: &str,
        record: &ActivationRecord,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item: Item = serde_dynamo::to_item(record)?;
        item.insert(k::PK.into(), s(k::activation_pk(token_hash)));
        item.insert(k::SK.into(), s(k::ACTIVATION_SK));
        self.put(item, Some("attribute_not_exists(pk)"))
    }

    /// Marks the token used, the account activated, and creates the first key,
    /// its event and an audit entry in one transaction. The conditions (token
    /// exists, unused, unexpired; account active and not yet activated) make
    /// a second token of the same account fail even when requests race. A
    /// token used moments ago (by a request whose answer was lost, or by a
    /// racing one) redeems the key it bought again ([`Redeemed::Repeat`]).
    pub async fn redeem_activation(
        &self,
        token_hash: &str,
        key_salt: &str,
        now: DateTime<Utc>,
        first_key: impl FnOnce(&str) -> (KeyRecord, Envelope),
    ) -> Result<Redeemed, RedeemError> {
        // The read only finds the account; the transaction's conditions decide.
        let record = self.activation(token_hash).await?;
        if record.used_at.is_some() {
            return self.repeated_activation(record, now).await;
        }
        if record.expires_at <= now.timestamp() {
            return Err(RedeemError::Invalid);
        }
        let (key, event) = first_key(&record.account_id);
        let redeem = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::activation_pk(token_hash)))
            .key(k::SK, s(k::ACTIVATION_SK))
            .update_expression("SET used_at = :now, key_id = :key, key_salt = :salt")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(used_at) AND expires_at > :epoch",
            )
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":key", s(&key.id))
            .expression_attribute_values(":salt", s(key_salt))
            .expression_attribute_values(":epoch", n(now.timestamp()))
            .build()
            .map_err(StoreError::sdk)?;
        let activated = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(&record.account_id)))
            .key(k::SK, s(k::ACCOUNT_SK))
            // The version moves too, so that an admin change based on the
            // account as it was before activation fails its condition.
            .update_expression("SET activated_at = :now, updated_at = :now ADD version :one")
            .condition_expression("#st = :active AND attribute_not_exists(activated_at)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":active", s("active"))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(StoreError::sdk)?;
        let audit = AuditRecord {
            id: ids::new_id(ids::AUDIT),
            account_id: record.account_id.clone(),
            action: "activate".into(),
            actor_key_id: key.id.clone(),
            actor_role: key.role.as_str().into(),
            before: json!({ "activated_at": null }),
            after: json!({ "activated_at": now }),
            at: now,
        };
        let items = vec![
            TransactWriteItem::builder().update(redeem).build(),
            TransactWriteItem::builder().update(activated).build(),
            self.new_key_write(&key)?,
            self.event_record(&event)?,
            self.audit_write(&audit)?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(Redeemed::New(key, event)),
            // Refused by the token or the account: a racing use of this
            // token repeats, anything else is invalid.
            Err(failed) if failed.iter().take(2).any(|f| *f) => {
                let record = self.activation(token_hash).await?;
                match record.used_at {
                    Some(_) => self.repeated_activation(record, now).await,
                    None => Err(RedeemError::Invalid),
                }
            }
            Err(failed) => Err(StoreError::Refused(failed).into()),
        }
    }

    async fn activation(&self, token_hash: &str) -> Result<ActivationRecord, RedeemError> {
        self.get(k::activation_pk(token_hash), k::ACTIVATION_SK)
            .await?
            .ok_or(RedeemError::Invalid)
    }

    /// The key a used token bought, while the token may repeat and the key
    /// is usable.
    async fn repeated_activation(
        &self,
        record: ActivationRecord,
        now: DateTime<Utc>,
    ) -> Result<Redeemed, RedeemError> {
        let (Some(used_at), Some(key_id), Some(salt)) =
            (record.used_at, record.key_id, record.key_salt)
        else {
            return Err(RedeemError::Invalid);
        };
        if !token::repeat_allowed(used_at, now) {
            return Err(RedeemError::Invalid);
        }
        match self.get_key(&key_id).await? {
            Some(key)
                if key.account_id == record.account_id
                    && keys::is_usable(key.status, key.expires, now) =>
            {
                Ok(Redeemed::Repeat(key, salt))
            }
            _ => Err(RedeemError::Invalid),
        }
    }
}
