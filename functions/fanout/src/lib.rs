//! Consumes the `events` queue and tells tenants what happened: email (SES)
//! and webhooks (one delivery task per subscribed endpoint, for
//! `webhook-delivery`); WhatsApp joins here later.
//!
//! Each email is claimed before it is sent (see `nuvem_aws::idempotency`),
//! so an event delivered twice sends one email; webhook tasks carry a
//! delivery id derived from event and endpoint, so duplicates collapse in
//! `webhook-delivery`. A failed record is reported alone for redelivery
//! (partial batch failure); after `maxReceiveCount` the queue moves it to
//! its DLQ.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use nuvem_aws::deliveries::{DeliveryQueue, DeliveryTask};
use nuvem_aws::idempotency::Claim;
use nuvem_aws::mail::Mailer;
use nuvem_aws::queue::ACTIVATION_TOKEN_ATTRIBUTE;
use nuvem_aws::store::Store;
use nuvem_domain::events::{Envelope, EventName, EventType};
use nuvem_domain::mail;
use nuvem_domain::webhook::delivery::delivery_id;
use nuvem_domain::webhook::endpoint::subscribes;

pub struct Deps {
    pub store: Store,
    pub mailer: Mailer,
    pub deliveries: DeliveryQueue,
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
    // Both channels run even if one fails; a retry redoes only what is not
    // done (the email claim, the delivery ids).
    let (email, webhooks) = tokio::join!(email(deps, &event, token), webhooks(deps, &event));
    email.and(webhooks)
}

/// One delivery task per enabled endpoint of the account that subscribes to
/// the event: one query, then ten tasks per SQS request.
async fn webhooks(deps: &Deps, event: &Envelope) -> Result<(), String> {
    if event.event_type == EventName::Known(EventType::WebhookTest) {
        return Ok(());
    }
    let routes = deps
        .store
        .endpoint_routes(&event.account_id)
        .await
        .map_err(|e| e.to_string())?;
    let tasks: Vec<DeliveryTask> = routes
        .iter()
        .filter(|route| route.enabled && subscribes(&route.event_types, &event.event_type))
        .map(|route| DeliveryTask {
            delivery_id: delivery_id(&event.id, &route.id),
            endpoint_id: route.id.clone(),
            attempt: 1,
            not_before: None,
            event: event.clone(),
        })
        .collect();
    if tasks.is_empty() {
        return Ok(());
    }
    let failed = deps
        .deliveries
        .send_all(&tasks)
        .await
        .map_err(|e| e.to_string())?;
    if failed > 0 {
        return Err(format!(
            "{failed} of {} delivery tasks not queued",
            tasks.len()
        ));
    }
    Ok(())
}

async fn email(deps: &Deps, event: &Envelope, token: Option<&str>) -> Result<(), String> {
    let EventName::Known(event_type) = event.event_type else {
        return Ok(());
    };
    if !matches!(
        event_type,
        EventType::AccountApproved
            | EventType::AccountActivationReissued
            | EventType::AccountRejected
            | EventType::QuotaThresholdCrossed
            | EventType::WebhookEndpointDisabled
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
    let EventName::Known(event_type) = event.event_type else {
        return Ok(());
    };
    let message = match event_type {
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
        EventType::WebhookEndpointDisabled => mail::webhook_disabled_email(
            account.locale,
            &account.organization_name,
            event.data["url"].as_str().unwrap_or_default(),
            event.data["reason"] == "gone",
        ),
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
