//! RPA invoice processes, in their account's partition by client and month
//! (`RPAPROC#<client>#<YYYY-MM>`), so that a client's processes are one
//! query. gsi1 lists a month's processes by status
//! (`RPAPROCS#<account>#<YYYY-MM>` / `<status>#<id>`), gsi2 a status's by
//! month (`RPAPROCSTATUS#<account>#<status>` / `<YYYY-MM>#<id>`): the
//! listings people filter by, and the scheduler's "every process awaiting a
//! download".
//!
//! Every change is conditional on the version that was read, and writes its
//! event and audit entry in the same transaction: a change is made once,
//! with its event, or not at all.

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::month::Month;
use nuvem_domain::rpa::process::{Invoice, Origin, ProcessStatus};
use nuvem_domain::rpa::report;
use serde::{Deserialize, Serialize};

use super::{AuditRecord, Index, Item, ListError, Page, Store, StoreError, s};
use crate::table_keys as k;

/// Most processes a monthly report counts.
pub const REPORT_CAP: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub id: String,
    pub account_id: String,
    pub client_id: String,
    /// The client's legal name and carrier when the process was made (a
    /// listing shows them without reading every client).
    pub legal_name: String,
    pub carrier: CarrierCode,
    pub month: Month,
    pub status: ProcessStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<Invoice>,
    /// Whether the invoice came by upload rather than from the RPA.
    #[serde(default)]
    pub manual_upload: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filing_protocol: Option<String>,
    #[serde(default)]
    pub download_attempts: u32,
    #[serde(default)]
    pub filing_attempts: u32,
    /// The execution under way (at most one per process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_execution: Option<String>,
    /// A filing that ended without nuvem knowing whether the tax system
    /// took it (`needs_review`, `timed_out`): a new filing is refused until
    /// a person retries on purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unresolved_filing: Option<String>,
    pub origin: Origin,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Actor>,
    pub updated_at: DateTime<Utc>,
    /// Counts the process's changes; each is conditional on the one read.
    pub version: u64,
}

impl ProcessRecord {
    /// The process as its events name it.
    /// The process as an export's row shows it.
    pub fn export_row(&self) -> nuvem_domain::rpa::export::ProcessRow<'_> {
        nuvem_domain::rpa::export::ProcessRow {
            id: &self.id,
            client_id: &self.client_id,
            legal_name: &self.legal_name,
            carrier: &self.carrier,
            month: self.month,
            status: self.status,
            invoice: self.invoice.as_ref(),
            manual_upload: self.manual_upload,
            approved_by: self.approved_by.as_ref(),
            approved_at: self.approved_at,
            filed_at: self.filed_at,
            filing_protocol: self.filing_protocol.as_deref(),
            download_attempts: self.download_attempts,
            filing_attempts: self.filing_attempts,
            created_at: self.created_at,
        }
    }

    pub fn event_ref(&self) -> nuvem_domain::rpa::events::ProcessRef<'_> {
        nuvem_domain::rpa::events::ProcessRef {
            process_id: &self.id,
            client_id: &self.client_id,
            legal_name: &self.legal_name,
            carrier: &self.carrier,
            month: self.month,
        }
    }

    /// A new process of `client` for `month`, awaiting its download;
    /// `None` when the client's id cannot name a process.
    pub fn new_for(
        client: &super::ClientRecord,
        month: Month,
        origin: Origin,
        created_by: Option<Actor>,
        now: DateTime<Utc>,
    ) -> Option<ProcessRecord> {
        Some(ProcessRecord {
            id: nuvem_domain::rpa::process::process_id(&client.id, month)?,
            account_id: client.account_id.clone(),
            client_id: client.id.clone(),
            legal_name: client.settings.legal_name.clone(),
            carrier: client.settings.carrier.clone(),
            month,
            status: ProcessStatus::AwaitingDownload,
            invoice: None,
            manual_upload: false,
            approved_by: None,
            approved_at: None,
            filed_at: None,
            filing_protocol: None,
            download_attempts: 0,
            filing_attempts: 0,
            active_execution: None,
            unresolved_filing: None,
            origin,
            created_at: now,
            created_by,
            updated_at: now,
            version: 1,
        })
    }
}

