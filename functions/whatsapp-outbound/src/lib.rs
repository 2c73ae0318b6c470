//! Sends the messages stores queue (API sends, bot replies, notices)
//! through the Graph API, one call per message however often its job is
//! delivered.
//!
//! The job names a message and an attempt; the message's record decides.
//! The sender claims the message (`queued → sending`, conditional on the
//! attempt) before its one Graph call and records the outcome:
//!
//! - accepted: `sent` with the `wamid`, which statuses then update;
//! - throttled (130429, 131056, 4, 80007, a 5xx, a timeout): `queued` for
//!   the next attempt, its job delayed 10 s, 20 s, 40 s… up to 15 minutes,
//!   ten attempts at most;
//! - refused for the message (131047 outside the window, 131026, 131048,
//!   131049, 130472, other 4xx): `failed` with Meta's error and
//!   `whatsapp.message.failed`;
//! - refused for the number (190 token, 368 blocked): the message `failed`,
//!   the number `error`, `whatsapp.number.status_changed`; nothing more is
//!   sent from it until it is checked again.
//!
//! A job that finds its message still `sending` after the function's
//! timeout belongs to a sender that died mid-call: whether Meta took the
//! message cannot be known, so it is recorded `failed` (outcome unknown)
//! rather than sent a second time. The claim names the job message that
//! made it, so that sooner than that:
//! - the same job message received again (its earlier invocation is over:
//!   the queue hands a message out again only after its visibility timeout,
//!   six times the function's) records the outcome unknown at once;
//! - another job for the same message (a bot's repeated reply job, an
//!   earlier attempt's job) is acknowledged: the holder's job comes back if
//!   its sender fails, whereas retrying the other only leads it to the DLQ.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Duration, Utc};
use nuvem_aws::Core;
use nuvem_aws::graph::{GraphClient, GraphFailureOwned, SentMessage};
use nuvem_aws::idempotency::{Delivery, Holder};
use nuvem_aws::secrets::{SealContext, Sealer};
use nuvem_aws::store::{NumberRecord, OutboundRecord};
use nuvem_aws::whatsapp_jobs::{OutboundJob, OutboundQueue};
use nuvem_domain::whatsapp::events::{self, MessageFailure, NumberRef};
use nuvem_domain::whatsapp::graph_error::{self, SendStep};
use nuvem_domain::whatsapp::outbound::{OutboundContent, OutboundState};
use nuvem_domain::whatsapp::store::AccessToken;
use serde_json::{Value, json};

pub struct Deps {
    pub core: Core,
    pub sealer: Sealer,
    pub graph: GraphClient,
    /// Where throttled messages are queued again.
    pub queue: OutboundQueue,
}

/// Longer than the function's timeout (template: 30 s): a claim this old
/// belongs to an invocation that no longer runs.
pub const CLAIM_EXPIRY: Duration = Duration::seconds(60);

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    nuvem_aws::runtime::each_record(&event, |record| process(deps, record)).await
}

async fn process(deps: &Deps, record: &SqsMessage) -> Result<(), String> {
    let Some(job) = nuvem_aws::runtime::read_body::<OutboundJob>(record, "outbound job") else {
        return Ok(());
    };
    send(deps, &job, Delivery::of(record), Utc::now()).await
}

fn store_error(e: impl std::fmt::Display) -> String {
    format!("store: {e}")
}

