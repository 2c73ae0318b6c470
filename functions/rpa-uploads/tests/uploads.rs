//! `rpa-uploads` against the emulator: files are PUT through the presigned
//! URL the API hands out, the emulator's S3 sends their events to the
//! stack's queue, and those very messages are handled. A PDF becomes the
//! process's invoice once (however often its event comes); anything else,
//! or a file for a process that no longer takes one, is deleted and the
//! upload refused with its reason.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use chrono::{NaiveDate, Utc};
use nuvem_aws::Core;
use nuvem_aws::invoices::Invoices;
use nuvem_aws::store::{ExecutionRecord, ProcessRecord, Store, UploadRecord};
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::execution::{ExecutionStatus, Step};
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::ProcessStatus;
use nuvem_domain::rpa::upload::{MAX_UPLOAD_BYTES, staging_key};
use nuvem_testkit::inspect::drain;
use nuvem_testkit::{TestStack, rpa_records, tenants};
use serde_json::json;

struct World {
    t: TestStack,
    deps: rpa_uploads::Deps,
    account: String,
}

async fn world() -> World {
    let t = TestStack::new("rpa-uploads").await;
    let env = t.env("RpaUploads");
    let core = Core::from_lookup(&t.sdk, &env).unwrap();
    let account = tenants::active_account(&core.store, 1_000, 0).await.id;
    let deps = rpa_uploads::Deps {
        core,
        invoices: Invoices::from_lookup(&t.sdk, &env).unwrap(),
    };
    World { t, deps, account }
}

fn actor() -> Actor {
    Actor {
        key_id: "key_01jd0000000000000000000001".into(),
        key_name: "operador".into(),
    }
}

impl World {
    fn store(&self) -> &Store {
        &self.deps.core.store
    }

    async fn process(&self, unit: &str) -> ProcessRecord {
        let body = json!({
            "legal_name": "Padaria Pão Quente Ltda", "cnpj": "11.222.333/0001-81",
            "carrier": "VIVO", "unit": unit
        });
        let client = rpa_records::client(self.store(), &self.account, body, None).await;
        rpa_records::process(self.store(), &client, Month::parse("2026-10").unwrap()).await
    }

    /// What `POST …/invoice-upload` does: the upload, and its PUT link.
    async fn upload(&self, p: &ProcessRecord) -> (UploadRecord, String) {
        let upload = UploadRecord {
            id: nuvem_domain::ids::new_id("upl"),
            account_id: self.account.clone(),
            process_id: p.id.clone(),
            client_id: p.client_id.clone(),
            month: p.month,
            due_date: NaiveDate::from_ymd_opt(2026, 11, 10).unwrap(),
            amount_cents: Some(18_990),
            file_name: "fatura-outubro.pdf".into(),
            requested_by: actor(),
            created_at: Utc::now(),
            state: "pending".into(),
            checked_key: None,
            version: 1,
        };
        self.store().create_upload(&upload).await.unwrap();
        let key = staging_key(&self.account, &p.id, &upload.id);
        let url = self
            .deps
            .invoices
            .links()
            .presigned_put(&key)
            .await
            .unwrap();
        (upload, url.expose().to_owned())
    }

    async fn put(&self, url: &str, bytes: Vec<u8>) {
        let answer = reqwest::Client::new()
            .put(url)
            .header("content-type", "application/pdf")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    }

    /// The S3 events the uploads queue holds, as Lambda delivers them.
    async fn events(&self) -> SqsEvent {
        let url = &self.t.stack.queue("InvoiceUploadsQueue").url;
        let messages = drain(&self.t.sqs, url, 100).await;
        let mut event = SqsEvent::default();
        event.records = messages
            .into_iter()
            .map(|m| {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id;
                record.body = m.body;
                record
            })
            .collect();
        event
    }

    /// Handles the queue's events; returns them for a second delivery.
    async fn handle_events(&self) -> SqsEvent {
        let event = self.events().await;
        assert!(!event.records.is_empty(), "no S3 event came");
        let answer = rpa_uploads::handle(&self.deps, event.clone()).await;
        assert!(answer.batch_item_failures.is_empty());
        event
    }

    async fn stored(&self, p: &ProcessRecord) -> ProcessRecord {
        self.store()
            .get_process(&self.account, &p.client_id, p.month)
            .await
            .unwrap()
            .unwrap()
    }

    async fn executions(&self, p: &ProcessRecord) -> Vec<ExecutionRecord> {
        self.store()
            .list_executions(&self.account, &p.id, 100, None)
            .await
            .unwrap()
            .items
    }

    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let out = self
            .deps
            .invoices
            .size(key)
            .await
            .unwrap()
            .map(|n| n as usize)?;
        Some(
            self.deps
                .invoices
                .head_bytes(key, out as u64 + 1)
                .await
                .unwrap(),
        )
    }
}

fn pdf() -> Vec<u8> {
    b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n".to_vec()
}

