//! `POST /v1/signup` (public): a company asks for an account.

use chrono::Utc;
use nuvem_aws::Core;
use nuvem_aws::http::{self, HttpResult, Problem, Request, Response};
use nuvem_aws::store::{AccountRecord, CreateAccountError};
use nuvem_domain::account::AccountStatus;
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::ids;
use nuvem_domain::signup::SignupRequest;
use nuvem_domain::validation::FieldError;
use serde_json::json;

pub struct Deps {
    pub core: Core,
    /// Signup attempts allowed per source address per hour.
    pub per_address_per_hour: u32,
}

pub async fn handle(deps: &Deps, req: Request) -> Response {
    http::reply(match http::route(&req) {
        "POST /v1/signup" => signup(deps, &req).await,
        _ => Err(Problem::not_found("no such route")),
    })
}

async fn signup(deps: &Deps, req: &Request) -> HttpResult {
    let body: SignupRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let valid = body.validate().map_err(Problem::validation)?;
    let now = Utc::now();
    let store = &deps.core.store;
    // Counted only for well-formed requests, so that a client's typo stores nothing.
    if !store
        .take_sliding_rate_slot(
            "signup",
            http::source_ip(req),
            deps.per_address_per_hour,
            3600,
            now,
        )
        .await?
    {
        return Err(Problem::too_many_requests(
            "too many signups from this address in the last hour; try again later",
        ));
    }
    let account = AccountRecord {
        id: ids::new_id(ids::ACCOUNT),
        organization_name: valid.organization_name,
        document: valid.document.as_str().to_owned(),
        document_kind: valid.document.kind().as_str().to_owned(),
        phone: valid.phone.e164().to_owned(),
        email: valid.email.as_str().to_owned(),
        locale: valid.locale,
        status: AccountStatus::Pending,
        imperius_licenses: valid.imperius_licenses,
        quota_gb: None,
        enforce_quota: false,
        rejection_reason: None,
        created_at: now,
        updated_at: now,
        activated_at: None,
        licenses_in_use: 0,
        version: 0,
    };
    let event = Envelope::new(
        EventType::AccountSignedUp,
        &account.id,
        json!({
            "organization_name": account.organization_name,
            "document_kind": account.document_kind,
            "imperius_licenses": account.imperius_licenses,
        }),
        now,
    );
    match store
        .create_account(&account, &valid.email.normalized(), &event)
        .await
    {
        Ok(()) => {}
        Err(CreateAccountError::DocumentTaken) => {
            return Err(conflict(
                "document",
                "an account with this document already exists",
            ));
        }
        Err(CreateAccountError::EmailTaken) => {
            return Err(conflict(
                "email",
                "an account with this email already exists",
            ));
        }
        Err(CreateAccountError::Store(e)) => return Err(e.into()),
    }
    deps.core.emit(&event, None).await;
    nuvem_aws::metrics::signup();
    http::json(201, &json!({ "id": account.id, "status": account.status }))
}

fn conflict(field: &str, message: &str) -> Problem {
    let mut p = Problem::conflict(message);
    p.errors = vec![FieldError::new(field, message)];
    p
}