/// Handles one job, delivered by the SQS message `delivery`; `Err` leaves
/// it to SQS to deliver again.
pub async fn send(
    deps: &Deps,
    job: &OutboundJob,
    delivery: Option<Delivery<'_>>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let store = &deps.core.store;
    let Some(message) = store
        .get_outbound(&job.account_id, &job.outbound_id)
        .await
        .map_err(store_error)?
    else {
        tracing::warn!(outbound_id = %job.outbound_id, "job for a message that does not exist");
        return Ok(());
    };
    match message.state {
        OutboundState::Sent | OutboundState::Failed => return Ok(()),
        OutboundState::Sending => return abandoned(deps, &message, delivery, now).await,
        OutboundState::Queued if message.attempt != job.attempt => {
            // The job of an earlier attempt, delivered again: the attempt it
            // scheduled may not have been queued (its send failed), so queue
            // it; a duplicate job finds the message claimed and stops.
            if message.attempt == job.attempt + 1 {
                let wait = message.not_before.map_or(0, |at| (at - now).num_seconds());
                requeue(deps, &message, u32::try_from(wait).unwrap_or(0)).await?;
            }
            return Ok(());
        }
        OutboundState::Queued => {}
    }
    // Everything the call needs is read before the claim: a failure here
    // leaves the message queued for the job's next delivery.
    let Some(number) = sending_number(deps, &message).await? else {
        let reason = json!({"reason": "number_unavailable", "message": "the number is no longer connected to this store, or cannot send"});
        return fail(deps, &message, reason, now).await;
    };
    let token = deps
        .sealer
        .open(
            &number.sealed_token,
            &SealContext::whatsapp_access_token(
                &number.account_id,
                &number.settings.phone_number_id,
            ),
        )
        .await
        .map_err(|e| format!("token: {e}"))?;
    let token = AccessToken::parse(&token).map_err(|_| "stored token".to_owned())?;
    let claimed_by = delivery.map(|d| d.claimed_by());
    if !store
        .claim_outbound(&message, claimed_by.as_ref(), now)
        .await
        .map_err(store_error)?
    {
        return Ok(());
    }
    let mut message = message;
    message.state = OutboundState::Sending;
    message.claimed_at = Some(now);
    message.claimed_by = claimed_by;
    match call_graph(deps, &message, &token).await {
        Ok(sent) => {
            store
                .outbound_sent(&message, &sent.wamid, now)
                .await
                .map_err(store_error)?;
            nuvem_aws::metrics::whatsapp_outbound(true);
            Ok(())
        }
        Err(failure) => failed_attempt(deps, &message, &number, failure, now).await,
    }
}

/// The number the message goes out from, if it is still this store's and
/// can send.
async fn sending_number(deps: &Deps, m: &OutboundRecord) -> Result<Option<NumberRecord>, String> {
    let store = &deps.core.store;
    let Some(route) = store
        .whatsapp_route(&m.phone_number_id)
        .await
        .map_err(store_error)?
    else {
        return Ok(None);
    };
    if route.account_id != m.account_id || route.store_id != m.store_id {
        return Ok(None);
    }
    let number = store
        .get_whatsapp_number(&m.account_id, &m.store_id, route.slot)
        .await
        .map_err(store_error)?;
    Ok(number.filter(|n| n.settings.phone_number_id == m.phone_number_id && n.status.can_send()))
}

async fn call_graph(
    deps: &Deps,
    m: &OutboundRecord,
    token: &AccessToken,
) -> Result<SentMessage, GraphFailureOwned> {
    match &m.message {
        OutboundContent::Text { body } => {
            deps.graph
                .send_text(
                    &m.phone_number_id,
                    token,
                    &m.to,
                    body,
                    m.reply_to.as_deref(),
                )
                .await
        }
        OutboundContent::Template {
            name,
            language,
            parameters,
        } => {
            deps.graph
                .send_template(&m.phone_number_id, token, &m.to, name, language, parameters)
                .await
        }
    }
}

/// Meta's error as the message keeps it.
fn error_of(failure: &GraphFailureOwned) -> Value {
    match failure.error() {
        Some(e) => json!({
            "code": e.code,
            "message": e.message,
            "details": e.error_data.as_ref().and_then(|d| d.details.clone()),
            "http_status": failure.status(),
        }),
        None => json!({
            "reason": "graph_unavailable",
            "message": failure.to_string(),
            "http_status": failure.status(),
        }),
    }
}

