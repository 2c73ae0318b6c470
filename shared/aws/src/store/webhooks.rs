//! Webhook endpoints, kept in their account's partition (`WEBHOOK#<id>`), so
//! that fan-out reads every endpoint of an account with one query and no
//! request can reach another account's endpoint.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::webhook::endpoint::EndpointSettings;
use serde::{Deserialize, Serialize};

use super::{
    Item, ListError, Listing, Page, Store, StoreError, condition_failed, holds, n, s,
    update_refused,
};
use crate::table_keys as k;

/// Most endpoints one account may have; fan-out sends one message per
/// subscribed endpoint, so this bounds the work one event can cause.
pub const MAX_ENDPOINTS_PER_ACCOUNT: u32 = 100;

/// How long the previous secret keeps signing after a rotation, so that
/// receivers can switch without dropping a delivery.
pub const ROTATION_OVERLAP: Duration = Duration::hours(24);

/// An endpoint as stored. Its signing secrets are stored sealed by KMS
/// (see [`crate::webhook::secrets`]) and only ever returned to the owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub id: String,
    pub account_id: String,
    #[serde(flatten)]
    pub settings: EndpointSettings,
    /// The signing secret (`whsec_…`), sealed.
    pub sealed_secret: String,
    /// The secret before the last rotation, sealed, signing too until it
    /// expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// When the current run of failed attempts began (none while healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// Why nuvem disabled the endpoint (410 Gone, failing for 5 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EndpointRecord {
    /// A new, healthy endpoint `id` of `account_id` whose secret, sealed
    /// for that id, is `sealed_secret`.
    pub fn new(
        id: String,
        account_id: &str,
        settings: EndpointSettings,
        sealed_secret: String,
        now: DateTime<Utc>,
    ) -> EndpointRecord {
        EndpointRecord {
            id,
            account_id: account_id.to_owned(),
            settings,
            sealed_secret,
            sealed_previous_secret: None,
            previous_secret_expires_at: None,
            failing_since: None,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The previous secret (sealed) and until when it signs, while a
    /// rotation's overlap lasts at `now`.
    pub fn overlapping_previous(&self, now: DateTime<Utc>) -> Option<(&str, DateTime<Utc>)> {
        match (
            &self.sealed_previous_secret,
            self.previous_secret_expires_at,
        ) {
            (Some(previous), Some(until)) if now < until => Some((previous, until)),
            _ => None,
        }
    }
}

/// What fan-out needs of an endpoint (no secret, no headers).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EndpointRoute {
    pub id: String,
    #[serde(default)]
    pub event_types: Vec<String>,
    pub enabled: bool,
    #[serde(default)]
    pub ordered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateEndpointError {
    /// The account has [`MAX_ENDPOINTS_PER_ACCOUNT`] endpoints already.
    TooMany,
    /// The account does not exist.
    NoAccount,
}

/// How a state change after an attempt applies to the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthChange {
    /// The attempt succeeded: the endpoint is no longer failing.
    Healthy,
    /// The attempt failed: the endpoint is failing since `now` unless it was already.
    Failing(DateTime<Utc>),
    /// Disable the endpoint for `reason`, with the event telling its owner.
    Disable { reason: String, event: Envelope },
}

impl Store {
    fn endpoint_item(&self, endpoint: &EndpointRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(endpoint)?;
        item.insert(k::PK.into(), s(k::account_pk(&endpoint.account_id)));
        item.insert(k::SK.into(), s(k::webhook_sk(&endpoint.id)));
        Ok(item)
    }

