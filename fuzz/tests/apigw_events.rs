//! API Gateway HTTP API (payload 2.0) events as Lambda hands them to the
//! HTTP functions, read by `lambda_http` into a request and by
//! `nuvem_aws::http` into a route, path parameters, query, source address
//! and the caller the authorizer labelled: request targets of RFC 3986
//! (any path and query a conforming client sends, percent-escapes
//! included), any header values, text or base64-encoded bodies of any
//! bytes, and a request context with fields dropped, retyped or huge.
//!
//! Property: nothing panics; the body arrives byte for byte, the query as
//! its form decoding, and the caller is either an authenticated principal
//! of an allowed role or a 401, 403 or 503, never a 5xx of another kind.
//! (`lambda_http` panics on events outside this contract, such as a raw
//! `"` in `rawQueryString`: see the report.)

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::RequestExt;
use nuvem_aws::http::{self, Principal, query, require, route, source_ip};
use nuvem_domain::keys::Role;
use nuvem_fuzz::json::{apply_edits, edits};
use nuvem_fuzz::text::{any_bytes, text};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::assert_client_error;

/// Characters RFC 3986 allows unencoded in a path segment or query.
const PCHARS: &str = "A-Za-z0-9._~!$&'()*+,;=:@\\-";

fn escape() -> impl Strategy<Value = String> {
    any::<u8>().prop_map(|b| format!("%{b:02X}"))
}

fn raw_path() -> impl Strategy<Value = String> {
    let segment = proptest::collection::vec(
        prop_oneof![4 => proptest::string::string_regex(&format!("[{PCHARS}]{{1,8}}")).unwrap(), 1 => escape()],
        0..3,
    )
    .prop_map(|parts| parts.concat());
    proptest::collection::vec(segment, 1..5).prop_map(|segments| format!("/{}", segments.join("/")))
}

fn raw_query() -> impl Strategy<Value = String> {
    let value = proptest::collection::vec(
        prop_oneof![3 => proptest::string::string_regex(&format!("[{PCHARS}/?]{{1,6}}")).unwrap(), 1 => escape()],
        0..4,
    )
    .prop_map(|parts| parts.concat());
    let part = prop_oneof![
        4 => proptest::string::string_regex(&format!("[{PCHARS}/?]{{1,10}}")).unwrap(),
        3 => (proptest::sample::select(vec!["limit", "cursor", "a", "id"]), value)
            .prop_map(|(name, value)| format!("&{name}={value}&")),
        1 => escape(),
        1 => Just("&".to_owned()),
        1 => Just("=".to_owned()),
    ];
    prop_oneof![
        1 => Just(String::new()),
        4 => proptest::collection::vec(part, 0..8).prop_map(|parts| parts.concat()),
    ]
}

/// Header values API Gateway passes: visible ASCII and spaces.
fn header_value() -> impl Strategy<Value = String> {
    "[ -~]{0,40}"
}

fn authorizer() -> impl Strategy<Value = Value> {
    let role = prop_oneof![
        Just(json!("owner")),
        Just(json!("operator")),
        Just(json!("approver")),
        Just(json!("admin")),
        Just(json!("root")),
        Just(json!(7)),
    ];
    // The reason is one of the authorizer's own sentences, never empty.
    let reason = proptest::sample::select(vec![
        "send Authorization: Bearer <key id>.<secret>",
        "the access key is invalid, expired or revoked",
    ]);
    (
        any::<bool>(),
        role,
        any::<bool>(),
        proptest::option::of(any::<u64>()),
        reason,
    )
        .prop_map(|(authenticated, role, unavailable, retry_after, reason)| {
            let mut lambda = json!({
                "authenticated": authenticated,
                "account_id": "acc_01jd0000000000000000000000",
                "key_id": "key_01jd0000000000000000000001",
                "key_name": "backup server",
                "role": role,
                "reason": reason,
            });
            if unavailable {
                lambda["unavailable"] = json!(true);
                lambda["retry_after"] = json!(retry_after);
            }
            json!({"lambda": lambda})
        })
}

