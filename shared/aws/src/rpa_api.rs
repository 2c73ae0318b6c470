//! The RPA API: the outside service that logs into a carrier's portal to
//! download a client's invoice, and files an approved invoice with the tax
//! system (SAT). It runs each request as a job that nuvem starts once and
//! then polls; this is the typed client `rpa-worker` uses.
//!
//! # The contract
//!
//! The base URL (`RPA_API_URL`) and a bearer token (the JSON secret
//! `{"token": "…"}` in Secrets Manager, [`RpaApiSecret`]) are deployment
//! settings. Every call but `health` sends `Authorization: Bearer <token>`;
//! a missing or wrong token is answered `401 {"detail": "…"}`.
//!
//! - `POST {base}/executar/{carrier_code}` starts a download. JSON body
//!   ([`DownloadRequest`], in the Portuguese names of the system nuvem
//!   replaces): `{"cnpj", "razao", "operadora", "nome_filtro", "unidade",
//!   "servico", "login_portal", "senha_portal", "cpf" (a string or null),
//!   "mes_ano": "MM/AAAA", "configuracao": {…the carrier's rpa_settings}}`.
//!   Answers `202 {"job_id": "<string>"}`.
//! - `POST {base}/executar/sat` starts a tax filing ([`FilingRequest`]):
//!   `{"cnpj", "razao", "operadora", "nome_filtro", "unidade", "servico",
//!   "dados_sat", "nome_arquivo", "data_vencimento": "YYYY-MM-DD",
//!   "url_fatura": "<presigned GET of the invoice PDF>"}`. Answers
//!   `202 {"job_id"}`. (Carrier codes can never be `SAT`:
//!   [`CarrierCode`] reserves it.)
//! - `GET {base}/jobs/{job_id}` answers `{"job_id", "status": "queued" |
//!   "running" | "completed" | "failed"}`; when failed also `"error_type":
//!   "business" | "technical"` and `"error": "<message>"`; when completed
//!   also `"result"`: for a download `{"invoice_url", "due_date":
//!   "YYYY-MM-DD", "amount": <JSON number, BRL>, "access_key": <the 44
//!   characters of the NFCom key, or null or absent>}`, for a filing
//!   `{"protocol": "<SAT protocol>"}`. An unknown job is a 404.
//! - `GET {base}/jobs/{job_id}/logs?after=<seq>` answers `{"lines": [{"seq":
//!   <int>, "at": "<RFC 3339>", "level": "info" | "warning" | "error",
//!   "message": "…"}], "next": <seq of the last line, or the given after
//!   when there is none>}`: the lines with `seq > after`, oldest first, at
//!   most [`MAX_LOG_LINES`] per call. Read on with `after = next`.
//! - `GET {base}/health` answers `200 {"status": "ok"}` (no token needed).
//! - `GET <invoice_url>` answers the invoice's PDF bytes
//!   (`application/pdf`). No token is sent there: the URL may point outside
//!   the RPA (a presigned storage URL) and the token must never leave it.
//!
//! # What the worker can rely on
//!
//! Starting a job is not idempotent on the RPA's side, so a failed start is
//! classified by whether the job can have started ([`StartError`]): a
//! download whose start is uncertain may be started again, a filing never
//! automatically. Reads (status, logs, invoice) are safe to repeat; their
//! failures are [`CallError`]s. The job's own outcome is a [`JobState`].
//!
//! Nothing here logs; [`RpaToken`] and [`PortalPassword`] print as
//! `[redacted]`, and a [`PresignedUrl`] prints without its query (the
//! signature).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::month::Month;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::api_client::{LazyHttpClient, Unanswered, endpoint, parse_base_url, read_capped};
use crate::config::{self, ConfigError};

/// One call's limit. Starts and status reads are quick on the RPA's side
/// (the work happens in the job); a call that takes longer is retried from
/// the queue rather than holding the function.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Fetching an invoice (up to the caller's size cap, 20 MB in nuvem).
pub const DEFAULT_INVOICE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most log lines one `logs` call answers.
pub const MAX_LOG_LINES: usize = 200;
/// How much of a log line is kept (a page of lines is stored in one batch
/// of items, each under DynamoDB's 400 KB).
pub const MAX_LOG_LINE_CHARS: usize = 4_000;

/// Start, status and health answers are small; past this nothing is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// A page of up to 200 log lines.
const MAX_LOG_ANSWER_BYTES: usize = 2 * 1024 * 1024;
/// How much of a refusal's `detail` is kept.
const MAX_DETAIL_CHARS: usize = 300;
/// How much of a failed job's `error` is kept.
const MAX_ERROR_CHARS: usize = 1000;
/// Job ids longer than this are not ids.
const MAX_JOB_ID_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpaApiConfig {
    pub base_url: url::Url,
    /// One API call's limit.
    pub timeout: Duration,
    /// [`RpaClient::fetch_invoice`]'s limit.
    pub invoice_timeout: Duration,
}

impl RpaApiConfig {
    pub fn new(base_url: &str) -> Result<Self, ConfigError> {
        Ok(RpaApiConfig {
            base_url: parse_base_url("RPA API base URL", base_url)?,
            timeout: DEFAULT_TIMEOUT,
            invoice_timeout: DEFAULT_INVOICE_TIMEOUT,
        })
    }

