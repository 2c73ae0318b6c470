//! Exactly-once effects for at-least-once consumers.
//!
//! A consumer claims `(consumer, id)` with a conditional put before its
//! effect and marks it done after. A duplicate that finds the claim done is
//! acknowledged; one that finds it in progress is retried later (the first
//! may still fail); a claim whose lease ran out (its holder crashed) can be
//! taken over. So nothing is lost, and an effect repeats only if a holder
//! crashes between the effect and marking it done.
//!
//! Each claim names its holder with a token of its own, so that the SDK's
//! retry of a claim whose first attempt was written but not answered (a
//! dropped connection, a 500 after the write) finds its own claim and takes
//! it, instead of waiting out the lease as if someone else held it.
//!
//! A claim asked for by an SQS message also names that message (its id and
//! receive count). Then:
//! - another message of the same work (say, the outbox relay's copy of an
//!   event that was also sent directly) that finds the claim in progress is
//!   acknowledged, not retried: the holder's own message carries the work and
//!   comes back if its holder fails, whereas retrying the copy only burns its
//!   receives until it lands in the DLQ;
//! - the holder's own message received again (a higher receive count: SQS
//!   handed it out again after its visibility timeout, longer than the
//!   function's, so the earlier invocation is over) takes the claim over at
//!   once instead of waiting out the lease. A copy of the message delivered
//!   twice at once (same receive count) still finds it busy.

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreError, condition_failed, holds, n, put_refused, s};
use crate::table_keys as k;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours: perform the effect, then `finish` (or `release` on failure).
    Acquired,
    /// Already done by an earlier delivery: acknowledge and skip.
    Done,
    /// Another delivery holds it right now: retry later.
    Busy,
    /// Another SQS message holds it right now: acknowledge this one (see the
    /// module doc).
    HeldByAnotherMessage,
}

/// The SQS message a claim is asked for: its id and `ApproximateReceiveCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub message_id: &'a str,
    pub receive_count: u32,
}

impl<'a> Delivery<'a> {
    /// The delivery of a record of an SQS event (a record without an id
    /// gives none: its claims behave as without a message).
    pub fn of(record: &'a aws_lambda_events::sqs::SqsMessage) -> Option<Self> {
        let message_id = record.message_id.as_deref().filter(|id| !id.is_empty())?;
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        Some(Delivery {
            message_id,
            receive_count,
        })
    }

    /// What is recorded with the work this delivery takes.
    pub fn claimed_by(&self) -> ClaimedBy {
        ClaimedBy {
            message_id: self.message_id.to_owned(),
            receive_count: self.receive_count,
        }
    }

    /// How this delivery relates to the one that holds the work.
    pub fn against(&self, holder: &ClaimedBy) -> Holder {
        if holder.message_id != self.message_id {
            Holder::AnotherMessage
        } else if holder.receive_count < self.receive_count {
            Holder::EarlierReceive
        } else {
            Holder::SameReceive
        }
    }
}

/// The SQS message that holds a piece of work, as recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimedBy {
    pub message_id: String,
    pub receive_count: u32,
}

/// Who holds a piece of work that a delivery finds in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Another message: it carries the work; acknowledge this one.
    AnotherMessage,
    /// An earlier receive of this message: that invocation is over.
    EarlierReceive,
    /// This very receive, handed out twice: leave it to the other copy.
    SameReceive,
}

/// How long idempotency records are kept (longer than any redelivery).
const DONE_RETENTION_SECS: i64 = 7 * 24 * 3600;

