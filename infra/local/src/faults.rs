//! Fault injection: a proxy between the functions and the emulator (their
//! `AWS_ENDPOINT_URL` points at it) that gives a share of AWS calls a fault,
//! in the wire format of the service's own protocol, so that the AWS SDK
//! classifies and retries it as it would a real one:
//!
//! - `throttle`: the service's throttling error (DynamoDB's
//!   `ProvisionedThroughputExceededException`, `ThrottlingException` or
//!   `RequestLimitExceeded`, S3's `SlowDown`, SES's
//!   `TooManyRequestsException`, …), not forwarded;
//! - `error`: a 500 `InternalServerError` or 503 `ServiceUnavailable`, not
//!   forwarded;
//! - `error-after`: forwarded (the emulator applies it), then answered with
//!   that 5xx instead of the emulator's answer: the outcome the caller
//!   cannot know;
//! - `slow`: forwarded after a pause of up to `slow-ms` (longer than the
//!   SDK's operation timeout, some of them);
//! - `drop`: the connection closed without an answer, not forwarded;
//! - `drop-after`: forwarded, then the connection closed without an answer.
//!
//! Which calls may get a fault: every call, or those of the listed services
//! (`dynamodb`, `sqs`, `s3`, `ses`, `kms`, `secretsmanager`, `iam`, `sts`,
//! as they sign their requests) and operations (`dynamodb:TransactWriteItems`).
//! The proxy also counts what it saw ([`FaultStats`]).
//!
//! Hand-written on hyper because a fault proxy must do what no proxy crate
//! does for it: speak each AWS protocol's error format and drop a
//! connection after forwarding.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::sync::watch;

/// What can happen to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Throttle,
    Error,
    ErrorAfter,
    Slow,
    Drop,
    DropAfter,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Throttle,
        FaultKind::Error,
        FaultKind::ErrorAfter,
        FaultKind::Slow,
        FaultKind::Drop,
        FaultKind::DropAfter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Throttle => "throttle",
            FaultKind::Error => "error",
            FaultKind::ErrorAfter => "error-after",
            FaultKind::Slow => "slow",
            FaultKind::Drop => "drop",
            FaultKind::DropAfter => "drop-after",
        }
    }
}

impl FromStr for FaultKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .with_context(|| {
                format!(
                    "unknown fault kind {s} (throttle, error, error-after, slow, drop, drop-after)"
                )
            })
    }
}

/// Which calls get faults, how often and of which kinds.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    /// Share of the matching calls given a fault, 0..=1.
    pub rate: f64,
    /// The kinds drawn from, each as likely (default: all).
    pub kinds: Vec<FaultKind>,
    /// `(service, operation)` pairs that may get a fault; an operation of
    /// `None` is every operation of the service. Empty: every call.
    pub targets: Vec<(String, Option<String>)>,
    /// The longest pause of a `slow` answer.
    pub slow: Duration,
}

impl FromStr for FaultSpec {
    type Err = anyhow::Error;

    /// `rate=0.2[,kinds=throttle+drop][,targets=dynamodb:PutItem+sqs][,slow-ms=3000]`,
    /// or only the rate (`0.2`).
    fn from_str(s: &str) -> Result<FaultSpec> {
        let mut spec = FaultSpec {
            rate: 0.0,
            kinds: FaultKind::ALL.to_vec(),
            targets: Vec::new(),
            slow: Duration::from_millis(3_000),
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or(("rate", part));
            match key {
                "rate" => spec.rate = value.parse().context("faults: rate")?,
                "kinds" => {
                    spec.kinds = value.split('+').map(str::parse).collect::<Result<_>>()?;
                }
                "targets" => {
                    spec.targets = value
                        .split('+')
                        .map(|t| match t.split_once(':') {
                            Some((service, op)) => (service.to_owned(), Some(op.to_owned())),
                            None => (t.to_owned(), None),
                        })
                        .collect();
                }
                "slow-ms" => {
                    spec.slow = Duration::from_millis(value.parse().context("faults: slow-ms")?);
                }
                other => bail!("faults: unknown setting {other} (rate, kinds, targets, slow-ms)"),
            }
        }
        if !(0.0..=1.0).contains(&spec.rate) {
            bail!("faults: rate must be within 0..=1");
        }
        if spec.kinds.is_empty() {
            bail!("faults: no kinds");
        }
        Ok(spec)
    }
}