    /// `RPA_API_URL` (required), `RPA_API_TIMEOUT_MS` and
    /// `RPA_INVOICE_TIMEOUT_MS` (optional); the token comes from a secret
    /// and is given per call.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let base = config::required(lookup, "RPA_API_URL")?;
        let timeout_ms: u64 = config::optional(
            lookup,
            "RPA_API_TIMEOUT_MS",
            DEFAULT_TIMEOUT.as_millis() as u64,
        )?;
        let invoice_timeout_ms: u64 = config::optional(
            lookup,
            "RPA_INVOICE_TIMEOUT_MS",
            DEFAULT_INVOICE_TIMEOUT.as_millis() as u64,
        )?;
        let mut config = RpaApiConfig::new(&base)?;
        config.timeout = Duration::from_millis(timeout_ms);
        config.invoice_timeout = Duration::from_millis(invoice_timeout_ms);
        Ok(config)
    }
}

/// The RPA API's bearer token: never printed.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub struct RpaToken(String);

impl RpaToken {
    pub fn new(token: &str) -> RpaToken {
        RpaToken(token.trim().to_owned())
    }

    /// For the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for RpaToken {
    fn from(token: String) -> Self {
        RpaToken::new(&token)
    }
}

impl std::fmt::Debug for RpaToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The deployment secret (`RpaApiSecret` in the template, read with
/// [`crate::deployment_secret::DeploymentSecret`]): `{"token": "…"}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RpaApiSecret {
    #[serde(default)]
    pub token: RpaToken,
}

/// The client's password on the carrier's portal, sent to the RPA in
/// `senha_portal`: serialised as the plain string, printed as
/// `[redacted]`.
pub use nuvem_domain::rpa::client::PortalPassword;

/// A presigned URL: whoever holds it can read the object until it
/// expires, so it prints without its query (where the signature is).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PresignedUrl(String);

impl PresignedUrl {
    pub fn new(url: impl Into<String>) -> PresignedUrl {
        PresignedUrl(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PresignedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.split_once('?') {
            Some((before, _)) => write!(f, "{before:?}?[redacted]"),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// A job's id as the RPA gave it: 1 to 200 characters, no whitespace or
/// control characters, not `.` or `..` (it is a path segment; anything
/// else is percent-encoded there).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    pub fn parse(id: &str) -> Result<JobId, String> {
        let length = id.chars().count();
        if !(1..=MAX_JOB_ID_CHARS).contains(&length) {
            return Err(format!(
                "a job id has 1 to {MAX_JOB_ID_CHARS} characters, not {length}"
            ));
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) || id == "." || id == ".." {
            return Err(format!("{:?} is not a job id", shorten(id, 60)));
        }
        Ok(JobId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for JobId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        JobId::parse(&value)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

/// `mes_ano`: `MM/AAAA`.
fn month_as_mm_yyyy<S: Serializer>(month: &Month, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{:02}/{:04}", month.month(), month.year()))
}

/// `POST {base}/executar/{carrier_code}`'s body. Debug leaves the portal
/// password out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownloadRequest {
    pub cnpj: String,
    /// `razao`: the client's legal name (razão social).
    #[serde(rename = "razao")]
    pub legal_name: String,
    /// `operadora`: the carrier, as the worker names it to the RPA (its code).
    #[serde(rename = "operadora")]
    pub carrier: String,
    /// `nome_filtro`: how the client is found in the carrier's portal.
    #[serde(rename = "nome_filtro")]
    pub filter: String,
    #[serde(rename = "unidade")]
    pub unit: String,
    #[serde(rename = "servico")]
    pub service: String,
    #[serde(rename = "login_portal")]
    pub portal_login: String,
    #[serde(rename = "senha_portal")]
    pub portal_password: PortalPassword,
    /// Sent as `null` when the client has none.
    pub cpf: Option<String>,
    /// `mes_ano`: the invoice's month, sent as `MM/AAAA`.
    #[serde(rename = "mes_ano", serialize_with = "month_as_mm_yyyy")]
    pub month: Month,
    /// `configuracao`: the carrier's `rpa_settings` (a JSON object).
    #[serde(rename = "configuracao")]
    pub settings: Value,
}

/// `POST {base}/executar/sat`'s body. Debug leaves the presigned URL's
/// signature out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilingRequest {
    pub cnpj: String,
    #[serde(rename = "razao")]
    pub legal_name: String,
    #[serde(rename = "operadora")]
    pub carrier: String,
    #[serde(rename = "nome_filtro")]
    pub filter: String,
    #[serde(rename = "unidade")]
    pub unit: String,
    #[serde(rename = "servico")]
    pub service: String,
    #[serde(rename = "dados_sat")]
    pub sat_data: String,
    #[serde(rename = "nome_arquivo")]
    pub file_name: String,
    /// `data_vencimento`, sent as `YYYY-MM-DD`.
    #[serde(rename = "data_vencimento")]
    pub due_date: NaiveDate,
    /// `url_fatura`: a presigned GET of the stored invoice PDF.
    #[serde(rename = "url_fatura")]
    pub invoice_url: PresignedUrl,
}

/// Which kind of job is polled: it says what a completed job's `result`
/// holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Download,
    Filing,
}

/// A job as the RPA reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Completed(JobResult),
    Failed { kind: FailureKind, message: String },
}

impl JobState {
    /// Completed or failed: polling it again changes nothing.
    pub fn is_final(&self) -> bool {
        matches!(self, JobState::Completed(_) | JobState::Failed { .. })
    }
}

/// Why a job failed, as the RPA judges it.
pub use nuvem_domain::rpa::execution::FailureKind;

/// What a completed job produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Download {
        /// Where [`RpaClient::fetch_invoice`] gets the PDF (an http(s) URL).
        invoice_url: String,
        due_date: NaiveDate,
        /// The amount in BRL cents, rounded half up from the decimal the
        /// RPA wrote ([`amount_cents`]).
        amount_cents: i64,
        /// The NFCom access key as the RPA read it (trimmed; empty is
        /// `None`). Not checked here: the worker parses it with
        /// `nuvem_domain::rpa::nfcom::AccessKey` before storing it.
        access_key: Option<String>,
    },
    Filing {
        /// The tax system's protocol number.
        protocol: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Warning,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
        }
    }
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Increasing within the job.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub level: LogLevel,
    pub message: String,
}

