//! Meta's WhatsApp Cloud API (the Graph API): check a number with its
//! token, send a text or a template, mark a message read (with the typing
//! indicator). Failures come back as [`GraphFailureOwned`], which lends the
//! domain's [`GraphFailure`] so that callers decide with
//! [`nuvem_domain::whatsapp::graph_error::classify`] and
//! [`status_after_check`].
//!
//! Request shapes (Meta's Cloud API reference):
//!
//! - send: `POST /{version}/{phone_number_id}/messages` with
//!   `messaging_product: "whatsapp"`, `recipient_type: "individual"`, the
//!   recipient, `type` and its object (`text: {body, preview_url}`,
//!   `template: {name, language: {code}, components}`), and
//!   `context: {message_id}` for a reply. Meta answers
//!   `{"messaging_product", "contacts": [{"input", "wa_id" | "user_id"}],
//!   "messages": [{"id": "wamid…"}]}`.
//! - recipient: a phone number goes in `to`; a business-scoped user id
//!   (BSUID, `US.13491208655302741918`) goes in `recipient` (Meta's
//!   "Business-scoped user IDs" guide; `to` wins when both are given, and a
//!   BSUID-only send is answered with `contacts[].user_id`, no `wa_id`).
//!   Some messages (authentication templates) cannot go to a BSUID: code
//!   131062.
//! - mark read: the same endpoint with `{"messaging_product": "whatsapp",
//!   "status": "read", "message_id": "<wamid>"}`, plus
//!   `"typing_indicator": {"type": "text"}` to show the customer that a
//!   reply is being prepared (dismissed by the reply or after 25 s). Meta
//!   answers `{"success": true}`.
//! - check: `GET /{version}/{phone_number_id}?fields=…`.
//!
//! The access token is sent only as `Authorization: Bearer …` (a header
//! reqwest marks sensitive), never in a URL, and nothing here logs a
//! request.

use std::time::Duration;

use nuvem_domain::whatsapp::graph_error::{GraphError, GraphFailure, SendVerdict, classify};
use nuvem_domain::whatsapp::identity::Recipient;
use nuvem_domain::whatsapp::store::{AccessToken, NumberStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_client::{LazyHttpClient, Unanswered, endpoint, parse_base_url, read_capped};
use crate::config::{self, ConfigError};

pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_VERSION: &str = "v26.0";
/// Well under a function's timeout: a send that takes longer is retried
/// from the queue rather than holding the function.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Graph answers are small; anything past this is not read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The fields a check asks for.
const NUMBER_FIELDS: &str = "id,display_phone_number,verified_name,quality_rating,code_verification_status,platform_type,name_status,status";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphConfig {
    pub base_url: url::Url,
    /// `vNN.N`.
    pub version: String,
    pub timeout: Duration,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig::new(DEFAULT_BASE_URL, DEFAULT_VERSION, DEFAULT_TIMEOUT)
            .expect("the defaults are valid")
    }
}

impl GraphConfig {
    pub fn new(base_url: &str, version: &str, timeout: Duration) -> Result<Self, ConfigError> {
        let version = version.trim();
        if !is_version(version) {
            return Err(ConfigError(format!(
                "Graph API version {version:?} is not of the form vNN.N"
            )));
        }
        Ok(GraphConfig {
            base_url: parse_base_url("Graph API base URL", base_url)?,
            version: version.to_owned(),
            timeout,
        })
    }

    /// `GRAPH_API_URL`, `GRAPH_API_VERSION` and `GRAPH_API_TIMEOUT_MS`,
    /// each optional (empty is the default).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let base: String = config::optional(lookup, "GRAPH_API_URL", DEFAULT_BASE_URL.to_owned())?;
        let version: String =
            config::optional(lookup, "GRAPH_API_VERSION", DEFAULT_VERSION.to_owned())?;
        let timeout_ms: u64 = config::optional(
            lookup,
            "GRAPH_API_TIMEOUT_MS",
            DEFAULT_TIMEOUT.as_millis() as u64,
        )?;
        GraphConfig::new(&base, &version, Duration::from_millis(timeout_ms))
    }
}

/// `vNN.N`.
fn is_version(v: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    v.strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| digits(major) && digits(minor))
}