impl FaultSpec {
    fn applies_to(&self, call: &Call) -> bool {
        self.targets.is_empty()
            || self.targets.iter().any(|(service, op)| {
                *service == call.service && op.as_ref().is_none_or(|op| *op == call.operation)
            })
    }
}

/// What the proxy saw and did, counted since it started.
#[derive(Default)]
pub struct FaultStats {
    requests: AtomicU64,
    retries: AtomicU64,
    conditional_refusals: AtomicU64,
    faults: Mutex<BTreeMap<(FaultKind, String), u64>>,
}

/// A copy of [`FaultStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultCounts {
    /// Calls received.
    pub requests: u64,
    /// Calls the SDK marked as a retry (`amz-sdk-request: attempt=N`, N > 1).
    pub retries: u64,
    /// DynamoDB writes the emulator refused on a condition (duplicates and
    /// lost races that conditional writes turned away).
    pub conditional_refusals: u64,
    /// Faults injected, by kind and `service:operation`.
    pub faults: BTreeMap<(FaultKind, String), u64>,
    /// Function processes killed mid-invocation.
    pub crashes: u64,
}

impl FaultCounts {
    pub fn injected(&self) -> u64 {
        self.faults.values().sum()
    }

    pub fn of_kind(&self, kind: FaultKind) -> u64 {
        self.faults
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    /// One line per figure, for people.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "AWS calls {}, SDK retries {}, conditional writes refused {}, faults injected {}, \
             processes killed mid-invocation {}\n",
            self.requests,
            self.retries,
            self.conditional_refusals,
            self.injected(),
            self.crashes
        );
        for kind in FaultKind::ALL {
            let n = self.of_kind(kind);
            if n > 0 {
                out.push_str(&format!("  {:<12} {n}\n", kind.name()));
            }
        }
        out
    }
}

impl FaultStats {
    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            conditional_refusals: self.conditional_refusals.load(Ordering::Relaxed),
            faults: self.faults.lock().expect("lock").clone(),
            crashes: 0,
        }
    }

    fn fault(&self, kind: FaultKind, call: &Call) {
        let key = (kind, format!("{}:{}", call.service, call.operation));
        *self.faults.lock().expect("lock").entry(key).or_default() += 1;
    }
}

/// Which invocations' processes to kill part-way, as a crash (out of
/// memory, a segfault, the host lost) would.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashSpec {
    /// Share of invocations whose process is killed, 0..=1.
    pub rate: f64,
    /// The kill comes at a random moment this long at most after the event
    /// was delivered (if the invocation is still running then).
    pub within: Duration,
    /// The functions (logical ids) that may crash; empty: every one.
    pub functions: Vec<String>,
}

impl FromStr for CrashSpec {
    type Err = anyhow::Error;

    /// `<rate>[,within-ms=<n>][,functions=<Id>+<Id>]`.
    fn from_str(s: &str) -> Result<CrashSpec> {
        let mut spec = CrashSpec {
            rate: 0.0,
            within: Duration::from_millis(300),
            functions: Vec::new(),
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or(("rate", part));
            match key {
                "rate" => spec.rate = value.parse().context("crashes: rate")?,
                "within-ms" => {
                    spec.within =
                        Duration::from_millis(value.parse().context("crashes: within-ms")?);
                }
                "functions" => spec.functions = value.split('+').map(str::to_owned).collect(),
                other => bail!("crashes: unknown setting {other} (rate, within-ms, functions)"),
            }
        }
        if !(0.0..=1.0).contains(&spec.rate) {
            bail!("crashes: rate must be within 0..=1");
        }
        Ok(spec)
    }
}

/// Draws and counts the crashes of a [`CrashSpec`].
#[derive(Debug)]
pub struct CrashInjector {
    spec: CrashSpec,
    killed: AtomicU64,
}

impl CrashInjector {
    pub fn new(spec: CrashSpec) -> Result<CrashInjector> {
        if !(0.0..=1.0).contains(&spec.rate) {
            bail!("crash rate must be within 0..=1");
        }
        Ok(CrashInjector {
            spec,
            killed: AtomicU64::new(0),
        })
    }

    pub fn applies_to(&self, function: &str) -> bool {
        self.spec.functions.is_empty() || self.spec.functions.iter().any(|f| f == function)
    }