#[tokio::test]
async fn an_uploaded_pdf_becomes_the_invoice_once() {
    let w = world().await;
    let p = w.process("Matriz").await;
    let (upload, url) = w.upload(&p).await;
    w.put(&url, pdf()).await;
    let event = w.handle_events().await;
    // The same event again changes nothing.
    let answer = rpa_uploads::handle(&w.deps, event).await;
    assert!(answer.batch_item_failures.is_empty());

    let process = w.stored(&p).await;
    assert_eq!(process.status, ProcessStatus::AwaitingApproval);
    assert!(process.manual_upload);
    let invoice = process.invoice.unwrap();
    assert_eq!(invoice.file_name, "fatura-outubro.pdf");
    assert_eq!(invoice.amount_cents, Some(18_990));
    assert_eq!(invoice.due_date.unwrap().to_string(), "2026-11-10");
    assert_eq!(w.object(&invoice.s3_key).await, Some(pdf()));
    let staged = staging_key(&w.account, &p.id, &upload.id);
    assert_eq!(w.object(&staged).await, None);

    let executions = w.executions(&p).await;
    assert_eq!(executions.len(), 1);
    let e = &executions[0];
    assert_eq!(e.step, Step::ManualUpload);
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert_eq!(e.started_by, Some(actor()));
    let settled = w
        .store()
        .get_upload(&w.account, &upload.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(settled.state, "accepted");
}

#[tokio::test]
async fn a_file_that_is_not_a_pdf_or_too_big_is_deleted_and_refused() {
    let w = world().await;
    for (unit, bytes, reason) in [
        (
            "Html",
            b"<html><body>fatura</body></html>".to_vec(),
            "not a PDF",
        ),
        (
            "Grande",
            {
                let mut big = pdf();
                big.resize(MAX_UPLOAD_BYTES as usize + 1, b' ');
                big
            },
            "at most",
        ),
    ] {
        let p = w.process(unit).await;
        let (upload, url) = w.upload(&p).await;
        w.put(&url, bytes).await;
        w.handle_events().await;
        let process = w.stored(&p).await;
        assert_eq!(process.status, ProcessStatus::AwaitingDownload, "{unit}");
        assert_eq!(process.invoice, None);
        let staged = staging_key(&w.account, &p.id, &upload.id);
        assert_eq!(w.object(&staged).await, None, "{unit}");
        let executions = w.executions(&p).await;
        assert_eq!(executions.len(), 1);
        assert_eq!(executions[0].status, ExecutionStatus::Failed);
        let error = executions[0].error.as_ref().unwrap();
        assert!(error.message.contains(reason), "{unit}: {}", error.message);
    }
}

#[tokio::test]
async fn a_file_for_a_process_approved_meanwhile_or_for_no_upload_is_not_taken() {
    let w = world().await;
    let p = w.process("Aprovado").await;
    let (upload, url) = w.upload(&p).await;
    let current = w.stored(&p).await;
    let approved = ProcessRecord {
        status: ProcessStatus::AwaitingTaxFiling,
        version: current.version + 1,
        ..current.clone()
    };
    assert!(
        w.store()
            .update_process(&current, &approved, None, None)
            .await
            .unwrap()
    );
    w.put(&url, pdf()).await;
    w.handle_events().await;
    assert_eq!(w.stored(&p).await, approved);
    let executions = w.executions(&p).await;
    assert!(
        executions[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("awaiting_tax_filing")
    );
    assert_eq!(
        w.object(&staging_key(&w.account, &p.id, &upload.id)).await,
        None
    );

    // A file under uploads/ that no upload asked for.
    let stray = staging_key(&w.account, &p.id, "upl_01jd0000000000000000000000");
    let url = w.deps.invoices.links().presigned_put(&stray).await.unwrap();
    w.put(url.expose(), pdf()).await;
    w.handle_events().await;
    assert_eq!(w.object(&stray).await, None);
    assert_eq!(w.executions(&p).await.len(), 1);
}

/// The presigned PUT stays valid for 15 minutes: a file put again through
/// it after the first was accepted never reaches the invoice, and the
/// first event delivered late does not either.
#[tokio::test]
async fn a_file_replaced_through_the_same_link_never_becomes_the_invoice() {
    let w = world().await;
    let p = w.process("Matriz").await;
    let (upload, url) = w.upload(&p).await;
    w.put(&url, pdf()).await;
    let first = w.handle_events().await;
    let invoice = w.stored(&p).await.invoice.unwrap();
    assert_eq!(w.object(&invoice.s3_key).await, Some(pdf()));
    let settled = w
        .store()
        .get_upload(&w.account, &upload.id)
        .await
        .unwrap()
        .unwrap();
    let checked = settled.checked_key.expect("the accepted copy");
    assert_eq!(w.object(&checked).await, None, "moved, not left behind");

    let html = b"<html><body>not an invoice</body></html>".to_vec();
    w.put(&url, html).await;
    w.handle_events().await;
    let answer = rpa_uploads::handle(&w.deps, first).await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(w.object(&invoice.s3_key).await, Some(pdf()));
    let staged = staging_key(&w.account, &p.id, &upload.id);
    assert_eq!(w.object(&staged).await, None);
    let process = w.stored(&p).await;
    assert_eq!(process.status, ProcessStatus::AwaitingApproval);
    assert_eq!(w.executions(&p).await.len(), 1, "settled once");
}
