//! Requests made once per client idempotency key: the key's record is
//! written in the same transaction as the request's effect, on condition
//! that the key is new (or expired), so two requests with one key cannot
//! both take effect, however they race.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{Duration, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::idempotency::{IdempotencyKey, KEY_RETENTION_HOURS};
use serde::Deserialize;

use super::{Item, Store, StoreError, n, s};
use crate::table_keys as k;

/// What a request sent with an idempotency key came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Once<T> {
    /// The key was new: the request took effect.
    Done,
    /// The key was used before for the same request: its first result
    /// (`None` if that result is no longer kept).
    Repeat(Option<T>),
    /// The key was used before for a different request.
    Mismatch,
}

#[derive(Deserialize)]
struct RequestKeyRecord {
    fingerprint: String,
    result: String,
}

const CUSTOM_EVENTS: &str = "events";

impl Store {
    /// Stores the account's custom `event` unless `key` already made one
    /// (then that one is the answer).
    pub async fn put_event_once(
        &self,
        event: &Envelope,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Once<Envelope>, StoreError> {
        let sk = k::request_key_sk(CUSTOM_EVENTS, &key.digest());
        let claim = self.request_key(&event.account_id, &sk, fingerprint, &event.id)?;
        match self
            .transact_checked(vec![claim, self.event_record(event)?])
            .await?
        {
            Ok(()) => Ok(Once::Done),
            Err(failed) if !failed[0] => Err(StoreError::Refused(failed)),
            Err(failed) => {
                let Some(first) = self
                    .get::<RequestKeyRecord>(k::account_pk(&event.account_id), &sk)
                    .await?
                else {
                    // Expired between the two calls: too rare to do more.
                    return Err(StoreError::Refused(failed));
                };
                if first.fingerprint != fingerprint {
                    return Ok(Once::Mismatch);
                }
                Ok(Once::Repeat(
                    self.get_event(&event.account_id, &first.result).await?,
                ))
            }
        }
    }

    /// The key's record, written only if the key is new or has expired
    /// (DynamoDB's TTL deletes expired items only eventually).
    fn request_key(
        &self,
        account_id: &str,
        sk: &str,
        fingerprint: &str,
        result: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let now = Utc::now();
        let expires = now + Duration::hours(KEY_RETENTION_HOURS);
        let item: Item = [
            (k::PK.to_owned(), s(k::account_pk(account_id))),
            (k::SK.to_owned(), s(sk)),
            ("fingerprint".to_owned(), s(fingerprint)),
            ("result".to_owned(), s(result)),
            (k::EXPIRES_AT.to_owned(), n(expires.timestamp())),
        ]
        .into_iter()
        .collect();
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #exp < :now")
            .expression_attribute_names("#exp", k::EXPIRES_AT)
            .expression_attribute_values(":now", n(now.timestamp()))
            .build()
            .map_err(StoreError::sdk)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}
