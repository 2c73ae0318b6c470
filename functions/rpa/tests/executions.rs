//! The `rpa` routes of a process's steps against the emulator: a download
//! or a filing begins once, from the status that waits for it and by the
//! roles that run steps, queues its job for `rpa-worker`, and can be
//! cancelled (a filing the tax system may have, never); executions, their
//! logs (read on from a cursor) and the invoice link are read by the team,
//! and never across accounts.

mod common;

use chrono::Utc;
use common::{Call, World, world};
use nuvem_aws::rpa_jobs::RpaJob;
use nuvem_aws::store::{ExecutionRecord, StoredLogLine};
use nuvem_domain::rpa::execution::Phase;
use nuvem_testkit::inspect::{drain, scan_all};
use serde_json::{Value, json};

impl World {
    async fn step(&self, role: &str, id: &str, action: &str) -> (u16, Value) {
        let params = [("id", id)];
        let route = format!("POST /v1/rpa/processes/{{id}}/{action}");
        self.call_as(
            &self.account,
            role,
            &route,
            Call {
                params: &params,
                ..Call::default()
            },
        )
        .await
    }

    async fn get(
        &self,
        account: &str,
        route: &str,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
    ) -> (u16, Value) {
        self.call_as(
            account,
            "approver",
            route,
            Call {
                params,
                query,
                ..Call::default()
            },
        )
        .await
    }

    async fn process_json(&self, id: &str) -> Value {
        let route = "GET /v1/rpa/processes/{id}";
        let (status, process) = self.get(&self.account, route, &[("id", id)], &[]).await;
        assert_eq!(status, 200, "{process}");
        process
    }

