//! The RPA jobs queue, between whoever begins a step (the `rpa` API, the
//! scheduler's `run_downloads` and its sweep of overdue executions) and
//! `rpa-worker`, and the one way a step begins.
//!
//! A job message names an execution and the version of it that asked for
//! the message: the worker acts only when the execution still has that
//! version, and every action is a conditional write to the next one, so a
//! duplicate, reordered or stale message changes nothing.

use chrono::{DateTime, Duration, Utc};
use nuvem_domain::ids;
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::execution::{EXECUTION_ID_PREFIX, ExecutionStatus, Phase, Step, step_for};
use nuvem_domain::rpa::process::ProcessStatus;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::store::{AuditRecord, ExecutionRecord, ProcessRecord, Store, StoreError};
use crate::task_queue::TaskQueue;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpaJob {
    pub account_id: String,
    pub process_id: String,
    pub execution_id: String,
    /// The execution's version when the message was sent.
    pub version: u64,
}

impl RpaJob {
    pub fn of(e: &ExecutionRecord) -> RpaJob {
        RpaJob {
            account_id: e.account_id.clone(),
            process_id: e.process_id.clone(),
            execution_id: e.id.clone(),
            version: e.version,
        }
    }
}

pub type RpaJobQueue = TaskQueue<RpaJob>;

/// Sends the job message `execution` is waiting for, delayed until its
/// `watch_at`. A send that fails is logged, not returned: the scheduler's
/// sweep sends it again once it is overdue.
pub async fn send_job(queue: &RpaJobQueue, execution: &ExecutionRecord, now: DateTime<Utc>) {
    let delay = execution
        .watch_at
        .map_or(0, |at| (at - now).num_seconds().max(0));
    let delay = u32::try_from(delay).unwrap_or(u32::MAX);
    if let Err(e) = queue.send_delayed(&RpaJob::of(execution), delay).await {
        tracing::warn!(execution_id = %execution.id, error = %e, "job message not sent; left to the sweep");
    }
}

/// Why a step could not begin.
#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    #[error("the process is {0}; no step of the RPA is waiting")]
    NotWaiting(ProcessStatus),
    #[error("execution {0} of the process is under way")]
    Busy(String),
    /// An earlier filing may have reached the tax system.
    #[error(
        "filing {0} ended without knowing whether the tax system took it; check the tax system, then retry the process on purpose to send it again"
    )]
    UnresolvedFiling(String),
    #[error("the process's carrier {0} is missing, inactive or has no RPA")]
    NoRpa(String),
    #[error("the process changed meanwhile")]
    Changed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who begins a step, and why.
pub struct Beginning<'a> {
    pub by: Option<&'a Actor>,
    /// A person's deliberate retry: a filing whose outcome was unknown may
    /// be sent again.
    pub retry: bool,
    /// The audit entry of a person's request (written with the change).
    pub audit: Option<&'a AuditRecord>,
}

/// Begins the step `process` is waiting for: an execution written with the
/// process (which names it active), then its first job message.
pub async fn begin_step(
    store: &Store,
    queue: &RpaJobQueue,
    process: &ProcessRecord,
    how: Beginning<'_>,
    now: DateTime<Utc>,
) -> Result<ExecutionRecord, BeginError> {
    let id = ids::new_id(EXECUTION_ID_PREFIX);
    begin_step_as(store, queue, process, how, id, now).await
}

/// [`begin_step`] with the execution's id given (an audit entry written with
/// it names it).
pub async fn begin_step_as(
    store: &Store,
    queue: &RpaJobQueue,
    process: &ProcessRecord,
    how: Beginning<'_>,
    execution_id: String,
    now: DateTime<Utc>,
) -> Result<ExecutionRecord, BeginError> {
    let carrier = store
        .get_carrier(&process.account_id, &process.carrier)
        .await?;
    let execution = write_step(store, process, carrier.as_ref(), how, execution_id, now).await?;
    send_job(queue, &execution, now).await;
    Ok(execution)
}

