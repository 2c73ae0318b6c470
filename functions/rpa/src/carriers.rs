//! `/v1/rpa/carriers…`: the operators whose portals the RPA reads.

use chrono::{DateTime, Utc};
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request};
use nuvem_aws::store::{CarrierRecord, DeleteCarrierOutcome};
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::carrier::{CarrierCode, CarrierPatch, CarrierRequest};
use serde::Serialize;

use crate::Deps;

/// A carrier as the API shows it.
#[derive(Serialize)]
pub(crate) struct CarrierView<'a> {
    code: &'a CarrierCode,
    name: &'a str,
    has_rpa: bool,
    portal_url: Option<&'a str>,
    rpa_settings: &'a serde_json::Value,
    active: bool,
    job_timeout_minutes: u32,
    max_attempts: u32,
    created_at: DateTime<Utc>,
    created_by: &'a Actor,
    updated_at: DateTime<Utc>,
    updated_by: &'a Actor,
}

impl<'a> From<&'a CarrierRecord> for CarrierView<'a> {
    fn from(c: &'a CarrierRecord) -> Self {
        let s = &c.settings;
        CarrierView {
            code: &c.code,
            name: &s.name,
            has_rpa: s.has_rpa,
            portal_url: s.portal_url.as_deref(),
            rpa_settings: &s.rpa_settings,
            active: s.active,
            job_timeout_minutes: s.job_timeout_minutes,
            max_attempts: s.max_attempts,
            created_at: c.created_at,
            created_by: &c.created_by,
            updated_at: c.updated_at,
            updated_by: &c.updated_by,
        }
    }
}

fn no_carrier() -> Problem {
    Problem::not_found("no such carrier")
}

/// The code of the path (a malformed one names no carrier).
fn code(req: &Request) -> Result<CarrierCode, Problem> {
    CarrierCode::parse(http::path_param(req, "code")?).map_err(|_| no_carrier())
}

async fn carrier(deps: &Deps, req: &Request, who: &Principal) -> Result<CarrierRecord, Problem> {
    deps.core
        .store
        .get_carrier(&who.account_id, &code(req)?)
        .await?
        .ok_or_else(no_carrier)
}

pub(crate) async fn create(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body: CarrierRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let (code, settings) = body.validate().map_err(Problem::validation)?;
    let now = Utc::now();
    let carrier = CarrierRecord {
        code,
        account_id: who.account_id.clone(),
        settings,
        created_at: now,
        created_by: who.actor(),
        updated_at: now,
        updated_by: who.actor(),
    };
    if !deps.core.store.create_carrier(&carrier).await? {
        return Err(Problem::conflict(format!(
            "the account has a carrier {} already",
            carrier.code
        )));
    }
    http::json(201, &CarrierView::from(&carrier))
}

pub(crate) async fn list(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let limit = http::page_limit(req)?;
    let page = http::listing(
        deps.core
            .store
            .list_carriers(&who.account_id, limit, http::query(req, "cursor"))
            .await,
    )?;
    http::page_json(&page, CarrierView::from)
}

pub(crate) async fn read(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    http::json(200, &CarrierView::from(&carrier(deps, req, who).await?))
}

pub(crate) async fn update(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let patch: CarrierPatch = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let mut carrier = carrier(deps, req, who).await?;
    carrier.settings = patch
        .apply(&carrier.settings)
        .map_err(Problem::validation)?;
    carrier.updated_at = Utc::now();
    carrier.updated_by = who.actor();
    if !deps.core.store.update_carrier(&carrier).await? {
        return Err(no_carrier());
    }
    http::json(200, &CarrierView::from(&carrier))
}

pub(crate) async fn delete(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    match deps
        .core
        .store
        .delete_carrier(&who.account_id, &code(req)?)
        .await?
    {
        DeleteCarrierOutcome::Deleted => http::no_content(),
        DeleteCarrierOutcome::NotFound => Err(no_carrier()),
        DeleteCarrierOutcome::InUse => Err(Problem::conflict(
            "clients name this carrier; give them another carrier or delete them first",
        )),
    }
}
