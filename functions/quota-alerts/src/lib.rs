//! Consumes the `s3-events` queue (S3 → SQS notifications of tenant
//! buckets) and keeps every account's used bytes exact: duplicates count
//! once, records older than what was recorded change nothing (S3
//! `sequencer`), overwrites count the difference, deletes free what was
//! recorded. Records without a sequencer (some S3-compatible servers, the
//! local emulator) are applied in arrival order, a weaker guarantee. After
//! a batch, each touched account's level is re-evaluated (80/95/100 %):
//! accounts whose usage a record changed, and accounts of records already
//! recorded, since the delivery that recorded one may have died before its
//! evaluation (the evaluation is idempotent: a crossing is announced once).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use nuvem_aws::Core;
use nuvem_domain::s3_event::{Record, decode_key};
use nuvem_domain::usage::{Classified, apply, classify};

pub struct Deps {
    pub core: Core,
}

/// How often one record is re-read and retried when a concurrent delivery
/// changed its object first.
const RACE_RETRIES: usize = 5;

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let mut owners: HashMap<String, Option<String>> = HashMap::new();
    let mut failed: Vec<String> = Vec::new();
    // Account → messages that changed it, failed too if its evaluation fails.
    let mut touched: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for message in &event.records {
        let id = message.message_id.clone().unwrap_or_default();
        match process(deps, message, &mut owners).await {
            Ok(accounts) => {
                for account in accounts {
                    touched.entry(account).or_default().insert(id.clone());
                }
            }
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "S3 event failed; it will be retried");
                failed.push(id);
            }
        }
    }
    for (account, messages) in touched {
        if let Err(e) = deps.core.evaluate_quota(&account, Utc::now()).await {
            tracing::warn!(account_id = %account, error = %e, "quota evaluation failed; retrying its messages");
            failed.extend(messages);
        }
    }
    failed.sort();
    failed.dedup();
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
}

/// Applies one SQS message (one S3 notification, possibly several records);
/// returns the accounts whose level must be evaluated.
async fn process(
    deps: &Deps,
    message: &SqsMessage,
    owners: &mut HashMap<String, Option<String>>,
) -> Result<Vec<String>, String> {
    let Some(notification) = nuvem_aws::runtime::read_s3_notification(message) else {
        return Ok(Vec::new());
    };
    let mut changed = Vec::new();
    for record in &notification.records {
        if let Some(account) = apply_record(deps, record, owners).await? {
            changed.push(account);
        }
    }
    Ok(changed)
}

async fn apply_record(
    deps: &Deps,
    record: &Record,
    owners: &mut HashMap<String, Option<String>>,
) -> Result<Option<String>, String> {
    let store = &deps.core.store;
    let bucket = record.s3.bucket.name.clone();
    let account = match owners.get(&bucket) {
        Some(owner) => owner.clone(),
        None => {
            let owner = store
                .bucket_owner(&bucket)
                .await
                .map_err(|e| e.to_string())?;
            owners.insert(bucket.clone(), owner.clone());
            owner
        }
    };
    let Some(account) = account else {
        tracing::info!(bucket = %bucket, "event of a bucket nuvem does not know; ignored");
        return Ok(None);
    };
    let event_name = record.event_name.as_str();
    let change = match classify(event_name, record.s3.object.size) {
        Classified::Apply(change) => change,
        Classified::Ignore(reason) => {
            tracing::info!(event_name, %reason, "S3 record ignored");
            return Ok(None);
        }
    };
    let raw_key = record.s3.object.key.as_str();
    let key = decode_key(raw_key).map_err(|e| format!("object key {raw_key:?}: {e}"))?;
    let sequencer = record.s3.object.sequencer.as_deref();
    for _ in 0..RACE_RETRIES {
        let previous = store
            .object_state(&bucket, &key)
            .await
            .map_err(|e| e.to_string())?;
        let Some(outcome) = apply(previous.as_ref().map(|p| &p.state), &change, sequencer) else {
            // Recorded already (or older than what is): the usage stands,
            // but its evaluation may not have run.
            return Ok(Some(account));
        };
        let recorded = store
            .record_object_change(
                &account,
                &bucket,
                &key,
                previous.as_ref(),
                &outcome,
                Utc::now().timestamp(),
            )
            .await
            .map_err(|e| e.to_string())?;
        if recorded {
            return Ok(Some(account));
        }
    }
    Err(format!("object {key:?} kept changing under this record"))
}
