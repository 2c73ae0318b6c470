//! Starting an attempt's job at the RPA: everything the call needs is read
//! first, then the start is claimed, then the RPA is called once.

use chrono::{DateTime, Duration, Utc};
use nuvem_aws::rpa_api::{DownloadRequest, FilingRequest, JobId, PortalPassword, StartError};
use nuvem_aws::secrets::SealContext;
use nuvem_aws::store::{CarrierRecord, ClientRecord, ErrorKind, ExecutionRecord, ProcessRecord};
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::execution::{
    self as rules, AfterFailure, CLAIM_EXPIRY_SECS, ExecutionStatus, FailureKind, Phase, Step,
};
use nuvem_domain::rpa::process::parse_process_id;

use crate::outcome::{self, error};
use crate::{Deps, store_error};

/// The request of one start.
enum Request {
    Download(CarrierCode, DownloadRequest),
    Filing(FilingRequest),
}

/// Starts the execution's pending attempt.
pub(crate) async fn start(
    deps: &Deps,
    execution: ExecutionRecord,
    now: DateTime<Utc>,
) -> Result<(), String> {
    // An attempt that could not even start (the table, KMS or the secret
    // failing every time) is not left pending for ever either.
    let due = execution.watch_at.unwrap_or(execution.updated_at);
    let limit = Duration::minutes(i64::from(execution.job_timeout_minutes));
    if rules::is_past_deadline(due + limit, now) {
        let failure = error(
            ErrorKind::Technical,
            format!(
                "the job could not be started within {} minutes",
                execution.job_timeout_minutes
            ),
        );
        let stop = AfterFailure::Stop(ExecutionStatus::TimedOut);
        return outcome::after_failure(deps, &execution, stop, failure, now).await;
    }
    let request = match request(deps, &execution).await? {
        Ok(request) => request,
        Err(why) => {
            let stop = AfterFailure::Stop(ExecutionStatus::Failed);
            return outcome::after_failure(
                deps,
                &execution,
                stop,
                error(ErrorKind::Business, why),
                now,
            )
            .await;
        }
    };
    let token = deps.token().await?;
    let mut claimed = execution.next(now);
    claimed.phase = Phase::Starting;
    claimed.claimed_at = Some(now);
    claimed.watch_at = Some(now + Duration::seconds(CLAIM_EXPIRY_SECS));
    if !deps
        .core
        .store
        .update_execution(&execution, &claimed)
        .await
        .map_err(store_error)?
    {
        return Ok(());
    }
    let started = match &request {
        Request::Download(carrier, r) => deps.rpa.start_download(&token, carrier, r).await,
        Request::Filing(r) => deps.rpa.start_filing(&token, r).await,
    };
    match started {
        Ok(job_id) => polling(deps, &claimed, &job_id, now).await,
        Err(e) => failed_start(deps, &claimed, e, now).await,
    }
}

/// The job started: poll it.
async fn polling(
    deps: &Deps,
    claimed: &ExecutionRecord,
    job_id: &JobId,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let deadline = now + Duration::minutes(i64::from(claimed.job_timeout_minutes));
    let mut next = claimed.next(now);
    next.phase = Phase::Polling;
    next.status = ExecutionStatus::Running;
    next.job_id = Some(job_id.as_str().to_owned());
    next.log_cursor = 0;
    next.started_at = Some(now);
    next.deadline = Some(deadline);
    next.watch_at = Some(now + rules::poll_delay(now, now, deadline));
    tracing::info!(execution_id = %next.id, job_id = job_id.as_str(), attempt = next.attempt, "job started");
    outcome::save_and_continue(deps, claimed, &next, now).await
}

async fn failed_start(
    deps: &Deps,
    claimed: &ExecutionRecord,
    e: StartError,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let (attempt, max) = (claimed.attempt, claimed.max_attempts);
    let (decision, kind) = match &e {
        StartError::Refused { .. } => (
            rules::after_failure(FailureKind::Business, attempt, max),
            ErrorKind::Business,
        ),
        StartError::Unavailable { .. } => (
            rules::after_failure(FailureKind::Technical, attempt, max),
            ErrorKind::Technical,
        ),
        StartError::Uncertain { .. } => (
            rules::after_uncertain_start(claimed.step, attempt, max),
            ErrorKind::Uncertain,
        ),
    };
    tracing::warn!(execution_id = %claimed.id, error = %e, "job not started");
    outcome::after_failure(deps, claimed, decision, error(kind, e.to_string()), now).await
}

