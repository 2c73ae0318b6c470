//! `rpa-worker` against the emulator and the fake RPA API: each job
//! message is handled as SQS would deliver it when it is due (the test
//! stands in for the queue's delay by handing the worker the message with
//! the time it would arrive), so every path runs in milliseconds and the
//! same way on any machine.

use chrono::{DateTime, Duration, Utc};
use nuvem_aws::Core;
use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::invoices::Invoices;
use nuvem_aws::rpa_api::{RpaApiConfig, RpaClient};
use nuvem_aws::rpa_jobs::{self, BeginError, Beginning, RpaJob, RpaJobQueue};
use nuvem_aws::secrets::SealContext;
use nuvem_aws::store::{ErrorKind, ExecutionRecord, ProcessRecord, Store};
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::client::new_client_id;
use nuvem_domain::rpa::execution::{ExecutionStatus, Phase, Step};
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::ProcessStatus;
use nuvem_testkit::fake_rpa::{Behaviour, FakeRpa, Match};
use nuvem_testkit::inspect::scan_all;
use nuvem_testkit::{TestStack, rpa_records, tenants};
use serde_json::{Value, json};

const TOKEN: &str = "rpa-token-for-tests";
const PASSWORD: &str = "s3nh@-do-portal";
const CNPJ: &str = "11222333000181";

struct World {
    t: TestStack,
    deps: rpa_worker::Deps,
    rpa: FakeRpa,
    account: String,
}

async fn world() -> World {
    let t = TestStack::new("rpa-worker").await;
    let rpa = FakeRpa::start(TOKEN).await;
    let env = t.env("RpaWorker");
    let secret_arn = env("RPA_SECRET_ARN").unwrap();
    aws_sdk_secretsmanager::Client::new(&t.sdk)
        .put_secret_value()
        .secret_id(&secret_arn)
        .secret_string(json!({ "token": TOKEN }).to_string())
        .send()
        .await
        .unwrap();
    let mut config = RpaApiConfig::new(&rpa.url()).unwrap();
    // Only the fake's SlowStart ever waits this long: it never answers.
    config.timeout = std::time::Duration::from_millis(800);
    let core = Core::from_lookup(&t.sdk, &env).unwrap();
    let account = tenants::active_account(&core.store, 1_000, 0).await.id;
    let deps = rpa_worker::Deps {
        core,
        sealer: t.sealer(),
        rpa: RpaClient::new(config),
        secret: DeploymentSecret::from_lookup(&t.sdk, &env, "RPA_SECRET_ARN").unwrap(),
        queue: RpaJobQueue::new(&t.sdk, env("RPA_JOBS_QUEUE_URL").unwrap()),
        invoices: Invoices::from_lookup(&t.sdk, &env).unwrap(),
    };
    World {
        t,
        deps,
        rpa,
        account,
    }
}

fn actor() -> Actor {
    Actor {
        key_id: "key_01jd0000000000000000000001".into(),
        key_name: "tests".into(),
    }
}

fn month() -> Month {
    Month::parse("2026-10").unwrap()
}

impl World {
    fn store(&self) -> &Store {
        &self.deps.core.store
    }

    /// A carrier, a client of it with a portal password, and the client's
    /// process of [`month`].
    async fn process(&self, carrier: &str, unit: &str) -> ProcessRecord {
        let store = self.store();
        let settings = json!({"rpa_settings": {"tentativas_login": 2}});
        rpa_records::carrier(store, &self.account, carrier, settings).await;
        let id = new_client_id();
        let sealed = self
            .deps
            .sealer
            .seal(
                PASSWORD,
                &SealContext::rpa_portal_password(&self.account, &id),
            )
            .await
            .unwrap();
        let body = json!({
            "legal_name": format!("Cliente {unit} Ltda"), "cnpj": CNPJ, "carrier": carrier,
            "unit": unit, "filter": format!("filtro {unit}"), "portal_login": "login",
            "sat_data": "dados sat", "service": "voz"
        });
        let client =
            rpa_records::client_with_id(store, &self.account, id, body, Some(sealed)).await;
        rpa_records::process(store, &client, month()).await
    }

