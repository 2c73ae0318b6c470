//! Sample events from `events/`, adapted per test: the same shapes API
//! Gateway and SQS deliver.

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayV2httpRequest, ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Loads `events/<rel>` as `T`.
pub fn fixture<T: DeserializeOwned>(rel: &str) -> T {
    let path = crate::workspace_root().join("events").join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fixture {} does not parse: {e}", path.display()))
}

/// An HTTP API request fixture.
pub fn http_event(rel: &str) -> ApiGatewayV2httpRequest {
    fixture(rel)
}

pub fn with_body(
    mut req: ApiGatewayV2httpRequest,
    body: impl Into<String>,
) -> ApiGatewayV2httpRequest {
    req.body = Some(body.into());
    req
}

pub fn with_json(req: ApiGatewayV2httpRequest, body: &Value) -> ApiGatewayV2httpRequest {
    with_body(req, body.to_string())
}

pub fn with_path_id(req: ApiGatewayV2httpRequest, id: &str) -> ApiGatewayV2httpRequest {
    with_path_param(req, "id", id)
}

pub fn with_path_param(
    mut req: ApiGatewayV2httpRequest,
    name: &str,
    value: &str,
) -> ApiGatewayV2httpRequest {
    req.path_parameters.insert(name.into(), value.into());
    req
}

pub fn with_source_ip(mut req: ApiGatewayV2httpRequest, ip: &str) -> ApiGatewayV2httpRequest {
    req.request_context.http.source_ip = Some(ip.into());
    req
}

pub fn with_query(
    mut req: ApiGatewayV2httpRequest,
    pairs: &[(&str, &str)],
) -> ApiGatewayV2httpRequest {
    let raw = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    req.query_string_parameters = raw.parse().expect("query string");
    req.raw_query_string = Some(raw);
    req
}

/// The request as the authorizer would have labelled it for this principal.
pub fn as_principal(
    mut req: ApiGatewayV2httpRequest,
    account_id: &str,
    key_id: &str,
    role: &str,
) -> ApiGatewayV2httpRequest {
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    let ctx =
        json!({"authenticated": true, "account_id": account_id, "key_id": key_id, "role": role});
    authorizer.fields = serde_json::from_value(ctx).expect("context");
    req.request_context.authorizer = Some(authorizer);
    req
}

/// The request as the authorizer labels a bad credential.
pub fn as_anonymous(mut req: ApiGatewayV2httpRequest) -> ApiGatewayV2httpRequest {
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.fields =
        serde_json::from_value(json!({"authenticated": false, "reason": "bad key"}))
            .expect("context");
    req.request_context.authorizer = Some(authorizer);
    req
}

/// Status, content type and JSON body of a reply.
pub fn reply(resp: &ApiGatewayV2httpResponse) -> (u16, String, Value) {
    let content_type = resp
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match &resp.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap_or(Value::String(t.clone())),
        _ => Value::Null,
    };
    (resp.status_code as u16, content_type, body)
}

/// The request as API Gateway sends it for another route of the same
/// function (`"GET /v1/webhooks/{id}"`): route key and method.
pub fn with_route(mut req: ApiGatewayV2httpRequest, route: &str) -> ApiGatewayV2httpRequest {
    let method = route.split(' ').next().unwrap_or("GET");
    req.route_key = Some(route.to_owned());
    req.request_context.route_key = Some(route.to_owned());
    req.request_context.http.method = method.parse().expect("an HTTP method");
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
