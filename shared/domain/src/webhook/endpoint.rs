//! A webhook endpoint's settings: the create and update requests and their
//! validation.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use super::signature::WebhookSecret;
use super::ssrf;
use crate::events::{EventName, EventType};
use crate::validation::{FieldError, check, present, text_field, within};

pub const DEFAULT_TIMEOUT_SECS: u32 = 15;
pub const MAX_TIMEOUT_SECS: u32 = 300;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
pub const MAX_EVENT_TYPES: usize = 100;
pub const MAX_HEADERS: usize = 20;
pub const MAX_HEADER_NAME_CHARS: usize = 100;
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;
pub const MAX_RATE_LIMIT_PER_SECOND: u32 = 1000;

/// Custom header names a tenant may not set (compared lowercase), because
/// they would break the HTTP exchange (framing, connection management,
/// body encoding) or spoof what the delivery says about itself (its
/// signature headers, user agent, origin, proxies). `authorization` is
/// allowed on purpose: receivers commonly authenticate webhooks with it.
pub const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "user-agent",
    "forwarded",
    "via",
    "x-real-ip",
];

/// Prefixes of reserved header names (see [`RESERVED_HEADERS`]):
/// `webhook-` (the Standard Webhooks headers), `proxy-`, `x-amz-` (AWS
/// request metadata and signing) and `x-forwarded-`.
pub const RESERVED_HEADER_PREFIXES: &[&str] = &["webhook-", "proxy-", "x-amz-", "x-forwarded-"];

/// The HTTP method deliveries use. Only POST, PUT and PATCH carry the event
/// as a body; GET and DELETE send the signature headers only.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeliveryMethod {
    #[default]
    Post,
    Put,
    Patch,
    Get,
    Delete,
}

impl DeliveryMethod {
    pub fn carries_body(self) -> bool {
        matches!(
            self,
            DeliveryMethod::Post | DeliveryMethod::Put | DeliveryMethod::Patch
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMethod::Post => "POST",
            DeliveryMethod::Put => "PUT",
            DeliveryMethod::Patch => "PATCH",
            DeliveryMethod::Get => "GET",
            DeliveryMethod::Delete => "DELETE",
        }
    }
}

/// Which endpoint URLs are acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Local development and tests only: also accept `http` and loopback
    /// hosts (receivers on 127.0.0.1). In production only `https` to a
    /// public host is accepted.
    pub allow_loopback: bool,
}

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub method: Option<DeliveryMethod>,
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub ordered: Option<bool>,
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// `whsec_…` chosen by the tenant; generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
}

/// `PATCH /v1/webhooks/{id}`: absent fields keep their value. An empty
/// `description` clears it; `headers` and `event_types` replace the whole
/// list; `"rate_limit_per_second": null` removes the limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub method: Option<DeliveryMethod>,
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub ordered: Option<bool>,
    /// `None`: unchanged; `Some(None)`: no limit; `Some(Some(n))`: `n`/s.
    #[serde(default, deserialize_with = "present")]
    pub rate_limit_per_second: Option<Option<u32>>,
}

/// Validated settings of an endpoint, as stored and shown.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EndpointSettings {
    pub url: String,
    pub description: String,
    /// Sorted and without duplicates; empty means every type.
    pub event_types: Vec<String>,
    /// Names lowercase.
    pub headers: BTreeMap<String, String>,
    pub method: DeliveryMethod,
    pub timeout_seconds: u32,
    pub enabled: bool,
    /// Deliver the events of one subject (see
    /// [`super::delivery::ordering_subject`]) one at a time, in order.
    pub ordered: bool,
    pub rate_limit_per_second: Option<u32>,
}

impl EndpointSettings {
    /// Whether the endpoint's filter takes `event`: an empty filter takes
    /// every catalogue type and every custom type, otherwise the name must
    /// be listed. `webhook.test` is never taken: it is not fanned out but
    /// sent directly to the one endpoint being tested. Ignores `enabled`
    /// (see [`EndpointSettings::receives`]).
    pub fn subscribes(&self, event: &EventName) -> bool {
        subscribes(&self.event_types, event)
    }