    async fn stored_process(&self, p: &ProcessRecord) -> ProcessRecord {
        self.store()
            .get_process(&self.account, &p.client_id, p.month)
            .await
            .unwrap()
            .unwrap()
    }

    async fn execution(&self, e: &ExecutionRecord) -> ExecutionRecord {
        self.store()
            .get_execution(&self.account, &e.process_id, &e.id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn begin(&self, p: &ProcessRecord, retry: bool) -> Result<ExecutionRecord, BeginError> {
        let current = self.stored_process(p).await;
        let how = Beginning {
            by: Some(&actor()),
            retry,
            audit: None,
        };
        rpa_jobs::begin_step(self.store(), &self.deps.queue, &current, how, Utc::now()).await
    }

    /// Delivers the message the execution waits for, when it is due.
    async fn deliver(&self, e: &ExecutionRecord) -> ExecutionRecord {
        let current = self.execution(e).await;
        let at = due(&current);
        rpa_worker::run(&self.deps, &RpaJob::of(&current), at)
            .await
            .unwrap();
        self.execution(e).await
    }

    /// Delivers messages until the execution is final (at most `max`).
    async fn run_to_end(&self, e: &ExecutionRecord, max: usize) -> ExecutionRecord {
        let mut current = self.execution(e).await;
        for _ in 0..max {
            if current.status.is_final() {
                return current;
            }
            current = self.deliver(&current).await;
        }
        panic!("not final after {max} messages: {current:?}");
    }

    fn starts(&self, step: Step) -> usize {
        self.rpa
            .starts()
            .iter()
            .filter(|r| match step {
                Step::TaxFiling => r.is_filing_start(),
                _ => r.is_download_start(),
            })
            .count()
    }

    async fn status_events(&self) -> Vec<Value> {
        scan_all(&self.t.db, self.t.table())
            .await
            .into_iter()
            .filter(|i| {
                i.get("type")
                    .and_then(|t| t.as_s().ok())
                    .map(String::as_str)
                    == Some("rpa.process.status_changed")
            })
            .map(|i| {
                let mut event = serde_dynamo::from_item::<_, Value>(i).unwrap();
                // The table keeps an event's `data` as JSON text.
                if let Some(text) = event["data"].as_str() {
                    event["data"] = serde_json::from_str(text).unwrap();
                }
                event
            })
            .collect()
    }

    async fn invoice_bytes(&self, key: &str) -> Option<Vec<u8>> {
        let s3 = nuvem_aws::blobs::Blobs::new(&self.t.sdk);
        let out = s3
            .client()
            .get_object()
            .bucket(self.deps.invoices.bucket())
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.unwrap().into_bytes().to_vec())
    }
}

/// When the execution's next message arrives (never before now).
fn due(e: &ExecutionRecord) -> DateTime<Utc> {
    e.watch_at.unwrap_or_else(Utc::now).max(Utc::now())
}

#[tokio::test]
async fn a_download_stores_the_invoice_and_moves_the_process_to_approval_once() {
    let w = world().await;
    let p = w.process("VIVO", "matriz").await;
    let e = w.begin(&p, false).await.unwrap();
    assert_eq!(e.step, Step::DownloadInvoice);
    assert_eq!(
        w.stored_process(&p).await.active_execution.as_deref(),
        Some(e.id.as_str())
    );
    let done = w.run_to_end(&e, 10).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    assert_eq!(done.phase, Phase::Done);
    assert_eq!(done.attempt, 1);
    assert!(done.watch_at.is_none());

    // One start, with the client's data, the opened password and the token.
    let starts = w.rpa.starts();
    assert_eq!(starts.len(), 1);
    let start = &starts[0];
    assert!(start.path.ends_with("/executar/VIVO"), "{}", start.path);
    assert_eq!(
        start.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(start.body["senha_portal"], PASSWORD);
    assert_eq!(start.body["cnpj"], CNPJ);
    assert_eq!(start.body["mes_ano"], "10/2026");
    assert_eq!(start.body["configuracao"], json!({"tentativas_login": 2}));

    let process = w.stored_process(&p).await;
    assert_eq!(process.status, ProcessStatus::AwaitingApproval);
    assert_eq!(process.active_execution, None);
    assert_eq!(process.download_attempts, 1);
    let invoice = process.invoice.unwrap();
    assert_eq!(
        invoice.s3_key,
        format!("{}/{}/2026-10.pdf", w.account, p.client_id)
    );
    assert_eq!(invoice.amount_cents, Some(123_456));
    assert_eq!(invoice.due_date.unwrap().to_string(), "2026-11-10");
    let key = invoice
        .access_key
        .expect("the fake's key has a valid check digit");
    assert_eq!(key.len(), 44);
    let stored = w.invoice_bytes(&invoice.s3_key).await.unwrap();
    assert!(stored.starts_with(b"%PDF-"));

    // Its log lines, in order, from every poll.
    let logs = w
        .store()
        .execution_logs(&w.account, &e.id, 0, 100)
        .await
        .unwrap();
    assert!(logs.len() >= 2, "{logs:?}");
    let seqs: Vec<u64> = logs.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (1..=logs.len() as u64).collect::<Vec<_>>());
    let after_first = w
        .store()
        .execution_logs(&w.account, &e.id, 1, 100)
        .await
        .unwrap();
    assert_eq!(after_first.len(), logs.len() - 1);

    let events = w.status_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["from"], "awaiting_download");
    assert_eq!(events[0]["data"]["to"], "awaiting_approval");
    assert_eq!(events[0]["data"]["by"], Value::Null);

