//! The `rpa` routes of processes against the emulator: one process per
//! client and month, listings by status, month, carrier and client, an
//! approval that moves only from `awaiting_approval` (once, with its event
//! and audit entry, even when two approvers click together), and the
//! monthly report.

mod common;

use common::{Call, id_of, world};
use nuvem_testkit::inspect::drain;
use serde_json::{Value, json};

#[tokio::test]
async fn a_client_has_one_process_per_month() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let client = w.new_client("Matriz", "VIVO").await;
    let (status, created) = w.new_process(&client, "2026-11").await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "awaiting_download");
    assert_eq!(created["carrier"], "VIVO");
    assert_eq!(created["legal_name"], "Padaria Pão Quente Ltda");
    assert_eq!(created["origin"], json!({"by": "request"}));
    assert_eq!(
        created["created_by"]["key_id"],
        "key_01jd0000000000000000000001"
    );
    let (status, again) = w.new_process(&client, "2026-11").await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(w.new_process(&client, "2026-12").await.0, 201);

    for (client_id, month, field) in [
        (client.as_str(), "2026-13", "month"),
        (client.as_str(), "11/2026", "month"),
        ("cli_01jdq5m3n4p5q6r7s8t9v0w1x2", "2026-11", "client_id"),
        ("padaria", "2026-11", "client_id"),
    ] {
        let (status, body) = w.new_process(client_id, month).await;
        assert_eq!(
            (status, body["errors"][0]["field"].as_str()),
            (422, Some(field))
        );
    }
    let params = [("id", client.as_str())];
    w.owner(
        "PATCH /v1/rpa/clients/{id}",
        Call {
            params: &params,
            json: Some(json!({"active": false})),
            ..Call::default()
        },
    )
    .await;
    let (status, body) = w.new_process(&client, "2027-01").await;
    assert_eq!(
        (status, body["errors"][0]["message"].as_str()),
        (422, Some("the client is inactive"))
    );
    // Another account cannot make one for this client, nor read it.
    let (status, _) = w
        .call_as(
            &w.other,
            "owner",
            "POST /v1/rpa/processes",
            Call {
                json: Some(json!({"client_id": client, "month": "2026-10"})),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 422);
    let id = id_of(&created);
    let params = [("id", id.as_str())];
    let (status, _) = w
        .call_as(
            &w.other,
            "owner",
            "GET /v1/rpa/processes/{id}",
            Call {
                params: &params,
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 404);
    let (status, read) = w
        .call_as(
            &w.account,
            "approver",
            "GET /v1/rpa/processes/{id}",
            Call {
                params: &params,
                ..Call::default()
            },
        )
        .await;
    assert_eq!((status, read), (200, created));
    let (status, _) = w
        .call_as(
            &w.account,
            "approver",
            "POST /v1/rpa/processes",
            Call {
                json: Some(json!({"client_id": client, "month": "2026-09"})),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 403, "approvers do not run the pipeline");
}

#[tokio::test]
async fn listings_filter_by_status_month_carrier_and_client() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    w.carrier(&w.account, "OI").await;
    let a = w.new_client("Matriz", "VIVO").await;
    let b = w.new_client("Matriz", "OI").await;
    let mut ids = Vec::new();
    for (client, month) in [
        (&a, "2026-10"),
        (&a, "2026-11"),
        (&b, "2026-11"),
        (&b, "2026-12"),
    ] {
        let (status, p) = w.new_process(client, month).await;
        assert_eq!(status, 201, "{p}");
        ids.push(id_of(&p));
    }
    w.receive_invoice(&ids[1], 100).await;
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let expect = |idx: &[usize]| sorted(idx.iter().map(|i| ids[*i].clone()).collect());
    assert_eq!(sorted(w.list(&[]).await), expect(&[0, 1, 2, 3]));
    assert_eq!(
        sorted(w.list(&[("month", "2026-11")]).await),
        expect(&[1, 2])
    );
    assert_eq!(
        sorted(
            w.list(&[("month", "2026-11"), ("status", "awaiting_approval")])
                .await
        ),
        expect(&[1])
    );
    assert_eq!(
        sorted(w.list(&[("status", "awaiting_download")]).await),
        expect(&[0, 2, 3])
    );
    assert_eq!(
        sorted(
            w.list(&[("status", "awaiting_download"), ("carrier", "oi")])
                .await
        ),
        expect(&[2, 3])
    );
    assert_eq!(sorted(w.list(&[("client_id", &a)]).await), expect(&[0, 1]));
    assert_eq!(
        sorted(w.list(&[("client_id", &a), ("month", "2026-11")]).await),
        expect(&[1])
    );
    assert_eq!(
        sorted(
            w.list(&[("client_id", &b), ("status", "awaiting_download")])
                .await
        ),
        expect(&[2, 3])
    );
    assert_eq!(
        sorted(w.list(&[("carrier", "VIVO")]).await),
        expect(&[0, 1])
    );
    for bad in [
        ("status", "pronto"),
        ("month", "2026-1"),
        ("carrier", "S A T"),
        ("client_id", "padaria"),
    ] {
        let q = [bad];
        let (status, body) = w
            .owner(
                "GET /v1/rpa/processes",
                Call {
                    query: &q,
                    ..Call::default()
                },
            )
            .await;
        assert_eq!(
            (status, body["errors"][0]["field"].as_str()),
            (422, Some(bad.0))
        );
    }
}

#[tokio::test]
async fn approval_moves_only_an_invoice_awaiting_it_once_with_its_event() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let client = w.new_client("Matriz", "VIVO").await;
    let (_, created) = w.new_process(&client, "2026-11").await;
    let id = id_of(&created);
    let (status, body) = w.approve_as("approver", &id).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["detail"],
        "the process is awaiting_download; it cannot be approved"
    );

    w.receive_invoice(&id, 18990).await;
    drain(&w.t.sqs, w.t.events_queue(), 100).await;
    assert_eq!(
        w.approve_as("operator", &id).await.0,
        403,
        "operators do not approve"
    );
    // Two approvers at once: one approves, the other is told it changed.
    let (first, second) = tokio::join!(w.approve_as("approver", &id), w.approve_as("owner", &id));
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} {}", first.1, second.1);
    let approved = if first.0 == 200 { first.1 } else { second.1 };
    assert_eq!(approved["status"], "awaiting_tax_filing");
    assert!(approved["approved_at"].is_string());
    assert!(approved["approved_by"]["key_name"].is_string());
    let (status, body) = w.approve_as("approver", &id).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (
            409,
            Some("the process is awaiting_tax_filing; it cannot be approved")
        )
    );

    let events: Vec<Value> = drain(&w.t.sqs, w.t.events_queue(), 100)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .filter(|e: &Value| e["type"] == "rpa.process.status_changed")
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let data = &events[0]["data"];
    assert_eq!(data["process_id"], id.as_str());
    assert_eq!(
        (data["from"].as_str(), data["to"].as_str()),
        (Some("awaiting_approval"), Some("awaiting_tax_filing"))
    );
    assert_eq!(data["by"], approved["approved_by"]);
    let audit = w
        .deps
        .core
        .store
        .list_audit(&w.account, 10, None)
        .await
        .unwrap();
    let approvals: Vec<_> = audit
        .items
        .iter()
        .filter(|a| a.action == "rpa.process.approve")
        .collect();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].before["status"], "awaiting_approval");
    assert_eq!(approvals[0].after["status"], "awaiting_tax_filing");
    assert_eq!(w.stored(&id).await.version, 3, "created, invoice, approval");
}

