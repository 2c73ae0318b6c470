//! S3 event notifications as the S3 events and invoice upload queues carry
//! them (and as S3-compatible servers write them): records of every event
//! family with keys URL-encoded the way S3 encodes them, sizes and
//! sequencers; `s3:TestEvent`; damaged or arbitrary JSON.
//!
//! Property: nothing panics, neither the lenient reader, nor
//! `aws_lambda_events`' own `S3Event`, nor what the consumers do next
//! (key decoding, staging keys, the usage bookkeeping of each record). A
//! body is a test event exactly when its `Event` says so, otherwise a
//! notification with all its records or an error (the consumer's failed
//! record, see the report). Keys decode back to what was encoded, and a
//! malformed escape is an error at its own offset; sequencers are totally
//! ordered; the usage deltas of a stream of records add up to the bytes
//! and objects its final states count.

use std::cmp::Ordering;
use std::collections::HashMap;

use aws_lambda_events::s3::S3Event;
use nuvem_domain::rpa::upload::parse_staging_key;
use nuvem_domain::s3_event::{KeyDecodeError, Notification, decode_key, sequencer_cmp};
use nuvem_domain::usage::{Classified, ObjectState, apply, classify};
use nuvem_fuzz::json::{any_json, body_bytes, near};
use nuvem_fuzz::text::{any_bytes, any_char, nasty_string};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Form-encodes `key` as S3 does in notifications: `+` for a space, `%XX`
/// for every byte but unreserved ASCII and `/` (in either hex case).
fn encode(key: &str, upper: bool) -> String {
    key.bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b if b.is_ascii_alphanumeric() || b"-_.~/*".contains(&b) => char::from(b).to_string(),
            b if upper => format!("%{b:02X}"),
            b => format!("%{b:02x}"),
        })
        .collect()
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "(uploads|checked|backups)/[a-z0-9_]{1,12}/[a-z0-9_]{1,12}/[a-z0-9]{1,10}\\.pdf",
        3 => proptest::collection::vec(any_char(), 0..30).prop_map(String::from_iter),
        1 => nasty_string(),
    ]
}

fn event_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "ObjectCreated:Put",
            "ObjectCreated:Post",
            "ObjectCreated:Copy",
            "ObjectCreated:CompleteMultipartUpload",
            "ObjectRemoved:Delete",
            "ObjectRemoved:DeleteMarkerCreated",
            "LifecycleExpiration:Delete",
            "LifecycleExpiration:DeleteMarkerCreated",
            "ObjectRestore:Completed",
            "Replication:OperationFailedReplication",
            "ObjectTagging:Put",
            "ObjectAcl:Put",
            "LifecycleTransition",
            "IntelligentTiering",
            "s3:ObjectCreated:Put",
            "s3:TestEvent",
            "TestEvent",
            "ObjectCreated:",
            "",
            "objectcreated:put",
        ])
        .prop_map(str::to_owned),
        nasty_string(),
    ]
}

fn sequencer() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        4 => "[0-9A-F]{16,20}",
        1 => "[0-9a-fA-F]{0,24}",
        1 => nasty_string(),
    ])
}

/// A record of the documented shape.
fn record() -> impl Strategy<Value = Value> {
    (event_name(), key(), any::<bool>(), proptest::option::of(0u64..1 << 40), sequencer(), "[a-z0-9.-]{3,20}")
        .prop_map(|(name, key, upper, size, sequencer, bucket)| {
            let mut object = json!({"key": encode(&key, upper), "eTag": "d41d8cd98f00b204e9800998ecf8427e"});
            if let Some(size) = size {
                object["size"] = json!(size);
            }
            if let Some(s) = sequencer {
                object["sequencer"] = json!(s);
            }
            json!({
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "sa-east-1",
                "eventTime": "2026-11-24T12:00:00.000Z",
                "eventName": name,
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.10"},
                "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "nuvem-usage",
                    "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": format!("arn:aws:s3:::{bucket}")},
                    "object": object
                }
            })
        })
}

fn notification() -> impl Strategy<Value = Value> {
    proptest::collection::vec(record(), 0..5).prop_map(|records| json!({"Records": records}))
}