    /// Stores a new endpoint and counts it on its (active) account, in one
    /// transaction bounded by [`MAX_ENDPOINTS_PER_ACCOUNT`].
    pub async fn create_endpoint(
        &self,
        endpoint: &EndpointRecord,
    ) -> Result<Result<(), CreateEndpointError>, StoreError> {
        let count = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(&endpoint.account_id)))
            .key(k::SK, s(k::ACCOUNT_SK))
            .update_expression("ADD webhook_count :one")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(webhook_count) OR webhook_count < :max)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAX_ENDPOINTS_PER_ACCOUNT))
            .build()
            .map_err(StoreError::sdk)?;
        let items = vec![
            TransactWriteItem::builder().update(count).build(),
            self.put(
                self.endpoint_item(endpoint)?,
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(Ok(())),
            Err(failed) if failed.first() == Some(&true) => {
                let exists = self
                    .get::<serde_json::Value>(k::account_pk(&endpoint.account_id), k::ACCOUNT_SK)
                    .await?
                    .is_some();
                Ok(Err(if exists {
                    CreateEndpointError::TooMany
                } else {
                    CreateEndpointError::NoAccount
                }))
            }
            Err(failed) => Err(StoreError::Refused(failed)),
        }
    }

    pub async fn get_endpoint(
        &self,
        account_id: &str,
        webhook_id: &str,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        self.get(k::account_pk(account_id), &k::webhook_sk(webhook_id))
            .await
    }

    /// An account's endpoints, oldest first.
    pub async fn list_endpoints(
        &self,
        account_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<EndpointRecord>, ListError> {
        let listing = Listing::Prefix {
            pk: k::account_pk(account_id),
            sk_prefix: k::WEBHOOK_PREFIX,
            newest_first: false,
        };
        self.page(listing, limit, cursor).await
    }

    /// Every endpoint of an account, projected to what routing needs: one
    /// query (a page holds far more than [`MAX_ENDPOINTS_PER_ACCOUNT`]
    /// projected endpoints; further pages are followed all the same).
    pub async fn endpoint_routes(
        &self,
        account_id: &str,
    ) -> Result<Vec<EndpointRoute>, StoreError> {
        let query = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND begins_with(sk, :prefix)")
            .expression_attribute_values(":p", s(k::account_pk(account_id)))
            .expression_attribute_values(":prefix", s(k::WEBHOOK_PREFIX))
            .projection_expression("id, event_types, enabled, ordered");
        self.query_all(query, usize::MAX).await
    }

    /// Replaces an endpoint's settings (the caller merged and validated
    /// them) and nothing else, so that a concurrent health change or
    /// rotation is not overwritten. `reenabled` (a disabled endpoint turned
    /// on) clears the failure state and its 5-day clock; any other change
    /// keeps it. `None`: no such endpoint in this account.
    pub async fn update_endpoint_settings(
        &self,
        account_id: &str,
        webhook_id: &str,
        settings: &EndpointSettings,
        reenabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let values: Item = serde_dynamo::to_item(settings)?;
        let mut update = self
            .db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(account_id)))
            .key(k::SK, s(k::webhook_sk(webhook_id)))
            .condition_expression("attribute_exists(pk)")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        let mut sets = vec!["updated_at = :updated_at".to_owned()];
        update = update.expression_attribute_values(":updated_at", s(now.to_rfc3339()));
        // Absent optional settings (`NULL`) are removed below, not set.
        let values = values.into_iter().filter(|(_, value)| {
            !matches!(value, aws_sdk_dynamodb::types::AttributeValue::Null(_))
        });
        for (i, (name, value)) in values.enumerate() {
            sets.push(format!("#f{i} = :v{i}"));
            update = update
                .expression_attribute_names(format!("#f{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value);
        }
        // Absent optional settings (a removed rate limit) are removed.
        let mut removes = Vec::new();
        if settings.rate_limit_per_second.is_none() {
            removes.push("rate_limit_per_second");
        }
        if reenabled {
            removes.extend(["failing_since", "disabled_reason"]);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        match update.update_expression(expression).send().await {
            Ok(out) => Ok(Some(serde_dynamo::from_item(
                out.attributes.unwrap_or_default(),
            )?)),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(StoreError::sdk(e)),
        }
    }

    /// Makes `new_sealed_secret` the signing secret; the current one keeps
    /// signing until `previous_until`. The condition on the current secret
    /// makes two concurrent rotations one winner, never a lost secret.
    /// `None`: no such endpoint, or it was rotated meanwhile.
    pub async fn rotate_endpoint_secret(
        &self,
        endpoint: &EndpointRecord,
        new_sealed_secret: &str,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(&endpoint.account_id)))
            .key(k::SK, s(k::webhook_sk(&endpoint.id)))
            .update_expression(
                "SET sealed_secret = :new, sealed_previous_secret = :old, previous_secret_expires_at = :until, updated_at = :now",
            )
            .condition_expression("sealed_secret = :old")
            .expression_attribute_values(":new", s(new_sealed_secret))
            .expression_attribute_values(":old", s(&endpoint.sealed_secret))
            .expression_attribute_values(":until", s(previous_until.to_rfc3339()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(serde_dynamo::from_item(
                out.attributes.unwrap_or_default(),
            )?)),
            Err(e) => match update_refused(&e) {
                // The SDK's retry of this very rotation, whose first attempt
                // applied: the new secret is already the current one.
                Some(item) if holds(Some(&item), "sealed_secret", new_sealed_secret) => {
                    Ok(Some(serde_dynamo::from_item(item)?))
                }
                _ if condition_failed(&e) => Ok(None),
                _ => Err(StoreError::sdk(e)),
            },
        }
    }

    /// Deletes an endpoint and uncounts it. `Ok(false)`: no such endpoint.
    pub async fn delete_endpoint(
        &self,
        account_id: &str,
        webhook_id: &str,
    ) -> Result<bool, StoreError> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(account_id)))
            .key(k::SK, s(k::webhook_sk(webhook_id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(StoreError::sdk)?;
        let uncount = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(account_id)))
            .key(k::SK, s(k::ACCOUNT_SK))
            .update_expression("ADD webhook_count :minus_one")
            .condition_expression("webhook_count > :zero")
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(StoreError::sdk)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(uncount).build(),
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(true),
            Err(failed) if failed.first() == Some(&true) => Ok(false),
            Err(failed) => Err(StoreError::Refused(failed)),
        }
    }

    /// Applies what one attempt says about the endpoint's health; `true`
    /// when it disabled the endpoint and recorded the event (to be emitted
    /// by the caller). A success
    /// writes only when the endpoint was failing; a failure only sets the
    /// start of the failing run once; a disable carries its event (outbox).
    pub async fn record_endpoint_health(
        &self,
        endpoint: &EndpointRecord,
        change: HealthChange,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let key =
            |u: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder| {
                u.table_name(&self.table)
                    .key(k::PK, s(k::account_pk(&endpoint.account_id)))
                    .key(k::SK, s(k::webhook_sk(&endpoint.id)))
                    .condition_expression("attribute_exists(pk)")
            };
        let result = match change {
            HealthChange::Healthy if endpoint.failing_since.is_none() => return Ok(false),
            HealthChange::Healthy => {
                key(self.db.update_item())
                    .update_expression("REMOVE failing_since")
                    .send()
                    .await
            }
            HealthChange::Failing(_) if endpoint.failing_since.is_some() => return Ok(false),
            HealthChange::Failing(since) => {
                key(self.db.update_item())
                    .update_expression("SET failing_since = if_not_exists(failing_since, :since)")
                    .expression_attribute_values(":since", s(since.to_rfc3339()))
                    .send()
                    .await
            }
            HealthChange::Disable { reason, event } => {
                let disable = Update::builder()
                    .table_name(&self.table)
                    .key(k::PK, s(k::account_pk(&endpoint.account_id)))
                    .key(k::SK, s(k::webhook_sk(&endpoint.id)))
                    .update_expression(
                        "SET enabled = :false, disabled_reason = :reason, updated_at = :now",
                    )
                    .condition_expression("attribute_exists(pk) AND enabled = :true")
                    .expression_attribute_values(
                        ":false",
                        aws_sdk_dynamodb::types::AttributeValue::Bool(false),
                    )
                    .expression_attribute_values(
                        ":true",
                        aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                    )
                    .expression_attribute_values(":reason", s(reason))
                    .expression_attribute_values(":now", s(now.to_rfc3339()))
                    .build()
                    .map_err(StoreError::sdk)?;
                let items = vec![
                    TransactWriteItem::builder().update(disable).build(),
                    self.event_record(&event)?,
                ];
                // Refused: deleted or disabled meanwhile; nothing to tell.
                return Ok(self.transact_checked(items).await?.is_ok());
            }
        };
        match result {
            // Deleted meanwhile: nothing to record.
            Err(e) if condition_failed(&e) => Ok(false),
            other => other.map(|_| false).map_err(StoreError::sdk),
        }
    }
}
