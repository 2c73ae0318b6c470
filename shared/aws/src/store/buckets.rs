//! Tenant buckets: ownership claimed with a conditional write before the S3
//! bucket exists, so the record and S3 never disagree for long: a create
//! that fails halfway leaves a `creating` claim that a retry finishes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Item, ListError, Listing, Page, Store, StoreError, condition_failed, n, s};
use crate::table_keys as k;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketState {
    /// Claimed; the S3 bucket may not be fully set up yet.
    Creating,
    Ready,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// The tenant's name for it, unique within the account.
    pub name: String,
    /// The real S3 bucket name (deployment prefix, account tag, name).
    pub bucket: String,
    pub account_id: String,
    pub state: BucketState,
    #[serde(default)]
    pub imperius_license: bool,
    pub created_at: DateTime<Utc>,
}

/// Usage of one bucket, kept by `quota-alerts` from S3 notifications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketUsage {
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub objects: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketClaim {
    /// New, or an unfinished claim of this account: go on creating it.
    Proceed,
    /// The account already has a ready bucket of that name.
    Exists,
}

impl Store {
    /// Claims a bucket name for an account, or takes over its own unfinished
    /// claim (a retry after a failure halfway).
    pub async fn claim_bucket(&self, record: &BucketRecord) -> Result<BucketClaim, StoreError> {
        let mut item: Item = serde_dynamo::to_item(record)?;
        item.insert(k::PK.into(), s(k::bucket_pk(&record.bucket)));
        item.insert(k::SK.into(), s(k::BUCKET_SK));
        item.insert(
            k::GSI1PK.into(),
            s(k::buckets_of_account(&record.account_id)),
        );
        item.insert(k::GSI1SK.into(), s(&record.name));
        item.insert(k::GSI2PK.into(), s(k::ALL_BUCKETS));
        item.insert(k::GSI2SK.into(), s(&record.bucket));
        let result = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR (#st = :creating AND account_id = :acc)",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":creating", s("creating"))
            .expression_attribute_values(":acc", s(&record.account_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(BucketClaim::Proceed),
            Err(e) if condition_failed(&e) => Ok(BucketClaim::Exists),
            Err(e) => Err(StoreError::sdk(e)),
        }
    }

    pub async fn bucket_ready(&self, bucket: &str) -> Result<(), StoreError> {
        self.db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::bucket_pk(bucket)))
            .key(k::SK, s(k::BUCKET_SK))
            .update_expression("SET #st = :ready")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":ready", s("ready"))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    /// The account's bucket of that physical name, if it is the account's.
    pub async fn get_bucket(
        &self,
        account_id: &str,
        bucket: &str,
    ) -> Result<Option<BucketRecord>, StoreError> {
        let record: Option<BucketRecord> = self.get(k::bucket_pk(bucket), k::BUCKET_SK).await?;
        Ok(record.filter(|r| r.account_id == account_id))
    }

    pub async fn bucket_usage(&self, bucket: &str) -> Result<BucketUsage, StoreError> {
        Ok(self
            .get(k::bucket_pk(bucket), k::USAGE_SK)
            .await?
            .unwrap_or_default())
    }

