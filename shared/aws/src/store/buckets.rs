//! Tenant buckets: ownership claimed with a conditional write before the S3
//! bucket exists, so the record and S3 never disagree for long: a create
//! that fails halfway leaves a `creating` claim that a retry finishes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Item, ListError, Listing, Page, Store, StoreError, condition_failed, s};
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
        let listing = Listing::Gsi1(k::buckets_of_account(account_id));
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
