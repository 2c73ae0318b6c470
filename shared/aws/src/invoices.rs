//! The invoices bucket: one PDF per process at
//! `<account>/<client>/<YYYY-MM>.pdf`, written by `rpa-worker` (downloads)
//! or by a person through a presigned PUT, read only through presigned
//! GETs (by people, and by the RPA when it files the invoice).

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use crate::blobs::Blobs;
use crate::config::{self, ConfigError};
use crate::rpa_api::PresignedUrl;
use crate::s3_links::{Access, S3Links, encode_key};

/// The largest invoice nuvem keeps (a carrier's invoice is a few hundred KB;
/// a detailed one of a large client a few MB), downloaded or uploaded.
pub const MAX_INVOICE_BYTES: u64 = nuvem_domain::rpa::upload::MAX_UPLOAD_BYTES;
/// How long a presigned URL of an invoice works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// How long the links of an export work; a presigned URL also stops
/// working when the temporary credentials that signed it expire, which
/// may come first.
pub const EXPORT_LINK_TTL: Duration = Duration::from_secs(12 * 60 * 60);
pub const PDF: &str = "application/pdf";
const CSV: &str = "text/csv; charset=utf-8";

pub use nuvem_domain::rpa::upload::looks_like_pdf;

#[derive(Debug, thiserror::Error)]
#[error("s3: {0}")]
pub struct InvoiceError(String);

impl InvoiceError {
    fn sdk<E: std::error::Error>(e: E) -> Self {
        InvoiceError(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
    }
}

/// The bucket named by `INVOICES_BUCKET`.
fn bucket_from(lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    config::required(lookup, "INVOICES_BUCKET")
}

/// Presigned links to the invoices bucket, without an S3 client (see
/// [`crate::s3_links`]): all that `rpa` needs.
#[derive(Clone, Debug)]
pub struct InvoiceLinks {
    links: S3Links,
    bucket: String,
}

impl InvoiceLinks {
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        InvoiceLinks {
            links: S3Links::new(sdk),
            bucket: bucket.into(),
        }
    }

    /// The bucket named by `INVOICES_BUCKET`.
    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(sdk, bucket_from(lookup)?))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A GET of `key` that works for [`LINK_TTL`].
    pub async fn presigned_get(&self, key: &str) -> Result<PresignedUrl, InvoiceError> {
        self.get_for(key, LINK_TTL).await
    }

    async fn get_for(&self, key: &str, ttl: Duration) -> Result<PresignedUrl, InvoiceError> {
        self.links
            .presign(Access::Get, &self.bucket, key, ttl)
            .await
            .map_err(|e| InvoiceError(e.to_string()))
    }

    /// A PUT of a PDF at `key` that works for [`LINK_TTL`]; the content type
    /// is signed, so the upload must send `Content-Type: application/pdf`.
    pub async fn presigned_put(&self, key: &str) -> Result<PresignedUrl, InvoiceError> {
        self.links
            .presign(
                Access::Put { content_type: PDF },
                &self.bucket,
                key,
                LINK_TTL,
            )
            .await
            .map_err(|e| InvoiceError(e.to_string()))
    }
}

/// The invoices bucket through the S3 client, for the functions that
/// write to it, with its links.
#[derive(Clone, Debug)]
pub struct Invoices {
    blobs: Blobs,
    links: InvoiceLinks,
}

impl Invoices {
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        Invoices {
            blobs: Blobs::new(sdk),
            links: InvoiceLinks::new(sdk, bucket),
        }
    }

    /// The bucket named by `INVOICES_BUCKET`.
    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(sdk, bucket_from(lookup)?))
    }

    pub fn bucket(&self) -> &str {
        self.links.bucket()
    }

    pub fn links(&self) -> &InvoiceLinks {
        &self.links
    }

    /// Stores a PDF (replacing the one at `key`, if any).
    pub async fn put_pdf(&self, key: &str, bytes: Vec<u8>) -> Result<(), InvoiceError> {
        self.put(key, bytes, PDF).await
    }

    /// Stores a file of an export at `exports/<account>/<export>/<name>`
    /// (the bucket's lifecycle deletes them after two days) and answers a
    /// GET of it that works for [`EXPORT_LINK_TTL`].
    pub async fn put_export(
        &self,
        account_id: &str,
        export_id: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<PresignedUrl, InvoiceError> {
        let key = format!("exports/{account_id}/{export_id}/{name}");
        self.put(&key, bytes, CSV).await?;
        self.links.get_for(&key, EXPORT_LINK_TTL).await
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), InvoiceError> {
        self.blobs
            .client()
            .put_object()
            .bucket(self.bucket())
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(InvoiceError::sdk)?;
        Ok(())
    }

    /// The size of the object at `key`; `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, InvoiceError> {
        match self
            .blobs
            .client()
            .head_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(InvoiceError::sdk(e)),
        }
    }

    /// The first `n` bytes of the object at `key` (fewer when it is shorter).
    pub async fn head_bytes(&self, key: &str, n: u64) -> Result<Vec<u8>, InvoiceError> {
        let out = self
            .blobs
            .client()
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .range(format!("bytes=0-{}", n.saturating_sub(1)))
            .send()
            .await
            .map_err(InvoiceError::sdk)?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| InvoiceError(e.to_string()))?;
        let mut bytes = bytes.into_bytes().to_vec();
        bytes.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        Ok(bytes)
    }

    /// Copies the object at `from` to `to` (as a PDF), within the bucket;
    /// `false` when there is nothing at `from`.
    pub async fn copy(&self, from: &str, to: &str) -> Result<bool, InvoiceError> {
        let copied = self
            .blobs
            .client()
            .copy_object()
            .bucket(self.bucket())
            .copy_source(format!("{}/{}", self.bucket(), encode_key(from)))
            .key(to)
            .content_type(PDF)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .send()
            .await;
        match copied {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().and_then(|e| e.code()) == Some("NoSuchKey") => Ok(false),
            Err(e) => Err(InvoiceError::sdk(e)),
        }
    }

    /// Deletes the object at `key` (nothing when there is none).
    pub async fn delete(&self, key: &str) -> Result<(), InvoiceError> {
        self.blobs
            .client()
            .delete_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .map_err(InvoiceError::sdk)?;
        Ok(())
    }
}
