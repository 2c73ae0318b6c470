//! `/v1/rpa/processes…` and `/v1/rpa/reports/monthly`: one client's
//! invoice for one month, and a month's totals.

use chrono::{DateTime, Utc};
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request};
use nuvem_aws::store::{AuditRecord, ProcessFilter, ProcessRecord};
use nuvem_domain::ids;
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::events;
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::{self as rules, Invoice, Move, Origin, ProcessStatus};

use nuvem_domain::validation::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Deps;

/// A process as the API shows it (never where its invoice is stored).
#[derive(Serialize)]
struct ProcessView<'a> {
    id: &'a str,
    client_id: &'a str,
    legal_name: &'a str,
    carrier: &'a CarrierCode,
    month: Month,
    status: ProcessStatus,
    invoice: Option<InvoiceView<'a>>,
    manual_upload: bool,
    approved_by: Option<&'a Actor>,
    approved_at: Option<DateTime<Utc>>,
    filed_at: Option<DateTime<Utc>>,
    filing_protocol: Option<&'a str>,
    download_attempts: u32,
    filing_attempts: u32,
    /// The execution under way, if any.
    active_execution: Option<&'a str>,
    /// A filing that ended without a known outcome: another filing waits
    /// for a deliberate retry.
    unresolved_filing: Option<&'a str>,
    origin: &'a Origin,
    created_at: DateTime<Utc>,
    created_by: Option<&'a Actor>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct InvoiceView<'a> {
    file_name: &'a str,
    due_date: Option<chrono::NaiveDate>,
    amount_cents: Option<i64>,
    access_key: Option<&'a str>,
    received_at: DateTime<Utc>,
}

impl<'a> From<&'a ProcessRecord> for ProcessView<'a> {
    fn from(p: &'a ProcessRecord) -> Self {
        ProcessView {
            id: &p.id,
            client_id: &p.client_id,
            legal_name: &p.legal_name,
            carrier: &p.carrier,
            month: p.month,
            status: p.status,
            invoice: p.invoice.as_ref().map(|i: &Invoice| InvoiceView {
                file_name: &i.file_name,
                due_date: i.due_date,
                amount_cents: i.amount_cents,
                access_key: i.access_key.as_deref(),
                received_at: i.received_at,
            }),
            manual_upload: p.manual_upload,
            approved_by: p.approved_by.as_ref(),
            approved_at: p.approved_at,
            filed_at: p.filed_at,
            filing_protocol: p.filing_protocol.as_deref(),
            download_attempts: p.download_attempts,
            filing_attempts: p.filing_attempts,
            active_execution: p.active_execution.as_deref(),
            unresolved_filing: p.unresolved_filing.as_deref(),
            origin: &p.origin,
            created_at: p.created_at,
            created_by: p.created_by.as_ref(),
            updated_at: p.updated_at,
        }
    }
}

fn no_process() -> Problem {
    Problem::not_found("no such process")
}

/// The process of the path, in the caller's account.
pub(crate) async fn process(
    deps: &Deps,
    req: &Request,
    who: &Principal,
) -> Result<ProcessRecord, Problem> {
    let id = http::path_param(req, "id")?;
    let (client_id, month) = rules::parse_process_id(id).ok_or_else(no_process)?;
    deps.core
        .store
        .get_process(&who.account_id, &client_id, month)
        .await?
        .ok_or_else(no_process)
}

/// `POST /v1/rpa/processes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessRequest {
    client_id: String,
    month: String,
}

pub(crate) async fn create(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body: ProcessRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let month = Month::parse(&body.month)
        .map_err(|e| Problem::validation(vec![FieldError::new("month", e.to_string())]))?;
    let unknown_client = || {
        Problem::validation(vec![FieldError::new(
            "client_id",
            "the account has no such client",
        )])
    };
    if !nuvem_domain::rpa::client::is_client_id(&body.client_id) {
        return Err(unknown_client());
    }
    let client = deps
        .core
        .store
        .get_client(&who.account_id, &body.client_id)
        .await?
        .ok_or_else(unknown_client)?;
    if !client.settings.active {
        return Err(Problem::validation(vec![FieldError::new(
            "client_id",
            "the client is inactive",
        )]));
    }
    let process = ProcessRecord::new_for(
        &client,
        month,
        Origin::Request,
        Some(who.actor()),
        Utc::now(),
    )
    .ok_or_else(unknown_client)?;
    if !deps.core.store.create_process(&process).await? {
        return Err(Problem::conflict(format!(
            "the client has a process for {month} already: {}",
            process.id
        )));
    }
    http::json(201, &ProcessView::from(&process))
}

