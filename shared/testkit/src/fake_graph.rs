//! A fake of Meta's WhatsApp Cloud API (the Graph API) on 127.0.0.1: the
//! number check (`GET /{version}/{phone_number_id}`), sends and
//! mark-as-read (`POST /{version}/{phone_number_id}/messages`), with Meta's
//! answer shapes and error bodies. It knows a set of numbers, each with its
//! access token, records every request, and answers from a per-number
//! script of failures (Meta's error codes, gateway errors, delays) before
//! falling back to the normal answer.
//!
//! ```ignore
//! let graph = FakeGraph::start().await;
//! graph.add_number("106540352242922", "EAAtoken", "+55 11 98765-4321", "Loja");
//! graph.script("106540352242922", [GraphReply::rate_limited()]);
//! // point the client at graph.url(); the version in the path may be any vNN.N
//! ```
//!
//! What is checked follows Meta's documented behaviour closely enough for a
//! client to meet every outcome it must handle: a request without a token
//! is `104`, an unknown token `190` (HTTP 401), a number the token cannot
//! see `100` with subcode `33`, a malformed send `100` with the parameter
//! named, a text over 4096 characters `100`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

/// The most characters WhatsApp takes in a text message's body.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The fields of a phone number the fake knows; asking for another is an
/// error, as with Meta.
const NUMBER_FIELDS: [&str; 12] = [
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "code_verification_status",
    "platform_type",
    "throughput",
    "name_status",
    "status",
    "messaging_limit_tier",
    "is_official_business_account",
    "account_mode",
];

/// What Meta answers a `GET` of a number without `fields`.
const DEFAULT_NUMBER_FIELDS: [&str; 7] = [
    "verified_name",
    "code_verification_status",
    "display_phone_number",
    "quality_rating",
    "platform_type",
    "throughput",
    "id",
];

/// Which endpoint a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `GET /{version}/{phone_number_id}`.
    Check,
    /// `POST /{version}/{phone_number_id}/messages` with a message.
    Send,
    /// `POST /{version}/{phone_number_id}/messages` with `"status": "read"`.
    Read,
    /// Anything else (answered with Meta's unknown-path error).
    Other,
}

