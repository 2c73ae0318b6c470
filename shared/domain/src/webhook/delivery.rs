//! Delivery bookkeeping: ids, what the attempt log keeps, ordering subjects.

use std::collections::BTreeSet;

use crate::events::Envelope;
use crate::idempotency::IdempotencyKey;
use crate::ids;
use crate::secret::sha256_hex;

/// How much of a receiver's response body the attempt log keeps.
pub const EXCERPT_LIMIT: usize = 4096;

const DELIVERY_HASH_CHARS: usize = 26;
use super::endpoint::REDACTED;

/// `dlv_<26 hex chars>`, derived from the event and the endpoint so that
/// duplicates of one event (delivery to the fan-out is at least once)
/// collapse into one delivery per endpoint.
///
/// Not a ULID: check ids with [`is_delivery_id`], not
/// [`crate::ids::has_prefix`] (which refuses about half of these).
pub fn delivery_id(event_id: &str, endpoint_id: &str) -> String {
    let hash = sha256_hex(&format!("{event_id}\n{endpoint_id}"));
    format!("{}_{}", ids::DELIVERY, &hash[..DELIVERY_HASH_CHARS])
}

/// The delivery of a replay (`POST /v1/events/{id}/retry`) sent with an
/// idempotency key: the same key gives the same deliveries, so a replay
/// repeated after a timeout or a partial failure sends nothing twice, while
/// replays under other keys (or none) are new deliveries.
pub fn replay_delivery_id(event_id: &str, key: &IdempotencyKey, endpoint_id: &str) -> String {
    delivery_id(
        &format!("{event_id}\nreplay\n{}", key.digest()),
        endpoint_id,
    )
}

