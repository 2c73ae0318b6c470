//! Sample events from `events/`, adapted per test: the same shapes API
//! Gateway and SQS deliver.

use std::collections::HashMap;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The text of `events/<rel>`.
fn fixture_text(rel: &str) -> String {
    let path = crate::workspace_root().join("events").join(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// Loads `events/<rel>` as `T`.
pub fn fixture<T: DeserializeOwned>(rel: &str) -> T {
    serde_json::from_str(&fixture_text(rel))
        .unwrap_or_else(|e| panic!("fixture {rel} does not parse: {e}"))
}

/// An HTTP API request fixture, as `lambda_http` hands it to a handler.
pub fn http_event(rel: &str) -> Request {
    lambda_http::request::from_str(&fixture_text(rel))
        .unwrap_or_else(|e| panic!("fixture {rel} is not an HTTP API request: {e}"))
}

/// An HTTP API request fixture with its API Gateway event edited first
/// (for what `lambda_http` fixes when it builds the request: path, method).
pub fn http_event_edited(rel: &str, edit: impl FnOnce(&mut Value)) -> Request {
    let mut event: Value = fixture(rel);
    edit(&mut event);
    lambda_http::request::from_str(&event.to_string())
        .unwrap_or_else(|e| panic!("edited fixture {rel} is not an HTTP API request: {e}"))
}

pub fn with_body(req: Request, body: impl Into<String>) -> Request {
    let (parts, _) = req.into_parts();
    Request::from_parts(parts, Body::Text(body.into()))
}

/// The request with a body of any bytes (as `lambda_http` hands over a
/// base64-encoded one) and its content type.
pub fn with_bytes(req: Request, content_type: &str, body: Vec<u8>) -> Request {
    let (mut parts, _) = req.into_parts();
    parts.headers.insert(
        "content-type",
        content_type.parse().expect("a content type"),
    );
    Request::from_parts(parts, Body::Binary(body))
}

pub fn without_body(req: Request) -> Request {
    let (parts, _) = req.into_parts();
    Request::from_parts(parts, Body::Empty)
}

pub fn with_json(req: Request, body: &Value) -> Request {
    with_body(req, body.to_string())
}

pub fn with_path_id(req: Request, id: &str) -> Request {
    with_path_param(req, "id", id)
}

pub fn with_path_param(req: Request, name: &str, value: &str) -> Request {
    let mut params: HashMap<String, String> = req
        .path_parameters()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    params.insert(name.into(), value.into());
    req.with_path_parameters(params)
}

/// The request with its API Gateway context changed by `edit`.
fn with_context(req: Request, edit: impl FnOnce(&mut ApiGatewayV2httpRequestContext)) -> Request {
    let mut ctx = match req.request_context() {
        RequestContext::ApiGatewayV2(ctx) => ctx,
        #[allow(unreachable_patterns)]
        _ => panic!("not an HTTP API (payload 2.0) request"),
    };
    edit(&mut ctx);
    req.with_request_context(RequestContext::ApiGatewayV2(ctx))
}

pub fn with_source_ip(req: Request, ip: &str) -> Request {
    with_context(req, |ctx| ctx.http.source_ip = Some(ip.into()))
}

pub fn with_query(req: Request, pairs: &[(&str, &str)]) -> Request {
    let raw = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let params: lambda_http::aws_lambda_events::query_map::QueryMap =
        raw.parse().expect("query string");
    req.with_query_string_parameters(params)
}

/// The request as the authorizer would have labelled it for this principal
/// (its key named after its id).
pub fn as_principal(req: Request, account_id: &str, key_id: &str, role: &str) -> Request {
    let ctx = json!({
        "authenticated": true,
        "account_id": account_id,
        "key_id": key_id,
        "key_name": format!("{key_id} ({role})"),
        "role": role,
    });
    with_authorizer(req, ctx)
}

/// The request as the authorizer labels a bad credential.
pub fn as_anonymous(req: Request) -> Request {
    with_authorizer(req, json!({"authenticated": false, "reason": "bad key"}))
}

/// The request as it would arrive with no authorizer in front of the route.
pub fn without_authorizer(req: Request) -> Request {
    with_context(req, |ctx| ctx.authorizer = None)
}

/// The request as the authorizer labelled it with this context (what
/// `authorizer::handle` answered).
pub fn with_authorizer(req: Request, fields: Value) -> Request {
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.fields = serde_json::from_value(fields).expect("context");
    with_context(req, |ctx| ctx.authorizer = Some(authorizer))
}

/// Status, content type and JSON body of a reply.
pub fn reply(resp: &Response<Body>) -> (u16, String, Value) {
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::String(t.clone())),
        _ => Value::Null,
    };
    (resp.status().as_u16(), content_type, body)
}

/// The request as API Gateway sends it for another route of the same
/// function (`"GET /v1/webhooks/{id}"`): route key and method.
pub fn with_route(req: Request, route: &str) -> Request {
    let method: lambda_http::http::Method = route
        .split(' ')
        .next()
        .unwrap_or("GET")
        .parse()
        .expect("an HTTP method");
    let mut req = with_context(req, |ctx| {
        ctx.route_key = Some(route.to_owned());
        ctx.http.method = method.clone();
    });
    *req.method_mut() = method;
    req
}

/// An SQS record with this message id and body (the fields handlers read).
pub fn sqs_message(id: impl Into<String>, body: impl Into<String>) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.into());
    message.body = Some(body.into());
    message
}

/// A batch of SQS records, as the event source hands it to a function.
pub fn sqs_batch(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

/// The message ids a consumer's answer asks SQS to deliver again, sorted.
pub fn failed_ids(answer: &SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

/// [`failed_ids`] once the records the invocation set aside
/// ([`nuvem_aws::runtime::set_aside`]) found no dead-letter queue to go to:
/// they come back as failures, to be delivered again.
pub async fn failed_ids_without_dead_letter_queue(answer: SqsBatchResponse) -> Vec<String> {
    let nowhere = std::sync::OnceLock::from(None);
    failed_ids(&nuvem_aws::runtime::set_aside(answer, &nowhere).await)
}