/// Which processes a listing shows (all filters combine).
#[derive(Debug, Clone, Default)]
pub struct ProcessFilter {
    pub status: Option<ProcessStatus>,
    pub month: Option<Month>,
    pub carrier: Option<CarrierCode>,
    pub client_id: Option<String>,
}

fn process_sk(client_id: &str, month: Month) -> String {
    k::rpa_process_sk(client_id, &month.to_string())
}

impl Store {
    pub(super) fn process_item(&self, p: &ProcessRecord) -> Result<Item, StoreError> {
        let month = p.month.to_string();
        let mut item: Item = serde_dynamo::to_item(p)?;
        item.insert(k::PK.into(), s(k::account_pk(&p.account_id)));
        item.insert(k::SK.into(), s(process_sk(&p.client_id, p.month)));
        item.insert(
            k::GSI1PK.into(),
            s(k::processes_of_month(&p.account_id, &month)),
        );
        item.insert(
            k::GSI1SK.into(),
            s(format!("{}#{}", p.status.as_str(), p.id)),
        );
        item.insert(
            k::GSI2PK.into(),
            s(k::processes_in_status(&p.account_id, p.status.as_str())),
        );
        item.insert(k::GSI2SK.into(), s(format!("{month}#{}", p.id)));
        Ok(item)
    }

    /// Writes a new process; `false` when the client has one for that month
    /// already (the id is the client's and the month's).
    pub async fn create_process(&self, process: &ProcessRecord) -> Result<bool, StoreError> {
        let put = self.put(
            self.process_item(process)?,
            Some("attribute_not_exists(pk)"),
        )?;
        Ok(self.write_all(vec![put]).await?.is_ok())
    }

    pub async fn get_process(
        &self,
        account_id: &str,
        client_id: &str,
        month: Month,
    ) -> Result<Option<ProcessRecord>, StoreError> {
        self.get(k::account_pk(account_id), &process_sk(client_id, month))
            .await
    }

    /// Replaces `current` by `next` (whose version is one more) if nobody
    /// changed it since it was read, with the change's event and audit
    /// entry; `false` when it changed meanwhile.
    pub async fn update_process(
        &self,
        current: &ProcessRecord,
        next: &ProcessRecord,
        event: Option<&Envelope>,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError> {
        let mut items: Vec<TransactWriteItem> =
            vec![self.put_if_version(self.process_item(next)?, current.version)?];
        if let Some(event) = event {
            items.push(self.event_record(event)?);
        }
        if let Some(audit) = audit {
            items.push(self.audit_write(audit)?);
        }
        Ok(self.write_all(items).await?.is_ok())
    }

    /// A page of an account's processes. The narrowest key the filter gives
    /// is queried (client, month, status, or the whole account); the rest of
    /// the filter applies to what it reads, so a page may hold fewer than
    /// `limit` processes and still have a next one.
    pub async fn list_processes(
        &self,
        account_id: &str,
        filter: &ProcessFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ProcessRecord>, ListError> {
        let query = self.db.query().table_name(&self.table);
        let mut conditions: Vec<&str> = Vec::new();
        let (mut query, index, keyed) = match (&filter.client_id, filter.month, filter.status) {
            (Some(client_id), month, _) => {
                let prefix = match month {
                    Some(m) => process_sk(client_id, m),
                    None => k::rpa_process_sk(client_id, ""),
                };
                let q = self.sk_prefix(k::account_pk(account_id), &prefix);
                (q, None, Keyed::ClientMonth)
            }
            (None, Some(month), status) => {
                let q = query.expression_attribute_values(
                    ":p",
                    s(k::processes_of_month(account_id, &month.to_string())),
                );
                let q = match status {
                    Some(st) => q
                        .key_condition_expression("gsi1pk = :p AND begins_with(gsi1sk, :st)")
                        .expression_attribute_values(":st", s(format!("{}#", st.as_str()))),
                    None => q.key_condition_expression("gsi1pk = :p"),
                };
                (q, Some(Index::Gsi1), Keyed::MonthStatus)
            }
            (None, None, Some(status)) => {
                let q = query
                    .key_condition_expression("gsi2pk = :p")
                    .expression_attribute_values(
                        ":p",
                        s(k::processes_in_status(account_id, status.as_str())),
                    );
                (q, Some(Index::Gsi2), Keyed::MonthStatus)
            }
            (None, None, None) => {
                let q = self.sk_prefix(k::account_pk(account_id), k::RPA_PROCESS_PREFIX);
                (q, None, Keyed::Nothing)
            }
        };
        if let (Some(status), Keyed::ClientMonth | Keyed::Nothing) = (filter.status, keyed) {
            conditions.push("#status = :status");
            query = query
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()));
        }
        if let Some(carrier) = &filter.carrier {
            conditions.push("#carrier = :carrier");
            query = query
                .expression_attribute_names("#carrier", "carrier")
                .expression_attribute_values(":carrier", s(carrier.as_str()));
        }
        if !conditions.is_empty() {
            query = query.filter_expression(conditions.join(" AND "));
        }
        self.page_of(query, index, limit, cursor).await
    }

