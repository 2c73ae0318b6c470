//! WhatsApp stores, their bot settings and their number slots:
//! `/v1/whatsapp/stores…`. Owners change them; operators read them and
//! check numbers again.
//!
//! The account is always the caller's (from the authorizer): a store of
//! another account is "not found". A number's access token is sealed with
//! KMS for its account and number, checked against the Graph API when saved,
//! and never returned or logged.

use chrono::{DateTime, Utc};
use nuvem_aws::Core;
use nuvem_aws::graph::{self, GraphClient};
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request, Response};
use nuvem_aws::secrets::{SealContext, Sealer};
use nuvem_aws::store::{
    ConversationEntry, ConversationRecord, CreateStoreError, NoticeRecord, NumberRecord,
    OutboundRecord, PutNumberError, StoreRecord, StoreWithNumbers,
};
use nuvem_aws::whatsapp_jobs::{OutboundJob, OutboundQueue};
use nuvem_domain::keys::Role;
use nuvem_domain::validation::FieldError;
use nuvem_domain::whatsapp::events::{self, NumberRef};
use nuvem_domain::whatsapp::identity::{CustomerIds, Recipient};
use nuvem_domain::whatsapp::notices::NoticeRequest;
use nuvem_domain::whatsapp::outbound::{self, Origin, OutboundState, SendRequest};
use nuvem_domain::whatsapp::store::{
    self as rules, AccessToken, MAX_STORES_PER_ACCOUNT, NumberRequest, NumberStatus, Slot,
    StorePatch, StoreRequest,
};
use serde::Serialize;
use serde_json::json;

pub struct Deps {
    pub core: Core,
    pub sealer: Sealer,
    pub graph: GraphClient,
    /// Messages to send (`whatsapp-outbound`).
    pub outbound: OutboundQueue,
}

const WRITE: &[Role] = &[Role::Owner];
const READ: &[Role] = &[Role::Owner, Role::Operator];

pub async fn handle(deps: &Deps, req: Request) -> Response {
    http::reply(route(deps, &req).await)
}

async fn route(deps: &Deps, req: &Request) -> HttpResult {
    match http::route(req) {
        "POST /v1/whatsapp/stores" => create(deps, req, &http::require(req, WRITE)?).await,
        "GET /v1/whatsapp/stores" => list(deps, &http::require(req, READ)?).await,
        "GET /v1/whatsapp/stores/{id}" => read(deps, req, &http::require(req, READ)?).await,
        "PATCH /v1/whatsapp/stores/{id}" => update(deps, req, &http::require(req, WRITE)?).await,
        "DELETE /v1/whatsapp/stores/{id}" => delete(deps, req, &http::require(req, WRITE)?).await,
        "PUT /v1/whatsapp/stores/{id}/numbers/{slot}" => {
            put_number(deps, req, &http::require(req, WRITE)?).await
        }
        "DELETE /v1/whatsapp/stores/{id}/numbers/{slot}" => {
            delete_number(deps, req, &http::require(req, WRITE)?).await
        }
        "POST /v1/whatsapp/stores/{id}/numbers/{slot}/check" => {
            check_number(deps, req, &http::require(req, READ)?).await
        }
        "POST /v1/whatsapp/stores/{id}/messages" => {
            send_message(deps, req, &http::require(req, READ)?).await
        }
        "GET /v1/whatsapp/stores/{id}/conversations" => {
            conversations(deps, req, &http::require(req, READ)?).await
        }
        "GET /v1/whatsapp/stores/{id}/conversations/{conversation_id}/messages" => {
            conversation_messages(deps, req, &http::require(req, READ)?).await
        }
        "POST /v1/whatsapp/stores/{id}/conversations/{conversation_id}/resume" => {
            resume(deps, req, &http::require(req, READ)?).await
        }
        "GET /v1/whatsapp/notices" => get_notices(deps, &http::require(req, READ)?).await,
        "PUT /v1/whatsapp/notices" => put_notices(deps, req, &http::require(req, WRITE)?).await,
        "DELETE /v1/whatsapp/notices" => delete_notices(deps, &http::require(req, WRITE)?).await,
        _ => Err(Problem::not_found("no such route")),
    }
}

