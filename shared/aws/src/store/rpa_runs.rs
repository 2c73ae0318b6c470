//! Runs of RPA schedules (`RPARUN#<schedule>#<due>` in the account's
//! partition). A run is claimed together with its schedule's next run, in
//! one transaction, then worked page by page: after each page it is saved
//! with where the next page starts (its cursor) and a lease, so a run that
//! a crash or an invocation's deadline cut short is taken up by a later
//! tick from its last saved page. A run under way sits in gsi1's `RPARUNS`
//! partition by when its lease runs out; a finished one leaves it. Every
//! save is conditional on the version its writer read, so two invocations
//! never both work a run: the one that lost the race stops.

use chrono::{DateTime, Duration, Utc};
use nuvem_domain::events::Envelope;
use nuvem_domain::ids;
use serde::{Deserialize, Serialize};

use super::{Item, ScheduleRecord, Store, StoreError, n, outbox_time, s};
use crate::table_keys as k;

/// Prefix of run ids.
pub const RUN_ID_PREFIX: &str = "run";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Running,
    Succeeded,
    Failed,
}

/// What a run has done so far, over all its pages. What counts as done or
/// skipped is the schedule type's (processes created and found existing,
/// downloads begun and left alone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProgress {
    pub done: u64,
    pub skipped: u64,
    /// Pages worked.
    pub pages: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunRecord {
    /// `run_…`; also names what the run writes (an export's files).
    pub id: String,
    pub due: DateTime<Utc>,
    pub claimed_at: DateTime<Utc>,
    pub outcome: RunOutcome,
    /// How it ended: a summary, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Until when the invocation working the run holds it; once past, a
    /// later tick takes it up.
    pub lease_until: DateTime<Utc>,
    /// Where the next page starts (the schedule type's, opaque here);
    /// `None` at the beginning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default)]
    pub progress: RunProgress,
    /// Times a later tick took the run up.
    #[serde(default)]
    pub resumed: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The schedule as it was when the run was claimed: a run taken up
    /// later does what was claimed, whatever became of the schedule.
    pub schedule: ScheduleRecord,
    pub version: u64,
}

impl ScheduleRunRecord {
    /// The run of `schedule` due at `due`, claimed at `now` and held until
    /// `lease_until`.
    pub fn claimed(
        schedule: ScheduleRecord,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Self {
        ScheduleRunRecord {
            id: ids::new_id(RUN_ID_PREFIX),
            due,
            claimed_at: now,
            outcome: RunOutcome::Running,
            detail: None,
            lease_until,
            cursor: None,
            progress: RunProgress::default(),
            resumed: 0,
            finished_at: None,
            schedule,
            version: 1,
        }
    }

    pub fn account_id(&self) -> &str {
        &self.schedule.account_id
    }

    /// Ends the run (saved with [`Store::save_run`]).
    pub fn finish(&mut self, outcome: RunOutcome, detail: String, now: DateTime<Utc>) {
        self.outcome = outcome;
        self.detail = Some(detail);
        self.finished_at = Some(now);
        self.lease_until = now;
    }
}

impl Store {
    fn run_item(&self, run: &ScheduleRunRecord) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(run)?;
        let due = outbox_time(run.due);
        item.insert(k::PK.into(), s(k::account_pk(run.account_id())));
        item.insert(
            k::SK.into(),
            s(k::rpa_schedule_run_sk(&run.schedule.id, &due)),
        );
        item.insert(
            k::EXPIRES_AT.into(),
            n((run.claimed_at + self.retention).timestamp()),
        );
        if run.outcome == RunOutcome::Running {
            item.insert(k::GSI1PK.into(), s(k::RPA_OPEN_RUNS));
            item.insert(
                k::GSI1SK.into(),
                s(format!(
                    "{}#{}#{}#{due}",
                    outbox_time(run.lease_until),
                    run.account_id(),
                    run.schedule.id
                )),
            );
        }
        Ok(item)
    }

    /// Claims the run of `schedule` due at its `next_run`: moves its next
    /// run to `next` and writes the run, held for `lease`, both only if the
    /// schedule is still as it was read. Of two scheduler invocations that
    /// read the same due run, one gets it and the other `None`.
    pub async fn claim_schedule_run(
        &self,
        schedule: &ScheduleRecord,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<ScheduleRunRecord>, StoreError> {
        let Some(due) = schedule.next_run else {
            return Ok(None);
        };
        let claimed = ScheduleRecord {
            next_run: next,
            last_run: Some(due),
            version: schedule.version + 1,
            ..schedule.clone()
        };
        let put_schedule = self.put_if_version(self.schedule_item(&claimed)?, schedule.version)?;
        let run = ScheduleRunRecord::claimed(claimed, due, now, now + lease);
        let items = vec![
            put_schedule,
            self.put(self.run_item(&run)?, Some("attribute_not_exists(pk)"))?,
        ];
        Ok(match self.transact_checked(items).await? {
            Ok(()) => Some(run),
            Err(_) => None,
        })
    }

    /// Runs under way whose lease ran out by `now` (their invocation
    /// crashed, timed out or stopped at its deadline), longest waiting
    /// first, at most `limit` (from every account).
    pub async fn stale_runs(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ScheduleRunRecord>, StoreError> {
        self.gsi1_up_to(k::RPA_OPEN_RUNS, now, limit).await
    }

    /// Saves `run` (its next version) if nobody saved it since it was read,
    /// with `event` in the same transaction; `false` when someone did (the
    /// caller no longer holds the run and stops).
    pub async fn save_run(
        &self,
        run: &mut ScheduleRunRecord,
        event: Option<&Envelope>,
    ) -> Result<bool, StoreError> {
        let read = run.version;
        run.version += 1;
        let mut items = vec![self.put_if_version(self.run_item(run)?, read)?];
        if let Some(event) = event {
            items.push(self.event_record(event)?);
        }
        Ok(self.write_all(items).await?.is_ok())
    }

    /// A run of a schedule, by its due time.
    pub async fn get_schedule_run(
        &self,
        account_id: &str,
        schedule_id: &str,
        due: DateTime<Utc>,
    ) -> Result<Option<ScheduleRunRecord>, StoreError> {
        self.get(
            k::account_pk(account_id),
            &k::rpa_schedule_run_sk(schedule_id, &outbox_time(due)),
        )
        .await
    }
}
