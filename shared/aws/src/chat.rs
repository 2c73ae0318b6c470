//! An OpenAI-compatible chat-completions client (OpenRouter by default):
//! `POST {base}/chat/completions` with a model and messages, the reply's
//! text back, or a [`ChatFailure`] that says whether trying again can help.
//!
//! What counts as what (OpenRouter's "Errors" reference; OpenAI's API is
//! the same where they overlap):
//!
//! - errors have the body `{"error": {"code", "message", "metadata"?}}`
//!   (OpenAI: `{"error": {"message", "type", "param", "code"}}`) and the
//!   HTTP status of the error when the request itself is refused;
//! - 408, 429 (with `Retry-After`) and 5xx (502: the model's provider
//!   failed; 503: no provider available) are [`ChatFailure::Retryable`], as
//!   are timeouts and network failures;
//! - 400, 401 (bad key), 402 (no credits), 403 (moderation) and the other
//!   4xx are [`ChatFailure::Fatal`]: the same request fails the same way;
//! - once the model has started, OpenRouter answers HTTP 200 and puts an
//!   error in the body (`error`, or `error` on the choice with
//!   `finish_reason: "error"`); that, no choices, or empty content is
//!   [`ChatFailure::Invalid`]: never a reply. It is not retried here (a
//!   model that answers nothing usually does so again, and every attempt
//!   is paid); the caller hands the conversation over.
//!
//! The API key is sent only as `Authorization: Bearer …`; [`ApiKey`]
//! prints as `[redacted]` and nothing here logs a request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::api_client::{LazyHttpClient, Unanswered, endpoint, parse_base_url, read_capped};
use crate::config::{self, ConfigError};

pub const DEFAULT_BASE_URL: &str = "https://openrouter.ai/api/v1";
/// One attempt's limit: a short chat reply takes a few seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Answers past this are not read (a chat reply is a few KiB).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// How much of an error's message is kept.
const MAX_MESSAGE_CHARS: usize = 300;

/// The API key: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: &str) -> ApiKey {
        ApiKey(key.trim().to_owned())
    }

    /// For the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How [`ChatClient::complete_with_retries`] waits between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt; each further one doubles.
    pub first_backoff: Duration,
    /// The longest backoff (a `Retry-After` may ask for more).
    pub max_backoff: Duration,
    /// Attempts and waits together never go past this, so the whole call
    /// stays well under the function's timeout. A `Retry-After` that does
    /// not fit ends the retries.
    pub budget: Duration,
    /// No attempt is started with less time than this left.
    pub min_attempt: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            budget: Duration::from_secs(40),
            min_attempt: Duration::from_secs(2),
        }
    }
}

