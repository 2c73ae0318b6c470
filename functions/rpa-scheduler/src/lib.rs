//! `rpa-scheduler`: every minute (EventBridge), the RPA schedules of every
//! account that are due. Each due run is claimed by a conditional write
//! (`Store::claim_schedule_run`), so overlapping invocations run it once,
//! and its next run is counted from now, so a window missed while nuvem was
//! down runs once. A schedule whose runs fail
//! [`MAX_CONSECUTIVE_FAILURES`] times in a row is paused and its owner told
//! (`rpa.schedule.paused`).
//!
//! Each tick also sweeps RPA executions whose next job message is overdue
//! (lost to a crash or a failed send) and sends it again: the worker acts
//! only on the version a message names, so a message sent twice does
//! nothing more than once, and nothing stays `running` unattended.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use nuvem_aws::Core;
use nuvem_aws::invoices::Invoices;
use nuvem_aws::rpa_jobs::{self, BeginError, Beginning, RpaJob, RpaJobQueue};
use nuvem_aws::store::{CarrierRecord, ProcessRecord, ScheduleRecord};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::execution::EXECUTION_ID_PREFIX;
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::{Origin, ProcessStatus};
use nuvem_domain::rpa::schedule::MAX_CONSECUTIVE_FAILURES;
use nuvem_domain::rpa::schedule_settings::{self, ScheduleKind};
use serde::Serialize;
use serde_json::json;

mod account_runs;

pub struct Deps {
    pub core: Core,
    pub queue: RpaJobQueue,
    /// Where `export_data` writes its files.
    pub invoices: Invoices,
}

/// Most due schedules one invocation takes on; the rest wait a minute.
const DUE_PER_TICK: usize = 500;
/// Most clients one `create_monthly_processes` run reads.
const CLIENTS_PER_RUN: usize = 20_000;
/// Processes written side by side.
const WRITES_IN_FLIGHT: usize = 16;
/// Most downloads one `run_downloads` run begins.
const DOWNLOADS_PER_RUN: usize = 20_000;
/// Most overdue executions one tick sends again.
const SWEEP_PER_TICK: usize = 1_000;

/// What one invocation did (its answer, for logs and tests).
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    pub due: usize,
    /// Runs this invocation claimed (another may have claimed the rest).
    pub claimed: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub paused: usize,
    /// Overdue executions whose job message was sent again.
    pub resent: usize,
}

pub async fn handle(deps: &Deps, now: DateTime<Utc>) -> Report {
    let mut report = Report::default();
    let due = match deps.core.store.due_schedules(now, DUE_PER_TICK).await {
        Ok(due) => due,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the due schedules");
            Vec::new()
        }
    };
    report.due = due.len();
    for schedule in due {
        run_due(deps, schedule, now, &mut report).await;
    }
    report.resent = sweep(deps, now).await;
    tracing::info!(?report, "scheduler tick");
    report
}