/// A business phone number the fake knows.
#[derive(Debug, Clone)]
pub struct Number {
    pub token: String,
    pub display_phone_number: String,
    pub verified_name: String,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`.
    pub quality_rating: String,
}

/// One scripted answer for the next request to a number (optionally only
/// the next request of one [`Call`]), used instead of the normal answer.
#[derive(Debug, Clone)]
pub struct GraphReply {
    /// `None`: answer normally (after the delay).
    outcome: Option<(u16, String)>,
    delay: Duration,
    only: Option<Call>,
}

/// A Meta error code with the HTTP status, title and details of Meta's
/// "WhatsApp Cloud API error codes" reference.
struct KnownError {
    code: i64,
    status: u16,
    title: &'static str,
    details: &'static str,
}

const KNOWN_ERRORS: [KnownError; 16] = [
    KnownError {
        code: 2,
        status: 503,
        title: "Service temporarily unavailable",
        details: "Temporary due to downtime or due to being overloaded.",
    },
    KnownError {
        code: 4,
        status: 429,
        title: "Application request limit reached",
        details: "The app has reached its API call rate limit.",
    },
    KnownError {
        code: 100,
        status: 400,
        title: "Invalid parameter",
        details: "The request included one or more unsupported or misspelled parameters.",
    },
    KnownError {
        code: 190,
        status: 401,
        title: "Access token has expired",
        details: "Error validating access token: Session has expired.",
    },
    KnownError {
        code: 368,
        status: 403,
        title: "Temporarily blocked for policies violations",
        details: "The WhatsApp Business Account associated with the app has been restricted or disabled for violating a platform policy.",
    },
    KnownError {
        code: 80007,
        status: 429,
        title: "Rate limit issues",
        details: "The WhatsApp Business Account has reached its rate limit.",
    },
    KnownError {
        code: 130429,
        status: 429,
        title: "Rate limit hit",
        details: "Message failed to send because there were too many messages sent from this phone number in a short period of time",
    },
    KnownError {
        code: 130472,
        status: 400,
        title: "User's number is part of an experiment",
        details: "Failed to send message because this user's phone number is part of an experiment",
    },
    KnownError {
        code: 131000,
        status: 500,
        title: "Something went wrong",
        details: "Message failed to send due to an unknown error.",
    },
    KnownError {
        code: 131016,
        status: 503,
        title: "Service unavailable",
        details: "A service is temporarily unavailable.",
    },
    KnownError {
        code: 131026,
        status: 400,
        title: "Message undeliverable",
        details: "Unable to deliver message.",
    },
    KnownError {
        code: 131047,
        status: 400,
        title: "Re-engagement message",
        details: "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    },
    KnownError {
        code: 131048,
        status: 400,
        title: "Spam rate limit hit",
        details: "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
    },
    KnownError {
        code: 131049,
        status: 400,
        title: "Meta chose not to deliver.",
        details: "This message was not delivered to maintain healthy ecosystem engagement.",
    },
    KnownError {
        code: 131056,
        status: 429,
        title: "(Business Account, Consumer Account) pair rate limit hit",
        details: "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
    },
    KnownError {
        code: 131062,
        status: 400,
        title: "Business-scoped User ID recipients are not supported for this message",
        details: "This message type cannot be sent to a business-scoped user ID.",
    },
];

/// Meta's error body.
pub fn meta_error(
    code: i64,
    subcode: Option<i64>,
    kind: &str,
    message: &str,
    details: Option<&str>,
) -> Value {
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": "AFakeGraphTrace0000000",
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    if let Some(details) = details {
        error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
    }
    json!({ "error": error })
}

impl GraphReply {
    /// Meta's answer for `code`: the HTTP status and title of Meta's error
    /// reference (`190` as an expired session, with subcode 463). A code
    /// the fake does not know is a 400 with a generic title.
    pub fn code(code: i64) -> GraphReply {
        if code == 190 {
            let body = meta_error(
                190,
                Some(463),
                "OAuthException",
                "Error validating access token: Session has expired on Tuesday, 30-Jun-26 10:00:00 PDT. The current time is Wednesday, 01-Jul-26 10:00:00 PDT.",
                None,
            );
            return GraphReply::raw(401, &body.to_string());
        }
        let (status, title, details) = KNOWN_ERRORS
            .iter()
            .find(|k| k.code == code)
            .map(|k| (k.status, k.title, k.details))
            .unwrap_or((400, "Error", "The request failed."));
        GraphReply::error(status, code, &format!("(#{code}) {title}"), details)
    }

    /// A Meta-shaped error with any status, code, message and details.
    pub fn error(status: u16, code: i64, message: &str, details: &str) -> GraphReply {
        let body = meta_error(code, None, "OAuthException", message, Some(details));
        GraphReply::raw(status, &body.to_string())
    }

    /// `130429`: the number's throughput was reached (retry).
    pub fn rate_limited() -> GraphReply {
        GraphReply::code(130429)
    }

    /// `131047`: more than 24 hours since the customer last wrote (failed).
    pub fn outside_window() -> GraphReply {
        GraphReply::code(131047)
    }

    /// `190`: the number's token has expired (number error).
    pub fn token_expired() -> GraphReply {
        GraphReply::code(190)
    }

    /// `368`: the account is blocked for policy violations (number error).
    pub fn blocked() -> GraphReply {
        GraphReply::code(368)
    }

    /// A server error with Meta's body: 500 is `131000`, 503 `131016`,
    /// any other status code `2` (service temporarily unavailable).
    pub fn server_error(status: u16) -> GraphReply {
        let code = match status {
            500 => 131000,
            503 => 131016,
            _ => 2,
        };
        let mut reply = GraphReply::code(code);
        if let Some((s, _)) = reply.outcome.as_mut() {
            *s = status;
        }
        reply
    }

    /// Any status and body (a gateway's HTML page, an empty body).
    pub fn raw(status: u16, body: &str) -> GraphReply {
        GraphReply {
            outcome: Some((status, body.to_owned())),
            delay: Duration::ZERO,
            only: None,
        }
    }

    /// The normal answer; with [`GraphReply::delay`], a slow Graph API.
    pub fn normal() -> GraphReply {
        GraphReply {
            outcome: None,
            delay: Duration::ZERO,
            only: None,
        }
    }

    /// Waited before answering (the request is handled first: a client
    /// that times out may still have had its message sent, as with Meta).
    pub fn delay(mut self, delay: Duration) -> GraphReply {
        self.delay = delay;
        self
    }

    /// Used only by the next request of this kind to the number.
    pub fn on(mut self, call: Call) -> GraphReply {
        self.only = Some(call);
        self
    }
}

/// A request as the fake saw it, with what it answered.
#[derive(Debug, Clone)]
pub struct GraphRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, `""` when none.
    pub query: String,
    pub call: Call,
    /// `vNN.N` from the path.
    pub version: Option<String>,
    pub phone_number_id: Option<String>,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    /// The parsed JSON body; `Null` for a `GET` or a body that is not JSON.
    pub body: Value,
    pub raw_body: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The `wamid` given to an accepted send.
    pub wamid: Option<String>,
    pub at: Instant,
}

impl GraphRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The token of `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> Option<&str> {
        bearer(self.header("authorization"))
    }