    /// Enabled and [subscribed](EndpointSettings::subscribes) to `event`.
    pub fn receives(&self, event: &EventName) -> bool {
        self.enabled && self.subscribes(event)
    }
}

/// Whether a filter of validated `event_types` takes `event`; see
/// [`EndpointSettings::subscribes`], which uses it.
pub fn subscribes(event_types: &[String], event: &EventName) -> bool {
    if *event == EventType::WebhookTest {
        return false;
    }
    event_types.is_empty() || event_types.iter().any(|t| t == event.as_str())
}

impl EndpointRequest {
    /// Validates every field and reports all problems at once, named as in
    /// the JSON (`headers.<name>` for one header). Returns the tenant's own
    /// secret separately when one was given.
    pub fn validate(
        self,
        policy: &UrlPolicy,
    ) -> Result<(EndpointSettings, Option<WebhookSecret>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let url = check(&mut errors, validate_url(&self.url, policy));
        let description = check(
            &mut errors,
            text_field(
                "description",
                self.description.as_deref().unwrap_or(""),
                0,
                MAX_DESCRIPTION_CHARS,
            ),
        );
        let event_types = check(&mut errors, validate_event_types(self.event_types));
        let headers = validate_headers(&mut errors, self.headers);
        let timeout_seconds = check(
            &mut errors,
            within(
                "timeout_seconds",
                self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECS),
                1,
                MAX_TIMEOUT_SECS,
            ),
        );
        let rate_limit_per_second = check(
            &mut errors,
            self.rate_limit_per_second
                .map(|n| within("rate_limit_per_second", n, 1, MAX_RATE_LIMIT_PER_SECOND))
                .transpose(),
        );
        let secret = check(
            &mut errors,
            self.secret
                .map(|s| {
                    WebhookSecret::parse_new(&s)
                        .map_err(|e| FieldError::new("secret", e.to_string()))
                })
                .transpose(),
        );
        match (
            url,
            description,
            event_types,
            timeout_seconds,
            rate_limit_per_second,
            secret,
        ) {
            (
                Some(url),
                Some(description),
                Some(event_types),
                Some(timeout_seconds),
                Some(rate_limit_per_second),
                Some(secret),
            ) if errors.is_empty() => Ok((
                EndpointSettings {
                    url,
                    description,
                    event_types,
                    headers,
                    method: self.method.unwrap_or_default(),
                    timeout_seconds,
                    enabled: self.enabled.unwrap_or(true),
                    ordered: self.ordered.unwrap_or(false),
                    rate_limit_per_second,
                },
                secret,
            )),
            _ => Err(errors),
        }
    }
}

/// How the API shows custom header values (they are write-only).
pub const REDACTED: &str = "[redacted]";

impl EndpointPatch {
    /// The settings after this change, validated as a whole with the rules
    /// of [`EndpointRequest::validate`].
    pub fn apply(
        self,
        current: &EndpointSettings,
        policy: &UrlPolicy,
    ) -> Result<EndpointSettings, Vec<FieldError>> {
        let current = current.clone();
        let merged = EndpointRequest {
            url: self.url.unwrap_or(current.url),
            description: Some(self.description.unwrap_or(current.description)),
            event_types: self.event_types.unwrap_or(current.event_types),
            headers: match self.headers {
                // A value shown as "[redacted]" and sent back keeps the
                // stored one, so that reading and writing back is harmless.
                Some(headers) => headers
                    .into_iter()
                    .map(|(name, value)| {
                        let kept = (value == REDACTED)
                            .then(|| current.headers.get(&name.to_ascii_lowercase()))
                            .flatten()
                            .cloned();
                        (name, kept.unwrap_or(value))
                    })
                    .collect(),
                None => current.headers,
            },
            method: Some(self.method.unwrap_or(current.method)),
            timeout_seconds: Some(self.timeout_seconds.unwrap_or(current.timeout_seconds)),
            enabled: Some(self.enabled.unwrap_or(current.enabled)),
            ordered: Some(self.ordered.unwrap_or(current.ordered)),
            rate_limit_per_second: self
                .rate_limit_per_second
                .unwrap_or(current.rate_limit_per_second),
            secret: None,
        };
        merged.validate(policy).map(|(settings, _)| settings)
    }
}