/// A start claimed by a worker that stopped before recording its outcome:
/// the job may or may not have started.
pub(crate) async fn abandoned(
    deps: &Deps,
    execution: ExecutionRecord,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let decision =
        rules::after_uncertain_start(execution.step, execution.attempt, execution.max_attempts);
    let failure = error(
        ErrorKind::Uncertain,
        "the worker stopped while starting the job; it may have started",
    );
    outcome::after_failure(deps, &execution, decision, failure, now).await
}

/// What the start sends, or why it cannot be sent (a business failure: a
/// person must change something first).
async fn request(
    deps: &Deps,
    execution: &ExecutionRecord,
) -> Result<Result<Request, String>, String> {
    let store = &deps.core.store;
    let account = &execution.account_id;
    let Some((client_id, month)) = parse_process_id(&execution.process_id) else {
        return Ok(Err("the execution names no process".into()));
    };
    let Some(process) = store
        .get_process(account, &client_id, month)
        .await
        .map_err(store_error)?
    else {
        return Ok(Err("the process is gone".into()));
    };
    let Some(client) = store
        .get_client(account, &client_id)
        .await
        .map_err(store_error)?
        .filter(|c| c.settings.active)
    else {
        return Ok(Err("the client is gone or inactive".into()));
    };
    let Some(carrier) = store
        .get_carrier(account, &process.carrier)
        .await
        .map_err(store_error)?
        .filter(|c| c.settings.active && c.settings.has_rpa)
    else {
        return Ok(Err(format!(
            "the carrier {} is gone, inactive or has no RPA",
            process.carrier
        )));
    };
    match execution.step {
        Step::DownloadInvoice => {
            let password = match &client.sealed_password {
                Some(sealed) => deps
                    .sealer
                    .open(
                        sealed,
                        &SealContext::rpa_portal_password(account, &client.id),
                    )
                    .await
                    .map_err(|e| format!("portal password: {e}"))?
                    .to_string(),
                None => return Ok(Err("the client has no portal password".into())),
            };
            let r = download_request(&client, &carrier, &process, PortalPassword::new(password));
            Ok(Ok(Request::Download(carrier.code, r)))
        }
        Step::TaxFiling => {
            let Some(invoice) = &process.invoice else {
                return Ok(Err("the process has no invoice".into()));
            };
            let Some(due_date) = invoice.due_date else {
                return Ok(Err("the invoice has no due date".into()));
            };
            let url = deps
                .invoices
                .links()
                .presigned_get(&invoice.s3_key)
                .await
                .map_err(|e| e.to_string())?;
            let s = &client.settings;
            Ok(Ok(Request::Filing(FilingRequest {
                cnpj: s.cnpj.as_str().to_owned(),
                legal_name: s.legal_name.clone(),
                carrier: carrier.code.as_str().to_owned(),
                filter: s.filter.clone(),
                unit: s.unit.clone(),
                service: s.service.clone(),
                sat_data: s.sat_data.clone(),
                file_name: invoice.file_name.clone(),
                due_date,
                invoice_url: url,
            })))
        }
        Step::ManualUpload => Ok(Err("an upload is not run by the RPA".into())),
    }
}

fn download_request(
    client: &ClientRecord,
    carrier: &CarrierRecord,
    process: &ProcessRecord,
    password: PortalPassword,
) -> DownloadRequest {
    let s = &client.settings;
    DownloadRequest {
        cnpj: s.cnpj.as_str().to_owned(),
        legal_name: s.legal_name.clone(),
        carrier: carrier.code.as_str().to_owned(),
        filter: s.filter.clone(),
        unit: s.unit.clone(),
        service: s.service.clone(),
        portal_login: s.portal_login.clone(),
        portal_password: password,
        cpf: s.cpf.as_ref().map(|c| c.as_str().to_owned()),
        month: process.month,
        settings: carrier.settings.rpa_settings.clone(),
    }
}
