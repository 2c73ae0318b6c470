//! API Gateway Lambda authorizer (REQUEST, payload 2.0, simple responses).
//!
//! It never denies at the gateway: API Gateway would answer a bare 403 JSON
//! that is not problem+json. It labels the request instead — an
//! `authenticated` principal (`account_id`, `key_id`, `role`) or an
//! anonymous one with a `reason` — and every protected route goes through
//! `nuvem_aws::http::require`, which answers 401 or 403 problem+json. A request
//! without an `Authorization` header is refused by API Gateway itself (401)
//! before this function runs.

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use chrono::{DateTime, Duration, Utc};
use nuvem_aws::store::{KeyRecord, Store};
use nuvem_domain::keys;
use serde_json::{Value, json};

pub type AuthorizerRequest = ApiGatewayV2CustomAuthorizerV2Request;
pub type AuthorizerResponse = ApiGatewayV2CustomAuthorizerSimpleResponse<Value>;

pub struct Deps {
    pub store: Store,
    /// How long API Gateway keeps this function's answers
    /// (`AUTHORIZER_CACHE_SECONDS`, the template's `AuthorizerCacheSeconds`):
    /// an answer that the key could not be checked is kept as long, so the
    /// route's 503 asks the client to wait that long.
    pub cache_seconds: u32,
}

pub async fn handle(deps: &Deps, req: AuthorizerRequest) -> AuthorizerResponse {
    let header = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let mut response = AuthorizerResponse::default();
    response.is_authorized = true;
    response.context = match authenticate(deps, header, Utc::now()).await {
        Ok(ctx) => ctx,
        Err(Refusal::Invalid(reason)) => json!({ "authenticated": false, "reason": reason }),
        Err(Refusal::Unchecked) => json!({
            "authenticated": false,
            "unavailable": true,
            "retry_after": deps.cache_seconds.max(nuvem_aws::http::RETRY_AFTER_SECS),
            "reason": "the access key could not be checked; try again",
        }),
    };
    response
}

/// Why a request is anonymous.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No usable credential: the route answers 401 with this reason.
    Invalid(&'static str),
    /// The key store did not answer (slow, busy or failing): the route
    /// answers 503 with `Retry-After`, never the gateway's bare 500.
    Unchecked,
}

impl From<&'static str> for Refusal {
    fn from(reason: &'static str) -> Self {
        Refusal::Invalid(reason)
    }
}

const INVALID: &str = "the access key is invalid, expired or revoked";

/// The credential in an `Authorization` header, or why it is not one.
pub fn credential(header: Option<&str>) -> Result<keys::Credential, &'static str> {
    keys::parse_credential(header.unwrap_or(""))
        .map_err(|_| "send Authorization: Bearer <key id>.<secret>")
}

/// The authorizer context for a stored key and the secret presented with
/// it: all the CPU work of a verification, no I/O (see `examples/cpu.rs`).
pub fn admit(key: &KeyRecord, secret: &str, now: DateTime<Utc>) -> Result<Value, &'static str> {
    if !keys::verify_secret(secret, &key.secret_hash)
        || !keys::is_usable(key.status, key.expires, now)
    {
        return Err(INVALID);
    }
    Ok(json!({
        "authenticated": true,
        "account_id": key.account_id,
        "key_id": key.id,
        "key_name": key.name,
        "role": key.role.as_str(),
    }))
}

/// The principal behind a credential, or why there is none. A store fault
/// is a refusal too: the authorizer must never fail, or API Gateway answers
/// a bare 500 for the route.
pub async fn authenticate(
    deps: &Deps,
    header: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Value, Refusal> {
    let credential = credential(header)?;
    let key = match deps.store.get_key(&credential.key_id).await {
        Ok(Some(key)) => key,
        Ok(None) => return Err(INVALID.into()),
        Err(e) => {
            tracing::error!(error = %e, "key lookup failed");
            return Err(Refusal::Unchecked);
        }
    };
    let context = admit(&key, &credential.secret, now)?;
    if keys::last_used_due(key.last_used_at, now)
        && let Err(e) = deps
            .store
            .touch_key(&key.id, now, now - Duration::seconds(60))
            .await
    {
        tracing::warn!(error = %e, key_id = %key.id, "could not record last use");
    }
    Ok(context)
}
