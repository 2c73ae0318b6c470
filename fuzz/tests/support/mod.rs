//! Requests as `lambda_http` hands them to a function, for the targets that
//! go through `nuvem_aws::http`: the body exactly as received (text, or
//! the bytes of a base64-encoded one), any `Content-Type` a client can
//! send, and the query string parsed as `lambda_http` parses API Gateway's
//! `rawQueryString`.

// Each target uses its own part of this module.
#![allow(dead_code)]

use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request, RequestExt};
use nuvem_aws::http::Problem;
use proptest::prelude::*;

/// A `Content-Type` header: absent, JSON in its spellings, another type,
/// or bytes that are not text.
pub fn content_type() -> impl Strategy<Value = Option<Vec<u8>>> {
    let known = proptest::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        " application/json ;charset=latin1",
        "application/problem+json",
        "application/vnd.api+json",
        "text/plain",
        "text/csv",
        "text/csv; charset=windows-1252",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "json",
        "",
    ]);
    prop_oneof![
        2 => Just(None),
        8 => known.prop_map(|ct| Some(ct.as_bytes().to_vec())),
        1 => nuvem_fuzz::text::any_bytes(40).prop_map(Some),
    ]
}

/// The request `lambda_http` builds from an API Gateway event with this
/// content type, body and raw query string. A body that is UTF-8 comes
/// as text or (as when the gateway base64-encodes it) as bytes.
pub fn request(
    content_type: Option<&[u8]>,
    body: Vec<u8>,
    as_text: bool,
    raw_query: &str,
) -> Request {
    let body = match String::from_utf8(body) {
        Ok(text) if as_text => Body::Text(text),
        Ok(text) => Body::Binary(text.into_bytes()),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    let mut req = Request::new(body);
    // A header value the gateway could not pass (a control character) is
    // left out, as it would be.
    if let Some(value) = content_type.and_then(|ct| HeaderValue::from_bytes(ct).ok()) {
        req.headers_mut().insert("content-type", value);
    }
    let query: QueryMap = raw_query.parse().expect("QueryMap parsing is infallible");
    req.with_query_string_parameters(query)
}

/// The lowercase essence of the request's `Content-Type` (without
/// parameters), as a server reads it: `None` when absent.
pub fn essence(content_type: Option<&[u8]>) -> Option<String> {
    let value = HeaderValue::from_bytes(content_type?).ok()?;
    let text = value.to_str().unwrap_or("").to_ascii_lowercase();
    Some(text.split(';').next().unwrap_or("").trim().to_owned())
}

/// A client error the API documents: its status is one of `allowed`, a
/// 422 names at least one field, and every problem explains itself.
pub fn assert_client_error(problem: &Problem, allowed: &[u16]) -> Result<(), TestCaseError> {
    prop_assert!(
        allowed.contains(&problem.status),
        "status {} not in {:?}: {:?}",
        problem.status,
        allowed,
        problem
    );
    prop_assert!(problem.status >= 400 && problem.status < 500);
    if problem.status == 422 {
        prop_assert!(
            !problem.errors.is_empty(),
            "a 422 without errors: {:?}",
            problem
        );
        // The field is named as sent, which may be `""` for an unknown
        // field of that name; the message always says what is wrong.
        for e in &problem.errors {
            prop_assert!(!e.message.is_empty(), "{:?}", e);
        }
    } else {
        prop_assert!(problem.detail.as_deref().is_some_and(|d| !d.is_empty()));
    }
    // The reply serialises (an answer is always sent).
    let response = problem.clone().into_response();
    prop_assert_eq!(response.status().as_u16(), problem.status);
    Ok(())
}
