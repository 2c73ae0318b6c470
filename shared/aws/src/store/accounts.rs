//! Accounts, their one-per-document / one-per-email guards and audit trail.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use nuvem_domain::account::{AccountStatus, Locale};
use nuvem_domain::events::Envelope;
use serde::{Deserialize, Serialize};

use super::{Item, ListError, Listing, Page, Store, StoreError, n, s};
use crate::table_keys as k;

/// An account as stored and as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: String,
    pub organization_name: String,
    pub document: String,
    pub document_kind: String,
    pub phone: String,
    pub email: String,
    pub locale: Locale,
    pub status: AccountStatus,
    /// Licences asked for at signup, then granted at approval.
    pub imperius_licenses: u32,
    /// Buckets with the Imperius licence on; never above `imperius_licenses`
    /// (kept by the licence transaction in `store::buckets`).
    #[serde(default)]
    pub licenses_in_use: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_gb: Option<f64>,
    /// A hard quota: at 100 % the account's storage keys lose write access
    /// until usage falls below it (set by the admin).
    #[serde(default)]
    pub enforce_quota: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency counter: every change is conditioned on it.
    pub version: u64,
}

/// Who changed what on an account, with the state before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    pub account_id: String,
    pub action: String,
    pub actor_key_id: String,
    pub actor_role: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAccountError {
    #[error("an account with this document already exists")]
    DocumentTaken,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    fn account_item(&self, account: &AccountRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(account)?;
        item.insert(k::PK.into(), s(k::account_pk(&account.id)));
        item.insert(k::SK.into(), s(k::ACCOUNT_SK));
        item.insert(
            k::GSI1PK.into(),
            s(k::accounts_by_status(account.status.as_str())),
        );
        item.insert(
            k::GSI1SK.into(),
            s(k::accounts_by_status_sk(
                &account.created_at.to_rfc3339(),
                &account.id,
            )),
        );
        Ok(item)
    }

    /// Stores a new `pending` account, its document and email guards and the
    /// `account.signed_up` event in one transaction: a second signup with the
    /// same document or email fails its condition, whoever comes first.
    pub async fn create_account(
        &self,
        account: &AccountRecord,
        email_normalized: &str,
        event: &Envelope,
    ) -> Result<(), CreateAccountError> {
        let guard = |pk: String, sk: &str| -> Item {
            [
                (k::PK.to_owned(), s(pk)),
                (k::SK.to_owned(), s(sk)),
                ("account_id".to_owned(), s(&account.id)),
            ]
            .into()
        };
        let cond = Some("attribute_not_exists(pk)");
        let items = vec![
            self.put(self.account_item(account)?, cond)?,
            self.put(
                guard(k::document_pk(&account.document), k::DOCUMENT_SK),
                cond,
            )?,
            self.put(guard(k::email_pk(email_normalized), k::EMAIL_SK), cond)?,
            self.event_record(event)?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(()),
            Err(failed) => match failed.as_slice() {
                [_, true, ..] => Err(CreateAccountError::DocumentTaken),
                [_, _, true, ..] => Err(CreateAccountError::EmailTaken),
                _ => Err(StoreError::Refused(failed.clone()).into()),
            },
        }
    }

    pub async fn get_account(&self, account_id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.get(k::account_pk(account_id), k::ACCOUNT_SK).await
    }

    /// Accounts in one status, oldest first.
    pub async fn list_accounts(
        &self,
        status: AccountStatus,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<AccountRecord>, ListError> {
        let listing = Listing::Gsi1 {
            pk: k::accounts_by_status(status.as_str()),
            newest_first: false,
        };
        self.page(listing, limit, cursor).await
    }

    /// Writes an account change together with its audit entry, its event and
    /// any further items (an activation token), only if nobody changed the
    /// account since `before` was read. Returns false when someone did.
    pub async fn save_account_change(
        &self,
        before: &AccountRecord,
        after: &AccountRecord,
        audit: &AuditRecord,
        event: &Envelope,
        extra: Vec<TransactWriteItem>,
    ) -> Result<bool, StoreError> {
        // A whole-item put conditioned on the version: simpler than a
        // field-by-field update and just as safe.
        let mut put_item = self.account_item(after)?;
        put_item.insert("version".into(), n(before.version + 1));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(put_item))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", n(before.version))
            .build()
            .map_err(StoreError::sdk)?;
        let mut items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.audit_write(audit)?,
            self.event_record(event)?,
        ];
        items.extend(extra);
        match self.transact_checked(items).await? {
            Ok(()) => Ok(true),
            Err(failed) => match failed.as_slice() {
                [true, ..] => Ok(false),
                _ => Err(StoreError::Refused(failed.clone())),
            },
        }
    }

    /// The put of an audit entry, for the transaction of its change.
    pub(crate) fn audit_write(&self, audit: &AuditRecord) -> Result<TransactWriteItem, StoreError> {
        let mut item: Item = serde_dynamo::to_item(audit)?;
        item.insert(k::PK.into(), s(k::account_pk(&audit.account_id)));
        item.insert(
            k::SK.into(),
            s(k::audit_sk(&audit.at.to_rfc3339(), &audit.id)),
        );
        self.put(item, Some("attribute_not_exists(pk)"))
    }

    /// An account's audit trail, newest first.
    pub async fn list_audit(
        &self,
        account_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditRecord>, ListError> {
        let listing = Listing::Prefix {
            pk: k::account_pk(account_id),
            sk_prefix: k::AUDIT_PREFIX,
            newest_first: true,
        };
        self.page(listing, limit, cursor).await
    }
}