/// The wait before attempt `attempt + 1` after attempt `attempt` (1-based)
/// failed in a retryable way, `spent` being the time used so far: the
/// backoff (doubling from `first_backoff`, at most `max_backoff`), or the
/// `Retry-After` if longer. `None` when the wait and a minimal attempt no
/// longer fit in the budget.
pub fn next_wait(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    spent: Duration,
) -> Option<Duration> {
    let doublings = attempt.saturating_sub(1).min(20);
    let backoff = policy
        .first_backoff
        .saturating_mul(1u32 << doublings)
        .min(policy.max_backoff);
    let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
    let needed = spent
        .saturating_add(wait)
        .saturating_add(policy.min_attempt);
    (needed <= policy.budget).then_some(wait)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatConfig {
    pub base_url: url::Url,
    /// e.g. `openai/gpt-4o-mini`.
    pub model: String,
    pub api_key: ApiKey,
    /// One attempt's limit.
    pub timeout: Duration,
    /// Caps the reply's length (and its cost) when set.
    pub max_tokens: Option<u32>,
    pub retry: RetryPolicy,
}

impl ChatConfig {
    pub fn new(base_url: &str, model: &str, api_key: ApiKey) -> Result<Self, ConfigError> {
        let model = model.trim();
        if model.is_empty() {
            return Err(ConfigError("the chat model is empty".into()));
        }
        Ok(ChatConfig {
            base_url: parse_base_url("chat API base URL", base_url)?,
            model: model.to_owned(),
            api_key,
            timeout: DEFAULT_TIMEOUT,
            max_tokens: None,
            retry: RetryPolicy::default(),
        })
    }

    /// `CHAT_API_URL` (default OpenRouter's), `CHAT_MODEL` (required) and
    /// `CHAT_TIMEOUT_MS`; the key comes from the caller (a secret).
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        api_key: ApiKey,
    ) -> Result<Self, ConfigError> {
        let base: String = config::optional(lookup, "CHAT_API_URL", DEFAULT_BASE_URL.to_owned())?;
        let model = config::required(lookup, "CHAT_MODEL")?;
        let timeout_ms: u64 = config::optional(
            lookup,
            "CHAT_TIMEOUT_MS",
            DEFAULT_TIMEOUT.as_millis() as u64,
        )?;
        let mut config = ChatConfig::new(&base, &model, api_key)?;
        config.timeout = Duration::from_millis(timeout_ms);
        Ok(config)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Why there is no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatFailure {
    /// Throttled, unavailable, timed out or unreachable: another attempt,
    /// not before `retry_after` when given, may succeed.
    #[error("chat API failed, retryable: {reason}")]
    Retryable {
        retry_after: Option<Duration>,
        reason: String,
    },
    /// Refused (bad request, bad key, no credits, moderation): the same
    /// request fails again.
    #[error("chat API refused with HTTP {status}: {message}")]
    Fatal { status: u16, message: String },
    /// An answer that is not a reply: an error in an HTTP 200 body, no
    /// choices, empty content, or not a completion at all.
    #[error("chat API gave no usable reply: {reason}")]
    Invalid { reason: String },
}

impl ChatFailure {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ChatFailure::Retryable { .. })
    }
}

impl From<Unanswered> for ChatFailure {
    fn from(u: Unanswered) -> Self {
        let reason = match u {
            Unanswered::Timeout => "timed out".to_owned(),
            Unanswered::Network(message) => format!("unreachable: {message}"),
        };
        ChatFailure::Retryable {
            retry_after: None,
            reason,
        }
    }
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The `error` object's message, or the start of a body that is not JSON;
/// `None` for an empty body.
fn error_message(body: &[u8]) -> Option<String> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|v| match &v["error"] {
        Value::String(s) => Some(s.clone()),
        error => error["message"].as_str().map(str::to_owned),
    });
    match message {
        Some(m) => Some(shorten(&m)),
        None if !body.trim_ascii().is_empty() => Some(shorten(&String::from_utf8_lossy(body))),
        None => None,
    }
}

/// A message's content: a string, or the text parts of an array.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

/// Judges one answer: the reply's text (trimmed), or why there is none.
/// `retry_after` is the answer's `Retry-After` header.
pub fn judge_answer(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, ChatFailure> {
    if !(200..300).contains(&status) {
        let message = error_message(body);
        return Err(if matches!(status, 408 | 429 | 500..=599) {
            ChatFailure::Retryable {
                retry_after: retry_after
                    .and_then(|v| nuvem_domain::webhook::retry::parse_retry_after(v, now)),
                reason: match message {
                    Some(m) => format!("HTTP {status}: {m}"),
                    None => format!("HTTP {status}"),
                },
            }
        } else {
            ChatFailure::Fatal {
                status,
                message: message.unwrap_or_else(|| format!("HTTP {status}")),
            }
        });
    }
    let invalid = |reason: String| ChatFailure::Invalid { reason };
    let answer: Value = serde_json::from_slice(body).map_err(|_| {
        invalid(format!(
            "not JSON: {}",
            shorten(&String::from_utf8_lossy(body))
        ))
    })?;
    if !answer["error"].is_null() {
        return Err(invalid(format!(
            "error in an HTTP {status} answer: {}",
            error_message(body).unwrap_or_default()
        )));
    }
    let choice = answer["choices"]
        .as_array()
        .and_then(|c| c.first())
        .ok_or_else(|| invalid("no choices".into()))?;
    if !choice["error"].is_null() {
        let message = choice["error"]["message"].as_str().unwrap_or("no message");
        return Err(invalid(format!(
            "error in the choice: {}",
            shorten(message)
        )));
    }
    if choice["finish_reason"] == "error" {
        return Err(invalid("the model finished with an error".into()));
    }
    let text = content_text(&choice["message"]["content"]).unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("empty content".into()));
    }
    Ok(text.to_owned())
}

