//! `rpa-scheduler` against the emulator: a due `create_monthly_processes`
//! run makes the month's process for each active client once (however many
//! invocations overlap, and with processes that exist left alone), a missed
//! window runs once, and a schedule that keeps failing is paused with its
//! event.

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use nuvem_aws::Core;
use nuvem_aws::invoices::Invoices;
use nuvem_aws::rpa_jobs::{self, RpaJob, RpaJobQueue};
use nuvem_aws::store::{
    ClientRecord, ProcessRecord, RunOutcome, ScheduleRecord, ScheduleRunRecord, Store,
    StoredLogLine,
};
use nuvem_domain::ids;
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::execution::EXECUTION_ID_PREFIX;
use nuvem_domain::rpa::export::ExportedFile;
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::{Invoice, Origin, ProcessStatus, invoice_key, process_id};
use nuvem_domain::rpa::schedule::MAX_CONSECUTIVE_FAILURES;
use nuvem_domain::rpa::schedule_settings::ScheduleKind;
use nuvem_testkit::inspect::drain;
use nuvem_testkit::{TestStack, rpa_records, tenants};
use serde_json::{Value, json};

struct World {
    t: TestStack,
    deps: rpa_scheduler::Deps,
    account: String,
}

async fn world() -> World {
    let t = TestStack::new("rpa-scheduler").await;
    let env = t.env("RpaScheduler");
    let core = Core::from_lookup(&t.sdk, &env).unwrap();
    let queue = RpaJobQueue::new(&t.sdk, env("RPA_JOBS_QUEUE_URL").unwrap());
    let invoices = Invoices::from_lookup(&t.sdk, &env).unwrap();
    let account = tenants::active_account(&core.store, 1_000, 0).await.id;
    World {
        t,
        deps: rpa_scheduler::Deps {
            core,
            queue,
            invoices,
        },
        account,
    }
}

fn actor() -> Actor {
    Actor {
        key_id: "key_01jd0000000000000000000001".into(),
        key_name: "tests".into(),
    }
}

impl World {
    fn store(&self) -> &Store {
        &self.deps.core.store
    }

    async fn client(&self, carrier: &str, unit: &str, active: bool) -> ClientRecord {
        let body = json!({
            "legal_name": format!("Cliente {unit}"), "cnpj": "11.222.333/0001-81",
            "carrier": carrier, "unit": unit, "active": active
        });
        rpa_records::client(self.store(), &self.account, body, None).await
    }

    async fn schedule(
        &self,
        cron: &str,
        kind: &str,
        parameters: Value,
        next_run: DateTime<Utc>,
    ) -> ScheduleRecord {
        rpa_records::schedule(
            self.store(),
            &self.account,
            cron,
            kind,
            parameters,
            next_run,
        )
        .await
    }

    async fn processes(&self, month: &str) -> Vec<nuvem_aws::store::ProcessRecord> {
        self.store()
            .processes_of_month(&self.account, Month::parse(month).unwrap(), None, 10_000)
            .await
            .unwrap()
    }
}

/// One tick at `now`, with time for every page it finds.
async fn tick(w: &World, now: DateTime<Utc>) -> rpa_scheduler::Report {
    rpa_scheduler::handle(&w.deps, now, DateTime::<Utc>::MAX_UTC).await
}

