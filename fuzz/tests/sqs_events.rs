//! SQS events as Lambda hands them to the queue consumers, and the body
//! of each record as its consumer reads it: event envelopes (`fanout`),
//! delivery tasks (`webhook-delivery`), bot and outbound jobs
//! (`whatsapp-bot`, `whatsapp-outbound`) and RPA jobs (`rpa-worker`); each
//! from its real shape with fields dropped, retyped, made huge or unicode,
//! damaged bytes, or anything at all.
//!
//! Property: nothing panics, neither the event nor the body parsers nor
//! the pure work a consumer does next with a parsed message (ordering
//! keys, the emails `fanout` builds from an event's data). A body either
//! parses into a message that serialises back to itself, or is an `Err`
//! (see the report for what each consumer then does with it); a message
//! as its producer writes it always parses.

use aws_lambda_events::sqs::SqsEvent;
use chrono::{DateTime, TimeZone, Utc};
use nuvem_aws::deliveries::DeliveryTask;
use nuvem_aws::rpa_jobs::RpaJob;
use nuvem_aws::whatsapp_jobs::{BotJob, OutboundJob};
use nuvem_domain::account::Locale;
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::mail;
use nuvem_domain::rpa::export::ExportedFile;
use nuvem_domain::rpa::process::ProcessStatus;
use nuvem_domain::rpa::report::MonthlyReport;
use nuvem_domain::webhook::delivery::{ordering_position, ordering_subject};
use nuvem_fuzz::json::{any_json, body_bytes, near};
use nuvem_fuzz::text::{any_bytes, apply_byte_edits, byte_edits, nasty_string};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn envelope(kind: &str, data: Value) -> Value {
    json!({
        "id": "evt_01j9z3k8m2n4p6q8r0s2t4v6w8",
        "type": kind,
        "account_id": "acc_01j9z3k8m2n4p6q8r0s2t4v6w8",
        "occurred_at": "2026-11-24T12:00:00.123456Z",
        "data": data
    })
}

/// Envelopes of the types `fanout` turns into emails, with their data.
fn envelopes() -> Vec<Value> {
    vec![
        envelope(
            "account.approved",
            json!({"quota_gb": 50.0, "activation_expires_at": "2026-12-01T12:00:00Z"}),
        ),
        envelope(
            "quota.threshold_crossed",
            json!({"level_percent": 90, "used_bytes": 9_000_000_000u64, "quota_bytes": 10_000_000_000u64, "biggest_buckets": [{"name": "backups", "used_bytes": 8_000_000_000u64}]}),
        ),
        envelope(
            "quota.writes_blocked",
            json!({"used_bytes": 10, "quota_bytes": 10, "bucket": "backups"}),
        ),
        envelope(
            "webhook.endpoint_disabled",
            json!({"url": "https://hooks.example.com/x", "reason": "gone", "endpoint_id": "wh_1"}),
        ),
        envelope(
            "rpa.process.status_changed",
            json!({"process_id": "prc_1", "legal_name": "Padaria", "carrier": "VIVO", "month": "2026-11", "from": "awaiting_download", "to": "awaiting_approval"}),
        ),
        envelope(
            "rpa.schedule.paused",
            json!({"name": "Downloads", "consecutive_failures": 10, "last_error": "login refused"}),
        ),
        envelope(
            "rpa.export.completed",
            json!({"files": [{"name": "clients.csv", "rows": 3, "bytes": 120, "truncated": false, "url": "https://s3.example/x"}], "expires_at": "2026-11-25T12:00:00Z"}),
        ),
        envelope(
            "custom.order.paid",
            json!({"order_id": "PED-1042", "amount_brl": "199.90", "conversation_id": "cv_1"}),
        ),
    ]
}

fn delivery_task(event: Value) -> Value {
    json!({
        "delivery_id": "dlv_9f1c2e",
        "endpoint_id": "wh_01j9z3k8m2n4p6q8r0s2t4v6w8",
        "attempt": 3,
        "not_before": "2026-11-24T13:00:00Z",
        "event": event
    })
}

fn bot_job() -> Value {
    json!({
        "account_id": "acc_01j9z3k8m2n4p6q8r0s2t4v6w8",
        "store_id": "st_01j9z3k8m2n4p6q8r0s2t4v6w8",
        "conversation_id": "cv_01j9z3k8m2n4p6q8r0s2t4v6w8",
        "phone_number_id": "106540352242922",
        "wamid": "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA="
    })
}