/// [`begin_step`]'s writes, with the process's carrier as read by the
/// caller (a run over many processes reads its carriers once) and without
/// the job message: the caller sends it (in batches), or the sweep does.
pub async fn write_step(
    store: &Store,
    process: &ProcessRecord,
    carrier: Option<&crate::store::CarrierRecord>,
    how: Beginning<'_>,
    execution_id: String,
    now: DateTime<Utc>,
) -> Result<ExecutionRecord, BeginError> {
    let step = step_for(process.status).ok_or(BeginError::NotWaiting(process.status))?;
    if let Some(active) = &process.active_execution {
        return Err(BeginError::Busy(active.clone()));
    }
    if let (Step::TaxFiling, Some(unresolved), false) =
        (step, &process.unresolved_filing, how.retry)
    {
        return Err(BeginError::UnresolvedFiling(unresolved.clone()));
    }
    let carrier = carrier
        .filter(|c| c.code == process.carrier && c.settings.active && c.settings.has_rpa)
        .ok_or_else(|| BeginError::NoRpa(process.carrier.as_str().to_owned()))?;
    let input = match (step, &process.invoice) {
        (Step::TaxFiling, Some(invoice)) => json!({
            "file_name": invoice.file_name,
            "due_date": invoice.due_date,
            "amount_cents": invoice.amount_cents,
        }),
        _ => json!({"carrier": process.carrier, "month": process.month}),
    };
    let execution = ExecutionRecord {
        id: execution_id,
        account_id: process.account_id.clone(),
        process_id: process.id.clone(),
        client_id: process.client_id.clone(),
        month: process.month,
        step,
        status: ExecutionStatus::Running,
        phase: Phase::Pending,
        attempt: 1,
        max_attempts: carrier.settings.max_attempts,
        job_timeout_minutes: carrier.settings.job_timeout_minutes,
        job_id: None,
        log_cursor: 0,
        log_lines: 0,
        input,
        output: None,
        error: None,
        created_at: now,
        started_at: None,
        claimed_at: None,
        deadline: None,
        ended_at: None,
        watch_at: Some(now),
        started_by: how.by.cloned(),
        cancelled_by: None,
        updated_at: now,
        version: 1,
    };
    let mut next = process.clone();
    next.active_execution = Some(execution.id.clone());
    if how.retry && step == Step::TaxFiling {
        next.unresolved_filing = None;
    }
    next.updated_at = now;
    next.version += 1;
    if !store
        .begin_execution(process, &next, &execution, how.audit)
        .await?
    {
        return Err(BeginError::Changed);
    }
    Ok(execution)
}

/// How long after its `watch_at` an execution counts as overdue: longer
/// than a delayed message takes to arrive and be handled.
pub fn overdue_after() -> Duration {
    Duration::minutes(2)
}

/// What a successful step gives its process.
#[derive(Debug, Clone)]
pub enum Success {
    /// A downloaded (or uploaded) invoice: the process awaits approval.
    Invoice(nuvem_domain::rpa::process::Invoice),
    /// The tax system's protocol: the process is filed.
    Filing { protocol: String },
}

/// How an execution ends.
pub struct Closing<'a> {
    pub status: ExecutionStatus,
    pub error: Option<crate::store::ExecutionError>,
    pub output: Option<serde_json::Value>,
    pub success: Option<Success>,
    /// The key that ended it (a cancel), and its audit entry.
    pub by: Option<&'a Actor>,
    pub audit: Option<&'a AuditRecord>,
}

/// Why an execution could not be closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// The execution or its process changed meanwhile: read again.
    #[error("the execution or its process changed meanwhile")]
    Changed,
    #[error("the execution's process is gone")]
    NoProcess,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Ends `execution` as `closing` says, with its process: no longer naming
