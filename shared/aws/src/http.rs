//! API Gateway HTTP API (payload 2.0) requests and replies, through
//! `lambda_http`: JSON bodies with strict parsing, RFC 9457 problem details,
//! and the caller's identity as the authorizer handed it over.

use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use lambda_http::Body;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use nuvem_domain::idempotency::IdempotencyKey;
use nuvem_domain::keys::{Actor, Role};
use nuvem_domain::validation::FieldError;
use serde::Serialize;

use crate::store::{ListError, Page};
use serde::de::DeserializeOwned;

pub use http::StatusCode as Status;
pub use lambda_http::RequestExt;

pub type Request = lambda_http::Request;
pub type Response = lambda_http::Response<Body>;
pub type HttpResult = Result<Response, Problem>;

/// Largest JSON body any route accepts unless it says otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// An RFC 9457 problem: every client error and the rare server error.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds for the `Retry-After` header (503s).
    #[serde(skip)]
    pub retry_after: Option<u32>,
    /// The methods for the `Allow` header (405s).
    #[serde(skip)]
    pub allow: Option<Box<str>>,
}

impl Problem {
    fn new(status: u16, slug: &str, title: &'static str, detail: Option<String>) -> Self {
        Problem {
            kind: format!("https://nuvem.example/problems/{slug}"),
            title,
            status,
            detail,
            errors: Vec::new(),
            retry_after: None,
            allow: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, "bad-request", "Bad request", Some(detail.into()))
    }
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut p = Self::new(
            422,
            "validation",
            "Validation failed",
            Some("one or more fields are invalid".into()),
        );
        p.errors = errors;
        p
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", "Unauthorized", Some(detail.into()))
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, "forbidden", "Forbidden", Some(detail.into()))
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "not-found", "Not found", Some(detail.into()))
    }
    /// The path exists, but not with this method; `allowed` (sorted) goes
    /// to the `Allow` header.
    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        let list = allowed.join(", ");
        let mut p = Self::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            Some(format!("this path accepts {list}")),
        );
        p.allow = Some(list.into());
        p
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, "conflict", "Conflict", Some(detail.into()))
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "payload-too-large",
            "Payload too large",
            Some(format!("the body must not exceed {limit} bytes")),
        )
    }
    /// The body's type is not `expected` (e.g. `application/json`).
    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            Some(format!("send the body as {expected}")),
        )
    }
    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Self::new(
            429,
            "too-many-requests",
            "Too many requests",
            Some(detail.into()),
        )
    }
    /// A dependency did not answer in time: the client may try again after
    /// `retry_after_secs` (sent as `Retry-After`).
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u32) -> Self {
        let mut p = Self::new(
            503,
            "unavailable",
            "Service unavailable",
            Some(detail.into()),
        );
        p.retry_after = Some(retry_after_secs);
        p
    }
    /// A server fault. The cause goes to the log, never to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(500, "internal", "Internal server error", None)
    }

    pub fn into_response(self) -> Response {
        let body = serde_json::to_string(&self).unwrap_or_default();
        let mut r = raw_response(self.status, body);
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(value) = self
            .allow
            .and_then(|list| HeaderValue::from_str(&list).ok())
        {
            r.headers_mut().insert(http::header::ALLOW, value);
        }
        if self.status == 401 {
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"nuvem\""),
            );
        }
        r
    }
}

/// How long a client should wait before repeating a request that a slow or
/// busy dependency failed.
pub const RETRY_AFTER_SECS: u32 = 2;

impl Problem {
    /// A failed call of a dependency: 503 with `Retry-After` when the same
    /// request may pass later (the dependency was slow, busy or failing),
    /// else a server fault. The cause goes to the log, never to the client.
    pub fn fault<E: std::fmt::Display + crate::sdk_error::Unavailable>(e: E) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "dependency unavailable");
            return Problem::unavailable(
                "the service is busy or a dependency did not answer in time; try again",
                RETRY_AFTER_SECS,
            );
        }
        Problem::internal(e)
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        Problem::fault(e)
    }
}

