//! Polling a started job: its status and its new log lines, then what the
//! status calls for.

use chrono::{DateTime, NaiveDate, Utc};
use nuvem_aws::invoices::{MAX_INVOICE_BYTES, looks_like_pdf};
use nuvem_aws::rpa_api::{CallError, JobId, JobKind, JobResult, JobState, RpaToken};
use nuvem_aws::rpa_jobs::Success;
use nuvem_aws::store::{ErrorKind, ExecutionRecord, StoredLogLine};
use nuvem_domain::rpa::execution::{
    self as rules, AfterFailure, ExecutionStatus, FailureKind, Step,
};
use nuvem_domain::rpa::nfcom::AccessKey;
use nuvem_domain::rpa::process::{Invoice, invoice_key};
use nuvem_domain::rpa::upload::default_file_name;
use serde_json::json;

use crate::outcome::{self, error};
use crate::{Deps, store_error};

pub(crate) async fn poll(
    deps: &Deps,
    execution: ExecutionRecord,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let kind = match execution.step {
        Step::DownloadInvoice => JobKind::Download,
        Step::TaxFiling => JobKind::Filing,
        Step::ManualUpload => return Ok(()),
    };
    let Some(job_id) = execution
        .job_id
        .as_deref()
        .and_then(|j| JobId::parse(j).ok())
    else {
        let failure = error(ErrorKind::Technical, "the execution has no job id");
        let stop = AfterFailure::Stop(ExecutionStatus::Failed);
        return outcome::after_failure(deps, &execution, stop, failure, now).await;
    };
    let token = deps.token().await?;
    let state = deps.rpa.job(&token, &job_id, kind).await;
    // Read after the status, so that a finished job's last lines are in.
    let current = with_new_logs(deps, execution, &token, &job_id).await?;
    match state {
        Ok(JobState::Completed(JobResult::Download {
            invoice_url,
            due_date,
            amount_cents,
            access_key,
        })) => {
            let got = Downloaded {
                url: invoice_url,
                due_date,
                amount_cents,
                access_key,
            };
            downloaded(deps, &current, got, now).await
        }
        Ok(JobState::Completed(JobResult::Filing { protocol })) => {
            let output = json!({"protocol": protocol});
            let success = Success::Filing { protocol };
            let done = ExecutionStatus::Succeeded;
            outcome::close(deps, &current, done, None, Some(output), Some(success), now).await
        }
        Ok(JobState::Failed { kind, message }) => {
            let decision = rules::after_failure(kind, current.attempt, current.max_attempts);
            outcome::after_failure(deps, &current, decision, error(kind.into(), message), now).await
        }
        Err(CallError::NotFound) => {
            // The RPA lost the job: its outcome cannot be known.
            let decision =
                rules::after_uncertain_start(current.step, current.attempt, current.max_attempts);
            let message = format!("the RPA API no longer knows job {}", job_id.as_str());
            outcome::after_failure(
                deps,
                &current,
                decision,
                error(ErrorKind::Uncertain, message),
                now,
            )
            .await
        }
        Ok(JobState::Queued | JobState::Running) => poll_again(deps, &current, None, now).await,
        Err(e) => poll_again(deps, &current, Some(e.to_string()), now).await,
    }
}

/// The execution with the job's new log lines stored (same version: the
/// write that follows carries the new cursor). A failed read leaves the
/// lines for the next poll.
async fn with_new_logs(
    deps: &Deps,
    mut execution: ExecutionRecord,
    token: &RpaToken,
    job_id: &JobId,
) -> Result<ExecutionRecord, String> {
    let page = match deps.rpa.logs(token, job_id, execution.log_cursor).await {
        Ok(page) => page,
        Err(e) => {
            tracing::warn!(execution_id = %execution.id, error = %e, "job logs not read");
            return Ok(execution);
        }
    };
    let lines: Vec<StoredLogLine> = page
        .lines
        .iter()
        .zip(execution.log_lines + 1..)
        .map(|(line, seq)| StoredLogLine {
            seq,
            at: line.at,
            level: line.level.as_str().to_owned(),
            message: line.message.clone(),
        })
        .collect();
    deps.core
        .store
        .append_logs(&execution.account_id, &execution.id, &lines)
        .await
        .map_err(store_error)?;
    execution.log_lines += lines.len() as u64;
    execution.log_cursor = page.next;
    Ok(execution)
}

