//! SQS event sources: long-poll a queue, invoke the function with the
//! batch, delete what succeeded. What fails becomes visible again after the
//! queue's visibility timeout; the emulator's redrive policy moves it to the
//! dead-letter queue after `maxReceiveCount` receives. Tests may shorten
//! that wait for batches whose invocation failed for want of a working
//! process ([`Consumer::infra_failure_visibility`]).

use std::collections::HashSet;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};
use base64::Engine;
use nuvem_testkit::{Queue, REGION};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::host::{Host, InvokeError};
use crate::log::Log;

/// One SQS event source of a function.
#[derive(Clone, Debug)]
pub struct Consumer {
    pub function: String,
    pub queue: Queue,
    /// 1..=10.
    pub batch_size: i32,
    pub report_batch_item_failures: bool,
    /// Long-poll wait, 0..=20 s.
    pub wait_secs: i32,
    /// Seconds after which a batch whose invocation failed for an
    /// infrastructure reason (timeout, crash, no process) is visible again;
    /// `None` leaves it to the queue's visibility timeout, as Lambda does.
    pub infra_failure_visibility: Option<i32>,
    /// Seconds after which any message the invocation did not process (a
    /// reported item failure, or the batch of a failed invocation) is
    /// visible again the first time, doubling with each receive, within the
    /// queue's visibility timeout; `None` leaves it to that timeout.
    pub failure_visibility: Option<i32>,
    /// The queue's visibility timeout, in seconds.
    pub queue_visibility: i32,
}

/// SQS's longest visibility timeout (12 hours), in seconds.
pub const MAX_VISIBILITY_SECS: u64 = 12 * 60 * 60;

pub fn spawn(
    consumer: Consumer,
    host: Host,
    sqs: aws_sdk_sqs::Client,
    log: Log,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = poll_once(&consumer, &host, &sqs, &log) => {}
            }
        }
    })
}

async fn poll_once(c: &Consumer, host: &Host, sqs: &aws_sdk_sqs::Client, log: &Log) {
    let received = sqs
        .receive_message()
        .queue_url(&c.queue.url)
        .max_number_of_messages(c.batch_size.clamp(1, 10))
        .wait_time_seconds(c.wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await;
    let messages = match received {
        Ok(out) => out.messages.unwrap_or_default(),
        Err(e) => {
            log.runner(&format!(
                "{} ← {}: ReceiveMessage failed: {}",
                c.function,
                c.queue.name,
                aws_sdk_sqs::error::DisplayErrorContext(e)
            ));
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            return;
        }
    };
    if messages.is_empty() {
        return;
    }
    let event = sqs_event(&c.queue, &messages);
    let ids: Vec<String> = messages
        .iter()
        .map(|m| m.message_id().unwrap_or_default().to_owned())
        .collect();
    let failed: HashSet<String> = match host.invoke(event.to_string().into_bytes()).await {
        Ok(bytes) if c.report_batch_item_failures => match batch_item_failures(&bytes, &ids) {
            Ok(failed) => failed,
            Err(why) => {
                log.runner(&format!(
                    "{}: invalid batch response ({why}): the whole batch fails",
                    c.function
                ));
                ids.iter().cloned().collect()
            }
        },
        Ok(_) => HashSet::new(),
        Err(e) => {
            log.runner(&format!(
                "{} ← {}: {e}: the batch stays in the queue",
                c.function, c.queue.name
            ));
            if let Some(secs) = c.infra_failure_visibility
                && is_infrastructure(&e)
                && c.failure_visibility.is_none()
            {
                make_visible(c, &messages, secs, sqs, log).await;
            }
            ids.iter().cloned().collect()
        }
    };
    if let Some(base) = c.failure_visibility
        && !failed.is_empty()
    {
        for m in messages
            .iter()
            .filter(|m| failed.contains(m.message_id().unwrap_or_default()))
        {
            let secs = backoff(base, receive_count(m), c.queue_visibility);
            make_visible(c, std::slice::from_ref(m), secs, sqs, log).await;
        }
    }
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !failed.contains(m.message_id().unwrap_or_default()))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    match sqs
        .delete_message_batch()
        .queue_url(&c.queue.url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) if !out.failed.is_empty() => {
            log.runner(&format!(
                "{}: could not delete {} messages: {:?}",
                c.queue.name,
                out.failed.len(),
                out.failed
            ));
        }
        Ok(_) => {}
        Err(e) => log.runner(&format!(
            "{}: DeleteMessageBatch failed: {}",
            c.queue.name,
            aws_sdk_sqs::error::DisplayErrorContext(e)
        )),
    }
}