/// The URL as given (trimmed), once it passes every rule. Host names are
/// not resolved here: the delivery checks each resolved address with
/// [`ssrf::check_ip`] right before connecting.
fn validate_url(value: &str, policy: &UrlPolicy) -> Result<String, FieldError> {
    let fail = |message: &str| Err(FieldError::new("url", message));
    let value = value.trim();
    if value.is_empty() {
        return fail("must not be empty");
    }
    if value.chars().count() > MAX_URL_CHARS {
        return fail("must be at most 2048 characters");
    }
    // The URL parser would silently drop tabs and line breaks.
    if value.chars().any(char::is_control) {
        return fail("must not contain control characters");
    }
    let Ok(url) = Url::parse(value) else {
        return fail("must be an absolute URL");
    };
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_loopback => {}
        _ => return fail("must use https"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return fail("must not contain credentials; use a custom header instead");
    }
    if url.fragment().is_some() {
        return fail("must not contain a fragment (#…)");
    }
    let ip = match url.host() {
        None => return fail("must have a host"),
        Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(Host::Domain(name)) => {
            if is_localhost(name) && !policy.allow_loopback {
                return fail("must not point to a loopback address");
            }
            None
        }
    };
    if let Some(ip) = ip
        && let Err(blocked) = ssrf::check_ip(ip, policy.allow_loopback)
    {
        return Err(FieldError::new(
            "url",
            format!("must not point to {blocked}"),
        ));
    }
    Ok(value.to_owned())
}