    // A second download cannot begin: the process awaits approval.
    assert!(matches!(
        w.begin(&p, false).await,
        Err(BeginError::NotWaiting(ProcessStatus::AwaitingApproval))
    ));
}

#[tokio::test]
async fn duplicate_and_stale_messages_start_no_second_job() {
    let w = world().await;
    let p = w.process("VIVO", "filial").await;
    let e = w.begin(&p, false).await.unwrap();
    let mut seen: Vec<RpaJob> = Vec::new();
    let mut current = w.execution(&e).await;
    while !current.status.is_final() {
        let job = RpaJob::of(&current);
        let at = due(&current);
        // The message twice at once, then every earlier one again.
        let (a, b) = tokio::join!(
            rpa_worker::run(&w.deps, &job, at),
            rpa_worker::run(&w.deps, &job, at)
        );
        // A lost race ends the message, or leaves it for redelivery.
        assert!(a.is_ok() || b.is_ok());
        // Earlier messages delivered again do nothing at all: no call to
        // the RPA, no change.
        let calls = w.rpa.requests().len();
        let before = w.execution(&e).await;
        // (late enough that the execution's own next message is due)
        let late = at + Duration::minutes(30);
        for old in &seen {
            rpa_worker::run(&w.deps, old, late).await.unwrap();
        }
        assert_eq!(w.rpa.requests().len(), calls);
        assert_eq!(w.execution(&e).await, before);
        seen.push(job);
        current = w.execution(&e).await;
        assert!(seen.len() < 20, "{current:?}");
    }
    assert_eq!(current.status, ExecutionStatus::Succeeded);
    assert_eq!(w.starts(Step::DownloadInvoice), 1);
    assert_eq!(w.status_events().await.len(), 1);
}

