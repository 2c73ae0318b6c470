//! Scheduler time for 10,000 due processes, against the emulator: one
//! `create_monthly_processes` run over 10,000 active clients, then one
//! `run_downloads` run that begins their 10,000 downloads, each over as
//! many ticks of the function's timeout as it needs, timed and its
//! requests counted by an SDK interceptor.
//!
//! `cargo run --release -p rpa-scheduler --example scheduler_10k`
//! (`N=1000` for fewer; run by `make measure`).

use std::time::Instant;

use chrono::{Duration, Utc};
use futures::StreamExt;
use nuvem_aws::Core;
use nuvem_aws::queue::EventQueue;
use nuvem_aws::rpa_jobs::RpaJobQueue;
use nuvem_aws::store::Store;
use nuvem_domain::rpa::process::ProcessStatus;
use nuvem_testkit::counting::RequestCounter;
use nuvem_testkit::{TestStack, rpa_records, tenants};
use serde_json::json;

fn requests(c: &RequestCounter) -> String {
    let detail: Vec<String> = c
        .counts()
        .iter()
        .map(|(op, n)| format!("{} {n}", op.rsplit('.').next().unwrap_or(op)))
        .collect();
    format!("{} ({})", c.total(), detail.join(", "))
}

/// The scheduler's timeout in the template.
const TIMEOUT_SECS: i64 = 120;

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let t = TestStack::new("bench-scheduler").await;
    let plain = Store::new(&t.sdk, t.table());
    let account = tenants::active_account(&plain, 1_000, 0).await.id;
    rpa_records::carrier(&plain, &account, "VIVO", json!({})).await;
    let setup = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (plain, account) = (&plain, &account);
            async move {
                let body = json!({
                    "legal_name": format!("Cliente {i}"), "cnpj": "11.222.333/0001-81",
                    "carrier": "VIVO", "unit": format!("Unidade {i}")
                });
                rpa_records::client(plain, account, body, None).await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    eprintln!(
        "{n} clients written in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let db = RequestCounter::default();
    let sqs = RequestCounter::default();
    let env = t.env("RpaScheduler");
    let deps = rpa_scheduler::Deps {
        core: Core {
            store: Store::from_client(db.dynamodb(&t.sdk), t.table()),
            events: EventQueue::from_client(sqs.sqs(&t.sdk), t.events_queue()),
        },
        queue: RpaJobQueue::from_client(sqs.sqs(&t.sdk), env("RPA_JOBS_QUEUE_URL").unwrap()),
        invoices: nuvem_aws::invoices::Invoices::from_lookup(&t.sdk, &env).unwrap(),
    };
    println!("## rpa-scheduler, {n} due processes, against the emulator");
    println!("| run | ticks | time | DynamoDB requests | SQS requests |");
    println!("| --- | --- | --- | --- | --- |");
    for kind in ["create_monthly_processes", "run_downloads"] {
        let due = Utc::now() - Duration::seconds(1);
        rpa_records::schedule(&plain, &account, "0 6 1 * *", kind, json!({}), due).await;
        db.clear();
        sqs.clear();
        let started = Instant::now();
        // Ticks as Lambda would give them (the function's 120 s timeout),
        // back to back instead of a minute apart, until the run ends.
        let mut ticks = 0;
        loop {
            let now = Utc::now();
            let deadline = now + Duration::seconds(TIMEOUT_SECS) - rpa_scheduler::SAFETY_MARGIN;
            let report = rpa_scheduler::handle(&deps, now, deadline).await;
            ticks += 1;
            eprintln!(
                "{kind}: tick {ticks} ended at {:.1} s, {} DynamoDB requests so far",
                started.elapsed().as_secs_f64(),
                db.total()
            );
            assert_eq!(report.failed, 0, "{report:?}");
            if report.succeeded == 1 {
                break;
            }
            assert_eq!(report.unfinished, 1, "{report:?}");
        }
        let took = started.elapsed();
        println!(
            "| {kind} | {ticks} | {:.1} s | {} | {} |",
            took.as_secs_f64(),
            requests(&db),
            requests(&sqs)
        );
    }
    let month = nuvem_domain::rpa::month::Month::of((Utc::now() - Duration::hours(3)).date_naive());
    let waiting = plain
        .processes_of_month(
            &account,
            month,
            Some(ProcessStatus::AwaitingDownload),
            n + 1,
        )
        .await
        .unwrap();
    assert_eq!(waiting.len(), n);
    assert!(waiting.iter().all(|p| p.active_execution.is_some()));
}
