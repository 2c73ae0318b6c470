//! Webhook endpoints and the account's events: `/v1/webhooks…` (CRUD,
//! secret, rotation, test, attempts, stats) and `/v1/events…` (recent
//! events, custom events, replay), `/v1/event-types` (the catalogue).
//!
//! The account is always the caller's (from the authorizer): an endpoint or
//! event of another account is "not found".

use chrono::{DateTime, Utc};
use nuvem_aws::Core;
use nuvem_aws::deliveries::{DeliveryQueue, DeliveryTask};
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request, Response};
use nuvem_aws::secrets::Sealer;
use nuvem_aws::store::{
    AttemptOutcome, AttemptRecord, CreateEndpointError, EndpointRecord, MAX_ENDPOINTS_PER_ACCOUNT,
    Once, ROTATION_OVERLAP,
};
use nuvem_aws::webhook::{self, Sender, secrets};
use nuvem_domain::events::{CustomEventType, Envelope, EventName, EventType};
use nuvem_domain::idempotency;
use nuvem_domain::ids;
use nuvem_domain::keys::Role;
use nuvem_domain::validation::FieldError;
use nuvem_domain::webhook::delivery::replay_delivery_id;
use nuvem_domain::webhook::endpoint::{EndpointPatch, EndpointRequest, UrlPolicy, subscribes};
use nuvem_domain::webhook::signature::WebhookSecret;
use nuvem_domain::webhook::stats::{StatsWindow, summarize};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub struct Deps {
    pub core: Core,
    pub deliveries: DeliveryQueue,
    pub sender: Sender,
    pub url_policy: UrlPolicy,
    pub sealer: Sealer,
}

/// Who may change endpoints and see secrets, and who may only look.
const WRITE: &[Role] = &[Role::Owner];
const READ: &[Role] = &[Role::Owner, Role::Operator];
/// Up to this many attempts in a window, stats read them for exact latency
/// percentiles (a page or two); past it, the hourly histogram's bounds do.
const EXACT_LATENCY_CAP: usize = 1_000;
/// Longest wait of a test delivery (the HTTP API gives up after 30 s).
const TEST_TIMEOUT_SECS: u32 = 20;
/// Custom events carry at most this much JSON (the body, data included).
const EVENT_BODY_LIMIT: usize = 64 * 1024;

pub async fn handle(deps: &Deps, req: Request) -> Response {
    http::reply(route(deps, &req).await)
}

async fn route(deps: &Deps, req: &Request) -> HttpResult {
    match http::route(req) {
        "POST /v1/webhooks" => create(deps, req, &http::require(req, WRITE)?).await,
        "GET /v1/webhooks" => list(deps, req, &http::require(req, READ)?).await,
        "GET /v1/webhooks/{id}" => read(deps, req, &http::require(req, READ)?).await,
        "PATCH /v1/webhooks/{id}" => update(deps, req, &http::require(req, WRITE)?).await,
        "DELETE /v1/webhooks/{id}" => delete(deps, req, &http::require(req, WRITE)?).await,
        "GET /v1/webhooks/{id}/secret" => secret(deps, req, &http::require(req, WRITE)?).await,
        "POST /v1/webhooks/{id}/secret/rotate" => {
            rotate(deps, req, &http::require(req, WRITE)?).await
        }
        "POST /v1/webhooks/{id}/test" => test(deps, req, &http::require(req, WRITE)?).await,
        "GET /v1/webhooks/{id}/attempts" => attempts(deps, req, &http::require(req, READ)?).await,
        "GET /v1/webhooks/{id}/stats" => stats(deps, req, &http::require(req, READ)?).await,
        "GET /v1/events" => events(deps, req, &http::require(req, READ)?).await,
        "POST /v1/events" => fire(deps, req, &http::require(req, WRITE)?).await,
        "POST /v1/events/{id}/retry" => retry(deps, req, &http::require(req, WRITE)?).await,
        "GET /v1/event-types" => {
            http::require(req, &[Role::Owner, Role::Operator, Role::Approver])?;
            event_types()
        }
        _ => Err(Problem::not_found("no such route")),
    }
}

