//! `/v1/rpa/clients…`: whose invoices are downloaded and filed.

use chrono::{DateTime, Utc};
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request};
use nuvem_aws::secrets::SealContext;
use nuvem_aws::store::{ClientFilter, ClientRecord, ClientWriteError};
use nuvem_domain::document::Document;
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::client::{
    self as rules, ClientPatch, ClientRequest, ClientSettings, PasswordChange, PortalPassword,
};
use nuvem_domain::validation::FieldError;
use serde::Serialize;

use crate::Deps;

/// A client as the API shows it: never the password, only whether there
/// is one.
#[derive(Serialize)]
pub(crate) struct ClientView<'a> {
    id: &'a str,
    #[serde(flatten)]
    settings: &'a ClientSettings,
    has_portal_password: bool,
    created_at: DateTime<Utc>,
    created_by: &'a Actor,
    updated_at: DateTime<Utc>,
    updated_by: &'a Actor,
}

impl<'a> From<&'a ClientRecord> for ClientView<'a> {
    fn from(c: &'a ClientRecord) -> Self {
        ClientView {
            id: &c.id,
            settings: &c.settings,
            has_portal_password: c.sealed_password.is_some(),
            created_at: c.created_at,
            created_by: &c.created_by,
            updated_at: c.updated_at,
            updated_by: &c.updated_by,
        }
    }
}

fn no_client() -> Problem {
    Problem::not_found("no such client")
}

fn write_problem(e: ClientWriteError, settings: &ClientSettings) -> Problem {
    match e {
        ClientWriteError::NoCarrier => {
            Problem::validation(vec![no_such_carrier(&settings.carrier)])
        }
        ClientWriteError::Taken => Problem::conflict(
            "the account has a client with this cnpj, carrier, unit and service already",
        ),
        ClientWriteError::Changed => {
            Problem::conflict("the client changed while this request was made; try again")
        }
    }
}

pub(crate) fn no_such_carrier(code: &CarrierCode) -> FieldError {
    FieldError::new(
        "carrier",
        format!("the account has no carrier {code}; create it first"),
    )
}

/// The client of the path, in the caller's account.
async fn client(deps: &Deps, req: &Request, who: &Principal) -> Result<ClientRecord, Problem> {
    let id = http::path_param(req, "id")?;
    if !rules::is_client_id(id) {
        return Err(no_client());
    }
    deps.core
        .store
        .get_client(&who.account_id, id)
        .await?
        .ok_or_else(no_client)
}

/// The password sealed for its client, so that it opens for nothing else.
pub(crate) async fn seal(
    deps: &Deps,
    account_id: &str,
    client_id: &str,
    password: &PortalPassword,
) -> Result<String, Problem> {
    deps.sealer
        .seal(
            password.expose(),
            &SealContext::rpa_portal_password(account_id, client_id),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "sealing a portal password failed");
            Problem::unavailable("could not seal the portal password; try again shortly", 5)
        })
}

/// A new client record (its password sealed) in the caller's account.
pub(crate) async fn new_record(
    deps: &Deps,
    who: &Principal,
    settings: ClientSettings,
    password: Option<&PortalPassword>,
) -> Result<ClientRecord, Problem> {
    let id = rules::new_client_id();
    let sealed_password = match password {
        Some(p) => Some(seal(deps, &who.account_id, &id, p).await?),
        None => None,
    };
    let now = Utc::now();
    Ok(ClientRecord {
        id,
        account_id: who.account_id.clone(),
        unique_key: settings.unique_key(),
        settings,
        sealed_password,
        created_at: now,
        created_by: who.actor(),
        updated_at: now,
        updated_by: who.actor(),
        version: 1,
    })
}

/// `current` with new settings and password, changed by `who` now.
pub(crate) async fn changed_record(
    deps: &Deps,
    who: &Principal,
    current: &ClientRecord,
    settings: ClientSettings,
    password: PasswordChange,
) -> Result<ClientRecord, Problem> {
    let sealed_password = match password {
        PasswordChange::Keep => current.sealed_password.clone(),
        PasswordChange::Clear => None,
        PasswordChange::Set(p) => Some(seal(deps, &current.account_id, &current.id, &p).await?),
    };
    Ok(ClientRecord {
        unique_key: settings.unique_key(),
        settings,
        sealed_password,
        updated_at: Utc::now(),
        updated_by: who.actor(),
        version: current.version + 1,
        ..current.clone()
    })
}

pub(crate) async fn create(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body: ClientRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let (settings, password) = body.validate().map_err(Problem::validation)?;
    let client = new_record(deps, who, settings, password.as_ref()).await?;
    deps.core
        .store
        .create_client(&client, true)
        .await?
        .map_err(|e| write_problem(e, &client.settings))?;
    http::json(201, &ClientView::from(&client))
}

/// `?carrier=&active=&cnpj=` of a listing.
fn filter(req: &Request) -> Result<ClientFilter, Problem> {
    let mut errors = Vec::new();
    let carrier = http::query_as(req, "carrier", &mut errors, CarrierCode::parse);
    let cnpj = http::query_as(req, "cnpj", &mut errors, |c| {
        Document::parse(c).map(|doc| doc.as_str().to_owned())
    });
    let active = http::bool_query(req, "active")?;
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    Ok(ClientFilter {
        carrier,
        active,
        cnpj,
    })
}

pub(crate) async fn list(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let filter = filter(req)?;
    let limit = http::page_limit(req)?;
    let page = http::listing(
        deps.core
            .store
            .list_clients(&who.account_id, &filter, limit, http::query(req, "cursor"))
            .await,
    )?;
    http::page_json(&page, ClientView::from)
}

pub(crate) async fn read(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    http::json(200, &ClientView::from(&client(deps, req, who).await?))
}

pub(crate) async fn update(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let patch: ClientPatch = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let current = client(deps, req, who).await?;
    let (settings, password) = patch
        .apply(&current.settings)
        .map_err(Problem::validation)?;
    let next = changed_record(deps, who, &current, settings, password).await?;
    deps.core
        .store
        .update_client(&current, &next, true)
        .await?
        .map_err(|e| write_problem(e, &next.settings))?;
    http::json(200, &ClientView::from(&next))
}

pub(crate) async fn delete(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let id = http::path_param(req, "id")?;
    if rules::is_client_id(id) && deps.core.store.delete_client(&who.account_id, id).await? {
        http::no_content()
    } else {
        Err(no_client())
    }
}
