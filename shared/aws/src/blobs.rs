//! Tenant buckets in S3: created private, tagged with their account, and
//! wired to the `s3-events` queue so that usage is kept from notifications.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    Event, NotificationConfiguration, PublicAccessBlockConfiguration, QueueConfiguration, Tag,
    Tagging,
};

use crate::lazy::OnFirstUse;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The name is taken in S3 by someone outside this deployment.
    #[error("the bucket name is taken")]
    NameTaken,
    #[error("the bucket is not empty")]
    NotEmpty,
    #[error("s3: {0}")]
    S3(String),
    /// S3 was slow, unreachable, throttling or failing: the same call may
    /// pass later.
    #[error("s3 unavailable: {0}")]
    Unavailable(String),
}

fn s3_error<E>(e: aws_sdk_s3::error::SdkError<E>) -> BlobError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    crate::sdk_error::classify(e, BlobError::Unavailable, BlobError::S3)
}

impl crate::sdk_error::Unavailable for BlobError {
    fn is_unavailable(&self) -> bool {
        matches!(self, BlobError::Unavailable(_))
    }
}

/// The notifications that keep usage exact (see `nuvem_domain::usage`).
const NOTIFIED: [&str; 3] = [
    "s3:ObjectCreated:*",
    "s3:ObjectRemoved:*",
    "s3:LifecycleExpiration:*",
];

/// An object as ListObjectsV2 shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    /// Epoch seconds.
    pub last_modified: i64,
}

/// One page of a listing and S3's token for the next, if there is one.
#[derive(Debug, Clone, Default)]
pub struct ObjectPage {
    pub objects: Vec<ListedObject>,
    pub next: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Blobs {
    s3: OnFirstUse<Client>,
}

impl Blobs {
    /// Path-style addressing when `AWS_ENDPOINT_URL` points at an emulator
    /// (it serves every bucket on one host); virtual-hosted on AWS.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Blobs {
            s3: OnFirstUse::new(config, |config| {
                let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some()
                    || config.endpoint_url().is_some();
                Client::from_conf(
                    aws_sdk_s3::config::Builder::from(config)
                        .force_path_style(path_style)
                        .build(),
                )
            }),
        }
    }

    pub fn client(&self) -> &Client {
        self.s3.get()
    }

    /// Creates (or, on a retry, finishes creating) a private bucket tagged
    /// with its account and notifying `queue_arn`. Every step is idempotent.
    pub async fn create_tenant_bucket(
        &self,
        bucket: &str,
        account_id: &str,
        queue_arn: &str,
    ) -> Result<(), BlobError> {
        match self.s3.get().create_bucket().bucket(bucket).send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {}
            Err(e) if e.code() == Some("BucketAlreadyExists") => return Err(BlobError::NameTaken),
            Err(e) => return Err(s3_error(e)),
        }
        let block = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        self.s3
            .get()
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(block)
            .send()
            .await
            .map_err(s3_error)?;
        let tag = Tag::builder()
            .key("nuvem:account")
            .value(account_id)
            .build()
            .map_err(|e| BlobError::S3(e.to_string()))?;
        let tagging = Tagging::builder()
            .tag_set(tag)
            .build()
            .map_err(|e| BlobError::S3(e.to_string()))?;
        self.s3
            .get()
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(tagging)
            .send()
            .await
            .map_err(s3_error)?;
        let queue = QueueConfiguration::builder()
            .id("nuvem-usage")
            .queue_arn(queue_arn)
            .set_events(Some(NOTIFIED.iter().map(|e| Event::from(*e)).collect()))
            .build()
            .map_err(|e| BlobError::S3(e.to_string()))?;
        self.s3
            .get()
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(queue)
                    .build(),
            )
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    /// One page of a bucket's objects in key order (UTF-8 byte order), keys
    /// decoded: from S3's `continuation` token, or else after `start_after`.
    pub async fn list_objects(
        &self,
        bucket: &str,
        continuation: Option<&str>,
        start_after: Option<&str>,
        max_keys: i32,
    ) -> Result<ObjectPage, BlobError> {
        let mut request = self
            .s3
            .get()
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(max_keys)
            .set_continuation_token(continuation.map(str::to_owned));
        if continuation.is_none() {
            request = request.set_start_after(start_after.map(str::to_owned));
        }
        let out = request.send().await.map_err(s3_error)?;
        let objects = out
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| {
                Some(ListedObject {
                    size: u64::try_from(o.size.unwrap_or(0)).unwrap_or(0),
                    last_modified: o.last_modified.map_or(0, |t| t.secs()),
                    key: o.key?,
                })
            })
            .collect();
        let next = if out.is_truncated == Some(true) {
            out.next_continuation_token
        } else {
            None
        };
        Ok(ObjectPage { objects, next })
    }

    /// Deletes an empty bucket; a bucket that is already gone is fine.
    pub async fn delete_empty_bucket(&self, bucket: &str) -> Result<(), BlobError> {
        match self.s3.get().delete_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchBucket") => Ok(()),
            Err(e) if e.code() == Some("BucketNotEmpty") => Err(BlobError::NotEmpty),
            Err(e) => Err(s3_error(e)),
        }
    }
}
