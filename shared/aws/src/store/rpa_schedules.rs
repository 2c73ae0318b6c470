//! RPA schedules, in their account's partition (`RPASCHED#<id>`), each name
//! claimed by `RPANAME#<name>` in the same transaction. An active
//! schedule sits in gsi1's `RPADUE` partition by its next run
//! (`<next run>#<account>#<id>`), the one query `rpa-scheduler` makes each
//! minute; a paused or inactive one leaves it. Their runs are in
//! `rpa_runs`.

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use nuvem_domain::keys::Actor;
use nuvem_domain::rpa::schedule_settings::ScheduleSettings;
use serde::{Deserialize, Serialize};

use super::{Item, ListError, Listing, Page, Store, StoreError, outbox_time, s};
use crate::table_keys as k;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub id: String,
    pub account_id: String,
    #[serde(flatten)]
    pub settings: ScheduleSettings,
    /// When it runs next; `None` while inactive or paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<DateTime<Utc>>,
    /// Runs that failed since the last one that did not.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Why the scheduler paused it (it failed too often), until a person
    /// makes it active again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Actor,
    pub version: u64,
}

/// Why a schedule could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleWriteError {
    /// Another schedule of the account has the name.
    NameTaken,
    /// It changed or went since it was read.
    Changed,
}

impl Store {
    pub(super) fn schedule_item(&self, sch: &ScheduleRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(sch)?;
        item.insert(k::PK.into(), s(k::account_pk(&sch.account_id)));
        item.insert(k::SK.into(), s(k::rpa_schedule_sk(&sch.id)));
        if let Some(next) = sch.next_run {
            item.insert(k::GSI1PK.into(), s(k::RPA_DUE));
            item.insert(
                k::GSI1SK.into(),
                s(format!(
                    "{}#{}#{}",
                    outbox_time(next),
                    sch.account_id,
                    sch.id
                )),
            );
        }
        Ok(item)
    }

    fn schedule_name_claim(&self, sch: &ScheduleRecord) -> Result<TransactWriteItem, StoreError> {
        self.claim_item(
            k::account_pk(&sch.account_id),
            k::rpa_schedule_name_sk(&sch.settings.name_key()),
            "schedule_id",
            &sch.id,
        )
    }

    fn release_schedule_name(&self, sch: &ScheduleRecord) -> Result<TransactWriteItem, StoreError> {
        self.release_claim(
            k::account_pk(&sch.account_id),
            k::rpa_schedule_name_sk(&sch.settings.name_key()),
            "schedule_id",
            &sch.id,
        )
    }

    /// Writing `next` in place of `current` if its version is still the
    /// one read, for a transaction.
    fn schedule_put_if_unchanged(
        &self,
        current: &ScheduleRecord,
        next: &ScheduleRecord,
    ) -> Result<TransactWriteItem, StoreError> {
        self.put_if_version(self.schedule_item(next)?, current.version)
    }

    pub async fn create_schedule(
        &self,
        sch: &ScheduleRecord,
    ) -> Result<Result<(), ScheduleWriteError>, StoreError> {
        let items = vec![
            self.schedule_name_claim(sch)?,
            self.put(self.schedule_item(sch)?, Some("attribute_not_exists(pk)"))?,
        ];
        Ok(match self.transact_checked(items).await? {
            Ok(()) => Ok(()),
            Err(failed) if failed.first() == Some(&true) => Err(ScheduleWriteError::NameTaken),
            Err(failed) => return Err(StoreError::Refused(failed)),
        })
    }

    pub async fn get_schedule(
        &self,
        account_id: &str,
        schedule_id: &str,
    ) -> Result<Option<ScheduleRecord>, StoreError> {
        self.get(k::account_pk(account_id), &k::rpa_schedule_sk(schedule_id))
            .await
    }

    /// Replaces `current` by `next` if nobody changed it since it was read
    /// (its version), moving the name's claim when the name changes.
    pub async fn update_schedule(
        &self,
        current: &ScheduleRecord,
        next: &ScheduleRecord,
    ) -> Result<Result<(), ScheduleWriteError>, StoreError> {
        let mut items = vec![self.schedule_put_if_unchanged(current, next)?];
        if current.settings.name_key() != next.settings.name_key() {
            items.push(self.schedule_name_claim(next)?);
            items.push(self.release_schedule_name(current)?);
        }
        if items.len() == 1 {
            return Ok(self
                .write_all(items)
                .await?
                .map_err(|()| ScheduleWriteError::Changed));
        }
        Ok(self.transact_checked(items).await?.map_err(|failed| {
            if failed.get(1) == Some(&true) {
                ScheduleWriteError::NameTaken
            } else {
                ScheduleWriteError::Changed
            }
        }))
    }

    /// Deletes a schedule and frees its name; `false`: no such schedule.
    pub async fn delete_schedule(
        &self,
        account_id: &str,
        schedule_id: &str,
    ) -> Result<bool, StoreError> {
        let Some(current) = self.get_schedule(account_id, schedule_id).await? else {
            return Ok(false);
        };
        let items = vec![
            self.delete_item(
                k::account_pk(account_id),
                k::rpa_schedule_sk(schedule_id),
                "attribute_exists(pk)",
            )?,
            self.release_schedule_name(&current)?,
        ];
        Ok(self.transact_checked(items).await?.is_ok())
    }

    /// An account's schedules, oldest first.
    pub async fn list_schedules(
        &self,
        account_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ScheduleRecord>, ListError> {
        let listing = Listing::Prefix {
            pk: k::account_pk(account_id),
            sk_prefix: k::RPA_SCHEDULE_PREFIX,
            newest_first: false,
        };
        self.page(listing, limit, cursor).await
    }

    /// Active schedules whose next run is at or before `now`, soonest
    /// first, at most `limit` (from every account: the scheduler's one
    /// query).
    pub async fn due_schedules(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.gsi1_up_to(k::RPA_DUE, now, limit).await
    }

    /// The items of a gsi1 partition sorted by time (their sort key begins
    /// with one) up to `now`, soonest first, at most `limit`.
    pub(super) async fn gsi1_up_to<T: serde::de::DeserializeOwned>(
        &self,
        partition: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        // Fixed-width times sort as strings; everything by `now` sorts
        // before the next microsecond.
        let upper = outbox_time(now + chrono::Duration::microseconds(1));
        let query = self
            .db
            .query()
            .table_name(&self.table)
            .index_name(k::GSI1)
            .key_condition_expression("gsi1pk = :p AND gsi1sk < :upper")
            .expression_attribute_values(":p", s(partition))
            .expression_attribute_values(":upper", s(upper));
        self.query_all(query, limit).await
    }

    /// Replaces `current` by `next` if nobody changed it since it was read,
    /// with an event in the same transaction; `false` when it changed.
    /// (The name is not changed this way.)
    pub async fn update_schedule_with_event(
        &self,
        current: &ScheduleRecord,
        next: &ScheduleRecord,
        event: Option<&nuvem_domain::events::Envelope>,
    ) -> Result<bool, StoreError> {
        let mut items = vec![self.schedule_put_if_unchanged(current, next)?];
        if let Some(event) = event {
            items.push(self.event_record(event)?);
        }
        Ok(self.write_all(items).await?.is_ok())
    }
}
