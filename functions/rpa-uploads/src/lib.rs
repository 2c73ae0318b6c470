//! `rpa-uploads`: the S3 events of files people upload to the invoices
//! bucket's staging prefix through `POST …/invoice-upload`'s presigned PUT.
//! A presigned PUT cannot cap a file's size, so the check is here: at most
//! 20 MB and a PDF, for a process that still takes an invoice; then the
//! upload is settled once (a `manual_upload` execution, and the process
//! awaiting approval) and the file moves to the process's invoice key.
//! Anything else is deleted and the upload refused with its reason.
//!
//! The presigned PUT stays usable for its 15 minutes, so the staged file
//! can be replaced while it is being judged, or after: each check first
//! copies it to a key of its own that the uploader cannot write
//! (`checked/…`), judges that copy, and the copy that was accepted (named
//! in the upload) is the one that becomes the invoice. The decision is one
//! conditional transaction, and the files follow it: a duplicate event, a
//! replaced file's event, or the redelivery of one that failed half-way,
//! finds the upload settled and only finishes moving or deleting files.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use nuvem_aws::Core;
use nuvem_aws::invoices::Invoices;
use nuvem_aws::rpa_jobs::{self, CloseError, UploadOutcome};
use nuvem_aws::store::{ProcessRecord, UploadRecord};
use nuvem_domain::ids;
use nuvem_domain::rpa::process::{invoice_key, parse_process_id};
use nuvem_domain::rpa::upload::{
    self, Refusal, checked_key, judge_file, parse_staging_key, takes_upload,
};
use nuvem_domain::s3_event::decode_key;

pub struct Deps {
    pub core: Core,
    pub invoices: Invoices,
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    nuvem_aws::runtime::each_record(&event, |record| process(deps, record)).await
}

async fn process(deps: &Deps, message: &SqsMessage) -> Result<(), String> {
    let Some(notification) = nuvem_aws::runtime::read_s3_notification(message) else {
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
    let checked = checked_key(&upload.account_id, &upload.id, &ids::new_id("chk"));
    if !deps.invoices.copy(key, &checked).await.map_err(s3)? {
        // Gone: an earlier event of this upload settled it.
        return Ok(());
    }
    let judged = judge(deps, &upload, &checked, now).await;
    let settled = judged.as_ref().ok().and_then(Option::as_ref);
    // This check's copy is kept only when it is the accepted one.
    if settled.and_then(|u| u.checked_key.as_deref()) != Some(checked.as_str()) {
        deps.invoices.delete(&checked).await.map_err(s3)?;
    }
    match judged? {
        Some(settled) => finish(deps, &settled, key).await,
        // Its process is gone.
        None => deps.invoices.delete(key).await.map_err(s3),
    }
}

/// Judges the checked copy of an upload's file and settles the upload;
/// the upload as settled (either way), `None` when its process is gone.
async fn judge(
    deps: &Deps,
    upload: &UploadRecord,
    checked: &str,
    now: DateTime<Utc>,
) -> Result<Option<UploadRecord>, String> {
    let size = deps.invoices.size(checked).await.map_err(s3)?.unwrap_or(0);
    let head = if size <= upload::MAX_UPLOAD_BYTES {
        deps.invoices.head_bytes(checked, 1024).await.map_err(s3)?
    } else {
        Vec::new()
    };
    let process = process_of(deps, upload).await?;
    let outcome = match judge_file(size, &head).and_then(|()| takes(&process)) {
        Ok(()) => UploadOutcome::Accepted {
            size,
            checked_key: checked.to_owned(),
        },
        Err(why) => UploadOutcome::Refused(why),
    };
    match rpa_jobs::settle_upload(&deps.core, upload, &process, outcome, now).await {
        Ok((execution, settled)) => {
            tracing::info!(upload_id = %upload.id, status = execution.status.as_str(), "upload settled");
            Ok(Some(settled))
        }
        Err(CloseError::Changed) => Err("the upload or its process changed; read again".into()),
        Err(CloseError::NoProcess) => Ok(None),
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

/// Moves an accepted upload's checked copy to the process's invoice key,
/// and deletes the staged file either way.
async fn finish(deps: &Deps, upload: &UploadRecord, key: &str) -> Result<(), String> {
    if let (true, Some(checked)) = (upload.state == "accepted", &upload.checked_key) {
        let target = invoice_key(&upload.account_id, &upload.client_id, upload.month);
        // Copied already when it is gone: it is deleted only after.
        if deps.invoices.copy(checked, &target).await.map_err(s3)? {
            deps.invoices.delete(checked).await.map_err(s3)?;
        }
    }
    deps.invoices.delete(key).await.map_err(s3)
}
