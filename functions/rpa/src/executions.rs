//! A process's steps through the API: begin a download or a filing, retry
//! a failed step, cancel the one under way, read executions and their
//! logs, and read the invoice through a presigned link.

use chrono::{DateTime, Utc};
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request};
use nuvem_aws::rpa_jobs::{self, BeginError, Beginning, CloseError, Closing};
use nuvem_aws::store::{AuditRecord, ExecutionError, ExecutionRecord, ProcessRecord};
use nuvem_domain::ids;
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::execution::{ExecutionStatus, Phase, Step, step_for};
use nuvem_domain::validation::FieldError;
use serde::Serialize;
use serde_json::{Value, json};

use crate::Deps;
use crate::processes::process;

/// Log lines one read answers at most (and by default).
const MAX_LOG_LINES: usize = 200;

/// An execution as the API shows it.
#[derive(Serialize)]
struct ExecutionView<'a> {
    id: &'a str,
    process_id: &'a str,
    step: Step,
    status: ExecutionStatus,
    attempt: u32,
    max_attempts: u32,
    job_id: Option<&'a str>,
    input: &'a Value,
    output: Option<&'a Value>,
    error: Option<&'a ExecutionError>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    deadline: Option<DateTime<Utc>>,
    /// When nuvem next looks at it (a poll or the next attempt).
    next_check_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    started_by: Option<&'a Actor>,
    cancelled_by: Option<&'a Actor>,
    log_lines: u64,
}

impl<'a> From<&'a ExecutionRecord> for ExecutionView<'a> {
    fn from(e: &'a ExecutionRecord) -> Self {
        ExecutionView {
            id: &e.id,
            process_id: &e.process_id,
            step: e.step,
            status: e.status,
            attempt: e.attempt,
            max_attempts: e.max_attempts,
            job_id: e.job_id.as_deref(),
            input: &e.input,
            output: e.output.as_ref(),
            error: e.error.as_ref(),
            created_at: e.created_at,
            started_at: e.started_at,
            deadline: e.deadline,
            next_check_at: e.watch_at,
            ended_at: e.ended_at,
            started_by: e.started_by.as_ref(),
            cancelled_by: e.cancelled_by.as_ref(),
            log_lines: e.log_lines,
        }
    }
}

fn audit(who: &Principal, action: &str, process: &ProcessRecord, execution: &str) -> AuditRecord {
    AuditRecord {
        id: ids::new_id(ids::AUDIT),
        account_id: who.account_id.clone(),
        action: format!("rpa.process.{action}"),
        actor_key_id: who.key_id.clone(),
        actor_role: who.role.as_str().to_owned(),
        before: json!({"process_id": process.id, "status": process.status}),
        after: json!({
            "process_id": process.id,
            "execution_id": execution,
            "key_name": who.actor().key_name,
        }),
        at: Utc::now(),
    }
}

/// `POST …/download`, `POST …/tax-filing` (the step the path names, from
/// the status that waits for it) and `POST …/retry` (the step the process
/// waits for, again, on purpose).
pub(crate) async fn begin(
    deps: &Deps,
    req: &Request,
    who: &Principal,
    wanted: Option<Step>,
) -> HttpResult {
    let current = process(deps, req, who).await?;
    let step = step_for(current.status);
    if let Some(wanted) = wanted
        && step != Some(wanted)
    {
        return Err(Problem::conflict(format!(
            "the process is {}; it is not waiting for a {wanted}",
            current.status
        )));
    }
    let action = wanted.map_or("retry", Step::as_str);
    // The execution's id is known only once written: the audit entry names
    // the one the process points at after.
    let execution_id = ids::new_id(nuvem_domain::rpa::execution::EXECUTION_ID_PREFIX);
    let entry = audit(who, action, &current, &execution_id);
    let actor = who.actor();
    let how = Beginning {
        by: Some(&actor),
        retry: wanted.is_none(),
        audit: Some(&entry),
    };
    let begun = rpa_jobs::begin_step_as(
        &deps.core.store,
        &deps.queue,
        &current,
        how,
        execution_id,
        Utc::now(),
    )
    .await
    .map_err(|e| match e {
        BeginError::Store(e) => Problem::from(e),
        BeginError::NoRpa(_) => {
            Problem::validation(vec![FieldError::new("carrier", e.to_string())])
        }
        other => Problem::conflict(other.to_string()),
    })?;
    http::json(202, &ExecutionView::from(&begun))
}

