//! DynamoDB and SQS requests per RPA process, from its creation to its
//! filing, against the emulator and the fake RPA API, counted by an SDK
//! interceptor. The fake's jobs complete at the third status read (queued,
//! running, completed), as `make dev`'s do; each step is what the function
//! that owns it does (the scheduler creates the process and begins its
//! download, the worker handles each job message, the API approves and
//! begins the filing).
//!
//! `cargo run -p rpa-worker --example rpa_requests` (run by `make measure`).

use chrono::Utc;
use nuvem_aws::Core;
use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::invoices::Invoices;
use nuvem_aws::queue::EventQueue;
use nuvem_aws::rpa_api::{RpaApiConfig, RpaClient};
use nuvem_aws::rpa_jobs::{self, Beginning, RpaJob, RpaJobQueue};
use nuvem_aws::secrets::SealContext;
use nuvem_aws::store::{ExecutionRecord, ProcessRecord, Store};
use nuvem_domain::rpa::client::new_client_id;
use nuvem_domain::rpa::events;
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::{Origin, ProcessStatus};
use nuvem_testkit::counting::RequestCounter;
use nuvem_testkit::fake_rpa::FakeRpa;
use nuvem_testkit::{TestStack, rpa_records, tenants};
use serde_json::json;

const TOKEN: &str = "bench-rpa-token";

struct Bench {
    deps: rpa_worker::Deps,
    plain: Store,
    db: RequestCounter,
    sqs: RequestCounter,
    totals: (u64, u64),
}

impl Bench {
    fn line(&mut self, what: &str) {
        let detail = |c: &RequestCounter| {
            c.counts()
                .iter()
                .map(|(op, n)| format!("{} {n}", op.rsplit('.').next().unwrap_or(op)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "| {what} | {} | {} | {} / {} |",
            self.db.total(),
            self.sqs.total(),
            detail(&self.db),
            detail(&self.sqs)
        );
        self.totals.0 += self.db.total();
        self.totals.1 += self.sqs.total();
        self.db.clear();
        self.sqs.clear();
    }

    /// Handles the execution's job messages, each when it is due, until it
    /// ends; how many there were.
    async fn run_to_end(&self, e: &ExecutionRecord) -> usize {
        let mut messages = 0;
        loop {
            let current = self
                .plain
                .get_execution(&e.account_id, &e.process_id, &e.id)
                .await
                .unwrap()
                .unwrap();
            if current.status.is_final() {
                return messages;
            }
            let at = current.watch_at.unwrap_or_else(Utc::now).max(Utc::now());
            rpa_worker::run(&self.deps, &RpaJob::of(&current), at)
                .await
                .unwrap();
            messages += 1;
        }
    }

    async fn process(&self, p: &ProcessRecord) -> ProcessRecord {
        self.plain
            .get_process(&p.account_id, &p.client_id, p.month)
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::main]
async fn main() {
    let t = TestStack::new("bench-rpa").await;
    let rpa = FakeRpa::start(TOKEN).await;
    let env = t.env("RpaWorker");
    aws_sdk_secretsmanager::Client::new(&t.sdk)
        .put_secret_value()
        .secret_id(env("RPA_SECRET_ARN").unwrap())
        .secret_string(json!({ "token": TOKEN }).to_string())
        .send()
        .await
        .unwrap();
    let db = RequestCounter::default();
    let sqs = RequestCounter::default();
    let core = Core {
        store: Store::from_client(db.dynamodb(&t.sdk), t.table()),
        events: EventQueue::from_client(sqs.sqs(&t.sdk), t.events_queue()),
    };
    let plain = Store::new(&t.sdk, t.table());
    let account = tenants::active_account(&plain, 1_000, 0).await.id;
    let deps = rpa_worker::Deps {
        core,
        sealer: t.sealer(),
        rpa: RpaClient::new(RpaApiConfig::new(&rpa.url()).unwrap()),
        secret: DeploymentSecret::from_lookup(&t.sdk, &env, "RPA_SECRET_ARN").unwrap(),
        queue: RpaJobQueue::from_client(sqs.sqs(&t.sdk), env("RPA_JOBS_QUEUE_URL").unwrap()),
        invoices: Invoices::from_lookup(&t.sdk, &env).unwrap(),
    };
    rpa_records::carrier(&plain, &account, "VIVO", json!({})).await;
    let id = new_client_id();
    let sealed = deps
        .sealer
        .seal("s3nha", &SealContext::rpa_portal_password(&account, &id))
        .await
        .unwrap();
    let body = json!({
        "legal_name": "Padaria Pão Quente Ltda", "cnpj": "11.222.333/0001-81",
        "carrier": "VIVO", "unit": "Matriz", "portal_login": "financeiro"
    });
    let client = rpa_records::client_with_id(&plain, &account, id, body, Some(sealed)).await;
    let mut b = Bench {
        deps,
        plain,
        db,
        sqs,
        totals: (0, 0),
    };
    let store = b.deps.core.store.clone();
    let queue = b.deps.queue.clone();

    println!("| step | DynamoDB | SQS | by operation (DynamoDB / SQS) |");
    println!("| --- | --- | --- | --- |");
    let month = Month::parse("2026-10").unwrap();
    let p = ProcessRecord::new_for(&client, month, Origin::Request, None, Utc::now()).unwrap();
    assert!(store.create_process(&p).await.unwrap());
    b.line("scheduler: create the process");

    let how = || Beginning {
        by: None,
        retry: false,
        audit: None,
    };
    let current = b.process(&p).await;
    b.db.clear();
    let download = rpa_jobs::begin_step(&store, &queue, &current, how(), Utc::now())
        .await
        .unwrap();
    b.line("scheduler: begin its download (carrier read per process; run_downloads reads them once per page of 100)");
    let n = b.run_to_end(&download).await;
    b.line(&format!("worker: download, {n} messages (start, 3 polls)"));
    assert_eq!(b.process(&p).await.status, ProcessStatus::AwaitingApproval);

    // The API's approval: read, one transaction with its event and audit
    // entry, the event sent and marked published.
    let current = b.process(&p).await;
    b.db.clear();
    let current = store
        .get_process(&current.account_id, &current.client_id, current.month)
        .await
        .unwrap()
        .unwrap();
    let now = Utc::now();
    let next = ProcessRecord {
        status: ProcessStatus::AwaitingTaxFiling,
        version: current.version + 1,
        ..current.clone()
    };
    let event = events::status_changed(
        &account,
        &next.event_ref(),
        current.status,
        next.status,
        None,
        now,
    );
    assert!(
        store
            .update_process(&current, &next, Some(&event), None)
            .await
            .unwrap()
    );
    b.deps.core.emit(&event, None).await;
    b.line("API: approve");

    let current = store
        .get_process(&next.account_id, &next.client_id, next.month)
        .await
        .unwrap()
        .unwrap();
    let filing = rpa_jobs::begin_step(&store, &queue, &current, how(), Utc::now())
        .await
        .unwrap();
    b.line("API: send to the tax system");
    let n = b.run_to_end(&filing).await;
    b.line(&format!("worker: filing, {n} messages (start, 3 polls)"));
    assert_eq!(b.process(&p).await.status, ProcessStatus::Filed);
    println!(
        "| **per process, creation to filing** | **{}** | **{}** | |",
        b.totals.0, b.totals.1
    );
}
