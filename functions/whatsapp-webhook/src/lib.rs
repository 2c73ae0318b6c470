//! Meta's WhatsApp Cloud API webhooks for every tenant, at one public
//! endpoint: `GET /v1/whatsapp/webhook` answers the verification handshake,
//! `POST /v1/whatsapp/webhook` takes notifications signed with the Meta
//! app's secret.
//!
//! Every entry, change, message and status of a POST is handled, routed by
//! the business number's `phone_number_id` to the store that claimed it.
//! A message is stored once per `wamid` with its `whatsapp.message.received`
//! event, and a message with text is handed to the bot (`whatsapp-bot`,
//! through its queue); a status only moves its message's delivery forward. Anything
//! that fails to be stored fails the POST with a 5xx, so that Meta sends it
//! again: never a 200 for something lost.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use lambda_http::http::HeaderValue;
use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, RequestExt};
use nuvem_aws::Core;
use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::http::{self, HttpResult, Problem, Request, Response};
use nuvem_aws::store::{Direction, MessageRecord, NewMessage, NumberRoute};
use nuvem_aws::whatsapp_jobs::{BotJob, BotQueue};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::whatsapp::content;
use nuvem_domain::whatsapp::events::{self, MessageFailure, NumberRef};
use nuvem_domain::whatsapp::handshake::HandshakeQuery;
use nuvem_domain::whatsapp::identity::{CustomerIds, identity_move};
use nuvem_domain::whatsapp::message::InboundMessage;
use nuvem_domain::whatsapp::signature::{self, SIGNATURE_HEADER};
use nuvem_domain::whatsapp::status::{DeliveryState, StatusUpdate};
use nuvem_domain::whatsapp::webhook::{BusinessNumber, Contact, Inbound, parse_notification};
use serde::Deserialize;
use serde_json::json;

/// The largest notification taken. Meta's are a few KB (a batch of
/// statuses a few tens); Lambda refuses anything over 6 MB before us.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Secrets Manager's `WHATSAPP_SECRET_ARN`: the Meta app's secret (it
/// signs every webhook) and the verify token of the handshake.
#[derive(Deserialize)]
pub struct WebhookSecret {
    #[serde(default)]
    pub app_secret: String,
    #[serde(default)]
    pub verify_token: String,
}

pub struct Deps {
    pub core: Core,
    pub secret: DeploymentSecret<WebhookSecret>,
    /// Messages for the bot (`whatsapp-bot`).
    pub bot: BotQueue,
}

pub async fn handle(deps: &Deps, req: Request) -> Response {
    http::reply(route(deps, &req).await)
}

async fn route(deps: &Deps, req: &Request) -> HttpResult {
    match http::route(req) {
        "GET /v1/whatsapp/webhook" => verify(deps, req).await,
        "POST /v1/whatsapp/webhook" => receive(deps, req).await,
        _ => Err(Problem::not_found("no such route")),
    }
}

async fn secret(deps: &Deps) -> Result<std::sync::Arc<WebhookSecret>, Problem> {
    deps.secret.current().await.map_err(|e| {
        tracing::error!(error = %e, "the WhatsApp webhook secret could not be read");
        Problem::unavailable("the webhook cannot be checked right now", 30)
    })
}

