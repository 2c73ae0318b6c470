//! `POST /v1/rpa/processes/{id}/invoice-upload`: a presigned PUT for a
//! person's invoice PDF. The file is checked when it arrives (its S3 event,
//! `rpa-uploads`); the outcome shows as a `manual_upload` execution.

use chrono::Utc;
use nuvem_aws::http::{self, HttpResult, Principal, Problem, Request};
use nuvem_aws::invoices::{LINK_TTL, PDF};
use nuvem_aws::store::UploadRecord;
use nuvem_domain::ids;
use nuvem_domain::rpa::upload::{
    MAX_UPLOAD_BYTES, UPLOAD_ID_PREFIX, UploadRequest, default_file_name, staging_key, takes_upload,
};
use serde_json::json;

use crate::Deps;
use crate::processes::process;

pub(crate) async fn create(deps: &Deps, req: &Request, who: &Principal) -> HttpResult {
    let body: UploadRequest = http::json_body(req, http::DEFAULT_BODY_LIMIT)?;
    let settings = body.validate().map_err(Problem::validation)?;
    let process = process(deps, req, who).await?;
    if !takes_upload(process.status) {
        return Err(Problem::conflict(format!(
            "the process is {}; it takes no invoice",
            process.status
        )));
    }
    if let Some(active) = &process.active_execution {
        return Err(Problem::conflict(format!(
            "execution {active} of the process is under way; cancel it to upload"
        )));
    }
    let now = Utc::now();
    let upload = UploadRecord {
        id: ids::new_id(UPLOAD_ID_PREFIX),
        account_id: who.account_id.clone(),
        process_id: process.id.clone(),
        client_id: process.client_id.clone(),
        month: process.month,
        due_date: settings.due_date,
        amount_cents: settings.amount_cents,
        file_name: settings
            .file_name
            .unwrap_or_else(|| default_file_name(process.carrier.as_str(), process.month)),
        requested_by: who.actor(),
        created_at: now,
        state: "pending".into(),
        checked_key: None,
        version: 1,
    };
    deps.core.store.create_upload(&upload).await?;
    let url = deps
        .invoices
        .presigned_put(&staging_key(&upload.account_id, &process.id, &upload.id))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "upload link not signed");
            Problem::unavailable("the invoice store is unavailable; try again", 5)
        })?;
    http::json(
        201,
        &json!({
            "upload_id": upload.id,
            "url": url.expose(),
            "method": "PUT",
            "headers": {"Content-Type": PDF},
            "max_bytes": MAX_UPLOAD_BYTES,
            "expires_at": now + LINK_TTL,
        }),
    )
}