fn raw_response(status: u16, body: String) -> Response {
    let mut r = Response::new(Body::Text(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

/// A JSON reply.
pub fn json<T: Serialize>(status: u16, value: &T) -> HttpResult {
    let body = serde_json::to_string(value).map_err(Problem::internal)?;
    let mut r = raw_response(status, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// A text reply (CSV, say) of the given content type.
pub fn text(status: u16, content_type: &'static str, body: String) -> HttpResult {
    let mut r = raw_response(status, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(r)
}

/// Whether the request's `Accept` names `media_type` (no wildcards: a
/// client that wants CSV says so; `*/*` gets the JSON default).
pub fn accepts(req: &Request, media_type: &str) -> bool {
    req.headers()
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(media_type)
        })
}

pub fn no_content() -> HttpResult {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

/// Turns a handler's result into the reply API Gateway expects.
pub fn reply(result: HttpResult) -> Response {
    result.unwrap_or_else(Problem::into_response)
}

/// API Gateway's context of an HTTP API (payload 2.0) request.
fn context(req: &Request) -> Option<&ApiGatewayV2httpRequestContext> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => Some(ctx),
        // Other origins exist only if some crate turns on more of lambda_http.
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// `"POST /v1/keys"`: the template's route, as API Gateway names it.
pub fn route(req: &Request) -> &str {
    context(req)
        .and_then(|ctx| ctx.route_key.as_deref())
        .unwrap_or("")
}

pub fn path_param<'a>(req: &'a Request, name: &str) -> Result<&'a str, Problem> {
    req.path_parameters_ref()
        .and_then(|params| params.first(name))
        .ok_or_else(|| Problem::not_found(format!("missing path parameter {name}")))
}

pub fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref()?.first(name)
}

/// A query parameter as `parse` reads it; absent is `None`, and a value
/// `parse` refuses is recorded in `errors` under the parameter's name, so
/// that a listing reports every bad filter at once.
pub fn query_as<T, E: std::fmt::Display>(
    req: &Request,
    name: &str,
    errors: &mut Vec<FieldError>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Option<T> {
    let value = query(req, name)?;
    parse(value)
        .map_err(|e| errors.push(FieldError::new(name, e.to_string())))
        .ok()
}

/// A `true`/`false` query parameter; absent is `None`.
pub fn bool_query(req: &Request, name: &str) -> Result<Option<bool>, Problem> {
    match query(req, name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(Problem::validation(vec![FieldError::new(
            name,
            "must be true or false",
        )])),
    }
}

/// `?limit=` of a listing: 1–100, 25 by default.
pub fn page_limit(req: &Request) -> Result<i32, Problem> {
    match query(req, "limit") {
        None => Ok(25),
        Some(v) => v
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                Problem::validation(vec![FieldError::new(
                    "limit",
                    "must be an integer from 1 to 100",
                )])
            }),
    }
}

/// A page as the API answers it: `{"items": [...], "next_cursor": ...}`,
/// each item shown by `view`.
pub fn page_json<'a, T, V: Serialize>(page: &'a Page<T>, view: impl Fn(&'a T) -> V) -> HttpResult {
    let items: Vec<V> = page.items.iter().map(view).collect();
    json(
        200,
        &serde_json::json!({"items": items, "next_cursor": page.next_cursor}),
    )
}

/// A listing's page, with a forged cursor reported as the client's mistake.
pub fn listing<T>(result: Result<Page<T>, ListError>) -> Result<Page<T>, Problem> {
    result.map_err(|e| match e {
        ListError::BadCursor => Problem::validation(vec![FieldError::new(
            "cursor",
            "is not a cursor this API returned",
        )]),
        ListError::Store(e) => e.into(),
    })
}

pub fn source_ip(req: &Request) -> &str {
    context(req)
        .and_then(|ctx| ctx.http.source_ip.as_deref())
        .unwrap_or("unknown")
}

/// Parses a JSON body strictly: size limit, content type, unknown fields and
/// wrong types are all client errors that name the offending field.
pub fn json_body<T: DeserializeOwned>(req: &Request, limit: usize) -> Result<T, Problem> {
    let raw = sized_body(req, limit, |essence| {
        essence == "application/json" || essence.ends_with("+json")
    })
    .map_err(|e| e.unwrap_or_else(|| Problem::unsupported_media_type("application/json")))?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    // Every body of the API is an object; serde would read a struct from an
    // array by position, so anything else is refused before it can.
    if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
            Ok(_) => Problem::validation(vec![FieldError::new(
                "body",
                "the body must be a JSON object",
            )]),
            Err(e) => Problem::bad_request(format!("the body is not valid JSON: {e}")),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde stops at the first problem it meets: in `{"unknown": ` that is
        // the field, but the body is not JSON at all, which is the client's
        // first mistake. And serde calls some mismatches syntax errors (an
        // array where an enum's string goes, `1e400` for a number): whether
        // the body is JSON is asked of the bytes alone. Only failing bodies
        // pay for the second parse.
        let syntax = serde_json::from_slice::<serde::de::IgnoredAny>(raw)
            .err()
            .map(|e| e.to_string());
        if let Some(syntax) = syntax {
            Problem::bad_request(format!("the body is not valid JSON: {syntax}"))
        } else {
            let field = if path == "." { "body".to_owned() } else { path };
            Problem::validation(vec![FieldError::new(
                field,
                strip_position(&inner.to_string()),
            )])
        }
    })?;
    // The object may be followed by whitespace only: `{…}x` is not JSON.
    de.end()
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// A body that is not JSON (a CSV file, say): its size limit and, when the
/// request names a type, one of `types`.
pub fn raw_body<'a>(req: &'a Request, limit: usize, types: &[&str]) -> Result<&'a [u8], Problem> {
    sized_body(req, limit, |essence| types.contains(&essence))
        .map_err(|e| e.unwrap_or_else(|| Problem::unsupported_media_type(&types.join(" or "))))
}