#[tokio::test]
async fn a_business_failure_is_not_retried_and_a_technical_one_is() {
    let w = world().await;
    let refused = w.process("VIVO", "senha").await;
    w.rpa.script_once(
        Match::Download {
            carrier: None,
            cnpj: None,
        },
        Behaviour::FailBusiness {
            polls: 1,
            message: "senha incorreta no portal".into(),
        },
    );
    let e = w.begin(&refused, false).await.unwrap();
    let failed = w.run_to_end(&e, 10).await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert_eq!(failed.attempt, 1);
    let error = failed.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Business);
    assert_eq!(error.message, "senha incorreta no portal");
    let process = w.stored_process(&refused).await;
    assert_eq!(process.status, ProcessStatus::AwaitingDownload);
    assert_eq!(process.active_execution, None);
    assert_eq!(w.starts(Step::DownloadInvoice), 1);

    // A technical failure: the next attempt a minute later, then success.
    let flaky = w.process("VIVO", "instavel").await;
    w.rpa.script_once(
        Match::Any,
        Behaviour::FailTechnical {
            polls: 0,
            message: "o portal não respondeu".into(),
        },
    );
    let e = w.begin(&flaky, false).await.unwrap();
    let mut current = w.deliver(&e).await; // started
    current = w.deliver(&current).await; // failed: retrying
    assert_eq!(current.status, ExecutionStatus::Retrying);
    assert_eq!(current.attempt, 2);
    assert_eq!(current.error.as_ref().unwrap().kind, ErrorKind::Technical);
    let wait = current.watch_at.unwrap() - current.updated_at;
    assert_eq!(wait, Duration::minutes(1));
    let done = w.run_to_end(&current, 10).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.attempt, 2);
    assert_eq!(w.starts(Step::DownloadInvoice), 3);
    assert_eq!(w.stored_process(&flaky).await.download_attempts, 2);
}

#[tokio::test]
async fn technical_failures_stop_after_the_carrier_s_attempts() {
    let w = world().await;
    let p = w.process("VIVO", "sempre").await;
    w.rpa.set_default(Behaviour::FailTechnical {
        polls: 0,
        message: "robô fora do ar".into(),
    });
    let e = w.begin(&p, false).await.unwrap();
    let done = w.run_to_end(&e, 20).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(done.attempt, 3);
    assert_eq!(w.starts(Step::DownloadInvoice), 3);
}

/// A process approved with the fake's invoice, ready to be filed.
async fn approved(w: &World, unit: &str) -> ProcessRecord {
    let p = w.process("VIVO", unit).await;
    let e = w.begin(&p, false).await.unwrap();
    assert_eq!(
        w.run_to_end(&e, 10).await.status,
        ExecutionStatus::Succeeded
    );
    let current = w.stored_process(&p).await;
    let next = ProcessRecord {
        status: ProcessStatus::AwaitingTaxFiling,
        version: current.version + 1,
        ..current.clone()
    };
    assert!(
        w.store()
            .update_process(&current, &next, None, None)
            .await
            .unwrap()
    );
    next
}