#[tokio::test]
async fn the_monthly_report_counts_per_status_and_carrier() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    w.carrier(&w.account, "OI").await;
    let a = w.new_client("Matriz", "VIVO").await;
    let b = w.new_client("Filial", "VIVO").await;
    let c = w.new_client("Matriz", "OI").await;
    let mut ids = Vec::new();
    for client in [&a, &b, &c] {
        ids.push(id_of(&w.new_process(client, "2026-11").await.1));
    }
    w.new_process(&a, "2026-10").await;
    w.receive_invoice(&ids[0], 18990).await;
    w.receive_invoice(&ids[2], 1005).await;
    let q = [("month", "2026-11")];
    let (status, report) = w
        .call_as(
            &w.account,
            "operator",
            "GET /v1/rpa/reports/monthly",
            Call {
                query: &q,
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["month"], "2026-11");
    assert_eq!(report["total"]["processes"], 3);
    assert_eq!(report["total"]["amount_cents"], 19995);
    assert_eq!(
        report["by_carrier"]["VIVO"]["by_status"]["awaiting_download"],
        1
    );
    assert_eq!(
        report["by_carrier"]["VIVO"]["by_status"]["awaiting_approval"],
        1
    );
    assert_eq!(report["by_carrier"]["OI"]["processes"], 1);
    let (status, csv) = w
        .call_as(
            &w.account,
            "approver",
            "GET /v1/rpa/reports/monthly",
            Call {
                query: &q,
                accept: Some("text/csv"),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        csv.as_str().unwrap(),
        "month,carrier,processes,awaiting_download,awaiting_approval,awaiting_tax_filing,filed,amount_brl\n\
         2026-11,OI,1,0,1,0,0,10.05\n\
         2026-11,VIVO,2,1,1,0,0,189.90\n\
         2026-11,TOTAL,3,1,2,0,0,199.95\n"
    );
    let (status, _) = w
        .owner("GET /v1/rpa/reports/monthly", Call::default())
        .await;
    assert_eq!(status, 422, "the month is required");
}