    /// An account's buckets, by name.
    pub async fn list_buckets(
        &self,
        account_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<BucketRecord>, ListError> {
        let listing = Listing::Gsi1 {
            pk: k::buckets_of_account(account_id),
            newest_first: false,
        };
        self.page(listing, limit, cursor).await
    }

    /// Forgets a bucket of the account (after its S3 bucket is gone, or when
    /// its creation turned out impossible). A licensed bucket stays: its
    /// licence must be turned off first.
    pub async fn forget_bucket(&self, account_id: &str, bucket: &str) -> Result<bool, StoreError> {
        let result = self
            .db
            .delete_item()
            .table_name(&self.table)
            .key(k::PK, s(k::bucket_pk(bucket)))
            .key(k::SK, s(k::BUCKET_SK))
            .condition_expression("account_id = :acc AND imperius_license = :no")
            .expression_attribute_values(":acc", s(account_id))
            .expression_attribute_values(
                ":no",
                aws_sdk_dynamodb::types::AttributeValue::Bool(false),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk(e)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseChange {
    Changed,
    /// The bucket already had the licence in that state.
    Unchanged,
    /// Turning it on would exceed the account's contracted licences.
    NoneLeft,
    NotFound,
}

impl Store {
    /// Turns a bucket's Imperius licence on or off and moves the account's
    /// licences-in-use counter in the same transaction, conditioned on the
    /// contracted number: concurrent requests can never exceed it. The
    /// account's version moves too, so an admin change based on an older read
    /// (e.g. lowering the licences) fails its condition instead of racing.
    pub async fn set_bucket_license(
        &self,
        account_id: &str,
        bucket: &str,
        on: bool,
    ) -> Result<LicenseChange, StoreError> {
        use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
        let flip = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::bucket_pk(bucket)))
            .key(k::SK, s(k::BUCKET_SK))
            .update_expression("SET imperius_license = :on")
            .condition_expression("account_id = :acc AND imperius_license = :was")
            .expression_attribute_values(":on", AttributeValue::Bool(on))
            .expression_attribute_values(":was", AttributeValue::Bool(!on))
            .expression_attribute_values(":acc", s(account_id))
            .build()
            .map_err(StoreError::sdk)?;
        let mut count = Update::builder()
            .table_name(&self.table)
            .key(k::PK, s(k::account_pk(account_id)))
            .key(k::SK, s(k::ACCOUNT_SK))
            .update_expression("ADD licenses_in_use :delta, version :one")
            .expression_attribute_values(":delta", n(if on { 1 } else { -1 }))
            .expression_attribute_values(":one", n(1));
        count = if on {
            count.condition_expression("licenses_in_use < imperius_licenses")
        } else {
            count
                .condition_expression("licenses_in_use > :zero")
                .expression_attribute_values(":zero", n(0))
        };
        let count = count.build().map_err(StoreError::sdk)?;
        let items = vec![
            TransactWriteItem::builder().update(flip).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(LicenseChange::Changed),
            Err(failed) => match failed.as_slice() {
                [true, ..] => Ok(match self.get_bucket(account_id, bucket).await? {
                    Some(b) if b.imperius_license == on => LicenseChange::Unchanged,
                    _ => LicenseChange::NotFound,
                }),
                [false, true] => Ok(LicenseChange::NoneLeft),
                _ => Err(StoreError::Refused(failed.clone())),
            },
        }
    }

    /// Usage of many buckets in as few round trips as DynamoDB allows (100
    /// keys per BatchGetItem).
    pub async fn bucket_usages(
        &self,
        buckets: &[String],
    ) -> Result<std::collections::HashMap<String, BucketUsage>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut usages = std::collections::HashMap::new();
        for chunk in buckets.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|b| {
                    [
                        (k::PK.to_owned(), s(k::bucket_pk(b))),
                        (k::SK.to_owned(), s(k::USAGE_SK)),
                    ]
                    .into()
                })
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .build()
                    .map_err(StoreError::sdk)?,
            );
            while let Some(keys) = request.take() {
                let out = self
                    .db
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(StoreError::sdk)?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let bucket = item
                        .get(k::PK)
                        .and_then(|v| v.as_s().ok())
                        .and_then(|pk| k::bucket_of_pk(pk))
                        .map(str::to_owned);
                    if let Some(bucket) = bucket {
                        usages.insert(bucket, serde_dynamo::from_item(item)?);
                    }
                }
                request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
            }
        }
        Ok(usages)
    }
}

impl Store {
    /// The account a tenant bucket belongs to, if nuvem knows the bucket.
    pub async fn bucket_owner(&self, bucket: &str) -> Result<Option<String>, StoreError> {
        let record: Option<BucketRecord> = self.get(k::bucket_pk(bucket), k::BUCKET_SK).await?;
        Ok(record.map(|r| r.account_id))
    }
}
