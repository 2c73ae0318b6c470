//! Access keys: `POST /v1/activate` (public, single-use token) hands out an
//! account's first `owner` key; owners create, list and revoke keys; admins
//! list and revoke the platform's admin keys.

use chrono::{DateTime, Utc};
use nuvem_aws::Core;
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request, Response};
use nuvem_aws::store::{KeyRecord, RedeemError, Redeemed, RevokeOutcome};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::keys::{self, KeyStatus, NewKeyRequest, Role};
use nuvem_domain::validation::FieldError;
use nuvem_domain::{ids, token};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub struct Deps {
    pub core: Core,
}

/// Roles an owner may hand out; `admin` is never assignable through the API.
const ASSIGNABLE: [Role; 3] = [Role::Owner, Role::Approver, Role::Operator];

/// Who lists and revokes the keys of their own account: a tenant's owners,
/// and the platform's admins for the admin keys (their account is the
/// platform's, from the authorizer, so never a tenant's). Admin keys are
/// only ever minted by the operator CLI, never through the API.
const MANAGERS: &[Role] = &[Role::Owner, Role::Admin];

pub async fn handle(deps: &Deps, req: Request) -> Response {
    http::reply(route(deps, &req).await)
}

async fn route(deps: &Deps, req: &Request) -> HttpResult {
    match http::route(req) {
        "POST /v1/activate" => activate(deps, req).await,
        "POST /v1/keys" => create(deps, req, &http::require(req, &[Role::Owner])?).await,
        "GET /v1/keys" => list(deps, req, &http::require(req, MANAGERS)?).await,
        "DELETE /v1/keys/{id}" => revoke(deps, req, &http::require(req, MANAGERS)?).await,
        _ => Err(Problem::not_found("no such route")),
    }
}

/// A key as the API shows it: never the secret, never its hash.
#[derive(Serialize)]
struct KeyView<'a> {
    id: &'a str,
    name: &'a str,
    role: Role,
    status: KeyStatus,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a KeyRecord> for KeyView<'a> {
    fn from(k: &'a KeyRecord) -> Self {
        KeyView {
            id: &k.id,
            name: &k.name,
            role: k.role,
            status: k.status,
            created_at: k.created_at,
            expires_at: k.expires,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key with its secret: the only time the secret is ever shown.
fn issued(key: &KeyRecord, secret: &str) -> HttpResult {
    http::json(
        201,
        &json!({
            "key": KeyView::from(key),
            "secret": secret,
            "credential": format!("{}.{}", key.id, secret),
            "note": "store the secret now: it is shown only once",
        }),
    )
}

fn new_record(
    account_id: &str,
    name: String,
    role: Role,
    expires: Option<DateTime<Utc>>,
    secret: &str,
    now: DateTime<Utc>,
) -> KeyRecord {
    KeyRecord {
        id: ids::new_id(ids::KEY),
        account_id: account_id.to_owned(),
        name,
        role,
        status: KeyStatus::Active,
        secret_hash: keys::hash_secret(secret),
        created_at: now,
        expires,
        last_used_at: None,
        revoked_at: None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    token: String,
}

async fn activate(deps: &Deps, req: &Request) -> HttpResult {
    let body: ActivateBody = http::json_body(req, 4 * 1024)?;
    let invalid = || {
        Problem::validation(vec![FieldError::new(
            "token",
            "the activation token is invalid, expired or already used",
        )])
    };
    if body.token.is_empty() || body.token.len() > 200 {
        return Err(invalid());
    }
    let now = Utc::now();
    // Derived from the token and a salt, so a repeat can answer the same.
    let salt = keys::new_key_salt();
    let secret = keys::first_key_secret(&body.token, &salt);
    let redeemed = deps
        .core
        .store
        .redeem_activation(&token::hash_token(&body.token), &salt, now, |account_id| {
            let key = new_record(
                account_id,
                "first owner key".into(),
                Role::Owner,
                None,
                secret.expose(),
                now,
            );
            let event = key_event(EventType::KeyCreated, &key, now);
            (key, event)
        })
        .await
        .map_err(|e| match e {
            RedeemError::Invalid => invalid(),
            RedeemError::Store(e) => e.into(),
        })?;
    match redeemed {
        Redeemed::New(key, event) => {
            deps.core.emit(&event, None).await;
            issued(&key, secret.expose())
        }
        Redeemed::Repeat(key, salt) => {
            let secret = keys::first_key_secret(&body.token, &salt);
            // Never expected to fail: rather no answer than a wrong credential.
            if !keys::verify_secret(secret.expose(), &key.secret_hash) {
                return Err(invalid());
            }
            issued(&key, secret.expose())
        }
    }
}

async fn create(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let body: NewKeyRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let now = Utc::now();
    let valid = body
        .validate(now, &ASSIGNABLE)
        .map_err(Problem::validation)?;
    let secret = keys::generate_secret();
    let key = new_record(
        &owner.account_id,
        valid.name,
        valid.role,
        valid.expires_at,
        secret.expose(),
        now,
    );
    let event = key_event(EventType::KeyCreated, &key, now);
    deps.core.store.create_key(&key, Some(&event)).await?;
    deps.core.emit(&event, None).await;
    issued(&key, secret.expose())
}

async fn list(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let page = http::listing(
        deps.core
            .store
            .list_keys(
                &owner.account_id,
                http::page_limit(req)?,
                http::query(req, "cursor"),
            )
            .await,
    )?;
    let items: Vec<KeyView> = page.items.iter().map(KeyView::from).collect();
    http::json(
        200,
        &json!({ "items": items, "next_cursor": page.next_cursor }),
    )
}

async fn revoke(deps: &Deps, req: &Request, owner: &Principal) -> HttpResult {
    let id = http::path_param(req, "id")?;
    let not_found = || Problem::not_found(format!("no key {id}"));
    if !ids::has_prefix(id, ids::KEY) {
        return Err(not_found());
    }
    let now = Utc::now();
    let event = Envelope::new(
        EventType::KeyRevoked,
        &owner.account_id,
        json!({ "key_id": id }),
        now,
    );
    match deps
        .core
        .store
        .revoke_key(&owner.account_id, id, now, &event)
        .await?
    {
        RevokeOutcome::NotFound => Err(not_found()),
        RevokeOutcome::AlreadyRevoked => http::no_content(),
        RevokeOutcome::Revoked => {
            deps.core.emit(&event, None).await;
            http::no_content()
        }
    }
}

fn key_event(kind: EventType, key: &KeyRecord, now: DateTime<Utc>) -> Envelope {
    Envelope::new(
        kind,
        &key.account_id,
        json!({ "key_id": key.id, "name": key.name, "role": key.role }),
        now,
    )
}