    /// When to kill this invocation's process, after its delivery, if at all.
    pub fn draw(&self) -> Option<Duration> {
        (self.spec.rate > 0.0 && fastrand::f64() < self.spec.rate).then(|| {
            let ms = self.spec.within.as_millis() as u64;
            Duration::from_millis(fastrand::u64(0..=ms))
        })
    }

    pub fn killed(&self) {
        self.killed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn kills(&self) -> u64 {
        self.killed.load(Ordering::Relaxed)
    }
}

/// A running proxy; stops with the runner's shutdown.
#[derive(Clone)]
pub struct FaultProxy {
    pub url: String,
    pub stats: Arc<FaultStats>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(
        spec: FaultSpec,
        upstream: &str,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(FaultProxy, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("fault proxy: cannot listen on 127.0.0.1")?;
        let url = format!("http://{}", listener.local_addr()?);
        let stats = Arc::new(FaultStats::default());
        let state = Arc::new(Proxy {
            spec,
            upstream: upstream.trim_end_matches('/').to_owned(),
            // Plain HTTP to 127.0.0.1; no pool limits, as the SDK's own.
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .context("fault proxy: HTTP client")?,
            stats: stats.clone(),
        });
        let task = tokio::spawn(serve(listener, state, shutdown));
        Ok((FaultProxy { url, stats }, task))
    }
}

struct Proxy {
    spec: FaultSpec,
    upstream: String,
    client: reqwest::Client,
    stats: Arc<FaultStats>,
}

async fn serve(
    listener: tokio::net::TcpListener,
    proxy: Arc<Proxy>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors, say: let some close.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let proxy = proxy.clone();
                async move { proxy.handle(req).await }
            });
            // An Err from the service closes the connection unanswered: the
            // `drop` faults.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The connection is closed without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

type Answer = Response<Full<Bytes>>;

impl Proxy {
    async fn handle(&self, req: Request<Incoming>) -> Result<Answer, Dropped> {
        let (parts, body) = req.into_parts();
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return Err(Dropped);
        };
        let call = Call::of(&parts, &body);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if sdk_attempt(&parts.headers) > 1 {
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        let fault = self.draw(&call);
        if let Some(kind) = fault {
            self.stats.fault(kind, &call);
        }
        match fault {
            Some(FaultKind::Throttle) => return Ok(call.throttling_error()),
            Some(FaultKind::Error) => return Ok(call.server_error()),
            Some(FaultKind::Drop) => return Err(Dropped),
            Some(FaultKind::Slow) => {
                let ms = self.spec.slow.as_millis() as u64;
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=ms))).await;
            }
            _ => {}
        }
        let (answer, refused) = self.forward(parts, body).await;
        match fault {
            Some(FaultKind::ErrorAfter) => Ok(call.server_error()),
            Some(FaultKind::DropAfter) => Err(Dropped),
            _ => {
                if call.service == "dynamodb" && refused {
                    self.stats
                        .conditional_refusals
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(answer)
            }
        }
    }

    fn draw(&self, call: &Call) -> Option<FaultKind> {
        if self.spec.rate <= 0.0 || !self.spec.applies_to(call) || fastrand::f64() >= self.spec.rate
        {
            return None;
        }
        Some(self.spec.kinds[fastrand::usize(..self.spec.kinds.len())])
    }

    /// The emulator's answer, as it came (a 502 if it could not be reached),
    /// and whether it refused a write on a condition.
    async fn forward(&self, parts: hyper::http::request::Parts, body: Bytes) -> (Answer, bool) {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req = self
            .client
            .request(parts.method, format!("{}{path}", self.upstream))
            .body(body);
        for (name, value) in &parts.headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                req = req.header(name, value);
            }
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                let answer = respond(
                    StatusCode::BAD_GATEWAY,
                    &[("content-type", "text/plain")],
                    format!("fault proxy: emulator unreachable: {e}"),
                );
                return (answer, false);
            }
        };
        let mut answer = Response::builder().status(resp.status());
        for (name, value) in resp.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                answer = answer.header(name, value);
            }
        }
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        let refused = status == StatusCode::BAD_REQUEST
            && String::from_utf8_lossy(&bytes).contains("ConditionalCheckFailed");
        let answer = answer
            .body(Full::new(bytes))
            .unwrap_or_else(|_| respond(StatusCode::BAD_GATEWAY, &[], String::new()));
        (answer, refused)
    }
}

/// Headers of one connection, not of the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
];