    /// Answered 2xx.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A send's `to` (phone), else its `recipient` (BSUID).
    pub fn to(&self) -> Option<&str> {
        self.body["to"]
            .as_str()
            .or_else(|| self.body["recipient"].as_str())
    }

    /// A send's `type` (`text` when absent, as with Meta).
    pub fn message_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or("text")
    }

    /// A text send's body.
    pub fn text(&self) -> Option<&str> {
        self.body["text"]["body"].as_str()
    }

    /// A template send's name.
    pub fn template_name(&self) -> Option<&str> {
        self.body["template"]["name"].as_str()
    }

    /// The message a send replies to (`context.message_id`), or the message
    /// a read marks.
    pub fn message_id(&self) -> Option<&str> {
        self.body["message_id"]
            .as_str()
            .or_else(|| self.body["context"]["message_id"].as_str())
    }

    /// A read that asked for the typing indicator.
    pub fn typing(&self) -> bool {
        self.body["typing_indicator"]["type"] == "text"
    }
}

#[derive(Default)]
struct GraphState {
    numbers: HashMap<String, Number>,
    scripts: HashMap<String, VecDeque<GraphReply>>,
    requests: Vec<GraphRequest>,
}

/// Requests kept for inspection: a `make dev` stack runs for hours, so the
/// oldest are dropped past this.
const KEPT_REQUESTS: usize = 10_000;
/// The fake's own route, not Meta's: the latest requests it received.
const INSPECT_PATH: &str = "/_fake/requests";

#[derive(Clone)]
pub struct FakeGraph {
    base: String,
    state: Arc<Mutex<GraphState>>,
}

impl FakeGraph {
    /// Starts on an ephemeral port of 127.0.0.1; it runs until the runtime
    /// ends.
    pub async fn start() -> FakeGraph {
        FakeGraph::start_on("127.0.0.1:0")
            .await
            .expect("bind a local port")
    }

