//! A fake OpenAI-compatible chat-completions API on 127.0.0.1, with
//! OpenRouter's answer and error shapes: `POST {base}/chat/completions`
//! under a base such as `http://127.0.0.1:<port>/api/v1`.
//!
//! It checks `Authorization: Bearer <key>` (a wrong or missing key is a
//! 401 with OpenRouter's error body, and does not use up the script),
//! records every request, and answers from a script: a completion with
//! given content, an empty or `null` content, an HTTP 200 whose body is an
//! error, 401/402/429 (with `Retry-After`)/5xx with OpenRouter's error body,
//! any raw answer, each optionally delayed. Unscripted requests get a
//! deterministic completion: `Resposta: <last user message>`.
//!
//! OpenRouter's error body is `{"error": {"code": <HTTP status>, "message":
//! "…", "metadata": {…}}}`; errors that happen once the model has started
//! come back with HTTP 200 and the same body (or an `error` on the choice).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Requests kept for inspection: a `make dev` stack runs for hours, so the
/// oldest are dropped past this.
const KEPT_REQUESTS: usize = 10_000;

/// The path prefix [`FakeChat::url`] ends with, as OpenRouter's base URL.
pub const BASE_PATH: &str = "/api/v1";

/// The model named in answers when the request names none (OpenRouter
/// then uses the account's default).
const DEFAULT_MODEL: &str = "openrouter/auto";

