//! RPA executions and their log lines, in their account's partition:
//! `RPAEXE#<process>#<execution>` (a process's executions are one query,
//! in the order they began) and `RPALOG#<execution>#<seq>` (read on from a
//! cursor while the job runs, gone after the retention period).
//!
//! An execution that is not final is in one of gsi1's `RPAWATCH#<shard>`
//! partitions by the time its next job message is due (`watch_at`): a message lost to a
//! crash or a failed send is found there and sent again, so nothing stays
//! `running` without someone to move it.
//!
//! Every change is conditional on the version read; the job message that
//! asks for a change names that version, so duplicates and messages of
//! earlier phases change nothing.

use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, TransactWriteItem, WriteRequest};
use chrono::{DateTime, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::execution::{
    EXECUTION_ID_PREFIX, ExecutionStatus, FailureKind, Phase, Step,
};
use nuvem_domain::rpa::month::Month;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AuditRecord, Item, ListError, Page, ProcessRecord, Store, StoreError, n, s};
use crate::table_keys as k;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub id: String,
    pub account_id: String,
    pub process_id: String,
    pub client_id: String,
    pub month: Month,
    pub step: Step,
    pub status: ExecutionStatus,
    pub phase: Phase,
    /// From 1; a technical failure starts the next one.
    pub attempt: u32,
    /// The carrier's settings when the execution began.
    pub max_attempts: u32,
    pub job_timeout_minutes: u32,
    /// The current attempt's job at the RPA, once it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The current job's log cursor at the RPA (the `next` last read).
    #[serde(default)]
    pub log_cursor: u64,
    /// Log lines stored, over every attempt: the next one is `log_lines + 1`.
    #[serde(default)]
    pub log_lines: u64,
    /// What the step was asked to do (never a secret).
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The last failure (of this attempt or, while retrying, the one before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecutionError>,
    pub created_at: DateTime<Utc>,
    /// When the current attempt's job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<DateTime<Utc>>,
    /// The current job's deadline (its start plus the carrier's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// When the next job message is due; `None` once final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_at: Option<DateTime<Utc>>,
    /// The key that began it (`None`: a schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<Actor>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// Why an attempt failed: the RPA's judgement (`business`, `technical`), or
/// `uncertain` when nuvem cannot know whether the job started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Business,
    Technical,
    Uncertain,
}

impl From<FailureKind> for ErrorKind {
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Business => ErrorKind::Business,
            FailureKind::Technical => ErrorKind::Technical,
        }
    }
}

impl ExecutionRecord {
    /// The record's next version, changed at `now` (the caller changes the
    /// rest).
    pub fn next(&self, now: DateTime<Utc>) -> ExecutionRecord {
        ExecutionRecord {
            updated_at: now,
            version: self.version + 1,
            ..self.clone()
        }
    }
}

/// One stored line of an execution's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLogLine {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

fn execution_sk(process_id: &str, execution_id: &str) -> String {
    format!("{}{process_id}#{execution_id}", k::RPA_EXECUTION_PREFIX)
}

fn log_prefix(execution_id: &str) -> String {
    format!("RPALOG#{execution_id}#")
}

/// Fixed width, so that lines sort by seq.
fn log_sk(execution_id: &str, seq: u64) -> String {
    format!("{}{seq:020}", log_prefix(execution_id))
}

/// BatchWriteItem's limit.
const BATCH: usize = 25;

impl Store {
    pub(super) fn execution_item(&self, e: &ExecutionRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(e)?;
        item.insert(k::PK.into(), s(k::account_pk(&e.account_id)));
        item.insert(k::SK.into(), s(execution_sk(&e.process_id, &e.id)));
        if let Some(at) = e.watch_at.filter(|_| !e.status.is_final()) {
            item.insert(k::GSI1PK.into(), s(k::rpa_watch(&e.id)));
            item.insert(
                k::GSI1SK.into(),
                s(format!(
                    "{}#{}#{}#{}",
                    super::outbox_time(at),
                    e.account_id,
                    e.process_id,
                    e.id
                )),
            );
        }
        Ok(item)
    }

