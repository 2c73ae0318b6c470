//! Keeps `openapi.yaml` true: its operations are exactly the template's
//! `HttpApi` routes, public exactly where the template says so, its schemas
//! and examples are valid, and a flow through the local stack that calls every
//! operation (and provokes most error statuses) gets only documented statuses,
//! content types and bodies.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration as Wait;

use chrono::{Duration, Utc};
use common::{activation_token, admin_key};
use jsonschema::Draft;
use nuvem_testkit::fake_chat::FakeChat;
use nuvem_testkit::fake_graph::FakeGraph;
use nuvem_testkit::inspect::item_ids;
use nuvem_testkit::receiver::{Received, Receiver, Reply};
use nuvem_testkit::{Template, emulator, eventually_some, unique_name, workspace_root};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Method};
use serde_json::{Value, json};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `openapi.yaml` as JSON.
fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = workspace_root().join("openapi.yaml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// Every operation of the document: (METHOD, path) → operation object.
fn operations() -> BTreeMap<(String, String), &'static Value> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc()["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.insert((method.to_ascii_uppercase(), path.clone()), op);
            }
        }
    }
    ops
}

/// Follows `$ref`s (local ones only, as the document uses).
fn resolve(mut v: &'static Value) -> &'static Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        v = doc()
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    v
}

/// A validator for a schema of the document, its `$ref`s resolved against
/// the whole document (OpenAPI 3.1 schemas are JSON Schema 2020-12).
fn validator(schema: &Value) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc()["components"],
        "allOf": [schema],
    });
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("invalid schema {schema}: {e}"))
}

/// The validation errors of `instance` against `schema`, one per line.
fn violations(schema: &Value, instance: &Value) -> Option<String> {
    let v = validator(schema);
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("  at {:?}: {e}", e.instance_path().as_str()))
        .collect();
    (!errors.is_empty()).then(|| errors.join("\n"))
}

// ---------------------------------------------------------------- the document

#[test]
fn operations_are_the_template_routes_with_the_same_auth() {
    let template = Template::load_default(&Default::default()).expect("template.yaml");
    let routes: BTreeMap<(String, String), bool> = template
        .routes()
        .expect("routes")
        .into_iter()
        // The catch-all answers only problems; no operation to document.
        .filter(|r| r.path != "$default")
        .map(|r| ((r.method, r.path), r.authorizer.is_none()))
        .collect();
    let ops = operations();
    let documented: BTreeSet<_> = ops.keys().cloned().collect();
    let served: BTreeSet<_> = routes.keys().cloned().collect();
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented in openapi.yaml but not routes of template.yaml"
    );
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes of template.yaml missing from openapi.yaml"
    );

    assert_eq!(
        doc()["security"],
        json!([{ "bearerAuth": [] }]),
        "bearer auth is the default"
    );
    assert!(doc()["components"]["securitySchemes"]["bearerAuth"].is_object());
    for ((method, path), op) in &ops {
        let public = routes[&(method.clone(), path.clone())];
        let roles = op["x-nuvem-roles"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path}: x-nuvem-roles"));
        assert!(
            op["responses"].get("503").is_some(),
            "{method} {path}: every route answers 503 when a dependency is slow"
        );
        if public {
            assert_eq!(
                op.get("security"),
                Some(&json!([])),
                "{method} {path} has Auth: Authorizer: NONE, so security: []"
            );
            assert!(roles.is_empty(), "{method} {path}: public, yet roles");
        } else {
            assert!(
                op.get("security").is_none_or(|s| s == &doc()["security"]),
                "{method} {path} is behind the authorizer: no security override"
            );
            assert!(!roles.is_empty(), "{method} {path}: which roles?");
            for r in roles {
                assert!(
                    ["admin", "owner", "approver", "operator"].contains(&r.as_str().unwrap()),
                    "{method} {path}: unknown role {r}"
                );
            }
            for status in ["401", "403"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path}: protected, so {status} is documented"
                );
            }
        }
    }
}

#[test]
fn operations_are_complete_and_schemas_and_examples_valid() {
    let mut ids = BTreeSet::new();
    for ((method, path), op) in operations() {
        let what = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: operationId"));
        assert!(ids.insert(id), "{what}: operationId {id} used twice");
        assert!(op["summary"].is_string(), "{what}: summary");

        // Every `{param}` of the path is declared, and nothing else in the path.
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(resolve)
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        assert_eq!(declared, in_path, "{what}: path parameters");

        if let Some(body) = op.get("requestBody") {
            let body = resolve(body);
            // Optional bodies (rotation, replay) say so; the default (false)
            // is never left implicit.
            assert!(
                body["required"].is_boolean(),
                "{what}: requestBody.required"
            );
            // A JSON body, or a file of its own type (a CSV import).
            let (media_type, media) = body["content"]
                .as_object()
                .and_then(|c| c.iter().next())
                .unwrap_or_else(|| panic!("{what}: requestBody.content"));
            let schema = resolve(&media["schema"]);
            // Except bodies of outside senders read leniently (Meta's
            // webhooks), which say so.
            if media_type == "application/json" && op["x-nuvem-lenient-body"] != true {
                assert_eq!(
                    schema["additionalProperties"], false,
                    "{what}: unknown fields are refused, so additionalProperties: false"
                );
            }
            for example in examples(media) {
                if let Some(errors) = violations(&media["schema"], example) {
                    panic!("{what}: request example {example} does not match:\n{errors}");
                }
            }
        }

        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what}: a success status"
        );
        for (status, response) in responses {
            let response = resolve(response);
            assert!(response["description"].is_string(), "{what} {status}");
            let Some(content) = response.get("content").and_then(Value::as_object) else {
                continue;
            };
            for (media_type, media) in content {
                let problem = media_type == "application/problem+json";
                assert_eq!(
                    problem,
                    status.starts_with(['4', '5']) && !is_gateway_answer(media),
                    "{what} {status}: {media_type}"
                );
                validator(&media["schema"]);
                for example in examples(media) {
                    if let Some(errors) = violations(&media["schema"], example) {
                        panic!("{what} {status}: example {example} does not match:\n{errors}");
                    }
                }
            }
        }
    }

    // Every schema compiles, and its own examples match it.
    for (name, schema) in doc()["components"]["schemas"].as_object().unwrap() {
        let pointer = json!({ "$ref": format!("#/components/schemas/{name}") });
        validator(&pointer);
        let own = schema.get("example").into_iter();
        let listed = schema["examples"].as_array().into_iter().flatten();
        for example in own.chain(listed) {
            if let Some(errors) = violations(&pointer, example) {
                panic!("schema {name}: example {example} does not match:\n{errors}");
            }
        }
    }
}