impl Store {
    /// Claims `(consumer, id)` for `lease_secs`, for the SQS message
    /// `delivery` if it comes from one.
    pub async fn claim(
        &self,
        consumer: &str,
        id: &str,
        lease_secs: i64,
        now: DateTime<Utc>,
        delivery: Option<Delivery<'_>>,
    ) -> Result<Claim, StoreError> {
        let holder = nuvem_domain::ids::new_id("clm");
        let claim = NewClaim {
            consumer,
            id,
            holder: &holder,
            lease_until: now.timestamp() + lease_secs,
            delivery,
        };
        let held = match self.put_claim(&claim, Condition::Free(now)).await? {
            None => return Ok(Claim::Acquired),
            Some(held) => held,
        };
        if holds(held.as_ref(), "state", "done") {
            return Ok(Claim::Done);
        }
        if holds(held.as_ref(), "holder", &holder) {
            // Our own first attempt, written but not answered.
            return Ok(Claim::Acquired);
        }
        let (Some(ours), Some(theirs)) = (delivery, held_by(held.as_ref())) else {
            return Ok(Claim::Busy);
        };
        match ours.against(&theirs) {
            Holder::AnotherMessage => return Ok(Claim::HeldByAnotherMessage),
            Holder::SameReceive => return Ok(Claim::Busy),
            Holder::EarlierReceive => {}
        }
        let their_holder = held
            .as_ref()
            .and_then(|i| i.get("holder"))
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        Ok(
            match self
                .put_claim(&claim, Condition::HeldBy(&their_holder))
                .await?
            {
                None => Claim::Acquired,
                Some(now_held) if holds(now_held.as_ref(), "holder", &holder) => Claim::Acquired,
                Some(now_held) if holds(now_held.as_ref(), "state", "done") => Claim::Done,
                Some(_) => Claim::Busy,
            },
        )
    }

    /// Writes a claim if `condition` holds; on refusal, the item that
    /// refused it (`Some(None)` if there is none any more).
    async fn put_claim(
        &self,
        claim: &NewClaim<'_>,
        condition: Condition<'_>,
    ) -> Result<Option<Option<crate::store::Item>>, StoreError> {
        let mut put = self
            .db
            .put_item()
            .table_name(&self.table)
            .item(k::PK, s(k::done_pk(claim.consumer, claim.id)))
            .item(k::SK, s(k::DONE_SK))
            .item("state", s("in_progress"))
            .item("holder", s(claim.holder))
            .item("lease_until", n(claim.lease_until))
            .item(k::EXPIRES_AT, n(claim.lease_until + DONE_RETENTION_SECS))
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":busy", s("in_progress"))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        if let Some(d) = claim.delivery {
            put = put.item(
                "claimed_by",
                serde_dynamo::to_attribute_value(d.claimed_by())?,
            );
        }
        put = match condition {
            Condition::Free(now) => put
                .condition_expression(
                    "attribute_not_exists(pk) OR (#st = :busy AND lease_until < :now)",
                )
                .expression_attribute_values(":now", n(now.timestamp())),
            Condition::HeldBy(holder) => put
                .condition_expression("#st = :busy AND holder = :holder")
                .expression_attribute_values(":holder", s(holder)),
        };
        match put.send().await {
            Ok(_) => Ok(None),
            Err(e) if condition_failed(&e) => Ok(Some(put_refused(&e))),
            Err(e) => Err(StoreError::sdk(e)),
        }
    }

    pub async fn finish(&self, consumer: &str, id: &str) -> Result<(), StoreError> {
        self.db
            .update_item()
            .table_name(&self.table)
            .key(k::PK, s(k::done_pk(consumer, id)))
            .key(k::SK, s(k::DONE_SK))
            .update_expression("SET #st = :done REMOVE lease_until, holder")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":done", s("done"))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    /// Gives a claim back after a failed effect so that the retry may run.
    pub async fn release(&self, consumer: &str, id: &str) -> Result<(), StoreError> {
        self.db
            .delete_item()
            .table_name(&self.table)
            .key(k::PK, s(k::done_pk(consumer, id)))
            .key(k::SK, s(k::DONE_SK))
            .condition_expression("#st = :busy")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":busy", s("in_progress"))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }
}

struct NewClaim<'a> {
    consumer: &'a str,
    id: &'a str,
    holder: &'a str,
    lease_until: i64,
    delivery: Option<Delivery<'a>>,
}

enum Condition<'a> {
    /// No claim, or one whose lease ran out.
    Free(DateTime<Utc>),
    /// Still the in-progress claim of this holder.
    HeldBy(&'a str),
}

/// The message a claim was taken for, if any.
fn held_by(item: Option<&crate::store::Item>) -> Option<ClaimedBy> {
    serde_dynamo::from_attribute_value(item?.get("claimed_by")?.clone()).ok()
}