fn outbound_job() -> Value {
    json!({"account_id": "acc_01j9z3k8m2n4p6q8r0s2t4v6w8", "outbound_id": "wo_01j9z3k8m2n4p6q8r0s2t4v6w8", "attempt": 2})
}

fn rpa_job() -> Value {
    json!({"account_id": "acc_01j9z3k8m2n4p6q8r0s2t4v6w8", "process_id": "prc_01j9z3k8m2n4p6q8r0s2t4v6w8", "execution_id": "exe_01j9z3k8m2n4p6q8r0s2t4v6w8", "version": 7})
}

/// Which consumer reads a body.
#[derive(Debug, Clone, Copy)]
enum Queue {
    Events,
    Deliveries,
    Bot,
    Outbound,
    Rpa,
}

fn base(queue: Queue, i: usize) -> Value {
    let envelopes = envelopes();
    let event = envelopes[i % envelopes.len()].clone();
    match queue {
        Queue::Events => event,
        Queue::Deliveries => delivery_task(event),
        Queue::Bot => bot_job(),
        Queue::Outbound => outbound_job(),
        Queue::Rpa => rpa_job(),
    }
}

fn queue() -> impl Strategy<Value = Queue> {
    proptest::sample::select(vec![
        Queue::Events,
        Queue::Deliveries,
        Queue::Bot,
        Queue::Outbound,
        Queue::Rpa,
    ])
}

/// A body for `queue`: near its real shape, damaged, or anything.
fn body(queue: Queue) -> impl Strategy<Value = String> {
    let base_text = move |i| serde_json::to_vec(&base(queue, i)).unwrap();
    prop_oneof![
        8 => (0..8usize).prop_flat_map(move |i| near(base(queue, i), 4)).prop_flat_map(|v| body_bytes(&v)),
        2 => (0..8usize, byte_edits(3)).prop_map(move |(i, edits)| apply_byte_edits(base_text(i), &edits)),
        1 => any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => any_bytes(60),
    ]
    // SQS bodies are text.
    .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Parses `body` as `T`; a message that parses must serialise back to an
/// equal message.
fn read<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    body: &str,
) -> Result<Option<T>, TestCaseError> {
    match serde_json::from_str::<T>(body) {
        Ok(message) => {
            let again = serde_json::to_string(&message).expect("a message serialises");
            let back = serde_json::from_str::<T>(&again);
            prop_assert_eq!(back.as_ref().ok(), Some(&message), "{}", again);
            Ok(Some(message))
        }
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            Ok(None)
        }
    }
}