/// `example` and `examples.*.value` of a media type object.
fn examples(media: &'static Value) -> Vec<&'static Value> {
    let mut out: Vec<&Value> = media.get("example").into_iter().collect();
    for e in media["examples"].as_object().into_iter().flatten() {
        out.push(&resolve(e.1)["value"]);
    }
    out
}

/// Whether a media type documents an answer of API Gateway itself.
fn is_gateway_answer(media: &Value) -> bool {
    media["schema"]["$ref"] == "#/components/schemas/GatewayMessage"
}

// ---------------------------------------------------------------- the running stack

/// A request body as sent.
enum Body {
    None,
    Json(Value),
    /// Content type and raw bytes.
    Raw(&'static str, Vec<u8>),
    /// An optional JSON body sent with an `Idempotency-Key`.
    Keyed(&'static str, Option<Value>),
    /// JSON bytes with Meta's `X-Hub-Signature-256`, if any.
    Signed(Vec<u8>, Option<String>),
}

/// Calls operations of the document on the local stack and checks every
/// answer against it.
struct Contract {
    http: Client,
    base: String,
    /// (operationId, status, credential) of every answer seen.
    seen: Mutex<BTreeSet<(String, u16, Option<String>)>>,
    /// Every call that succeeded, to be replayed with another account's key.
    succeeded: Mutex<Vec<Succeeded>>,
}

/// A call that answered 2xx: what another account's key tries again.
#[derive(Clone, Debug)]
struct Succeeded {
    method: Method,
    path: String,
    args: Vec<String>,
    query: Vec<(String, String)>,
    credential: Option<String>,
    body: Option<Value>,
}

impl Contract {
    /// Calls `method path` (a path of the document; `args` fill its
    /// parameters in order) and checks that the answer has status `expected`,
    /// that this status is documented for the operation with the answer's
    /// content type, and that the body matches the documented schema.
    /// Returns the body (Null when empty).
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        method: Method,
        path: &str,
        args: &[&str],
        query: &[(&str, &str)],
        credential: Option<&str>,
        body: Body,
        expected: u16,
    ) -> Value {
        let op = doc()["paths"][path]
            .get(method.as_str().to_ascii_lowercase())
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        let id = op["operationId"].as_str().unwrap();
        let what = format!("{id} ({method} {path}, expecting {expected})");

        // Query parameters the test sends are documented ones.
        let documented: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(resolve)
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for (name, _) in query {
            assert!(documented.contains(name), "{what}: undocumented ?{name}");
        }
        // Headers the test sends are documented ones.
        if let Body::Keyed(..) = &body {
            let header = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(resolve)
                .any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key");
            assert!(header, "{what}: undocumented Idempotency-Key");
        }
        // What the code accepts, the documented request schema accepts too.
        if let Body::Json(b) | Body::Keyed(_, Some(b)) = &body
            && (200..300).contains(&expected)
        {
            let media = &op["requestBody"]["content"]["application/json"];
            assert!(media.is_object(), "{what}: a body, yet no requestBody");
            if let Some(errors) = violations(&media["schema"], b) {
                panic!("{what}: accepted body {b} does not match the request schema:\n{errors}");
            }
        }

        let replay = Succeeded {
            method: method.clone(),
            path: path.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            credential: credential.map(str::to_owned),
            body: match &body {
                Body::Json(b) | Body::Keyed(_, Some(b)) => Some(b.clone()),
                _ => None,
            },
        };
        let mut segments = Vec::new();
        let mut args = args.iter();
        for s in path.split('/') {
            segments.push(if s.starts_with('{') {
                *args
                    .next()
                    .unwrap_or_else(|| panic!("{what}: argument for {s}"))
            } else {
                s
            });
        }
        let mut req = self.http.request(
            method.clone(),
            format!("{}{}", self.base, segments.join("/")),
        );
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(c) = credential {
            req = req.header("authorization", format!("Bearer {c}"));
        }
        req = match body {
            Body::None => req,
            Body::Json(b) => req.json(&b),
            Body::Raw(content_type, bytes) => req.header(CONTENT_TYPE, content_type).body(bytes),
            Body::Signed(bytes, signature) => {
                let req = req.header(CONTENT_TYPE, "application/json").body(bytes);
                match signature {
                    Some(s) => req.header("x-hub-signature-256", s),
                    None => req,
                }
            }
            Body::Keyed(key, b) => {
                let req = req.header("idempotency-key", key);
                match b {
                    Some(b) => req.json(&b),
                    None => req,
                }
            }
        };
        let resp = req.send().await.expect("HTTP call");
        let status = resp.status().as_u16();
        let replayed = resp.headers().contains_key("idempotent-replayed");
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, expected, "{what}: got {status} {text}");
        if (200..300).contains(&status) {
            self.succeeded.lock().unwrap().push(replay);
        }
        self.seen
            .lock()
            .unwrap()
            .insert((id.to_owned(), status, credential.map(str::to_owned)));

        let Some(documented) = op["responses"].get(status.to_string()) else {
            panic!("{what}: status {status} is not documented; body {text}");
        };
        let documented = resolve(documented);
        assert!(
            !replayed || documented["headers"].get("Idempotent-Replayed").is_some(),
            "{what}: Idempotent-Replayed is not documented for {status}"
        );
        let Some(content) = documented.get("content") else {
            assert!(
                text.is_empty(),
                "{what}: {status} has no documented body: {text}"
            );
            return Value::Null;
        };
        let content_type = content_type.unwrap_or_default();
        let Some(media) = content.get(&content_type) else {
            panic!("{what}: {status} as {content_type:?} is not documented; body {text}");
        };
        let body: Value = if content_type.starts_with("text/") {
            Value::String(text)
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{what}: {content_type} body is not JSON ({e}): {text}"))
        };
        if let Some(errors) = violations(&media["schema"], &body) {
            panic!(
                "{what}: {status} {content_type} body does not match its schema:\n\
                 {errors}\nbody: {body:#}"
            );
        }
        body
    }
}

/// An answer without what a presigned link adds at each reading (its
/// signature, date and expiry).
fn unsigned(value: Value) -> Value {
    match value {
        Value::Object(fields) => {
            let presigned = fields
                .get("url")
                .and_then(Value::as_str)
                .is_some_and(|u| u.contains("X-Amz-Signature="));
            Value::Object(
                fields
                    .into_iter()
                    .filter(|(name, _)| !(presigned && name == "expires_at"))
                    .map(|(name, v)| (name, unsigned(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(unsigned).collect()),
        Value::String(text) if text.contains("X-Amz-Signature=") => {
            Value::String(text.split('?').next().unwrap_or_default().to_owned())
        }
        other => other,
    }
}

impl Contract {
    /// `call` made again with `credential`, unchecked: its status and body.
    async fn raw(&self, call: &Succeeded, credential: Option<&str>) -> (u16, String) {
        let mut args = call.args.iter();
        let path: Vec<&str> = call
            .path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    args.next().unwrap().as_str()
                } else {
                    s
                }
            })
            .collect();
        let mut req = self
            .http
            .request(
                call.method.clone(),
                format!("{}{}", self.base, path.join("/")),
            )
            .query(&call.query);
        if let Some(c) = credential {
            req = req.header("authorization", format!("Bearer {c}"));
        }
        if let Some(body) = &call.body {
            req = req
                .json(body)
                .header("idempotency-key", unique_name("replay"));
        }
        let resp = req.send().await.expect("HTTP call");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }
}

/// The paths of the document, as the flow below calls them.
const SIGNUP: &str = "/v1/signup";
const ACTIVATE: &str = "/v1/activate";
const KEYS: &str = "/v1/keys";
const KEY: &str = "/v1/keys/{id}";
const ACCOUNTS: &str = "/v1/admin/accounts";
const ACCOUNT: &str = "/v1/admin/accounts/{id}";
const APPROVE: &str = "/v1/admin/accounts/{id}/approve";
const ACTIVATION: &str = "/v1/admin/accounts/{id}/activation";
const REJECT: &str = "/v1/admin/accounts/{id}/reject";
const AUDIT: &str = "/v1/admin/accounts/{id}/audit";
const BUCKETS: &str = "/v1/buckets";
const BUCKET: &str = "/v1/buckets/{name}";
const USAGE: &str = "/v1/usage";
const STORAGE_KEYS: &str = "/v1/storage-keys";
const STORAGE_KEY: &str = "/v1/storage-keys/{id}";
const STORAGE_KEY_ROTATION: &str = "/v1/storage-keys/{id}/rotation";
const STORAGE_KEY_CONFIRM: &str = "/v1/storage-keys/{id}/rotation/confirm";
const WEBHOOKS: &str = "/v1/webhooks";
const WEBHOOK: &str = "/v1/webhooks/{id}";
const SECRET: &str = "/v1/webhooks/{id}/secret";
const ROTATE: &str = "/v1/webhooks/{id}/secret/rotate";
const TEST: &str = "/v1/webhooks/{id}/test";
const ATTEMPTS: &str = "/v1/webhooks/{id}/attempts";
const STATS: &str = "/v1/webhooks/{id}/stats";
const EVENTS: &str = "/v1/events";
const RETRY: &str = "/v1/events/{id}/retry";
const EVENT_TYPES: &str = "/v1/event-types";
const STORES: &str = "/v1/whatsapp/stores";
const STORE: &str = "/v1/whatsapp/stores/{id}";
const NUMBER: &str = "/v1/whatsapp/stores/{id}/numbers/{slot}";
const CHECK: &str = "/v1/whatsapp/stores/{id}/numbers/{slot}/check";
const META_WEBHOOK: &str = "/v1/whatsapp/webhook";
const MESSAGES: &str = "/v1/whatsapp/stores/{id}/messages";
const NOTICES: &str = "/v1/whatsapp/notices";
const CONVERSATIONS: &str = "/v1/whatsapp/stores/{id}/conversations";
const CONVERSATION_MESSAGES: &str =
    "/v1/whatsapp/stores/{id}/conversations/{conversation_id}/messages";
const RESUME: &str = "/v1/whatsapp/stores/{id}/conversations/{conversation_id}/resume";
const CARRIERS: &str = "/v1/rpa/carriers";
const CARRIER: &str = "/v1/rpa/carriers/{code}";
const CLIENTS: &str = "/v1/rpa/clients";
const CLIENT: &str = "/v1/rpa/clients/{id}";
const CLIENT_IMPORT: &str = "/v1/rpa/clients/import";
const PROCESSES: &str = "/v1/rpa/processes";
const PROCESS: &str = "/v1/rpa/processes/{id}";
const APPROVE_PROCESS: &str = "/v1/rpa/processes/{id}/approve";
const MONTHLY_REPORT: &str = "/v1/rpa/reports/monthly";
const DOWNLOAD: &str = "/v1/rpa/processes/{id}/download";
const TAX_FILING: &str = "/v1/rpa/processes/{id}/tax-filing";
const RETRY_PROCESS: &str = "/v1/rpa/processes/{id}/retry";
const CANCEL: &str = "/v1/rpa/processes/{id}/cancel";
const EXECUTIONS: &str = "/v1/rpa/processes/{id}/executions";
const EXECUTION: &str = "/v1/rpa/processes/{id}/executions/{execution_id}";
const EXECUTION_LOGS: &str = "/v1/rpa/processes/{id}/executions/{execution_id}/logs";
const INVOICE: &str = "/v1/rpa/processes/{id}/invoice";
const INVOICE_UPLOAD: &str = "/v1/rpa/processes/{id}/invoice-upload";
const SCHEDULES: &str = "/v1/rpa/schedules";
const SCHEDULE: &str = "/v1/rpa/schedules/{id}";

/// What the RPA worker does when a download completes: the process gets its
/// invoice and awaits approval.
async fn receive_invoice(runner: &nuvem_local::Runner, account_id: &str, process_id: &str) {
    use nuvem_domain::rpa::process::{Invoice, ProcessStatus, parse_process_id};
    let sdk = emulator().await.sdk_config().await;
    let store = nuvem_aws::store::Store::new(&sdk, runner.stack().table("Table"));
    let (client_id, month) = parse_process_id(process_id).expect("a process id");
    let current = store
        .get_process(account_id, &client_id, month)
        .await
        .unwrap()
        .expect("the process");
    let next = nuvem_aws::store::ProcessRecord {
        status: ProcessStatus::AwaitingApproval,
        invoice: Some(Invoice {
            s3_key: format!("{account_id}/{client_id}/{month}.pdf"),
            file_name: format!("{month}.pdf"),
            due_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 10),
            amount_cents: Some(18990),
            access_key: None,
            received_at: Utc::now(),
        }),
        version: current.version + 1,
        ..current.clone()
    };
    assert!(
        store
            .update_process(&current, &next, None, None)
            .await
            .unwrap()
    );
}

/// Shorthands, so that the flow below reads as a list of calls.
macro_rules! call {
    (
        $api:expr, $method:ident $path:ident [$($arg:expr),*] ? [$($q:expr),*],
        $cred:expr, $body:expr => $status:expr
    ) => {
        $api.call(Method::$method, $path, &[$($arg),*], &[$($q),*], $cred, $body, $status).await
    };
    (
        $api:expr, $method:ident $path:ident [$($arg:expr),*],
        $cred:expr, $body:expr => $status:expr
    ) => {
        call!($api, $method $path [$($arg),*] ? [], $cred, $body => $status)
    };
}

/// The Meta app secret this flow configures.
const META_APP_SECRET: &str = "segredo-do-app-meta";

fn json(v: Value) -> Body {
    Body::Json(v)
}

/// A JSON object bigger than every route's body limit (16 KiB).
fn oversized(field: &str) -> Body {
    Body::Json(json!({ field: "x".repeat(17 * 1024) }))
}

/// A truncated body whose first key no route knows: not JSON, so a 400 even
/// though a parser meets the unknown field first.
fn malformed() -> Body {
    Body::Raw("application/json", b"{\"not_a_field\": ".to_vec())
}

fn not_json() -> Body {
    Body::Raw("text/plain", b"quota_gb=1".to_vec())
}

/// The requests `receiver` got for the event `event_id` (its
/// `webhook-id`), once at least `n` arrived.
async fn deliveries_of(receiver: &Receiver, event_id: &str, n: usize) -> Vec<Received> {
    let what = format!("{n} deliveries of {event_id}");
    eventually_some(&what, || async {
        let got: Vec<Received> = receiver
            .received()
            .into_iter()
            .filter(|r| r.header("webhook-id") == Some(event_id))
            .collect();
        (got.len() >= n).then_some(got)
    })
    .await
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_answers_as_documented() {
    let chat = FakeChat::start("sk-or-v1-fluxo").await;
    let graph = FakeGraph::start().await;
    graph.add_number(
        "106540352242922",
        "EAAGm0PX4ZCps",
        "+55 11 98765-4321",
        "Cantina da Nonna",
    );
    // No authorizer cache, so that a revoked key is refused at once; four
    // signups an hour, so that the fifth is refused; webhook endpoints on
    // 127.0.0.1, so that a local receiver gets the deliveries.
    let runner = common::stack(
        "openapi",
        &[
            ("AuthorizerCacheSeconds", "0"),
            ("SignupsPerHourPerAddress", "4"),
            ("WebhookAllowLoopback", "true"),
            ("GraphApiUrl", &graph.url()),
            ("ChatApiUrl", &chat.url()),
        ],
    )
    .await;
    let api = Contract {
        http: Client::new(),
        base: runner.base_url().trim_end_matches('/').to_owned(),
        seen: Mutex::new(BTreeSet::new()),
        succeeded: Mutex::new(Vec::new()),
    };
    let admin_credential = admin_key(&runner);
    let admin = Some(admin_credential.as_str());
    let tag = unique_name("");
    let email_a = format!("contato+{tag}@paoquente.com.br");
    let email_b = format!("joao+{tag}@oficinadojoao.com.br");

    // ------------------------------------------------------------ signup
    let padaria = json!({
        "organization_name": "Padaria Pão Quente Ltda",
        "document": "12.ABC.345/01DE-35",
        "phone": "(11) 98765-4321",
        "email": email_a,
        "imperius_licenses": 10
    });
    let a = call!(api, POST SIGNUP [], None, json(padaria.clone()) => 201);
    let a = str_of(&a["id"]).to_owned();
    let b = call!(api, POST SIGNUP [], None, json(json!({
        "organization_name": "Oficina do João",
        "document": "123.456.789-09",
        "phone": "+55 31 3222-1100",
        "email": email_b,
        "imperius_licenses": 1,
        "locale": "en"
    })) => 201);
    let b = str_of(&b["id"]).to_owned();
    let mut same_document = padaria.clone();
    same_document["email"] = json!(format!("outro+{tag}@paoquente.com.br"));
    let conflict = call!(api, POST SIGNUP [], None, json(same_document) => 409);
    assert_eq!(conflict["errors"][0]["field"], "document");
    let mut same_email = padaria.clone();
    same_email["document"] = json!("R4P1D0ENTR0040");
    same_email["email"] = json!(email_a.to_uppercase());
    let conflict = call!(api, POST SIGNUP [], None, json(same_email) => 409);
    assert_eq!(conflict["errors"][0]["field"], "email");
    let invalid = call!(api, POST SIGNUP [], None, json(json!({
        "organization_name": " X ",
        "document": "111.111.111-11",
        "phone": "+1 212 555 0100",
        "email": "sem-arroba",
        "imperius_licenses": 5000
    })) => 422);
    assert_eq!(invalid["errors"].as_array().unwrap().len(), 5);
    let mut unknown = padaria.clone();
    unknown["status"] = json!("active");
    call!(api, POST SIGNUP [], None, json(unknown) => 422);
    call!(api, POST SIGNUP [], None, json(json!(["not", "an", "object"])) => 422);
    call!(api, POST SIGNUP [], None, malformed() => 400);
    call!(api, POST SIGNUP [], None, Body::None => 400);
    call!(api, POST SIGNUP [], None, not_json() => 415);
    call!(api, POST SIGNUP [], None, oversized("organization_name") => 413);
    // Four well-formed signups so far (two of them duplicates): the fifth is refused.
    call!(api, POST SIGNUP [], None, json(json!({
        "organization_name": "Transportadora Rápida",
        "document": "98765432100",
        "phone": "(31) 98888-7777",
        "email": format!("ops+{tag}@rapida.com.br"),
        "imperius_licenses": 2
    })) => 429);

    // ------------------------------------------------------------ review queue
    let pending = call!(api, GET ACCOUNTS [], admin, Body::None => 200);
    let listed: Vec<&str> = pending["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| str_of(&i["id"]))
        .collect();
    assert_eq!(listed, [a.as_str(), b.as_str()], "oldest first");
    let first = call!(api, GET ACCOUNTS [] ? [("status", "pending"), ("limit", "1")],
        admin, Body::None => 200);
    let cursor = str_of(&first["next_cursor"]).to_owned();
    let query = [("status", "pending"), ("limit", "1"), ("cursor", &cursor)];
    let second =
        call!(api, GET ACCOUNTS [] ? [query[0], query[1], query[2]], admin, Body::None => 200);
    assert_eq!(second["items"][0]["id"], b.as_str());
    call!(api, GET ACCOUNTS [] ? [("status", "aprovado")], admin, Body::None => 422);
    call!(api, GET ACCOUNTS [] ? [("limit", "0")], admin, Body::None => 422);
    call!(api, GET ACCOUNTS [] ? [("cursor", "bm90LWEtY3Vyc29y")], admin, Body::None => 422);
    call!(api, GET ACCOUNTS [], None, Body::None => 401);
    call!(api, GET ACCOUNTS [], Some("nonsense"), Body::None => 401);

    let account = call!(api, GET ACCOUNT [&a], admin, Body::None => 200);
    assert_eq!(account["document"], "12ABC34501DE35");
    assert_eq!(account["phone"], "+5511987654321");
    assert_eq!(account["locale"], "pt-BR");
    let unknown_account = "acc_01jdq3x5v7c9e2g4k6m8p0r2t4";
    call!(api, GET ACCOUNT [unknown_account], admin, Body::None => 404);
    call!(api, GET ACCOUNT ["padaria"], admin, Body::None => 404);

    // ------------------------------------------------------------ decisions
    call!(api, PATCH ACCOUNT [&a], admin, json(json!({"quota_gb": 1})) => 409);
    let no_quota = json!({"quota_gb": 0, "imperius_licenses": 10});
    call!(api, POST APPROVE [&a], admin, json(no_quota) => 422);
    call!(api, POST APPROVE [&a], admin, json(json!({"quota_gb": 0.5})) => 422);
    call!(api, POST APPROVE [&a], admin, malformed() => 400);
    call!(api, POST APPROVE [&a], admin, Body::None => 400);
    call!(api, POST APPROVE [&a], admin, not_json() => 415);
    call!(api, POST APPROVE [&a], admin, oversized("quota_gb") => 413);
    let terms = json!({"quota_gb": 0.5, "imperius_licenses": 10});
    call!(api, POST APPROVE [unknown_account], admin, json(terms.clone()) => 404);
    let approved = call!(api, POST APPROVE [&a], admin, json(terms.clone()) => 200);
    assert_eq!(approved["status"], "active");
    assert_eq!(approved["quota_gb"], 0.5);
    call!(api, POST APPROVE [&a], admin, json(terms) => 409);

    let reason = "O cartão CNPJ enviado está ilegível; envie uma cópia atualizada.";
    call!(api, POST REJECT [&b], admin, json(json!({"reason": "   "})) => 422);
    call!(api, POST REJECT [&b], admin, json(json!({"reason": reason, "notify": false})) => 422);
    call!(api, POST REJECT [&b], admin, malformed() => 400);
    call!(api, POST REJECT [&b], admin, not_json() => 415);
    call!(api, POST REJECT [&b], admin, oversized("reason") => 413);
    call!(api, POST REJECT [unknown_account], admin, json(json!({"reason": reason})) => 404);
    let rejected = call!(api, POST REJECT [&b], admin, json(json!({"reason": reason})) => 200);
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["rejection_reason"], reason);
    call!(api, POST REJECT [&a], admin, json(json!({"reason": reason})) => 409);

    call!(api, POST ACTIVATION [&b], admin, Body::None => 409);
    call!(api, POST ACTIVATION [unknown_account], admin, Body::None => 404);
    call!(api, POST ACTIVATION [&a], admin, Body::None => 200);

    call!(api, PATCH ACCOUNT [&a], admin, json(json!({})) => 422);
    call!(api, PATCH ACCOUNT [&a], admin, json(json!({"quota_gb": "muito"})) => 422);
    call!(api, PATCH ACCOUNT [&a], admin, json(json!({"imperius_licenses": 1001})) => 422);
    call!(api, PATCH ACCOUNT [&a], admin, malformed() => 400);
    call!(api, PATCH ACCOUNT [&a], admin, not_json() => 415);
    call!(api, PATCH ACCOUNT [&a], admin, oversized("quota_gb") => 413);
    call!(api, PATCH ACCOUNT [&b], admin, json(json!({"quota_gb": 1})) => 409);
    call!(api, PATCH ACCOUNT [unknown_account], admin, json(json!({"quota_gb": 1})) => 404);
    let adjusted = call!(api, PATCH ACCOUNT [&a], admin, json(json!({"quota_gb": 2.5})) => 200);
    assert_eq!(adjusted["quota_gb"], 2.5);
    assert_eq!(adjusted["imperius_licenses"], 10);

    let active = call!(api, GET ACCOUNTS [] ? [("status", "active")], admin, Body::None => 200);
    assert_eq!(active["items"][0]["id"], a.as_str());
    let gone = call!(api, GET ACCOUNTS [] ? [("status", "rejected")], admin, Body::None => 200);
    assert_eq!(gone["items"][0]["id"], b.as_str());

    let audit = call!(api, GET AUDIT [&a], admin, Body::None => 200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_of(&e["action"]))
        .collect();
    assert_eq!(
        actions,
        ["adjust", "reissue_activation", "approve"],
        "newest first"
    );
    let page = call!(api, GET AUDIT [&a] ? [("limit", "2")], admin, Body::None => 200);
    let cursor = str_of(&page["next_cursor"]).to_owned();
    call!(api, GET AUDIT [&a] ? [("limit", "2"), ("cursor", &cursor)], admin, Body::None => 200);
    call!(api, GET AUDIT [&a] ? [("limit", "101")], admin, Body::None => 422);
    call!(api, GET AUDIT [unknown_account], admin, Body::None => 404);

    // ------------------------------------------------------------ activation
    let token = activation_token(&email_a).await;
    let long_token = "x".repeat(5 * 1024);
    call!(api, POST ACTIVATE [], None, json(json!({"token": long_token})) => 413);
    call!(api, POST ACTIVATE [], None, json(json!({"token": 42})) => 422);
    call!(api, POST ACTIVATE [], None, json(json!({"token": "nvm_at_nao-existe"})) => 422);
    call!(api, POST ACTIVATE [], None, malformed() => 400);
    call!(api, POST ACTIVATE [], None, not_json() => 415);
    let issued = call!(api, POST ACTIVATE [], None, json(json!({"token": token})) => 201);
    assert_eq!(issued["key"]["role"], "owner");
    let owner_credential = str_of(&issued["credential"]).to_owned();
    let owner = Some(owner_credential.as_str());
    // A retry (its answer lost) gets the same key, not a second one.
    let again = call!(api, POST ACTIVATE [], None, json(json!({"token": token})) => 201);
    assert_eq!(again, issued);
    call!(api, POST ACTIVATION [&a], admin, Body::None => 409);
    let account = call!(api, GET ACCOUNT [&a], admin, Body::None => 200);
    assert!(account["activated_at"].is_string(), "{account}");

    // ------------------------------------------------------------ keys
    let in_a_month = (Utc::now() + Duration::days(30)).to_rfc3339();
    let operator = call!(api, POST KEYS [], owner, json(json!({
        "name": "Servidor de backup da filial Campinas",
        "role": "operator",
        "expires_at": in_a_month
    })) => 201);
    assert!(operator["key"]["expires_at"].is_string());
    let operator_id = str_of(&operator["key"]["id"]).to_owned();
    let operator = str_of(&operator["credential"]).to_owned();
    let approver = call!(api, POST KEYS [], owner, json(json!({
        "name": "Aprovação de notas fiscais", "role": "approver", "expires_at": null
    })) => 201);
    let approver = str_of(&approver["credential"]).to_owned();
    call!(api, POST KEYS [], owner, json(json!({"name": "root", "role": "admin"})) => 422);
    let elsewhere = json!({"name": "x", "role": "owner", "account_id": b});
    call!(api, POST KEYS [], owner, json(elsewhere) => 422);
    call!(api, POST KEYS [], owner, json(json!({"name": " ", "role": "operator"})) => 422);
    call!(api, POST KEYS [], owner, json(json!({
        "name": "vencida", "role": "operator", "expires_at": "2020-01-01T00:00:00Z"
    })) => 422);
    call!(api, POST KEYS [], owner, malformed() => 400);
    call!(api, POST KEYS [], owner, not_json() => 415);
    call!(api, POST KEYS [], owner, oversized("name") => 413);

    let keys = call!(api, GET KEYS [], owner, Body::None => 200);
    assert_eq!(keys["items"].as_array().unwrap().len(), 3);
    assert!(
        keys["items"][0]["last_used_at"].is_string(),
        "the owner key was used"
    );
    let page = call!(api, GET KEYS [] ? [("limit", "2")], owner, Body::None => 200);
    let cursor = str_of(&page["next_cursor"]).to_owned();
    call!(api, GET KEYS [] ? [("limit", "2"), ("cursor", &cursor)], owner, Body::None => 200);
    call!(api, GET KEYS [] ? [("limit", "cem")], owner, Body::None => 422);
    call!(api, GET KEYS [], None, Body::None => 401);

    // Each protected operation refuses the roles it does not list.
    let credentials = [
        ("admin", admin_credential.as_str()),
        ("owner", owner_credential.as_str()),
        ("approver", approver.as_str()),
        ("operator", operator.as_str()),
    ];
    for ((method, path), op) in operations() {
        let Some(roles) = op["x-nuvem-roles"].as_array().filter(|r| !r.is_empty()) else {
            continue;
        };
        let arg = if path.starts_with("/v1/keys/") {
            &operator_id
        } else {
            &a
        };
        for (role, credential) in credentials {
            if roles.iter().any(|r| r == role) {
                continue;
            }
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            api.call(
                method,
                &path,
                &[arg, "1"],
                &[],
                Some(credential),
                Body::None,
                403,
            )
            .await;
        }
    }

    // ------------------------------------------------------------ WhatsApp stores
    let op = Some(operator.as_str());
    let cantina = call!(api, POST STORES [], owner, json(json!({
        "name": "Cantina da Nonna",
        "store_type": "restaurante",
        "bot_name": "Giulia",
        "forbidden": ["política"]
    })) => 201);
    let cantina = str_of(&cantina["id"]).to_owned();
    call!(api, POST STORES [], owner, json(json!({"name": "x", "store_type": "y", "cor": 1})) => 422);
    call!(api, POST STORES [], owner, json(json!(["Cantina", "restaurante"])) => 422);
    call!(api, GET STORES [], owner, Body::None => 200);
    call!(api, GET STORES [], op, Body::None => 200);
    call!(api, GET STORE [&cantina], op, Body::None => 200);
    call!(api, GET STORE [&cantina], owner, Body::None => 200);
    call!(api, GET STORE ["st_01jdq4a1b2c3d4e5f6g7h8j9k0"], owner, Body::None => 404);
    call!(api, PATCH STORE [&cantina], owner, json(json!({"message_limit": 20, "bot_name": null})) => 200);
    call!(api, PATCH STORE [&cantina], owner, json(json!({"context_minutes": 1})) => 422);
    let number = json!({
        "phone_number_id": "106540352242922",
        "waba_id": "102290129340398",
        "display_phone_number": "+55 11 98765-4321",
        "access_token": "EAAGm0PX4ZCps"
    });
    let slot = call!(api, PUT NUMBER [&cantina, "1"], owner, json(number.clone()) => 200);
    assert_eq!(slot["status"], "connected", "{slot}");
    call!(api, PUT NUMBER [&cantina, "2"], owner, json(number.clone()) => 409);
    call!(api, PUT NUMBER [&cantina, "4"], owner, json(number.clone()) => 404);
    call!(api, POST CHECK [&cantina, "1"], owner, Body::None => 200);
    call!(api, POST CHECK [&cantina, "1"], op, Body::None => 200);
    call!(api, POST CHECK [&cantina, "2"], op, Body::None => 404);

    // ------------------------------------------------------------ Meta's webhook
    let inbound = |wamid: &str| {
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "5511987654321", "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5511912345678"}],
                "messages": [{"from": "5511912345678", "id": wamid, "timestamp": Utc::now().timestamp().to_string(),
                              "type": "text", "text": {"body": "Vocês entregam hoje?"}}]
            }}]}]
        }))
        .unwrap()
    };
    let signed = |bytes: Vec<u8>| {
        let signature = nuvem_domain::whatsapp::signature::sign(META_APP_SECRET, &bytes);
        Body::Signed(bytes, Some(signature))
    };
    // Meta's app secret, as an operator puts it in after deploying (the
    // function reads it at its first webhook).
    common::put_secret(
        &runner,
        "WhatsAppSecret",
        json!({"app_secret": META_APP_SECRET, "verify_token": "token-de-verificacao"}),
    )
    .await;
    // ... and the chat API's key, for the bot.
    common::put_secret(
        &runner,
        "ChatApiSecret",
        json!({"api_key": "sk-or-v1-fluxo"}),
    )
    .await;
    let handshake = [
        ("hub.mode", "subscribe"),
        ("hub.verify_token", "token-de-verificacao"),
        ("hub.challenge", "1158201444"),
    ];
    let challenge = call!(api, GET META_WEBHOOK [] ? [handshake[0], handshake[1], handshake[2]], None, Body::None => 200);
    assert_eq!(challenge, json!("1158201444"));
    call!(api, GET META_WEBHOOK [] ? [handshake[0], ("hub.verify_token", "outro"), handshake[2]], None, Body::None => 403);
    let answer = call!(api, POST META_WEBHOOK [], None, signed(inbound("wamid.A1")) => 200);
    assert_eq!(answer, json!({"messages": 1, "statuses": 0, "unrouted": 0}));
    call!(api, POST META_WEBHOOK [], None, signed(inbound("wamid.A1")) => 200);
    call!(api, POST META_WEBHOOK [], None, Body::Signed(inbound("wamid.A2"), None) => 401);
    let forged =
        nuvem_domain::whatsapp::signature::sign("not-the-app-secret", &inbound("wamid.A2"));
    call!(api, POST META_WEBHOOK [], None, Body::Signed(inbound("wamid.A2"), Some(forged)) => 401);
    call!(api, POST META_WEBHOOK [], None, signed(b"{\"object\": \"page\", \"entry\": []}".to_vec()) => 400);
    call!(api, POST META_WEBHOOK [], None, signed(vec![b' '; 1024 * 1024 + 1]) => 413);

    // ------------------------------------------------------------ sending
    let to_ana = json!({"to": "+55 11 91234-5678", "text": "Entregamos sim, até as 18h."});
    let queued = call!(api, POST MESSAGES [&cantina], op, json(to_ana.clone()) => 202);
    assert_eq!(queued["state"], "queued");
    call!(api, POST MESSAGES [&cantina], owner, json(json!({
        "to": "5511912345678",
        "template": {"name": "pedido_pronto", "language": "pt_BR", "parameters": ["Ana"]}
    })) => 202);
    call!(api, POST MESSAGES [&cantina], owner, json(json!({"to": "5511912345678", "text": "x", "slot": 3})) => 409);
    call!(api, POST MESSAGES [&cantina], owner, json(json!({"to": "5511912345678"})) => 422);
    call!(api, POST MESSAGES [&cantina], owner, malformed() => 400);
    call!(api, POST MESSAGES [&cantina], owner, not_json() => 415);
    call!(api, POST MESSAGES [&cantina], owner, oversized("text") => 413);
    call!(api, POST MESSAGES ["st_01jdq4a1b2c3d4e5f6g7h8j9k0"], owner, json(to_ana) => 404);
    // The sender reaches the (fake) Graph API with the number's token, and
    // so does the bot's answer to the customer's message above.
    let sent = eventually_some("three sends at the Graph API", || async {
        let sent = graph.sends();
        (sent.len() >= 3).then_some(sent)
    })
    .await;
    let texts: Vec<&str> = sent.iter().filter_map(|r| r.text()).collect();
    assert!(texts.contains(&"Entregamos sim, até as 18h."), "{texts:?}");
    let asked: Vec<(u16, Option<String>)> = chat
        .requests()
        .iter()
        .map(|r| (r.status, r.header("authorization").map(str::to_owned)))
        .collect();
    assert!(
        texts.contains(&"Resposta: Vocês entregam hoje?"),
        "{texts:?}, the model was asked: {asked:?}"
    );
    assert!(sent.iter().all(|r| r.bearer() == Some("EAAGm0PX4ZCps")));

    // ------------------------------------------------------------ conversations
    let listed = call!(api, GET CONVERSATIONS [&cantina], op, Body::None => 200);
    let ana = str_of(&listed["items"][0]["id"]).to_owned();
    assert_eq!(listed["items"][0]["wa_id"], "5511912345678");
    call!(api, GET CONVERSATIONS [&cantina] ? [("needs_human", "true"), ("limit", "5")], owner, Body::None => 200);
    call!(api, GET CONVERSATIONS [&cantina] ? [("needs_human", "talvez")], owner, Body::None => 422);
    let lines = eventually_some("the conversation's four messages, sent", || async {
        let page = call!(api, GET CONVERSATION_MESSAGES [&cantina, &ana], owner, Body::None => 200);
        let items = page["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 4 && items.iter().all(|i| i["wamid"].is_string())).then_some(items)
    })
    .await;
    assert_eq!(lines[0]["direction"], "inbound");
    call!(api, GET CONVERSATION_MESSAGES [&cantina, &ana] ? [("limit", "2")], op, Body::None => 200);
    call!(api, GET CONVERSATION_MESSAGES [&cantina, "cv_01jdq4a1b2c3d4e5f6g7h8j9k0"], op, Body::None => 404);
    call!(api, POST RESUME [&cantina, &ana], op, Body::None => 200);
    call!(api, POST RESUME [&cantina, &ana], owner, Body::None => 200);
    call!(api, POST RESUME [&cantina, "cv_01jdq4a1b2c3d4e5f6g7h8j9k0"], owner, Body::None => 404);

    // ------------------------------------------------------------ notices
    call!(api, GET NOTICES [], owner, Body::None => 404);
    let notices = json!({
        "store_id": cantina, "slot": 1, "to": "+55 11 91234-5678",
        "templates": {"quota.threshold_crossed": {"name": "alerta_cota", "language": "pt_BR"}}
    });
    call!(api, PUT NOTICES [], owner, json(notices.clone()) => 200);
    call!(api, GET NOTICES [], owner, Body::None => 200);
    call!(api, GET NOTICES [], op, Body::None => 200);
    let mut empty_slot = notices.clone();
    empty_slot["slot"] = json!(2);
    call!(api, PUT NOTICES [], owner, json(empty_slot) => 409);
    let mut unknown = notices.clone();
    unknown["templates"] = json!({"key.created": {"name": "x", "language": "pt_BR"}});
    call!(api, PUT NOTICES [], owner, json(unknown) => 422);
    call!(api, DELETE NOTICES [], owner, Body::None => 204);
    call!(api, DELETE NOTICES [], owner, Body::None => 404);

    call!(api, DELETE NUMBER [&cantina, "1"], owner, Body::None => 204);
    call!(api, DELETE NUMBER [&cantina, "1"], owner, Body::None => 404);
    call!(api, DELETE STORE [&cantina], owner, Body::None => 204);
    call!(api, DELETE STORE [&cantina], owner, Body::None => 404);

    call!(api, GET BUCKETS [], Some(operator.as_str()), Body::None => 200);
    call!(api, POST BUCKETS [], owner, json(json!({"name": "leitura-operador"})) => 201);
    call!(api, GET BUCKET ["leitura-operador"], Some(operator.as_str()), Body::None => 200);
    call!(api, GET USAGE [], Some(operator.as_str()), Body::None => 200);
    call!(api, DELETE KEY [unknown_account], owner, Body::None => 404);
    call!(api, DELETE KEY ["key_01jdq4a1b2c3d4e5f6g7h8j9k0"], owner, Body::None => 404);
    let admin_key_id = admin_credential.split('.').next().unwrap();
    call!(api, DELETE KEY [admin_key_id], owner, Body::None => 404);
    // Admins manage the platform's admin keys, and see no tenant's.
    let admin = Some(admin_credential.as_str());
    let spare_admin = admin_key(&runner);
    let spare_admin_id = spare_admin.split('.').next().unwrap();
    let admins = call!(api, GET KEYS [], admin, Body::None => 200);
    let listed = item_ids(&admins);
    assert!(listed.contains(&admin_key_id) && listed.contains(&spare_admin_id));
    assert!(
        admins["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["role"] == "admin")
    );
    call!(api, DELETE KEY [&operator_id], admin, Body::None => 404);
    call!(api, DELETE KEY [spare_admin_id], admin, Body::None => 204);
    call!(api, DELETE KEY [&operator_id], owner, Body::None => 204);
    call!(api, DELETE KEY [&operator_id], owner, Body::None => 204);
    call!(api, GET KEYS [], Some(operator.as_str()), Body::None => 401);
    let keys = call!(api, GET KEYS [], owner, Body::None => 200);
    let revoked = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == operator_id.as_str())
        .unwrap();
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revoked_at"].is_string());

    // ------------------------------------------------------------ webhooks
    // The operator key above is revoked by now: a second one reads webhooks
    // and events (the coverage check below accepts either).
    let reader = call!(api, POST KEYS [], owner, json(json!({
        "name": "Painel de integrações", "role": "operator"
    })) => 201);
    let reader_credential = str_of(&reader["credential"]).to_owned();
    let reader = Some(reader_credential.as_str());
    let receiver = Receiver::start().await;
    let erp = json!({
        "url": receiver.url("/hook"),
        "description": " ERP da padaria ",
        "event_types": ["custom.order.paid"],
        "headers": {"Authorization": "Bearer token-do-erp"},
        "timeout_seconds": 10
    });
    let created = call!(api, POST WEBHOOKS [], owner, json(erp.clone()) => 201);
    let hook = str_of(&created["webhook"]["id"]).to_owned();
    let first_secret = str_of(&created["secret"]).to_owned();
    assert_eq!(created["webhook"]["description"], "ERP da padaria");
    assert_eq!(
        created["webhook"]["headers"],
        json!({"authorization": "[redacted]"})
    );
    assert_eq!(created["webhook"]["method"], "POST");
    assert_eq!(created["webhook"]["enabled"], true);
    // A second endpoint, disabled (fan-out and replays skip it), called with GET.
    let spare = call!(api, POST WEBHOOKS [], owner, json(json!({
        "url": receiver.url("/reserva"), "method": "GET", "enabled": false
    })) => 201);
    assert_eq!(spare["webhook"]["method"], "GET");
    let spare_secret = str_of(&spare["secret"]).to_owned();
    let spare = str_of(&spare["webhook"]["id"]).to_owned();
    let mut bad = erp.clone();
    bad["event_types"] = json!(["account.exploded"]);
    let invalid = call!(api, POST WEBHOOKS [], owner, json(bad) => 422);
    assert_eq!(invalid["errors"][0]["field"], "event_types");
    let mut bad = erp.clone();
    bad["headers"] = json!({"webhook-id": "evt_forjado"});
    let invalid = call!(api, POST WEBHOOKS [], owner, json(bad) => 422);
    assert_eq!(invalid["errors"][0]["field"], "headers.webhook-id");
    let ftp = json!({"url": "ftp://example.com/hook"});
    let invalid = call!(api, POST WEBHOOKS [], owner, json(ftp) => 422);
    assert_eq!(invalid["errors"][0]["field"], "url");
    let typo = json!({"url": "https://example.com/hook", "urls": []});
    call!(api, POST WEBHOOKS [], owner, json(typo) => 422);
    call!(api, POST WEBHOOKS [], owner, malformed() => 400);
    call!(api, POST WEBHOOKS [], owner, not_json() => 415);
    call!(api, POST WEBHOOKS [], owner, oversized("description") => 413);

    let hooks = call!(api, GET WEBHOOKS [], owner, Body::None => 200);
    let listed: Vec<&str> = hooks["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| str_of(&h["id"]))
        .collect();
    assert_eq!(listed, [hook.as_str(), spare.as_str()], "oldest first");
    let page = call!(api, GET WEBHOOKS [] ? [("limit", "1")], reader, Body::None => 200);
    let cursor = str_of(&page["next_cursor"]).to_owned();
    let next = call!(api, GET WEBHOOKS [] ? [("limit", "1"), ("cursor", &cursor)],
        reader, Body::None => 200);
    assert_eq!(next["items"][0]["id"], spare.as_str());
    call!(api, GET WEBHOOKS [] ? [("limit", "0")], owner, Body::None => 422);

    for credential in [owner, reader] {
        let read = call!(api, GET WEBHOOK [&hook], credential, Body::None => 200);
        assert_eq!(read["url"], created["webhook"]["url"]);
    }
    let unknown_hook = "wh_01jdq5m3n4p5q6r7s8t9v0w1x2";
    call!(api, GET WEBHOOK [unknown_hook], owner, Body::None => 404);
    call!(api, GET WEBHOOK ["padaria"], owner, Body::None => 404);
    call!(api, GET WEBHOOK [&a], reader, Body::None => 404);

    let patched = call!(api, PATCH WEBHOOK [&hook], owner, json(json!({
        "description": "ERP da padaria (produção)", "rate_limit_per_second": 50
    })) => 200);
    assert_eq!(patched["description"], "ERP da padaria (produção)");
    assert_eq!(patched["rate_limit_per_second"], 50);
    assert_eq!(patched["headers"], json!({"authorization": "[redacted]"}));
    let unlimited = call!(api, PATCH WEBHOOK [&hook], owner, json(json!({
        "rate_limit_per_second": null, "ordered": true,
        "headers": {"authorization": "[redacted]"}
    })) => 200);
    assert_eq!(unlimited["rate_limit_per_second"], Value::Null);
    assert_eq!(unlimited["ordered"], true);
    call!(api, PATCH WEBHOOK [&hook], owner, json(json!({"timeout_seconds": 0})) => 422);
    let secret = json!({"secret": first_secret});
    call!(api, PATCH WEBHOOK [&hook], owner, json(secret) => 422);
    call!(api, PATCH WEBHOOK [&hook], owner, malformed() => 400);
    call!(api, PATCH WEBHOOK [&hook], owner, not_json() => 415);
    call!(api, PATCH WEBHOOK [&hook], owner, oversized("description") => 413);
    let enable = json!({"enabled": true});
    call!(api, PATCH WEBHOOK [unknown_hook], owner, json(enable) => 404);

    // ------------------------------------------------------------ webhook secrets
    let secrets = call!(api, GET SECRET [&hook], owner, Body::None => 200);
    assert_eq!(secrets, json!({ "secret": first_secret }));
    call!(api, GET SECRET [&hook], reader, Body::None => 403);
    call!(api, GET SECRET [unknown_hook], owner, Body::None => 404);
    let rotated = call!(api, POST ROTATE [&hook], owner, Body::None => 200);
    let second_secret = str_of(&rotated["secret"]).to_owned();
    assert_ne!(second_secret, first_secret);
    assert_eq!(rotated["previous_secret"], first_secret.as_str());
    assert!(rotated["previous_secret_expires_at"].is_string());
    let own = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rotated = call!(api, POST ROTATE [&hook], owner, json(json!({"secret": own})) => 200);
    assert_eq!(rotated["secret"], own);
    assert_eq!(rotated["previous_secret"], second_secret.as_str());
    let secrets = call!(api, GET SECRET [&hook], owner, Body::None => 200);
    assert_eq!(secrets["secret"], own);
    assert_eq!(secrets["previous_secret"], second_secret.as_str());
    call!(api, POST ROTATE [&hook], owner, json(json!({"secret": "whsec_AQ"})) => 422);
    call!(api, POST ROTATE [&hook], owner, malformed() => 400);
    call!(api, POST ROTATE [&hook], owner, not_json() => 415);
    call!(api, POST ROTATE [&hook], owner, oversized("secret") => 413);
    call!(api, POST ROTATE [unknown_hook], owner, Body::None => 404);

    // ------------------------------------------------------------ test deliveries
    let attempt = call!(api, POST TEST [&hook], owner, Body::None => 200);
    assert_eq!(attempt["outcome"], "succeeded", "{attempt}");
    assert_eq!(attempt["response_status"], 200);
    assert_eq!(attempt["event_type"], "webhook.test");
    let sent = &attempt["request_headers"];
    assert_eq!(sent["authorization"], "[redacted]");
    assert_eq!(sent["webhook-signature"], "v1,[redacted] v1,[redacted]");
    let test_event = str_of(&attempt["event_id"]).to_owned();
    let got = deliveries_of(&receiver, &test_event, 1).await;
    assert_eq!(got.len(), 1, "the test delivery reached the receiver");
    let request = &got[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(request.header("authorization"), Some("Bearer token-do-erp"));
    assert_eq!(request.json()["type"], "webhook.test");
    assert_eq!(request.json()["data"]["webhook_id"], hook.as_str());
    // Signed with the current secret and, during the overlap, the previous one.
    request.verify(own).unwrap();
    request.verify(&second_secret).unwrap();
    assert!(request.verify(&first_secret).is_err());

    receiver.reply([Reply::status(500).body("erro interno do ERP")]);
    let failed = call!(api, POST TEST [&hook], owner, Body::None => 200);
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert_eq!(failed["response_status"], 500);
    assert_eq!(failed["response_body_excerpt"], "erro interno do ERP");
    assert!(
        failed["next_attempt_at"].is_null(),
        "test deliveries are not retried"
    );
    call!(api, POST TEST [unknown_hook], owner, Body::None => 404);

    // A GET endpoint gets no body, and the empty payload is signed; a
    // disabled endpoint can still be tested.
    let probe = call!(api, POST TEST [&spare], owner, Body::None => 200);
    assert_eq!(probe["outcome"], "succeeded", "{probe}");
    let got = deliveries_of(&receiver, str_of(&probe["event_id"]), 1).await;
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("GET", "/reserva")
    );
    assert!(got[0].body.is_empty());
    assert_eq!(got[0].header("content-type"), None);
    got[0].verify(&spare_secret).unwrap();

    // ------------------------------------------------------------ attempts and stats
    let attempts = call!(api, GET ATTEMPTS [&hook], reader, Body::None => 200);
    let outcomes: Vec<&str> = attempts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| str_of(&item["outcome"]))
        .collect();
    assert_eq!(outcomes, ["failed", "succeeded"], "newest first");
    let only_failed = call!(api, GET ATTEMPTS [&hook] ? [("outcome", "failed")],
        owner, Body::None => 200);
    assert_eq!(only_failed["items"].as_array().unwrap().len(), 1);
    assert_eq!(only_failed["items"][0]["id"], failed["id"]);
    let page = call!(api, GET ATTEMPTS [&hook] ? [("limit", "1")], owner, Body::None => 200);
    let cursor = str_of(&page["next_cursor"]).to_owned();
    let next = call!(api, GET ATTEMPTS [&hook] ? [("limit", "1"), ("cursor", &cursor)],
        owner, Body::None => 200);
    assert_eq!(next["items"][0]["id"], attempt["id"]);
    call!(api, GET ATTEMPTS [&hook] ? [("outcome", "falhou")], owner, Body::None => 422);
    call!(api, GET ATTEMPTS [unknown_hook], owner, Body::None => 404);

    let stats = call!(api, GET STATS [&hook] ? [("window", "1h")], reader, Body::None => 200);
    assert_eq!(stats["window"], "1h");
    assert_eq!(stats["stats"]["attempts"], 2, "{stats}");
    assert_eq!(stats["stats"]["success_rate"], 0.5);
    assert_eq!(stats["stats"]["by_status_class"]["2xx"], 1);
    assert_eq!(stats["stats"]["by_status_class"]["5xx"], 1);
    assert_eq!(stats["state"]["enabled"], true);
    let stats = call!(api, GET STATS [&hook], owner, Body::None => 200);
    assert_eq!(stats["window"], "24h");
    call!(api, GET STATS [&hook] ? [("window", "1d")], owner, Body::None => 422);
    call!(api, GET STATS [unknown_hook], reader, Body::None => 404);

    // ------------------------------------------------------------ events
    let paid = json!({
        "type": "custom.order.paid",
        "data": {"order_id": "PED-1042", "total_brl": 189.9}
    });
    let fired = call!(api, POST EVENTS [], owner, json(paid.clone()) => 202);
    let fired_id = str_of(&fired["id"]).to_owned();
    assert_eq!(fired["type"], "custom.order.paid");
    assert_eq!(fired["account_id"], a.as_str());
    assert_eq!(fired["data"], paid["data"]);
    let catalogue_type = json!({"type": "account.approved", "data": {}});
    let invalid = call!(api, POST EVENTS [], owner, json(catalogue_type) => 422);
    assert_eq!(invalid["errors"][0]["field"], "type");
    let bad_name = json!({"type": "custom.Pedido Pago"});
    let invalid = call!(api, POST EVENTS [], owner, json(bad_name) => 422);
    assert_eq!(invalid["errors"][0]["field"], "type");
    let not_an_object = json!({"type": "custom.order.paid", "data": [1]});
    call!(api, POST EVENTS [], owner, json(not_an_object) => 422);
    call!(api, POST EVENTS [], owner, malformed() => 400);
    call!(api, POST EVENTS [], owner, not_json() => 415);
    let huge = json!({"type": "custom.big", "data": {"blob": "x".repeat(65 * 1024)}});
    call!(api, POST EVENTS [], owner, json(huge) => 413);
    // The subscribed endpoint gets it, signed with the current secret.
    let got = deliveries_of(&receiver, &fired_id, 1).await;
    assert_eq!(
        got.len(),
        1,
        "the custom event reached the subscribed endpoint"
    );
    assert_eq!(got[0].path, "/hook");
    assert_eq!(got[0].json()["data"], paid["data"]);
    got[0].verify(own).unwrap();

    let events = call!(api, GET EVENTS [], reader, Body::None => 200);
    assert_eq!(events["items"][0]["id"], fired_id.as_str(), "newest first");
    let page = call!(api, GET EVENTS [] ? [("limit", "1")], owner, Body::None => 200);
    let cursor = str_of(&page["next_cursor"]).to_owned();
    call!(api, GET EVENTS [] ? [("limit", "1"), ("cursor", &cursor)], owner, Body::None => 200);
    call!(api, GET EVENTS [] ? [("limit", "101")], owner, Body::None => 422);
    call!(api, GET EVENTS [] ? [("cursor", "bm90LWEtY3Vyc29y")], owner, Body::None => 422);
    // Repeated with its Idempotency-Key, a custom event is fired once.
    let shipped = json!({"type": "custom.order.shipped", "data": {"order_id": "PED-1042"}});
    let once = call!(api, POST EVENTS [], owner, Body::Keyed("ped-1042-shipped", Some(shipped.clone())) => 202);
    let again =
        call!(api, POST EVENTS [], owner, Body::Keyed("ped-1042-shipped", Some(shipped)) => 202);
    assert_eq!(once, again);
    let reused = call!(api, POST EVENTS [], owner, Body::Keyed("ped-1042-shipped", Some(paid.clone())) => 422);
    assert_eq!(reused["errors"][0]["field"], "Idempotency-Key");
    call!(api, POST EVENTS [], owner, Body::Keyed("com espaco", Some(paid.clone())) => 400);

    let event_id = str_of(&events["items"][0]["id"]).to_owned();
    let retried = call!(api, POST RETRY [&event_id], owner, Body::None => 202);
    assert_eq!(retried["event_id"], event_id.as_str());
    let targets: Vec<&str> = retried["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| str_of(&d["webhook_id"]))
        .collect();
    assert_eq!(targets, [hook.as_str()], "the disabled endpoint is skipped");
    let to_spare = json!({"webhook_id": spare});
    call!(api, POST RETRY [&event_id], owner, json(to_spare) => 409);
    let to_unknown = json!({"webhook_id": unknown_hook});
    let invalid = call!(api, POST RETRY [&event_id], owner, json(to_unknown) => 422);
    assert_eq!(invalid["errors"][0]["field"], "webhook_id");
    let to_hook = json!({"webhook_id": hook});
    call!(api, POST RETRY [&event_id], owner, json(to_hook) => 202);
    call!(api, POST RETRY [&event_id], owner, json(json!({"webhook": hook})) => 422);
    let keyed = call!(api, POST RETRY [&event_id], owner, Body::Keyed("replay-1", None) => 202);
    let repeat = call!(api, POST RETRY [&event_id], owner, Body::Keyed("replay-1", None) => 202);
    assert_eq!(keyed["deliveries"], repeat["deliveries"]);
    call!(api, POST RETRY [&event_id], owner, Body::Keyed("", None) => 400);
    call!(api, POST RETRY [&event_id], owner, malformed() => 400);
    call!(api, POST RETRY [&event_id], owner, not_json() => 415);
    call!(api, POST RETRY [&event_id], owner, oversized("webhook_id") => 413);
    call!(api, POST RETRY ["evt_01jdq6a2b3c4d5e6f7g8h9j0k1"], owner, Body::None => 404);
    call!(api, POST RETRY ["pedido-1042"], owner, Body::None => 404);
    // Every delivery of one event carries the event's id as webhook-id.
    // The keyed replay, asked twice, is delivered once.
    deliveries_of(&receiver, &event_id, 4).await;
    // Nothing to wait for: a grace for a fifth delivery to show up.
    tokio::time::sleep(Wait::from_secs(2)).await;
    let got = deliveries_of(&receiver, &event_id, 4).await;
    assert_eq!(
        got.len(),
        4,
        "the first delivery, two replays and a keyed one"
    );
    for request in &got {
        request.verify(own).unwrap();
    }

    for credential in [owner, reader, Some(approver.as_str())] {
        let catalogue = call!(api, GET EVENT_TYPES [], credential, Body::None => 200);
        assert_eq!(
            catalogue["items"].as_array().unwrap().len(),
            nuvem_domain::events::EventType::ALL.len()
        );
    }

    call!(api, DELETE WEBHOOK [&spare], owner, Body::None => 204);
    call!(api, DELETE WEBHOOK [&spare], owner, Body::None => 404);
    call!(api, GET WEBHOOK [&spare], reader, Body::None => 404);
    call!(api, DELETE WEBHOOK ["padaria"], owner, Body::None => 404);
    call!(api, DELETE WEBHOOK [&hook], owner, Body::None => 204);
    let hooks = call!(api, GET WEBHOOKS [], reader, Body::None => 200);
    assert_eq!(hooks["items"], json!([]));

    // ------------------------------------------------------------ buckets
    let created =
        call!(api, POST BUCKETS [], owner, json(json!({"name": "backups-contrato"})) => 201);
    assert_eq!(created["state"], "ready");
    call!(api, POST BUCKETS [], owner, json(json!({"name": "backups-contrato"})) => 409);
    call!(api, POST BUCKETS [], owner, json(json!({"name": "Com.Ponto"})) => 422);
    call!(api, POST BUCKETS [], owner, malformed() => 400);
    call!(api, POST BUCKETS [], owner, not_json() => 415);
    call!(api, POST BUCKETS [], owner, oversized("name") => 413);
    for credential in [owner, Some(approver.as_str())] {
        call!(api, GET BUCKETS [], credential, Body::None => 200);
        call!(api, GET BUCKET ["backups-contrato"], credential, Body::None => 200);
    }
    call!(api, GET BUCKET ["nao-existe"], owner, Body::None => 404);
    let licensed = call!(api, PATCH BUCKET ["backups-contrato"], owner, json(json!({"imperius_license": true})) => 200);
    assert_eq!(licensed["imperius_license"], true);
    call!(api, PATCH BUCKET ["backups-contrato"], owner, json(json!({"imperius_license": "sim"})) => 422);
    call!(api, PATCH BUCKET ["backups-contrato"], owner, malformed() => 400);
    call!(api, PATCH BUCKET ["backups-contrato"], owner, not_json() => 415);
    call!(api, PATCH BUCKET ["backups-contrato"], owner, oversized("imperius_license") => 413);
    call!(api, PATCH BUCKET ["nao-existe"], owner, json(json!({"imperius_license": true})) => 404);
    call!(api, DELETE BUCKET ["backups-contrato"], owner, Body::None => 409);
    for credential in [owner, Some(approver.as_str())] {
        let usage = call!(api, GET USAGE [], credential, Body::None => 200);
        assert_eq!(usage["imperius_licenses"]["in_use"], 1);
    }
    // ------------------------------------------------------------ storage keys
    let issued = call!(api, POST STORAGE_KEYS [], owner,
        json(json!({"name": "Conector Imperius Serviço", "buckets": ["backups-contrato"]})) => 201);
    let storage_key = str_of(&issued["storage_key"]["id"]).to_owned();
    assert_eq!(issued["buckets"], json!(["backups-contrato"]));
    let storage_secret = str_of(&issued["secret_access_key"]).to_owned();
    call!(api, POST STORAGE_KEYS [], owner, json(json!({"name": "x", "buckets": ["nao-existe"]})) => 422);
    call!(api, POST STORAGE_KEYS [], owner, json(json!({"name": "x", "access": "tudo"})) => 422);
    call!(api, POST STORAGE_KEYS [], Some(approver.as_str()), json(json!({"name": "x"})) => 403);
    call!(api, POST STORAGE_KEYS [], owner, malformed() => 400);
    call!(api, POST STORAGE_KEYS [], owner, not_json() => 415);
    call!(api, POST STORAGE_KEYS [], owner, oversized("name") => 413);
    let page = call!(api, GET STORAGE_KEYS [], owner, Body::None => 200);
    assert!(
        !page.to_string().contains(&storage_secret),
        "a secret is shown once"
    );
    call!(api, GET STORAGE_KEYS [] ? [("limit", "0")], owner, Body::None => 422);
    call!(api, GET STORAGE_KEYS [], Some(approver.as_str()), Body::None => 403);
    call!(api, GET STORAGE_KEY [&storage_key], owner, Body::None => 200);
    call!(api, GET STORAGE_KEY ["sk_01jdq3x5v7c9e2g4k6m8p0r2t4"], owner, Body::None => 404);
    call!(api, POST STORAGE_KEY_ROTATION [&storage_key], owner, Body::None => 200);
    call!(api, POST STORAGE_KEY_ROTATION [&storage_key], owner, Body::None => 409);
    call!(api, DELETE STORAGE_KEY_ROTATION [&storage_key], owner, Body::None => 200);
    call!(api, DELETE STORAGE_KEY_ROTATION [&storage_key], owner, Body::None => 409);
    call!(api, POST STORAGE_KEY_CONFIRM [&storage_key], owner, Body::None => 409);
    call!(api, POST STORAGE_KEY_ROTATION [&storage_key], owner, Body::None => 200);
    let rotated = call!(api, POST STORAGE_KEY_CONFIRM [&storage_key], owner, Body::None => 200);
    assert!(rotated["rotated_at"].is_string());
    call!(api, POST STORAGE_KEY_CONFIRM ["sk_01jdq3x5v7c9e2g4k6m8p0r2t4"], owner, Body::None => 404);
    call!(api, DELETE STORAGE_KEY [&storage_key], owner, Body::None => 204);
    call!(api, DELETE STORAGE_KEY [&storage_key], owner, Body::None => 204);
    call!(api, DELETE STORAGE_KEY ["sk_01jdq3x5v7c9e2g4k6m8p0r2t4"], owner, Body::None => 404);
    call!(api, POST STORAGE_KEY_ROTATION [&storage_key], owner, Body::None => 409);

    call!(api, POST BUCKETS [], owner, json(json!({"name": "temporario"})) => 201);
    call!(api, DELETE BUCKET ["temporario"], owner, Body::None => 204);
    call!(api, DELETE BUCKET ["temporario"], owner, Body::None => 404);

    // ------------------------------------------------------------ RPA
    let vivo = json!({
        "code": "vivo", "name": "Vivo Empresas", "portal_url": "https://mve.vivo.com.br",
        "rpa_settings": {"perfil": "empresas"}
    });
    let carrier = call!(api, POST CARRIERS [], owner, json(vivo.clone()) => 201);
    assert_eq!(carrier["code"], "VIVO");
    call!(api, POST CARRIERS [], owner, json(vivo) => 409);
    call!(api, POST CARRIERS [], owner, json(json!({"code": "SAT", "name": "SAT"})) => 422);
    call!(api, POST CARRIERS [], Some(approver.as_str()), json(json!({"code": "OI", "name": "Oi"})) => 403);
    call!(api, POST CARRIERS [], owner, malformed() => 400);
    call!(api, POST CARRIERS [], owner, not_json() => 415);
    call!(api, POST CARRIERS [], owner, oversized("name") => 413);
    call!(api, POST CARRIERS [], owner, json(json!({"code": "OI", "name": "Oi"})) => 201);
    for credential in [owner, reader, Some(approver.as_str())] {
        let page = call!(api, GET CARRIERS [], credential, Body::None => 200);
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        call!(api, GET CARRIER ["vivo"], credential, Body::None => 200);
    }
    call!(api, GET CARRIERS [] ? [("limit", "0")], owner, Body::None => 422);
    call!(api, GET CARRIER ["CLARO"], owner, Body::None => 404);
    let paused = call!(api, PATCH CARRIER ["OI"], owner, json(json!({"active": false})) => 200);
    assert_eq!(paused["active"], false);
    call!(api, PATCH CARRIER ["OI"], owner, json(json!({"max_attempts": 0})) => 422);
    call!(api, PATCH CARRIER ["OI"], owner, malformed() => 400);
    call!(api, PATCH CARRIER ["OI"], owner, not_json() => 415);
    call!(api, PATCH CARRIER ["OI"], owner, oversized("name") => 413);
    call!(api, PATCH CARRIER ["CLARO"], owner, json(json!({"active": false})) => 404);

    let padaria = json!({
        "legal_name": "Padaria Pão Quente Ltda", "cnpj": "11.222.333/0001-81",
        "carrier": "VIVO", "unit": "Matriz", "service": "Móvel",
        "portal_login": "financeiro@paoquente.com.br", "portal_password": "s3nh@-do-portal"
    });
    let client = call!(api, POST CLIENTS [], owner, json(padaria.clone()) => 201);
    assert_eq!(client["has_portal_password"], true);
    assert!(!client.to_string().contains("s3nh@"), "{client}");
    let client_id = str_of(&client["id"]).to_owned();
    call!(api, POST CLIENTS [], owner, json(padaria) => 409);
    call!(api, POST CLIENTS [], owner, json(json!({"legal_name": "X", "cnpj": "1", "carrier": "VIVO"})) => 422);
    call!(api, POST CLIENTS [], owner, malformed() => 400);
    call!(api, POST CLIENTS [], owner, not_json() => 415);
    call!(api, POST CLIENTS [], owner, oversized("legal_name") => 413);
    call!(api, POST CLIENTS [], reader, json(json!({})) => 403);
    for credential in [owner, reader, Some(approver.as_str())] {
        call!(api, GET CLIENTS [] ? [("carrier", "VIVO"), ("active", "true"), ("cnpj", "11222333000181")],
            credential, Body::None => 200);
        call!(api, GET CLIENT [&client_id], credential, Body::None => 200);
    }
    call!(api, GET CLIENTS [] ? [("active", "sim")], owner, Body::None => 422);
    call!(api, GET CLIENT ["cli_01jdq5m3n4p5q6r7s8t9v0w1x2"], owner, Body::None => 404);
    call!(api, GET CLIENT ["padaria"], owner, Body::None => 404);
    let moved =
        call!(api, PATCH CLIENT [&client_id], owner, json(json!({"unit": "Filial Centro"})) => 200);
    assert_eq!(moved["unit"], "Filial Centro");
    call!(api, PATCH CLIENT [&client_id], owner, json(json!({"cpf": "123"})) => 422);
    call!(api, PATCH CLIENT [&client_id], owner, malformed() => 400);
    call!(api, PATCH CLIENT [&client_id], owner, not_json() => 415);
    call!(api, PATCH CLIENT [&client_id], owner, oversized("unit") => 413);
    call!(api, PATCH CLIENT ["cli_01jdq5m3n4p5q6r7s8t9v0w1x2"], owner, json(json!({})) => 404);

    let csv = "razao_social;cnpj;operadora;unidade;servico\n\
               Padaria Pão Quente Ltda;11.222.333/0001-81;VIVO;Filial Centro;Móvel\n\
               Padaria Pão Quente Ltda;11.222.333/0001-81;VIVO;Matriz;Móvel\n\
               Açougue Boi Bom;11.444.777/0001-61;CLARO;;\n";
    let report = call!(api, POST CLIENT_IMPORT [], owner,
        Body::Raw("text/csv", csv.as_bytes().to_vec()) => 200);
    let results: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| str_of(&r["result"]))
        .collect();
    assert_eq!(results, ["unchanged", "created", "refused"], "{report}");
    call!(api, POST CLIENT_IMPORT [], owner, Body::Raw("text/csv", b"nome;cnpj\n".to_vec()) => 422);
    call!(api, POST CLIENT_IMPORT [], owner, Body::Raw("application/json", b"{}".to_vec()) => 415);
    call!(api, POST CLIENT_IMPORT [], owner,
        Body::Raw("text/csv", vec![b'x'; 1024 * 1024 + 1]) => 413);
    call!(api, POST CLIENT_IMPORT [], Some(approver.as_str()), Body::Raw("text/csv", csv.as_bytes().to_vec()) => 403);

    let other_unit = json!({
        "legal_name": "Padaria Pão Quente Ltda", "cnpj": "11.222.333/0001-81",
        "carrier": "VIVO", "unit": "Filial Norte"
    });
    let north = call!(api, POST CLIENTS [], owner, json(other_unit) => 201);
    let north = str_of(&north["id"]).to_owned();
    let month = json!({"client_id": north, "month": "2026-11"});
    let process = call!(api, POST PROCESSES [], reader, json(month.clone()) => 201);
    assert_eq!(process["status"], "awaiting_download");
    let process_id = str_of(&process["id"]).to_owned();
    call!(api, POST PROCESSES [], owner, json(month) => 409);
    call!(api, POST PROCESSES [], owner, json(json!({"client_id": north, "month": "2026-13"})) => 422);
    call!(api, POST PROCESSES [], Some(approver.as_str()), json(json!({"client_id": north, "month": "2026-10"})) => 403);
    call!(api, POST PROCESSES [], owner, malformed() => 400);
    call!(api, POST PROCESSES [], owner, not_json() => 415);
    call!(api, POST PROCESSES [], owner, oversized("month") => 413);
    let december = call!(api, POST PROCESSES [], owner,
        json(json!({"client_id": north, "month": "2026-12"})) => 201);
    let december = str_of(&december["id"]).to_owned();
    for credential in [owner, reader, Some(approver.as_str())] {
        call!(api, GET PROCESSES [] ? [("month", "2026-11"), ("status", "awaiting_download"),
            ("carrier", "VIVO"), ("client_id", &north)], credential, Body::None => 200);
        call!(api, GET PROCESS [&process_id], credential, Body::None => 200);
        call!(api, GET MONTHLY_REPORT [] ? [("month", "2026-11")], credential, Body::None => 200);
    }
    call!(api, GET PROCESSES [] ? [("status", "pronto")], owner, Body::None => 422);
    call!(api, GET PROCESS ["prc_01jdq5m3n4p5q6r7s8t9v0w1x2_202611"], owner, Body::None => 404);
    call!(api, GET MONTHLY_REPORT [], owner, Body::None => 422);
    let refused = call!(api, POST APPROVE_PROCESS [&process_id], owner, Body::None => 409);
    assert_eq!(
        refused["detail"],
        "the process is awaiting_download; it cannot be approved"
    );
    receive_invoice(&runner, &a, &process_id).await;
    receive_invoice(&runner, &a, &december).await;
    call!(api, POST APPROVE_PROCESS [&process_id], reader, Body::None => 403);
    let approved =
        call!(api, POST APPROVE_PROCESS [&process_id], Some(approver.as_str()), Body::None => 200);
    assert_eq!(approved["status"], "awaiting_tax_filing");
    call!(api, POST APPROVE_PROCESS [&december], owner, Body::None => 200);
    call!(api, POST APPROVE_PROCESS ["prc_01jdq5m3n4p5q6r7s8t9v0w1x2_202611"], owner, Body::None => 404);
    let report =
        call!(api, GET MONTHLY_REPORT [] ? [("month", "2026-11")], owner, Body::None => 200);
    assert_eq!(report["total"]["by_status"]["awaiting_tax_filing"], 1);

    // Steps: the RPA API is a closed local port here, so a download's
    // attempts fail for a technical reason and wait a minute between them:
    // the execution stays under way while the flow runs.
    let south = json!({
        "legal_name": "Padaria Pão Quente Ltda", "cnpj": "11.222.333/0001-81",
        "carrier": "VIVO", "unit": "Filial Sul", "portal_password": "s3nh@-do-portal"
    });
    let south = call!(api, POST CLIENTS [], owner, json(south) => 201);
    let october = call!(api, POST PROCESSES [], owner,
        json(json!({"client_id": str_of(&south["id"]), "month": "2026-10"})) => 201);
    let october = str_of(&october["id"]).to_owned();
    call!(api, POST TAX_FILING [&october], owner, Body::None => 409);
    call!(api, POST DOWNLOAD [&october], Some(approver.as_str()), Body::None => 403);
    let begun = call!(api, POST DOWNLOAD [&october], reader, Body::None => 202);
    let first = str_of(&begun["id"]).to_owned();
    call!(api, POST DOWNLOAD [&october], owner, Body::None => 409);
    call!(api, POST CANCEL [&october], reader, Body::None => 200);
    call!(api, POST CANCEL [&october], owner, Body::None => 409);
    call!(api, POST DOWNLOAD [&october], owner, Body::None => 202);
    call!(api, POST CANCEL [&october], owner, Body::None => 200);
    call!(api, POST RETRY_PROCESS [&october], reader, Body::None => 202);
    call!(api, POST CANCEL [&october], reader, Body::None => 200);
    call!(api, POST RETRY_PROCESS [&october], owner, Body::None => 202);
    call!(api, POST RETRY_PROCESS [&process_id], Some(approver.as_str()), Body::None => 403);
    call!(api, POST DOWNLOAD ["prc_01jdq5m3n4p5q6r7s8t9v0w1x2_202611"], owner, Body::None => 404);
    for credential in [owner, reader, Some(approver.as_str())] {
        call!(api, GET EXECUTIONS [&october], credential, Body::None => 200);
        call!(api, GET EXECUTION [&october, &first], credential, Body::None => 200);
        call!(api, GET EXECUTION_LOGS [&october, &first] ? [("after", "0")], credential, Body::None => 200);
        call!(api, GET INVOICE [&process_id], credential, Body::None => 200);
    }
    call!(api, GET EXECUTIONS [&october] ? [("limit", "0")], owner, Body::None => 422);
    call!(api, GET EXECUTION [&october, "exe_01jdq5m3n4p5q6r7s8t9v0w1x2"], owner, Body::None => 404);
    call!(api, GET EXECUTION_LOGS [&october, &first] ? [("after", "x")], owner, Body::None => 422);
    call!(api, GET INVOICE [&october], owner, Body::None => 404);
    let filing = call!(api, POST TAX_FILING [&process_id], reader, Body::None => 202);
    assert_eq!(filing["step"], "tax_filing");
    call!(api, POST TAX_FILING [&december], owner, Body::None => 202);
    call!(api, POST TAX_FILING [&december], owner, Body::None => 409);
    let due = json!({"due_date": "2026-11-10", "amount_cents": 18990});
    let november = call!(api, POST PROCESSES [], owner,
        json(json!({"client_id": str_of(&south["id"]), "month": "2026-11"})) => 201);
    let november = str_of(&november["id"]).to_owned();
    let link = call!(api, POST INVOICE_UPLOAD [&november], reader, json(due.clone()) => 201);
    assert_eq!(link["headers"]["Content-Type"], "application/pdf");
    call!(api, POST INVOICE_UPLOAD [&november], owner, json(due.clone()) => 201);
    call!(api, POST INVOICE_UPLOAD [&november], Some(approver.as_str()), json(due.clone()) => 403);
    call!(api, POST INVOICE_UPLOAD [&october], owner, json(due.clone()) => 409);
    call!(api, POST INVOICE_UPLOAD [&november], owner, json(json!({"due_date": "10/11/2026"})) => 422);
    call!(api, POST INVOICE_UPLOAD [&november], owner, malformed() => 400);
    call!(api, POST INVOICE_UPLOAD [&november], owner, not_json() => 415);
    call!(api, POST INVOICE_UPLOAD [&november], owner, oversized("file_name") => 413);

    let monthly = json!({
        "name": "Processos do mês", "cron": "0 6 L * *", "type": "create_monthly_processes",
        "parameters": {"carriers": ["VIVO"], "month_offset": -1}
    });
    let schedule = call!(api, POST SCHEDULES [], owner, json(monthly.clone()) => 201);
    assert!(schedule["next_run"].is_string());
    let schedule_id = str_of(&schedule["id"]).to_owned();
    call!(api, POST SCHEDULES [], owner, json(monthly) => 409);
    call!(api, POST SCHEDULES [], owner, json(json!({"name": "x", "cron": "0 6 * *", "type": "run_downloads"})) => 422);
    call!(api, POST SCHEDULES [], reader, json(json!({})) => 403);
    call!(api, POST SCHEDULES [], owner, malformed() => 400);
    call!(api, POST SCHEDULES [], owner, not_json() => 415);
    call!(api, POST SCHEDULES [], owner, oversized("name") => 413);
    for credential in [owner, reader, Some(approver.as_str())] {
        call!(api, GET SCHEDULES [], credential, Body::None => 200);
        call!(api, GET SCHEDULE [&schedule_id], credential, Body::None => 200);
    }
    call!(api, GET SCHEDULES [] ? [("limit", "0")], owner, Body::None => 422);
    call!(api, GET SCHEDULE ["sch_01jdq5m3n4p5q6r7s8t9v0w1x2"], owner, Body::None => 404);
    let paused =
        call!(api, PATCH SCHEDULE [&schedule_id], owner, json(json!({"active": false})) => 200);
    assert_eq!(paused["next_run"], Value::Null);
    call!(api, PATCH SCHEDULE [&schedule_id], owner, json(json!({"time_zone": "Brasil"})) => 422);
    call!(api, PATCH SCHEDULE [&schedule_id], owner, malformed() => 400);
    call!(api, PATCH SCHEDULE [&schedule_id], owner, not_json() => 415);
    call!(api, PATCH SCHEDULE [&schedule_id], owner, oversized("name") => 413);
    call!(api, PATCH SCHEDULE ["sch_01jdq5m3n4p5q6r7s8t9v0w1x2"], owner, json(json!({})) => 404);
    call!(api, DELETE SCHEDULE [&schedule_id], owner, Body::None => 204);
    call!(api, DELETE SCHEDULE [&schedule_id], owner, Body::None => 404);

    call!(api, DELETE CARRIER ["VIVO"], owner, Body::None => 409);
    call!(api, DELETE CLIENT [&client_id], owner, Body::None => 204);
    call!(api, DELETE CLIENT [&client_id], owner, Body::None => 404);
    call!(api, DELETE CARRIER ["OI"], owner, Body::None => 204);
    call!(api, DELETE CARRIER ["OI"], owner, Body::None => 404);

    // ------------------------------------------------------------ coverage
    // Every operation succeeded, for each role it lists (with any key of it).
    let keys: Vec<(&str, &str)> = credentials
        .iter()
        .copied()
        .chain([("operator", reader_credential.as_str())])
        .collect();
    let seen = api.seen.lock().unwrap().clone();
    let succeeded = |id: &str, credential: Option<&str>| {
        seen.iter().any(|(o, s, c)| {
            o == id
                && (200..300).contains(s)
                && (credential.is_none() || c.as_deref() == credential)
        })
    };
    for op in operations().values() {
        let id = op["operationId"].as_str().unwrap();
        assert!(succeeded(id, None), "{id} was never called successfully");
        for role in op["x-nuvem-roles"].as_array().unwrap() {
            let mut with_role = keys.iter().filter(|(r, _)| role == r);
            assert!(
                with_role.any(|(_, credential)| succeeded(id, Some(credential))),
                "{id} was never called successfully by a key with the role {role}"
            );
        }
    }
    let statuses: BTreeSet<u16> = seen.iter().map(|(_, s, _)| *s).collect();
    for status in [400, 401, 403, 404, 409, 413, 415, 422, 429] {
        assert!(statuses.contains(&status), "no call answered {status}");
    }

    // ------------------------------------------------------------ isolation
    let tenant: BTreeSet<&str> = keys
        .iter()
        .filter(|(role, _)| *role != "admin")
        .map(|(_, credential)| *credential)
        .collect();
    // From another address: this one has used up its signups for the hour.
    let elsewhere = Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().ok())
        .build()
        .unwrap();
    let intruder = common::onboard(
        &common::Api {
            http: elsewhere,
            runner: &runner,
        },
        &admin_credential,
        "529.982.247-25",
        &format!("intruso+{tag}@concorrente.com.br"),
    )
    .await
    .1;
    let owner_view = |calls: &[Succeeded]| {
        let calls = calls.to_vec();
        let owner = owner_credential.clone();
        let api = &api;
        async move {
            let mut view = BTreeMap::new();
            for c in calls.iter().filter(|c| c.method == Method::GET) {
                let (status, text) = api.raw(c, Some(&owner)).await;
                let answer = serde_json::from_str(&text).map_or(Value::String(text), unsigned);
                view.insert(
                    format!("{} {:?} {:?}", c.path, c.args, c.query),
                    (status, answer),
                );
            }
            view
        }
    };
    let calls = api.succeeded.lock().unwrap().clone();
    let tenants_calls: Vec<Succeeded> = calls
        .into_iter()
        .filter(|c| c.credential.as_deref().is_some_and(|k| tenant.contains(k)))
        .collect();
    let on_ids: Vec<&Succeeded> = tenants_calls
        .iter()
        .filter(|c| !c.args.is_empty())
        .collect();
    let ids: BTreeSet<&str> = on_ids
        .iter()
        .flat_map(|c| c.args.iter().map(String::as_str))
        .filter(|id| id.len() >= 8)
        .collect();
    // Every tenant operation on an id is tried.
    let tried: BTreeSet<(String, String)> = on_ids
        .iter()
        .map(|c| (c.method.as_str().to_owned(), c.path.clone()))
        .collect();
    for ((method, path), op) in operations() {
        let tenants = op["x-nuvem-roles"]
            .as_array()
            .is_some_and(|roles| roles.iter().any(|r| r != "admin"));
        if tenants && path.contains('{') {
            assert!(
                tried.contains(&(method.clone(), path.clone())),
                "{method} {path} is not tried with another account's key"
            );
        }
    }
    let before = owner_view(&tenants_calls).await;
    // Every call the tenant's keys made on its own ids, made with the key of
    // another account: refused, whatever the method.
    for c in &on_ids {
        let (status, text) = api.raw(c, Some(&intruder)).await;
        assert!(
            status == 404 || status == 403,
            "{} {} {:?} with another account's key: {status} {text}",
            c.method,
            c.path,
            c.args
        );
    }
    // Its listings show none of the tenant's ids.
    for c in tenants_calls
        .iter()
        .filter(|c| c.args.is_empty() && c.method == Method::GET)
    {
        let (status, text) = api.raw(c, Some(&intruder)).await;
        assert!(status < 500, "{} {}: {status} {text}", c.method, c.path);
        for id in &ids {
            assert!(
                !text.contains(id),
                "{} {} shows {id} to another account: {text}",
                c.method,
                c.path
            );
        }
    }
    // And nothing the tenant reads changed.
    let after = owner_view(&tenants_calls).await;
    for (call, answer) in &before {
        assert_eq!(
            Some(answer),
            after.get(call),
            "{call} changed after another account's calls"
        );
    }
    common::assert_no_secret_logged();
}