/// A store as the API shows it, with its three slots in order.
#[derive(Serialize)]
struct StoreView<'a> {
    id: &'a str,
    name: &'a str,
    store_type: &'a str,
    bot_name: Option<&'a str>,
    base_prompt: &'a str,
    forbidden: &'a [String],
    message_limit: u32,
    context_minutes: u32,
    enabled: bool,
    /// The effective text: the store's own or its language's default.
    fallback_text: &'a str,
    language: rules::Language,
    numbers: Vec<SlotView<'a>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'a> From<&'a StoreWithNumbers> for StoreView<'a> {
    fn from(found: &'a StoreWithNumbers) -> Self {
        let s = &found.store.settings;
        StoreView {
            id: &found.store.id,
            name: &s.name,
            store_type: &s.store_type,
            bot_name: s.bot_name.as_deref(),
            base_prompt: &s.base_prompt,
            forbidden: &s.forbidden,
            message_limit: s.message_limit,
            context_minutes: s.context_minutes,
            enabled: s.enabled,
            fallback_text: s.fallback_text(),
            language: s.language,
            numbers: Slot::ALL
                .iter()
                .map(|slot| {
                    let number = found.numbers.iter().find(|n| n.slot == *slot);
                    SlotView::of(*slot, number)
                })
                .collect(),
            created_at: found.store.created_at,
            updated_at: found.store.updated_at,
        }
    }
}

/// A slot as the API shows it: never the token.
#[derive(Serialize)]
struct SlotView<'a> {
    slot: u8,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    waba_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_phone_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checked_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<DateTime<Utc>>,
}

impl<'a> SlotView<'a> {
    fn of(slot: Slot, number: Option<&'a NumberRecord>) -> Self {
        let Some(n) = number else {
            return SlotView {
                slot: slot.get(),
                status: "empty",
                phone_number_id: None,
                waba_id: None,
                display_phone_number: None,
                error: None,
                checked_at: None,
                updated_at: None,
            };
        };
        SlotView {
            slot: slot.get(),
            status: n.status.as_str(),
            phone_number_id: Some(&n.settings.phone_number_id),
            waba_id: Some(&n.settings.waba_id),
            display_phone_number: Some(&n.settings.display_phone_number),
            error: match &n.status {
                NumberStatus::Error { code, message } => {
                    Some(json!({"code": code, "message": message}))
                }
                _ => None,
            },
            checked_at: n.checked_at,
            updated_at: Some(n.updated_at),
        }
    }
}

fn no_store() -> Problem {
    Problem::not_found("no such WhatsApp store")
}

/// The store of the path, in the caller's account.
async fn store(deps: &Deps, req: &Request, who: &Principal) -> Result<StoreWithNumbers, Problem> {
    let id = http::path_param(req, "id")?;
    if !rules::is_store_id(id) {
        return Err(no_store());
    }
    deps.core
        .store
        .get_whatsapp_store(&who.account_id, id)
        .await?
        .ok_or_else(no_store)
}

/// The slot of the path: 1, 2 or 3 (anything else names no slot).
fn slot(req: &Request) -> Result<Slot, Problem> {
    Slot::parse(http::path_param(req, "slot")?).map_err(|_| Problem::not_found("no such slot"))
}

async fn create(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body: StoreRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let settings = body.validate().map_err(Problem::validation)?;
    let now = Utc::now();
    let store = StoreRecord {
        id: rules::new_store_id(),
        account_id: who.account_id.clone(),
        settings,
        created_at: now,
        updated_at: now,
    };
    match deps.core.store.create_whatsapp_store(&store).await? {
        Ok(()) => http::json(
            201,
            &StoreView::from(&StoreWithNumbers {
                store,
                numbers: Vec::new(),
            }),
        ),
        Err(CreateStoreError::TooMany) => Err(Problem::conflict(format!(
            "an account has at most {MAX_STORES_PER_ACCOUNT} WhatsApp stores"
        ))),
        Err(CreateStoreError::NoAccount) => Err(Problem::not_found("no such account")),
    }
}

async fn list(deps: &Deps, who: &Principal) -> HttpResult {
    let stores = deps
        .core
        .store
        .list_whatsapp_stores(&who.account_id)
        .await?;
    let items: Vec<StoreView> = stores.iter().map(StoreView::from).collect();
    http::json(200, &json!({ "items": items }))
}

async fn read(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    http::json(200, &StoreView::from(&store(deps, req, who).await?))
}

async fn update(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let patch: StorePatch = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let mut current = store(deps, req, who).await?;
    let settings = patch
        .apply(&current.store.settings)
        .map_err(Problem::validation)?;
    current.store = deps
        .core
        .store
        .update_whatsapp_store(&who.account_id, &current.store.id, &settings, Utc::now())
        .await?
        .ok_or_else(no_store)?;
    http::json(200, &StoreView::from(&current))
}

