//! Consumes the `events` queue and tells tenants what happened. Today the
//! email channel (SES); webhooks and WhatsApp join here later.
//!
//! Each (channel, event) is claimed before its effect (see
//! `nuvem_aws::idempotency`), so an event delivered twice sends one email,
//! and a failed record is reported alone for redelivery (partial batch
//! failure); after `maxReceiveCount` the queue moves it to its DLQ.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use nuvem_aws::idempotency::Claim;
use nuvem_aws::mail::Mailer;
use nuvem_aws::queue::ACTIVATION_TOKEN_ATTRIBUTE;
use nuvem_aws::store::Store;
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::mail;

pub struct Deps {
    pub store: Store,
    pub mailer: Mailer,
    /// `<base>/activate?token=…` is the activation link.
    pub public_base_url: String,
}

const EMAIL_CHANNEL: &str = "fanout-email";
/// Longer than one email send takes, shorter than the queue's visibility.
const CLAIM_LEASE_SECS: i64 = 60;

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in &event.records {
        if let Err(e) = process(deps, record).await {
            let id = record.message_id.clone().unwrap_or_default();
            tracing::warn!(message_id = %id, error = %e, "record failed; it will be retried");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

async fn process(deps: &Deps, record: &SqsMessage) -> Result<(), String> {
    let body = record.body.as_deref().unwrap_or("");
    let event: Envelope =
        serde_json::from_str(body).map_err(|e| format!("not an event envelope: {e}"))?;
    let token = record
        .message_attributes
        .get(ACTIVATION_TOKEN_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref());
    email(deps, &event, token).await
}

async fn email(deps: &Deps, event: &Envelope, token: Option<&str>) -> Result<(), String> {
    if !matches!(
        event.event_type,
        EventType::AccountApproved
            | EventType::AccountActivationReissued
            | EventType::AccountRejected
            | EventType::QuotaThresholdCrossed
    ) {
        return Ok(());
    }
    let store = &deps.store;
    match store
        .claim(EMAIL_CHANNEL, &event.id, CLAIM_LEASE_SECS, Utc::now())
        .await
        .map_err(|e| e.to_string())?
    {
        Claim::Done => return Ok(()),
        Claim::Busy => return Err("another delivery of this event is being processed".into()),
        Claim::Acquired => {}
    }
    match send_email(deps, event, token).await {
        Ok(()) => store
            .finish(EMAIL_CHANNEL, &event.id)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => {
            if let Err(release) = store.release(EMAIL_CHANNEL, &event.id).await {
                tracing::error!(error = %release, "could not release claim; it expires with its lease");
            }
            Err(e)
        }
    }
}

async fn send_email(deps: &Deps, event: &Envelope, token: Option<&str>) -> Result<(), String> {
    let account = deps
        .store
        .get_account(&event.account_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("account {} not found", event.account_id))?;
    let message = match event.event_type {
        EventType::AccountApproved | EventType::AccountActivationReissued => {
            let Some(token) = token else {
                // Retrying cannot bring the token back; an operator must.
                tracing::error!(event_id = %event.id, "approval event without activation token");
                return Ok(());
            };
            let expires_at = event.data["activation_expires_at"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or(event.occurred_at + nuvem_domain::token::ACTIVATION_TTL);
            let url = format!(
                "{}/activate?token={token}",
                deps.public_base_url.trim_end_matches('/')
            );
            mail::activation_email(account.locale, &account.organization_name, &url, expires_at)
        }
        EventType::AccountRejected => {
            let reason = account.rejection_reason.as_deref().unwrap_or("");
            mail::rejection_email(account.locale, &account.organization_name, reason)
        }
        EventType::QuotaThresholdCrossed => quota_email(&account, &event.data)?,
        _ => return Ok(()),
    };
    deps.mailer
        .send(&account.email, &message)
        .await
        .map_err(|e| e.to_string())
}

/// The alert of a `quota.threshold_crossed` event, from its data.
fn quota_email(
    account: &nuvem_aws::store::AccountRecord,
    data: &serde_json::Value,
) -> Result<mail::Message, String> {
    let number = |name: &str| {
        data[name]
            .as_u64()
            .ok_or_else(|| format!("quota event without {name}"))
    };
    let level = u8::try_from(number("level_percent")?).map_err(|e| e.to_string())?;
    let biggest: Vec<(String, u64)> = data["biggest_buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| Some((b["name"].as_str()?.to_owned(), b["used_bytes"].as_u64()?)))
        .collect();
    Ok(mail::quota_email(
        account.locale,
        &account.organization_name,
        level,
        number("used_bytes")?,
        number("quota_bytes")?,
        &biggest,
    ))
}