/// A failure of the process rather than of the handler's code.
fn is_infrastructure(e: &InvokeError) -> bool {
    matches!(
        e,
        InvokeError::Timeout(_) | InvokeError::Crashed(_) | InvokeError::Unavailable(_)
    )
}

/// `base` seconds doubled for each receive after the first, at most `cap`:
/// a message's receives spread over longer than a consumer's lease on it
/// (a claim of a crashed holder), as the queue's own timeout spreads them.
fn backoff(base: i32, receives: u32, cap: i32) -> i32 {
    let doubled = i64::from(base.max(0)) << receives.saturating_sub(1).min(20);
    doubled.min(i64::from(cap.max(0))) as i32
}

/// How many times SQS has handed the message out (1 the first time).
fn receive_count(m: &Message) -> u32 {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Shortens the invisibility of a received batch to `secs`.
async fn make_visible(
    c: &Consumer,
    messages: &[Message],
    secs: i32,
    sqs: &aws_sdk_sqs::Client,
    log: &Log,
) {
    let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .visibility_timeout(secs)
                .build()
                .ok()
        })
        .collect();
    let changed = sqs
        .change_message_visibility_batch()
        .queue_url(&c.queue.url)
        .set_entries(Some(entries))
        .send()
        .await;
    match changed {
        Ok(out) if !out.failed.is_empty() => log.runner(&format!(
            "{}: could not make {} messages visible again: {:?}",
            c.queue.name,
            out.failed.len(),
            out.failed
        )),
        Ok(_) => log.runner(&format!(
            "{}: the batch is visible again in {secs} s",
            c.queue.name
        )),
        Err(e) => log.runner(&format!(
            "{}: ChangeMessageVisibilityBatch failed: {}",
            c.queue.name,
            aws_sdk_sqs::error::DisplayErrorContext(e)
        )),
    }
}

/// The ids a function reported as failed. An identifier that is missing,
/// empty or not in the batch fails the whole batch (as Lambda does).
pub fn batch_item_failures(bytes: &[u8], ids: &[String]) -> Result<HashSet<String>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let list = match v.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(HashSet::new()),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(format!("batchItemFailures is {other}")),
    };
    let mut failed = HashSet::new();
    for item in list {
        let id = item["itemIdentifier"].as_str().unwrap_or_default();
        if id.is_empty() || !ids.iter().any(|i| i == id) {
            return Err(format!(
                "unknown itemIdentifier {:?}",
                item["itemIdentifier"]
            ));
        }
        failed.insert(id.to_owned());
    }
    Ok(failed)
}

/// The SQS event Lambda delivers for a batch.
pub fn sqs_event(queue: &Queue, messages: &[Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone()))).collect())
                .unwrap_or_default();
            let message_attributes: Map<String, Value> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            let mut attr = json!({
                                "stringListValues": v.string_list_values(),
                                "binaryListValues": v.binary_list_values().iter()
                                    .map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
                                    .collect::<Vec<_>>(),
                                "dataType": v.data_type(),
                            });
                            if let Some(s) = v.string_value() {
                                attr["stringValue"] = json!(s);
                            }
                            if let Some(b) = v.binary_value() {
                                attr["binaryValue"] = json!(base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
                            }
                            (k.clone(), attr)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut record = json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue.arn,
                "awsRegion": REGION,
            });
            if let Some(md5) = m.md5_of_message_attributes() {
                record["md5OfMessageAttributes"] = json!(md5);
            }
            record
        })
        .collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_messages_come_back_later_with_each_receive() {
        let waits: Vec<i32> = (1..=6).map(|n| backoff(5, n, 180)).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160]);
        // Five receives span longer than a 60 s lease, as 180 s each do.
        assert!(waits[..4].iter().sum::<i32>() > 60);
        assert_eq!(backoff(5, 9, 180), 180, "never past the queue's own");
        assert_eq!(backoff(5, u32::MAX, 180), 180);
        assert_eq!(backoff(5, 0, 180), 5);
    }

    #[test]
    fn reads_batch_item_failures() {
        let ids = vec!["a".to_owned(), "b".to_owned()];
        assert!(batch_item_failures(b"null", &ids).unwrap().is_empty());
        assert!(
            batch_item_failures(br#"{"batchItemFailures":[]}"#, &ids)
                .unwrap()
                .is_empty()
        );
        let f = batch_item_failures(br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &ids)
            .unwrap();
        assert_eq!(f, HashSet::from(["b".to_owned()]));
        assert!(
            batch_item_failures(br#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#, &ids)
                .is_err()
        );
        assert!(
            batch_item_failures(br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, &ids).is_err()
        );
    }
}
