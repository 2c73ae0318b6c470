//! The scheduler's part of the store against the emulator: which schedules
//! are due, and a due run claimed exactly once however many scheduler
//! invocations overlap, with a missed window run once after downtime.

use chrono::{DateTime, Duration, Utc};
use nuvem_aws::store::{ScheduleRecord, Store};
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::schedule_settings::{ScheduleRequest, new_schedule_id};
use nuvem_testkit::TestStack;
use nuvem_testkit::inspect::scan_all;
use serde_json::json;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// A schedule of `cron` (UTC) whose next run is `next_run`.
fn schedule(name: &str, cron: &str, next_run: Option<DateTime<Utc>>) -> ScheduleRecord {
    let (settings, _) = serde_json::from_value::<ScheduleRequest>(json!({
        "name": name, "cron": cron, "time_zone": "UTC", "type": "create_monthly_processes"
    }))
    .unwrap()
    .validate()
    .unwrap();
    let actor = Actor {
        key_id: "key_01jd0000000000000000000001".into(),
        key_name: "tests".into(),
    };
    let now = Utc::now();
    ScheduleRecord {
        id: new_schedule_id(),
        account_id: "acc_01jd0000000000000000000001".into(),
        settings,
        next_run,
        last_run: None,
        consecutive_failures: 0,
        paused_reason: None,
        created_at: now,
        created_by: actor.clone(),
        updated_at: now,
        updated_by: actor,
        version: 1,
    }
}

/// What one scheduler invocation at `now` does: read what is due, claim
/// each run; the due times it claimed.
async fn tick(store: &Store, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut claimed = Vec::new();
    for due in store.due_schedules(now, 100).await.unwrap() {
        let cron = due.settings.schedule().unwrap();
        let when = due.next_run.unwrap();
        let next = cron.next_due(when, now);
        if store
            .claim_schedule_run(&due, next, now, Duration::minutes(5))
            .await
            .unwrap()
            .is_some()
        {
            claimed.push(when);
        }
    }
    claimed
}

async fn run_records(t: &TestStack) -> usize {
    scan_all(&t.db, t.stack.table("Table"))
        .await
        .iter()
        .filter(|i| i["sk"].as_s().unwrap().starts_with("RPARUN#"))
        .count()
}

#[tokio::test]
async fn only_active_schedules_that_are_due_are_listed() {
    let t = TestStack::new("rpa-due").await;
    let store = Store::new(&t.sdk, t.stack.table("Table"));
    let now = at("2026-11-29T12:00:00Z");
    let due = schedule("due", "0 * * * *", Some(now - Duration::minutes(1)));
    let exactly = schedule("exactly", "0 * * * *", Some(now));
    let later = schedule("later", "0 * * * *", Some(now + Duration::seconds(1)));
    let inactive = schedule("inactive", "0 * * * *", None);
    for s in [&due, &exactly, &later, &inactive] {
        store.create_schedule(s).await.unwrap().unwrap();
    }
    let mut ids: Vec<String> = store
        .due_schedules(now, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    ids.sort();
    let mut expected = vec![due.id, exactly.id];
    expected.sort();
    assert_eq!(ids, expected);
}

/// Two invocations every minute for an hour, each reading before either
/// claims: every occurrence of the schedule runs exactly once.
#[tokio::test]
async fn overlapping_invocations_run_each_tick_once() {
    let t = TestStack::new("rpa-overlap").await;
    let store = Store::new(&t.sdk, t.stack.table("Table"));
    let start = at("2026-11-29T12:00:00Z");
    let every5 = schedule("every 5", "*/5 * * * *", Some(start));
    store.create_schedule(&every5).await.unwrap().unwrap();
    let mut runs = Vec::new();
    for minute in 0..60 {
        let now = start + Duration::minutes(minute) + Duration::seconds(7);
        let (a, b) = tokio::join!(tick(&store, now), tick(&store, now));
        runs.extend(a);
        runs.extend(b);
    }
    let expected: Vec<DateTime<Utc>> = (0..12).map(|i| start + Duration::minutes(5 * i)).collect();
    runs.sort();
    assert_eq!(runs, expected);
    assert_eq!(run_records(&t).await, 12);
}

/// After three days down, an hourly schedule runs its missed window once
/// and then waits for the next hour.
#[tokio::test]
async fn a_missed_window_runs_once_after_downtime() {
    let t = TestStack::new("rpa-missed").await;
    let store = Store::new(&t.sdk, t.stack.table("Table"));
    let down_since = at("2026-11-26T12:00:00Z");
    let hourly = schedule("hourly", "0 * * * *", Some(down_since));
    store.create_schedule(&hourly).await.unwrap().unwrap();
    let back = at("2026-11-29T12:34:00Z");
    assert_eq!(tick(&store, back).await, [down_since]);
    assert!(tick(&store, back + Duration::minutes(1)).await.is_empty());
    let stored = store
        .get_schedule(&hourly.account_id, &hourly.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.next_run, Some(at("2026-11-29T13:00:00Z")));
    assert_eq!(stored.last_run, Some(down_since));
    assert_eq!(
        tick(&store, at("2026-11-29T13:00:30Z")).await,
        [at("2026-11-29T13:00:00Z")]
    );
    assert_eq!(run_records(&t).await, 2);
}