#[derive(Debug, Clone)]
enum Kind {
    /// `Resposta: <last user message>`.
    Echo,
    /// A completion whose message content is this (a string or `null`).
    Content(Value),
    /// A completion whose choice carries an error and no content.
    ChoiceError {
        code: u16,
        message: String,
    },
    Raw {
        status: u16,
        body: String,
    },
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct ChatReply {
    kind: Kind,
    headers: Vec<(String, String)>,
    /// Waited before answering (to play timeouts).
    delay: Duration,
}

/// OpenRouter's error body.
pub fn openrouter_error(code: u16, message: &str, metadata: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(metadata) = metadata {
        error["metadata"] = metadata;
    }
    json!({ "error": error })
}

impl ChatReply {
    fn of(kind: Kind) -> ChatReply {
        ChatReply {
            kind,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// The default answer: `Resposta: <last user message>`.
    pub fn echo() -> ChatReply {
        ChatReply::of(Kind::Echo)
    }

    /// A completion answering `content`.
    pub fn text(content: &str) -> ChatReply {
        ChatReply::of(Kind::Content(json!(content)))
    }

    /// A completion whose content is `""` (a model that said nothing).
    pub fn empty() -> ChatReply {
        ChatReply::of(Kind::Content(json!("")))
    }

    /// A completion whose content is `null`.
    pub fn null_content() -> ChatReply {
        ChatReply::of(Kind::Content(Value::Null))
    }

    /// A completion with no choices at all.
    pub fn no_choices() -> ChatReply {
        let body = json!({
            "id": "gen-fake-empty", "object": "chat.completion", "created": 0,
            "model": DEFAULT_MODEL, "choices": []
        });
        ChatReply::raw(200, &body.to_string())
    }

    /// HTTP 200 whose body is OpenRouter's error: the provider failed after
    /// the request was accepted.
    pub fn error_in_body(code: u16, message: &str) -> ChatReply {
        let body = openrouter_error(code, message, Some(json!({"provider_name": "Fake"})));
        ChatReply::raw(200, &body.to_string())
    }

    /// HTTP 200 whose choice carries an `error` (`finish_reason: "error"`).
    pub fn choice_error(code: u16, message: &str) -> ChatReply {
        ChatReply::of(Kind::ChoiceError {
            code,
            message: message.to_owned(),
        })
    }

    /// Any status with OpenRouter's error body (`code` = the status).
    pub fn error(status: u16, message: &str) -> ChatReply {
        ChatReply::raw(status, &openrouter_error(status, message, None).to_string())
    }

    /// 429, with `Retry-After: <secs>` when given.
    pub fn rate_limited(retry_after_secs: Option<u64>) -> ChatReply {
        let body = openrouter_error(
            429,
            "Rate limit exceeded: free-models-per-min.",
            Some(json!({"headers": {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0"}})),
        );
        let reply = ChatReply::raw(429, &body.to_string());
        match retry_after_secs {
            Some(secs) => reply.header("retry-after", &secs.to_string()),
            None => reply,
        }
    }

    /// 402: the account or key has no credits left.
    pub fn no_credits() -> ChatReply {
        ChatReply::error(
            402,
            "Insufficient credits. This account never purchased credits. Make sure your key is on the correct account or org, and if so, purchase more at https://openrouter.ai/settings/credits",
        )
    }

    /// A server error: 502 the model's provider failed, 503 no provider
    /// available, anything else an internal error.
    pub fn server_error(status: u16) -> ChatReply {
        let (message, metadata) = match status {
            502 => (
                "Provider returned error",
                Some(json!({"provider_name": "Fake", "raw": "upstream connect error"})),
            ),
            503 => (
                "No endpoints found that can handle the requested parameters.",
                None,
            ),
            _ => ("Internal Server Error", None),
        };
        ChatReply::raw(
            status,
            &openrouter_error(status, message, metadata).to_string(),
        )
    }

    /// Any status and body.
    pub fn raw(status: u16, body: &str) -> ChatReply {
        ChatReply::of(Kind::Raw {
            status,
            body: body.to_owned(),
        })
    }

    pub fn header(mut self, name: &str, value: &str) -> ChatReply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> ChatReply {
        self.delay = delay;
        self
    }
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    /// The parsed JSON body (`Null` when not JSON).
    pub body: Value,
    /// The HTTP status answered.
    pub status: u16,
    pub at: Instant,
}

impl ChatRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn model(&self) -> Option<&str> {
        self.body["model"].as_str()
    }

    /// `(role, content)` of each message; content that is not a string
    /// (an array of parts) is given as its JSON.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.body["messages"]
            .as_array()
            .map(|messages| messages.iter().map(role_and_content).collect())
            .unwrap_or_default()
    }

    /// The content of the last `user` message.
    pub fn last_user_message(&self) -> Option<String> {
        self.messages()
            .into_iter()
            .rev()
            .find(|(role, _)| role == "user")
            .map(|(_, content)| content)
    }
}

fn role_and_content(message: &Value) -> (String, String) {
    let role = message["role"].as_str().unwrap_or("").to_owned();
    let content = match &message["content"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (role, content)
}

struct ChatState {
    api_key: String,
    replies: VecDeque<ChatReply>,
    fallback: ChatReply,
    requests: Vec<ChatRequest>,
}

#[derive(Clone)]
pub struct FakeChat {
    base: String,
    state: Arc<Mutex<ChatState>>,
}

impl FakeChat {
    /// Starts on an ephemeral port of 127.0.0.1, accepting `api_key`; it
    /// runs until the runtime ends.
    pub async fn start(api_key: &str) -> FakeChat {
        FakeChat::start_on("127.0.0.1:0", api_key)
            .await
            .expect("bind a local port")
    }

    /// Starts on `addr` (`make dev` serves it on a fixed local port).
    pub async fn start_on(addr: &str, api_key: &str) -> std::io::Result<FakeChat> {
        let state = Arc::new(Mutex::new(ChatState {
            api_key: api_key.to_owned(),
            replies: VecDeque::new(),
            fallback: ChatReply::echo(),
            requests: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let addr = crate::local_http::serve(addr, app).await?;
        Ok(FakeChat {
            base: format!("http://{addr}{BASE_PATH}"),
            state,
        })
    }

    /// The base URL, `http://127.0.0.1:<port>/api/v1`, in place of
    /// `https://openrouter.ai/api/v1`.
    pub fn url(&self) -> String {
        self.base.clone()
    }

    /// Queues answers, used one per authorised request in order.
    pub fn reply(&self, replies: impl IntoIterator<Item = ChatReply>) {
        self.state.lock().unwrap().replies.extend(replies);
    }

    /// The answer once the queued ones are used up ([`ChatReply::echo`]
    /// unless set).
    pub fn fallback(&self, reply: ChatReply) {
        self.state.lock().unwrap().fallback = reply;
    }

    pub fn requests(&self) -> Vec<ChatRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Waits until at least `n` requests arrived (or `timeout` passed) and
    /// returns all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ChatRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n || Instant::now() >= deadline {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn generation_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "gen-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Words, as a stand-in for tokens.
fn tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn completion(request: &Value, content: Value, error: Option<Value>) -> Value {
    let model = request["model"].as_str().unwrap_or(DEFAULT_MODEL);
    let prompt: u64 = request["messages"]
        .as_array()
        .map(|m| m.iter().map(|m| tokens(&role_and_content(m).1)).sum())
        .unwrap_or(0);
    let completion = content.as_str().map(tokens).unwrap_or(0);
    let finish = if error.is_some() { "error" } else { "stop" };
    let mut choice = json!({
        "logprobs": null,
        "finish_reason": finish,
        "native_finish_reason": finish,
        "index": 0,
        "message": {"role": "assistant", "content": content, "refusal": null},
    });
    if let Some(error) = error {
        choice["error"] = error;
    }
    json!({
        "id": generation_id(),
        "provider": "Fake",
        "model": model,
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    })
}

/// Why a request is refused before the script is consulted.
fn refusal(state: &ChatState, method: &Method, path: &str, request: &ChatRequest) -> Option<Value> {
    if *method != Method::POST || path != format!("{BASE_PATH}/chat/completions") {
        return Some(openrouter_error(404, "Not Found", None));
    }
    let key = request.header("authorization").and_then(|h| {
        let (scheme, key) = h.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
    });
    match key {
        None | Some("") => return Some(openrouter_error(401, "No auth credentials found", None)),
        Some(key) if key != state.api_key => {
            return Some(openrouter_error(401, "User not found.", None));
        }
        Some(_) => {}
    }
    let messages = request.body["messages"].as_array();
    let valid = messages.is_some_and(|messages| {
        !messages.is_empty()
            && messages.iter().all(|m| {
                matches!(
                    m["role"].as_str(),
                    Some("system" | "user" | "assistant" | "tool" | "developer")
                ) && (m["content"].is_string() || m["content"].is_array())
            })
    });
    if !valid {
        return Some(openrouter_error(
            400,
            "Input required: specify \"prompt\" or \"messages\" with a role and content for each message",
            None,
        ));
    }
    None
}

async fn answer(
    State(state): State<Arc<Mutex<ChatState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut request = ChatRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: crate::local_http::lowercase_headers(&headers),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status: 0,
        at: Instant::now(),
    };
    let (status, body, extra, delay) = {
        let mut state = state.lock().unwrap();
        let (status, body, extra, delay) = match refusal(&state, &method, uri.path(), &request) {
            Some(error) => {
                let status = error["error"]["code"].as_u64().unwrap_or(400) as u16;
                (status, error.to_string(), Vec::new(), Duration::ZERO)
            }
            None => {
                let reply = match state.replies.pop_front() {
                    Some(reply) => reply,
                    None => state.fallback.clone(),
                };
                let (status, body) = match reply.kind {
                    Kind::Echo => {
                        let last = request.last_user_message().unwrap_or_default();
                        let content = json!(format!("Resposta: {last}"));
                        (200, completion(&request.body, content, None).to_string())
                    }
                    Kind::Content(content) => {
                        (200, completion(&request.body, content, None).to_string())
                    }
                    Kind::ChoiceError { code, message } => {
                        let error = openrouter_error(code, &message, None)["error"].clone();
                        (
                            200,
                            completion(&request.body, json!(""), Some(error)).to_string(),
                        )
                    }
                    Kind::Raw { status, body } => (status, body),
                };
                (status, body, reply.headers, reply.delay)
            }
        };
        request.status = status;
        if state.requests.len() >= KEPT_REQUESTS {
            state.requests.drain(..KEPT_REQUESTS / 10);
        }
        state.requests.push(request);
        (status, body, extra, delay)
    };
    tokio::time::sleep(delay).await;
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-or-v1-test";

    fn request(content: &str) -> Value {
        json!({
            "model": "openai/gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Você é a Bia."},
                {"role": "user", "content": content}
            ]
        })
    }

    async fn call(chat: &FakeChat, key: &str, body: &Value) -> (u16, HeaderMap, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/chat/completions", chat.url()))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn answers_a_deterministic_completion_in_openai_shape() {
        let chat = FakeChat::start(KEY).await;
        assert!(chat.url().ends_with("/api/v1"));
        let (status, _, body) = call(&chat, KEY, &request("Qual o horário?")).await;
        assert_eq!(status, 200);
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "openai/gpt-4o-mini");
        assert!(body["id"].as_str().unwrap().starts_with("gen-"));
        let choice = &body["choices"][0];
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "Resposta: Qual o horário?");
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(body["usage"]["total_tokens"], 11);

        let requests = chat.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].model(), Some("openai/gpt-4o-mini"));
        assert_eq!(
            requests[0].messages(),
            [
                ("system".to_owned(), "Você é a Bia.".to_owned()),
                ("user".to_owned(), "Qual o horário?".to_owned())
            ]
        );
        assert_eq!(
            requests[0].header("authorization"),
            Some("Bearer sk-or-v1-test")
        );
    }

    #[tokio::test]
    async fn a_wrong_key_or_body_is_refused_without_using_the_script() {
        let chat = FakeChat::start(KEY).await;
        chat.reply([ChatReply::text("scripted")]);
        let (status, _, body) = call(&chat, "sk-or-v1-wrong", &request("x")).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], 401);
        assert_eq!(body["error"]["message"], "User not found.");
        let (status, _, body) = call(&chat, KEY, &json!({"model": "m", "messages": []})).await;
        assert_eq!((status, body["error"]["code"].as_u64()), (400, Some(400)));
        let (status, _, body) = call(&chat, KEY, &request("x")).await;
        assert_eq!(status, 200);
        assert_eq!(body["choices"][0]["message"]["content"], "scripted");
        let statuses: Vec<u16> = chat.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [401, 400, 200]);
    }