    /// Begins `execution` of `current`'s step: the process (as `next`, which
    /// names it as its active execution) and the execution are written
    /// together, conditional on the process being as read; `false` when it
    /// changed meanwhile.
    pub async fn begin_execution(
        &self,
        current: &ProcessRecord,
        next: &ProcessRecord,
        execution: &ExecutionRecord,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError> {
        let mut items = vec![
            self.put_if_version(self.process_item(next)?, current.version)?,
            self.put(
                self.execution_item(execution)?,
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        if let Some(audit) = audit {
            items.push(self.audit_write(audit)?);
        }
        Ok(self.write_all(items).await?.is_ok())
    }

    pub async fn get_execution(
        &self,
        account_id: &str,
        process_id: &str,
        execution_id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.get(
            k::account_pk(account_id),
            &execution_sk(process_id, execution_id),
        )
        .await
    }

    /// Replaces `current` by `next` if it is still as read; `false` when it
    /// changed meanwhile.
    pub async fn update_execution(
        &self,
        current: &ExecutionRecord,
        next: &ExecutionRecord,
    ) -> Result<bool, StoreError> {
        let put = self.put_if_version(self.execution_item(next)?, current.version)?;
        Ok(self.write_all(vec![put]).await?.is_ok())
    }

    /// Ends an execution: it and its process (no longer naming it active,
    /// moved on when the step succeeded) are written together with the
    /// process's event and audit entry, each conditional on being as read;
    /// `false` when either changed meanwhile.
    pub async fn end_execution(
        &self,
        current: &ExecutionRecord,
        next: &ExecutionRecord,
        process: (&ProcessRecord, &ProcessRecord),
        event: Option<&Envelope>,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError> {
        let mut items: Vec<TransactWriteItem> = vec![
            self.put_if_version(self.execution_item(next)?, current.version)?,
            self.put_if_version(self.process_item(process.1)?, process.0.version)?,
        ];
        if let Some(event) = event {
            items.push(self.event_record(event)?);
        }
        if let Some(audit) = audit {
            items.push(self.audit_write(audit)?);
        }
        Ok(self.write_all(items).await?.is_ok())
    }

    /// A page of a process's executions, newest first.
    pub async fn list_executions(
        &self,
        account_id: &str,
        process_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ExecutionRecord>, ListError> {
        let prefix = execution_sk(process_id, "");
        self.page(
            super::Listing::Prefix {
                pk: k::account_pk(account_id),
                sk_prefix: &prefix,
                newest_first: true,
            },
            limit,
            cursor,
        )
        .await
    }

    /// Executions whose next job message was due before `before`, oldest
    /// first within each shard of the index, at most `limit` in all.
    pub async fn overdue_executions(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let mut overdue = Vec::new();
        for shard in 0..k::RPA_WATCH_SHARDS {
            if overdue.len() >= limit {
                break;
            }
            let query = self
                .db
                .query()
                .table_name(&self.table)
                .index_name(k::GSI1)
                .key_condition_expression("gsi1pk = :p AND gsi1sk < :before")
                .expression_attribute_values(":p", s(k::rpa_watch_shard(shard)))
                .expression_attribute_values(":before", s(super::outbox_time(before)));
            overdue.extend(self.query_all(query, limit - overdue.len()).await?);
        }
        Ok(overdue)
    }

    /// Stores log lines of an execution (a line stored twice is the same
    /// item), kept for the retention period.
    pub async fn append_logs(
        &self,
        account_id: &str,
        execution_id: &str,
        lines: &[StoredLogLine],
    ) -> Result<(), StoreError> {
        for chunk in lines.chunks(BATCH) {
            let requests = chunk
                .iter()
                .map(|line| {
                    let mut item: Item = serde_dynamo::to_item(line)?;
                    item.insert(k::PK.into(), s(k::account_pk(account_id)));
                    item.insert(k::SK.into(), s(log_sk(execution_id, line.seq)));
                    item.insert(
                        k::EXPIRES_AT.into(),
                        n((line.at.max(Utc::now()) + self.retention).timestamp()),
                    );
                    let put = PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(StoreError::sdk)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            self.batch_write(requests).await?;
        }
        Ok(())
    }

    /// Deletes the log lines of an account's executions that began before
    /// `cutoff`, up to `cap` of them; how many. Execution ids sort by the
    /// time they began, so those lines are one key range of the partition.
    pub async fn purge_logs_before(
        &self,
        account_id: &str,
        cutoff: DateTime<Utc>,
        cap: usize,
    ) -> Result<usize, StoreError> {
        let before = nuvem_domain::ids::lower_bound(EXECUTION_ID_PREFIX, cutoff);
        let query = self
            .sk_range(
                k::account_pk(account_id),
                "RPALOG#".to_owned(),
                log_prefix(&before),
            )
            .projection_expression("pk, sk");
        let mut deleted = 0;
        let mut start = None;
        while deleted < cap {
            let out = query
                .clone()
                .limit(i32::try_from((cap - deleted).min(1000)).unwrap_or(1000))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::sdk)?;
            let keys = out.items.unwrap_or_default();
            for chunk in keys.chunks(BATCH) {
                let requests = chunk
                    .iter()
                    .map(|key| {
                        let delete = DeleteRequest::builder()
                            .set_key(Some(key.clone()))
                            .build()
                            .map_err(StoreError::sdk)?;
                        Ok(WriteRequest::builder().delete_request(delete).build())
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                self.batch_write(requests).await?;
                deleted += chunk.len();
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(deleted)
    }

    /// BatchWriteItem of up to 25 requests; unprocessed ones (throttling)
    /// are sent again, a few times, before it gives up.
    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for _ in 0..5 {
            let out = self
                .db
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(StoreError::sdk)?;
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::Dynamo(format!(
            "{} log items left unwritten after retries",
            requests.len()
        )))
    }

    /// Up to `limit` log lines of an execution after seq `after`, oldest
    /// first.
    pub async fn execution_logs(
        &self,
        account_id: &str,
        execution_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredLogLine>, StoreError> {
        let from = match after.checked_add(1) {
            Some(from) => log_sk(execution_id, from),
            None => return Ok(Vec::new()),
        };
        let query = self.sk_range(
            k::account_pk(account_id),
            from,
            log_sk(execution_id, u64::MAX),
        );
        self.query_all(query, limit).await
    }
}