#[tokio::test]
async fn a_filing_records_the_protocol_and_sends_a_working_invoice_link() {
    let w = world().await;
    let p = approved(&w, "sat").await;
    let e = w.begin(&p, false).await.unwrap();
    assert_eq!(e.step, Step::TaxFiling);
    let done = w.run_to_end(&e, 10).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let process = w.stored_process(&p).await;
    assert_eq!(process.status, ProcessStatus::Filed);
    assert!(process.filing_protocol.is_some());
    assert!(process.filed_at.is_some());
    assert_eq!(
        done.output.unwrap()["protocol"],
        json!(process.filing_protocol)
    );

    let filing = w
        .rpa
        .starts()
        .into_iter()
        .find(|r| r.is_filing_start())
        .unwrap();
    assert_eq!(filing.body["data_vencimento"], "2026-11-10");
    // The link the tax system gets reads the stored invoice.
    let url = filing.body["url_fatura"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let pdf = reqwest_get(url).await;
    assert!(pdf.starts_with(b"%PDF-"));
}

async fn reqwest_get(url: &str) -> Vec<u8> {
    let answer = reqwest::get(url).await.unwrap();
    assert_eq!(answer.status(), 200);
    answer.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn a_filing_whose_start_is_uncertain_goes_to_a_person_and_is_never_resent() {
    let w = world().await;
    let p = approved(&w, "incerto").await;
    w.rpa
        .script_once(Match::Filing { cnpj: None }, Behaviour::DropStart);
    let e = w.begin(&p, false).await.unwrap();
    let done = w.run_to_end(&e, 10).await;
    assert_eq!(done.status, ExecutionStatus::NeedsReview);
    assert_eq!(done.error.unwrap().kind, ErrorKind::Uncertain);
    assert_eq!(w.starts(Step::TaxFiling), 1);
    let process = w.stored_process(&p).await;
    assert_eq!(process.status, ProcessStatus::AwaitingTaxFiling);
    assert_eq!(process.unresolved_filing.as_deref(), Some(e.id.as_str()));
    // Another filing is refused until a person retries on purpose.
    assert!(matches!(
        w.begin(&p, false).await,
        Err(BeginError::UnresolvedFiling(id)) if id == e.id
    ));
    let again = w.begin(&p, true).await.unwrap();
    assert_eq!(
        w.run_to_end(&again, 10).await.status,
        ExecutionStatus::Succeeded
    );
    assert_eq!(w.starts(Step::TaxFiling), 2);
    let process = w.stored_process(&p).await;
    assert_eq!(process.status, ProcessStatus::Filed);
    assert_eq!(process.unresolved_filing, None);
}

#[tokio::test]
async fn an_uncertain_download_is_started_again() {
    let w = world().await;
    let p = w.process("VIVO", "lento").await;
    w.rpa.script_once(Match::Any, Behaviour::SlowStart);
    let e = w.begin(&p, false).await.unwrap();
    let retrying = w.deliver(&e).await;
    assert_eq!(retrying.status, ExecutionStatus::Retrying);
    assert_eq!(retrying.error.as_ref().unwrap().kind, ErrorKind::Uncertain);
    let done = w.run_to_end(&retrying, 10).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(w.starts(Step::DownloadInvoice), 2);
}

/// The execution as a worker leaves it when it dies after claiming the
/// start, before the RPA answered.
async fn claimed_and_abandoned(w: &World, e: &ExecutionRecord) -> ExecutionRecord {
    let current = w.execution(e).await;
    let mut claimed = current.next(current.updated_at);
    claimed.phase = Phase::Starting;
    claimed.claimed_at = Some(current.updated_at);
    claimed.watch_at = Some(current.updated_at + Duration::minutes(5));
    assert!(
        w.store()
            .update_execution(&current, &claimed)
            .await
            .unwrap()
    );
    claimed
}

#[tokio::test]
async fn a_start_abandoned_mid_call_is_retried_for_a_download_and_reviewed_for_a_filing() {
    let w = world().await;
    let p = w.process("VIVO", "queda").await;
    let e = w.begin(&p, false).await.unwrap();
    let claimed = claimed_and_abandoned(&w, &e).await;
    // While the claim may still be held, a message changes nothing.
    let early = claimed.claimed_at.unwrap() + Duration::minutes(1);
    rpa_worker::run(&w.deps, &RpaJob::of(&claimed), early)
        .await
        .unwrap();
    assert_eq!(w.execution(&e).await, claimed);
    // After it expired (the sweep's message), the download is tried again.
    let late = claimed.watch_at.unwrap() + Duration::seconds(1);
    rpa_worker::run(&w.deps, &RpaJob::of(&claimed), late)
        .await
        .unwrap();
    let retrying = w.execution(&e).await;
    assert_eq!(retrying.status, ExecutionStatus::Retrying);
    assert_eq!(retrying.attempt, 2);
    assert_eq!(w.starts(Step::DownloadInvoice), 0);

    let f = approved(&w, "queda-sat").await;
    let e = w.begin(&f, false).await.unwrap();
    let claimed = claimed_and_abandoned(&w, &e).await;
    let late = claimed.watch_at.unwrap() + Duration::seconds(1);
    rpa_worker::run(&w.deps, &RpaJob::of(&claimed), late)
        .await
        .unwrap();
    let reviewed = w.execution(&e).await;
    assert_eq!(reviewed.status, ExecutionStatus::NeedsReview);
    assert_eq!(w.starts(Step::TaxFiling), 0);
}

#[tokio::test]
async fn a_job_that_hangs_times_out_at_its_deadline() {
    let w = world().await;
    let p = w.process("VIVO", "trava").await;
    w.rpa.script_once(Match::Any, Behaviour::Hang);
    let e = w.begin(&p, false).await.unwrap();
    let polling = w.deliver(&e).await;
    assert_eq!(polling.phase, Phase::Polling);
    let deadline = polling.deadline.unwrap();
    assert_eq!(deadline - polling.started_at.unwrap(), Duration::hours(2));
    let still = w.deliver(&polling).await;
    assert_eq!(still.status, ExecutionStatus::Running);
    assert!(still.watch_at.unwrap() <= deadline);
    rpa_worker::run(&w.deps, &RpaJob::of(&still), deadline)
        .await
        .unwrap();
    let done = w.execution(&e).await;
    assert_eq!(done.status, ExecutionStatus::TimedOut);
    let process = w.stored_process(&p).await;
    assert_eq!(process.active_execution, None);
    assert_eq!(process.status, ProcessStatus::AwaitingDownload);
}

#[tokio::test]
async fn an_invoice_that_is_not_a_pdf_is_refused_and_a_bad_access_key_is_dropped() {
    let w = world().await;
    let p = w.process("VIVO", "html").await;
    let e = w.begin(&p, false).await.unwrap();
    let polling = w.deliver(&e).await;
    let job = polling.job_id.clone().unwrap();
    assert!(w.rpa.put_invoice(&job, b"<html>login</html>".to_vec()));
    let retrying = w.run_to_end_or_retry(&polling).await;
    assert_eq!(retrying.status, ExecutionStatus::Retrying);
    assert!(retrying.error.unwrap().message.contains("not a PDF"));
    assert!(w.stored_process(&p).await.invoice.is_none());

    let q = w.process("VIVO", "chave").await;
    let mut key = nuvem_testkit::fake_rpa::nfcom_access_key(CNPJ, 2026, 10, 7).unwrap();
    let last = key.pop().unwrap();
    key.push(if last == '0' { '1' } else { '0' });
    w.rpa.script_once(
        Match::Any,
        Behaviour::SucceedWith {
            polls: 0,
            result: json!({"access_key": key}),
        },
    );
    let e = w.begin(&q, false).await.unwrap();
    let done = w.run_to_end(&e, 10).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    let output = done.output.unwrap();
    assert_eq!(output["access_key"], Value::Null);
    assert!(output["access_key_refused"].is_string(), "{output}");
    let invoice = w.stored_process(&q).await.invoice.unwrap();
    assert_eq!(invoice.access_key, None);
    let served = format!("{}/faturas/{}.pdf", w.rpa.url(), done.job_id.unwrap());
    assert_eq!(
        w.invoice_bytes(&invoice.s3_key).await.unwrap(),
        reqwest_get(&served).await
    );
}

impl World {
    /// Delivers messages until the execution retries or ends.
    async fn run_to_end_or_retry(&self, e: &ExecutionRecord) -> ExecutionRecord {
        let mut current = self.execution(e).await;
        for _ in 0..10 {
            current = self.deliver(&current).await;
            if current.status.is_final() || current.status == ExecutionStatus::Retrying {
                return current;
            }
        }
        panic!("still running: {current:?}");
    }
}

#[tokio::test]
async fn an_attempt_that_cannot_start_for_its_whole_deadline_times_out() {
    let w = world().await;
    let p = w.process("VIVO", "parado").await;
    let e = w.begin(&p, false).await.unwrap();
    // Its message came back every time (say KMS kept failing) until the
    // carrier's job timeout had passed since it was due.
    let late = e.watch_at.unwrap() + Duration::hours(2);
    rpa_worker::run(&w.deps, &RpaJob::of(&e), late)
        .await
        .unwrap();
    let done = w.execution(&e).await;
    assert_eq!(done.status, ExecutionStatus::TimedOut);
    assert_eq!(w.starts(Step::DownloadInvoice), 0);
    assert_eq!(w.stored_process(&p).await.active_execution, None);
}