async fn run_due(deps: &Deps, schedule: ScheduleRecord, now: DateTime<Utc>, report: &mut Report) {
    let store = &deps.core.store;
    let (Some(cron), Some(due)) = (schedule.settings.schedule(), schedule.next_run) else {
        return;
    };
    let next = cron.next_due(due, now);
    let claimed = match store.claim_schedule_run(&schedule, next, now).await {
        Ok(Some(claimed)) => claimed,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(schedule_id = %schedule.id, error = %e, "cannot claim a due run");
            return;
        }
    };
    report.claimed += 1;
    let month = schedule_settings::run_month(&cron, &claimed.settings.parameters, due);
    let outcome = match claimed.settings.kind {
        ScheduleKind::CreateMonthlyProcesses => {
            create_monthly_processes(deps, &claimed, month, now).await
        }
        ScheduleKind::RunDownloads => run_downloads(deps, &claimed, month, now).await,
        ScheduleKind::SendReport => account_runs::send_report(deps, &claimed, month, now).await,
        ScheduleKind::PurgeOldLogs => account_runs::purge_old_logs(deps, &claimed, now).await,
        ScheduleKind::ExportData => account_runs::export_data(deps, &claimed, now).await,
    };
    let (label, detail) = match &outcome {
        Ok(summary) => ("succeeded", summary.as_str()),
        Err(error) => ("failed", error.as_str()),
    };
    if let Err(e) = store
        .finish_schedule_run(&claimed, due, label, detail)
        .await
    {
        tracing::warn!(schedule_id = %claimed.id, error = %e, "run outcome not recorded");
    }
    match outcome {
        Ok(_) => {
            report.succeeded += 1;
            if claimed.consecutive_failures > 0 {
                record_failures(deps, &claimed, 0, None, now).await;
            }
        }
        Err(error) => {
            report.failed += 1;
            tracing::warn!(schedule_id = %claimed.id, %error, "schedule run failed");
            let failures = claimed.consecutive_failures + 1;
            if record_failures(deps, &claimed, failures, Some(&error), now).await {
                report.paused += 1;
            }
        }
    }
}

/// Stores the count of failures in a row, pausing the schedule (with its
/// event) when it reaches the limit; `true` when it paused it. Retried
/// when the schedule changes meanwhile (the next tick's claim, a person).
async fn record_failures(
    deps: &Deps,
    claimed: &ScheduleRecord,
    failures: u32,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> bool {
    let store = &deps.core.store;
    for _ in 0..3 {
        let current = match store.get_schedule(&claimed.account_id, &claimed.id).await {
            Ok(Some(current)) => current,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(schedule_id = %claimed.id, error = %e, "cannot read the schedule");
                return false;
            }
        };
        let pause = failures >= MAX_CONSECUTIVE_FAILURES && current.settings.active;
        let mut next = ScheduleRecord {
            consecutive_failures: failures,
            version: current.version + 1,
            updated_at: now,
            ..current.clone()
        };
        let mut event = None;
        if pause {
            next.settings.active = false;
            next.next_run = None;
            next.paused_reason = Some(format!(
                "{failures} runs failed in a row; the last: {}",
                error.unwrap_or_default()
            ));
            event = Some(Envelope::new(
                EventType::RpaSchedulePaused,
                &current.account_id,
                json!({
                    "schedule_id": current.id,
                    "name": current.settings.name,
                    "type": current.settings.kind,
                    "consecutive_failures": failures,
                    "last_error": error,
                }),
                now,
            ));
        }
        match store
            .update_schedule_with_event(&current, &next, event.as_ref())
            .await
        {
            Ok(true) => {
                if let Some(event) = &event {
                    deps.core.emit(event, None).await;
                }
                return pause;
            }
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(schedule_id = %claimed.id, error = %e, "failures not recorded");
                return false;
            }
        }
    }
    false
}