/// The SDK's attempt number (`amz-sdk-request: attempt=2; max=3`), 1 if none.
fn sdk_attempt(headers: &hyper::HeaderMap) -> u32 {
    headers
        .get("amz-sdk-request")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(';')
                .find_map(|p| p.trim().strip_prefix("attempt="))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(1)
}

fn respond(status: StatusCode, headers: &[(&str, &str)], body: String) -> Answer {
    let mut answer = Response::builder().status(status);
    for (name, value) in headers {
        answer = answer.header(*name, *value);
    }
    answer
        .body(Full::new(Bytes::from(body)))
        .expect("a valid answer")
}

/// The wire protocol of a call, which decides its error format.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Protocol {
    /// awsJson1_0 / awsJson1_1 (`X-Amz-Target`): DynamoDB, SQS, KMS, Secrets Manager.
    AwsJson,
    /// awsQuery (form body with `Action`): IAM, STS.
    AwsQuery,
    /// restXml: S3.
    RestXml,
    /// restJson1: SESv2.
    RestJson,
}

/// One AWS call, as the proxy recognises it.
#[derive(Clone, Debug, PartialEq)]
struct Call {
    /// The signing name from the SigV4 credential scope (`dynamodb`, `s3`…).
    service: String,
    /// `PutItem`, `SendMessage`, `PutObject`… (`METHOD` when unknown).
    operation: String,
    protocol: Protocol,
    content_type: String,
}

/// Codes of each service's errors: (throttling codes and their status, 5xx codes).
struct ServiceErrors {
    throttling: &'static [(&'static str, u16)],
    server: &'static [(&'static str, u16)],
}

static ERRORS: LazyLock<BTreeMap<&'static str, ServiceErrors>> = LazyLock::new(|| {
    BTreeMap::from([
        (
            "dynamodb",
            ServiceErrors {
                throttling: &[
                    ("ProvisionedThroughputExceededException", 400),
                    ("ThrottlingException", 400),
                    ("RequestLimitExceeded", 400),
                ],
                server: &[("InternalServerError", 500), ("ServiceUnavailable", 503)],
            },
        ),
        (
            "sqs",
            ServiceErrors {
                throttling: &[("RequestThrottled", 400), ("ThrottlingException", 400)],
                server: &[("InternalError", 500), ("ServiceUnavailable", 503)],
            },
        ),
        (
            "s3",
            ServiceErrors {
                throttling: &[("SlowDown", 503)],
                server: &[("InternalError", 500), ("ServiceUnavailable", 503)],
            },
        ),
        (
            "ses",
            ServiceErrors {
                throttling: &[("TooManyRequestsException", 429)],
                server: &[("InternalServerError", 500), ("ServiceUnavailable", 503)],
            },
        ),
        (
            "iam",
            ServiceErrors {
                throttling: &[("Throttling", 400)],
                server: &[("ServiceFailure", 500), ("ServiceUnavailable", 503)],
            },
        ),
        (
            "kms",
            ServiceErrors {
                throttling: &[("ThrottlingException", 400)],
                server: &[("KMSInternalException", 500), ("ServiceUnavailable", 503)],
            },
        ),
        (
            "secretsmanager",
            ServiceErrors {
                throttling: &[("ThrottlingException", 400)],
                server: &[("InternalServiceError", 500), ("ServiceUnavailable", 503)],
            },
        ),
    ])
});

static OTHER_SERVICE: ServiceErrors = ServiceErrors {
    throttling: &[("ThrottlingException", 400)],
    server: &[("InternalServerError", 500), ("ServiceUnavailable", 503)],
};

impl Call {
    fn of(parts: &hyper::http::request::Parts, body: &[u8]) -> Call {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let service = signing_name(header("authorization")).unwrap_or("unknown");
        let content_type = header("content-type").to_owned();
        let query = parts.uri.query().unwrap_or("");
        let (protocol, operation) = if let Some((_, op)) = header("x-amz-target").split_once('.') {
            (Protocol::AwsJson, op.to_owned())
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            (Protocol::AwsQuery, form_value(body, "Action"))
        } else if service == "s3" {
            let op = form_value(query.as_bytes(), "x-id");
            let op = if !op.is_empty() {
                op
            } else if form_value(query.as_bytes(), "list-type") == "2" {
                "ListObjectsV2".to_owned()
            } else {
                parts.method.to_string()
            };
            (Protocol::RestXml, op)
        } else {
            let op = match parts.uri.path() {
                "/v2/email/outbound-emails" => "SendEmail".to_owned(),
                path => format!("{} {path}", parts.method),
            };
            (Protocol::RestJson, op)
        };
        Call {
            service: service.to_owned(),
            operation,
            protocol,
            content_type,
        }
    }