/// One `logs` answer: the lines after the cursor given, oldest first, and
/// the cursor to read on from (the given one when there are no new lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    pub next: u64,
}

/// Why a job was not (or may not have been) started.
///
/// The classes decide what the worker may do next, so they are kept
/// apart strictly:
///
/// - [`StartError::Refused`]: the RPA answered 4xx (other than 408 and
///   429); no job was started and the same request is refused again, so it
///   is not retried (a business-level refusal, shown as such).
/// - [`StartError::Unavailable`]: the request never reached the RPA (the
///   connection was refused or timed out, the name did not resolve), or it
///   answered 408, 429, 502 or 503, which say the request was not taken.
///   Known **not** started: safe to try again later.
/// - [`StartError::Uncertain`]: the request was sent and no clear answer
///   came back (a timeout while waiting, a connection closed before or
///   during the answer, another 5xx, a 2xx without a `job_id`, a 1xx or
///   3xx). The job **may have started**. A download in this state may be
///   started again (at worst the invoice is downloaded twice), but a tax
///   filing must never be sent again automatically: it goes to a person
///   (`needs_review`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("the RPA API refused the job (HTTP {status}): {detail}")]
    Refused { status: u16, detail: String },
    #[error("the RPA API is unavailable; the job was not started: {reason}")]
    Unavailable {
        reason: String,
        /// The answer's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    #[error("no clear answer from the RPA API; the job may have started: {reason}")]
    Uncertain { reason: String },
}

impl StartError {
    /// Whether the RPA may be running the job although no id came back.
    pub fn may_have_started(&self) -> bool {
        matches!(self, StartError::Uncertain { .. })
    }
}

/// Why a read (status, logs, health, invoice) got no usable answer. Reads
/// change nothing on the RPA's side, so any of them may be repeated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Unreachable, timed out, 408, 429 or 5xx: try again later (not
    /// before `retry_after` when given).
    #[error("the RPA API is unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// 404 or 410: the RPA does not know the job (or the invoice file).
    #[error("the RPA API does not know the job")]
    NotFound,
    /// 401 or 403: the token is wrong (or an invoice URL expired).
    #[error("the RPA API refused the token")]
    Unauthorized,
    /// An answer not as the contract says: another status, a body that does
    /// not parse, a value out of range.
    #[error("the RPA API answered against its contract: {0}")]
    Invalid(String),
    /// The invoice is larger than the caller accepts; it was not read.
    #[error("the invoice is larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