/// The month's process for every active client (of the schedule's
/// carriers) that has none; a process that exists is left as it is.
async fn create_monthly_processes(
    deps: &Deps,
    schedule: &ScheduleRecord,
    month: Month,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let store = &deps.core.store;
    let clients = store
        .all_clients(
            &schedule.account_id,
            &schedule.settings.parameters.carriers,
            true,
            CLIENTS_PER_RUN,
        )
        .await
        .map_err(|e| e.to_string())?;
    let results: Vec<Result<bool, String>> = futures::stream::iter(&clients)
        .map(|client| async move {
            let origin = Origin::Schedule {
                schedule_id: schedule.id.clone(),
            };
            let Some(process) = ProcessRecord::new_for(client, month, origin, None, now) else {
                return Ok(false);
            };
            store
                .create_process(&process)
                .await
                .map_err(|e| e.to_string())
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    let created = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let existing = results.iter().filter(|r| matches!(r, Ok(false))).count();
    // Created ones stay; the run fails and the next tick of the schedule
    // (or a person) creates the rest: creation is idempotent.
    run_outcome(&results, &format!("processes of {month} not written"))?;
    Ok(format!(
        "{created} processes of {month} created, {existing} existed"
    ))
}

/// A run's outcome: `Err` naming how many of its writes failed, and the
/// first failure.
fn run_outcome<T>(results: &[Result<T, String>], what: &str) -> Result<(), String> {
    let mut failed = results.iter().filter_map(|r| r.as_ref().err());
    match failed.next() {
        Some(first) => Err(format!(
            "{} of {} {what}: {first}",
            failed.count() + 1,
            results.len()
        )),
        None => Ok(()),
    }
}

/// Begins a download for every process of the month (of the schedule's
/// carriers) that awaits one and has none under way.
async fn run_downloads(
    deps: &Deps,
    schedule: &ScheduleRecord,
    month: Month,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let store = &deps.core.store;
    let carriers = &schedule.settings.parameters.carriers;
    let waiting = store
        .processes_of_month(
            &schedule.account_id,
            month,
            Some(ProcessStatus::AwaitingDownload),
            DOWNLOADS_PER_RUN,
        )
        .await
        .map_err(|e| e.to_string())?;
    let waiting: Vec<&ProcessRecord> = waiting
        .iter()
        .filter(|p| carriers.is_empty() || carriers.contains(&p.carrier))
        .filter(|p| p.active_execution.is_none())
        .collect();
    // The schedule's carriers, read once for the whole run.
    let carriers: HashMap<CarrierCode, CarrierRecord> = store
        .all_carriers(&schedule.account_id)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|c| (c.code.clone(), c))
        .collect();
    let carriers = &carriers;
    let results: Vec<Result<Option<RpaJob>, String>> = futures::stream::iter(&waiting)
        .map(|process| async move {
            let how = Beginning {
                by: None,
                retry: false,
                audit: None,
            };
            let id = nuvem_domain::ids::new_id(EXECUTION_ID_PREFIX);
            let carrier = carriers.get(&process.carrier);
            match rpa_jobs::write_step(store, process, carrier, how, id, now).await {
                Ok(execution) => Ok(Some(RpaJob::of(&execution))),
                // Begun meanwhile by someone else: left as it is.
                Err(BeginError::Busy(_) | BeginError::Changed | BeginError::NotWaiting(_)) => {
                    Ok(None)
                }
                Err(e) => Err(e.to_string()),
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    let jobs: Vec<RpaJob> = results
        .iter()
        .filter_map(|r| r.clone().ok().flatten())
        .collect();
    // A message not sent leaves its execution to the sweep.
    let unsent = match deps.queue.send_all(&jobs).await {
        Ok(unsent) => unsent,
        Err(e) => {
            tracing::warn!(error = %e, "download messages not sent; left to the sweep");
            jobs.len()
        }
    };
    run_outcome(&results, &format!("downloads of {month} not begun"))?;
    Ok(format!(
        "{} downloads of {month} begun ({unsent} left to the sweep)",
        jobs.len()
    ))
}

/// Sends again the job message of every execution that is overdue; how
/// many were sent.
async fn sweep(deps: &Deps, now: DateTime<Utc>) -> usize {
    let overdue = match deps
        .core
        .store
        .overdue_executions(now - rpa_jobs::overdue_after(), SWEEP_PER_TICK)
        .await
    {
        Ok(overdue) => overdue,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the overdue executions");
            return 0;
        }
    };
    let jobs: Vec<RpaJob> = overdue.iter().map(RpaJob::of).collect();
    match deps.queue.send_all(&jobs).await {
        Ok(unsent) => {
            if !jobs.is_empty() {
                tracing::warn!(
                    overdue = jobs.len(),
                    unsent,
                    "overdue RPA executions sent again"
                );
            }
            jobs.len() - unsent
        }
        Err(e) => {
            tracing::error!(error = %e, "overdue RPA executions not sent again");
            0
        }
    }
}
