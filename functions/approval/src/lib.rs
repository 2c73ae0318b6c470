//! `/v1/admin/accounts…` (role `admin`): review, approve, reject and adjust
//! accounts. Every change is conditioned on the account's version and
//! written with its audit entry and event in one transaction.

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::Utc;
use nuvem_aws::Core;
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request, Response};
use nuvem_aws::queue::ACTIVATION_TOKEN_ATTRIBUTE;
use nuvem_aws::store::{AccountRecord, AuditRecord};
use nuvem_domain::account::{self, AccountStatus};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::ids;
use nuvem_domain::keys::Role;
use nuvem_domain::validation::FieldError;
use serde::Deserialize;
use serde_json::json;

pub struct Deps {
    pub core: Core,
}

pub async fn handle(deps: &Deps, req: Request) -> Response {
    http::reply(route(deps, &req).await)
}

async fn route(deps: &Deps, req: &Request) -> HttpResult {
    let admin = http::require(req, &[Role::Admin])?;
    match http::route(req) {
        "GET /v1/admin/accounts" => list(deps, req).await,
        "GET /v1/admin/accounts/{id}" => http::json(200, &load(deps, req).await?),
        "POST /v1/admin/accounts/{id}/approve" => approve(deps, req, &admin).await,
        "POST /v1/admin/accounts/{id}/reject" => reject(deps, req, &admin).await,
        "POST /v1/admin/accounts/{id}/activation" => reissue(deps, req, &admin).await,
        "PATCH /v1/admin/accounts/{id}" => adjust(deps, req, &admin).await,
        "GET /v1/admin/accounts/{id}/audit" => audit(deps, req).await,
        _ => Err(Problem::not_found("no such route")),
    }
}

async fn list(deps: &Deps, req: &Request) -> HttpResult {
    let status = match http::query(req, "status") {
        None => AccountStatus::Pending,
        Some(s) => s.parse().map_err(|_| {
            Problem::validation(vec![FieldError::new(
                "status",
                "must be pending, active or rejected",
            )])
        })?,
    };
    let page = http::listing(
        deps.core
            .store
            .list_accounts(status, http::page_limit(req)?, http::query(req, "cursor"))
            .await,
    )?;
    http::json(200, &page)
}

async fn load(deps: &Deps, req: &Request) -> Result<AccountRecord, Problem> {
    let id = http::path_param(req, "id")?;
    let missing = || Problem::not_found(format!("no account {id}"));
    if !ids::has_prefix(id, ids::ACCOUNT) {
        return Err(missing());
    }
    deps.core.store.get_account(id).await?.ok_or_else(missing)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    quota_gb: f64,
    imperius_licenses: u32,
    /// A hard quota: writes blocked at 100 % (off by default).
    #[serde(default)]
    enforce_quota: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustBody {
    #[serde(default, deserialize_with = "nuvem_domain::validation::not_null")]
    quota_gb: Option<f64>,
    #[serde(default, deserialize_with = "nuvem_domain::validation::not_null")]
    imperius_licenses: Option<u32>,
    #[serde(default, deserialize_with = "nuvem_domain::validation::not_null")]
    enforce_quota: Option<bool>,
}

fn check_terms(quota_gb: Option<f64>, licenses: Option<u32>) -> Result<(), Problem> {
    let mut errors = Vec::new();
    if let Some(q) = quota_gb
        && let Err(e) = account::validate_quota_gb(q)
    {
        errors.push(e);
    }
    if let Some(l) = licenses
        && let Err(e) = account::validate_licenses(l)
    {
        errors.push(e);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::validation(errors))
    }
}

/// A change to apply: the new state, what to call it, and its event.
struct Change {
    action: &'static str,
    after: AccountRecord,
    event: Envelope,
    extra: Vec<TransactWriteItem>,
}

async fn commit(
    deps: &Deps,
    admin: &Principal,
    before: &AccountRecord,
    change: Change,
) -> Result<(), Problem> {
    let audit = AuditRecord {
        id: ids::new_id(ids::AUDIT),
        account_id: before.id.clone(),
        action: change.action.to_owned(),
        actor_key_id: admin.key_id.clone(),
        actor_role: admin.role.as_str().to_owned(),
        before: serde_json::to_value(before).map_err(Problem::internal)?,
        after: serde_json::to_value(&change.after).map_err(Problem::internal)?,
        at: change.after.updated_at,
    };
    let saved = deps
        .core
        .store
        .save_account_change(before, &change.after, &audit, &change.event, change.extra)
        .await?;
    if saved {
        Ok(())
    } else {
        Err(Problem::conflict(
            "the account changed meanwhile; read it again and retry",
        ))
    }
}

fn transition_conflict(e: account::TransitionError) -> Problem {
    Problem::conflict(e.to_string())
}

async fn approve(deps: &Deps, req: &Request, admin: &Principal) -> HttpResult {
    let body: ApproveBody = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    check_terms(Some(body.quota_gb), Some(body.imperius_licenses))?;
    let before = load(deps, req).await?;
    let status = account::approve(before.status).map_err(transition_conflict)?;
    let now = Utc::now();
    let (token, expires_at, activation) = deps.core.store.new_activation(&before.id, now)?;
    let after = AccountRecord {
        status,
        quota_gb: Some(body.quota_gb),
        imperius_licenses: body.imperius_licenses,
        enforce_quota: body.enforce_quota,
        updated_at: now,
        ..before.clone()
    };
    let event = Envelope::new(
        EventType::AccountApproved,
        &before.id,
        json!({
            "quota_gb": body.quota_gb,
            "imperius_licenses": body.imperius_licenses,
            "enforce_quota": body.enforce_quota,
            "activation_expires_at": expires_at,
        }),
        now,
    );
    let change = Change {
        action: "approve",
        after,
        event,
        extra: vec![activation],
    };
    let secret = (ACTIVATION_TOKEN_ATTRIBUTE, token.expose());
    apply(deps, admin, &before, change, Some(secret)).await
}