    #[tokio::test]
    async fn scripted_failures_have_openrouter_shapes() {
        let chat = FakeChat::start(KEY).await;
        chat.reply([
            ChatReply::rate_limited(Some(3)),
            ChatReply::no_credits(),
            ChatReply::server_error(502),
            ChatReply::server_error(503),
            ChatReply::error_in_body(502, "Provider disconnected"),
            ChatReply::choice_error(500, "Model crashed"),
            ChatReply::empty(),
            ChatReply::null_content(),
            ChatReply::no_choices(),
        ]);
        let body = request("x");

        let (status, headers, answer) = call(&chat, KEY, &body).await;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "3");
        assert_eq!(answer["error"]["code"], 429);
        let (status, _, answer) = call(&chat, KEY, &body).await;
        assert_eq!((status, answer["error"]["code"].as_u64()), (402, Some(402)));
        let (status, _, answer) = call(&chat, KEY, &body).await;
        assert_eq!(status, 502);
        assert_eq!(answer["error"]["metadata"]["provider_name"], "Fake");
        assert_eq!(call(&chat, KEY, &body).await.0, 503);
        let (status, _, answer) = call(&chat, KEY, &body).await;
        assert_eq!(status, 200);
        assert_eq!(answer["error"]["message"], "Provider disconnected");
        assert!(answer.get("choices").is_none());
        let (status, _, answer) = call(&chat, KEY, &body).await;
        assert_eq!(status, 200);
        assert_eq!(answer["choices"][0]["finish_reason"], "error");
        assert_eq!(answer["choices"][0]["error"]["message"], "Model crashed");
        let (_, _, answer) = call(&chat, KEY, &body).await;
        assert_eq!(answer["choices"][0]["message"]["content"], "");
        let (_, _, answer) = call(&chat, KEY, &body).await;
        assert!(answer["choices"][0]["message"]["content"].is_null());
        let (_, _, answer) = call(&chat, KEY, &body).await;
        assert_eq!(answer["choices"], json!([]));
        // Then the fallback again.
        let (_, _, answer) = call(&chat, KEY, &request("de novo")).await;
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            "Resposta: de novo"
        );
    }

    #[tokio::test]
    async fn a_delayed_reply_plays_a_timeout() {
        let chat = FakeChat::start(KEY).await;
        chat.reply([ChatReply::echo().delay(Duration::from_millis(500))]);
        let result = reqwest::Client::new()
            .post(format!("{}/chat/completions", chat.url()))
            .bearer_auth(KEY)
            .timeout(Duration::from_millis(100))
            .json(&request("x"))
            .send()
            .await;
        assert!(result.unwrap_err().is_timeout());
        assert_eq!(chat.wait_for(1, Duration::from_secs(1)).await.len(), 1);
    }
}
