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

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreError, holds, n, s};
use crate::table_keys as k;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours: perform the effect, then `finish` (or `release` on failure).
    Acquired,
    /// Already done by an earlier delivery: acknowledge and skip.
    Done,
    /// Another delivery holds it right now: retry later.
    Busy,
}

/// How long idempotency records are kept (longer than any redelivery).
const DONE_RETENTION_SECS: i64 = 7 * 24 * 3600;

impl Store {
    pub async fn claim(
        &self,
        consumer: &str,
        id: &str,
        lease_secs: i64,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let holder = nuvem_domain::ids::new_id("clm");
        let result = self
            .db
            .put_item()
            .table_name(&self.table)
            .item(k::PK, s(k::done_pk(consumer, id)))
            .item(k::SK, s(k::DONE_SK))
            .item("state", s("in_progress"))
            .item("holder", s(&holder))
            .item("lease_until", n(now.timestamp() + lease_secs))
            .item(k::EXPIRES_AT, n(now.timestamp() + DONE_RETENTION_SECS))
            .condition_expression(
                "attribute_not_exists(pk) OR (#st = :busy AND lease_until < :now)",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":busy", s("in_progress"))
            .expression_attribute_values(":now", n(now.timestamp()))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Acquired),
            Err(e) => {
                let Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                    failed,
                )) = e.as_service_error()
                else {
                    return Err(StoreError::sdk(e));
                };
                Ok(if holds(failed.item(), "state", "done") {
                    Claim::Done
                } else if holds(failed.item(), "holder", &holder) {
                    // Our own first attempt, written but not answered.
                    Claim::Acquired
                } else {
                    Claim::Busy
                })
            }
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