/// `POST …/activation`: emails a new activation link to an approved account
/// that has not activated (the first expired or got lost). Earlier links stay
/// valid until they expire; whichever is used first activates the account.
async fn reissue(deps: &Deps, req: &Request, admin: &Principal) -> HttpResult {
    let before = load(deps, req).await?;
    let status = account::reissue_activation(before.status).map_err(transition_conflict)?;
    if before.activated_at.is_some() {
        return Err(Problem::conflict(
            "the account is already activated; its owner manages keys at /v1/keys",
        ));
    }
    let now = Utc::now();
    let (token, expires_at, activation) = deps.core.store.new_activation(&before.id, now)?;
    let after = AccountRecord {
        status,
        updated_at: now,
        ..before.clone()
    };
    let event = Envelope::new(
        EventType::AccountActivationReissued,
        &before.id,
        json!({ "activation_expires_at": expires_at }),
        now,
    );
    let change = Change {
        action: "reissue_activation",
        after,
        event,
        extra: vec![activation],
    };
    let secret = (ACTIVATION_TOKEN_ATTRIBUTE, token.expose());
    apply(deps, admin, &before, change, Some(secret)).await
}

async fn reject(deps: &Deps, req: &Request, admin: &Principal) -> HttpResult {
    let body: RejectBody = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(Problem::validation(vec![FieldError::new(
            "reason",
            "must have 1 to 1000 characters",
        )]));
    }
    let before = load(deps, req).await?;
    let status = account::reject(before.status).map_err(transition_conflict)?;
    let now = Utc::now();
    let after = AccountRecord {
        status,
        rejection_reason: Some(reason.clone()),
        updated_at: now,
        ..before.clone()
    };
    let event = Envelope::new(
        EventType::AccountRejected,
        &before.id,
        json!({ "reason": reason }),
        now,
    );
    apply(
        deps,
        admin,
        &before,
        Change {
            action: "reject",
            after,
            event,
            extra: vec![],
        },
        None,
    )
    .await
}

async fn adjust(deps: &Deps, req: &Request, admin: &Principal) -> HttpResult {
    let body: AdjustBody = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    if body.quota_gb.is_none() && body.imperius_licenses.is_none() && body.enforce_quota.is_none() {
        return Err(Problem::validation(vec![FieldError::new(
            "body",
            "give quota_gb, imperius_licenses, enforce_quota or several",
        )]));
    }
    check_terms(body.quota_gb, body.imperius_licenses)?;
    let before = load(deps, req).await?;
    let status = account::adjust(before.status).map_err(transition_conflict)?;
    if let Some(licenses) = body.imperius_licenses
        && licenses < before.licenses_in_use
    {
        return Err(Problem::conflict(format!(
            "{} buckets use an Imperius licence; turn some off before lowering the licences to {licenses}",
            before.licenses_in_use
        )));
    }
    let now = Utc::now();
    let after = AccountRecord {
        status,
        quota_gb: body.quota_gb.or(before.quota_gb),
        imperius_licenses: body.imperius_licenses.unwrap_or(before.imperius_licenses),
        enforce_quota: body.enforce_quota.unwrap_or(before.enforce_quota),
        updated_at: now,
        ..before.clone()
    };
    let event = Envelope::new(
        EventType::AccountUpdated,
        &before.id,
        json!({
            "quota_gb": after.quota_gb,
            "imperius_licenses": after.imperius_licenses,
            "enforce_quota": after.enforce_quota,
            "previous": {
                "quota_gb": before.quota_gb,
                "imperius_licenses": before.imperius_licenses,
                "enforce_quota": before.enforce_quota,
            },
        }),
        now,
    );
    let reply = apply(
        deps,
        admin,
        &before,
        Change {
            action: "adjust",
            after,
            event,
            extra: vec![],
        },
        None,
    )
    .await?;
    // A new quota moves the alert level at once: no alert storm when it is
    // raised, an immediate alert when it is cut below usage.
    if let Err(e) = deps.core.evaluate_quota(&before.id, Utc::now()).await {
        tracing::error!(account_id = %before.id, error = %e, "quota not re-evaluated");
    }
    Ok(reply)
}

/// Commits a change, queues its event, answers the account.
async fn apply(
    deps: &Deps,
    admin: &Principal,
    before: &AccountRecord,
    mut change: Change,
    secret: Option<(&str, &str)>,
) -> HttpResult {
    change.after.version = before.version + 1;
    let (after, event) = (change.after.clone(), change.event.clone());
    let action = change.action;
    commit(deps, admin, before, change).await?;
    if matches!(action, "approve" | "reject") {
        nuvem_aws::metrics::account_review(action);
    }
    deps.core.emit(&event, secret).await;
    http::json(200, &after)
}

async fn audit(deps: &Deps, req: &Request) -> HttpResult {
    let account = load(deps, req).await?;
    let page = http::listing(
        deps.core
            .store
            .list_audit(
                &account.id,
                http::page_limit(req)?,
                http::query(req, "cursor"),
            )
            .await,
    )?;
    http::json(200, &page)
}