/// An endpoint as the API shows it. Custom header values are write-only
/// (they often hold the receiver's credentials); the secret has its own,
/// owner-only route.
#[derive(Serialize)]
struct EndpointView<'a> {
    id: &'a str,
    url: &'a str,
    description: &'a str,
    event_types: &'a [String],
    headers: std::collections::BTreeMap<&'a str, &'static str>,
    method: &'static str,
    timeout_seconds: u32,
    enabled: bool,
    ordered: bool,
    rate_limit_per_second: Option<u32>,
    failing_since: Option<DateTime<Utc>>,
    disabled_reason: Option<&'a str>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'a> From<&'a EndpointRecord> for EndpointView<'a> {
    fn from(e: &'a EndpointRecord) -> Self {
        let s = &e.settings;
        EndpointView {
            id: &e.id,
            url: &s.url,
            description: &s.description,
            event_types: &s.event_types,
            headers: s
                .headers
                .keys()
                .map(|k| (k.as_str(), "[redacted]"))
                .collect(),
            method: s.method.as_str(),
            timeout_seconds: s.timeout_seconds,
            enabled: s.enabled,
            ordered: s.ordered,
            rate_limit_per_second: s.rate_limit_per_second,
            failing_since: e.failing_since,
            disabled_reason: e.disabled_reason.as_deref(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// The endpoint of `{id}` in the caller's account, or 404.
async fn endpoint(deps: &Deps, req: &Request, who: &Principal) -> Result<EndpointRecord, Problem> {
    let id = http::path_param(req, "id")?;
    let not_found = || Problem::not_found("no such webhook endpoint");
    if !ids::has_prefix(id, ids::WEBHOOK) {
        return Err(not_found());
    }
    deps.core
        .store
        .get_endpoint(&who.account_id, id)
        .await?
        .ok_or_else(not_found)
}

async fn create(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body: EndpointRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let (settings, secret) = body
        .validate(&deps.url_policy)
        .map_err(Problem::validation)?;
    let now = Utc::now();
    let id = ids::new_id(ids::WEBHOOK);
    let secret = secret.unwrap_or_else(WebhookSecret::generate);
    let sealed = secrets::seal(&deps.sealer, &who.account_id, &id, &secret)
        .await
        .map_err(Problem::fault)?;
    let record = EndpointRecord::new(id, &who.account_id, settings, sealed, now);
    match deps.core.store.create_endpoint(&record).await? {
        Ok(()) => http::json(
            201,
            &json!({
                "webhook": EndpointView::from(&record),
                "secret": secret.to_string_form(),
            }),
        ),
        Err(CreateEndpointError::TooMany) => Err(Problem::conflict(format!(
            "an account has at most {MAX_ENDPOINTS_PER_ACCOUNT} webhook endpoints"
        ))),
        Err(CreateEndpointError::NoAccount) => Err(Problem::not_found("no such account")),
    }
}

async fn list(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let page = http::listing(
        deps.core
            .store
            .list_endpoints(
                &who.account_id,
                http::page_limit(req)?,
                http::query(req, "cursor"),
            )
            .await,
    )?;
    let items: Vec<EndpointView> = page.items.iter().map(EndpointView::from).collect();
    http::json(
        200,
        &json!({"items": items, "next_cursor": page.next_cursor}),
    )
}

async fn read(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let endpoint = endpoint(deps, req, who).await?;
    http::json(200, &EndpointView::from(&endpoint))
}

async fn update(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let patch: EndpointPatch = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let current = endpoint(deps, req, who).await?;
    let settings = patch
        .apply(&current.settings, &deps.url_policy)
        .map_err(Problem::validation)?;
    let updated = deps
        .core
        .store
        .update_endpoint_settings(
            &who.account_id,
            &current.id,
            &settings,
            settings.enabled && !current.settings.enabled,
            Utc::now(),
        )
        .await?
        .ok_or_else(|| Problem::not_found("no such webhook endpoint"))?;
    http::json(200, &EndpointView::from(&updated))
}

async fn delete(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let id = http::path_param(req, "id")?;
    if ids::has_prefix(id, ids::WEBHOOK)
        && deps.core.store.delete_endpoint(&who.account_id, id).await?
    {
        http::no_content()
    } else {
        Err(Problem::not_found("no such webhook endpoint"))
    }
}

#[derive(Serialize)]
struct SecretView {
    secret: String,
    /// During a rotation's overlap, the previous secret still signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl SecretView {
    /// The endpoint's secrets, opened for its owner.
    async fn of(deps: &Deps, e: &EndpointRecord, now: DateTime<Utc>) -> Result<Self, Problem> {
        let open = secrets::open(&deps.sealer, e, now)
            .await
            .map_err(Problem::fault)?;
        Ok(SecretView {
            secret: open.current.to_string_form(),
            previous_secret: open.previous.as_ref().map(|(s, _)| s.to_string_form()),
            previous_secret_expires_at: open.previous.map(|(_, until)| until),
        })
    }
}

async fn secret(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let endpoint = endpoint(deps, req, who).await?;
    http::json(200, &SecretView::of(deps, &endpoint, Utc::now()).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// The tenant's own new secret; generated when absent.
    #[serde(default)]
    secret: Option<String>,
}

async fn rotate(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body: RotateBody = http::optional_json_body(req, 4 * 1024)?;
    let secret = match body.secret {
        Some(s) => WebhookSecret::parse_new(&s)
            .map_err(|e| Problem::validation(vec![FieldError::new("secret", e.to_string())]))?,
        None => WebhookSecret::generate(),
    };
    let current = endpoint(deps, req, who).await?;
    let now = Utc::now();
    let sealed = secrets::seal(&deps.sealer, &who.account_id, &current.id, &secret)
        .await
        .map_err(Problem::fault)?;
    let rotated = deps
        .core
        .store
        .rotate_endpoint_secret(&current, &sealed, now + ROTATION_OVERLAP, now)
        .await?
        .ok_or_else(|| Problem::conflict("the secret was rotated meanwhile; read it again"))?;
    http::json(200, &SecretView::of(deps, &rotated, now).await?)
}

/// An attempt as the API shows it.
#[derive(Serialize)]
struct AttemptView<'a> {
    id: &'a str,
    delivery_id: &'a str,
    event_id: &'a str,
    event_type: &'a str,
    attempt: u32,
    outcome: AttemptOutcome,
    attempted_at: DateTime<Utc>,
    response_status: Option<u16>,
    duration_ms: u64,
    request_headers: std::collections::BTreeMap<&'a str, &'a str>,
    response_body_excerpt: &'a str,
    error: Option<&'a str>,
    next_attempt_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a AttemptRecord> for AttemptView<'a> {
    fn from(a: &'a AttemptRecord) -> Self {
        AttemptView {
            id: &a.id,
            delivery_id: &a.delivery_id,
            event_id: &a.event_id,
            event_type: &a.event_type,
            attempt: a.attempt,
            outcome: a.outcome,
            attempted_at: a.attempted_at,
            response_status: a.response_status,
            duration_ms: a.duration_ms,
            request_headers: a
                .request_headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
            response_body_excerpt: &a.response_excerpt,
            error: a.error.as_deref(),
            next_attempt_at: a.next_attempt_at,
        }
    }
}

/// Delivers a `webhook.test` event to the endpoint now (even when it is
/// disabled or does not subscribe to it) and answers with the attempt.
async fn test(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let mut endpoint = endpoint(deps, req, who).await?;
    // The caller waits: stay within API Gateway's 30-second integration limit.
    endpoint.settings.timeout_seconds = endpoint.settings.timeout_seconds.min(TEST_TIMEOUT_SECS);
    let now = Utc::now();
    let event = Envelope::new(
        EventType::WebhookTest,
        who.account_id.clone(),
        json!({
            "message": "This is a test delivery from nuvem.",
            "webhook_id": endpoint.id,
        }),
        now,
    );
    let delivery_id = ids::new_id(ids::DELIVERY);
    let secrets = secrets::open(&deps.sealer, &endpoint, now)
        .await
        .map_err(Problem::fault)?;
    let attempted = webhook::attempt(
        &deps.sender,
        &endpoint,
        &secrets,
        &event,
        &delivery_id,
        1,
        now,
    )
    .await;
    deps.core.store.log_attempt(&attempted.record).await?;
    http::json(200, &AttemptView::from(&attempted.record))
}

async fn attempts(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let outcome = match http::query(req, "outcome") {
        None => None,
        Some(v) => Some(v.parse::<AttemptOutcome>().map_err(|()| {
            Problem::validation(vec![FieldError::new(
                "outcome",
                "must be succeeded or failed",
            )])
        })?),
    };
    let endpoint = endpoint(deps, req, who).await?;
    let page = http::listing(
        deps.core
            .store
            .list_attempts(
                &who.account_id,
                &endpoint.id,
                outcome,
                http::page_limit(req)?,
                http::query(req, "cursor"),
            )
            .await,
    )?;
    let items: Vec<AttemptView> = page.items.iter().map(AttemptView::from).collect();
    http::json(
        200,
        &json!({"items": items, "next_cursor": page.next_cursor}),
    )
}

async fn stats(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let window: StatsWindow = http::query(req, "window")
        .unwrap_or("24h")
        .parse()
        .map_err(|_| {
            Problem::validation(vec![FieldError::new("window", "must be 1h, 24h or 7d")])
        })?;
    let endpoint = endpoint(deps, req, who).await?;
    let store = &deps.core.store;
    // Counts come from hourly counters, so a window starts on the hour.
    let since = start_of_hour(Utc::now() - window.duration());
    let rollup = store
        .rollup_since(&who.account_id, &endpoint.id, since)
        .await?;
    let mut stats = rollup.summarize();
    let exact = rollup.attempts <= EXACT_LATENCY_CAP as u64;
    if exact && rollup.attempts > 0 {
        let samples = store
            .attempt_samples(
                &who.account_id,
                &endpoint.id,
                &ids::lower_bound(ids::ATTEMPT, since),
                EXACT_LATENCY_CAP,
            )
            .await?;
        stats.latency_ms = summarize(&samples).latency_ms;
    }
    http::json(
        200,
        &json!({
            "webhook_id": endpoint.id,
            "window": window.as_str(),
            "since": since,
            "latency_exact": exact,
            "stats": stats,
            "state": {
                "enabled": endpoint.settings.enabled,
                "failing_since": endpoint.failing_since,
                "disabled_reason": endpoint.disabled_reason,
            },
        }),
    )
}

fn start_of_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

async fn events(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let page = http::listing(
        deps.core
            .store
            .list_events(
                &who.account_id,
                http::page_limit(req)?,
                http::query(req, "cursor"),
            )
            .await,
    )?;
    http::json(200, &page)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomEventBody {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: serde_json::Map<String, serde_json::Value>,
}

/// Fires a tenant-defined `custom.*` event: kept like any event and fanned
/// out to the endpoints that subscribe to it.
///
/// With an `Idempotency-Key`, a repeat of the request (same key, same body)
/// within 24 hours answers the first event and fires nothing; the same key
/// with another body is a 422.
async fn fire(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let key = http::idempotency_key(req)?;
    let body: CustomEventBody = http::json_body(req, EVENT_BODY_LIMIT)?;
    let event_type = CustomEventType::parse(&body.event_type)
        .map_err(|e| Problem::validation(vec![FieldError::new("type", e.to_string())]))?;
    let data = serde_json::Value::Object(body.data);
    let event = Envelope::new(
        EventName::Custom(event_type),
        who.account_id.clone(),
        data,
        Utc::now(),
    );
    let store = &deps.core.store;
    let Some(key) = key else {
        deps.core.publish(&event).await?;
        return http::json(202, &event);
    };
    let request = json!({"type": event.event_type.as_str(), "data": event.data});
    match store
        .put_event_once(&event, &key, &idempotency::fingerprint(&request))
        .await?
    {
        Once::Done => {
            deps.core.emit(&event, None).await;
            http::json(202, &event)
        }
        // The first request's event went out then (or goes out with the
        // outbox relay): nothing to send again.
        Once::Repeat(Some(first)) => http::json(202, &first).map(http::replayed),
        Once::Repeat(None) => Err(Problem::conflict(
            "the event this Idempotency-Key made is no longer kept",
        )),
        Once::Mismatch => Err(key_reused()),
    }
}

fn key_reused() -> Problem {
    Problem::validation(vec![FieldError::new(
        "Idempotency-Key",
        "this key was used with a different request; use a new key",
    )])
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    /// Only this endpoint; every subscribed, enabled endpoint when absent.
    #[serde(default)]
    webhook_id: Option<String>,
}

/// Delivers a kept event again, as new deliveries (a fresh schedule).
///
/// With an `Idempotency-Key` the deliveries' ids derive from the key, so a
/// repeat of the replay (after a timeout, or a 500 that queued only some)
/// queues the same deliveries again, and `webhook-delivery` sends each once.
async fn retry(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let key = http::idempotency_key(req)?;
    let body: RetryBody = http::optional_json_body(req, 4 * 1024)?;
    let id = http::path_param(req, "id")?;
    let not_found =
        || Problem::not_found("no such event (events are kept for the retention period)");
    if !ids::has_prefix(id, ids::EVENT) {
        return Err(not_found());
    }
    let store = &deps.core.store;
    let event = store
        .get_event(&who.account_id, id)
        .await?
        .ok_or_else(not_found)?;
    let targets: Vec<String> = match body.webhook_id {
        Some(webhook_id) => {
            let endpoint = if ids::has_prefix(&webhook_id, ids::WEBHOOK) {
                store.get_endpoint(&who.account_id, &webhook_id).await?
            } else {
                None
            };
            let endpoint = endpoint.ok_or_else(|| {
                Problem::validation(vec![FieldError::new(
                    "webhook_id",
                    "no such webhook endpoint",
                )])
            })?;
            if !endpoint.settings.enabled {
                return Err(Problem::conflict(
                    "the endpoint is disabled; enable it first",
                ));
            }
            vec![endpoint.id]
        }
        None => store
            .endpoint_routes(&who.account_id)
            .await?
            .into_iter()
            .filter(|r| r.enabled && subscribes(&r.event_types, &event.event_type))
            .map(|r| r.id)
            .collect(),
    };
    let tasks: Vec<DeliveryTask> = targets
        .iter()
        .map(|endpoint_id| DeliveryTask {
            delivery_id: match &key {
                Some(key) => replay_delivery_id(&event.id, key, endpoint_id),
                None => ids::new_id(ids::DELIVERY),
            },
            endpoint_id: endpoint_id.clone(),
            attempt: 1,
            not_before: None,
            event: event.clone(),
        })
        .collect();
    let failed = deps
        .deliveries
        .send_all(&tasks)
        .await
        .map_err(Problem::internal)?;
    if failed > 0 {
        return Err(Problem::internal(format!("{failed} deliveries not queued")));
    }
    let deliveries: Vec<_> = tasks
        .iter()
        .map(|t| json!({"delivery_id": t.delivery_id, "webhook_id": t.endpoint_id}))
        .collect();
    http::json(
        202,
        &json!({"event_id": event.id, "deliveries": deliveries}),
    )
}

/// The catalogue, with an example of each event's `data`.
fn event_types() -> HttpResult {
    let items: Vec<_> = EventType::ALL
        .into_iter()
        .map(|t| {
            json!({
                "type": t.as_str(),
                "description": t.description(),
                "example": {
                    "id": "evt_01jd2x4r8ytq3m5n7p9s1v3w5x",
                    "type": t.as_str(),
                    "account_id": "acc_01jd2x1k0a2b4c6d8e0f2g4h6j",
                    "occurred_at": "2026-11-24T12:00:00Z",
                    "data": t.example_data(),
                },
            })
        })
        .collect();
    http::json(
        200,
        &json!({
            "items": items,
            "custom": "tenant-defined types named custom.<name> (lowercase letters, digits, _ and -, dot-separated) can be fired with POST /v1/events",
        }),
    )
}