/// One tick at `now` whose deadline has passed: it works one page.
async fn short_tick(w: &World, now: DateTime<Utc>) -> rpa_scheduler::Report {
    rpa_scheduler::handle(&w.deps, now, DateTime::<Utc>::MIN_UTC).await
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

#[tokio::test]
async fn a_due_run_creates_the_months_processes_once() {
    let w = world().await;
    let vivo = w.client("VIVO", "Matriz", true).await;
    let vivo2 = w.client("VIVO", "Filial", true).await;
    let oi = w.client("OI", "Matriz", true).await;
    w.client("VIVO", "Fechada", false).await;
    // 1 December, 06:00 in São Paulo (09:00 UTC), for the previous month,
    // VIVO's clients only.
    let due = at("2026-12-01T09:00:00Z");
    let schedule = w
        .schedule(
            "0 6 1 * *",
            "create_monthly_processes",
            json!({"carriers": ["VIVO"], "month_offset": -1}),
            due,
        )
        .await;
    // One client made its own process already.
    let month = Month::parse("2026-11").unwrap();
    let existing = process_id(&vivo2.id, month).unwrap();
    let mut by_hand = nuvem_aws::store::ProcessRecord::new_for(
        &vivo2,
        month,
        Origin::Request,
        Some(actor()),
        Utc::now(),
    )
    .unwrap();
    by_hand.status = ProcessStatus::AwaitingApproval;
    by_hand.manual_upload = true;
    assert!(w.store().create_process(&by_hand).await.unwrap());
    let now = due + Duration::seconds(20);
    let (a, b) = tokio::join!(tick(&w, now), tick(&w, now));
    assert_eq!(a.claimed + b.claimed, 1, "{a:?} {b:?}");
    assert_eq!(a.succeeded + b.succeeded, 1);
    let processes = w.processes("2026-11").await;
    let mut ids: Vec<&str> = processes.iter().map(|p| p.id.as_str()).collect();
    ids.sort();
    let mut expected = vec![process_id(&vivo.id, month).unwrap(), existing];
    expected.sort();
    assert_eq!(ids, expected, "active VIVO clients only, once each");
    let made = processes.iter().find(|p| p.client_id == vivo.id).unwrap();
    assert_eq!(made.status, ProcessStatus::AwaitingDownload);
    assert_eq!(
        made.origin,
        Origin::Schedule {
            schedule_id: schedule.id.clone()
        }
    );
    let kept = processes.iter().find(|p| p.client_id == vivo2.id).unwrap();
    assert_eq!(kept, &by_hand, "an existing process is left as it was");
    assert!(!processes.iter().any(|p| p.client_id == oi.id));
    // Nothing is due again until 1 January.
    let stored = w
        .store()
        .get_schedule(&w.account, &schedule.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.next_run, Some(at("2027-01-01T09:00:00Z")));
    assert_eq!(stored.last_run, Some(due));
    assert_eq!(tick(&w, now + Duration::minutes(1)).await.claimed, 0);
}

#[tokio::test]
async fn a_schedule_that_keeps_failing_is_paused_and_its_owner_told() {
    let mut w = world().await;
    // An export into a bucket that is not there fails every run.
    w.deps.invoices = Invoices::new(&w.t.sdk, "nuvem-no-such-bucket");
    let start = at("2026-11-29T12:00:00Z");
    let schedule = w
        .schedule("* * * * *", "export_data", json!({}), start)
        .await;
    drain(&w.t.sqs, w.t.events_queue(), 100).await;
    for minute in 0..i64::from(MAX_CONSECUTIVE_FAILURES) + 3 {
        tick(&w, start + Duration::minutes(minute) + Duration::seconds(5)).await;
    }
    let stored = w
        .store()
        .get_schedule(&w.account, &schedule.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.settings.active);
    assert_eq!(stored.next_run, None);
    assert_eq!(stored.consecutive_failures, MAX_CONSECUTIVE_FAILURES);
    assert!(
        stored
            .paused_reason
            .as_deref()
            .unwrap()
            .contains("NoSuchBucket"),
        "{:?}",
        stored.paused_reason
    );
    assert_eq!(stored.settings.kind, ScheduleKind::ExportData);
    let paused: Vec<Value> = drain(&w.t.sqs, w.t.events_queue(), 100)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .filter(|e: &Value| e["type"] == "rpa.schedule.paused")
        .collect();
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert_eq!(paused[0]["data"]["schedule_id"], schedule.id.as_str());
    assert_eq!(
        paused[0]["data"]["consecutive_failures"],
        MAX_CONSECUTIVE_FAILURES
    );
}

#[tokio::test]
async fn a_success_forgets_earlier_failures() {
    let w = world().await;
    w.client("VIVO", "Matriz", true).await;
    let start = at("2026-11-29T12:00:00Z");
    let mut schedule = w
        .schedule("*/5 * * * *", "create_monthly_processes", json!({}), start)
        .await;
    // As if three runs had failed before.
    let current = schedule.clone();
    schedule.consecutive_failures = 3;
    schedule.version += 1;
    assert!(
        w.store()
            .update_schedule_with_event(&current, &schedule, None)
            .await
            .unwrap()
    );
    let report = tick(&w, start + Duration::seconds(30)).await;
    assert_eq!(report.succeeded, 1);
    let stored = w
        .store()
        .get_schedule(&w.account, &schedule.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.consecutive_failures, 0);
    assert_eq!(w.processes("2026-11").await.len(), 1);
}

impl World {
    async fn carrier(&self, code: &str) {
        rpa_records::carrier(self.store(), &self.account, code, json!({})).await;
    }

    async fn process_of(&self, client: &ClientRecord, month: Month) -> ProcessRecord {
        rpa_records::process(self.store(), client, month).await
    }

    async fn jobs_sent(&self) -> Vec<RpaJob> {
        let url = (self.t.env("RpaScheduler"))("RPA_JOBS_QUEUE_URL").unwrap();
        drain(&self.t.sqs, &url, 1_000)
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn a_run_downloads_run_begins_one_download_per_waiting_process() {
    let w = world().await;
    w.carrier("VIVO").await;
    w.carrier("OI").await;
    let month = Month::parse("2026-11").unwrap();
    let a = w
        .process_of(&w.client("VIVO", "A", true).await, month)
        .await;
    let b = w
        .process_of(&w.client("VIVO", "B", true).await, month)
        .await;
    let oi = w.process_of(&w.client("OI", "C", true).await, month).await;
    let other_month = w
        .process_of(&w.client("VIVO", "D", true).await, month.offset(-1))
        .await;
    let due = at("2026-12-02T10:00:00Z");
    w.schedule(
        "0 7 2 * *",
        "run_downloads",
        json!({"carriers": ["VIVO"], "month_offset": -1}),
        due,
    )
    .await;
    let now = due + Duration::seconds(5);
    let (r1, r2) = tokio::join!(tick(&w, now), tick(&w, now));
    assert_eq!(r1.succeeded + r2.succeeded, 1, "{r1:?} {r2:?}");
    let mut begun: Vec<String> = w
        .jobs_sent()
        .await
        .into_iter()
        .map(|j| j.process_id)
        .collect();
    begun.sort();
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(begun, expected);
    for p in [&a, &b] {
        let stored = w
            .store()
            .get_process(&w.account, &p.client_id, month)
            .await
            .unwrap()
            .unwrap();
        assert!(stored.active_execution.is_some());
    }
    for p in [&oi, &other_month] {
        let stored = w
            .store()
            .get_process(&w.account, &p.client_id, p.month)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.active_execution, None);
    }
}

#[tokio::test]
async fn an_execution_whose_message_was_lost_is_sent_again_once_overdue() {
    let w = world().await;
    w.carrier("VIVO").await;
    let month = Month::parse("2026-11").unwrap();
    let p = w
        .process_of(&w.client("VIVO", "A", true).await, month)
        .await;
    let how = rpa_jobs::Beginning {
        by: None,
        retry: false,
        audit: None,
    };
    let began = Utc::now();
    let e = rpa_jobs::begin_step(w.store(), &w.deps.queue, &p, how, began)
        .await
        .unwrap();
    // The message is lost (taken and never handled).
    assert_eq!(w.jobs_sent().await.len(), 1);
    // Not yet overdue: nothing is sent.
    assert_eq!(tick(&w, began + Duration::seconds(30)).await.resent, 0);
    assert!(w.jobs_sent().await.is_empty());
    // Overdue: the same message again, naming the version that waits.
    let late = began + rpa_jobs::overdue_after() + Duration::seconds(1);
    assert_eq!(tick(&w, late).await.resent, 1);
    assert_eq!(w.jobs_sent().await, vec![RpaJob::of(&e)]);
}

/// The events of `kind` on the events queue, as JSON.
async fn events_of(w: &World, kind: &str) -> Vec<Value> {
    drain(&w.t.sqs, w.t.events_queue(), 100)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .filter(|e: &Value| e["type"] == kind)
        .collect()
}

#[tokio::test]
async fn a_send_report_run_sends_the_months_report_once() {
    let w = world().await;
    let month = Month::parse("2026-11").unwrap();
    let filed = |client: &ClientRecord, cents| {
        let mut p =
            ProcessRecord::new_for(client, month, Origin::Request, None, Utc::now()).unwrap();
        p.status = ProcessStatus::Filed;
        p.invoice = Some(Invoice {
            s3_key: invoice_key(&w.account, &client.id, month),
            file_name: "fatura.pdf".into(),
            due_date: None,
            amount_cents: Some(cents),
            access_key: None,
            received_at: Utc::now(),
        });
        p
    };
    for p in [
        filed(&w.client("VIVO", "A", true).await, 18_990),
        filed(&w.client("VIVO", "B", true).await, 1_010),
    ] {
        assert!(w.store().create_process(&p).await.unwrap());
    }
    w.process_of(&w.client("OI", "C", true).await, month).await;
    // Another month's process is not counted.
    w.process_of(&w.client("OI", "D", true).await, month.offset(1))
        .await;
    drain(&w.t.sqs, w.t.events_queue(), 100).await;
    let due = at("2026-12-01T11:00:00Z");
    let schedule = w
        .schedule("0 8 1 * *", "send_report", json!({"month_offset": -1}), due)
        .await;
    let now = due + Duration::seconds(5);
    let (r1, r2) = tokio::join!(tick(&w, now), tick(&w, now));
    assert_eq!(r1.succeeded + r2.succeeded, 1, "{r1:?} {r2:?}");
    let reports = events_of(&w, "rpa.report.generated").await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let data = &reports[0]["data"];
    assert_eq!(data["schedule_id"], schedule.id.as_str());
    assert_eq!(data["month"], "2026-11");
    assert_eq!(data["total"]["processes"], 3);
    assert_eq!(data["total"]["amount_cents"], 20_000);
    assert_eq!(data["by_carrier"]["VIVO"]["by_status"]["filed"], 2);
    assert_eq!(
        data["by_carrier"]["OI"]["by_status"]["awaiting_download"],
        1
    );
    // What fanout reads back to write the email.
    let report: nuvem_domain::rpa::report::MonthlyReport =
        serde_json::from_value(data.clone()).unwrap();
    assert_eq!(report.total.processes, 3);
}

#[tokio::test]
async fn a_purge_old_logs_run_deletes_only_the_logs_past_retention() {
    let w = world().await;
    let now = at("2026-11-29T03:00:00Z");
    let line = |seq| StoredLogLine {
        seq,
        at: now,
        level: "info".into(),
        message: format!("line {seq}"),
    };
    let lines: Vec<StoredLogLine> = (1..=30).map(line).collect();
    // Executions that began 40 and 20 days before, and one today.
    let old = ids::lower_bound(EXECUTION_ID_PREFIX, now - Duration::days(40));
    let recent = ids::lower_bound(EXECUTION_ID_PREFIX, now - Duration::days(20));
    let today = ids::new_id(EXECUTION_ID_PREFIX);
    for execution in [&old, &recent, &today] {
        w.store()
            .append_logs(&w.account, execution, &lines)
            .await
            .unwrap();
    }
    let w = &w;
    let logs = |execution: String| async move {
        w.store()
            .execution_logs(&w.account, &execution, 0, 100)
            .await
            .unwrap()
            .len()
    };
    w.schedule(
        "0 3 * * *",
        "purge_old_logs",
        json!({"retention_days": 30}),
        now,
    )
    .await;
    let report = tick(w, now + Duration::seconds(5)).await;
    assert_eq!(report.succeeded, 1, "{report:?}");
    assert_eq!(logs(old.clone()).await, 0);
    assert_eq!(logs(recent.clone()).await, 30);
    assert_eq!(logs(today.clone()).await, 30);
}

#[tokio::test]
async fn an_export_data_run_links_csv_files_that_import_back() {
    let w = world().await;
    w.carrier("VIVO").await;
    let month = Month::parse("2026-11").unwrap();
    let body = json!({
        "legal_name": "Padaria Pão Quente, Ltda", "cnpj": "11.222.333/0001-81",
        "carrier": "VIVO", "unit": "Matriz", "portal_login": "financeiro", "active": true
    });
    let sealed = Some("sealed-password-never-exported".to_owned());
    let a = rpa_records::client(w.store(), &w.account, body, sealed).await;
    let b = w.client("VIVO", "Filial", false).await;
    w.process_of(&a, month).await;
    w.process_of(&a, month.offset(-1)).await;
    w.process_of(&b, month).await;
    drain(&w.t.sqs, w.t.events_queue(), 100).await;
    let due = at("2026-11-29T09:00:00Z");
    w.schedule("0 6 * * *", "export_data", json!({}), due).await;
    let report = tick(&w, due + Duration::seconds(5)).await;
    assert_eq!(report.succeeded, 1, "{report:?}");
    let exports = events_of(&w, "rpa.export.completed").await;
    assert_eq!(exports.len(), 1, "{exports:?}");
    let data = &exports[0]["data"];
    let files: Vec<ExportedFile> = serde_json::from_value(data["files"].clone()).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["carriers.csv", "clients.csv", "processes.csv"]);
    let rows: Vec<usize> = files.iter().map(|f| f.rows).collect();
    assert_eq!(rows, [1, 2, 3]);
    let http = reqwest::Client::new();
    let mut bodies = Vec::new();
    for file in &files {
        let answer = http.get(&file.url).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{}", file.name);
        let bytes = answer.bytes().await.unwrap();
        assert_eq!(bytes.len(), file.bytes);
        bodies.push(String::from_utf8(bytes.to_vec()).unwrap());
    }
    assert!(bodies[0].starts_with("code,name,has_rpa"));
    assert!(!bodies[1].contains("sealed-password"), "{}", bodies[1]);
    let imported = nuvem_domain::rpa::client_import::parse(bodies[1].as_bytes()).unwrap();
    let mut back: Vec<String> = imported
        .iter()
        .map(|row| row.outcome.as_ref().unwrap().settings.legal_name.clone())
        .collect();
    back.sort();
    assert_eq!(back, ["Cliente Filial", "Padaria Pão Quente, Ltda"]);
    assert_eq!(bodies[2].matches(&a.id).count(), 2);
    assert_eq!(bodies[2].matches(&b.id).count(), 1);
}

impl World {
    async fn run_of(&self, schedule: &ScheduleRecord, due: DateTime<Utc>) -> ScheduleRunRecord {
        self.store()
            .get_schedule_run(&self.account, &schedule.id, due)
            .await
            .unwrap()
            .expect("the run's record")
    }
}

/// Ticks two overlapping invocations at a time, a minute apart from `now`,
/// each with its deadline passed, until one ends a run; the reports of
/// every tick.
async fn short_ticks_until_a_run_ends(
    w: &World,
    mut now: DateTime<Utc>,
) -> Vec<rpa_scheduler::Report> {
    let mut ticks = Vec::new();
    loop {
        let (a, b) = tokio::join!(short_tick(w, now), short_tick(w, now));
        assert_eq!(a.failed + b.failed, 0, "{a:?} {b:?}");
        let ended = a.succeeded + b.succeeded;
        ticks.push(a);
        ticks.push(b);
        if ended > 0 {
            return ticks;
        }
        assert!(ticks.len() < 20, "the run does not end: {ticks:?}");
        now += Duration::minutes(1);
    }
}

#[tokio::test]
async fn a_big_run_goes_on_a_page_per_tick_and_does_each_client_once() {
    let w = world().await;
    w.carrier("VIVO").await;
    // Three pages of a hundred clients.
    let clients = 201;
    futures::stream::iter(0..clients)
        .for_each_concurrent(8, |i| {
            let w = &w;
            async move {
                w.client("VIVO", &format!("Unidade {i}"), true).await;
            }
        })
        .await;
    let due = at("2026-12-01T09:00:00Z");
    let create = w
        .schedule(
            "0 6 1 * *",
            "create_monthly_processes",
            json!({"month_offset": -1}),
            due,
        )
        .await;
    // The first tick's deadline has passed once it worked a page: it
    // leaves the run with a page done.
    let first = short_tick(&w, due + Duration::seconds(5)).await;
    assert_eq!(
        (first.claimed, first.unfinished, first.succeeded),
        (1, 1, 0)
    );
    assert_eq!(w.processes("2026-11").await.len(), 100);
    let run = w.run_of(&create, due).await;
    assert_eq!(run.outcome, RunOutcome::Running);
    assert_eq!((run.progress.done, run.progress.pages), (100, 1));
    // Later ticks, two at a time, take it up where it stopped.
    let ticks = short_ticks_until_a_run_ends(&w, due + Duration::minutes(1)).await;
    let resumed: usize = ticks.iter().map(|r| r.resumed).sum();
    assert!(resumed >= 2, "a page per tick: {ticks:?}");
    let processes = w.processes("2026-11").await;
    assert_eq!(processes.len(), clients);
    let run = w.run_of(&create, due).await;
    assert_eq!(run.outcome, RunOutcome::Succeeded);
    assert_eq!(run.resumed as usize, resumed);
    assert_eq!(run.progress.done, clients as u64, "{run:?}");
    assert_eq!(run.progress.skipped, 0, "no page was written twice");
    assert_eq!(
        run.detail.as_deref(),
        Some("201 processes of 2026-11 created, 0 existed")
    );

    // The same for the downloads of those processes.
    let due = due + Duration::hours(1);
    let downloads = w
        .schedule(
            "0 7 1 * *",
            "run_downloads",
            json!({"month_offset": -1}),
            due,
        )
        .await;
    let ticks = short_ticks_until_a_run_ends(&w, due + Duration::seconds(5)).await;
    assert!(
        ticks.iter().map(|r| r.resumed).sum::<usize>() >= 2,
        "{ticks:?}"
    );
    let mut begun: Vec<String> = w
        .jobs_sent()
        .await
        .into_iter()
        .map(|j| j.process_id)
        .collect();
    begun.sort();
    begun.dedup();
    assert_eq!(begun.len(), clients, "one download per process");
    let run = w.run_of(&downloads, due).await;
    assert_eq!(run.outcome, RunOutcome::Succeeded);
    assert_eq!(run.progress.done, clients as u64, "{run:?}");
}

#[tokio::test]
async fn a_run_cut_short_by_a_crash_is_taken_up_once_its_lease_runs_out() {
    let w = world().await;
    w.client("VIVO", "Matriz", true).await;
    let due = at("2026-12-01T09:00:00Z");
    let schedule = w
        .schedule(
            "0 6 1 * *",
            "create_monthly_processes",
            json!({"month_offset": -1}),
            due,
        )
        .await;
    // An invocation claims the run and dies before it works a page.
    let now = due + Duration::seconds(5);
    let next = schedule.settings.schedule().unwrap().next_due(due, now);
    w.store()
        .claim_schedule_run(&schedule, next, now, rpa_scheduler::LEASE)
        .await
        .unwrap()
        .expect("claimed");
    // While its lease holds, later ticks leave it alone.
    let report = tick(&w, now + Duration::minutes(1)).await;
    assert_eq!((report.claimed, report.resumed), (0, 0));
    assert!(w.processes("2026-11").await.is_empty());
    // Once it runs out, one of two overlapping ticks takes it up.
    let later = now + rpa_scheduler::LEASE + Duration::seconds(1);
    let (a, b) = tokio::join!(tick(&w, later), tick(&w, later));
    assert_eq!(a.resumed + b.resumed, 1, "{a:?} {b:?}");
    assert_eq!(a.succeeded + b.succeeded, 1);
    assert_eq!(w.processes("2026-11").await.len(), 1);
    let run = w.run_of(&schedule, due).await;
    assert_eq!((run.outcome, run.resumed), (RunOutcome::Succeeded, 1));
    // A finished run is not taken up again.
    let report = tick(&w, later + rpa_scheduler::LEASE * 2).await;
    assert_eq!(report.resumed, 0);
}
