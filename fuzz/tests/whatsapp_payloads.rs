//! WhatsApp Cloud API webhook notifications as Meta POSTs them (every
//! message type, statuses with pricing and errors, change-level errors,
//! other change fields), with fields dropped, retyped, made huge or
//! unicode, the bytes damaged, or any bytes at all; and the verification
//! handshake's query.
//!
//! Property: nothing panics, neither the parser nor what the webhook does
//! next with each event (customer ids, stored content, the bot's question,
//! identity moves, delivery states). A body is either refused as not a
//! WhatsApp notification (the route's 400) or read whole: one event per
//! item of every `messages`, `statuses` and `errors` array of every
//! `messages` change, one skipped change per other field, and items Meta
//! sends as documented are read, none as unreadable. The handshake echoes
//! a challenge only for `subscribe`, the configured token and a plausible
//! challenge, never for a repeated parameter.

use nuvem_domain::whatsapp::content;
use nuvem_domain::whatsapp::handshake::{HandshakeQuery, MAX_CHALLENGE_LEN};
use nuvem_domain::whatsapp::identity::{CustomerIds, identity_move};
use nuvem_domain::whatsapp::message::MessageKind;
use nuvem_domain::whatsapp::prompt;
use nuvem_domain::whatsapp::status::{DeliveryState, fold_statuses};
use nuvem_domain::whatsapp::webhook::{Inbound, Notification, parse_notification};
use nuvem_fuzz::json::{any_json, body_bytes, deeply_nested, near};
use nuvem_fuzz::text::{any_bytes, apply_byte_edits, byte_edits, nasty_string, text};
use proptest::prelude::*;
use serde_json::{Value, json};

/// One message of each type Meta documents.
fn messages() -> Value {
    let m = |id: &str, kind: &str, body: Value| {
        let mut v = json!({
            "from": "5511987654321",
            "from_user_id": "BR.13491208655302741918",
            "id": format!("wamid.{id}"),
            "timestamp": "1795521600",
            "type": kind,
        });
        v[kind] = body;
        v
    };
    Value::Array(vec![
        m("1", "text", json!({"body": "Vocês entregam hoje? 🍕"})),
        m(
            "2",
            "image",
            json!({"id": "1479537139650973", "mime_type": "image/jpeg", "sha256": "abc=", "caption": "cardápio"}),
        ),
        m(
            "3",
            "audio",
            json!({"id": "1479", "mime_type": "audio/ogg; codecs=opus", "voice": true}),
        ),
        m(
            "4",
            "document",
            json!({"id": "1480", "filename": "nota.pdf", "mime_type": "application/pdf"}),
        ),
        m(
            "5",
            "sticker",
            json!({"id": "1481", "animated": false, "mime_type": "image/webp"}),
        ),
        m(
            "6",
            "location",
            json!({"latitude": -23.55, "longitude": -46.63, "name": "Loja", "address": "Av. Paulista, 1000"}),
        ),
        m(
            "7",
            "interactive",
            json!({"type": "button_reply", "button_reply": {"id": "sim", "title": "Sim"}}),
        ),
        m(
            "8",
            "interactive",
            json!({"type": "list_reply", "list_reply": {"id": "p1", "title": "Pizza", "description": "grande"}}),
        ),
        m(
            "9",
            "interactive",
            json!({"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{\"a\":1}"}}),
        ),
        m(
            "10",
            "button",
            json!({"payload": "PEDIDO", "text": "Quero pedir"}),
        ),
        m(
            "11",
            "reaction",
            json!({"message_id": "wamid.1", "emoji": "👍"}),
        ),
        m(
            "12",
            "contacts",
            json!([{"name": {"formatted_name": "Bia"}, "phones": [{"phone": "+55 11 91234-5678"}]}]),
        ),
        m(
            "13",
            "order",
            json!({"catalog_id": "1", "product_items": [{"product_retailer_id": "x", "quantity": 2, "item_price": 10.5, "currency": "BRL"}]}),
        ),
        m(
            "14",
            "system",
            json!({"type": "user_changed_number", "body": "User A changed from 5511987654321 to 5511912345678", "wa_id": "5511912345678"}),
        ),
        m(
            "15",
            "system",
            json!({"type": "user_changed_user_id", "body": "User changed from BR.1 to BR.2", "user_id": "BR.2"}),
        ),
        m("16", "unsupported", json!({})),
        m("17", "request_welcome", json!({})),
        {
            let mut reply = m("18", "text", json!({"body": "sobre este"}));
            reply["context"] = json!({"from": "15550783881", "id": "wamid.0", "forwarded": true, "referred_product": {"catalog_id": "1"}});
            reply["referral"] = json!({"source_url": "https://fb.me/x", "source_type": "ad"});
            reply["errors"] = json!([{"code": 131051, "title": "Unsupported message type"}]);
            reply
        },
    ])
}