/// Whether `id` has the shape of a delivery id, so that malformed ids can
/// be answered with 404 before any lookup: the derived form of
/// [`delivery_id`], or a random `ids::new_id(ids::DELIVERY)` (one-off
/// deliveries such as tests).
pub fn is_delivery_id(id: &str) -> bool {
    let derived = id
        .strip_prefix(ids::DELIVERY)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|hash| {
            hash.len() == DELIVERY_HASH_CHARS
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    derived || ids::has_prefix(id, ids::DELIVERY)
}

/// The request headers as the attempt log keeps them: signatures keep only
/// their version (`v1,[redacted]`, one per signature) and the values of the
/// endpoint's custom headers (often credentials) are hidden. Names in
/// `custom_header_names` are lowercase, as stored; `sent` may use any case.
pub fn redact_headers(
    sent: &[(String, String)],
    custom_header_names: &BTreeSet<String>,
) -> Vec<(String, String)> {
    sent.iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let value = if lower == "webhook-signature" {
                value
                    .split_whitespace()
                    .map(|signature| match signature.split_once(',') {
                        Some((version, _)) => format!("{version},{REDACTED}"),
                        None => REDACTED.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            } else if custom_header_names.contains(&lower) {
                REDACTED.to_owned()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

/// The start of a response body for the attempt log: at most
/// [`EXCERPT_LIMIT`] bytes of text, cut between characters, with each
/// invalid UTF-8 sequence shown as U+FFFD.
pub fn excerpt(body: &[u8]) -> String {
    let mut out = String::with_capacity(body.len().min(EXCERPT_LIMIT));
    for chunk in body.utf8_chunks() {
        if !push_within(&mut out, chunk.valid())
            || (!chunk.invalid().is_empty() && !push_within(&mut out, "\u{FFFD}"))
        {
            break;
        }
    }
    out
}

/// Appends as much of `text` as fits in [`EXCERPT_LIMIT`]; false if not all.
fn push_within(out: &mut String, text: &str) -> bool {
    let room = EXCERPT_LIMIT - out.len();
    if text.len() <= room {
        out.push_str(text);
        return true;
    }
    let mut end = room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&text[..end]);
    false
}

/// What an ordered endpoint keeps in order: the events about one bucket,
/// process or key, in the order they happened, otherwise all events of the
/// account. Events of different subjects may overtake each other.
pub fn ordering_subject(event: &Envelope) -> String {
    let data = &event.data;
    for (field, kind) in [
        ("bucket", "bucket"),
        ("process_id", "process"),
        ("key_id", "key"),
        ("conversation_id", "conversation"),
    ] {
        if let Some(value) = data.get(field).and_then(|v| v.as_str()) {
            return format!("{kind}:{value}");
        }
    }
    format!("account:{}", event.account_id)
}

/// Where an event stands in its subject's line on an ordered endpoint: by
/// when it happened (fixed-width UTC, so it sorts as a string), then by id.
pub fn ordering_position(event: &Envelope) -> String {
    format!(
        "{}#{}",
        event
            .occurred_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        event.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventType;
    use chrono::Utc;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn positions_sort_by_occurrence() {
        let at = |s: i64| chrono::DateTime::from_timestamp(1_795_521_600 + s, 5_000).unwrap();
        let event = |s: i64| {
            Envelope::new(
                EventType::KeyCreated,
                "acc_1",
                json!({"key_id": "key_1"}),
                at(s),
            )
        };
        let (early, late) = (event(9), event(10));
        assert!(ordering_position(&early) < ordering_position(&late));
        let later_by_a_year = event(365 * 24 * 3600);
        assert!(ordering_position(&late) < ordering_position(&later_by_a_year));
    }

    #[test]
    fn delivery_ids_are_stable_per_event_and_endpoint() {
        let id = delivery_id("evt_1", "wh_1");
        assert_eq!(id, delivery_id("evt_1", "wh_1"));
        assert_ne!(id, delivery_id("evt_1", "wh_2"));
        assert_ne!(id, delivery_id("evt_2", "wh_1"));
        // The separator keeps ("evt_1", "2wh") apart from ("evt_12", "wh").
        assert_ne!(delivery_id("evt_1", "2wh"), delivery_id("evt_12", "wh"));
        assert_eq!(id, format!("dlv_{}", &sha256_hex("evt_1\nwh_1")[..26]));
        assert_eq!(id.len(), 30);
        assert!(is_delivery_id(&id));
        assert!(is_delivery_id(&ids::new_id(ids::DELIVERY)));
        for bad in [
            "",
            "dlv_",
            "dlv_abc",
            &id.to_uppercase(),
            &format!("{id}0"),
            &id.replace("dlv_", "att_"),
        ] {
            assert!(!is_delivery_id(bad), "{bad}");
        }
    }

    #[test]
    fn replays_under_one_key_share_deliveries_and_no_others() {
        let key = |k: &str| IdempotencyKey::parse(k).unwrap();
        let first = replay_delivery_id("evt_1", &key("k1"), "wh_1");
        assert_eq!(first, replay_delivery_id("evt_1", &key("k1"), "wh_1"));
        assert!(is_delivery_id(&first));
        assert_ne!(first, replay_delivery_id("evt_1", &key("k2"), "wh_1"));
        assert_ne!(first, replay_delivery_id("evt_1", &key("k1"), "wh_2"));
        assert_ne!(first, replay_delivery_id("evt_2", &key("k1"), "wh_1"));
        assert_ne!(
            first,
            delivery_id("evt_1", "wh_1"),
            "not the fan-out's delivery"
        );
    }

    #[test]
    fn redaction() {
        let sent = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("webhook-id".to_owned(), "msg_1".to_owned()),
            ("Webhook-Signature".to_owned(), "v1,abc= v1,def=".to_owned()),
            ("Authorization".to_owned(), "Bearer s3cret".to_owned()),
            ("x-tenant".to_owned(), "42".to_owned()),
        ];
        let custom: BTreeSet<String> = ["authorization".to_owned(), "x-tenant".to_owned()].into();
        let redacted = redact_headers(&sent, &custom);
        let values: Vec<&str> = redacted.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            [
                "application/json",
                "msg_1",
                "v1,[redacted] v1,[redacted]",
                "[redacted]",
                "[redacted]"
            ]
        );
        assert_eq!(redacted[3].0, "Authorization");
        let unlabelled = [("webhook-signature".to_owned(), "garbage".to_owned())];
        assert_eq!(
            redact_headers(&unlabelled, &BTreeSet::new())[0].1,
            "[redacted]"
        );
    }

    #[test]
    fn excerpts() {
        assert_eq!(excerpt(b""), "");
        assert_eq!(excerpt(b"{\"ok\":true}"), "{\"ok\":true}");
        assert_eq!(excerpt(b"a\xffb"), "a\u{FFFD}b");
        let long = "x".repeat(EXCERPT_LIMIT + 10);
        assert_eq!(excerpt(long.as_bytes()), long[..EXCERPT_LIMIT]);
        // A 3-byte character straddling the limit is left out whole.
        let straddling = format!("{}€tail", "x".repeat(EXCERPT_LIMIT - 1));
        assert_eq!(
            excerpt(straddling.as_bytes()),
            "x".repeat(EXCERPT_LIMIT - 1)
        );
        // Replacement characters count towards the limit too.
        let invalid = vec![0xffu8; EXCERPT_LIMIT];
        let text = excerpt(&invalid);
        assert!(text.len() <= EXCERPT_LIMIT);
        assert_eq!(text.chars().count(), EXCERPT_LIMIT / 3);
    }

    #[test]
    fn ordering_subjects() {
        let event = |data| Envelope::new(EventType::KeyRevoked, "acc_1", data, Utc::now());
        assert_eq!(
            ordering_subject(&event(json!({"key_id": "key_1"}))),
            "key:key_1"
        );
        assert_eq!(
            ordering_subject(&event(json!({"bucket": "b1", "key_id": "k"}))),
            "bucket:b1"
        );
        assert_eq!(
            ordering_subject(&event(json!({"process_id": "p1"}))),
            "process:p1"
        );
        assert_eq!(
            ordering_subject(&event(json!({"bucket": 7}))),
            "account:acc_1"
        );
        assert_eq!(ordering_subject(&event(json!({}))), "account:acc_1");
        assert_eq!(ordering_subject(&event(json!(null))), "account:acc_1");
        for t in EventType::ALL {
            let subject =
                ordering_subject(&Envelope::new(t, "acc_1", t.example_data(), Utc::now()));
            let expected = match t {
                EventType::KeyCreated | EventType::KeyRevoked => {
                    "key:key_01j9z3k8m2n4p6q8r0s2t4v6w8"
                }
                EventType::WhatsAppMessageReceived
                | EventType::WhatsAppMessageFailed
                | EventType::WhatsAppConversationHandoff => {
                    "conversation:cv_01j9z3k8m2n4p6q8r0s2t4v6w8"
                }
                EventType::RpaProcessStatusChanged => {
                    "process:prc_01jdq5m3n4p5q6r7s8t9v0w1x2_202611"
                }
                _ => "account:acc_1",
            };
            assert_eq!(subject, expected, "{t}");
        }
    }

    proptest! {
        #[test]
        fn excerpt_is_a_bounded_prefix_of_valid_text(text in "\\PC{0,3000}") {
            let cut = excerpt(text.as_bytes());
            prop_assert!(cut.len() <= EXCERPT_LIMIT);
            prop_assert!(text.starts_with(&cut));
            if text.len() <= EXCERPT_LIMIT {
                prop_assert_eq!(cut, text);
            } else {
                prop_assert!(cut.len() > EXCERPT_LIMIT - 4);
            }
        }

        #[test]
        fn excerpt_of_short_bytes_is_lossy_text(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let cut = excerpt(&bytes);
            prop_assert_eq!(cut, String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn excerpt_never_exceeds_the_limit(bytes in proptest::collection::vec(any::<u8>(), 0..10_000)) {
            prop_assert!(excerpt(&bytes).len() <= EXCERPT_LIMIT);
        }
    }
}
