//! The invoices bucket: one PDF per process at
//! `<account>/<client>/<YYYY-MM>.pdf`, written by `rpa-worker` (downloads)
//! or by a person through a presigned PUT, read only through presigned
//! GETs (by people, and by the RPA when it files the invoice).

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use crate::blobs::Blobs;
use crate::config::{self, ConfigError};
use crate::rpa_api::PresignedUrl;

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

#[derive(Clone, Debug)]
pub struct Invoices {
    blobs: Blobs,
    bucket: String,
}

impl Invoices {
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        Invoices {
            blobs: Blobs::new(sdk),
            bucket: bucket.into(),
        }
    }

    /// The bucket named by `INVOICES_BUCKET`.
    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(sdk, config::required(lookup, "INVOICES_BUCKET")?))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
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
        self.presign_get(&key, EXPORT_LINK_TTL).await
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), InvoiceError> {
        self.blobs
            .client()
            .put_object()
            .bucket(&self.bucket)
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
            .bucket(&self.bucket)
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
            .bucket(&self.bucket)
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

    /// Copies the object at `from` to `to` (as a PDF), within the bucket.
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), InvoiceError> {
        self.blobs
            .client()
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{}", self.bucket, urlencoding(from)))
            .key(to)
            .content_type(PDF)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .send()
            .await
            .map_err(InvoiceError::sdk)?;
        Ok(())
    }

    /// Deletes the object at `key` (nothing when there is none).
    pub async fn delete(&self, key: &str) -> Result<(), InvoiceError> {
        self.blobs
            .client()
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(InvoiceError::sdk)?;
        Ok(())
    }

    /// A GET of `key` that works for [`LINK_TTL`].
    pub async fn presigned_get(&self, key: &str) -> Result<PresignedUrl, InvoiceError> {
        self.presign_get(key, LINK_TTL).await
    }

    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<PresignedUrl, InvoiceError> {
        let request = self
            .blobs
            .client()
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(ttl)?)
            .await
            .map_err(InvoiceError::sdk)?;
        Ok(PresignedUrl::new(request.uri()))
    }

    /// A PUT of a PDF at `key` that works for [`LINK_TTL`]; the content type
    /// is signed, so the upload must send `Content-Type: application/pdf`.
    pub async fn presigned_put(&self, key: &str) -> Result<PresignedUrl, InvoiceError> {
        let request = self
            .blobs
            .client()
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(PDF)
            .presigned(presigning(LINK_TTL)?)
            .await
            .map_err(InvoiceError::sdk)?;
        Ok(PresignedUrl::new(request.uri()))
    }
}

/// `CopySource` is URL-encoded; nuvem's keys hold only ids, `/`, `-`, `_`
/// and `.`, which need none, so anything else is percent-encoded here.
fn urlencoding(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn presigning(ttl: Duration) -> Result<PresigningConfig, InvoiceError> {
    PresigningConfig::expires_in(ttl).map_err(|e| InvoiceError(e.to_string()))
}