    async fn execution(&self, process_id: &str, id: &str) -> ExecutionRecord {
        self.deps
            .core
            .store
            .get_execution(&self.account, process_id, id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn jobs_sent(&self) -> Vec<RpaJob> {
        let url = (self.t.env("Rpa"))("RPA_JOBS_QUEUE_URL").unwrap();
        drain(&self.t.sqs, &url, 100)
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }

    async fn audit_actions(&self) -> Vec<String> {
        scan_all(&self.t.db, self.t.table())
            .await
            .into_iter()
            .filter_map(|i| i.get("action").and_then(|a| a.as_s().ok()).cloned())
            .filter(|a| a.starts_with("rpa.process."))
            .collect()
    }

    /// A process of a VIVO client, awaiting its download.
    async fn waiting_process(&self, unit: &str) -> String {
        let client = self.new_client(unit, "VIVO").await;
        let (status, p) = self.new_process(&client, "2026-10").await;
        assert_eq!(status, 201, "{p}");
        p["id"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn a_download_begins_once_and_can_be_cancelled() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let id = w.waiting_process("Matriz").await;

    assert_eq!(w.step("approver", &id, "download").await.0, 403);
    let (status, filing) = w.step("operator", &id, "tax-filing").await;
    assert_eq!(status, 409, "{filing}");
    assert!(
        filing["detail"]
            .as_str()
            .unwrap()
            .contains("awaiting_download")
    );

    let (status, begun) = w.step("operator", &id, "download").await;
    assert_eq!(status, 202, "{begun}");
    assert_eq!(begun["step"], "download_invoice");
    assert_eq!(begun["status"], "running");
    assert_eq!(begun["attempt"], 1);
    assert_eq!(begun["max_attempts"], 3);
    assert_eq!(
        begun["started_by"]["key_id"],
        "key_01jd0000000000000000000001"
    );
    let exe = begun["id"].as_str().unwrap().to_owned();
    // Its job is queued for the worker, naming the version that waits.
    let stored = w.execution(&id, &exe).await;
    assert_eq!(w.jobs_sent().await, vec![RpaJob::of(&stored)]);

    // One at a time.
    let (status, busy) = w.step("owner", &id, "download").await;
    assert_eq!(status, 409, "{busy}");
    assert!(busy["detail"].as_str().unwrap().contains(&exe));
    assert_eq!(w.step("operator", &id, "retry").await.0, 409);

    assert_eq!(w.process_json(&id).await["active_execution"], json!(exe));

    let (status, cancelled) = w.step("operator", &id, "cancel").await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(
        cancelled["cancelled_by"]["key_id"],
        "key_01jd0000000000000000000001"
    );
    assert!(cancelled["ended_at"].is_string());
    assert_eq!(w.step("operator", &id, "cancel").await.0, 409);
    let process = w.process_json(&id).await;
    assert_eq!(process["active_execution"], Value::Null);
    assert_eq!(process["status"], "awaiting_download");

    // A retry begins the download again; both are listed, newest first.
    let (status, again) = w.step("operator", &id, "retry").await;
    assert_eq!(status, 202, "{again}");
    let (status, page) = w
        .get(
            &w.account,
            "GET /v1/rpa/processes/{id}/executions",
            &[("id", &id)],
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![again["id"].as_str().unwrap(), exe.as_str()]);

    let mut actions = w.audit_actions().await;
    actions.sort();
    assert_eq!(
        actions,
        vec![
            "rpa.process.cancel",
            "rpa.process.download_invoice",
            "rpa.process.retry"
        ]
    );
}

#[tokio::test]
async fn logs_are_read_on_from_a_cursor_and_nothing_crosses_accounts() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let id = w.waiting_process("Logs").await;
    let (_, begun) = w.step("owner", &id, "download").await;
    let exe = begun["id"].as_str().unwrap().to_owned();
    let lines: Vec<StoredLogLine> = (1..=5)
        .map(|seq| StoredLogLine {
            seq,
            at: Utc::now(),
            level: "info".into(),
            message: format!("passo {seq}"),
        })
        .collect();
    w.deps
        .core
        .store
        .append_logs(&w.account, &exe, &lines)
        .await
        .unwrap();
    let current = w.execution(&id, &exe).await;
    let mut next = current.next(Utc::now());
    next.log_lines = 5;
    assert!(
        w.deps
            .core
            .store
            .update_execution(&current, &next)
            .await
            .unwrap()
    );

    let route = "GET /v1/rpa/processes/{id}/executions/{execution_id}/logs";
    let params = [("id", id.as_str()), ("execution_id", exe.as_str())];
    let mut read = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let (status, page) = w
            .get(
                &w.account,
                route,
                &params,
                &[("after", &after), ("limit", "2")],
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let got = page["lines"].as_array().unwrap();
        if got.is_empty() {
            assert_eq!(page["done"], false, "the job is still running");
            break;
        }
        read.extend(
            got.iter()
                .map(|l| l["message"].as_str().unwrap().to_owned()),
        );
        after = page["next"].to_string();
    }
    assert_eq!(
        read,
        (1..=5).map(|i| format!("passo {i}")).collect::<Vec<_>>()
    );
    for bad in [
        ("after", "-1"),
        ("after", "x"),
        ("limit", "0"),
        ("limit", "201"),
    ] {
        assert_eq!(
            w.get(&w.account, route, &params, &[bad]).await.0,
            422,
            "{bad:?}"
        );
    }

    // Another account sees none of it.
    for (route, params) in [
        ("GET /v1/rpa/processes/{id}/executions", &params[..1]),
        (
            "GET /v1/rpa/processes/{id}/executions/{execution_id}",
            &params[..],
        ),
        (route, &params[..]),
        ("GET /v1/rpa/processes/{id}/invoice", &params[..1]),
    ] {
        assert_eq!(w.get(&w.other, route, params, &[]).await.0, 404, "{route}");
    }
    let params = [("id", id.as_str())];
    let (status, _) = w
        .call_as(
            &w.other,
            "owner",
            "POST /v1/rpa/processes/{id}/cancel",
            Call {
                params: &params,
                ..Call::default()
            },
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(w.execution(&id, &exe).await.status.as_str(), "running");
    // An id that is not an execution's is not found either.
    let (status, _) = w
        .get(
            &w.account,
            "GET /v1/rpa/processes/{id}/executions/{execution_id}",
            &[("id", &id), ("execution_id", "../x")],
            &[],
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_filing_under_way_cannot_be_cancelled_and_an_unresolved_one_needs_a_deliberate_retry() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let id = w.waiting_process("Sat").await;
    w.receive_invoice(&id, 10_000).await;
    assert_eq!(w.approve_as("approver", &id).await.0, 200);
    let (status, begun) = w.step("operator", &id, "tax-filing").await;
    assert_eq!(status, 202, "{begun}");
    let exe = begun["id"].as_str().unwrap().to_owned();
    // The worker sent it to the RPA.
    let current = w.execution(&id, &exe).await;
    let mut sent = current.next(Utc::now());
    sent.phase = Phase::Polling;
    sent.job_id = Some("job-1".into());
    assert!(
        w.deps
            .core
            .store
            .update_execution(&current, &sent)
            .await
            .unwrap()
    );
    let (status, refused) = w.step("owner", &id, "cancel").await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(w.execution(&id, &exe).await, sent);

    // It ended without a known outcome: a new filing needs a retry.
    let closing = nuvem_aws::rpa_jobs::Closing {
        status: nuvem_domain::rpa::execution::ExecutionStatus::NeedsReview,
        error: None,
        output: None,
        success: None,
        by: None,
        audit: None,
    };
    nuvem_aws::rpa_jobs::close(&w.deps.core, &sent, closing, Utc::now())
        .await
        .unwrap();
    let (status, refused) = w.step("operator", &id, "tax-filing").await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains(&exe));
    let (status, again) = w.step("operator", &id, "retry").await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["step"], "tax_filing");
}

#[tokio::test]
async fn the_invoice_is_read_through_a_link_that_expires() {
    let w = world().await;
    w.carrier(&w.account, "VIVO").await;
    let id = w.waiting_process("Pdf").await;
    let route = "GET /v1/rpa/processes/{id}/invoice";
    assert_eq!(w.get(&w.account, route, &[("id", &id)], &[]).await.0, 404);
    w.receive_invoice(&id, 10_000).await;
    let stored = w.stored(&id).await.invoice.unwrap();
    let pdf = b"%PDF-1.7\nfatura de teste\n%%EOF".to_vec();
    // Written as rpa-worker writes it, through the S3 client.
    let bucket = w.deps.invoices.bucket().to_owned();
    nuvem_aws::invoices::Invoices::new(&w.t.sdk, bucket)
        .put_pdf(&stored.s3_key, pdf.clone())
        .await
        .unwrap();
    let (status, link) = w.get(&w.account, route, &[("id", &id)], &[]).await;
    assert_eq!(status, 200, "{link}");
    assert_eq!(link["file_name"], "fatura.pdf");
    let url = link["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Expires=900"), "{url}");
    let answer = reqwest::get(url).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.bytes().await.unwrap().to_vec(), pdf);
}
