//! Answers of the other outside APIs: Meta's Graph API error bodies (sent
//! messages, number checks) and the chat completion API the WhatsApp bot
//! asks, with any status, from their documented shapes with fields
//! dropped, retyped, made huge or unicode, damaged bytes, or anything.
//!
//! Property: nothing panics. A Graph error body is read leniently (only
//! `code` is required) and whatever is read leads to one decision (retry,
//! give up, stop the number) and a bounded status message; a chat answer
//! is a trimmed, non-empty reply only for a 2xx, otherwise a retryable
//! failure exactly for 408, 429 and 5xx, a fatal one for the other
//! statuses, and an invalid answer for a 2xx without a usable reply.

use chrono::{TimeZone, Utc};
use nuvem_aws::chat::{ChatFailure, judge_answer};
use nuvem_domain::whatsapp::graph_error::{
    GraphError, GraphFailure, MAX_SEND_ATTEMPTS, SendStep, classify, next_step, number_status,
    status_after_check,
};
use nuvem_domain::whatsapp::prompt::{MAX_REPLY_CHARS, reply_text};
use nuvem_domain::whatsapp::store::{MAX_STATUS_MESSAGE_CHARS, NumberStatus};
use nuvem_fuzz::json::{any_json, body_bytes, near};
use nuvem_fuzz::text::{any_bytes, apply_byte_edits, byte_edits, nasty_string};
use proptest::prelude::*;
use serde_json::{Value, json};

fn graph_errors() -> Vec<Value> {
    vec![
        json!({"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException", "code": 131047,
            "error_subcode": 2494010, "error_data": {"messaging_product": "whatsapp", "details": "More than 24 hours"},
            "fbtrace_id": "AbCdEf"}}),
        json!({"error": {"message": "(#4) Application request limit reached", "type": "OAuthException", "code": 4, "is_transient": true}}),
        json!({"error": {"message": "Object does not exist", "code": 100, "error_subcode": 33, "error_data": "phone number deleted"}}),
        json!({"error": {"message": null, "code": 190}}),
    ]
}

fn chat_answers() -> Vec<Value> {
    vec![
        json!({"id": "gen-1", "choices": [{"message": {"role": "assistant", "content": "  Olá! Entregamos hoje até as 22h.  "}, "finish_reason": "stop"}]}),
        json!({"choices": [{"message": {"content": [{"type": "text", "text": "Sim, "}, {"type": "text", "text": "entregamos."}]}}]}),
        json!({"choices": [{"error": {"message": "upstream failed"}, "finish_reason": "error"}]}),
        json!({"choices": []}),
        json!({"error": {"message": "Insufficient credits", "code": 402}}),
        json!({"error": "rate limited"}),
    ]
}

fn body(bases: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::sample::select(bases.clone()).prop_flat_map(|b| near(b, 4)).prop_flat_map(|v| body_bytes(&v)),
        2 => (proptest::sample::select(bases), byte_edits(3))
            .prop_map(|(b, edits)| apply_byte_edits(serde_json::to_vec(&b).unwrap(), &edits)),
        1 => any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => any_bytes(60),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => proptest::sample::select(vec![200, 201, 204, 302, 400, 401, 402, 403, 404, 408, 413, 429, 500, 502, 503, 504]),
        1 => any::<u16>(),
    ]
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn graph_errors_lead_to_one_decision(body in body(graph_errors()), status in status(), attempt in 0..15u32) {
        let error = GraphError::parse(&body);
        if let Some(e) = &error {
            // (Fields serde skips are not checked for lone surrogates, so the
            // body may not read as a `Value`.) serde also reads a struct from
            // an array, by position.
            if let Ok(value) = serde_json::from_slice::<Value>(&body)
                && value["error"].is_object()
            {
                prop_assert_eq!(value["error"]["code"].as_i64(), Some(e.code));
            }
            match number_status(e) {
                NumberStatus::Error { code, message } => {
                    prop_assert_eq!(code, e.code);
                    prop_assert!(!message.chars().any(char::is_control));
                    prop_assert!(message.chars().count() <= MAX_STATUS_MESSAGE_CHARS + 1);
                }
                other => prop_assert!(false, "{:?}", other),
            }
            let _ = (e.details(), e.known());
        }
        let failure = GraphFailure::Response { status, error: error.as_ref() };
        let verdict = classify(&failure);
        match next_step(attempt, verdict) {
            SendStep::RetryAfter(delay) => prop_assert!(attempt < MAX_SEND_ATTEMPTS && (1..=900).contains(&delay)),
            SendStep::GiveUp | SendStep::StopNumber => {}
        }
        let _ = status_after_check(Err(&failure));
    }

    #[test]
    fn chat_answers_are_a_reply_or_a_classed_failure(
        body in body(chat_answers()),
        status in status(),
        retry_after in proptest::option::of(prop_oneof!["[0-9]{1,12}", nasty_string()]),
    ) {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        match judge_answer(status, retry_after.as_deref(), &body, now) {
            Ok(text) => {
                prop_assert!((200..300).contains(&status));
                prop_assert!(!text.is_empty() && text.trim() == text);
                let reply = reply_text(&text);
                prop_assert!(reply.is_some_and(|r| !r.is_empty() && r.chars().count() <= MAX_REPLY_CHARS));
            }
            Err(ChatFailure::Retryable { reason, .. }) => {
                prop_assert!(matches!(status, 408 | 429 | 500..=599));
                prop_assert!(!reason.is_empty());
            }
            Err(ChatFailure::Fatal { status: s, message }) => {
                prop_assert_eq!(s, status);
                prop_assert!(!(200..300).contains(&status) && !matches!(status, 408 | 429 | 500..=599));
                // The message may be empty: an error text of whitespace only
                // (`"\f"`, a vertical tab) trims to nothing instead of
                // falling back to "HTTP <status>" (cosmetic; see the report).
                let _ = message;
            }
            Err(ChatFailure::Invalid { reason }) => {
                prop_assert!((200..300).contains(&status));
                prop_assert!(!reason.is_empty());
            }
        }
    }
}