impl CallError {
    fn unavailable(reason: impl Into<String>) -> CallError {
        CallError::Unavailable {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

impl From<Unanswered> for CallError {
    fn from(u: Unanswered) -> Self {
        CallError::unavailable(describe(&u))
    }
}

fn describe(u: &Unanswered) -> String {
    match u {
        Unanswered::Timeout => "timed out".to_owned(),
        Unanswered::Network(message) => format!("unreachable: {message}"),
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A refusal's `detail` (a string, or the JSON of a list of validation
/// errors), else the start of the body, else `HTTP <status>`.
pub fn error_detail(status: u16, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let detail = parsed.and_then(|v| match v.get("detail") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    });
    let text = match detail {
        Some(d) => d,
        None => String::from_utf8_lossy(body).into_owned(),
    };
    let text = shorten(&text, MAX_DETAIL_CHARS);
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        text
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| nuvem_domain::webhook::retry::parse_retry_after(v, Utc::now()))
}

/// Judges a start's answer: the job's id, or the class of failure (see
/// [`StartError`]). `body` is what could be read of the answer.
pub fn judge_start(
    status: u16,
    retry_after: Option<Duration>,
    body: Result<Vec<u8>, Unanswered>,
) -> Result<JobId, StartError> {
    let uncertain = |reason: String| StartError::Uncertain { reason };
    match status {
        200..=299 => {
            let body = body.map_err(|u| {
                uncertain(format!(
                    "HTTP {status} but the answer broke off ({})",
                    describe(&u)
                ))
            })?;
            let answer: Value = serde_json::from_slice(&body).map_err(|_| {
                uncertain(format!(
                    "HTTP {status} with a body that is not JSON: {}",
                    shorten(&String::from_utf8_lossy(&body), MAX_DETAIL_CHARS)
                ))
            })?;
            match answer.get("job_id").and_then(Value::as_str) {
                Some(id) => JobId::parse(id)
                    .map_err(|e| uncertain(format!("HTTP {status} with a bad job_id: {e}"))),
                None => Err(uncertain(format!(
                    "HTTP {status} without a job_id: {}",
                    shorten(&answer.to_string(), MAX_DETAIL_CHARS)
                ))),
            }
        }
        408 | 429 | 502 | 503 => Err(StartError::Unavailable {
            reason: match body {
                Ok(body) => format!("HTTP {status}: {}", error_detail(status, &body)),
                Err(_) => format!("HTTP {status}"),
            },
            retry_after,
        }),
        400..=499 => Err(StartError::Refused {
            status,
            // A refusal whose body broke off is still a refusal.
            detail: match body {
                Ok(body) => error_detail(status, &body),
                Err(_) => format!("HTTP {status}"),
            },
        }),
        _ => Err(uncertain(match body {
            Ok(body) => format!("HTTP {status}: {}", error_detail(status, &body)),
            Err(_) => format!("HTTP {status}"),
        })),
    }
}

/// A failed send of a start: known not sent when the connection was never
/// made (refused, DNS, TLS, connect timeout) or the request could not be
/// built; otherwise it may have reached the RPA.
fn unsent_or_uncertain(e: &reqwest::Error) -> StartError {
    let unanswered = Unanswered::of(e);
    if e.is_connect() || e.is_builder() {
        StartError::Unavailable {
            reason: describe(&unanswered),
            retry_after: None,
        }
    } else {
        StartError::Uncertain {
            reason: match unanswered {
                Unanswered::Timeout => "timed out".to_owned(),
                Unanswered::Network(message) => format!("no answer: {message}"),
            },
        }
    }
}

/// What a read's non-2xx status says.
fn read_failure(status: u16, retry_after: Option<Duration>, body: &[u8]) -> CallError {
    match status {
        401 | 403 => CallError::Unauthorized,
        404 | 410 => CallError::NotFound,
        408 | 429 | 500..=599 => CallError::Unavailable {
            reason: format!("HTTP {status}: {}", error_detail(status, body)),
            retry_after,
        },
        _ => CallError::Invalid(format!("HTTP {status}: {}", error_detail(status, body))),
    }
}

/// Converts the `amount` of a result to cents: a JSON number (not a
/// string), not negative, rounded half up to the cent from the shortest
/// decimal that reads back as the same number, i.e. the decimal the RPA
/// wrote (`10.005` is 1001 cents, although the nearest binary value is a
/// little below 10.005).
pub fn amount_cents(amount: &Value) -> Result<i64, String> {
    let Value::Number(n) = amount else {
        return Err(format!("amount {amount} is not a JSON number"));
    };
    if let Some(i) = n.as_i64() {
        if i < 0 {
            return Err(format!("amount {i} is negative"));
        }
        return i
            .checked_mul(100)
            .ok_or_else(|| format!("amount {i} is too large"));
    }
    if n.as_u64().is_some() {
        return Err(format!("amount {n} is too large"));
    }
    match n.as_f64() {
        Some(f) => cents_of(f),
        None => Err(format!("amount {n} is not a number")),
    }
}

/// [`amount_cents`] for a float.
pub fn cents_of(amount: f64) -> Result<i64, String> {
    if !amount.is_finite() {
        return Err("amount is not finite".to_owned());
    }
    if amount < 0.0 {
        return Err(format!("amount {amount} is negative"));
    }
    if amount == 0.0 {
        // Also -0.0, which would print with its sign.
        return Ok(0);
    }
    // Rust prints the shortest decimal that reads back as the same f64:
    // `d[.ddd]e<exp>`.
    let text = format!("{amount:e}");
    let too_large = || format!("amount {amount} is too large");
    let (mantissa, exponent) = text.split_once('e').ok_or_else(too_large)?;
    let exponent: i64 = exponent.parse().map_err(|_| too_large())?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: u128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| too_large())?;
    // amount = digits × 10^(exponent − fraction digits); cents = amount × 100.
    let shift = exponent - fraction.len() as i64 + 2;
    let cents = if shift >= 0 {
        let factor = u32::try_from(shift)
            .ok()
            .and_then(|s| 10u128.checked_pow(s))
            .ok_or_else(too_large)?;
        digits.checked_mul(factor).ok_or_else(too_large)?
    } else if -shift > 38 {
        0
    } else {
        let divisor = 10u128.pow((-shift) as u32);
        let (quotient, remainder) = (digits / divisor, digits % divisor);
        if remainder * 2 >= divisor {
            quotient + 1
        } else {
            quotient
        }
    };
    i64::try_from(cents).map_err(|_| too_large())
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// `YYYY-MM-DD` exactly.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shaped
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

fn quoted(text: &str) -> String {
    format!("{:?}", shorten(text, 60))
}

/// Reads a `GET {base}/jobs/{job_id}` answer for `expected`, a job of
/// `kind`; why it is not per the contract otherwise.
pub fn parse_job_state(body: &[u8], expected: &JobId, kind: JobKind) -> Result<JobState, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|_| {
        format!(
            "the job's status is not JSON: {}",
            shorten(&String::from_utf8_lossy(body), MAX_DETAIL_CHARS)
        )
    })?;
    let text = |field: &str| answer.get(field).and_then(Value::as_str);
    match text("job_id") {
        Some(id) if id == expected.as_str() => {}
        Some(id) => {
            return Err(format!(
                "asked for job {expected}, answered job {}",
                quoted(id)
            ));
        }
        None => return Err("no job_id in the job's status".to_owned()),
    }
    match text("status") {
        Some("queued") => Ok(JobState::Queued),
        Some("running") => Ok(JobState::Running),
        Some("failed") => {
            let kind = match text("error_type") {
                Some("business") => FailureKind::Business,
                Some("technical") => FailureKind::Technical,
                Some(other) => return Err(format!("unknown error_type {}", quoted(other))),
                None => return Err("a failed job without an error_type".to_owned()),
            };
            let message = text("error")
                .ok_or("a failed job without an error message")?
                .trim();
            Ok(JobState::Failed {
                kind,
                message: shorten(message, MAX_ERROR_CHARS),
            })
        }
        Some("completed") => {
            let result = answer
                .get("result")
                .filter(|r| r.is_object())
                .ok_or("a completed job without a result object")?;
            parse_result(result, kind).map(JobState::Completed)
        }
        Some(other) => Err(format!("unknown status {}", quoted(other))),
        None => Err("no status in the job's status".to_owned()),
    }
}

fn parse_result(result: &Value, kind: JobKind) -> Result<JobResult, String> {
    let text = |field: &str| result.get(field).and_then(Value::as_str);
    match kind {
        JobKind::Download => {
            let invoice_url = text("invoice_url")
                .map(str::trim)
                .filter(|u| is_http_url(u))
                .ok_or("the result has no http(s) invoice_url")?;
            let due_date = text("due_date")
                .and_then(parse_date)
                .ok_or("the result's due_date is not a date as YYYY-MM-DD")?;
            let amount_cents = amount_cents(result.get("amount").unwrap_or(&Value::Null))?;
            let access_key = match result.get("access_key") {
                None | Some(Value::Null) => None,
                Some(Value::String(key)) => Some(key.trim().to_owned()).filter(|k| !k.is_empty()),
                Some(other) => return Err(format!("access_key {other} is not a string")),
            };
            Ok(JobResult::Download {
                invoice_url: invoice_url.to_owned(),
                due_date,
                amount_cents,
                access_key,
            })
        }
        JobKind::Filing => {
            let protocol = text("protocol")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .ok_or("the filing's result has no protocol")?;
            Ok(JobResult::Filing {
                protocol: protocol.to_owned(),
            })
        }
    }
}

/// Reads a `GET {base}/jobs/{job_id}/logs?after=<after>` answer: lines with
/// increasing `seq`, all after `after`, and `next` the last one's `seq` (or
/// `after` when there are none).
pub fn parse_log_page(body: &[u8], after: u64) -> Result<LogPage, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|_| {
        format!(
            "the logs are not JSON: {}",
            shorten(&String::from_utf8_lossy(body), MAX_DETAIL_CHARS)
        )
    })?;
    let raw = answer
        .get("lines")
        .and_then(Value::as_array)
        .ok_or("no lines array in the logs")?;
    let next = answer
        .get("next")
        .and_then(Value::as_u64)
        .ok_or("no next cursor in the logs")?;
    let mut lines = Vec::with_capacity(raw.len());
    let mut last = after;
    for line in raw {
        let seq = line
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or("a log line without a seq")?;
        if seq <= last {
            return Err(format!(
                "log line {seq} is not after {last} (lines must be after the cursor, oldest first)"
            ));
        }
        let at = line
            .get("at")
            .and_then(Value::as_str)
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .ok_or_else(|| format!("log line {seq} has no RFC 3339 time"))?
            .with_timezone(&Utc);
        let level = match line.get("level").and_then(Value::as_str) {
            Some("info") => LogLevel::Info,
            Some("warning") => LogLevel::Warning,
            Some("error") => LogLevel::Error,
            _ => {
                return Err(format!(
                    "log line {seq} has no level info, warning or error"
                ));
            }
        };
        let message = line
            .get("message")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("log line {seq} has no message"))?;
        lines.push(LogLine {
            seq,
            at,
            level,
            message: shorten(message, MAX_LOG_LINE_CHARS),
        });
        last = seq;
    }
    if next != last {
        return Err(format!(
            "next is {next}, not the last line's seq {last} (or the cursor when there are none)"
        ));
    }
    Ok(LogPage { lines, next })
}

