//! How an attempt ends: another attempt later, or the execution closed
//! with its process.

use chrono::{DateTime, Utc};
use nuvem_aws::rpa_jobs::{self, CloseError, Closing, Success};
use nuvem_aws::store::{ErrorKind, ExecutionError, ExecutionRecord};
use nuvem_domain::rpa::execution::{AfterFailure, ExecutionStatus, Phase};
use serde_json::Value;

use crate::{Deps, store_error};

pub(crate) fn error(kind: ErrorKind, message: impl Into<String>) -> ExecutionError {
    ExecutionError {
        kind,
        message: message.into(),
    }
}

/// Carries out what the rules decided after a failed attempt.
pub(crate) async fn after_failure(
    deps: &Deps,
    execution: &ExecutionRecord,
    decision: AfterFailure,
    failure: ExecutionError,
    now: DateTime<Utc>,
) -> Result<(), String> {
    match decision {
        AfterFailure::Retry { attempt, delay } => {
            let mut next = execution.next(now);
            next.status = ExecutionStatus::Retrying;
            next.phase = Phase::Pending;
            next.attempt = attempt;
            next.job_id = None;
            next.log_cursor = 0;
            next.claimed_at = None;
            next.started_at = None;
            next.deadline = None;
            next.error = Some(failure);
            next.watch_at = Some(now + delay);
            save_and_continue(deps, execution, &next, now).await
        }
        AfterFailure::Stop(status) => {
            close(deps, execution, status, Some(failure), None, None, now).await
        }
    }
}

/// Writes the execution's next version and sends the message it waits
/// for; a lost race means another delivery moved it on.
pub(crate) async fn save_and_continue(
    deps: &Deps,
    current: &ExecutionRecord,
    next: &ExecutionRecord,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if deps
        .core
        .store
        .update_execution(current, next)
        .await
        .map_err(store_error)?
    {
        rpa_jobs::send_job(&deps.queue, next, now).await;
    }
    Ok(())
}

/// Closes the execution with its process.
pub(crate) async fn close(
    deps: &Deps,
    execution: &ExecutionRecord,
    status: ExecutionStatus,
    failure: Option<ExecutionError>,
    output: Option<Value>,
    success: Option<Success>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let closing = Closing {
        status,
        error: failure,
        output,
        success,
        by: None,
        audit: None,
    };
    match rpa_jobs::close(&deps.core, execution, closing, now).await {
        Ok(closed) => {
            tracing::info!(execution_id = %closed.id, status = closed.status.as_str(), "execution ended");
            Ok(())
        }
        // Redelivered: the next delivery reads both again (or finds the
        // execution moved on by someone else and stops).
        Err(CloseError::Changed) => Err("the execution or its process changed; read again".into()),
        Err(CloseError::NoProcess) => {
            tracing::warn!(execution_id = %execution.id, "the execution's process is gone");
            Ok(())
        }
        Err(CloseError::Store(e)) => Err(store_error(e)),
    }
}