fn body() -> impl Strategy<Value = String> {
    let test_event = json!({
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-24T12:00:00.000Z",
        "Bucket": "nuvem-t-example0-dados",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"
    });
    prop_oneof![
        6 => notification().prop_flat_map(|n| near(n, 4)).prop_flat_map(|v| body_bytes(&v)),
        1 => near(test_event, 2).prop_flat_map(|v| body_bytes(&v)),
        1 => any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => any_bytes(80),
    ]
    .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn notifications_are_read_whole_or_refused(body in body()) {
        let value: Option<Value> = serde_json::from_str(&body).ok();
        let is_test = value.as_ref().and_then(|v| v.get("Event")).and_then(Value::as_str) == Some("s3:TestEvent");
        // The SDK's own type must not panic either (its verdict may differ:
        // it wants fields other servers leave out).
        let _ = serde_json::from_str::<S3Event>(&body);
        match Notification::parse(&body) {
            Ok(None) => prop_assert!(is_test),
            Ok(Some(notification)) => {
                prop_assert!(!is_test);
                let records = value.as_ref().and_then(|v| v["Records"].as_array()).map_or(0, Vec::len);
                prop_assert_eq!(notification.records.len(), records);
                // What the consumers do with each record, minus the store.
                let mut states: HashMap<(String, String), ObjectState> = HashMap::new();
                let (mut bytes, mut objects) = (0i128, 0i128);
                let sizes_fit = notification.records.iter().all(|r| r.s3.object.size.is_none_or(|s| s < 1 << 50));
                for record in &notification.records {
                    let Ok(key) = decode_key(&record.s3.object.key) else { continue };
                    let _ = parse_staging_key(&key);
                    let Classified::Apply(change) = classify(&record.event_name, record.s3.object.size) else { continue };
                    let slot = (record.s3.bucket.name.clone(), key);
                    if let Some(outcome) = apply(states.get(&slot), &change, record.s3.object.sequencer.as_deref()) {
                        bytes += i128::from(outcome.bytes_delta);
                        objects += i128::from(outcome.objects_delta);
                        states.insert(slot, outcome.new_state);
                    }
                }
                if sizes_fit {
                    let live = states.values().filter(|s| s.live);
                    prop_assert_eq!(bytes, live.clone().map(|s| i128::from(s.size)).sum::<i128>());
                    prop_assert_eq!(objects, live.count() as i128);
                }
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn keys_decode_back_to_what_was_encoded(key in key(), upper: bool) {
        prop_assert_eq!(decode_key(&encode(&key, upper)), Ok(key.clone()));
        // A key that needs no encoding decodes to itself.
        if !key.contains(['+', '%']) {
            prop_assert_eq!(decode_key(&key), Ok(key));
        }
    }

    #[test]
    fn malformed_keys_are_errors_at_their_escape(raw in prop_oneof![
        "[a-z%+0-9A-Fg-z]{0,12}",
        nasty_string(),
        "([a-z]|%[0-9A-Fa-f]{2}){0,6}%[0-9A-Za-z]{0,1}",
    ]) {
        match decode_key(&raw) {
            Ok(decoded) => prop_assert!(decoded.len() <= raw.len()),
            Err(KeyDecodeError::InvalidEscape { at }) => {
                prop_assert_eq!(raw.as_bytes().get(at), Some(&b'%'));
                let hex = |i: usize| raw.as_bytes().get(i).is_some_and(u8::is_ascii_hexdigit);
                prop_assert!(!(hex(at + 1) && hex(at + 2)));
            }
            Err(KeyDecodeError::InvalidUtf8) => prop_assert!(raw.contains('%')),
        }
    }

    #[test]
    fn sequencers_are_totally_ordered(
        a in "[0-9A-Fa-f]{0,20}",
        b in "[0-9A-Fa-f]{0,20}",
        c in prop_oneof!["[0-9A-Fa-f]{0,20}", nasty_string()],
        zeros in 0..4usize,
    ) {
        prop_assert_eq!(sequencer_cmp(&a, &a), Ordering::Equal);
        prop_assert_eq!(sequencer_cmp(&a, &b), sequencer_cmp(&b, &a).reverse());
        let padded = format!("{a}{}", "0".repeat(zeros));
        prop_assert_eq!(sequencer_cmp(&a, &padded), Ordering::Equal);
        let (ab, bc, ac) = (sequencer_cmp(&a, &b), sequencer_cmp(&b, &c), sequencer_cmp(&a, &c));
        if ab != Ordering::Greater && bc != Ordering::Greater {
            prop_assert_ne!(ac, Ordering::Greater, "{:?} {:?} {:?}", a, b, c);
        }
        if a.len() == b.len() {
            prop_assert_eq!(ab, a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()));
        }
    }
}
