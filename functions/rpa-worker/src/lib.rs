//! `rpa-worker`: carries out the steps of RPA executions, one job message
//! at a time (SQS, `RpaJobsQueue`). It never sleeps: a start is followed by
//! polls of the job's status and logs through delayed messages, a
//! technical failure by a delayed next attempt.
//!
//! A message names an execution and the version that asked for it; the
//! worker acts only on that version and writes the next one conditionally,
//! so duplicate and reordered deliveries do nothing more than one would:
//!
//! - `pending`: claim the start (`starting`), call the RPA once, record the
//!   job id (`polling`) or the failure;
//! - `starting` whose claim is older than the worker can run: the worker
//!   died mid-call, so whether the job started is unknown. A download is
//!   tried again; a filing goes to `needs_review` and is never re-sent
//!   automatically;
//! - `polling`: read the status and the new log lines; a completed download
//!   stores the invoice and moves the process to `awaiting_approval`, a
//!   completed filing moves it to `filed`; past the carrier's deadline the
//!   execution is `timed_out`.

mod outcome;
mod poll;
mod start;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use nuvem_aws::Core;
use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::invoices::Invoices;
use nuvem_aws::rpa_api::{RpaApiSecret, RpaClient, RpaToken};
use nuvem_aws::rpa_jobs::{RpaJob, RpaJobQueue};
use nuvem_aws::secrets::Sealer;
use nuvem_domain::rpa::execution::{CLAIM_EXPIRY_SECS, Phase};

pub struct Deps {
    pub core: Core,
    pub sealer: Sealer,
    pub rpa: RpaClient,
    pub secret: DeploymentSecret<RpaApiSecret>,
    pub queue: RpaJobQueue,
    pub invoices: Invoices,
}

impl Deps {
    async fn token(&self) -> Result<RpaToken, String> {
        Ok(self
            .secret
            .current()
            .await
            .map_err(|e| e.to_string())?
            .token
            .clone())
    }
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    nuvem_aws::runtime::each_record(&event, |record| process(deps, record)).await
}

async fn process(deps: &Deps, record: &SqsMessage) -> Result<(), String> {
    let Some(job) = nuvem_aws::runtime::read_body::<RpaJob>(record, "RPA job") else {
        return Ok(());
    };
    run(deps, &job, Utc::now()).await
}

pub(crate) fn store_error(e: impl std::fmt::Display) -> String {
    format!("store: {e}")
}

/// Handles one job message; `Err` leaves it to SQS to deliver again.
pub async fn run(deps: &Deps, job: &RpaJob, now: DateTime<Utc>) -> Result<(), String> {
    let Some(execution) = deps
        .core
        .store
        .get_execution(&job.account_id, &job.process_id, &job.execution_id)
        .await
        .map_err(store_error)?
    else {
        tracing::warn!(execution_id = %job.execution_id, "job for an execution that does not exist");
        return Ok(());
    };
    if execution.status.is_final() || execution.version != job.version {
        return Ok(());
    }
    // A wait longer than a queue can delay comes in several messages.
    if let Some(at) = execution.watch_at
        && execution.phase != Phase::Starting
        && at > now + chrono::Duration::seconds(1)
    {
        nuvem_aws::rpa_jobs::send_job(&deps.queue, &execution, now).await;
        return Ok(());
    }
    match execution.phase {
        Phase::Pending => start::start(deps, execution, now).await,
        Phase::Starting => {
            let claimed = execution.claimed_at.unwrap_or(execution.updated_at);
            if now - claimed < chrono::Duration::seconds(CLAIM_EXPIRY_SECS) {
                // Its worker may still be calling the RPA; the sweep sends
                // this again once the claim has expired.
                return Ok(());
            }
            start::abandoned(deps, execution, now).await
        }
        Phase::Polling => poll::poll(deps, execution, now).await,
        Phase::Done => Ok(()),
    }
}
