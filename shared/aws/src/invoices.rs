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
/// a detailed one of a large client a few MB).
pub const MAX_INVOICE_BYTES: u64 = 20 * 1024 * 1024;
/// How long a presigned URL of an invoice works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
pub const PDF: &str = "application/pdf";

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
        self.blobs
            .client()
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(PDF)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(InvoiceError::sdk)?;
        Ok(())
    }

    /// A GET of `key` that works for [`LINK_TTL`].
    pub async fn presigned_get(&self, key: &str) -> Result<PresignedUrl, InvoiceError> {
        let request = self
            .blobs
            .client()
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning()?)
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
            .presigned(presigning()?)
            .await
            .map_err(InvoiceError::sdk)?;
        Ok(PresignedUrl::new(request.uri()))
    }
}

fn presigning() -> Result<PresigningConfig, InvoiceError> {
    PresigningConfig::expires_in(LINK_TTL).map_err(|e| InvoiceError(e.to_string()))
}

/// Whether `bytes` start as a PDF does: `%PDF-` within the first 1,024
/// bytes, where readers look for it.
pub fn looks_like_pdf(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(1024)]
        .windows(5)
        .any(|w| w == b"%PDF-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pdf_is_known_by_its_header() {
        assert!(looks_like_pdf(b"%PDF-1.7\n..."));
        assert!(looks_like_pdf(b"\xef\xbb\xbf%PDF-1.4"));
        assert!(!looks_like_pdf(b"<html>%PDF"));
        assert!(!looks_like_pdf(b""));
        let mut late = vec![b' '; 1024];
        late.extend_from_slice(b"%PDF-1.7");
        assert!(!looks_like_pdf(&late));
    }
}
