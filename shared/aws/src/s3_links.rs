//! Presigned S3 URLs signed by `aws-sigv4`, the SDK's own SigV4 signer,
//! without an S3 client. A function that only hands out links (`rpa`)
//! would otherwise link `aws-sdk-s3` and its checksum code (crc-fast's
//! tables) for nothing: 1.4 MB of its binary. The URLs are the SDK
//! presigner's, byte for byte (the tests compare them), so S3 checks them
//! the same way.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

use crate::rpa_api::PresignedUrl;

#[derive(Debug, thiserror::Error)]
#[error("presigning: {0}")]
pub struct LinkError(String);

fn fail(e: impl std::fmt::Display) -> LinkError {
    LinkError(e.to_string())
}

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Get,
    /// A PUT whose `Content-Type` is signed: the upload must send it.
    Put {
        content_type: &'static str,
    },
}

#[derive(Clone, Debug)]
pub struct S3Links {
    credentials: Option<SharedCredentialsProvider>,
    region: Option<String>,
    /// An endpoint override (the emulator): path-style URLs on it, as the
    /// S3 client uses there.
    endpoint: Option<String>,
}

impl S3Links {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        S3Links {
            credentials: sdk.credentials_provider(),
            region: sdk.region().map(|r| r.to_string()),
            endpoint: sdk
                .endpoint_url()
                .map(|e| e.trim_end_matches('/').to_owned()),
        }
    }

    /// A URL that lets its holder do `access` on `bucket`/`key` for `ttl`
    /// (at most 7 days; sooner if the credentials that sign it expire).
    pub async fn presign(
        &self,
        access: Access,
        bucket: &str,
        key: &str,
        ttl: Duration,
    ) -> Result<PresignedUrl, LinkError> {
        self.presign_at(access, bucket, key, ttl, SystemTime::now())
            .await
    }

    pub(crate) async fn presign_at(
        &self,
        access: Access,
        bucket: &str,
        key: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<PresignedUrl, LinkError> {
        let credentials = self
            .credentials
            .as_ref()
            .ok_or_else(|| fail("no credentials"))?
            .provide_credentials()
            .await
            .map_err(fail)?;
        let region = self.region.as_deref().ok_or_else(|| fail("no region"))?;
        let (method, operation) = match access {
            Access::Get => ("GET", "GetObject"),
            Access::Put { .. } => ("PUT", "PutObject"),
        };
        let url = format!("{}?x-id={operation}", self.object_url(bucket, key));
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.signature_location = SignatureLocation::QueryParams;
        settings.session_token_mode = SessionTokenMode::Include;
        settings.expires_in = Some(ttl);
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .map_err(fail)?
            .into();
        let headers: Vec<(&str, &str)> = match access {
            Access::Get => Vec::new(),
            Access::Put { content_type } => vec![("content-type", content_type)],
        };
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.into_iter(),
            SignableBody::UnsignedPayload,
        )
        .map_err(fail)?;
        let (instructions, _signature) = sign(signable, &params).map_err(fail)?.into_parts();
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .body(())
            .map_err(fail)?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(PresignedUrl::new(request.uri().to_string()))
    }

    /// Virtual-hosted style on AWS (`https://<bucket>.s3.<region>.amazonaws.com/<key>`),
    /// path style on an endpoint override.
    fn object_url(&self, bucket: &str, key: &str) -> String {
        let key = encode_key(key);
        match &self.endpoint {
            Some(endpoint) => format!("{endpoint}/{bucket}/{key}"),
            None => format!(
                "https://{bucket}.s3.{}.amazonaws.com/{key}",
                self.region.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// A key as a URL path: RFC 3986's unreserved characters and `/` as they
/// are, every other byte percent-encoded (as S3 and its SDK encode keys).
pub(crate) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sdk_s3::presigning::PresigningConfig;

    fn sdk(endpoint: Option<&str>, session_token: Option<&str>) -> aws_config::SdkConfig {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "tests",
        );
        let mut builder = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("sa-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(credentials));
        builder.set_endpoint_url(endpoint.map(str::to_owned));
        builder.build()
    }

    /// What the SDK's own presigner makes of the same request.
    async fn sdk_presigned(
        config: &aws_config::SdkConfig,
        access: Access,
        bucket: &str,
        key: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> String {
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(config)
                .force_path_style(config.endpoint_url().is_some())
                .build(),
        );
        let presigning = PresigningConfig::builder()
            .start_time(now)
            .expires_in(ttl)
            .build()
            .unwrap();
        let request = match access {
            Access::Get => client
                .get_object()
                .bucket(bucket)
                .key(key)
                .presigned(presigning)
                .await
                .unwrap(),
            Access::Put { content_type } => client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .presigned(presigning)
                .await
                .unwrap(),
        };
        request.uri().to_owned()
    }

    #[tokio::test]
    async fn links_are_the_sdk_presigners_byte_for_byte() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let cases = [
            (None, None, Access::Get, "acc_1/cli_2/2026-11.pdf", 900),
            (
                None,
                Some("FwoGZXIvYXdzEBYaD+session/token="),
                Access::Put {
                    content_type: "application/pdf",
                },
                "uploads/acc_1/prc_1_202611/upl_1.pdf",
                900,
            ),
            (
                Some("http://127.0.0.1:4566"),
                None,
                Access::Get,
                "exports/acc_1/exp_1/clients.csv",
                43_200,
            ),
            (
                Some("http://127.0.0.1:4566/"),
                Some("token"),
                Access::Put {
                    content_type: "application/pdf",
                },
                "a b/ç+&=?.pdf",
                60,
            ),
        ];
        for (endpoint, token, access, key, ttl) in cases {
            let config = sdk(endpoint, token);
            let ttl = Duration::from_secs(ttl);
            let ours = S3Links::new(&config)
                .presign_at(access, "nuvem-invoices", key, ttl, now)
                .await
                .unwrap();
            let theirs = sdk_presigned(&config, access, "nuvem-invoices", key, ttl, now).await;
            assert_eq!(ours.expose(), theirs, "{endpoint:?} {access:?} {key}");
        }
    }

    #[tokio::test]
    async fn without_credentials_or_region_there_is_no_link() {
        let bare = aws_config::SdkConfig::builder().build();
        let links = S3Links::new(&bare);
        let err = links
            .presign(Access::Get, "b", "k", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no credentials"), "{err}");
    }
}