/// it active, its attempts counted, moved on by a success (with
/// `rpa.process.status_changed`), and marked as having an unresolved
/// filing when a filing ends without a known outcome. All in one
/// transaction conditional on both being as read; the event is then
/// emitted. Returns the closed execution.
pub async fn close(
    core: &crate::Core,
    execution: &ExecutionRecord,
    closing: Closing<'_>,
    now: DateTime<Utc>,
) -> Result<ExecutionRecord, CloseError> {
    use nuvem_domain::rpa::process as rules;

    let store = &core.store;
    let (client_id, month) =
        rules::parse_process_id(&execution.process_id).ok_or(CloseError::NoProcess)?;
    let process = store
        .get_process(&execution.account_id, &client_id, month)
        .await?
        .ok_or(CloseError::NoProcess)?;
    let mut closed = execution.next(now);
    closed.status = closing.status;
    closed.phase = Phase::Done;
    closed.watch_at = None;
    closed.ended_at = Some(now);
    closed.error = closing.error.or(closed.error);
    closed.output = closing.output.or(closed.output);
    closed.cancelled_by = closing
        .by
        .cloned()
        .filter(|_| closing.status == ExecutionStatus::Cancelled);

    let (next, event) = process_after(&process, &mut closed, closing.success, closing.by, now);
    if !store
        .end_execution(
            execution,
            &closed,
            (&process, &next),
            event.as_ref(),
            closing.audit,
        )
        .await?
    {
        return Err(CloseError::Changed);
    }
    if let Some(event) = &event {
        core.emit(event, None).await;
    }
    crate::metrics::rpa_execution(closed.step.as_str(), closed.status.as_str());
    Ok(closed)
}

/// The process after its execution `closed` ended (as `closed` says,
/// `success` giving what a successful step yields): no longer naming it
/// active, its attempts counted, moved on by a success (with its event),
/// marked when a filing's outcome is unknown. A success the process's
/// status no longer takes fails the execution instead.
fn process_after(
    process: &ProcessRecord,
    closed: &mut ExecutionRecord,
    success: Option<Success>,
    by: Option<&Actor>,
    now: DateTime<Utc>,
) -> (ProcessRecord, Option<nuvem_domain::events::Envelope>) {
    use nuvem_domain::rpa::events;
    use nuvem_domain::rpa::process::{self as rules, Move};

    let step = closed.step;
    let mut next = process.clone();
    next.updated_at = now;
    next.version += 1;
    if next.active_execution.as_deref() == Some(closed.id.as_str()) {
        next.active_execution = None;
    }
    match step {
        Step::DownloadInvoice => next.download_attempts += closed.attempt,
        Step::TaxFiling => next.filing_attempts += closed.attempt,
        Step::ManualUpload => {}
    }
    if step == Step::TaxFiling
        && matches!(
            closed.status,
            ExecutionStatus::NeedsReview | ExecutionStatus::TimedOut
        )
    {
        next.unresolved_filing = Some(closed.id.clone());
    }
    let moved = match success {
        Some(Success::Invoice(invoice)) => {
            next.invoice = Some(invoice);
            next.manual_upload = step == Step::ManualUpload;
            Some(Move::ReceiveInvoice)
        }
        Some(Success::Filing { protocol }) => {
            next.filing_protocol = Some(protocol);
            next.filed_at = Some(now);
            Some(Move::RecordFiling)
        }
        None => None,
    };
    if let Some(attempted) = moved {
        match rules::next(process.status, attempted) {
            Ok(status) => next.status = status,
            Err(refused) => {
                // The process moved on another way (a cancel and an upload
                // while the job ran): the step's result is not used.
                closed.status = ExecutionStatus::Failed;
                closed.error = Some(crate::store::ExecutionError {
                    kind: crate::store::ErrorKind::Business,
                    message: format!("{refused}; the result was not used"),
                });
                next.invoice = process.invoice.clone();
                next.manual_upload = process.manual_upload;
                next.filing_protocol = process.filing_protocol.clone();
                next.filed_at = process.filed_at;
            }
        }
    }
    let event = (next.status != process.status).then(|| {
        events::status_changed(
            &process.account_id,
            &next.event_ref(),
            process.status,
            next.status,
            by,
            now,
        )
    });
    (next, event)
}