#[derive(Clone)]
pub struct RpaClient {
    config: RpaApiConfig,
    http: LazyHttpClient,
}

impl std::fmt::Debug for RpaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpaClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RpaClient {
    pub fn new(config: RpaApiConfig) -> Self {
        RpaClient {
            config,
            http: LazyHttpClient::new(concat!("nuvem-rpa/", env!("CARGO_PKG_VERSION"))),
        }
    }

    pub fn config(&self) -> &RpaApiConfig {
        &self.config
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        endpoint(&self.config.base_url, segments)
    }

    /// Starts downloading a client's invoice from `carrier`'s portal
    /// (`POST {base}/executar/{carrier}`).
    pub async fn start_download(
        &self,
        token: &RpaToken,
        carrier: &CarrierCode,
        request: &DownloadRequest,
    ) -> Result<JobId, StartError> {
        let url = self.url(&["executar", carrier.as_str()]);
        self.start(token, url, request).await
    }

    /// Starts filing an invoice with the tax system (`POST
    /// {base}/executar/sat`). On [`StartError::Uncertain`] the filing may be
    /// under way: never send it again without a person deciding.
    pub async fn start_filing(
        &self,
        token: &RpaToken,
        request: &FilingRequest,
    ) -> Result<JobId, StartError> {
        let url = self.url(&["executar", "sat"]);
        self.start(token, url, request).await
    }