fn statuses() -> Value {
    json!([
        {"id": "wamid.s1", "status": "sent", "timestamp": "1795521601", "recipient_id": "5511987654321",
         "conversation": {"id": "c1", "expiration_timestamp": "1795608000", "origin": {"type": "service"}},
         "pricing": {"billable": true, "pricing_model": "PMP", "category": "service", "type": "regular"}},
        {"id": "wamid.s1", "status": "delivered", "timestamp": 1795521602, "recipient_user_id": "BR.1"},
        {"id": "wamid.s1", "status": "read", "timestamp": "1795521603"},
        {"id": "wamid.s2", "status": "failed", "timestamp": "1795521604", "recipient_id": "5511987654321",
         "errors": [{"code": 131047, "title": "Re-engagement message", "message": "More than 24 hours", "error_data": {"details": "window closed"}, "href": "https://developers.facebook.com/docs"}],
         "biz_opaque_callback_data": "wo_1"},
        {"id": "wamid.s3", "status": "deleted", "timestamp": "1795521605"},
    ])
}

/// A notification of the documented shape: two entries, a messages change
/// with contacts, messages, statuses and errors, and another change field.
fn notification() -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                            "contacts": [
                                {"profile": {"name": "Ana", "username": "ana"}, "wa_id": "5511987654321", "user_id": "BR.13491208655302741918"},
                                {"profile": {"name": "Bia"}, "wa_id": "5511912345678"}
                            ],
                            "messages": messages(),
                            "statuses": statuses(),
                            "errors": [{"code": 131000, "title": "Something went wrong", "message": "x", "error_data": {"details": "y"}}]
                        }
                    },
                    {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
                ]
            },
            {
                "id": 102290129340399u64,
                "changes": [
                    {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "2"}, "statuses": statuses()}},
                    {"field": "message_template_status_update", "value": {}}
                ]
            }
        ]
    })
}

/// The events and skipped changes a notification must yield, counted on the
/// JSON alone.
fn expected_counts(root: &Value) -> (usize, usize) {
    let len = |v: Option<&Value>| v.and_then(Value::as_array).map_or(0, Vec::len);
    let (mut events, mut skipped) = (0, 0);
    for entry in root["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            match change["field"].as_str() {
                Some("messages") => {
                    let value = &change["value"];
                    events += ["messages", "statuses", "errors"]
                        .iter()
                        .map(|k| len(value.get(*k)))
                        .sum::<usize>();
                }
                Some(_) => skipped += 1,
                None => {}
            }
        }
    }
    (events, skipped)
}

