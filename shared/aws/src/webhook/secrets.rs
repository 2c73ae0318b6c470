//! An endpoint's signing secrets: sealed for the endpoint when set, opened
//! when a delivery is signed or the owner reads them.

use chrono::{DateTime, Utc};
use nuvem_domain::webhook::signature::WebhookSecret;

use crate::secrets::{SealContext, SealError, Sealer};
use crate::store::EndpointRecord;

/// An endpoint's secrets in the clear, for signing or for its owner.
#[derive(Clone)]
pub struct OpenSecrets {
    pub current: WebhookSecret,
    /// The secret before the last rotation, while it still signs.
    pub previous: Option<(WebhookSecret, DateTime<Utc>)>,
}

impl OpenSecrets {
    /// The secrets a delivery is signed with: the current one and, during a
    /// rotation's overlap, the previous one.
    pub fn signing(&self) -> Vec<&WebhookSecret> {
        let mut secrets = vec![&self.current];
        secrets.extend(self.previous.as_ref().map(|(s, _)| s));
        secrets
    }
}

/// `secret` sealed for endpoint `webhook_id` of `account_id`.
pub async fn seal(
    sealer: &Sealer,
    account_id: &str,
    webhook_id: &str,
    secret: &WebhookSecret,
) -> Result<String, SealError> {
    sealer
        .seal(
            &secret.to_string_form(),
            &SealContext::webhook_secret(account_id, webhook_id),
        )
        .await
}

/// The endpoint's secrets that sign at `now`, opened.
pub async fn open(
    sealer: &Sealer,
    endpoint: &EndpointRecord,
    now: DateTime<Utc>,
) -> Result<OpenSecrets, SealError> {
    let context = SealContext::webhook_secret(&endpoint.account_id, &endpoint.id);
    let parse = |opened: &str| {
        WebhookSecret::parse(opened).map_err(|e| SealError::Malformed(e.to_string()))
    };
    let current = parse(&sealer.open(&endpoint.sealed_secret, &context).await?)?;
    let previous = match endpoint.overlapping_previous(now) {
        Some((sealed, until)) => Some((parse(&sealer.open(sealed, &context).await?)?, until)),
        None => None,
    };
    Ok(OpenSecrets { current, previous })
}