    async fn start<B: Serialize>(
        &self,
        token: &RpaToken,
        url: url::Url,
        body: &B,
    ) -> Result<JobId, StartError> {
        let mut response = self
            .http
            .get()
            .post(url)
            .bearer_auth(token.expose())
            .timeout(self.config.timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| unsent_or_uncertain(&e))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(&response);
        let body = read_capped(&mut response, MAX_ANSWER_BYTES).await;
        judge_start(status, retry_after, body)
    }

    /// A `GET` of the API; the 2xx answer's body, or the failure.
    async fn read(
        &self,
        token: Option<&RpaToken>,
        url: url::Url,
        limit: usize,
    ) -> Result<Vec<u8>, CallError> {
        let mut request = self.http.get().get(url).timeout(self.config.timeout);
        if let Some(token) = token {
            request = request.bearer_auth(token.expose());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| CallError::from(Unanswered::of(&e)))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(&response);
        let body = read_capped(&mut response, limit).await;
        if !(200..300).contains(&status) {
            return Err(read_failure(
                status,
                retry_after,
                body.as_deref().unwrap_or_default(),
            ));
        }
        Ok(body?)
    }

    /// The job's state (`GET {base}/jobs/{job_id}`); `kind` says which
    /// result a completed job carries.
    pub async fn job(
        &self,
        token: &RpaToken,
        job_id: &JobId,
        kind: JobKind,
    ) -> Result<JobState, CallError> {
        let url = self.url(&["jobs", job_id.as_str()]);
        let body = self.read(Some(token), url, MAX_ANSWER_BYTES).await?;
        parse_job_state(&body, job_id, kind).map_err(CallError::Invalid)
    }

    /// The job's log lines after `after` (`GET
    /// {base}/jobs/{job_id}/logs?after=`), at most [`MAX_LOG_LINES`]; read on
    /// from the page's `next`.
    pub async fn logs(
        &self,
        token: &RpaToken,
        job_id: &JobId,
        after: u64,
    ) -> Result<LogPage, CallError> {
        let mut url = self.url(&["jobs", job_id.as_str(), "logs"]);
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
        let body = self.read(Some(token), url, MAX_LOG_ANSWER_BYTES).await?;
        parse_log_page(&body, after).map_err(CallError::Invalid)
    }

    /// Whether the RPA answers (`GET {base}/health`, no token).
    pub async fn health(&self) -> Result<(), CallError> {
        let body = self
            .read(None, self.url(&["health"]), MAX_ANSWER_BYTES)
            .await?;
        let answer: Option<Value> = serde_json::from_slice(&body).ok();
        match answer.as_ref().and_then(|a| a.get("status")) {
            Some(Value::String(s)) if s == "ok" => Ok(()),
            _ => Err(CallError::Invalid(format!(
                "health answered {}",
                shorten(&String::from_utf8_lossy(&body), MAX_DETAIL_CHARS)
            ))),
        }
    }