/// Meta's verification handshake: the challenge back as plain text when
/// the mode is `subscribe` and the token is ours.
async fn verify(deps: &Deps, req: &Request) -> HttpResult {
    let secret = secret(deps).await?;
    let params = req.query_string_parameters_ref();
    let pairs = params.iter().flat_map(|p| p.iter());
    let query = HandshakeQuery::from_pairs(pairs);
    let Some(challenge) = query.answer(&secret.verify_token) else {
        return Err(Problem::forbidden(
            "hub.mode must be subscribe and hub.verify_token the configured token",
        ));
    };
    let mut response = Response::new(Body::Text(challenge.to_owned()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// What one POST did, for its answer and the log.
#[derive(Default)]
struct Tally {
    messages: usize,
    statuses: usize,
    /// Items for numbers no store claims, by `phone_number_id`.
    unrouted: BTreeMap<String, usize>,
    /// Messages with text for the bot, new or delivered again (the bot
    /// answers each once).
    bot_jobs: Vec<BotJob>,
}

async fn receive(deps: &Deps, req: &Request) -> HttpResult {
    // The exact bytes received (lambda_http has already decoded a body the
    // gateway sent base64-encoded): never re-serialised before checking,
    // since Meta signs its own escaping of unicode and slashes.
    let body: &[u8] = req.body().as_ref();
    if body.len() > BODY_LIMIT {
        return Err(Problem::payload_too_large(BODY_LIMIT));
    }
    let secret = secret(deps).await?;
    if secret.app_secret.is_empty() {
        tracing::error!("the WhatsApp webhook secret has no app_secret; every POST is refused");
        return Err(Problem::unavailable(
            "the webhook is not configured yet",
            300,
        ));
    }
    let header = req
        .headers()
        .get(SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap_or(""));
    if let Err(e) = signature::verify(&secret.app_secret, header, body) {
        tracing::warn!(error = %e, source_ip = http::source_ip(req), "WhatsApp webhook refused");
        return Err(Problem::unauthorized(format!("{SIGNATURE_HEADER}: {e}")));
    }
    let notification = parse_notification(body).map_err(|e| Problem::bad_request(e.to_string()))?;
    let now = Utc::now();
    let mut routes: HashMap<String, Option<NumberRoute>> = HashMap::new();
    let mut tally = Tally::default();
    for event in &notification.events {
        let number = business_number(event);
        let route = match routes.get(&number.phone_number_id) {
            Some(route) => route.clone(),
            None => {
                let found = deps
                    .core
                    .store
                    .whatsapp_route(&number.phone_number_id)
                    .await?;
                routes.insert(number.phone_number_id.clone(), found.clone());
                found
            }
        };
        let Some(route) = route else {
            *tally
                .unrouted
                .entry(number.phone_number_id.clone())
                .or_default() += 1;
            continue;
        };
        match event {
            Inbound::Message {
                number,
                contact,
                message,
            } => {
                tally.messages += 1;
                let conversation =
                    receive_message(deps, &route, number, contact.as_ref(), message, now).await?;
                if let (Some(conversation_id), Some(_)) = (conversation, message.bot_text()) {
                    tally.bot_jobs.push(BotJob {
                        account_id: route.account_id.clone(),
                        store_id: route.store_id.clone(),
                        conversation_id,
                        phone_number_id: number.phone_number_id.clone(),
                        wamid: message.id.clone(),
                    });
                }
            }
            Inbound::Status { number, status } => {
                tally.statuses += 1;
                receive_status(deps, &route, number, status, now).await?;
            }
            Inbound::Error { number, error } => tracing::warn!(
                phone_number_id = %number.phone_number_id,
                code = error.code,
                title = ?error.title,
                "Meta reported an error for a WhatsApp number"
            ),
            Inbound::Unreadable { number, item, raw } => tracing::warn!(
                phone_number_id = %number.phone_number_id,
                item = ?item,
                raw = %raw,
                "unreadable WhatsApp webhook item skipped"
            ),
        }
    }
    for (phone_number_id, items) in &tally.unrouted {
        tracing::warn!(
            phone_number_id,
            items,
            "WhatsApp webhook for a number no store claims"
        );
        deps.core
            .store
            .count_unrouted_whatsapp(phone_number_id, *items, now)
            .await?;
    }
    // Stored first, then queued: a failure here is a 5xx, Meta sends the
    // notification again, and the jobs go out again (the bot drops
    // duplicates).
    let unqueued = deps.bot.send_all(&tally.bot_jobs).await.map_err(|e| {
        tracing::error!(error = %e, "bot jobs not queued");
        Problem::unavailable(
            "the messages were stored but not all handed to the bot; send again",
            5,
        )
    })?;
    if unqueued > 0 {
        tracing::error!(unqueued, "bot jobs not queued");
        return Err(Problem::unavailable(
            "the messages were stored but not all handed to the bot; send again",
            5,
        ));
    }
    for skipped in &notification.skipped {
        tracing::info!(waba_id = %skipped.waba_id, field = %skipped.field, "WhatsApp webhook change not handled here");
    }
    http::json(
        200,
        &json!({
            "messages": tally.messages,
            "statuses": tally.statuses,
            "unrouted": tally.unrouted.values().sum::<usize>(),
        }),
    )
}

fn business_number(event: &Inbound) -> &BusinessNumber {
    match event {
        Inbound::Message { number, .. }
        | Inbound::Status { number, .. }
        | Inbound::Error { number, .. }
        | Inbound::Unreadable { number, .. } => number,
    }
}

/// Stores a customer's message in their conversation (once per `wamid`,
/// with its event) and follows a changed number or BSUID. The
/// conversation's id; `None` for a message without a sender id.
async fn receive_message(
    deps: &Deps,
    route: &NumberRoute,
    number: &BusinessNumber,
    contact: Option<&Contact>,
    message: &InboundMessage,
    now: DateTime<Utc>,
) -> Result<Option<String>, Problem> {
    let store = &deps.core.store;
    let ids = CustomerIds::of_message(message, contact);
    let sent_at = message.sent_at().unwrap_or(now);
    let name = contact.and_then(|c| c.name.as_deref());
    let Some(conversation) = store
        .resolve_conversation(&route.account_id, &route.store_id, &ids, name, sent_at)
        .await?
    else {
        tracing::warn!(wamid = %message.id, "WhatsApp message without a sender id skipped");
        return Ok(None);
    };
    let content = content::inbound(message);
    let event = Envelope::new(
        EventType::WhatsAppMessageReceived,
        route.account_id.clone(),
        json!({
            "store_id": route.store_id,
            "phone_number_id": number.phone_number_id,
            "conversation_id": conversation.id,
            "wamid": message.id,
            "from": {
                "wa_id": ids.wa_id,
                "user_id": ids.user_id,
                "name": name,
            },
            "sent_at": sent_at,
            "message": content,
        }),
        now,
    );
    let recorded = store
        .record_message(&NewMessage {
            wamid: &message.id,
            direction: Direction::Inbound,
            conversation: &conversation,
            sent_at,
            content,
            event: Some(&event),
        })
        .await?;
    if recorded {
        deps.core.emit(&event, None).await;
        nuvem_aws::metrics::whatsapp_inbound();
    }
    if let Some(change) = identity_move(message) {
        store.move_customer(&conversation, &change).await?;
    }
    Ok(Some(conversation.id))
}

/// Moves a sent message's delivery forward; its first failure becomes a
/// `whatsapp.message.failed` event.
async fn receive_status(
    deps: &Deps,
    route: &NumberRoute,
    number: &BusinessNumber,
    status: &StatusUpdate,
    now: DateTime<Utc>,
) -> Result<(), Problem> {
    let failed = |stored: Option<&MessageRecord>, state: &DeliveryState| {
        let failure = state.failure.as_ref()?;
        Some(events::message_failed(
            &route.account_id,
            &NumberRef {
                store_id: &route.store_id,
                phone_number_id: &number.phone_number_id,
            },
            MessageFailure {
                conversation_id: stored.and_then(|m| m.conversation_id.as_deref()),
                wamid: Some(&status.id),
                outbound_id: None,
                recipient: json!({
                    "wa_id": status.recipient_id,
                    "user_id": status.recipient_user_id,
                }),
                failed_at: DateTime::from_timestamp(failure.at, 0).unwrap_or(now),
                error: json!(failure.error),
            },
            now,
        ))
    };
    let outcome = deps.core.store.apply_status(status, failed).await?;
    if let Some(event) = &outcome.failure_event {
        deps.core.emit(event, None).await;
    }
    Ok(())
}