/// What an uploaded file turned out to be.
#[derive(Debug, Clone)]
pub enum UploadOutcome {
    /// Stored as the process's invoice (at its invoice key).
    Accepted {
        size: u64,
        /// The judged copy of the file (see `UploadRecord::checked_key`).
        checked_key: String,
    },
    Refused(nuvem_domain::rpa::upload::Refusal),
}

/// Settles an upload once, as a `manual_upload` execution of its process:
/// succeeded, with the process holding the invoice and awaiting approval
/// (`rpa.process.status_changed`), or failed with the reason the file was
/// refused. `process` is the process as read when the file was judged.
/// Answers the execution and the upload as settled.
pub async fn settle_upload(
    core: &crate::Core,
    upload: &crate::store::UploadRecord,
    process: &ProcessRecord,
    outcome: UploadOutcome,
    now: DateTime<Utc>,
) -> Result<(ExecutionRecord, crate::store::UploadRecord), CloseError> {
    use crate::store::{ErrorKind, ExecutionError};
    use nuvem_domain::rpa::process::{Invoice, invoice_key};

    let (status, error, output, success) = match &outcome {
        UploadOutcome::Accepted { size, .. } => {
            let invoice = Invoice {
                s3_key: invoice_key(&upload.account_id, &upload.client_id, upload.month),
                file_name: upload.file_name.clone(),
                due_date: Some(upload.due_date),
                amount_cents: upload.amount_cents,
                access_key: None,
                received_at: now,
            };
            let output = json!({"file_name": upload.file_name, "bytes": size});
            (
                ExecutionStatus::Succeeded,
                None,
                Some(output),
                Some(Success::Invoice(invoice)),
            )
        }
        UploadOutcome::Refused(why) => {
            let error = ExecutionError {
                kind: ErrorKind::Business,
                message: why.to_string(),
            };
            (ExecutionStatus::Failed, Some(error), None, None)
        }
    };
    let mut execution = ExecutionRecord {
        id: ids::new_id(EXECUTION_ID_PREFIX),
        account_id: upload.account_id.clone(),
        process_id: upload.process_id.clone(),
        client_id: upload.client_id.clone(),
        month: upload.month,
        step: Step::ManualUpload,
        status,
        phase: Phase::Done,
        attempt: 1,
        max_attempts: 1,
        job_timeout_minutes: 0,
        job_id: None,
        log_cursor: 0,
        log_lines: 0,
        input: json!({
            "upload_id": upload.id,
            "file_name": upload.file_name,
            "due_date": upload.due_date,
            "amount_cents": upload.amount_cents,
        }),
        output,
        error,
        created_at: upload.created_at,
        started_at: Some(now),
        claimed_at: None,
        deadline: None,
        ended_at: Some(now),
        watch_at: None,
        started_by: Some(upload.requested_by.clone()),
        cancelled_by: None,
        updated_at: now,
        version: 1,
    };
    let moved = match success {
        Some(success) => {
            let by = upload.requested_by.clone();
            Some(process_after(
                process,
                &mut execution,
                Some(success),
                Some(&by),
                now,
            ))
        }
        None => None,
    };
    let mut settled = upload.clone();
    settled.state = match execution.status {
        ExecutionStatus::Succeeded => "accepted".into(),
        _ => "refused".into(),
    };
    if let UploadOutcome::Accepted { checked_key, .. } = &outcome {
        settled.checked_key = Some(checked_key.clone());
    }
    settled.version += 1;
    let (process_change, event) = match &moved {
        Some((next, event)) => (Some((process, next)), event.as_ref()),
        None => (None, None),
    };
    if !core
        .store
        .settle_upload(upload, &settled, &execution, process_change, event)
        .await?
    {
        return Err(CloseError::Changed);
    }
    if let Some(event) = event {
        core.emit(event, None).await;
    }
    Ok((execution, settled))
}
