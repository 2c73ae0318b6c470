//! The schedule types that report on or tidy an account's RPA data:
//! `send_report`, `purge_old_logs` and `export_data`. Each is one page:
//! it answers a one-line summary for the run record and the event that
//! announces it (saved with the run's outcome, so a run taken up again
//! after a crash announces it once), or why it failed.

use chrono::{DateTime, Duration, Utc};
use nuvem_aws::store::{RUN_ID_PREFIX, ScheduleRunRecord};
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::rpa::export::{self, CsvFile, EXPORT_ID_PREFIX, ExportedFile, MAX_EXPORT_ROWS};
use nuvem_domain::rpa::month::Month;
use serde_json::json;

use crate::{Deps, Worked};

/// Most log lines one `purge_old_logs` run deletes; the rest wait for the
/// next run.
const PURGED_PER_RUN: usize = 100_000;

/// The month's report, as the event `rpa.report.generated` (whose email
/// `fanout` sends, and which webhooks receive).
pub(crate) async fn send_report(
    deps: &Deps,
    run: &ScheduleRunRecord,
    month: Month,
    now: DateTime<Utc>,
) -> Result<Worked, String> {
    let schedule = &run.schedule;
    let store = &deps.core.store;
    let report = store
        .monthly_report(&schedule.account_id, month)
        .await
        .map_err(|e| e.to_string())?;
    let mut data = serde_json::to_value(&report).map_err(|e| e.to_string())?;
    data["schedule_id"] = json!(schedule.id);
    let event = Envelope::new(
        EventType::RpaReportGenerated,
        &schedule.account_id,
        data,
        now,
    );
    let summary = format!(
        "report of {month} sent ({} processes)",
        report.total.processes
    );
    Ok(Worked::only(summary, Some(event)))
}

/// Deletes the log lines of executions that began more than the
/// schedule's `retention_days` ago.
pub(crate) async fn purge_old_logs(
    deps: &Deps,
    run: &ScheduleRunRecord,
    now: DateTime<Utc>,
) -> Result<Worked, String> {
    let schedule = &run.schedule;
    let days = schedule.settings.parameters.retention_days;
    let cutoff = now - Duration::days(i64::from(days));
    let deleted = deps
        .core
        .store
        .purge_logs_before(&schedule.account_id, cutoff, PURGED_PER_RUN)
        .await
        .map_err(|e| e.to_string())?;
    let more = if deleted == PURGED_PER_RUN {
        " (more are left for the next run)"
    } else {
        ""
    };
    Ok(Worked::only(
        format!("{deleted} log lines older than {days} days deleted{more}"),
        None,
    ))
}

/// The account's carriers, clients and processes as CSV files in the
/// invoices bucket, linked by the event `rpa.export.completed` (and its
/// email).
pub(crate) async fn export_data(
    deps: &Deps,
    run: &ScheduleRunRecord,
    now: DateTime<Utc>,
) -> Result<Worked, String> {
    let schedule = &run.schedule;
    let store = &deps.core.store;
    let account = &schedule.account_id;
    let err = |e: nuvem_aws::store::StoreError| e.to_string();
    let carriers = store.all_carriers(account).await.map_err(err)?;
    let clients = store
        .all_clients(account, &[], false, MAX_EXPORT_ROWS + 1)
        .await
        .map_err(err)?;
    let processes = store
        .all_processes(account, MAX_EXPORT_ROWS + 1)
        .await
        .map_err(err)?;
    let csv_files: [CsvFile; 3] = [
        export::carriers_csv(carriers.iter().map(|c| (&c.code, &c.settings))),
        export::clients_csv(clients.iter().map(|c| &c.settings)),
        export::processes_csv(processes.iter().map(|p| p.export_row())),
    ];
    // Named after the run: taken up again, it writes the same files.
    let export_id = run.id.replacen(RUN_ID_PREFIX, EXPORT_ID_PREFIX, 1);
    let mut files = Vec::new();
    for file in csv_files {
        let bytes = file.bytes.len();
        let url = deps
            .invoices
            .put_export(account, &export_id, file.name, file.bytes)
            .await
            .map_err(|e| e.to_string())?;
        files.push(ExportedFile {
            name: file.name.to_owned(),
            rows: file.rows,
            bytes,
            truncated: file.truncated,
            url: url.expose().to_owned(),
        });
    }
    let expires_at = now
        + Duration::from_std(nuvem_aws::invoices::EXPORT_LINK_TTL).unwrap_or(Duration::hours(1));
    let event = Envelope::new(
        EventType::RpaExportCompleted,
        account,
        json!({
            "schedule_id": schedule.id,
            "export_id": export_id,
            "expires_at": expires_at,
            "files": files,
        }),
        now,
    );
    let rows: Vec<String> = files
        .iter()
        .map(|f| format!("{} {}", f.rows, f.name))
        .collect();
    let summary = format!("export {export_id} written: {}", rows.join(", "));
    Ok(Worked::only(summary, Some(event)))
}