/// The job has not finished (or could not be read): poll again, unless its
/// deadline has passed.
async fn poll_again(
    deps: &Deps,
    current: &ExecutionRecord,
    read_error: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let deadline = current.deadline.unwrap_or(now);
    if rules::is_past_deadline(deadline, now) {
        let mut message = format!(
            "the job gave no result within {} minutes",
            current.job_timeout_minutes
        );
        if current.step.is_unrepeatable() {
            message.push_str("; it may still reach the tax system: check it before retrying");
        }
        let failure = error(ErrorKind::Technical, message);
        let status = ExecutionStatus::TimedOut;
        return outcome::close(deps, current, status, Some(failure), None, None, now).await;
    }
    if let Some(e) = &read_error {
        tracing::warn!(execution_id = %current.id, error = %e, "job status not read; polling again");
    }
    let started = current.started_at.unwrap_or(now);
    let mut next = current.next(now);
    next.watch_at = Some(now + rules::poll_delay(started, now, deadline));
    outcome::save_and_continue(deps, current, &next, now).await
}

/// A completed download's result.
struct Downloaded {
    url: String,
    due_date: NaiveDate,
    amount_cents: i64,
    access_key: Option<String>,
}

/// Fetches, checks and stores the invoice, then closes the execution with
/// the process awaiting approval.
async fn downloaded(
    deps: &Deps,
    current: &ExecutionRecord,
    got: Downloaded,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let technical = |message: String| {
        let decision = rules::after_failure(
            FailureKind::Technical,
            current.attempt,
            current.max_attempts,
        );
        (decision, error(ErrorKind::Technical, message))
    };
    let bytes = match deps.rpa.fetch_invoice(&got.url, MAX_INVOICE_BYTES).await {
        Ok(bytes) => bytes,
        Err(e @ CallError::Unavailable { .. }) => {
            return poll_again(deps, current, Some(e.to_string()), now).await;
        }
        Err(e) => {
            let (decision, failure) = technical(format!("the invoice could not be fetched: {e}"));
            return outcome::after_failure(deps, current, decision, failure, now).await;
        }
    };
    if !looks_like_pdf(&bytes) {
        let (decision, failure) = technical("the RPA's invoice is not a PDF".into());
        return outcome::after_failure(deps, current, decision, failure, now).await;
    }
    // The access key is kept only when its check digit holds.
    let (access_key, key_refused) = match got.access_key.as_deref().map(AccessKey::parse) {
        Some(Ok(key)) => (Some(key.as_str().to_owned()), None),
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (None, None),
    };
    // A cancel since this poll began: the invoice is not written over
    // whatever the process has now.
    let still = deps
        .core
        .store
        .get_execution(&current.account_id, &current.process_id, &current.id)
        .await
        .map_err(store_error)?;
    if still.is_none_or(|e| e.version != current.version) {
        return Ok(());
    }
    let key = invoice_key(&current.account_id, &current.client_id, current.month);
    let size = bytes.len();
    deps.invoices
        .put_pdf(&key, bytes)
        .await
        .map_err(|e| e.to_string())?;
    let carrier = current.input["carrier"].as_str().unwrap_or_default();
    let invoice = Invoice {
        s3_key: key,
        file_name: default_file_name(carrier, current.month),
        due_date: Some(got.due_date),
        amount_cents: Some(got.amount_cents),
        access_key: access_key.clone(),
        received_at: now,
    };
    let output = json!({
        "file_name": invoice.file_name,
        "bytes": size,
        "due_date": got.due_date,
        "amount_cents": got.amount_cents,
        "access_key": access_key,
        "access_key_refused": key_refused,
    });
    let success = Some(Success::Invoice(invoice));
    let done = ExecutionStatus::Succeeded;
    outcome::close(deps, current, done, None, Some(output), success, now).await
}
