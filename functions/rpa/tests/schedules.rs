//! The `rpa` routes of schedules against the emulator: names unique per
//! account, the next run computed in the schedule's zone and kept in the
//! scheduler's index only while active, pausing and resuming, roles and
//! tenant isolation.

mod common;

use chrono::{DateTime, Datelike, Timelike, Utc};
use common::{Call, World, id_of, world};
use nuvem_testkit::inspect::scan_all;
use serde_json::{Value, json};

impl World {
    async fn schedule(&self, body: Value) -> (u16, Value) {
        self.owner(
            "POST /v1/rpa/schedules",
            Call {
                json: Some(body),
                ..Call::default()
            },
        )
        .await
    }

    async fn patch_schedule(&self, id: &str, body: Value) -> (u16, Value) {
        let params = [("id", id)];
        self.owner(
            "PATCH /v1/rpa/schedules/{id}",
            Call {
                params: &params,
                json: Some(body),
                ..Call::default()
            },
        )
        .await
    }

    /// The schedule ids in the scheduler's index of due runs.
    async fn due_index(&self) -> Vec<String> {
        scan_all(&self.t.db, self.t.table())
            .await
            .into_iter()
            .filter(|i| {
                i.get("gsi1pk")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some("RPADUE")
            })
            .map(|i| i["id"].as_s().unwrap().clone())
            .collect()
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_schedule_runs_next_at_its_cron_in_its_zone() {
    let w = world().await;
    let (status, created) = w
        .schedule(json!({"name": "Processos do mês", "cron": "0 6 1 * *", "type": "create_monthly_processes"}))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["time_zone"], "America/Sao_Paulo");
    assert_eq!(
        created["parameters"],
        json!({"carriers": [], "month_offset": 0, "retention_days": 90})
    );
    // 06:00 in São Paulo (UTC−3) on the 1st: 09:00 UTC, within a month.
    let next = time(&created["next_run"]);
    assert_eq!((next.day(), next.hour(), next.minute()), (1, 9, 0));
    assert!(next > Utc::now() && next - Utc::now() <= chrono::Duration::days(31));
    let (_, utc) = w
        .schedule(json!({"name": "Fim do mês", "cron": "30 23 L * *", "time_zone": "UTC", "type": "create_monthly_processes"}))
        .await;
    let next = time(&utc["next_run"]);
    assert_eq!(
        (next + chrono::Duration::days(1)).day(),
        1,
        "the last day of its month"
    );
    assert_eq!((next.hour(), next.minute()), (23, 30));
    let mut due = w.due_index().await;
    due.sort();
    let mut both = vec![id_of(&created), id_of(&utc)];
    both.sort();
    assert_eq!(due, both);
}

#[tokio::test]
async fn names_are_unique_per_account_and_freed_by_renames_and_deletes() {
    let w = world().await;
    let body = |name: &str| json!({"name": name, "cron": "0 8 * * MON-FRI", "type": "create_monthly_processes"});
    let (_, first) = w.schedule(body("Downloads diários")).await;
    assert_eq!(w.schedule(body("  downloads   DIÁRIOS ")).await.0, 409);
    let (status, _) = w
        .call_as(
            &w.other,
            "owner",
            "POST /v1/rpa/schedules",
            Call {
                json: Some(body("Downloads diários")),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 201, "another account may use the name");
    let id = id_of(&first);
    let (status, renamed) = w
        .patch_schedule(&id, json!({"name": "Downloads da manhã"}))
        .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (200, Some("Downloads da manhã"))
    );
    assert_eq!(
        renamed["next_run"], first["next_run"],
        "a rename keeps the next run"
    );
    let (status, second) = w.schedule(body("Downloads diários")).await;
    assert_eq!(status, 201, "the old name is free");
    assert_eq!(
        w.patch_schedule(&id_of(&second), json!({"name": "downloads da manhã"}))
            .await
            .0,
        409
    );
    let params = [("id", id.as_str())];
    assert_eq!(
        w.owner(
            "DELETE /v1/rpa/schedules/{id}",
            Call {
                params: &params,
                ..Call::default()
            }
        )
        .await
        .0,
        204
    );
    assert_eq!(w.schedule(body("Downloads da manhã")).await.0, 201);
    assert_eq!(
        w.owner(
            "GET /v1/rpa/schedules/{id}",
            Call {
                params: &params,
                ..Call::default()
            }
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn an_inactive_schedule_leaves_the_index_until_it_is_resumed() {
    let w = world().await;
    let (_, created) = w
        .schedule(json!({"name": "Limpeza", "cron": "0 3 * * SUN", "type": "create_monthly_processes", "parameters": {"retention_days": 30}}))
        .await;
    let id = id_of(&created);
    let (status, paused) = w.patch_schedule(&id, json!({"active": false})).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["next_run"], Value::Null);
    assert!(w.due_index().await.is_empty());
    let (_, resumed) = w
        .patch_schedule(&id, json!({"active": true, "cron": "0 4 * * SUN"}))
        .await;
    let next = time(&resumed["next_run"]);
    assert_eq!(
        (next.weekday(), next.hour()),
        (chrono::Weekday::Sun, 7),
        "04:00 in São Paulo"
    );
    assert_eq!(resumed["consecutive_failures"], 0);
    assert_eq!(resumed["parameters"]["retention_days"], 30);
    assert_eq!(w.due_index().await, [id.as_str()]);
    let (status, body) = w.patch_schedule(&id, json!({"type": "export_data"})).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("type"))
    );
}

#[tokio::test]
async fn roles_and_accounts_are_kept_apart() {
    let w = world().await;
    let (_, created) = w
        .schedule(
            json!({"name": "Relatório", "cron": "0 9 2 * *", "type": "create_monthly_processes"}),
        )
        .await;
    let id = id_of(&created);
    let params = [("id", id.as_str())];
    for role in ["approver", "operator"] {
        let (status, read) = w
            .call_as(
                &w.account,
                role,
                "GET /v1/rpa/schedules/{id}",
                Call {
                    params: &params,
                    ..Call::default()
                },
            )
            .await;
        assert_eq!((status, &read), (200, &created));
        let (status, _) = w
            .call_as(
                &w.account,
                role,
                "PATCH /v1/rpa/schedules/{id}",
                Call {
                    params: &params,
                    json: Some(json!({"active": false})),
                    ..Call::default()
                },
            )
            .await;
        assert_eq!(status, 403);
    }
    for route in [
        "GET /v1/rpa/schedules/{id}",
        "PATCH /v1/rpa/schedules/{id}",
        "DELETE /v1/rpa/schedules/{id}",
    ] {
        let json = route.starts_with("PATCH").then(|| json!({"active": false}));
        let (status, _) = w
            .call_as(
                &w.other,
                "owner",
                route,
                Call {
                    params: &params,
                    json,
                    ..Call::default()
                },
            )
            .await;
        assert_eq!(status, 404, "{route}");
    }
    let listed = w.all_pages("operator", "GET /v1/rpa/schedules", &[]).await;
    assert_eq!(listed, [id]);
}