/// The body if it is within `limit` and its `Content-Type` (when sent; its
/// lowercase essence, without parameters) is one `accepted` takes:
/// `Err(Some(413))`, or `Err(None)` for a type it refuses.
fn sized_body(
    req: &Request,
    limit: usize,
    accepted: impl Fn(&str) -> bool,
) -> Result<&[u8], Option<Problem>> {
    let raw = req.body().as_ref();
    if raw.len() > limit {
        return Err(Some(Problem::payload_too_large(limit)));
    }
    if let Some(ct) = req.headers().get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !accepted(ct.split(';').next().unwrap_or("").trim()) {
            return Err(None);
        }
    }
    Ok(raw)
}

/// The request's `Idempotency-Key` header, if it sent one.
pub fn idempotency_key(req: &Request) -> Result<Option<IdempotencyKey>, Problem> {
    let Some(raw) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    // Bytes beyond ASCII stay in the text, for the domain rule to refuse.
    IdempotencyKey::parse(&String::from_utf8_lossy(raw.as_bytes()))
        .map(Some)
        .map_err(Problem::bad_request)
}

/// Marks an answer as the repeat of an earlier request with the same
/// idempotency key (`Idempotent-Replayed: true`, as Stripe names it).
pub fn replayed(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// A JSON body that may be left out: no body (or only whitespace) is
/// `T::default()`, anything else is parsed as strictly as [`json_body`].
pub fn optional_json_body<T: DeserializeOwned + Default>(
    req: &Request,
    limit: usize,
) -> Result<T, Problem> {
    if req.body().as_ref().iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        json_body(req, limit)
    }
}

/// serde_json appends " at line 1 column 42"; the field name says more.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Who is calling, as the authorizer established it. Never taken from the
/// request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: String,
    pub key_id: String,
    /// The key's name (fixed when the key was made), recorded beside its id
    /// wherever an action names who did it.
    pub key_name: String,
    pub role: Role,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            key_id: self.key_id.clone(),
            key_name: self.key_name.clone(),
        }
    }
}

/// The caller, if the authorizer accepted its credential and its role is one
/// of `allowed`: 401 without a valid credential, 403 with the wrong role.
pub fn require(req: &Request, allowed: &[Role]) -> Result<Principal, Problem> {
    let ctx = context(req)
        .and_then(|ctx| ctx.authorizer.as_ref())
        .map(|a| &a.fields);
    let field = |name: &str| {
        ctx.and_then(|c| c.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let authenticated = ctx
        .and_then(|c| c.get("authenticated"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let principal = match (
        authenticated,
        field("account_id"),
        field("key_id"),
        field("role"),
    ) {
        (true, Some(account_id), Some(key_id), Some(role)) => {
            role.parse().ok().map(|role| Principal {
                account_id,
                key_id,
                // Absent only in contexts cached before names were passed.
                key_name: field("key_name").unwrap_or_default(),
                role,
            })
        }
        _ => None,
    };
    let Some(principal) = principal else {
        let reason = field("reason").unwrap_or_else(|| "a valid access key is required".into());
        let unavailable = ctx
            .and_then(|c| c.get("unavailable"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if unavailable {
            // The authorizer could not reach the key store; its answer is
            // cached for `retry_after` seconds, so asking sooner gets the same.
            let retry_after = ctx
                .and_then(|c| c.get("retry_after"))
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(RETRY_AFTER_SECS);
            return Err(Problem::unavailable(reason, retry_after));
        }
        return Err(Problem::unauthorized(reason));
    };
    if allowed.contains(&principal.role) {
        Ok(principal)
    } else {
        Err(Problem::forbidden(format!(
            "the role {} may not use this route",
            principal.role.as_str()
        )))
    }
}