/// Runs what the webhook does with each event after parsing, all of it pure.
fn act_on(notification: &Notification) {
    let mut statuses = Vec::new();
    for event in &notification.events {
        match event {
            Inbound::Message {
                contact, message, ..
            } => {
                let ids = CustomerIds::of_message(message, contact.as_ref());
                let _ = (ids.key(), ids.link(), ids.reply_to());
                let stored = content::inbound(message);
                let _ = prompt::question(&stored);
                let _ = prompt::text_of(&stored);
                let _ = (
                    identity_move(message),
                    message.bot_text(),
                    message.sent_at(),
                );
                let _ = serde_json::to_string(&stored).expect("content serialises");
            }
            Inbound::Status { status, .. } => {
                let _ = CustomerIds::of_status(status).key();
                let _ = DeliveryState::from_update(status).is_failed();
                statuses.push(status.clone());
            }
            Inbound::Error { error, .. } => {
                let _ = serde_json::to_string(error).expect("errors serialise");
            }
            Inbound::Unreadable { .. } => {}
        }
    }
    let _ = fold_statuses(&statuses);
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        10 => near(notification(), 5).prop_flat_map(|v| body_bytes(&v)),
        2 => (any_json(), any::<bool>()).prop_map(|(v, wrap)| {
            let v = if wrap { json!({"object": "whatsapp_business_account", "entry": [v]}) } else { v };
            serde_json::to_vec(&v).unwrap()
        }),
        2 => byte_edits(4).prop_map(|edits| {
            apply_byte_edits(serde_json::to_vec(&notification()).unwrap(), &edits)
        }),
        1 => (100..300usize, any::<bool>()).prop_map(|(d, o)| deeply_nested(d, o).into_bytes()),
        1 => any_bytes(100),
    ]
}

/// Query pairs of a handshake: the three parameters with the right or
/// wrong values, repeated sometimes, among others.
fn handshake_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        4 => proptest::sample::select(vec!["hub.mode", "hub.verify_token", "hub.challenge"]).prop_map(str::to_owned),
        1 => text(10),
    ];
    let value = prop_oneof![
        3 => proptest::sample::select(vec!["subscribe", "Subscribe", "token-123", "token-1234", "1158201444", "", "a b", "<x>", "ä"]).prop_map(str::to_owned),
        1 => "[0-9A-Za-z._~-]{1,300}",
        1 => nasty_string(),
    ];
    proptest::collection::vec((name, value), 0..6)
}

#[test]
fn documented_notifications_are_read_whole() {
    for drop_second_entry in [false, true] {
        let mut v = notification();
        if drop_second_entry {
            v["entry"].as_array_mut().unwrap().pop();
        }
        let parsed = parse_notification(&serde_json::to_vec(&v).unwrap());
        assert!(parsed.is_ok(), "{parsed:?}");
        let parsed = parsed.unwrap();
        let (events, skipped) = expected_counts(&v);
        assert_eq!(parsed.events.len(), events);
        assert_eq!(parsed.skipped.len(), skipped);
        for event in &parsed.events {
            match event {
                Inbound::Unreadable { raw, .. } => panic!("unreadable: {raw}"),
                Inbound::Message { message, .. } => assert!(
                    !matches!(message.kind, MessageKind::Unsupported { .. })
                        || message.id == "wamid.16",
                    "{:?}",
                    message
                ),
                _ => {}
            }
        }
        act_on(&parsed);
    }
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn any_body_is_read_whole_or_refused(body in body()) {
        match parse_notification(&body) {
            Ok(notification) => {
                let root: Value = serde_json::from_slice(&body).expect("a notification is JSON");
                let (events, skipped) = expected_counts(&root);
                prop_assert_eq!(notification.events.len(), events);
                prop_assert_eq!(notification.skipped.len(), skipped);
                act_on(&notification);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn the_handshake_echoes_only_a_plausible_challenge_for_our_token(
        pairs in handshake_pairs(),
        configured in prop_oneof![Just("token-123".to_owned()), Just(String::new()), text(10)],
    ) {
        let query = HandshakeQuery::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let count = |name: &str| pairs.iter().filter(|(n, _)| n == name).count();
        if let Some(challenge) = query.answer(&configured) {
            for name in ["hub.mode", "hub.verify_token", "hub.challenge"] {
                prop_assert_eq!(count(name), 1, "{}", name);
            }
            let value = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
            prop_assert_eq!(value("hub.mode"), Some("subscribe"));
            prop_assert!(!configured.is_empty());
            prop_assert_eq!(value("hub.verify_token"), Some(configured.as_str()));
            prop_assert_eq!(Some(challenge), value("hub.challenge"));
            prop_assert!((1..=MAX_CHALLENGE_LEN).contains(&challenge.len()));
            prop_assert!(challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
        }
    }
}
