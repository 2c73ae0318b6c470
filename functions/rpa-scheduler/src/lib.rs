//! `rpa-scheduler`: every minute (EventBridge), the RPA schedules of every
//! account that are due. Each due run is claimed by a conditional write
//! (`Store::claim_schedule_run`), so overlapping invocations run it once,
//! and its next run is counted from now, so a window missed while nuvem was
//! down runs once. A schedule whose runs fail
//! [`MAX_CONSECUTIVE_FAILURES`] times in a row is paused and its owner told
//! (`rpa.schedule.paused`).
//!
//! A run is worked in pages (a hundred clients or processes) and saved
//! after each with where the next begins, under a lease longer than the
//! function's timeout. An invocation stops taking pages at its deadline
//! (Lambda's, less [`SAFETY_MARGIN`]) and leaves the run for the next tick;
//! a run whose invocation crashed is taken up once its lease runs out. So
//! a run over 10,000 clients spans as many ticks as it needs, each page
//! written once more at most (and every write is idempotent). Every
//! invocation works at least one page, so runs always move on.
//!
//! Each tick also sweeps RPA executions whose next job message is overdue
//! (lost to a crash or a failed send) and sends it again: the worker acts
//! only on the version a message names, so a message sent twice does
//! nothing more than once, and nothing stays `running` unattended.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use nuvem_aws::Core;
use nuvem_aws::invoices::Invoices;
use nuvem_aws::rpa_jobs::{self, BeginError, Beginning, RpaJob, RpaJobQueue};
use nuvem_aws::store::{
    CarrierRecord, ProcessRecord, RunOutcome, ScheduleRecord, ScheduleRunRecord,
};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::execution::EXECUTION_ID_PREFIX;
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::{Origin, ProcessStatus};
use nuvem_domain::rpa::schedule::MAX_CONSECUTIVE_FAILURES;
use nuvem_domain::rpa::schedule_settings::{self, ScheduleKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod account_runs;

pub struct Deps {
    pub core: Core,
    pub queue: RpaJobQueue,
    /// Where `export_data` writes its files.
    pub invoices: Invoices,
}

/// How long an invocation holds a run it claimed or took up: longer than
/// the function's timeout (120 s), so that no two invocations work a run.
pub const LEASE: Duration = Duration::minutes(5);
/// Time kept back from Lambda's deadline to save the run and report.
pub const SAFETY_MARGIN: Duration = Duration::seconds(30);
/// Most due schedules one invocation reads; the rest wait a minute.
const DUE_PER_TICK: usize = 500;
/// Most runs cut short that one invocation reads.
const STALE_PER_TICK: usize = 100;
/// Clients or processes per page of a run.
const PAGE: i32 = 100;
/// Processes written side by side.
const WRITES_IN_FLIGHT: usize = 16;
/// Most overdue executions one tick sends again.
const SWEEP_PER_TICK: usize = 1_000;

/// What one invocation did (its answer, for logs and tests).
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    pub due: usize,
    /// Runs this invocation claimed (another may have claimed the rest).
    pub claimed: usize,
    /// Runs cut short earlier that this invocation took up.
    pub resumed: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub paused: usize,
    /// Runs this invocation worked and left, at its deadline, for the next.
    pub unfinished: usize,
    /// Overdue executions whose job message was sent again.
    pub resent: usize,
}

/// The invocation's time: once a page has been worked, no other begins
/// after `deadline`.
struct Tick {
    now: DateTime<Utc>,
    deadline: DateTime<Utc>,
    worked: bool,
}

impl Tick {
    fn spent(&self) -> bool {
        self.worked && Utc::now() >= self.deadline
    }
}

/// One page of a run: where the next begins, or how the run ended, with
/// what this page did.
pub(crate) enum Worked {
    More {
        cursor: String,
        done: u64,
        skipped: u64,
    },
    Last {
        summary: String,
        event: Option<Envelope>,
        done: u64,
        skipped: u64,
    },
}

impl Worked {
    /// A page of a run that goes through a listing: more from `next`, or
    /// the last, summed up from the run's totals by `summary`.
    fn page<C: Serialize>(
        run: &ScheduleRunRecord,
        next: Option<&C>,
        done: u64,
        skipped: u64,
        summary: impl FnOnce(u64, u64) -> String,
    ) -> Result<Self, String> {
        Ok(match next {
            Some(next) => Worked::More {
                cursor: serde_json::to_string(next).map_err(|e| e.to_string())?,
                done,
                skipped,
            },
            None => Worked::Last {
                summary: summary(run.progress.done + done, run.progress.skipped + skipped),
                event: None,
                done,
                skipped,
            },
        })
    }

