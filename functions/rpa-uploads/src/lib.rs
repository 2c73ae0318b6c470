//! `rpa-uploads`: the S3 events of files people upload to the invoices
//! bucket's staging prefix through `POST …/invoice-upload`'s presigned PUT.
//! A presigned PUT cannot cap a file's size, so the check is here: at most
//! 20 MB and a PDF, for a process that still takes an invoice; then the
//! upload is settled once (a `manual_upload` execution, and the process
//! awaiting approval) and the file moves to the process's invoice key.
//! Anything else is deleted and the upload refused with its reason.
//!
//! The decision is one conditional transaction, and the file follows it:
//! a duplicate event, or the redelivery of one that failed half-way,
//! finds the upload settled and only finishes moving or deleting the file.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use nuvem_aws::Core;
use nuvem_aws::invoices::Invoices;
use nuvem_aws::rpa_jobs::{self, CloseError, UploadOutcome};
use nuvem_aws::store::{ProcessRecord, UploadRecord};
use nuvem_domain::rpa::process::{invoice_key, parse_process_id};
use nuvem_domain::rpa::upload::{self, Refusal, judge_file, parse_staging_key, takes_upload};
use nuvem_domain::s3_event::{Notification, decode_key};

pub struct Deps {
    pub core: Core,
    pub invoices: Invoices,
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    nuvem_aws::runtime::each_record(&event, |record| process(deps, record)).await
}

async fn process(deps: &Deps, message: &SqsMessage) -> Result<(), String> {
    let Some(notification) = Notification::parse(message.body.as_deref().unwrap_or(""))? else {
        return Ok(());
    };
    for record in &notification.records {
        if !record.event_name.starts_with("ObjectCreated")
            || record.s3.bucket.name != deps.invoices.bucket()
        {
            continue;
        }
        let key = decode_key(&record.s3.object.key).map_err(|e| e.to_string())?;
        if key.starts_with(upload::STAGING_PREFIX) {
            check(deps, &key, Utc::now()).await?;
        }
    }
    Ok(())
}

fn s3(e: impl std::fmt::Display) -> String {
    format!("s3: {e}")
}

fn store(e: impl std::fmt::Display) -> String {
    format!("store: {e}")
}

/// Judges and settles the file at the staging `key`.
pub async fn check(deps: &Deps, key: &str, now: DateTime<Utc>) -> Result<(), String> {
    let upload = match parse_staging_key(key) {
        Some((account, process_id, upload_id)) => deps
            .core
            .store
            .get_upload(account, upload_id)
            .await
            .map_err(store)?
            .filter(|u| u.process_id == process_id),
        None => None,
    };
    let Some(upload) = upload else {
        // Nobody asked for this file (or its upload expired).
        tracing::warn!(key, "a file no upload asked for; deleted");
        return deps.invoices.delete(key).await.map_err(s3);
    };
    if upload.state != "pending" {
        return finish(deps, &upload, key).await;
    }
    let Some(size) = deps.invoices.size(key).await.map_err(s3)? else {
        return Ok(());
    };
    let head = if size <= upload::MAX_UPLOAD_BYTES {
        deps.invoices.head_bytes(key, 1024).await.map_err(s3)?
    } else {
        Vec::new()
    };
    let process = process_of(deps, &upload).await?;
    let outcome = match judge_file(size, &head).and_then(|()| takes(&process)) {
        Ok(()) => UploadOutcome::Accepted { size },
        Err(why) => UploadOutcome::Refused(why),
    };
    match rpa_jobs::settle_upload(&deps.core, &upload, &process, outcome, now).await {
        Ok(execution) => {
            tracing::info!(upload_id = %upload.id, status = execution.status.as_str(), "upload settled");
            let mut settled = upload.clone();
            settled.state = match execution.status.as_str() {
                "succeeded" => "accepted".into(),
                _ => "refused".into(),
            };
            finish(deps, &settled, key).await
        }
        Err(CloseError::Changed) => Err("the upload or its process changed; read again".into()),
        Err(CloseError::NoProcess) => deps.invoices.delete(key).await.map_err(s3),
        Err(CloseError::Store(e)) => Err(store(e)),
    }
}

/// Whether the process takes an uploaded invoice now.
fn takes(process: &ProcessRecord) -> Result<(), Refusal> {
    if !takes_upload(process.status) {
        return Err(Refusal::NotTaking(process.status));
    }
    if process.active_execution.is_some() {
        return Err(Refusal::Busy);
    }
    Ok(())
}

async fn process_of(deps: &Deps, upload: &UploadRecord) -> Result<ProcessRecord, String> {
    let (client_id, month) =
        parse_process_id(&upload.process_id).ok_or("the upload names no process")?;
    deps.core
        .store
        .get_process(&upload.account_id, &client_id, month)
        .await
        .map_err(store)?
        .ok_or_else(|| "the upload's process is gone".into())
}

/// Moves an accepted file to the process's invoice key, and deletes the
/// staged file either way.
async fn finish(deps: &Deps, upload: &UploadRecord, key: &str) -> Result<(), String> {
    if upload.state == "accepted" && deps.invoices.size(key).await.map_err(s3)?.is_some() {
        let target = invoice_key(&upload.account_id, &upload.client_id, upload.month);
        deps.invoices.copy(key, &target).await.map_err(s3)?;
    }
    deps.invoices.delete(key).await.map_err(s3)
}