type BoxedWait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Waits between attempts: `tokio::time::sleep`, or a test's stand-in.
type Sleep = Arc<dyn Fn(Duration) -> BoxedWait + Send + Sync>;

fn tokio_sleep(wait: Duration) -> BoxedWait {
    Box::pin(tokio::time::sleep(wait))
}

#[derive(Clone)]
pub struct ChatClient {
    config: ChatConfig,
    http: LazyHttpClient,
    sleep: Sleep,
}

impl std::fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ChatClient {
    pub fn new(config: ChatConfig) -> Self {
        ChatClient {
            config,
            http: LazyHttpClient::new(concat!("nuvem-bot/", env!("CARGO_PKG_VERSION"))),
            sleep: Arc::new(tokio_sleep),
        }
    }

    /// Replaces the wait between attempts (tests record it instead).
    pub fn with_sleep<F, W>(mut self, sleep: F) -> Self
    where
        F: Fn(Duration) -> W + Send + Sync + 'static,
        W: Future<Output = ()> + Send + 'static,
    {
        self.sleep = Arc::new(move |wait| -> BoxedWait { Box::pin(sleep(wait)) });
        self
    }

    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// One attempt within the configured timeout.
    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<String, ChatFailure> {
        self.attempt(messages, self.config.timeout).await
    }

    async fn attempt(
        &self,
        messages: &[ChatMessage],
        timeout: Duration,
    ) -> Result<String, ChatFailure> {
        let mut body = json!({
            "model": self.config.model,
            "messages": messages,
            "stream": false,
        });
        if let Some(max) = self.config.max_tokens {
            body["max_tokens"] = json!(max);
        }
        let url = endpoint(&self.config.base_url, &["chat", "completions"]);
        let mut response = self
            .http
            .get()
            .post(url)
            .bearer_auth(self.config.api_key.expose())
            .timeout(timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| ChatFailure::from(Unanswered::of(&e)))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = read_capped(&mut response, MAX_ANSWER_BYTES).await?;
        judge_answer(status, retry_after.as_deref(), &answer, chrono::Utc::now())
    }

