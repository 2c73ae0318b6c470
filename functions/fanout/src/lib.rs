//! Consumes the `events` queue and tells tenants what happened: email (SES),
//! webhooks (one delivery task per subscribed endpoint, for
//! `webhook-delivery`) and, for accounts that chose them, WhatsApp notices
//! (an approved template, sent by `whatsapp-outbound`).
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
use nuvem_aws::idempotency::{Claim, Delivery};
use nuvem_aws::mail::Mailer;
use nuvem_aws::queue::ACTIVATION_TOKEN_ATTRIBUTE;
use nuvem_aws::storage_access::StorageAccess;
use nuvem_aws::store::{OutboundRecord, Store};
use nuvem_aws::whatsapp_jobs::{OutboundQueue, queue_if_waiting};
use nuvem_domain::account::AccountStatus;
use nuvem_domain::events::{Envelope, EventName, EventType};
use nuvem_domain::mail;
use nuvem_domain::webhook::delivery::delivery_id;
use nuvem_domain::webhook::endpoint::subscribes;
use nuvem_domain::whatsapp::identity::{CustomerIds, Recipient};
use nuvem_domain::whatsapp::notices;
use nuvem_domain::whatsapp::outbound::{Origin, OutboundContent};
use nuvem_domain::whatsapp::store::Slot;

pub struct Deps {
    pub store: Store,
    pub mailer: Mailer,
    pub deliveries: DeliveryQueue,
    /// WhatsApp notices to send.
    pub outbound: OutboundQueue,
    /// `<base>/activate?token=…` is the activation link.
    pub public_base_url: String,
    /// The storage keys' policies, which follow the hard quota.
    pub access: StorageAccess,
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
    let Some(event) = nuvem_aws::runtime::read_body::<Envelope>(record, "event envelope") else {
        return Ok(());
    };
    let token = record
        .message_attributes
        .get(ACTIVATION_TOKEN_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref());
    // Both channels run even if one fails; a retry redoes only what is not
    // done (the email claim, the delivery ids).
    let (email, webhooks, whatsapp, keys) = tokio::join!(
        email(deps, &event, token, Delivery::of(record)),
        webhooks(deps, &event),
        whatsapp_notice(deps, &event),
        storage_keys(deps, &event)
    );
    email.and(webhooks).and(whatsapp).and(keys)
}