async fn delete(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let id = http::path_param(req, "id")?;
    if rules::is_store_id(id)
        && deps
            .core
            .store
            .delete_whatsapp_store(&who.account_id, id)
            .await?
    {
        http::no_content()
    } else {
        Err(no_store())
    }
}

/// What the Graph API says of a number and its token now; `None` when it
/// could not say (throttled, unavailable, too slow).
async fn checked_status(
    deps: &Deps,
    phone_number_id: &str,
    token: &AccessToken,
) -> Option<NumberStatus> {
    let result = deps.graph.check_number(phone_number_id, token).await;
    if let Err(e) = &result {
        tracing::warn!(phone_number_id, error = %e, "WhatsApp number check failed");
    }
    graph::status_after_check(&result)
}

async fn put_number(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let slot = slot(req)?;
    let body: NumberRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let (settings, token) = body.validate().map_err(Problem::validation)?;
    let found = store(deps, req, who).await?;
    let previous = found.numbers.iter().find(|n| n.slot == slot);
    let context = SealContext::whatsapp_access_token(&who.account_id, &settings.phone_number_id);
    let sealed_token = deps
        .sealer
        .seal(token.expose(), &context)
        .await
        .map_err(Problem::fault)?;
    // Saved even when Meta cannot say now: `unchecked`, checked again later.
    let status = checked_status(deps, &settings.phone_number_id, &token)
        .await
        .unwrap_or(NumberStatus::Unchecked);
    let now = Utc::now();
    let number = NumberRecord {
        account_id: who.account_id.clone(),
        store_id: found.store.id.clone(),
        slot,
        settings,
        sealed_token,
        checked_at: (status != NumberStatus::Unchecked).then_some(now),
        status,
        updated_at: now,
    };
    match deps
        .core
        .store
        .put_whatsapp_number(&number, previous)
        .await?
    {
        Ok(()) => http::json(200, &SlotView::of(slot, Some(&number))),
        Err(PutNumberError::NoStore) => Err(no_store()),
        Err(PutNumberError::Claimed) => Err(Problem::conflict(
            "this phone_number_id is in another slot; empty that slot first",
        )),
        Err(PutNumberError::Conflict) => Err(Problem::conflict(
            "the slot changed while this request was made; try again",
        )),
    }
}

/// The number in the path's slot.
async fn number(deps: &Deps, req: &Request, who: &Principal) -> Result<NumberRecord, Problem> {
    let slot = slot(req)?;
    let found = store(deps, req, who).await?;
    found
        .numbers
        .into_iter()
        .find(|n| n.slot == slot)
        .ok_or_else(|| Problem::not_found("the slot is empty"))
}

async fn delete_number(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let number = number(deps, req, who).await?;
    if deps.core.store.delete_whatsapp_number(&number).await? {
        http::no_content()
    } else {
        Err(Problem::not_found("the slot is empty"))
    }
}

async fn check_number(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let mut number = number(deps, req, who).await?;
    let context =
        SealContext::whatsapp_access_token(&number.account_id, &number.settings.phone_number_id);
    let token = deps
        .sealer
        .open(&number.sealed_token, &context)
        .await
        .map_err(Problem::fault)?;
    let token = AccessToken::parse(&token).map_err(|_| Problem::internal("stored token"))?;
    let status = checked_status(deps, &number.settings.phone_number_id, &token)
        .await
        .ok_or_else(|| {
            Problem::unavailable(
                "the Graph API did not answer the check; try again shortly",
                30,
            )
        })?;
    let now = Utc::now();
    let event = events::number_status_changed(
        &who.account_id,
        &NumberRef {
            store_id: &number.store_id,
            phone_number_id: &number.settings.phone_number_id,
        },
        number.slot.get(),
        &number.status,
        &status,
        now,
    );
    if !deps
        .core
        .store
        .record_number_check(&number, &status, event.as_ref(), now)
        .await?
    {
        return Err(Problem::conflict(
            "the slot changed while it was checked; check again",
        ));
    }
    if let Some(event) = &event {
        deps.core.emit(event, None).await;
    }
    number.status = status;
    number.checked_at = Some(now);
    http::json(200, &SlotView::of(number.slot, Some(&number)))
}