    /// Up to `max_attempts` attempts (at least one): retryable failures
    /// are tried again after [`next_wait`], each attempt's timeout cut to
    /// what is left of the policy's budget. The last failure comes back
    /// when attempts or budget run out; fatal and invalid ones at once.
    pub async fn complete_with_retries(
        &self,
        messages: &[ChatMessage],
        max_attempts: u32,
    ) -> Result<String, ChatFailure> {
        let policy = self.config.retry;
        let mut spent = Duration::ZERO;
        let mut attempt = 1;
        loop {
            let left = policy.budget.saturating_sub(spent);
            let started = Instant::now();
            let result = self.attempt(messages, self.config.timeout.min(left)).await;
            spent += started.elapsed();
            let retry_after = match result {
                Err(ChatFailure::Retryable { retry_after, .. }) if attempt < max_attempts => {
                    retry_after
                }
                other => return other,
            };
            match next_wait(&policy, attempt, retry_after, spent) {
                Some(wait) => {
                    (self.sleep)(wait).await;
                    spent += wait;
                    attempt += 1;
                }
                None => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<chrono::Utc> {
        "2026-07-01T10:00:00Z".parse().unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn waits_double_honour_retry_after_and_stay_in_the_budget() {
        let p = RetryPolicy::default();
        assert_eq!(next_wait(&p, 1, None, secs(0)), Some(secs(1)));
        assert_eq!(next_wait(&p, 2, None, secs(0)), Some(secs(2)));
        assert_eq!(next_wait(&p, 4, None, secs(0)), Some(secs(8)));
        assert_eq!(next_wait(&p, 30, None, secs(0)), Some(secs(8)));
        // Retry-After wins when longer, never shortens the backoff.
        assert_eq!(next_wait(&p, 1, Some(secs(5)), secs(0)), Some(secs(5)));
        assert_eq!(next_wait(&p, 3, Some(secs(1)), secs(0)), Some(secs(4)));
        // Longer than the budget allows: stop rather than retry early.
        assert_eq!(next_wait(&p, 1, Some(secs(60)), secs(0)), None);
        assert_eq!(next_wait(&p, 1, None, secs(37)), Some(secs(1)));
        assert_eq!(next_wait(&p, 1, None, secs(38)), None);
    }

    #[test]
    fn answers_are_judged() {
        let ok = r#"{"id":"gen-1","object":"chat.completion","model":"m",
            "choices":[{"finish_reason":"stop","message":{"role":"assistant","content":"  Olá!  "}}]}"#;
        assert_eq!(
            judge_answer(200, None, ok.as_bytes(), now()).unwrap(),
            "Olá!"
        );
        let parts = br#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}"#;
        assert_eq!(judge_answer(200, None, parts, now()).unwrap(), "ab");

        let limited = br#"{"error":{"code":429,"message":"Rate limit exceeded"}}"#;
        assert_eq!(
            judge_answer(429, Some("7"), limited, now()),
            Err(ChatFailure::Retryable {
                retry_after: Some(secs(7)),
                reason: "HTTP 429: Rate limit exceeded".into()
            })
        );
        assert_eq!(
            judge_answer(503, Some("Wed, 01 Jul 2026 10:00:03 GMT"), b"", now()),
            Err(ChatFailure::Retryable {
                retry_after: Some(secs(3)),
                reason: "HTTP 503".into()
            })
        );
        for status in [408, 500, 502, 504] {
            assert!(
                judge_answer(status, None, b"<html>", now())
                    .unwrap_err()
                    .is_retryable()
            );
        }
        let openai = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(
            judge_answer(401, None, openai, now()),
            Err(ChatFailure::Fatal {
                status: 401,
                message: "Incorrect API key provided".into()
            })
        );
        for status in [400, 402, 403, 404] {
            assert!(matches!(
                judge_answer(status, Some("1"), b"{}", now()),
                Err(ChatFailure::Fatal { .. })
            ));
        }

        for invalid in [
            &br#"{"error":{"code":502,"message":"Provider disconnected"}}"#[..],
            br#"{"choices":[]}"#,
            br#"{"choices":[{"message":{"content":""}}]}"#,
            br#"{"choices":[{"message":{"content":"   "}}]}"#,
            br#"{"choices":[{"message":{"content":null}}]}"#,
            br#"{"choices":[{"message":{"content":"x"},"finish_reason":"error"}]}"#,
            br#"{"choices":[{"message":{"content":""},"error":{"code":500,"message":"boom"}}]}"#,
            b"not json",
        ] {
            assert!(
                matches!(
                    judge_answer(200, None, invalid, now()),
                    Err(ChatFailure::Invalid { .. })
                ),
                "{}",
                String::from_utf8_lossy(invalid)
            );
        }
    }

    #[test]
    fn long_messages_are_shortened_and_the_key_is_not_printed() {
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(1000));
        let Err(ChatFailure::Fatal { message, .. }) =
            judge_answer(400, None, long.as_bytes(), now())
        else {
            panic!()
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);

        let config =
            ChatConfig::new(DEFAULT_BASE_URL, "m", ApiKey::new("sk-or-v1-secret")).unwrap();
        let client = ChatClient::new(config);
        assert!(!format!("{client:?}").contains("secret"));
    }

    #[test]
    fn configuration() {
        let lookup = |name: &str| match name {
            "CHAT_MODEL" => Some("openai/gpt-4o-mini".to_owned()),
            "CHAT_TIMEOUT_MS" => Some("5000".to_owned()),
            _ => None,
        };
        let c = ChatConfig::from_lookup(&lookup, ApiKey::new("k")).unwrap();
        assert_eq!(c.base_url.as_str(), "https://openrouter.ai/api/v1");
        assert_eq!(c.timeout, secs(5));
        assert!(ChatConfig::from_lookup(&|_| None, ApiKey::new("k")).is_err());
        assert!(ChatConfig::new("openrouter.ai", "m", ApiKey::new("k")).is_err());
        assert_eq!(
            serde_json::to_value(ChatMessage::system("s")).unwrap(),
            json!({"role": "system", "content": "s"})
        );
    }
}