    /// Starts on `addr` (`make dev` serves it on a fixed local port).
    pub async fn start_on(addr: &str) -> std::io::Result<FakeGraph> {
        let state = Arc::new(Mutex::new(GraphState::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let addr = crate::local_http::serve(addr, app).await?;
        Ok(FakeGraph {
            base: format!("http://{addr}"),
            state,
        })
    }

    /// The base URL, `http://127.0.0.1:<port>`, in place of
    /// `https://graph.facebook.com`.
    pub fn url(&self) -> String {
        self.base.clone()
    }

    /// Knows (or replaces) a number and its token.
    pub fn add_number(
        &self,
        phone_number_id: &str,
        token: &str,
        display_phone_number: &str,
        verified_name: &str,
    ) {
        self.state.lock().unwrap().numbers.insert(
            phone_number_id.to_owned(),
            Number {
                token: token.to_owned(),
                display_phone_number: display_phone_number.to_owned(),
                verified_name: verified_name.to_owned(),
                quality_rating: "GREEN".to_owned(),
            },
        );
    }

    /// Forgets a number: Meta no longer has it (code 100, subcode 33).
    pub fn remove_number(&self, phone_number_id: &str) {
        self.state.lock().unwrap().numbers.remove(phone_number_id);
    }

    /// Queues answers for the next requests to `phone_number_id`.
    pub fn script(&self, phone_number_id: &str, replies: impl IntoIterator<Item = GraphReply>) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .entry(phone_number_id.to_owned())
            .or_default()
            .extend(replies);
    }

    pub fn requests(&self) -> Vec<GraphRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    fn of(&self, call: Call) -> Vec<GraphRequest> {
        let state = self.state.lock().unwrap();
        state
            .requests
            .iter()
            .filter(|r| r.call == call)
            .cloned()
            .collect()
    }

    /// Every send, accepted or not.
    pub fn sends(&self) -> Vec<GraphRequest> {
        self.of(Call::Send)
    }

    /// Every mark-as-read.
    pub fn reads(&self) -> Vec<GraphRequest> {
        self.of(Call::Read)
    }

    /// Every number check.
    pub fn checks(&self) -> Vec<GraphRequest> {
        self.of(Call::Check)
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Waits until at least `n` sends arrived (or `timeout` passed) and
    /// returns all of them.
    pub async fn wait_for_sends(&self, n: usize, timeout: Duration) -> Vec<GraphRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let sends = self.sends();
            if sends.len() >= n || Instant::now() >= deadline {
                return sends;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// `vNN.N`.
fn is_version(segment: &str) -> bool {
    let Some((major, minor)) = segment
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
    else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// A unique message id shaped like Meta's (`wamid.` + base64).
fn new_wamid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let raw = format!("fake-graph.{}.{nanos}.{n}", std::process::id());
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// How many requests `GET /_fake/requests` shows unless `?limit=` says.
const INSPECT_DEFAULT: usize = 50;

/// `GET /_fake/requests[?limit=N]`: the latest requests (50, or N of the
/// last 10,000 kept), newest first, as a developer reads them (never the
/// bearer token).
fn inspect(state: &GraphState, limit: usize) -> axum::Json<Value> {
    let latest: Vec<Value> = state
        .requests
        .iter()
        .rev()
        .take(limit)
        .map(|r| {
            serde_json::json!({
                "method": r.method,
                "path": r.path,
                "status": r.status,
                "wamid": r.wamid,
                "body": r.body,
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "requests": latest }))
}

type Answer = (u16, Value);

fn invalid(message: &str, details: &str) -> Answer {
    (
        400,
        meta_error(
            100,
            None,
            "OAuthException",
            &format!("(#100) {message}"),
            Some(details),
        ),
    )
}

fn required(param: &str) -> Answer {
    invalid(
        &format!("The parameter {param} is required."),
        &format!("{param} is missing"),
    )
}

fn one_of(param: &str, allowed: &str, got: &Value) -> Answer {
    invalid(
        &format!("Param {param} must be one of {{{allowed}}} - got {got}."),
        &format!("{param} has an unsupported value"),
    )
}

fn non_empty_str(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.trim().is_empty())
}

/// The `messaging_product` every `/messages` request must name.
fn check_product(body: &Value) -> Result<(), Answer> {
    match &body["messaging_product"] {
        Value::Null => Err(required("messaging_product")),
        v if v == "whatsapp" => Ok(()),
        v => Err(one_of("messaging_product", "WHATSAPP", v)),
    }
}

fn check_read(body: &Value) -> Result<Answer, Answer> {
    check_product(body)?;
    if body["status"] != "read" {
        return Err(one_of("status", "READ", &body["status"]));
    }
    let id = match &body["message_id"] {
        Value::Null => return Err(required("message_id")),
        v => non_empty_str(v).ok_or_else(|| required("message_id"))?,
    };
    if !id.starts_with("wamid.") {
        return Err(invalid(
            "Invalid parameter",
            "message_id is not a WhatsApp message id",
        ));
    }
    match &body["typing_indicator"] {
        Value::Null => {}
        t if t["type"] == "text" => {}
        t => return Err(one_of("typing_indicator['type']", "TEXT", &t["type"])),
    }
    Ok((200, json!({"success": true})))
}

/// The send's recipient as Meta echoes it in `contacts`: a phone (`to`,
/// which wins when both are given) or a business-scoped user id
/// (`recipient`, `CC.<alphanumerics>`).
fn check_recipient(body: &Value) -> Result<Value, Answer> {
    if let Some(to) = non_empty_str(&body["to"]) {
        let digits: String = to.chars().filter(char::is_ascii_digit).collect();
        let shaped = to
            .chars()
            .all(|c| c.is_ascii_digit() || " +-()".contains(c));
        if !shaped || !(5..=15).contains(&digits.len()) {
            return Err(invalid("Invalid parameter", "to is not a phone number"));
        }
        return Ok(json!({"input": to, "wa_id": digits}));
    }
    if let Some(user) = non_empty_str(&body["recipient"]) {
        let bsuid = user.len() > 3
            && user.as_bytes()[..2].iter().all(u8::is_ascii_uppercase)
            && user.as_bytes()[2] == b'.'
            && user[3..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.');
        if !bsuid {
            return Err(invalid(
                "Invalid parameter",
                "recipient is not a business-scoped user id",
            ));
        }
        return Ok(json!({"input": user, "user_id": user}));
    }
    Err(required("to"))
}

fn check_content(body: &Value, kind: &str) -> Result<(), Answer> {
    match kind {
        "text" => {
            let text = &body["text"];
            let Some(text_body) = non_empty_str(&text["body"]) else {
                return Err(required("text['body']"));
            };
            if text_body.chars().count() > MAX_TEXT_CHARS {
                return Err(invalid(
                    &format!(
                        "Param text['body'] must be at most {MAX_TEXT_CHARS} characters long."
                    ),
                    "text['body'] is too long",
                ));
            }
            if !text["preview_url"].is_null() && !text["preview_url"].is_boolean() {
                return Err(invalid(
                    "Param text['preview_url'] must be a boolean.",
                    "preview_url",
                ));
            }
        }
        "template" => {
            let template = &body["template"];
            if non_empty_str(&template["name"]).is_none() {
                return Err(required("template['name']"));
            }
            if non_empty_str(&template["language"]["code"]).is_none() {
                return Err(required("template['language']['code']"));
            }
            let components = &template["components"];
            if !components.is_null() && !components.is_array() {
                return Err(invalid(
                    "Param template['components'] must be an array.",
                    "components",
                ));
            }
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            let media = &body[kind];
            if non_empty_str(&media["id"]).is_none() && non_empty_str(&media["link"]).is_none() {
                return Err(required(&format!("{kind}['id']")));
            }
        }
        "location" | "contacts" | "interactive" | "reaction" => {
            if body[kind].is_null() {
                return Err(required(kind));
            }
        }
        _ => {
            return Err(one_of(
                "type",
                "AUDIO, CONTACTS, DOCUMENT, IMAGE, INTERACTIVE, LOCATION, REACTION, STICKER, TEMPLATE, TEXT, VIDEO",
                &body["type"],
            ));
        }
    }
    Ok(())
}

fn check_send(body: &Value, wamid: &str) -> Result<Answer, Answer> {
    check_product(body)?;
    match &body["recipient_type"] {
        Value::Null => {}
        v if v == "individual" || v == "group" => {}
        v => return Err(one_of("recipient_type", "INDIVIDUAL, GROUP", v)),
    }
    let contact = check_recipient(body)?;
    let kind = match &body["type"] {
        Value::Null => "text",
        v => v.as_str().unwrap_or(""),
    };
    check_content(body, kind)?;
    match &body["context"] {
        Value::Null => {}
        c if non_empty_str(&c["message_id"]).is_some() => {}
        _ => return Err(required("context['message_id']")),
    }
    let mut message = json!({ "id": wamid });
    if kind == "template" {
        message["message_status"] = json!("accepted");
    }
    Ok((
        200,
        json!({
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [message],
        }),
    ))
}

fn number_fields(id: &str, number: &Number, uri: &Uri) -> Answer {
    let query: HashMap<String, String> = Query::try_from_uri(uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let wanted: Vec<String> = match query.get("fields") {
        Some(fields) => fields
            .split(',')
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect(),
        None => DEFAULT_NUMBER_FIELDS
            .iter()
            .map(|f| f.to_string())
            .collect(),
    };
    let all = json!({
        "id": id,
        "display_phone_number": number.display_phone_number,
        "verified_name": number.verified_name,
        "quality_rating": number.quality_rating,
        "code_verification_status": "VERIFIED",
        "platform_type": "CLOUD_API",
        "throughput": {"level": "STANDARD"},
        "name_status": "APPROVED",
        "status": "CONNECTED",
        "messaging_limit_tier": "TIER_1K",
        "is_official_business_account": false,
        "account_mode": "LIVE",
    });
    let mut out = serde_json::Map::new();
    for field in &wanted {
        if !NUMBER_FIELDS.contains(&field.as_str()) {
            return (
                400,
                meta_error(
                    100,
                    None,
                    "OAuthException",
                    &format!(
                        "(#100) Tried accessing nonexisting field ({field}) on node type (WhatsAppBusinessPhoneNumber)"
                    ),
                    None,
                ),
            );
        }
        out.insert(field.clone(), all[field.as_str()].clone());
    }
    // Graph always includes the id.
    out.insert("id".into(), json!(id));
    (200, Value::Object(out))
}

fn unsupported(method: &Method, id: &str) -> Answer {
    (
        400,
        meta_error(
            100,
            Some(33),
            "GraphMethodException",
            &format!(
                "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
                method.as_str().to_ascii_lowercase()
            ),
            None,
        ),
    )
}

/// Decides one request: the answer and the delay before it. Fills in what
/// the request is (version, number, call) and an accepted send's wamid.
fn decide(
    state: &mut GraphState,
    request: &mut GraphRequest,
    method: &Method,
    uri: &Uri,
) -> (Answer, Duration) {
    let segments: Vec<&str> = request
        .path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (version, id, call) = match (method, segments.as_slice()) {
        (&Method::GET, [v, id]) => (*v, *id, Call::Check),
        (&Method::POST, [v, id, "messages"]) => {
            let call = if request.body.get("status").is_some() {
                Call::Read
            } else {
                Call::Send
            };
            (*v, *id, call)
        }
        _ => {
            let message = format!("Unknown path components: {}", request.path);
            let body = meta_error(2500, None, "OAuthException", &message, None);
            return ((400, body), Duration::ZERO);
        }
    };
    if !is_version(version) {
        let message = format!("Unknown path components: /{version}");
        let body = meta_error(2500, None, "OAuthException", &message, None);
        return ((400, body), Duration::ZERO);
    }
    request.version = Some(version.to_owned());
    request.phone_number_id = Some(id.to_owned());
    request.call = call;

    let scripted = state.scripts.get_mut(id).and_then(|queue| {
        let at = queue
            .iter()
            .position(|r| r.only.is_none_or(|only| only == call))?;
        queue.remove(at)
    });
    let delay = scripted.as_ref().map_or(Duration::ZERO, |r| r.delay);
    if let Some((status, body)) = scripted.and_then(|r| r.outcome) {
        let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
        return ((status, body), delay);
    }

    let Some(token) = bearer(request.header("authorization")) else {
        let body = meta_error(
            104,
            None,
            "OAuthException",
            "An access token is required to request this resource.",
            None,
        );
        return ((400, body), delay);
    };
    if !state.numbers.values().any(|n| n.token == token) {
        let body = meta_error(
            190,
            None,
            "OAuthException",
            "Invalid OAuth access token - Cannot parse access token",
            None,
        );
        return ((401, body), delay);
    }
    // A token sees only its own number: any other id "does not exist".
    let Some(number) = state.numbers.get(id).filter(|n| n.token == token) else {
        return (unsupported(method, id), delay);
    };

    let answer = match call {
        Call::Check => number_fields(id, number, uri),
        Call::Read => check_read(&request.body).unwrap_or_else(|e| e),
        Call::Send => {
            if !request.body.is_object() {
                invalid("Invalid parameter", "the body is not a JSON object")
            } else {
                let wamid = new_wamid();
                match check_send(&request.body, &wamid) {
                    Ok(answer) => {
                        request.wamid = Some(wamid);
                        answer
                    }
                    Err(answer) => answer,
                }
            }
        }
        Call::Other => unreachable!("routed above"),
    };
    (answer, delay)
}

async fn answer(
    State(state): State<Arc<Mutex<GraphState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::GET && uri.path() == INSPECT_PATH {
        let limit = uri
            .query()
            .and_then(|q| q.strip_prefix("limit="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(INSPECT_DEFAULT);
        return inspect(&state.lock().unwrap(), limit).into_response();
    }
    let mut request = GraphRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        call: Call::Other,
        version: None,
        phone_number_id: None,
        headers: crate::local_http::lowercase_headers(&headers),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw_body: String::from_utf8_lossy(&body).into_owned(),
        status: 0,
        wamid: None,
        at: Instant::now(),
    };
    let ((status, body), delay) = {
        let mut state = state.lock().unwrap();
        let decided = decide(&mut state, &mut request, &method, &uri);
        request.status = decided.0.0;
        if state.requests.len() >= KEPT_REQUESTS {
            state.requests.drain(..KEPT_REQUESTS / 10);
        }
        state.requests.push(request);
        decided
    };
    tokio::time::sleep(delay).await;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match body {
        Value::String(raw) => (status, raw).into_response(),
        json => (status, axum::Json(json)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "106540352242922";
    const TOKEN: &str = "EAAGm0PX4ZCpsBAKZAtoken";

    async fn graph() -> FakeGraph {
        let graph = FakeGraph::start().await;
        graph.add_number(ID, TOKEN, "+55 11 98765-4321", "Loja Exemplo");
        graph
    }

    async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(graph: &FakeGraph, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/v26.0/{ID}/messages", graph.url()))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn text(to: &str, body: &str) -> Value {
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": false, "body": body}
        })
    }

    fn code(body: &Value) -> i64 {
        body["error"]["code"].as_i64().unwrap()
    }

    #[tokio::test]
    async fn a_number_check_answers_meta_fields_or_meta_errors() {
        let graph = graph().await;
        let url = format!("{}/v26.0/{ID}", graph.url());

        let (status, body) = get(&url, Some(TOKEN)).await;
        assert_eq!(status, 200);
        assert_eq!(body["id"], ID);
        assert_eq!(body["display_phone_number"], "+55 11 98765-4321");
        assert_eq!(body["verified_name"], "Loja Exemplo");
        assert_eq!(body["quality_rating"], "GREEN");
        assert_eq!(body["platform_type"], "CLOUD_API");

        let (status, body) =
            get(&format!("{url}?fields=verified_name%2Cstatus"), Some(TOKEN)).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"verified_name": "Loja Exemplo", "status": "CONNECTED", "id": ID})
        );
        let (status, body) = get(&format!("{url}?fields=secret"), Some(TOKEN)).await;
        assert_eq!((status, code(&body)), (400, 100));

        let (status, body) = get(&url, Some("wrong")).await;
        assert_eq!((status, code(&body)), (401, 190));
        assert_eq!(body["error"]["type"], "OAuthException");

        let (status, body) = get(&url, None).await;
        assert_eq!((status, code(&body)), (400, 104));

        let (status, body) = get(&format!("{}/v26.0/999", graph.url()), Some(TOKEN)).await;
        assert_eq!((status, code(&body)), (400, 100));
        assert_eq!(body["error"]["error_subcode"], 33);
        assert_eq!(body["error"]["type"], "GraphMethodException");

        // Any vNN.N is accepted; anything else is not a Graph path.
        assert_eq!(
            get(&format!("{}/v19.0/{ID}", graph.url()), Some(TOKEN))
                .await
                .0,
            200
        );
        let (status, body) = get(&format!("{}/latest/{ID}", graph.url()), Some(TOKEN)).await;
        assert_eq!((status, code(&body)), (400, 2500));

        let checks = graph.checks();
        assert_eq!(checks.len(), 7);
        assert_eq!(checks[0].bearer(), Some(TOKEN));
        assert_eq!(checks[0].version.as_deref(), Some("v26.0"));
    }

    #[tokio::test]
    async fn sends_return_unique_wamids_and_reads_succeed() {
        let graph = graph().await;
        let (status, body) = post(&graph, text("+55 11 91234-5678", "Olá")).await;
        assert_eq!(status, 200);
        assert_eq!(body["messaging_product"], "whatsapp");
        assert_eq!(body["contacts"][0]["input"], "+55 11 91234-5678");
        assert_eq!(body["contacts"][0]["wa_id"], "5511912345678");
        let first = body["messages"][0]["id"].as_str().unwrap().to_owned();
        assert!(first.starts_with("wamid."));

        let (_, body) = post(&graph, text("5511912345678", "De novo")).await;
        assert_ne!(body["messages"][0]["id"], first);

        // A business-scoped user id goes in `recipient`.
        let mut to_user = text("", "Oi");
        to_user.as_object_mut().unwrap().remove("to");
        to_user["recipient"] = json!("US.13491208655302741918");
        let (status, body) = post(&graph, to_user).await;
        assert_eq!(status, 200);
        assert_eq!(body["contacts"][0]["user_id"], "US.13491208655302741918");
        assert!(body["contacts"][0].get("wa_id").is_none());

        let template = json!({
            "messaging_product": "whatsapp", "to": "5511912345678", "type": "template",
            "template": {"name": "aviso_cota", "language": {"code": "pt_BR"},
              "components": [{"type": "body", "parameters": [{"type": "text", "text": "80%"}]}]}
        });
        let (status, body) = post(&graph, template).await;
        assert_eq!(status, 200);
        assert_eq!(body["messages"][0]["message_status"], "accepted");

        let read = json!({
            "messaging_product": "whatsapp", "status": "read", "message_id": first,
            "typing_indicator": {"type": "text"}
        });
        let (status, body) = post(&graph, read).await;
        assert_eq!((status, body), (200, json!({"success": true})));

        let sends = graph.sends();
        assert_eq!(sends.len(), 4);
        assert_eq!(sends[0].wamid.as_deref(), Some(first.as_str()));
        assert_eq!(sends[0].text(), Some("Olá"));
        assert_eq!(sends[2].to(), Some("US.13491208655302741918"));
        assert_eq!(sends[3].template_name(), Some("aviso_cota"));
        let reads = graph.reads();
        assert_eq!(reads.len(), 1);
        assert!(reads[0].typing());
        assert_eq!(reads[0].message_id(), Some(first.as_str()));

        // What a developer reads: newest first, as many as asked.
        let inspect = |query: &'static str| {
            let url = format!("{}/_fake/requests{query}", graph.url());
            async move {
                let got: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
                got["requests"].as_array().unwrap().clone()
            }
        };
        assert_eq!(inspect("").await.len(), 5);
        let two = inspect("?limit=2").await;
        assert_eq!(two.len(), 2);
        assert_eq!(two[0]["body"]["status"], "read");
        assert_eq!(two[1]["body"]["template"]["name"], "aviso_cota");
    }

    #[tokio::test]
    async fn malformed_requests_get_meta_400s() {
        let graph = graph().await;
        let too_long = "a".repeat(MAX_TEXT_CHARS + 1);
        let mut no_product = text("5511912345678", "x");
        no_product
            .as_object_mut()
            .unwrap()
            .remove("messaging_product");
        let mut no_to = text("5511912345678", "x");
        no_to.as_object_mut().unwrap().remove("to");
        let mut bad_type = text("5511912345678", "x");
        bad_type["type"] = json!("hologram");
        let mut bad_context = text("5511912345678", "x");
        bad_context["context"] = json!({});
        for (body, needle) in [
            (no_product, "messaging_product"),
            (no_to, "to"),
            (text("5511912345678", ""), "text['body']"),
            (text("5511912345678", &too_long), "at most 4096"),
            (text("not a phone", "x"), "Invalid parameter"),
            (bad_type, "type"),
            (bad_context, "context"),
            (
                json!({"messaging_product": "whatsapp", "to": "5511912345678", "type": "template",
                       "template": {"name": "x"}}),
                "language",
            ),
            (
                json!({"messaging_product": "whatsapp", "status": "read"}),
                "message_id",
            ),
            (
                json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.x",
                       "typing_indicator": {"type": "voice"}}),
                "typing_indicator",
            ),
            (
                json!({"messaging_product": "whatsapp", "recipient": "not-a-bsuid", "text": {"body": "x"}}),
                "recipient",
            ),
        ] {
            let (status, answer) = post(&graph, body.clone()).await;
            assert_eq!((status, code(&answer)), (400, 100), "{body}");
            let message = answer["error"]["message"].as_str().unwrap();
            let details = answer["error"]["error_data"]["details"].as_str().unwrap();
            assert!(
                message.contains(needle) || details.contains(needle),
                "{message} / {details}"
            );
        }
        // Exactly 4096 characters is fine (characters, not bytes).
        let (status, _) = post(&graph, text("5511912345678", &"é".repeat(MAX_TEXT_CHARS))).await;
        assert_eq!(status, 200);
        assert_eq!(graph.sends().iter().filter(|s| s.accepted()).count(), 1);
    }

    #[tokio::test]
    async fn scripted_failures_come_first_per_number_and_call() {
        let graph = graph().await;
        graph.script(
            ID,
            [
                GraphReply::rate_limited(),
                GraphReply::outside_window().on(Call::Send),
                GraphReply::server_error(502),
                GraphReply::raw(503, "<html>upstream</html>"),
            ],
        );
        // A read skips the send-only reply but takes the next general one.
        let read =
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.x"});
        let (status, body) = post(&graph, read.clone()).await;
        assert_eq!((status, code(&body)), (429, 130429));
        assert_eq!(
            body["error"]["error_data"]["details"],
            KNOWN_ERRORS[6].details
        );
        let (status, body) = post(&graph, read).await;
        assert_eq!((status, code(&body)), (502, 2));
        let (status, body) = post(&graph, text("5511912345678", "x")).await;
        assert_eq!((status, code(&body)), (400, 131047));
        assert_eq!(body["error"]["message"], "(#131047) Re-engagement message");
        let response = reqwest::Client::new()
            .post(format!("{}/v26.0/{ID}/messages", graph.url()))
            .bearer_auth(TOKEN)
            .json(&text("5511912345678", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(response.text().await.unwrap(), "<html>upstream</html>");
        // Script used up: normal again.
        assert_eq!(post(&graph, text("5511912345678", "x")).await.0, 200);

        graph.script(ID, [GraphReply::token_expired(), GraphReply::blocked()]);
        let (status, body) = post(&graph, text("5511912345678", "x")).await;
        assert_eq!((status, code(&body)), (401, 190));
        assert_eq!(body["error"]["error_subcode"], 463);
        let (status, body) = post(&graph, text("5511912345678", "x")).await;
        assert_eq!((status, code(&body)), (403, 368));

        let statuses: Vec<u16> = graph.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 502, 400, 503, 200, 401, 403]);
    }

    #[tokio::test]
    async fn a_delayed_answer_waits_and_tokens_see_only_their_number() {
        let graph = graph().await;
        graph.add_number("200", "other-token", "+1 555 0100", "Other");
        graph.script(ID, [GraphReply::normal().delay(Duration::from_millis(300))]);
        let started = Instant::now();
        assert_eq!(post(&graph, text("5511912345678", "x")).await.0, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));

        let (status, body) = get(&format!("{}/v26.0/200", graph.url()), Some(TOKEN)).await;
        assert_eq!((status, code(&body)), (400, 100));
        graph.remove_number("200");
        let (status, body) = get(&format!("{}/v26.0/200", graph.url()), Some(TOKEN)).await;
        assert_eq!(
            (status, body["error"]["error_subcode"].as_i64()),
            (400, Some(33))
        );
    }
}
