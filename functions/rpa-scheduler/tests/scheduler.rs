//! `rpa-scheduler` against the emulator: a due `create_monthly_processes`
//! run makes the month's process for each active client once (however many
//! invocations overlap, and with processes that exist left alone), a missed
//! window runs once, and a schedule that keeps failing is paused with its
//! event.

use chrono::{DateTime, Duration, Utc};
use nuvem_aws::Core;
use nuvem_aws::rpa_jobs::{self, RpaJob, RpaJobQueue};
use nuvem_aws::store::{ClientRecord, ProcessRecord, ScheduleRecord, Store};
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::{Origin, ProcessStatus, process_id};
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
    let account = tenants::active_account(&core.store, 1_000, 0).await.id;
    World {
        t,
        deps: rpa_scheduler::Deps { core, queue },
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
            .processes_of_month(&self.account, Month::parse(month).unwrap(), None, 1000)
            .await
            .unwrap()
    }
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
    let (a, b) = tokio::join!(
        rpa_scheduler::handle(&w.deps, now),
        rpa_scheduler::handle(&w.deps, now)
    );
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
    assert_eq!(
        rpa_scheduler::handle(&w.deps, now + Duration::minutes(1))
            .await
            .claimed,
        0
    );
}

#[tokio::test]
async fn a_schedule_that_keeps_failing_is_paused_and_its_owner_told() {
    let w = world().await;
    let start = at("2026-11-29T12:00:00Z");
    // A type the scheduler does not run fails every run.
    let schedule = w
        .schedule("* * * * *", "export_data", json!({}), start)
        .await;
    drain(&w.t.sqs, w.t.events_queue(), 100).await;
    for minute in 0..i64::from(MAX_CONSECUTIVE_FAILURES) + 3 {
        rpa_scheduler::handle(
            &w.deps,
            start + Duration::minutes(minute) + Duration::seconds(5),
        )
        .await;
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
            .contains("export_data is not available yet")
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
    let report = rpa_scheduler::handle(&w.deps, start + Duration::seconds(30)).await;
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
        drain(&self.t.sqs, &url, 100)
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
    let (r1, r2) = tokio::join!(
        rpa_scheduler::handle(&w.deps, now),
        rpa_scheduler::handle(&w.deps, now)
    );
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
    assert_eq!(
        rpa_scheduler::handle(&w.deps, began + Duration::seconds(30))
            .await
            .resent,
        0
    );
    assert!(w.jobs_sent().await.is_empty());
    // Overdue: the same message again, naming the version that waits.
    let late = began + rpa_jobs::overdue_after() + Duration::seconds(1);
    assert_eq!(rpa_scheduler::handle(&w.deps, late).await.resent, 1);
    assert_eq!(w.jobs_sent().await, vec![RpaJob::of(&e)]);
}