/// A number as Meta describes it (fields it leaves out are `None`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PhoneNumberInfo {
    pub id: String,
    #[serde(default)]
    pub display_phone_number: Option<String>,
    #[serde(default)]
    pub verified_name: Option<String>,
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN`.
    #[serde(default)]
    pub quality_rating: Option<String>,
    #[serde(default)]
    pub code_verification_status: Option<String>,
    /// `CLOUD_API` for numbers that can be used here.
    #[serde(default)]
    pub platform_type: Option<String>,
    #[serde(default)]
    pub name_status: Option<String>,
    /// `CONNECTED`, `PENDING`, `FLAGGED`, `RESTRICTED`, …
    #[serde(default)]
    pub status: Option<String>,
}

/// What Meta accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The message's id, which its statuses will name.
    pub wamid: String,
    /// The recipient's WhatsApp id, for a send to a phone.
    pub wa_id: Option<String>,
    /// The recipient's business-scoped user id, for a send to one.
    pub user_id: Option<String>,
}

/// A Graph call that did not succeed, owning what came back. Lend it to
/// the domain's rules with [`GraphFailureOwned::as_failure`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphFailureOwned {
    /// A non-2xx answer; `error` when its body is Meta's error shape.
    #[error("Graph API answered HTTP {status}{}", .error.as_ref().map(|e| format!(": {} (code {})", e.message, e.code)).unwrap_or_default())]
    Response {
        status: u16,
        error: Option<GraphError>,
    },
    /// A 2xx answer without what it should hold (no message id). The
    /// domain sees it as a refusal without a code: the message is failed,
    /// not sent again (Meta may have taken it).
    #[error("Graph API answered HTTP {status} without the expected fields: {detail}")]
    Unexpected { status: u16, detail: String },
    #[error("Graph API call timed out")]
    Timeout,
    #[error("Graph API unreachable: {0}")]
    Network(String),
}

impl GraphFailureOwned {
    /// The domain's view of this failure.
    pub fn as_failure(&self) -> GraphFailure<'_> {
        match self {
            GraphFailureOwned::Response { status, error } => GraphFailure::Response {
                status: *status,
                error: error.as_ref(),
            },
            GraphFailureOwned::Unexpected { status, .. } => GraphFailure::Response {
                status: *status,
                error: None,
            },
            GraphFailureOwned::Timeout => GraphFailure::Timeout,
            GraphFailureOwned::Network(_) => GraphFailure::Network,
        }
    }

    /// What a failed send means ([`classify`]).
    pub fn verdict(&self) -> SendVerdict {
        classify(&self.as_failure())
    }

    /// Meta's error, when the answer carried one.
    pub fn error(&self) -> Option<&GraphError> {
        match self {
            GraphFailureOwned::Response { error, .. } => error.as_ref(),
            _ => None,
        }
    }

    /// Meta's error code, when the answer carried one.
    pub fn code(&self) -> Option<i64> {
        self.error().map(|e| e.code)
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphFailureOwned::Response { status, .. }
            | GraphFailureOwned::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<Unanswered> for GraphFailureOwned {
    fn from(u: Unanswered) -> Self {
        match u {
            Unanswered::Timeout => GraphFailureOwned::Timeout,
            Unanswered::Network(message) => GraphFailureOwned::Network(message),
        }
    }
}

/// A number's status after [`GraphClient::check_number`]
/// ([`nuvem_domain::whatsapp::graph_error::status_after_check`]): `None`
/// when the Graph API was throttled or unreachable and the status should
/// stay as it was.
pub fn status_after_check(
    result: &Result<PhoneNumberInfo, GraphFailureOwned>,
) -> Option<NumberStatus> {
    let lent = result.as_ref().map(|_| ()).map_err(|f| f.as_failure());
    nuvem_domain::whatsapp::graph_error::status_after_check(lent.as_ref().map(|_| ()))
}

#[derive(Clone)]
pub struct GraphClient {
    config: GraphConfig,
    http: LazyHttpClient,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `to` for a phone, `recipient` for a business-scoped user id.
fn recipient_fields(to: &Recipient) -> (&'static str, &str) {
    match to {
        Recipient::Phone(phone) => ("to", phone),
        Recipient::User(user) => ("recipient", user),
    }
}

fn message_body(to: &Recipient, kind: &str, content: Value) -> Value {
    let (field, id) = recipient_fields(to);
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "type": kind,
    });
    body[field] = json!(id);
    body[kind] = content;
    body
}

#[derive(Deserialize)]
struct SendAnswer {
    #[serde(default)]
    contacts: Vec<SendContact>,
    #[serde(default)]
    messages: Vec<SendMessageId>,
}

#[derive(Deserialize)]
struct SendContact {
    #[serde(default)]
    wa_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct SendMessageId {
    id: String,
}

impl GraphClient {
    pub fn new(config: GraphConfig) -> Self {
        GraphClient {
            config,
            http: LazyHttpClient::new(concat!("nuvem-whatsapp/", env!("CARGO_PKG_VERSION"))),
        }
    }

    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut all = vec![self.config.version.as_str()];
        all.extend_from_slice(segments);
        endpoint(&self.config.base_url, &all)
    }

    /// Sends one request; a 2xx answer's body, or the failure.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        token: &AccessToken,
    ) -> Result<(u16, Vec<u8>), GraphFailureOwned> {
        let mut response = request
            .bearer_auth(token.expose())
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|e| GraphFailureOwned::from(Unanswered::of(&e)))?;
        let status = response.status().as_u16();
        let body = read_capped(&mut response, MAX_ANSWER_BYTES).await;
        if !(200..300).contains(&status) {
            // A refusal whose body broke off is still a refusal.
            let error = body.ok().and_then(|b| GraphError::parse(&b));
            return Err(GraphFailureOwned::Response { status, error });
        }
        Ok((status, body?))
    }

    /// `GET /{version}/{phone_number_id}` with the number's token: whether
    /// the token works for the number, and what Meta knows of it. Judge the
    /// result with [`status_after_check`].
    pub async fn check_number(
        &self,
        phone_number_id: &str,
        token: &AccessToken,
    ) -> Result<PhoneNumberInfo, GraphFailureOwned> {
        let mut url = self.url(&[phone_number_id]);
        url.query_pairs_mut().append_pair("fields", NUMBER_FIELDS);
        let (status, body) = self.call(self.http.get().get(url), token).await?;
        serde_json::from_slice(&body).map_err(|e| GraphFailureOwned::Unexpected {
            status,
            detail: e.to_string(),
        })
    }

    async fn send(
        &self,
        phone_number_id: &str,
        token: &AccessToken,
        body: &Value,
    ) -> Result<SentMessage, GraphFailureOwned> {
        let url = self.url(&[phone_number_id, "messages"]);
        let (status, answer) = self
            .call(self.http.get().post(url).json(body), token)
            .await?;
        let unexpected = |detail: String| GraphFailureOwned::Unexpected { status, detail };
        let answer: SendAnswer =
            serde_json::from_slice(&answer).map_err(|e| unexpected(e.to_string()))?;
        let wamid = answer
            .messages
            .into_iter()
            .next()
            .map(|m| m.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| unexpected("no messages[0].id".into()))?;
        let contact = answer.contacts.into_iter().next();
        Ok(SentMessage {
            wamid,
            wa_id: contact.as_ref().and_then(|c| c.wa_id.clone()),
            user_id: contact.and_then(|c| c.user_id),
        })
    }

    /// Sends a text (up to 4096 characters, which callers check), as a
    /// reply to `reply_to` (a wamid) when given. Links are not previewed.
    pub async fn send_text(
        &self,
        phone_number_id: &str,
        token: &AccessToken,
        to: &Recipient,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<SentMessage, GraphFailureOwned> {
        let mut body = message_body(to, "text", json!({"preview_url": false, "body": text}));
        if let Some(wamid) = reply_to {
            body["context"] = json!({ "message_id": wamid });
        }
        self.send(phone_number_id, token, &body).await
    }

    /// Sends an approved template in `language` (Meta's code, e.g.
    /// `pt_BR`), filling its body's `{{1}}`, `{{2}}`… with `body_params`.
    pub async fn send_template(
        &self,
        phone_number_id: &str,
        token: &AccessToken,
        to: &Recipient,
        name: &str,
        language: &str,
        body_params: &[String],
    ) -> Result<SentMessage, GraphFailureOwned> {
        let mut template = json!({"name": name, "language": {"code": language}});
        if !body_params.is_empty() {
            let parameters: Vec<Value> = body_params
                .iter()
                .map(|p| json!({"type": "text", "text": p}))
                .collect();
            template["components"] = json!([{"type": "body", "parameters": parameters}]);
        }
        let body = message_body(to, "template", template);
        self.send(phone_number_id, token, &body).await
    }

    /// Marks an inbound message (and the ones before it) read; with
    /// `typing`, also shows the typing indicator until the reply is sent
    /// or 25 seconds pass.
    pub async fn mark_read(
        &self,
        phone_number_id: &str,
        token: &AccessToken,
        wamid: &str,
        typing: bool,
    ) -> Result<(), GraphFailureOwned> {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
        });
        if typing {
            body["typing_indicator"] = json!({"type": "text"});
        }
        let url = self.url(&[phone_number_id, "messages"]);
        self.call(self.http.get().post(url).json(&body), token)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration() {
        let c = GraphConfig::default();
        assert_eq!(c.base_url.as_str(), "https://graph.facebook.com/");
        assert_eq!(c.version, "v26.0");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);

        let lookup = |name: &str| match name {
            "GRAPH_API_URL" => Some("http://127.0.0.1:9000".to_owned()),
            "GRAPH_API_VERSION" => Some("v25.0".to_owned()),
            "GRAPH_API_TIMEOUT_MS" => Some("1500".to_owned()),
            _ => None,
        };
        let c = GraphConfig::from_lookup(&lookup).unwrap();
        assert_eq!(c.version, "v25.0");
        assert_eq!(c.timeout, Duration::from_millis(1500));
        let client = GraphClient::new(c);
        assert_eq!(
            client.url(&["106540352242922", "messages"]).as_str(),
            "http://127.0.0.1:9000/v25.0/106540352242922/messages"
        );
        assert_eq!(
            GraphConfig::from_lookup(&|_| Some(String::new())).unwrap(),
            GraphConfig::default()
        );
        for bad in ["26.0", "v26", "latest", "v26.0/x", ""] {
            assert!(
                GraphConfig::new(DEFAULT_BASE_URL, bad, DEFAULT_TIMEOUT).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn message_bodies_address_phones_with_to_and_bsuids_with_recipient() {
        let phone = message_body(
            &Recipient::Phone("5511912345678".into()),
            "text",
            json!({"body": "Oi"}),
        );
        assert_eq!(
            phone,
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                   "type": "text", "to": "5511912345678", "text": {"body": "Oi"}})
        );
        let user = message_body(
            &Recipient::User("US.13491208655302741918".into()),
            "text",
            json!({"body": "Oi"}),
        );
        assert_eq!(user["recipient"], "US.13491208655302741918");
        assert!(user.get("to").is_none());
    }

    #[test]
    fn failures_lend_themselves_to_the_domain() {
        let error = GraphError::parse(
            br#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047}}"#,
        );
        let f = GraphFailureOwned::Response {
            status: 400,
            error: error.clone(),
        };
        assert_eq!(f.verdict(), SendVerdict::Failed);
        assert_eq!(f.code(), Some(131047));
        assert_eq!(
            f.to_string(),
            "Graph API answered HTTP 400: (#131047) Re-engagement message (code 131047)"
        );
        assert_eq!(GraphFailureOwned::Timeout.verdict(), SendVerdict::Retry);
        assert_eq!(
            GraphFailureOwned::Network("refused".into()).verdict(),
            SendVerdict::Retry
        );
        let odd = GraphFailureOwned::Unexpected {
            status: 200,
            detail: "no id".into(),
        };
        assert_eq!(odd.verdict(), SendVerdict::Failed);
        assert_eq!(
            status_after_check(&Err(GraphFailureOwned::Timeout)),
            None,
            "unreachable says nothing about the number"
        );
        assert_eq!(
            status_after_check(&Err(f)),
            Some(NumberStatus::error(
                131047,
                "(#131047) Re-engagement message"
            ))
        );
    }

    #[test]
    fn the_token_is_not_in_the_client_debug() {
        let client = GraphClient::new(GraphConfig::default());
        let shown = format!("{client:?}");
        assert!(shown.contains("graph.facebook.com") && !shown.contains("Bearer"));
    }
}