/// What `fanout` builds from an event, all of it pure: the ordering keys
/// and the email of its type, from its data as `fanout` reads it.
fn act_on_event(event: &Envelope) {
    let _ = (ordering_subject(event), ordering_position(event));
    let Some(kind) = event.event_type.known() else {
        return;
    };
    let data = &event.data;
    let text = |name: &str| data[name].as_str().unwrap_or_default();
    let number = |name: &str| data[name].as_u64().unwrap_or_default();
    for locale in [Locale::PtBr, Locale::En] {
        let org = "Padaria Pão Quente";
        let _ = match kind {
            EventType::AccountApproved | EventType::AccountActivationReissued => {
                let expires_at = text("activation_expires_at")
                    .parse::<DateTime<Utc>>()
                    .unwrap_or(event.occurred_at);
                Some(mail::activation_email(
                    locale,
                    org,
                    "https://x/activate?token=t",
                    expires_at,
                ))
            }
            EventType::QuotaThresholdCrossed => {
                u8::try_from(number("level_percent")).ok().map(|level| {
                    let biggest: Vec<(String, u64)> = data["biggest_buckets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|b| {
                            Some((b["name"].as_str()?.to_owned(), b["used_bytes"].as_u64()?))
                        })
                        .collect();
                    mail::quota_email(
                        locale,
                        org,
                        level,
                        number("used_bytes"),
                        number("quota_bytes"),
                        &biggest,
                    )
                })
            }
            EventType::QuotaWritesBlocked | EventType::QuotaWritesRestored => {
                Some(mail::writes_blocked_email(
                    locale,
                    org,
                    kind == EventType::QuotaWritesBlocked,
                    number("used_bytes"),
                    number("quota_bytes"),
                ))
            }
            EventType::WebhookEndpointDisabled => Some(mail::webhook_disabled_email(
                locale,
                org,
                text("url"),
                data["reason"] == "gone",
            )),
            EventType::RpaProcessStatusChanged => {
                text("to").parse::<ProcessStatus>().ok().map(|status| {
                    mail::rpa_process_email(
                        locale,
                        org,
                        text("legal_name"),
                        text("carrier"),
                        text("month"),
                        status,
                    )
                })
            }
            EventType::RpaSchedulePaused => Some(mail::rpa_schedule_paused_email(
                locale,
                org,
                text("name"),
                number("consecutive_failures"),
                text("last_error"),
            )),
            EventType::RpaReportGenerated => serde_json::from_value::<MonthlyReport>(data.clone())
                .ok()
                .map(|report| mail::rpa_report_email(locale, org, &report)),
            EventType::RpaExportCompleted => {
                let files = serde_json::from_value::<Vec<ExportedFile>>(data["files"].clone());
                let expires = data["expires_at"]
                    .as_str()
                    .and_then(|s| s.parse::<DateTime<Utc>>().ok());
                match (files, expires) {
                    (Ok(files), Some(expires)) => {
                        Some(mail::rpa_export_email(locale, org, &files, expires))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
    }
}

/// An SQS event as Lambda sends it, with these bodies.
fn sqs_event(bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("2e1424d4-f796-459a-8184-9c92662be6d{i}"),
                "receiptHandle": "AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHq...",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795521600000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1795521600001"
                },
                "messageAttributes": {"activation_token": {"stringValue": "nvm_at_x", "dataType": "String"}},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:sa-east-1:123456789012:nuvem-EventsQueue",
                "awsRegion": "sa-east-1"
            })
        })
        .collect();
    json!({"Records": records})
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn bodies_parse_into_messages_or_errors((queue, body) in queue().prop_flat_map(|q| (Just(q), body(q)))) {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        match queue {
            Queue::Events => {
                if let Some(event) = read::<Envelope>(&body)? {
                    act_on_event(&event);
                }
            }
            Queue::Deliveries => {
                if let Some(task) = read::<DeliveryTask>(&body)? {
                    let _ = ordering_position(&task.event);
                    // `webhook-delivery` compares the due time with now plus
                    // some slack, and waits the difference.
                    if let Some(due) = task.not_before {
                        let _ = (due > now + chrono::Duration::seconds(5), due - now);
                    }
                    act_on_event(&task.event);
                }
            }
            Queue::Bot => {
                read::<BotJob>(&body)?;
            }
            Queue::Outbound => {
                read::<OutboundJob>(&body)?;
            }
            Queue::Rpa => {
                read::<RpaJob>(&body)?;
            }
        }
    }

    #[test]
    fn sqs_events_deserialise_or_fail_cleanly(
        bodies in proptest::collection::vec(queue().prop_flat_map(body), 0..4),
        edits in nuvem_fuzz::json::edits(3),
        raw in prop_oneof![3 => Just(None), 1 => nasty_string().prop_map(Some)],
    ) {
        let event = nuvem_fuzz::json::apply_edits(sqs_event(&bodies), &edits);
        let text = raw.unwrap_or_else(|| event.to_string());
        if let Ok(parsed) = serde_json::from_str::<SqsEvent>(&text) {
            for record in &parsed.records {
                let body = record.body.as_deref().unwrap_or("");
                let _ = serde_json::from_str::<Envelope>(body);
                let _ = record.message_attributes.get("activation_token").and_then(|a| a.string_value.as_deref());
            }
        }
        if edits.is_empty() {
            let parsed = serde_json::from_str::<SqsEvent>(&event.to_string());
            prop_assert!(parsed.is_ok(), "{:?}", parsed);
            let parsed = parsed.unwrap();
            prop_assert_eq!(parsed.records.len(), bodies.len());
            for (record, body) in parsed.records.iter().zip(&bodies) {
                prop_assert_eq!(record.body.as_deref(), Some(body.as_str()));
            }
        }
    }
}

#[test]
fn every_message_as_its_producer_writes_it_parses() {
    for i in 0..envelopes().len() {
        let event: Envelope = serde_json::from_value(base(Queue::Events, i)).unwrap();
        act_on_event(&event);
        let task: DeliveryTask = serde_json::from_value(base(Queue::Deliveries, i)).unwrap();
        assert_eq!(task.event, event);
    }
    serde_json::from_value::<BotJob>(bot_job()).unwrap();
    serde_json::from_value::<OutboundJob>(outbound_job()).unwrap();
    serde_json::from_value::<RpaJob>(rpa_job()).unwrap();
}