/// An outbound message as the API shows it.
#[derive(Serialize)]
struct OutboundView<'a> {
    id: &'a str,
    conversation_id: &'a str,
    phone_number_id: &'a str,
    to: &'a Recipient,
    message: serde_json::Value,
    origin: Origin,
    state: OutboundState,
    attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    wamid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a serde_json::Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'a> From<&'a OutboundRecord> for OutboundView<'a> {
    fn from(r: &'a OutboundRecord) -> Self {
        OutboundView {
            id: &r.id,
            conversation_id: &r.conversation_id,
            phone_number_id: &r.phone_number_id,
            to: &r.to,
            message: r.message.content(),
            origin: r.origin,
            state: r.state,
            attempt: r.attempt,
            wamid: r.wamid.as_deref(),
            error: r.error.as_ref(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The number a message goes out from: the slot asked for, else the first
/// slot whose number can send (connected, or not checked yet).
fn sending_number(numbers: &[NumberRecord], slot: Option<u8>) -> Result<&NumberRecord, Problem> {
    let usable = |n: &&NumberRecord| n.status.can_send();
    match slot {
        Some(slot) => {
            let number = numbers
                .iter()
                .find(|n| n.slot.get() == slot)
                .ok_or_else(|| Problem::conflict(format!("slot {slot} has no number")))?;
            if usable(&number) {
                Ok(number)
            } else {
                Err(Problem::conflict(format!(
                    "the number in slot {slot} is {}; check it again once fixed at Meta",
                    number.status.as_str()
                )))
            }
        }
        None => numbers.iter().find(usable).ok_or_else(|| {
            Problem::conflict(
                "the store has no number that can send (slots empty, in error or disconnected)",
            )
        }),
    }
}

/// Queues a text or template for a customer: 202 with the message, which
/// `whatsapp-outbound` sends (its state, `wamid` and statuses show in the
/// conversation).
async fn send_message(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body: SendRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let valid = body.validate().map_err(Problem::validation)?;
    let found = store(deps, req, who).await?;
    let number = sending_number(&found.numbers, valid.slot)?;
    let ids = match &valid.to {
        Recipient::Phone(phone) => CustomerIds::new(Some(phone), None),
        Recipient::User(user) => CustomerIds::new(None, Some(user)),
    };
    let now = Utc::now();
    let conversation = deps
        .core
        .store
        .resolve_conversation(&who.account_id, &found.store.id, &ids, None, now)
        .await?
        .ok_or_else(|| Problem::internal("a recipient without a conversation"))?;
    let record = OutboundRecord::queued(
        outbound::new_outbound_id(),
        &conversation,
        &number.settings.phone_number_id,
        valid.to,
        valid.content,
        Origin::Api,
        now,
    );
    deps.core.store.create_outbound(&record).await?;
    let job = OutboundJob {
        account_id: record.account_id.clone(),
        outbound_id: record.id.clone(),
        attempt: 1,
    };
    if let Err(e) = deps.outbound.send(&job).await {
        tracing::error!(outbound_id = %record.id, error = %e, "outbound message not queued");
        let reason = json!({"reason": "not_queued", "message": "the message could not be queued; send it again"});
        deps.core
            .store
            .outbound_failed(&record, OutboundState::Queued, &reason, None, now)
            .await?;
        return Err(Problem::unavailable(
            "the message could not be queued; send it again",
            5,
        ));
    }
    http::json(202, &OutboundView::from(&record))
}

/// A conversation as the API shows it.
#[derive(Serialize)]
struct ConversationView<'a> {
    id: &'a str,
    store_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    wa_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    needs_human: bool,
    /// Free text may be sent (the customer wrote within 24 hours).
    window_open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_customer_at: Option<DateTime<Utc>>,
    last_activity_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

impl<'a> ConversationView<'a> {
    fn of(c: &'a ConversationRecord, now: DateTime<Utc>) -> Self {
        ConversationView {
            id: &c.id,
            store_id: &c.store_id,
            wa_id: c.wa_id.as_deref(),
            user_id: c.user_id.as_deref(),
            name: c.name.as_deref(),
            needs_human: c.needs_human,
            window_open: nuvem_domain::whatsapp::bot::within_window(c.last_customer_at, now),
            last_customer_at: c.last_customer_at,
            last_activity_at: c.last_activity_at,
            created_at: c.created_at,
        }
    }
}

/// `?needs_human=true|false`.
async fn conversations(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let needs_human = http::bool_query(req, "needs_human")?;
    let limit = http::page_limit(req)?;
    let found = store(deps, req, who).await?;
    let page = http::listing(
        deps.core
            .store
            .list_conversations(
                &who.account_id,
                &found.store.id,
                needs_human,
                limit,
                http::query(req, "cursor"),
            )
            .await,
    )?;
    let now = Utc::now();
    let items: Vec<ConversationView> = page
        .items
        .iter()
        .map(|c| ConversationView::of(c, now))
        .collect();
    http::json(
        200,
        &json!({"items": items, "next_cursor": page.next_cursor}),
    )
}

/// The conversation of the path, in the caller's store.
async fn conversation(
    deps: &Deps,
    req: &Request,
    who: &Principal,
) -> Result<ConversationRecord, Problem> {
    let found = store(deps, req, who).await?;
    let id = http::path_param(req, "conversation_id")?;
    deps.core
        .store
        .get_conversation(&who.account_id, &found.store.id, id)
        .await?
        .ok_or_else(|| Problem::not_found("no such conversation"))
}

/// A line of a conversation: a message with its delivery, or one of ours
/// Meta has not accepted (yet).
fn entry_view(entry: &ConversationEntry) -> serde_json::Value {
    match entry {
        ConversationEntry::Message(m) => json!({
            "id": m.wamid,
            "wamid": m.wamid,
            "direction": m.direction,
            "message": m.content,
            "sent_at": m.sent_at,
            "origin": m.origin,
            "outbound_id": m.outbound_id,
            "status": m.delivery.as_ref().map(|d| d.status.as_str()),
            "delivery": m.delivery,
        }),
        ConversationEntry::Pending(p) => json!({
            "id": p.id,
            "direction": "outbound",
            "message": p.message.content(),
            "sent_at": null,
            "origin": p.origin,
            "state": p.state,
            "attempt": p.attempt,
            "error": p.error,
            "created_at": p.created_at,
        }),
    }
}

async fn conversation_messages(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let limit = http::page_limit(req)?;
    let conversation = conversation(deps, req, who).await?;
    let page = http::listing(
        deps.core
            .store
            .conversation_entries(&conversation.id, None, limit, http::query(req, "cursor"))
            .await,
    )?;
    let items: Vec<serde_json::Value> = page.items.iter().map(entry_view).collect();
    http::json(
        200,
        &json!({"items": items, "next_cursor": page.next_cursor}),
    )
}

/// Gives a conversation the bot handed off back to it.
async fn resume(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let current = conversation(deps, req, who).await?;
    let resumed = deps
        .core
        .store
        .resume_conversation(&who.account_id, &current.store_id, &current.id, Utc::now())
        .await?
        .ok_or_else(|| Problem::not_found("no such conversation"))?;
    http::json(200, &ConversationView::of(&resumed, Utc::now()))
}

fn notices_view(n: &NoticeRecord) -> serde_json::Value {
    json!({
        "store_id": n.settings.store_id,
        "slot": n.settings.slot,
        "to": n.settings.to,
        "templates": n.settings.templates,
        "updated_at": n.updated_at,
    })
}

fn no_notices() -> Problem {
    Problem::not_found("the account has chosen no WhatsApp notices")
}

async fn get_notices(deps: &Deps, who: &Principal) -> HttpResult {
    let notices = deps
        .core
        .store
        .get_whatsapp_notices(&who.account_id)
        .await?
        .ok_or_else(no_notices)?;
    http::json(200, &notices_view(&notices))
}

/// Chooses the number, the recipient and the templates of the account's
/// notices; the number must be in the store's slot (and stays checked at
/// send time).
async fn put_notices(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body: NoticeRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let settings = body.validate().map_err(Problem::validation)?;
    let found = if rules::is_store_id(&settings.store_id) {
        deps.core
            .store
            .get_whatsapp_store(&who.account_id, &settings.store_id)
            .await?
    } else {
        None
    };
    let Some(found) = found else {
        return Err(Problem::validation(vec![FieldError::new(
            "store_id",
            "no such WhatsApp store in this account",
        )]));
    };
    if !found.numbers.iter().any(|n| n.slot.get() == settings.slot) {
        return Err(Problem::conflict(format!(
            "slot {} of the store has no number",
            settings.slot
        )));
    }
    let notices = NoticeRecord {
        settings,
        updated_at: Utc::now(),
    };
    deps.core
        .store
        .put_whatsapp_notices(&who.account_id, &notices)
        .await?;
    http::json(200, &notices_view(&notices))
}

async fn delete_notices(deps: &Deps, who: &Principal) -> HttpResult {
    if deps
        .core
        .store
        .delete_whatsapp_notices(&who.account_id)
        .await?
    {
        http::no_content()
    } else {
        Err(no_notices())
    }
}