/// `POST …/cancel`: ends the execution under way. A filing the tax system
/// may already have is not cancelled (nothing could take it back). The
/// worker may move the execution on while this runs (a poll, a retry
/// scheduled): the cancel then reads it again, a few times.
pub(crate) async fn cancel(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let actor = who.actor();
    for _ in 0..5 {
        let current = process(deps, req, who).await?;
        let execution = match &current.active_execution {
            Some(active) => deps
                .core
                .store
                .get_execution(&who.account_id, &current.id, active)
                .await?
                .filter(|e| !e.status.is_final()),
            None => None,
        }
        .ok_or_else(|| Problem::conflict("no execution of the process is under way"))?;
        if execution.step.is_unrepeatable()
            && matches!(execution.phase, Phase::Starting | Phase::Polling)
        {
            return Err(Problem::conflict(
                "the filing was sent to the tax system and cannot be cancelled; wait for its outcome",
            ));
        }
        let entry = audit(who, "cancel", &current, &execution.id);
        let closing = Closing {
            status: ExecutionStatus::Cancelled,
            error: None,
            output: None,
            success: None,
            by: Some(&actor),
            audit: Some(&entry),
        };
        match rpa_jobs::close(&deps.core, &execution, closing, Utc::now()).await {
            Ok(closed) => return http::json(200, &ExecutionView::from(&closed)),
            Err(CloseError::Changed) => continue,
            Err(CloseError::NoProcess) => return Err(Problem::not_found("no such process")),
            Err(CloseError::Store(e)) => return Err(e.into()),
        }
    }
    Err(Problem::conflict(
        "the execution kept moving on while this request was made; read it and try again",
    ))
}

pub(crate) async fn list(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let process = process(deps, req, who).await?;
    let limit = http::page_limit(req)?;
    let page = http::listing(
        deps.core
            .store
            .list_executions(
                &who.account_id,
                &process.id,
                limit,
                http::query(req, "cursor"),
            )
            .await,
    )?;
    http::page_json(&page, ExecutionView::from)
}

/// The execution of the path, of the process of the path.
async fn execution(
    deps: &Deps,
    req: &Request,
    who: &Principal,
) -> Result<ExecutionRecord, Problem> {
    let process = process(deps, req, who).await?;
    let id = http::path_param(req, "execution_id")?;
    let none = || Problem::not_found("no such execution");
    if !ids::has_prefix(id, nuvem_domain::rpa::execution::EXECUTION_ID_PREFIX) {
        return Err(none());
    }
    deps.core
        .store
        .get_execution(&who.account_id, &process.id, id)
        .await?
        .ok_or_else(none)
}

pub(crate) async fn read(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    http::json(200, &ExecutionView::from(&execution(deps, req, who).await?))
}

/// `GET …/executions/{execution_id}/logs?after=<seq>&limit=`: the lines
/// after the cursor, oldest first, and the cursor to read on from. A client
/// follows a running job by asking again with `after = next` until `done`.
pub(crate) async fn logs(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let mut errors = Vec::new();
    let after = http::query_as(req, "after", &mut errors, |a| {
        a.parse::<u64>()
            .map_err(|_| "must be a log line's seq (0 or more)")
    })
    .unwrap_or(0);
    let limit = http::query_as(req, "limit", &mut errors, |l| {
        l.parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LOG_LINES).contains(l))
            .ok_or("must be 1 to 200")
    })
    .unwrap_or(MAX_LOG_LINES);
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let execution = execution(deps, req, who).await?;
    let lines = deps
        .core
        .store
        .execution_logs(&who.account_id, &execution.id, after, limit)
        .await?;
    let next = lines.last().map_or(after, |l| l.seq);
    http::json(
        200,
        &json!({
            "lines": lines,
            "next": next,
            "done": execution.status.is_final() && next >= execution.log_lines,
        }),
    )
}

/// `GET …/invoice`: a link that reads the process's invoice for 15 minutes.
pub(crate) async fn invoice(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let process = process(deps, req, who).await?;
    let invoice = process
        .invoice
        .as_ref()
        .ok_or_else(|| Problem::not_found("the process has no invoice yet"))?;
    let url = deps
        .invoices
        .presigned_get(&invoice.s3_key)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "invoice link not signed");
            Problem::unavailable("the invoice store is unavailable; try again", 5)
        })?;
    let expires_at = Utc::now() + nuvem_aws::invoices::LINK_TTL;
    http::json(
        200,
        &json!({
            "url": url.expose(),
            "file_name": invoice.file_name,
            "expires_at": expires_at,
        }),
    )
}