/// The hard quota's effect on the account's storage keys: their policies
/// are brought to the state recorded with the account's usage (not the
/// event's), so that a late or repeated event changes nothing.
async fn storage_keys(deps: &Deps, event: &Envelope) -> Result<(), String> {
    if !matches!(
        event.event_type,
        EventName::Known(EventType::QuotaWritesBlocked | EventType::QuotaWritesRestored)
    ) {
        return Ok(());
    }
    let usage = deps
        .store
        .account_usage(&event.account_id)
        .await
        .map_err(|e| e.to_string())?;
    let changed = deps
        .access
        .set_writes_blocked(&deps.store, &event.account_id, usage.writes_blocked)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(account_id = %event.account_id, writes_blocked = usage.writes_blocked, changed, "storage keys follow the hard quota");
    Ok(())
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

/// The account's WhatsApp notice of `event`, when it chose a template for
/// its type: recorded once per event (its id derives from the event's) in
/// the recipient's conversation and queued for `whatsapp-outbound`.
async fn whatsapp_notice(deps: &Deps, event: &Envelope) -> Result<(), String> {
    let EventName::Known(event_type) = event.event_type else {
        return Ok(());
    };
    if !notices::NOTICE_TYPES.contains(&event_type) {
        return Ok(());
    }
    let store = &deps.store;
    let err = |e: nuvem_aws::store::StoreError| e.to_string();
    let Some(chosen) = store
        .get_whatsapp_notices(&event.account_id)
        .await
        .map_err(err)?
    else {
        return Ok(());
    };
    let settings = &chosen.settings;
    let Some(template) = settings.template_for(event) else {
        return Ok(());
    };
    let id = notices::notice_id(&event.id);
    let queue = |m| async move {
        queue_if_waiting(&deps.outbound, &m)
            .await
            .map_err(|e| e.to_string())
    };
    if let Some(existing) = store
        .get_outbound(&event.account_id, &id)
        .await
        .map_err(err)?
    {
        return queue(existing).await;
    }
    let slot = Slot::new(settings.slot).ok_or("stored notice slot out of range")?;
    let Some(number) = store
        .get_whatsapp_number(&event.account_id, &settings.store_id, slot)
        .await
        .map_err(err)?
    else {
        tracing::warn!(event_id = %event.id, "WhatsApp notice not sent: its slot is empty");
        return Ok(());
    };
    let now = Utc::now();
    let Some(conversation) = store
        .resolve_conversation(
            &event.account_id,
            &settings.store_id,
            &CustomerIds::new(Some(&settings.to), None),
            None,
            now,
        )
        .await
        .map_err(err)?
    else {
        return Ok(());
    };
    let notice = OutboundRecord::queued(
        id,
        &conversation,
        &number.settings.phone_number_id,
        Recipient::Phone(settings.to.clone()),
        OutboundContent::Template {
            name: template.name.clone(),
            language: template.language.clone(),
            parameters: notices::parameters(event),
        },
        Origin::Notice,
        now,
    );
    if store.create_outbound(&notice).await.map_err(err)? {
        queue(notice).await?;
    }
    Ok(())
}

async fn email(
    deps: &Deps,
    event: &Envelope,
    token: Option<&str>,
    delivery: Option<Delivery<'_>>,
) -> Result<(), String> {
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
            | EventType::RpaProcessStatusChanged
            | EventType::RpaSchedulePaused
            | EventType::RpaReportGenerated
            | EventType::RpaExportCompleted
            | EventType::QuotaWritesBlocked
            | EventType::QuotaWritesRestored
    ) {
        return Ok(());
    }
    let store = &deps.store;
    match store
        .claim(
            EMAIL_CHANNEL,
            &event.id,
            CLAIM_LEASE_SECS,
            Utc::now(),
            delivery,
        )
        .await
        .map_err(|e| e.to_string())?
    {
        Claim::Done | Claim::HeldByAnotherMessage => return Ok(()),
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

/// The link of an approval that reached fanout without its token (the
/// outbox relay's copy, when the request's own send never happened: the
/// token travels only in that message). A new token is issued, as the
/// admin's reissue would; the lost one stays unknown and expires. None
/// when the account no longer waits for activation.
async fn replacement_activation(
    deps: &Deps,
    account: &nuvem_aws::store::AccountRecord,
) -> Result<Option<(String, DateTime<Utc>)>, String> {
    if account.activated_at.is_some() || account.status != AccountStatus::Active {
        tracing::info!(account_id = %account.id, "approval without its token for an account that waits for no activation");
        return Ok(None);
    }
    let (token, expires_at) = deps
        .store
        .put_new_activation(&account.id, Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    tracing::warn!(account_id = %account.id, "approval relayed without its token: a new activation link is sent");
    Ok(Some((token.expose().to_owned(), expires_at)))
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
            let (token, expires_at) = match token {
                Some(token) => {
                    let expires_at = event.data["activation_expires_at"]
                        .as_str()
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .map(|d| d.with_timezone(&Utc))
                        .unwrap_or_else(|| {
                            nuvem_domain::token::activation_expires_at(event.occurred_at)
                        });
                    (token.to_owned(), expires_at)
                }
                None => match replacement_activation(deps, &account).await? {
                    Some(replacement) => replacement,
                    None => return Ok(()),
                },
            };
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
        EventType::QuotaWritesBlocked | EventType::QuotaWritesRestored => {
            mail::writes_blocked_email(
                account.locale,
                &account.organization_name,
                event_type == EventType::QuotaWritesBlocked,
                event.data["used_bytes"].as_u64().unwrap_or_default(),
                event.data["quota_bytes"].as_u64().unwrap_or_default(),
            )
        }
        EventType::WebhookEndpointDisabled => mail::webhook_disabled_email(
            account.locale,
            &account.organization_name,
            event.data["url"].as_str().unwrap_or_default(),
            event.data["reason"] == "gone",
        ),
        EventType::RpaProcessStatusChanged => rpa_process_email(&account, &event.data)?,
        EventType::RpaSchedulePaused => mail::rpa_schedule_paused_email(
            account.locale,
            &account.organization_name,
            event.data["name"].as_str().unwrap_or_default(),
            event.data["consecutive_failures"]
                .as_u64()
                .unwrap_or_default(),
            event.data["last_error"].as_str().unwrap_or_default(),
        ),
        EventType::RpaReportGenerated => {
            let report = serde_json::from_value(event.data.clone())
                .map_err(|e| format!("report event without its report: {e}"))?;
            mail::rpa_report_email(account.locale, &account.organization_name, &report)
        }
        EventType::RpaExportCompleted => {
            #[derive(serde::Deserialize)]
            struct Export {
                files: Vec<nuvem_domain::rpa::export::ExportedFile>,
                expires_at: DateTime<Utc>,
            }
            let export: Export = serde_json::from_value(event.data.clone())
                .map_err(|e| format!("export event without its files: {e}"))?;
            mail::rpa_export_email(
                account.locale,
                &account.organization_name,
                &export.files,
                export.expires_at,
            )
        }
        _ => return Ok(()),
    };
    deps.mailer
        .send(&account.email, &message)
        .await
        .map_err(|e| e.to_string())
}

/// The notice of an `rpa.process.status_changed` event, from its data.
fn rpa_process_email(
    account: &nuvem_aws::store::AccountRecord,
    data: &serde_json::Value,
) -> Result<mail::Message, String> {
    let text = |name: &str| {
        data[name]
            .as_str()
            .ok_or_else(|| format!("process event without {name}"))
    };
    let status = text("to")?
        .parse()
        .map_err(|e: nuvem_domain::validation::UnknownVariant| e.to_string())?;
    Ok(mail::rpa_process_email(
        account.locale,
        &account.organization_name,
        text("legal_name")?,
        text("carrier")?,
        text("month")?,
        status,
    ))
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
