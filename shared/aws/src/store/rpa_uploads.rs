//! Invoice uploads a person asked for (`RPAUPLOAD#<id>` in the account's
//! partition, gone after two days): what the presigned PUT's file is to
//! become, until its S3 event settles it once.

use chrono::{DateTime, NaiveDate, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::month::Month;
use serde::{Deserialize, Serialize};

use super::{ExecutionRecord, Item, ProcessRecord, Store, StoreError, n, s};
use crate::table_keys as k;

/// How long an upload waits for its file.
const KEPT_DAYS: i64 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: String,
    pub account_id: String,
    pub process_id: String,
    pub client_id: String,
    pub month: Month,
    pub due_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    pub file_name: String,
    pub requested_by: Actor,
    pub created_at: DateTime<Utc>,
    /// `pending` until its file's event settles it: `accepted`, `refused`.
    pub state: String,
    /// The copy of the file that was judged and accepted, moved to the
    /// invoice key (never the staged file, which the uploader can replace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_key: Option<String>,
    pub version: u64,
}

fn upload_sk(id: &str) -> String {
    format!("RPAUPLOAD#{id}")
}

impl Store {
    fn upload_item(&self, u: &UploadRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(u)?;
        item.insert(k::PK.into(), s(k::account_pk(&u.account_id)));
        item.insert(k::SK.into(), s(upload_sk(&u.id)));
        item.insert(
            k::EXPIRES_AT.into(),
            n((u.created_at + chrono::Duration::days(KEPT_DAYS)).timestamp()),
        );
        Ok(item)
    }

    pub async fn create_upload(&self, upload: &UploadRecord) -> Result<(), StoreError> {
        let put = self.put(self.upload_item(upload)?, Some("attribute_not_exists(pk)"))?;
        self.write_all(vec![put])
            .await?
            .map_err(|()| StoreError::Refused(vec![true]))
    }

    pub async fn get_upload(
        &self,
        account_id: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, StoreError> {
        self.get(k::account_pk(account_id), &upload_sk(upload_id))
            .await
    }

    /// Settles an upload once: the upload as `next` (conditional on the
    /// version read), its `manual_upload` execution, and, when its file
    /// became the invoice, the process moved on with its event (conditional
    /// on the process as read). `false` when either changed meanwhile.
    pub async fn settle_upload(
        &self,
        current: &UploadRecord,
        next: &UploadRecord,
        execution: &ExecutionRecord,
        process: Option<(&ProcessRecord, &ProcessRecord)>,
        event: Option<&Envelope>,
    ) -> Result<bool, StoreError> {
        let mut items = vec![
            self.put_if_version(self.upload_item(next)?, current.version)?,
            self.put(
                self.execution_item(execution)?,
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        if let Some((current, next)) = process {
            items.push(self.put_if_version(self.process_item(next)?, current.version)?);
        }
        if let Some(event) = event {
            items.push(self.event_record(event)?);
        }
        Ok(self.write_all(items).await?.is_ok())
    }
}