    fn errors(&self) -> &'static ServiceErrors {
        ERRORS.get(self.service.as_str()).unwrap_or(&OTHER_SERVICE)
    }

    fn throttling_error(&self) -> Answer {
        let codes = self.errors().throttling;
        let (code, status) = codes[fastrand::usize(..codes.len())];
        self.error(code, status, "Rate exceeded (injected by the fault proxy)")
    }

    fn server_error(&self) -> Answer {
        let codes = self.errors().server;
        let (code, status) = codes[fastrand::usize(..codes.len())];
        self.error(code, status, "Injected by the fault proxy")
    }

    /// `code` as this call's protocol writes errors.
    fn error(&self, code: &str, status: u16, message: &str) -> Answer {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let request_id = crate::util::uuid();
        let fault = if status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        match self.protocol {
            Protocol::AwsJson => {
                let body = serde_json::json!({ "__type": code, "message": message }).to_string();
                let query_error = format!("{code};{fault}");
                let content_type = if self.content_type.is_empty() {
                    "application/x-amz-json-1.0"
                } else {
                    &self.content_type
                };
                respond(
                    status,
                    &[
                        ("content-type", content_type),
                        ("x-amzn-requestid", &request_id),
                        // SQS's JSON protocol keeps its query error codes here.
                        ("x-amzn-query-error", &query_error),
                    ],
                    body,
                )
            }
            Protocol::RestJson => respond(
                status,
                &[
                    ("content-type", "application/json"),
                    ("x-amzn-errortype", code),
                    ("x-amzn-requestid", &request_id),
                ],
                serde_json::json!({ "message": message }).to_string(),
            ),
            Protocol::RestXml => respond(
                status,
                &[
                    ("content-type", "application/xml"),
                    ("x-amz-request-id", &request_id),
                ],
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                     <Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
                ),
            ),
            Protocol::AwsQuery => respond(
                status,
                &[
                    ("content-type", "text/xml"),
                    ("x-amzn-requestid", &request_id),
                ],
                format!(
                    "<ErrorResponse><Error><Type>{fault}</Type><Code>{code}</Code>\
                     <Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
                ),
            ),
        }
    }
}

/// The service of a SigV4 `Authorization` header's credential scope
/// (`Credential=AKID/20261130/us-east-1/dynamodb/aws4_request`).
fn signing_name(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3)
}

/// A value of a form-encoded body or query (`Action=SendEmail&…`), as sent.
fn form_value(form: &[u8], name: &str) -> String {
    String::from_utf8_lossy(form)
        .split('&')
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_refuse_nonsense() {
        let spec: FaultSpec = "0.2".parse().unwrap();
        assert_eq!(spec.rate, 0.2);
        assert_eq!(spec.kinds, FaultKind::ALL.to_vec());
        let spec: FaultSpec =
            "rate=0.5,kinds=throttle+drop-after,targets=dynamodb:PutItem+sqs,slow-ms=10"
                .parse()
                .unwrap();
        assert_eq!(spec.kinds, vec![FaultKind::Throttle, FaultKind::DropAfter]);
        assert_eq!(
            spec.targets,
            vec![
                ("dynamodb".to_owned(), Some("PutItem".to_owned())),
                ("sqs".to_owned(), None)
            ]
        );
        assert_eq!(spec.slow, Duration::from_millis(10));
        for bad in [
            "1.5",
            "rate=-0.1",
            "kinds=",
            "kinds=explode",
            "often=1",
            "rate=x",
        ] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_signing_name_comes_from_the_credential_scope() {
        let auth = "AWS4-HMAC-SHA256 Credential=testing/20261130/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=ab";
        assert_eq!(signing_name(auth), Some("dynamodb"));
        assert_eq!(signing_name("Bearer x"), None);
        assert_eq!(signing_name(""), None);
    }

    #[test]
    fn attempts_come_from_the_sdk_header() {
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(sdk_attempt(&headers), 1);
        headers.insert("amz-sdk-request", "attempt=3; max=3".parse().unwrap());
        assert_eq!(sdk_attempt(&headers), 3);
    }
}