    /// Downloads a completed job's invoice (`GET <invoice_url>`, without
    /// the token: the URL may lead outside the RPA). An answer that says
    /// it is over `max_bytes` is refused before its body is read, and one
    /// that turns out longer is refused once `max_bytes + 1` bytes have
    /// come. Whether the bytes are a PDF is for the caller to check.
    pub async fn fetch_invoice(&self, url: &str, max_bytes: u64) -> Result<Vec<u8>, CallError> {
        let url = url::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| CallError::Invalid("the invoice URL is not an http(s) URL".into()))?;
        let mut response = self
            .http
            .get()
            .get(url)
            .timeout(self.config.invoice_timeout)
            .send()
            .await
            .map_err(|e| CallError::from(Unanswered::of(&e)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let retry_after = retry_after(&response);
            let body = read_capped(&mut response, MAX_ANSWER_BYTES).await;
            return Err(read_failure(
                status,
                retry_after,
                body.as_deref().unwrap_or_default(),
            ));
        }
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(CallError::TooLarge { limit: max_bytes });
        }
        let limit = usize::try_from(max_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let body = read_capped(&mut response, limit).await?;
        if body.len() as u64 > max_bytes {
            return Err(CallError::TooLarge { limit: max_bytes });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> JobId {
        JobId::parse(s).unwrap()
    }

    #[test]
    fn configuration() {
        assert!(RpaApiConfig::from_lookup(&|_| None).is_err());
        let lookup = |name: &str| match name {
            "RPA_API_URL" => Some("https://rpa.example.com/api/".to_owned()),
            "RPA_API_TIMEOUT_MS" => Some("2500".to_owned()),
            _ => None,
        };
        let c = RpaApiConfig::from_lookup(&lookup).unwrap();
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.invoice_timeout, DEFAULT_INVOICE_TIMEOUT);
        let client = RpaClient::new(c);
        assert_eq!(
            client.url(&["jobs", "a/../b", "logs"]).as_str(),
            "https://rpa.example.com/api/jobs/a%2F..%2Fb/logs"
        );
        assert_eq!(
            client.url(&["executar", "sat"]).as_str(),
            "https://rpa.example.com/api/executar/sat"
        );
        assert!(RpaApiConfig::new("rpa.example.com").is_err());
    }

    #[test]
    fn secrets_are_not_printed() {
        let secret: RpaApiSecret = serde_json::from_str(r#"{"token": " s3cr3t "}"#).unwrap();
        assert_eq!(secret.token.expose(), "s3cr3t");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        let empty: RpaApiSecret = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.token.expose(), "");

        let request = DownloadRequest {
            cnpj: "11222333000181".into(),
            legal_name: "Cliente Exemplo Ltda".into(),
            carrier: "VIVO".into(),
            filter: "CLIENTE EXEMPLO".into(),
            unit: "Matriz".into(),
            service: "Móvel".into(),
            portal_login: "login@cliente".into(),
            portal_password: PortalPassword::new("senha-do-portal"),
            cpf: None,
            month: Month::parse("2026-06").unwrap(),
            settings: json!({"tentativas": 2}),
        };
        let shown = format!("{request:?}");
        assert!(!shown.contains("senha-do-portal") && shown.contains("[redacted]"));
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"cnpj": "11222333000181", "razao": "Cliente Exemplo Ltda",
                   "operadora": "VIVO", "nome_filtro": "CLIENTE EXEMPLO", "unidade": "Matriz",
                   "servico": "Móvel", "login_portal": "login@cliente",
                   "senha_portal": "senha-do-portal", "cpf": null, "mes_ano": "06/2026",
                   "configuracao": {"tentativas": 2}})
        );

        let filing = FilingRequest {
            cnpj: "11222333000181".into(),
            legal_name: "Cliente Exemplo Ltda".into(),
            carrier: "VIVO".into(),
            filter: "".into(),
            unit: "".into(),
            service: "".into(),
            sat_data: "conta 123".into(),
            file_name: "fatura-2026-06.pdf".into(),
            due_date: NaiveDate::from_ymd_opt(2026, 7, 10).unwrap(),
            invoice_url: PresignedUrl::new("https://b.s3.amazonaws.com/k.pdf?X-Amz-Signature=abc"),
        };
        let shown = format!("{filing:?}");
        assert!(!shown.contains("X-Amz-Signature") && shown.contains("k.pdf"));
        let wire = serde_json::to_value(&filing).unwrap();
        assert_eq!(wire["data_vencimento"], "2026-07-10");
        assert_eq!(
            wire["url_fatura"],
            "https://b.s3.amazonaws.com/k.pdf?X-Amz-Signature=abc"
        );
        assert_eq!(wire["dados_sat"], "conta 123");
        assert_eq!(wire["nome_arquivo"], "fatura-2026-06.pdf");
    }

    #[test]
    fn job_ids() {
        assert!(JobId::parse("3f2a9c1e-7b4d-4e2a-9f00-1c2d3e4f5a6b").is_ok());
        for bad in ["", " ", "a b", "a\nb", ".", "..", &"x".repeat(201)] {
            assert!(JobId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::from_value::<JobId>(json!("j-1")).unwrap(),
            id("j-1")
        );
    }

    #[test]
    fn amounts_round_half_up_to_the_cent() {
        let cents = |v: Value| amount_cents(&v);
        assert_eq!(cents(json!(0)), Ok(0));
        assert_eq!(cents(json!(189)), Ok(18900));
        assert_eq!(cents(json!(1234.56)), Ok(123456));
        assert_eq!(cents(json!(0.29)), Ok(29));
        assert_eq!(cents(json!(10.005)), Ok(1001));
        assert_eq!(cents(json!(10.004)), Ok(1000));
        assert_eq!(cents(json!(0.125)), Ok(13));
        assert_eq!(cents(json!(99.999)), Ok(10000));
        assert_eq!(cents(json!(1e-9)), Ok(0));
        assert_eq!(cents(json!(1.5e3)), Ok(150000));
        assert_eq!(cents(json!(-0.0)), Ok(0));
        assert!(cents(json!(-0.01)).is_err());
        assert!(cents(json!(-5)).is_err());
        assert!(cents(json!("12.30")).is_err());
        assert!(cents(Value::Null).is_err());
        assert!(cents(json!(u64::MAX)).is_err());
        assert!(cents(json!(1e300)).is_err());
        assert!(cents_of(f64::NAN).is_err());
        assert!(cents_of(f64::INFINITY).is_err());
        assert_eq!(cents_of(1e15), Ok(100_000_000_000_000_000));
        assert!(cents_of(1e17).is_err(), "past i64::MAX cents");
    }

    #[test]
    fn job_states_are_read_per_the_contract() {
        let j = id("j-1");
        let state = |v: Value, kind| parse_job_state(v.to_string().as_bytes(), &j, kind);
        assert_eq!(
            state(
                json!({"job_id": "j-1", "status": "queued"}),
                JobKind::Download
            ),
            Ok(JobState::Queued)
        );
        assert_eq!(
            state(
                json!({"job_id": "j-1", "status": "running"}),
                JobKind::Filing
            ),
            Ok(JobState::Running)
        );
        assert_eq!(
            state(
                json!({"job_id": "j-1", "status": "failed", "error_type": "business", "error": " senha incorreta "}),
                JobKind::Download
            ),
            Ok(JobState::Failed {
                kind: FailureKind::Business,
                message: "senha incorreta".into()
            })
        );
        let done = json!({"job_id": "j-1", "status": "completed", "result": {
            "invoice_url": "http://127.0.0.1:1/faturas/j-1.pdf", "due_date": "2026-07-10",
            "amount": 1234.56}});
        assert_eq!(
            state(done.clone(), JobKind::Download),
            Ok(JobState::Completed(JobResult::Download {
                invoice_url: "http://127.0.0.1:1/faturas/j-1.pdf".into(),
                due_date: NaiveDate::from_ymd_opt(2026, 7, 10).unwrap(),
                amount_cents: 123456,
                access_key: None,
            }))
        );
        // The same answer polled as a filing has no protocol.
        assert!(state(done.clone(), JobKind::Filing).is_err());
        let mut with_key = done.clone();
        with_key["result"]["access_key"] = json!(" 3526 ");
        let Ok(JobState::Completed(JobResult::Download { access_key, .. })) =
            state(with_key, JobKind::Download)
        else {
            panic!()
        };
        assert_eq!(
            access_key.as_deref(),
            Some("3526"),
            "passed through, unchecked"
        );
        assert_eq!(
            state(
                json!({"job_id": "j-1", "status": "completed", "result": {"protocol": "SAT-1"}}),
                JobKind::Filing
            ),
            Ok(JobState::Completed(JobResult::Filing {
                protocol: "SAT-1".into()
            }))
        );

        let broken = [
            json!({"status": "queued"}),
            json!({"job_id": "j-2", "status": "queued"}),
            json!({"job_id": "j-1"}),
            json!({"job_id": "j-1", "status": "paused"}),
            json!({"job_id": "j-1", "status": "failed", "error": "x"}),
            json!({"job_id": "j-1", "status": "failed", "error_type": "fatal", "error": "x"}),
            json!({"job_id": "j-1", "status": "failed", "error_type": "technical"}),
            json!({"job_id": "j-1", "status": "completed"}),
            json!({"job_id": "j-1", "status": "completed", "result": {"protocol": ""}}),
        ];
        for answer in broken {
            assert!(state(answer.clone(), JobKind::Filing).is_err(), "{answer}");
        }
        for (field, value) in [
            ("amount", json!(-1)),
            ("amount", json!("1.00")),
            ("due_date", json!("10/07/2026")),
            ("due_date", json!("2026-02-30")),
            ("invoice_url", json!("ftp://x/y.pdf")),
            ("access_key", json!(123)),
        ] {
            let mut answer = done.clone();
            answer["result"][field] = value;
            assert!(state(answer, JobKind::Download).is_err(), "{field}");
        }
        assert!(parse_job_state(b"<html>", &j, JobKind::Download).is_err());
    }

    #[test]
    fn log_pages_are_checked() {
        let page = |v: Value, after| parse_log_page(v.to_string().as_bytes(), after);
        let line = |seq: u64| json!({"seq": seq, "at": "2026-07-01T10:00:00-03:00", "level": "info", "message": format!("linha {seq}")});
        let read = page(json!({"lines": [line(3), line(4)], "next": 4}), 2).unwrap();
        assert_eq!(read.next, 4);
        assert_eq!(read.lines[0].seq, 3);
        assert_eq!(read.lines[0].at.to_rfc3339(), "2026-07-01T13:00:00+00:00");
        assert_eq!(read.lines[1].message, "linha 4");
        assert_eq!(
            page(json!({"lines": [], "next": 7}), 7),
            Ok(LogPage {
                lines: vec![],
                next: 7
            })
        );
        for bad in [
            json!({"lines": [line(2)], "next": 2}),
            json!({"lines": [line(4), line(3)], "next": 3}),
            json!({"lines": [line(3)], "next": 5}),
            json!({"lines": [], "next": 0}),
            json!({"lines": [{"seq": 3, "at": "ontem", "level": "info", "message": ""}], "next": 3}),
            json!({"lines": [{"seq": 3, "at": "2026-07-01T10:00:00Z", "level": "debug", "message": ""}], "next": 3}),
            json!({"next": 2}),
        ] {
            assert!(page(bad.clone(), 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn starts_are_classified() {
        let body = |s: &str| Ok(s.as_bytes().to_vec());
        assert_eq!(
            judge_start(202, None, body(r#"{"job_id": "j-9"}"#)),
            Ok(id("j-9"))
        );
        assert_eq!(
            judge_start(422, None, body(r#"{"detail": "mes_ano inválido"}"#)),
            Err(StartError::Refused {
                status: 422,
                detail: "mes_ano inválido".into()
            })
        );
        assert_eq!(
            judge_start(
                422,
                None,
                body(r#"{"detail": [{"loc": ["body", "cnpj"], "msg": "field required"}]}"#)
            ),
            Err(StartError::Refused {
                status: 422,
                detail: r#"[{"loc":["body","cnpj"],"msg":"field required"}]"#.into()
            })
        );
        assert_eq!(
            judge_start(401, None, Err(Unanswered::Timeout)),
            Err(StartError::Refused {
                status: 401,
                detail: "HTTP 401".into()
            })
        );
        for status in [408, 429, 502, 503] {
            let e = judge_start(status, Some(Duration::from_secs(3)), body("")).unwrap_err();
            assert!(
                matches!(
                    e,
                    StartError::Unavailable {
                        retry_after: Some(_),
                        ..
                    }
                ),
                "{status}"
            );
            assert!(!e.may_have_started());
        }
        for (status, answer) in [
            (500, body("boom")),
            (504, body("")),
            (302, body("")),
            (202, body(r#"{"id": "j-9"}"#)),
            (202, body(r#"{"job_id": ""}"#)),
            (202, body("accepted")),
            (200, Err(Unanswered::Network("connection reset".into()))),
        ] {
            let e = judge_start(status, None, answer).unwrap_err();
            assert!(e.may_have_started(), "{status}: {e}");
        }
    }
}