async fn failed_attempt(
    deps: &Deps,
    m: &OutboundRecord,
    number: &NumberRecord,
    failure: GraphFailureOwned,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let error = error_of(&failure);
    tracing::warn!(outbound_id = %m.id, attempt = m.attempt, error = %error, "WhatsApp send failed");
    match graph_error::next_step(m.attempt, failure.verdict()) {
        SendStep::RetryAfter(delay) => {
            let not_before = now + Duration::seconds(i64::from(delay));
            if deps
                .core
                .store
                .outbound_retry(m, &error, not_before, now)
                .await
                .map_err(store_error)?
            {
                let mut next = m.clone();
                next.attempt += 1;
                requeue(deps, &next, delay).await?;
            }
            Ok(())
        }
        SendStep::GiveUp => fail(deps, m, error, now).await,
        SendStep::StopNumber => {
            let meta = failure
                .error()
                .ok_or_else(|| "a number error without Meta's error".to_owned())?;
            let status = graph_error::number_status(meta);
            let at = NumberRef {
                store_id: &m.store_id,
                phone_number_id: &m.phone_number_id,
            };
            let mut told = vec![failed_event(m, error.clone(), now)];
            told.extend(events::number_status_changed(
                &m.account_id,
                &at,
                number.slot.get(),
                &number.status,
                &status,
                now,
            ));
            let stopped = deps
                .core
                .store
                .outbound_stopped_number(m, &error, number, &status, &told, now)
                .await
                .map_err(store_error)?;
            if !stopped {
                // The slot changed meanwhile: the message still failed.
                return fail(deps, m, error, now).await;
            }
            for event in &told {
                deps.core.emit(event, None).await;
            }
            nuvem_aws::metrics::whatsapp_outbound(false);
            Ok(())
        }
    }
}

fn failed_event(
    m: &OutboundRecord,
    error: Value,
    now: DateTime<Utc>,
) -> nuvem_domain::events::Envelope {
    events::message_failed(
        &m.account_id,
        &NumberRef {
            store_id: &m.store_id,
            phone_number_id: &m.phone_number_id,
        },
        MessageFailure {
            conversation_id: Some(&m.conversation_id),
            wamid: m.wamid.as_deref(),
            outbound_id: Some(&m.id),
            recipient: events::recipient(&m.to),
            failed_at: now,
            error,
        },
        now,
    )
}

/// Records the message `failed` (from the state it is in) with its event.
async fn fail(
    deps: &Deps,
    m: &OutboundRecord,
    error: Value,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let event = failed_event(m, error.clone(), now);
    if deps
        .core
        .store
        .outbound_failed(m, m.state, &error, Some(&event), now)
        .await
        .map_err(store_error)?
    {
        deps.core.emit(&event, None).await;
        nuvem_aws::metrics::whatsapp_outbound(false);
    }
    Ok(())
}

/// A message left `sending`: its sender is still calling (come back later,
/// or leave it to the sender's own job) or died mid-call (outcome unknown:
/// failed, never sent twice).
async fn abandoned(
    deps: &Deps,
    m: &OutboundRecord,
    delivery: Option<Delivery<'_>>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let claimed_at = m.claimed_at.unwrap_or(m.updated_at);
    let holder = delivery
        .zip(m.claimed_by.as_ref())
        .map(|(d, by)| d.against(by));
    if now - claimed_at < CLAIM_EXPIRY {
        match holder {
            Some(Holder::AnotherMessage) => {
                tracing::info!(outbound_id = %m.id, "being sent by another job's invocation; this job is done");
                return Ok(());
            }
            Some(Holder::EarlierReceive) => {}
            Some(Holder::SameReceive) | None => {
                return Err(format!("{} is being sent by another invocation", m.id));
            }
        }
    }
    let reason = json!({
        "reason": "outcome_unknown",
        "message": "the sender stopped during the Graph API call; the message may or may not have been sent, so it is not sent again"
    });
    fail(deps, m, reason, now).await
}

async fn requeue(deps: &Deps, m: &OutboundRecord, delay_secs: u32) -> Result<(), String> {
    let job = OutboundJob {
        account_id: m.account_id.clone(),
        outbound_id: m.id.clone(),
        attempt: m.attempt,
    };
    deps.queue
        .send_delayed(&job, delay_secs)
        .await
        .map_err(|e| format!("queue: {e}"))
}