/// `localhost` and its subdomains always resolve to loopback (RFC 6761).
fn is_localhost(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

fn validate_event_types(types: Vec<String>) -> Result<Vec<String>, FieldError> {
    let field = "event_types";
    if types.len() > MAX_EVENT_TYPES {
        return Err(FieldError::new(
            field,
            format!("must list at most {MAX_EVENT_TYPES} types"),
        ));
    }
    let mut problems = Vec::new();
    for name in &types {
        match name.parse::<EventName>() {
            Ok(EventName::Known(t)) if !t.is_subscribable() => {
                problems.push(format!(
                    "{t} is sent on request and cannot be subscribed to"
                ));
            }
            Ok(_) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(FieldError::new(field, problems.join("; ")));
    }
    let mut types = types;
    types.sort();
    types.dedup();
    Ok(types)
}

/// Headers with lowercase names; one error per bad header, under
/// `headers.<name as given>`.
fn validate_headers(
    errors: &mut Vec<FieldError>,
    headers: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    if headers.len() > MAX_HEADERS {
        errors.push(FieldError::new(
            "headers",
            format!("must have at most {MAX_HEADERS} headers"),
        ));
    }
    let mut valid = BTreeMap::new();
    for (name, value) in headers {
        let field = format!("headers.{name}");
        let lower = name.to_ascii_lowercase();
        let problem = header_name_problem(&lower)
            .or_else(|| header_value_problem(&value))
            .or_else(|| {
                valid
                    .contains_key(&lower)
                    .then_some("is given twice (names ignore case)")
            });
        match problem {
            Some(message) => errors.push(FieldError::new(field, message)),
            None => {
                valid.insert(lower, value);
            }
        }
    }
    valid
}

fn header_name_problem(lower: &str) -> Option<&'static str> {
    if lower.is_empty() || lower.len() > MAX_HEADER_NAME_CHARS {
        return Some("name must have 1 to 100 characters");
    }
    if !lower.bytes().all(is_tchar) {
        return Some("name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)");
    }
    let reserved = RESERVED_HEADERS.contains(&lower)
        || RESERVED_HEADER_PREFIXES
            .iter()
            .any(|p| lower.starts_with(p));
    reserved.then_some("is set by the delivery and cannot be overridden")
}

fn header_value_problem(value: &str) -> Option<&'static str> {
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Some("value must be at most 4096 bytes");
    }
    // CR and LF would inject headers; other controls make the request invalid.
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Some("value must not contain line breaks or control characters");
    }
    None
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod redacted_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_redacted_header_sent_back_keeps_its_value() {
        let policy = UrlPolicy {
            allow_loopback: false,
        };
        let request: EndpointRequest = serde_json::from_value(json!({
            "url": "https://hooks.example.com/x",
            "headers": {"Authorization": "Bearer s3cr3t"},
        }))
        .unwrap();
        let (current, _) = request.validate(&policy).unwrap();
        let patch: EndpointPatch = serde_json::from_value(json!({
            "headers": {"authorization": REDACTED, "x-tenant": "padaria"},
        }))
        .unwrap();
        let updated = patch.apply(&current, &policy).unwrap();
        assert_eq!(updated.headers["authorization"], "Bearer s3cr3t");
        assert_eq!(updated.headers["x-tenant"], "padaria");
        let replaced: EndpointPatch =
            serde_json::from_value(json!({"headers": {"authorization": "Bearer new"}})).unwrap();
        assert_eq!(
            replaced.apply(&current, &policy).unwrap().headers["authorization"],
            "Bearer new"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PROD: UrlPolicy = UrlPolicy {
        allow_loopback: false,
    };
    const DEV: UrlPolicy = UrlPolicy {
        allow_loopback: true,
    };

    fn request(body: serde_json::Value) -> EndpointRequest {
        serde_json::from_value(body).unwrap()
    }

    fn settings(body: serde_json::Value) -> EndpointSettings {
        request(body).validate(&PROD).unwrap().0
    }

    fn errors(body: serde_json::Value, policy: &UrlPolicy) -> Vec<FieldError> {
        request(body).validate(policy).unwrap_err()
    }

    fn url_error(url: &str, policy: &UrlPolicy) -> Option<String> {
        match request(json!({ "url": url })).validate(policy) {
            Ok(_) => None,
            Err(errors) => {
                assert_eq!(errors.len(), 1);
                assert_eq!(errors[0].field, "url");
                Some(errors[0].message.clone())
            }
        }
    }

    #[test]
    fn defaults() {
        let (s, secret) = request(json!({"url": " https://example.com/hooks "}))
            .validate(&PROD)
            .unwrap();
        assert_eq!(
            s,
            EndpointSettings {
                url: "https://example.com/hooks".into(),
                description: String::new(),
                event_types: vec![],
                headers: BTreeMap::new(),
                method: DeliveryMethod::Post,
                timeout_seconds: DEFAULT_TIMEOUT_SECS,
                enabled: true,
                ordered: false,
                rate_limit_per_second: None,
            }
        );
        assert!(secret.is_none());
    }

    #[test]
    fn full_request() {
        let secret = WebhookSecret::generate();
        let (s, given) = request(json!({
            "url": "https://hooks.example.com:8443/nuvem?tenant=1",
            "description": "  ERP integration ",
            "event_types": ["key.revoked", "custom.order.paid", "key.created", "key.revoked"],
            "headers": {"Authorization": "Bearer abc", "X-Tenant": "42"},
            "method": "PUT",
            "timeout_seconds": 300,
            "enabled": false,
            "ordered": true,
            "rate_limit_per_second": 1000,
            "secret": secret.to_string_form(),
        }))
        .validate(&PROD)
        .unwrap();
        assert_eq!(s.description, "ERP integration");
        assert_eq!(
            s.event_types,
            ["custom.order.paid", "key.created", "key.revoked"]
        );
        assert_eq!(
            s.headers.into_iter().collect::<Vec<_>>(),
            [
                ("authorization".to_owned(), "Bearer abc".to_owned()),
                ("x-tenant".to_owned(), "42".to_owned())
            ]
        );
        assert_eq!(s.method, DeliveryMethod::Put);
        assert_eq!(
            (s.timeout_seconds, s.enabled, s.ordered),
            (300, false, true)
        );
        assert_eq!(s.rate_limit_per_second, Some(1000));
        assert_eq!(given, Some(secret));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            serde_json::from_value::<EndpointRequest>(json!({"url": "https://a.io", "urls": []}))
                .is_err()
        );
        assert!(serde_json::from_value::<EndpointPatch>(json!({"secret": "whsec_AQ"})).is_err());
        assert!(
            serde_json::from_value::<EndpointRequest>(
                json!({"url": "https://a.io", "method": "post"})
            )
            .is_err()
        );
    }

    #[test]
    fn collects_every_field_error() {
        let errors = errors(
            json!({
                "url": "ftp://example.com",
                "description": "a\u{7}b",
                "event_types": ["account.exploded", "webhook.test", "custom.Nope", "key.created"],
                "headers": {"Host": "evil", "X-Ok": "fine", "X-Bad": "a\r\nInjected: 1"},
                "timeout_seconds": 0,
                "rate_limit_per_second": 1001,
                "secret": "whsec_AQ"
            }),
            &PROD,
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "url",
                "description",
                "event_types",
                "headers.Host",
                "headers.X-Bad",
                "timeout_seconds",
                "rate_limit_per_second",
                "secret"
            ]
        );
        let types = &errors[2].message;
        assert!(types.contains("\"account.exploded\""), "{types}");
        assert!(types.contains("webhook.test"), "{types}");
        assert!(types.contains("\"custom.Nope\""), "{types}");
        assert!(!types.contains("key.created"), "{types}");
        assert_eq!(errors[7].message, "the key must be 24 to 64 bytes, not 1");
    }

    #[test]
    fn url_rules() {
        for ok in [
            "https://example.com",
            "https://example.com/a/b?c=d",
            "https://EXAMPLE.com:444/",
            "https://8.8.8.8/hook",
            "https://[2606:4700::1111]/hook",
            "https://xn--bcher-kva.example/",
            "https://bücher.example/",
            "https://localhost-lookalike.example.com/",
        ] {
            assert_eq!(url_error(ok, &PROD), None, "{ok}");
        }
        for (bad, message) in [
            ("", "must not be empty"),
            ("example.com/hook", "must be an absolute URL"),
            ("http://example.com/hook", "must use https"),
            ("ftp://example.com/hook", "must use https"),
            ("file:///etc/passwd", "must use https"),
            (
                "https://user:pw@example.com/",
                "must not contain credentials; use a custom header instead",
            ),
            (
                "https://user@example.com/",
                "must not contain credentials; use a custom header instead",
            ),
            (
                "https://example.com/#frag",
                "must not contain a fragment (#…)",
            ),
            (
                "https://exa\nmple.com/",
                "must not contain control characters",
            ),
            ("https://localhost/", "must not point to a loopback address"),
            (
                "https://api.localhost./",
                "must not point to a loopback address",
            ),
            (
                "https://LOCALHOST:8080/",
                "must not point to a loopback address",
            ),
            ("https://127.0.0.1/", "must not point to a loopback address"),
            (
                "https://2130706433/",
                "must not point to a loopback address",
            ),
            ("https://0x7f.1/", "must not point to a loopback address"),
            ("https://[::1]/", "must not point to a loopback address"),
            (
                "https://[::ffff:169.254.169.254]/",
                "must not point to a link-local address",
            ),
            (
                "https://169.254.169.254/latest/meta-data",
                "must not point to a link-local address",
            ),
            (
                "https://10.0.0.8/",
                "must not point to a private network address",
            ),
            (
                "https://0.0.0.0/",
                "must not point to an unspecified address",
            ),
            (
                "https://[fd00::1]/",
                "must not point to a unique local address",
            ),
        ] {
            assert_eq!(url_error(bad, &PROD).as_deref(), Some(message), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS - 20));
        assert_eq!(long.len(), MAX_URL_CHARS);
        assert_eq!(url_error(&long, &PROD), None);
        assert_eq!(
            url_error(&format!("{long}a"), &PROD).as_deref(),
            Some("must be at most 2048 characters")
        );
    }

    #[test]
    fn dev_policy_allows_http_and_loopback_only() {
        for ok in [
            "http://127.0.0.1:9000/hook",
            "http://localhost:9000/",
            "http://[::1]:9000/",
            "https://example.com/",
            "http://example.com/",
        ] {
            assert_eq!(url_error(ok, &DEV), None, "{ok}");
        }
        assert!(url_error("http://10.0.0.1/", &DEV).is_some());
        assert!(url_error("http://169.254.169.254/", &DEV).is_some());
        assert!(url_error("ftp://127.0.0.1/", &DEV).is_some());
    }

    #[test]
    fn event_type_rules() {
        let too_many: Vec<String> = (0..=MAX_EVENT_TYPES)
            .map(|i| format!("custom.t{i}"))
            .collect();
        let errors = errors(
            json!({"url": "https://a.io", "event_types": too_many}),
            &PROD,
        );
        assert_eq!(
            errors,
            [FieldError::new(
                "event_types",
                "must list at most 100 types"
            )]
        );
        let every: Vec<&str> = EventType::ALL
            .into_iter()
            .filter(|t| t.is_subscribable())
            .map(EventType::as_str)
            .collect();
        let s = settings(json!({"url": "https://a.io", "event_types": every}));
        assert_eq!(s.event_types.len(), EventType::ALL.len() - 1);
    }

    #[test]
    fn header_rules() {
        let errors = errors(
            json!({"url": "https://a.io", "headers": {
                "Webhook-Signature": "v1,forged",
                "x-amz-date": "x",
                "X-Forwarded-For": "1.2.3.4",
                "Proxy-Authorization": "x",
                "Content-Type": "text/plain",
                "Transfer-Encoding": "chunked",
                "bad name": "x",
                "": "x",
                "X-Nul": "a\u{0}b",
                "X-Long": "v".repeat(MAX_HEADER_VALUE_BYTES + 1),
                "X-Dup": "1",
                "x-dup": "2",
            }}),
            &PROD,
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "headers.",
                "headers.Content-Type",
                "headers.Proxy-Authorization",
                "headers.Transfer-Encoding",
                "headers.Webhook-Signature",
                "headers.X-Forwarded-For",
                "headers.X-Long",
                "headers.X-Nul",
                "headers.bad name",
                "headers.x-amz-date",
                "headers.x-dup",
            ]
        );
        assert_eq!(
            errors[1].message,
            "is set by the delivery and cannot be overridden"
        );
        assert_eq!(errors[10].message, "is given twice (names ignore case)");

        let s = settings(json!({"url": "https://a.io", "headers": {
            "Authorization": "Basic dXNlcjpwdw==",
            "X-Api-Key": "k\tv ü",
            "x-max": "v".repeat(MAX_HEADER_VALUE_BYTES),
        }}));
        assert_eq!(s.headers.len(), 3);
        assert_eq!(s.headers["x-api-key"], "k\tv ü");

        let many: BTreeMap<String, String> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-h{i}"), "v".to_owned()))
            .collect();
        let errors = errors_of(json!({"url": "https://a.io", "headers": many}));
        assert_eq!(
            errors,
            [FieldError::new("headers", "must have at most 20 headers")]
        );
    }

    fn errors_of(body: serde_json::Value) -> Vec<FieldError> {
        errors(body, &PROD)
    }

    #[test]
    fn numeric_limits() {
        for (field, value, ok) in [
            ("timeout_seconds", 1, true),
            ("timeout_seconds", 300, true),
            ("timeout_seconds", 0, false),
            ("timeout_seconds", 301, false),
            ("rate_limit_per_second", 1, true),
            ("rate_limit_per_second", 0, false),
            ("rate_limit_per_second", 1001, false),
        ] {
            let result = request(json!({"url": "https://a.io", field: value})).validate(&PROD);
            assert_eq!(result.is_ok(), ok, "{field} = {value}");
        }
    }

    #[test]
    fn patch_merges_and_revalidates() {
        let current = settings(json!({
            "url": "https://a.io/hook",
            "description": "old",
            "event_types": ["key.created"],
            "headers": {"X-A": "1"},
            "rate_limit_per_second": 5
        }));
        let patch = |body| serde_json::from_value::<EndpointPatch>(body).unwrap();

        assert_eq!(patch(json!({})).apply(&current, &PROD).unwrap(), current);

        let changed = patch(json!({
            "description": "",
            "event_types": [],
            "method": "DELETE",
            "enabled": false,
            "rate_limit_per_second": null
        }))
        .apply(&current, &PROD)
        .unwrap();
        assert_eq!(changed.description, "");
        assert!(changed.event_types.is_empty());
        assert_eq!(changed.method, DeliveryMethod::Delete);
        assert!(!changed.enabled);
        assert_eq!(changed.rate_limit_per_second, None);
        assert_eq!(changed.url, current.url);
        assert_eq!(changed.headers, current.headers);

        let limited = patch(json!({"rate_limit_per_second": 7}))
            .apply(&current, &PROD)
            .unwrap();
        assert_eq!(limited.rate_limit_per_second, Some(7));

        let errors =
            patch(json!({"url": "http://a.io", "headers": {"Host": "x"}, "timeout_seconds": 0}))
                .apply(&current, &PROD)
                .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "headers.Host", "timeout_seconds"]);
    }

    #[test]
    fn subscriptions() {
        let name = |s: &str| s.parse::<EventName>().unwrap();
        let all = settings(json!({"url": "https://a.io"}));
        assert!(all.subscribes(&name("key.created")));
        assert!(all.subscribes(&name("webhook.endpoint_disabled")));
        assert!(all.subscribes(&name("custom.anything")));
        assert!(!all.subscribes(&name("webhook.test")));

        let some =
            settings(json!({"url": "https://a.io", "event_types": ["key.created", "custom.a"]}));
        assert!(some.subscribes(&name("key.created")));
        assert!(some.subscribes(&name("custom.a")));
        assert!(!some.subscribes(&name("custom.a.b")));
        assert!(!some.subscribes(&name("key.revoked")));
        assert!(some.receives(&name("key.created")));

        assert!(subscribes(&some.event_types, &name("custom.a")));
        assert!(!subscribes(&[], &name("webhook.test")));
        assert!(subscribes(&[], &name("account.approved")));

        let off = settings(json!({"url": "https://a.io", "enabled": false}));
        assert!(off.subscribes(&name("key.created")));
        assert!(!off.receives(&name("key.created")));
    }

    #[test]
    fn methods() {
        assert_eq!(
            serde_json::to_value(DeliveryMethod::Patch).unwrap(),
            json!("PATCH")
        );
        for m in [
            DeliveryMethod::Post,
            DeliveryMethod::Put,
            DeliveryMethod::Patch,
            DeliveryMethod::Get,
            DeliveryMethod::Delete,
        ] {
            assert_eq!(serde_json::to_value(m).unwrap(), json!(m.as_str()));
            assert_eq!(
                m.carries_body(),
                !matches!(m, DeliveryMethod::Get | DeliveryMethod::Delete)
            );
        }
    }

    #[test]
    fn settings_round_trip_through_storage() {
        let s = settings(
            json!({"url": "https://a.io", "headers": {"X-A": "1"}, "rate_limit_per_second": 3}),
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(serde_json::from_value::<EndpointSettings>(json).unwrap(), s);
    }
}
