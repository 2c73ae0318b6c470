//! The RPA invoice pipeline's API: `/v1/rpa/…`. Owners keep carriers and
//! clients (one by one or by CSV); approvers and operators read them.
//! Operators (and owners) create a month's processes and run their steps;
//! approvers (and owners) approve invoices.
//!
//! The account is always the caller's (from the authorizer): another
//! account's carrier or client is "not found". Every change records the
//! key (id and name) that made it. A client's portal password is sealed
//! with KMS for its account and client, and never returned or logged.

mod carriers;
mod clients;
mod executions;
mod import;
mod processes;
mod schedules;
mod uploads;

use nuvem_aws::Core;
use nuvem_aws::http::{self, HttpResult, Problem, Request, Response};
use nuvem_aws::invoices::InvoiceLinks;
use nuvem_aws::rpa_jobs::RpaJobQueue;
use nuvem_aws::secrets::Sealer;
use nuvem_domain::keys::Role;
use nuvem_domain::rpa::execution::Step;

pub struct Deps {
    pub core: Core,
    pub sealer: Sealer,
    /// Where the steps of processes go (`rpa-worker`).
    pub queue: RpaJobQueue,
    pub invoices: InvoiceLinks,
}

/// Who keeps the account's carriers and clients.
const OWNER: &[Role] = &[Role::Owner];
/// Everyone of the account's RPA team.
const TEAM: &[Role] = &[Role::Owner, Role::Approver, Role::Operator];
/// Who runs the pipeline's steps.
const RUNNERS: &[Role] = &[Role::Owner, Role::Operator];
/// Who approves invoices.
const APPROVERS: &[Role] = &[Role::Owner, Role::Approver];

pub async fn handle(deps: &Deps, req: Request) -> Response {
    http::reply(route(deps, &req).await)
}

async fn route(deps: &Deps, req: &Request) -> HttpResult {
    let route = http::route(req);
    // `/v1/rpa/clients/import` also fits the `{id}` routes, so API Gateway
    // sends its other methods here: the path exists, only POST does not.
    if route.ends_with(" /v1/rpa/clients/{id}") && http::path_param(req, "id")? == "import" {
        return Err(Problem::method_not_allowed(&["POST"]));
    }
    match route {
        "POST /v1/rpa/carriers" => carriers::create(deps, req, &http::require(req, OWNER)?).await,
        "GET /v1/rpa/carriers" => carriers::list(deps, req, &http::require(req, TEAM)?).await,
        "GET /v1/rpa/carriers/{code}" => {
            carriers::read(deps, req, &http::require(req, TEAM)?).await
        }
        "PATCH /v1/rpa/carriers/{code}" => {
            carriers::update(deps, req, &http::require(req, OWNER)?).await
        }
        "DELETE /v1/rpa/carriers/{code}" => {
            carriers::delete(deps, req, &http::require(req, OWNER)?).await
        }
        "POST /v1/rpa/clients" => clients::create(deps, req, &http::require(req, OWNER)?).await,
        "GET /v1/rpa/clients" => clients::list(deps, req, &http::require(req, TEAM)?).await,
        "POST /v1/rpa/clients/import" => {
            import::import(deps, req, &http::require(req, OWNER)?).await
        }
        "GET /v1/rpa/clients/{id}" => clients::read(deps, req, &http::require(req, TEAM)?).await,
        "PATCH /v1/rpa/clients/{id}" => {
            clients::update(deps, req, &http::require(req, OWNER)?).await
        }
        "DELETE /v1/rpa/clients/{id}" => {
            clients::delete(deps, req, &http::require(req, OWNER)?).await
        }
        "POST /v1/rpa/processes" => {
            processes::create(deps, req, &http::require(req, RUNNERS)?).await
        }
        "GET /v1/rpa/processes" => processes::list(deps, req, &http::require(req, TEAM)?).await,
        "GET /v1/rpa/processes/{id}" => {
            processes::read(deps, req, &http::require(req, TEAM)?).await
        }
        "POST /v1/rpa/processes/{id}/approve" => {
            processes::approve(deps, req, &http::require(req, APPROVERS)?).await
        }
        "POST /v1/rpa/processes/{id}/download" => {
            let who = http::require(req, RUNNERS)?;
            executions::begin(deps, req, &who, Some(Step::DownloadInvoice)).await
        }
        "POST /v1/rpa/processes/{id}/tax-filing" => {
            let who = http::require(req, RUNNERS)?;
            executions::begin(deps, req, &who, Some(Step::TaxFiling)).await
        }
        "POST /v1/rpa/processes/{id}/retry" => {
            executions::begin(deps, req, &http::require(req, RUNNERS)?, None).await
        }
        "POST /v1/rpa/processes/{id}/cancel" => {
            executions::cancel(deps, req, &http::require(req, RUNNERS)?).await
        }
        "GET /v1/rpa/processes/{id}/executions" => {
            executions::list(deps, req, &http::require(req, TEAM)?).await
        }
        "GET /v1/rpa/processes/{id}/executions/{execution_id}" => {
            executions::read(deps, req, &http::require(req, TEAM)?).await
        }
        "GET /v1/rpa/processes/{id}/executions/{execution_id}/logs" => {
            executions::logs(deps, req, &http::require(req, TEAM)?).await
        }
        "POST /v1/rpa/processes/{id}/invoice-upload" => {
            uploads::create(deps, req, &http::require(req, RUNNERS)?).await
        }
        "GET /v1/rpa/processes/{id}/invoice" => {
            executions::invoice(deps, req, &http::require(req, TEAM)?).await
        }
        "GET /v1/rpa/reports/monthly" => {
            processes::monthly_report(deps, req, &http::require(req, TEAM)?).await
        }
        "POST /v1/rpa/schedules" => schedules::create(deps, req, &http::require(req, OWNER)?).await,
        "GET /v1/rpa/schedules" => schedules::list(deps, req, &http::require(req, TEAM)?).await,
        "GET /v1/rpa/schedules/{id}" => {
            schedules::read(deps, req, &http::require(req, TEAM)?).await
        }
        "PATCH /v1/rpa/schedules/{id}" => {
            schedules::update(deps, req, &http::require(req, OWNER)?).await
        }
        "DELETE /v1/rpa/schedules/{id}" => {
            schedules::delete(deps, req, &http::require(req, OWNER)?).await
        }
        _ => Err(Problem::not_found("no such route")),
    }
}