    /// The last page of a run that is one step.
    fn only(summary: String, event: Option<Envelope>) -> Self {
        Worked::Last {
            summary,
            event,
            done: 0,
            skipped: 0,
        }
    }
}

/// One tick: runs cut short first (they have waited longest), then the due
/// schedules, then the sweep. `deadline` is when to stop taking pages.
pub async fn handle(deps: &Deps, now: DateTime<Utc>, deadline: DateTime<Utc>) -> Report {
    let store = &deps.core.store;
    let mut report = Report::default();
    let mut tick = Tick {
        now,
        deadline,
        worked: false,
    };
    let stale = store
        .stale_runs(now, STALE_PER_TICK)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the runs cut short");
            Vec::new()
        });
    for run in stale {
        if tick.spent() {
            break;
        }
        take_up(deps, run, &mut tick, &mut report).await;
    }
    let due = store
        .due_schedules(now, DUE_PER_TICK)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the due schedules");
            Vec::new()
        });
    report.due = due.len();
    for schedule in due {
        if tick.spent() {
            break;
        }
        start(deps, schedule, &mut tick, &mut report).await;
    }
    report.resent = sweep(deps, now).await;
    tracing::info!(?report, "scheduler tick");
    report
}

async fn start(deps: &Deps, schedule: ScheduleRecord, tick: &mut Tick, report: &mut Report) {
    let (Some(cron), Some(due)) = (schedule.settings.schedule(), schedule.next_run) else {
        return;
    };
    let next = cron.next_due(due, tick.now);
    let claimed = deps
        .core
        .store
        .claim_schedule_run(&schedule, next, tick.now, LEASE)
        .await;
    match claimed {
        Ok(Some(run)) => {
            report.claimed += 1;
            work(deps, run, tick, report).await;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(schedule_id = %schedule.id, error = %e, "cannot claim a due run");
        }
    }
}

/// Takes up a run whose lease ran out, if no other invocation did first.
async fn take_up(deps: &Deps, mut run: ScheduleRunRecord, tick: &mut Tick, report: &mut Report) {
    run.lease_until = tick.now + LEASE;
    run.resumed += 1;
    match deps.core.store.save_run(&mut run, None).await {
        Ok(true) => {
            report.resumed += 1;
            tracing::info!(run_id = %run.id, pages = run.progress.pages, "run taken up");
            work(deps, run, tick, report).await;
        }
        Ok(false) => {}
        Err(e) => tracing::error!(run_id = %run.id, error = %e, "cannot take up a run"),
    }
}

/// Works a run page by page until it ends or the tick is spent, saving it
/// after each page; stops as soon as a save finds the run taken by
/// another invocation.
async fn work(deps: &Deps, mut run: ScheduleRunRecord, tick: &mut Tick, report: &mut Report) {
    let store = &deps.core.store;
    loop {
        let page = work_page(deps, &run, tick.now).await;
        tick.worked = true;
        run.progress.pages += 1;
        let (event, outcome) = match page {
            Ok(Worked::More {
                cursor,
                done,
                skipped,
            }) => {
                run.cursor = Some(cursor);
                run.progress.done += done;
                run.progress.skipped += skipped;
                let stop = tick.spent();
                run.lease_until = if stop { tick.now } else { tick.now + LEASE };
                match store.save_run(&mut run, None).await {
                    Ok(true) if !stop => continue,
                    Ok(true) => report.unfinished += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(run_id = %run.id, error = %e, "run not saved; taken up once its lease runs out")
                    }
                }
                return;
            }
            Ok(Worked::Last {
                summary,
                event,
                done,
                skipped,
            }) => {
                run.progress.done += done;
                run.progress.skipped += skipped;
                run.finish(RunOutcome::Succeeded, summary, tick.now);
                (event, Ok(()))
            }
            Err(error) => {
                run.finish(RunOutcome::Failed, error.clone(), tick.now);
                (None, Err(error))
            }
        };
        match store.save_run(&mut run, event.as_ref()).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(run_id = %run.id, error = %e, "run outcome not saved; taken up once its lease runs out");
                return;
            }
        }
        if let Some(event) = &event {
            deps.core.emit(event, None).await;
        }
        let schedule = &run.schedule;
        match outcome {
            Ok(()) => {
                report.succeeded += 1;
                if schedule.consecutive_failures > 0 {
                    record_failures(deps, schedule, 0, None, tick.now).await;
                }
            }
            Err(error) => {
                report.failed += 1;
                tracing::warn!(schedule_id = %schedule.id, %error, "schedule run failed");
                let failures = schedule.consecutive_failures + 1;
                if record_failures(deps, schedule, failures, Some(&error), tick.now).await {
                    report.paused += 1;
                }
            }
        }
        return;
    }
}