/// `?status=&month=&carrier=&client_id=` of a listing.
fn filter(req: &Request) -> Result<ProcessFilter, Problem> {
    let mut errors = Vec::new();
    let status = http::query_as(req, "status", &mut errors, |s| {
        s.parse::<ProcessStatus>().map_err(
            |_| "must be awaiting_download, awaiting_approval, awaiting_tax_filing or filed",
        )
    });
    let month = http::query_as(req, "month", &mut errors, Month::parse);
    let carrier = http::query_as(req, "carrier", &mut errors, CarrierCode::parse);
    let client_id = http::query_as(req, "client_id", &mut errors, |c| {
        nuvem_domain::rpa::client::is_client_id(c)
            .then(|| c.to_owned())
            .ok_or("is not a client id")
    });
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    Ok(ProcessFilter {
        status,
        month,
        carrier,
        client_id,
    })
}

pub(crate) async fn list(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let filter = filter(req)?;
    let limit = http::page_limit(req)?;
    let page = http::listing(
        deps.core
            .store
            .list_processes(&who.account_id, &filter, limit, http::query(req, "cursor"))
            .await,
    )?;
    http::page_json(&page, ProcessView::from)
}

pub(crate) async fn read(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    http::json(200, &ProcessView::from(&process(deps, req, who).await?))
}

/// Moves the process of the path as `who` asked, with its event and audit
/// entry; 409 naming the status when the move is not allowed from it.
async fn apply(
    deps: &Deps,
    req: &Request,
    who: &Principal,
    attempted: Move,
    change: impl Fn(&mut ProcessRecord, DateTime<Utc>),
) -> HttpResult {
    let current = process(deps, req, who).await?;
    let status = rules::next(current.status, attempted)
        .map_err(|refused| Problem::conflict(refused.to_string()))?;
    let now = Utc::now();
    let mut next = ProcessRecord {
        status,
        updated_at: now,
        version: current.version + 1,
        ..current.clone()
    };
    change(&mut next, now);
    let actor = who.actor();
    let event = events::status_changed(
        &who.account_id,
        &next.event_ref(),
        current.status,
        next.status,
        Some(&actor),
        now,
    );
    let audit = AuditRecord {
        id: ids::new_id(ids::AUDIT),
        account_id: who.account_id.clone(),
        action: format!("rpa.process.{}", attempted.as_str()),
        actor_key_id: who.key_id.clone(),
        actor_role: who.role.as_str().to_owned(),
        before: json!({"process_id": current.id, "status": current.status}),
        after: json!({"process_id": next.id, "status": next.status, "key_name": actor.key_name}),
        at: now,
    };
    if !deps
        .core
        .store
        .update_process(&current, &next, Some(&event), Some(&audit))
        .await?
    {
        return Err(Problem::conflict(
            "the process changed while this request was made; read it and try again",
        ));
    }
    deps.core.emit(&event, None).await;
    http::json(200, &ProcessView::from(&next))
}

pub(crate) async fn approve(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let actor = who.actor();
    apply(deps, req, who, Move::Approve, |p, now| {
        p.approved_by = Some(actor.clone());
        p.approved_at = Some(now);
    })
    .await
}

/// `GET /v1/rpa/reports/monthly?month=YYYY-MM`, as JSON or, with `Accept:
/// text/csv`, as CSV.
pub(crate) async fn monthly_report(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let month = http::query(req, "month")
        .ok_or_else(|| Problem::validation(vec![FieldError::new("month", "is required (YYYY-MM)")]))
        .and_then(|m| {
            Month::parse(m)
                .map_err(|e| Problem::validation(vec![FieldError::new("month", e.to_string())]))
        })?;
    let report = deps
        .core
        .store
        .monthly_report(&who.account_id, month)
        .await?;
    if http::accepts(req, "text/csv") {
        http::text(200, "text/csv; charset=utf-8", report.to_csv())
    } else {
        http::json(200, &report)
    }
}
