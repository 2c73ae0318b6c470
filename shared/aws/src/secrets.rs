//! Secrets nuvem must use again (webhook signing secrets, and later outside
//! credentials) are stored sealed by KMS, never in plaintext: the table, its
//! backups and exports, and anyone who can read them see only ciphertext.
//!
//! Each value is sealed under an encryption context naming what it belongs
//! to (purpose, account, subject). KMS refuses to open it under any other,
//! so a ciphertext copied onto another record, or another account's, does
//! not open there.
//!
//! Opened values are kept in memory for the life of the instance (bounded),
//! so a warm function opens each secret once, not once per use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::config::{self, ConfigError};
use crate::lazy::OnFirstUse;

/// Opened values kept per instance; past this the memory is cleared (a
/// Lambda instance of `webhook-delivery` sees far fewer endpoints).
const OPENED_CAPACITY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("kms: {0}")]
    Kms(String),
    /// KMS was slow, unreachable, throttling or failing: the same call may
    /// pass later.
    #[error("kms unavailable: {0}")]
    Unavailable(String),
    #[error("sealed value is malformed: {0}")]
    Malformed(String),
}

fn kms_error<E>(
    e: aws_sdk_kms::error::SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
) -> SealError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    crate::sdk_error::classify(e, SealError::Unavailable, SealError::Kms)
}

impl crate::sdk_error::Unavailable for SealError {
    fn is_unavailable(&self) -> bool {
        matches!(self, SealError::Unavailable(_))
    }
}

/// The purpose of sealed WhatsApp access tokens (the template's KMS policy
/// names it).
pub const WHATSAPP_ACCESS_TOKEN: &str = "whatsapp-access-token";

/// The purpose of sealed carrier-portal passwords of RPA clients.
pub const RPA_PORTAL_PASSWORD: &str = "rpa-portal-password";

/// What a sealed value belongs to: KMS's encryption context.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SealContext {
    purpose: &'static str,
    account_id: String,
    subject: String,
}

impl SealContext {
    /// The signing secret of webhook endpoint `webhook_id` of `account_id`.
    pub fn webhook_secret(account_id: &str, webhook_id: &str) -> Self {
        SealContext {
            purpose: "webhook-signing-secret",
            account_id: account_id.to_owned(),
            subject: webhook_id.to_owned(),
        }
    }

    /// The Graph API access token of WhatsApp number `phone_number_id` of
    /// `account_id`.
    pub fn whatsapp_access_token(account_id: &str, phone_number_id: &str) -> Self {
        SealContext {
            purpose: WHATSAPP_ACCESS_TOKEN,
            account_id: account_id.to_owned(),
            subject: phone_number_id.to_owned(),
        }
    }

    /// The carrier-portal password of RPA client `client_id` of
    /// `account_id`.
    pub fn rpa_portal_password(account_id: &str, client_id: &str) -> Self {
        SealContext {
            purpose: RPA_PORTAL_PASSWORD,
            account_id: account_id.to_owned(),
            subject: client_id.to_owned(),
        }
    }

    fn pairs(&self) -> HashMap<String, String> {
        HashMap::from([
            ("nuvem:purpose".to_owned(), self.purpose.to_owned()),
            ("nuvem:account".to_owned(), self.account_id.clone()),
            ("nuvem:subject".to_owned(), self.subject.clone()),
        ])
    }
}

/// Values opened so far, by what they were sealed for and their sealed form
/// (both: a ciphertext must not open under another context from memory).
type Opened = HashMap<(SealContext, String), Arc<str>>;

/// Seals and opens values with one KMS key (`SECRETS_KEY_ID`).
#[derive(Clone)]
pub struct Sealer {
    kms: OnFirstUse<Client>,
    key_id: String,
    opened: Arc<Mutex<Opened>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the opened values.
        f.debug_struct("Sealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn new(sdk: &aws_config::SdkConfig, key_id: impl Into<String>) -> Self {
        Sealer {
            kms: OnFirstUse::new(sdk, Client::new),
            key_id: key_id.into(),
            opened: Arc::default(),
        }
    }

    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(sdk, config::required(lookup, "SECRETS_KEY_ID")?))
    }

    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Self::from_lookup(sdk, &|name| std::env::var(name).ok())
    }

    /// The sealed form of `plaintext` (base64 of KMS's ciphertext blob).
    pub async fn seal(&self, plaintext: &str, context: &SealContext) -> Result<String, SealError> {
        let out = self
            .kms
            .get()
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext.as_bytes()))
            .set_encryption_context(Some(context.pairs()))
            .send()
            .await
            .map_err(kms_error)?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| SealError::Kms("no ciphertext".into()))?;
        Ok(BASE64.encode(blob.as_ref()))
    }

    /// The plaintext of a value sealed under `context`.
    pub async fn open(&self, sealed: &str, context: &SealContext) -> Result<Arc<str>, SealError> {
        let memo = (context.clone(), sealed.to_owned());
        if let Some(hit) = self.opened().get(&memo) {
            return Ok(hit.clone());
        }
        let blob = BASE64
            .decode(sealed)
            .map_err(|e| SealError::Malformed(e.to_string()))?;
        let out = self
            .kms
            .get()
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(blob))
            .set_encryption_context(Some(context.pairs()))
            .send()
            .await
            .map_err(kms_error)?;
        let plaintext = out
            .plaintext
            .ok_or_else(|| SealError::Kms("no plaintext".into()))?;
        let plaintext: Arc<str> = String::from_utf8(plaintext.into_inner())
            .map_err(|e| SealError::Malformed(e.to_string()))?
            .into();
        let mut opened = self.opened();
        if opened.len() >= OPENED_CAPACITY {
            opened.clear();
        }
        opened.insert(memo, plaintext.clone());
        Ok(plaintext)
    }

    fn opened(&self) -> std::sync::MutexGuard<'_, Opened> {
        // A poisoned memo is still a valid map: a panic cannot leave it half-written.
        self.opened.lock().unwrap_or_else(|e| e.into_inner())
    }
}