    /// The monthly report of an account's month (of its first
    /// [`REPORT_CAP`] processes).
    pub async fn monthly_report(
        &self,
        account_id: &str,
        month: Month,
    ) -> Result<report::MonthlyReport, StoreError> {
        let processes = self
            .processes_of_month(account_id, month, None, REPORT_CAP)
            .await?;
        let counted: Vec<report::Counted> = processes
            .iter()
            .map(|p| report::Counted {
                carrier: &p.carrier,
                status: p.status,
                amount_cents: p.invoice.as_ref().and_then(|i| i.amount_cents),
            })
            .collect();
        Ok(report::monthly(month, &counted))
    }

    /// Up to `cap` of an account's processes, by client and month (for
    /// exports).
    pub async fn all_processes(
        &self,
        account_id: &str,
        cap: usize,
    ) -> Result<Vec<ProcessRecord>, StoreError> {
        let query = self.sk_prefix(k::account_pk(account_id), k::RPA_PROCESS_PREFIX);
        self.query_all(query, cap).await
    }

    /// Up to `cap` processes of an account's month (for reports), or only
    /// those in `status`.
    pub async fn processes_of_month(
        &self,
        account_id: &str,
        month: Month,
        status: Option<ProcessStatus>,
        cap: usize,
    ) -> Result<Vec<ProcessRecord>, StoreError> {
        let query = self
            .month_query(account_id, month, status)
            .index_name(k::GSI1);
        self.query_all(query, cap).await
    }

    /// One page of [`Store::processes_of_month`], resumed from this
    /// store's own cursor (a schedule run's).
    pub async fn processes_page(
        &self,
        account_id: &str,
        month: Month,
        status: Option<ProcessStatus>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ProcessRecord>, StoreError> {
        let query = self.month_query(account_id, month, status);
        self.page_of(query, Some(Index::Gsi1), limit, cursor)
            .await
            .map_err(ListError::into_store)
    }

    fn month_query(
        &self,
        account_id: &str,
        month: Month,
        status: Option<ProcessStatus>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let query = self
            .db
            .query()
            .table_name(&self.table)
            .expression_attribute_values(
                ":p",
                s(k::processes_of_month(account_id, &month.to_string())),
            );
        match status {
            Some(status) => query
                .key_condition_expression("gsi1pk = :p AND begins_with(gsi1sk, :st)")
                .expression_attribute_values(":st", s(format!("{}#", status.as_str()))),
            None => query.key_condition_expression("gsi1pk = :p"),
        }
    }
}

/// Which part of the filter the key condition already applies.
#[derive(Clone, Copy)]
enum Keyed {
    ClientMonth,
    MonthStatus,
    Nothing,
}