#[derive(Debug, Clone)]
struct Event {
    json: Value,
    body: Vec<u8>,
    raw_query: String,
}

fn event() -> impl Strategy<Value = Event> {
    (
        (raw_path(), raw_query(), any::<bool>(), any_bytes(120), text(40)),
        proptest::collection::btree_map("[a-z][a-z0-9-]{0,15}", header_value(), 0..5),
        proptest::option::of(authorizer()),
        edits(3),
        proptest::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
    )
        .prop_map(|((path, raw_query, base64, bytes, text_body), headers, authorizer, edits, method)| {
            let body = if base64 { bytes } else { text_body.into_bytes() };
            let mut header_map = serde_json::Map::new();
            for (k, v) in headers {
                header_map.insert(k, json!(v));
            }
            header_map.insert("host".into(), json!("a1b2c3d4e5.execute-api.sa-east-1.amazonaws.com"));
            header_map.insert("x-forwarded-proto".into(), json!("https"));
            let route_key = format!("{method} /v1/things/{{id}}");
            let mut context = json!({
                "accountId": "123456789012",
                "apiId": "a1b2c3d4e5",
                "domainName": "a1b2c3d4e5.execute-api.sa-east-1.amazonaws.com",
                "domainPrefix": "a1b2c3d4e5",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
                "requestId": "JKJaXmPLvHcESHA=",
                "routeKey": route_key,
                "stage": "$default",
                "time": "24/Nov/2026:12:00:00 +0000",
                "timeEpoch": 1795521600000u64
            });
            if let Some(a) = authorizer {
                context["authorizer"] = a;
            }
            // The context is the gateway's own: damage it, not the target
            // (the stage, which lambda_http puts in the path, is a name the
            // template gives).
            let mut context = apply_edits(context, &edits);
            if let Some(c) = context.as_object_mut() {
                c.insert("stage".into(), json!("$default"));
            }
            let json = json!({
                "version": "2.0",
                "routeKey": route_key,
                "rawPath": path,
                "rawQueryString": raw_query,
                "headers": header_map,
                "pathParameters": {"id": "thing_1"},
                "requestContext": context,
                "isBase64Encoded": base64,
                "body": if base64 { STANDARD.encode(&body) } else { String::from_utf8(body.clone()).unwrap() },
            });
            Event { json, body, raw_query }
        })
}

/// The first value of `name` in the form decoding of `raw`.
fn form_value(raw: &str, name: &str) -> Option<String> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len()
                    && bytes[i + 1].is_ascii_hexdigit()
                    && bytes[i + 2].is_ascii_hexdigit() =>
                {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    raw.split('&').filter(|p| !p.is_empty()).find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn events_become_requests_as_the_handlers_read_them(event in event()) {
        let text = event.json.to_string();
        let Ok(req) = lambda_http::request::from_str(&text) else {
            // The damaged context no longer reads as an HTTP API event.
            return Ok(());
        };
        prop_assert_eq!(req.body().as_ref(), event.body.as_slice());
        let _ = (route(&req), source_ip(&req), http::path_param(&req, "id"));
        let _ = req.query_string_parameters_ref();
        for name in ["limit", "cursor", "a", "A", "id"] {
            let expected = form_value(&event.raw_query, name);
            // The decoding of lambda_http (query_map) and the form decoding
            // agree on every name present.
            if let Some(expected) = expected {
                prop_assert_eq!(query(&req, name), Some(expected.as_str()), "{:?}", event.raw_query);
            }
        }
        match require(&req, &[Role::Owner, Role::Operator]) {
            Ok(Principal { role, .. }) => prop_assert!(matches!(role, Role::Owner | Role::Operator)),
            // 503 (with Retry-After) when the authorizer could not check the
            // key: the one server status the contract allows here.
            Err(problem) if problem.status == 503 => prop_assert!(problem.retry_after.is_some()),
            Err(problem) => assert_client_error(&problem, &[401, 403])?,
        }
    }
}