/// The next page of a run of the schedule's type.
async fn work_page(
    deps: &Deps,
    run: &ScheduleRunRecord,
    now: DateTime<Utc>,
) -> Result<Worked, String> {
    let settings = &run.schedule.settings;
    let Some(cron) = settings.schedule() else {
        return Err("the schedule's cron expression no longer parses".into());
    };
    let month = schedule_settings::run_month(&cron, &settings.parameters, run.due);
    match settings.kind {
        ScheduleKind::CreateMonthlyProcesses => {
            create_monthly_processes(deps, run, month, now).await
        }
        ScheduleKind::RunDownloads => run_downloads(deps, run, month, now).await,
        ScheduleKind::SendReport => account_runs::send_report(deps, run, month, now).await,
        ScheduleKind::PurgeOldLogs => account_runs::purge_old_logs(deps, run, now).await,
        ScheduleKind::ExportData => account_runs::export_data(deps, run, now).await,
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

/// Where a `create_monthly_processes` run is: the index of the carrier
/// whose clients it is going through (of the schedule's, when it names
/// some), and the page of them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ClientsCursor {
    carrier: usize,
    page: Option<String>,
}

/// A run's saved cursor, read back.
fn cursor_of<T: serde::de::DeserializeOwned + Default>(
    run: &ScheduleRunRecord,
) -> Result<T, String> {
    match &run.cursor {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("the run's cursor: {e}")),
        None => Ok(T::default()),
    }
}

/// The month's process for every active client (of the schedule's
/// carriers) that has none, a page of clients at a time; a process that
/// exists is left as it is.
async fn create_monthly_processes(
    deps: &Deps,
    run: &ScheduleRunRecord,
    month: Month,
    now: DateTime<Utc>,
) -> Result<Worked, String> {
    let store = &deps.core.store;
    let schedule = &run.schedule;
    let carriers = &schedule.settings.parameters.carriers;
    let at: ClientsCursor = cursor_of(run)?;
    let page = store
        .clients_page(
            &schedule.account_id,
            carriers.get(at.carrier),
            true,
            PAGE,
            at.page.as_deref(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let results: Vec<Result<bool, String>> = futures::stream::iter(&page.items)
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
    // Created ones stay; the schedule's next run (or a person) creates the
    // rest: creation is idempotent.
    run_outcome(&results, &format!("processes of {month} not written"))?;
    let created = results.iter().filter(|r| matches!(r, Ok(true))).count() as u64;
    let existing = results.len() as u64 - created;
    let next = match page.next_cursor {
        Some(page) => Some(ClientsCursor {
            carrier: at.carrier,
            page: Some(page),
        }),
        None if at.carrier + 1 < carriers.len() => Some(ClientsCursor {
            carrier: at.carrier + 1,
            page: None,
        }),
        None => None,
    };
    Worked::page(run, next.as_ref(), created, existing, |done, skipped| {
        format!("{done} processes of {month} created, {skipped} existed")
    })
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
/// carriers) that awaits one and has none under way, a page at a time.
async fn run_downloads(
    deps: &Deps,
    run: &ScheduleRunRecord,
    month: Month,
    now: DateTime<Utc>,
) -> Result<Worked, String> {
    let store = &deps.core.store;
    let account = &run.schedule.account_id;
    let carriers = &run.schedule.settings.parameters.carriers;
    let at: Option<String> = cursor_of(run)?;
    let page = store
        .processes_page(
            account,
            month,
            Some(ProcessStatus::AwaitingDownload),
            PAGE,
            at.as_deref(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let waiting: Vec<&ProcessRecord> = page
        .items
        .iter()
        .filter(|p| carriers.is_empty() || carriers.contains(&p.carrier))
        .filter(|p| p.active_execution.is_none())
        .collect();
    // The carriers, read once for the page.
    let carriers: HashMap<CarrierCode, CarrierRecord> = if waiting.is_empty() {
        HashMap::new()
    } else {
        store
            .all_carriers(account)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|c| (c.code.clone(), c))
            .collect()
    };
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
    match deps.queue.send_all(&jobs).await {
        Ok(0) => {}
        Ok(unsent) => tracing::warn!(unsent, "download messages not sent; left to the sweep"),
        Err(e) => tracing::warn!(error = %e, "download messages not sent; left to the sweep"),
    }
    run_outcome(&results, &format!("downloads of {month} not begun"))?;
    let begun = jobs.len() as u64;
    let skipped = page.items.len() as u64 - begun;
    Worked::page(
        run,
        page.next_cursor.as_ref(),
        begun,
        skipped,
        |done, skipped| {
            format!("{done} downloads of {month} begun, {skipped} processes left as they were")
        },
    )
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
