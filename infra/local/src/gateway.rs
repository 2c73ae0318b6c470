//! The template's HTTP API, as API Gateway HTTP APIs serve it: payload
//! format 2.0, the Lambda REQUEST authorizer with its result cache, and the
//! v2 response format.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use nuvem_testkit::template::{Authorizer, Route};
use nuvem_testkit::{ACCOUNT_ID, REGION};
use serde_json::{Map, Value, json};

use crate::host::Host;
use crate::log::Log;
use crate::util::{percent_decode, random_u64};

/// HTTP API request payload limit.
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Lit(String),
    Param(String),
    Greedy(String),
}

#[derive(Clone, Debug)]
struct CompiledRoute {
    route: Route,
    /// `None` for the `$default` route.
    segments: Option<Vec<Seg>>,
    /// Lower is more specific: per segment 0 literal, 1 parameter, 2 greedy.
    rank: Vec<u8>,
}

impl CompiledRoute {
    fn new(route: Route) -> CompiledRoute {
        if route.path == "$default" {
            return CompiledRoute {
                route,
                segments: None,
                rank: vec![3],
            };
        }
        let segments: Vec<Seg> = route
            .path
            .trim_start_matches('/')
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => match name.strip_suffix('+') {
                        Some(name) => Seg::Greedy(name.to_owned()),
                        None => Seg::Param(name.to_owned()),
                    },
                    None => Seg::Lit(s.to_owned()),
                },
            )
            .collect();
        let rank = segments
            .iter()
            .map(|s| match s {
                Seg::Lit(_) => 0,
                Seg::Param(_) => 1,
                Seg::Greedy(_) => 2,
            })
            .collect();
        CompiledRoute {
            route,
            segments: Some(segments),
            rank,
        }
    }

    fn route_key(&self) -> String {
        if self.segments.is_none() {
            "$default".into()
        } else {
            format!("{} {}", self.route.method, self.route.path)
        }
    }

    /// Path parameters when the raw path matches.
    fn matches(&self, raw_path: &str) -> Option<BTreeMap<String, String>> {
        let Some(segments) = &self.segments else {
            return Some(BTreeMap::new());
        };
        let parts: Vec<&str> = raw_path.trim_start_matches('/').split('/').collect();
        let mut params = BTreeMap::new();
        for (i, seg) in segments.iter().enumerate() {
            match seg {
                Seg::Lit(l) => {
                    if parts.get(i) != Some(&l.as_str()) {
                        return None;
                    }
                }
                Seg::Param(name) => {
                    let p = parts.get(i).filter(|p| !p.is_empty())?;
                    params.insert(name.clone(), percent_decode(p));
                }
                Seg::Greedy(name) => {
                    let rest = parts
                        .get(i..)
                        .filter(|r| !r.is_empty() && !r[0].is_empty())?;
                    params.insert(name.clone(), percent_decode(&rest.join("/")));
                    return Some(params);
                }
            }
        }
        (parts.len() == segments.len()).then_some(params)
    }

    fn accepts(&self, method: &str) -> bool {
        self.route.method == "ANY" || self.route.method == method
    }
}

#[derive(Clone, Debug)]
enum Decision {
    Allow(Value),
    Deny,
}

/// The HTTP API in front of the functions.
pub struct Gateway {
    routes: Vec<CompiledRoute>,
    hosts: Arc<BTreeMap<String, Host>>,
    cache: std::sync::Mutex<HashMap<(String, String), (Instant, Decision)>>,
    api_id: String,
    log: Log,
}

impl Gateway {
    pub fn new(routes: Vec<Route>, hosts: Arc<BTreeMap<String, Host>>, log: Log) -> Gateway {
        Gateway {
            routes: routes.into_iter().map(CompiledRoute::new).collect(),
            hosts,
            cache: std::sync::Mutex::new(HashMap::new()),
            api_id: "local".into(),
            log,
        }
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    /// The route for a method and raw path: Ok(route, path parameters), or
    /// Err(the methods the path allows; empty = unknown path).
    /// The most specific route for the request, as API Gateway picks it.
    /// Without a `$default` route, a path of the API asked with the wrong
    /// method is no match either: API Gateway answers 404 for both.
    fn select(
        &self,
        method: &str,
        raw_path: &str,
    ) -> Option<(&CompiledRoute, BTreeMap<String, String>)> {
        let mut best: Option<(&CompiledRoute, BTreeMap<String, String>)> = None;
        for r in &self.routes {
            if !r.accepts(method) {
                continue;
            }
            let Some(params) = r.matches(raw_path) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((b, _)) => {
                    (&r.rank, r.route.method == "ANY") < (&b.rank, b.route.method == "ANY")
                }
            };
            if better {
                best = Some((r, params));
            }
        }
        best
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({ "message": text }).to_string(),
    )
        .into_response()
}

fn internal_error() -> Response {
    message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// API Gateway's request id shape (`JKJaXmPLvHcESHA=`).
fn request_id() -> String {
    let mut bytes = random_u64().to_le_bytes().to_vec();
    bytes.extend_from_slice(&random_u64().to_le_bytes()[..2]);
    B64.encode(bytes)
}

/// Headers as API Gateway passes them: lower-case names, repeated values
/// joined with commas, cookies apart.
fn event_headers(headers: &HeaderMap) -> (Map<String, Value>, Vec<String>) {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    (
        out.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
        cookies,
    )
}

fn query_parameters(raw: &str) -> Map<String, Value> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k), percent_decode(v));
        out.entry(k)
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert(v);
    }
    out.into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

struct Incoming {
    method: String,
    raw_path: String,
    raw_query: String,
    headers: Map<String, Value>,
    cookies: Vec<String>,
    source_ip: String,
    protocol: String,
    request_id: String,
    now: chrono::DateTime<chrono::Utc>,
}

impl Incoming {
    fn request_context(&self, api_id: &str, route_key: &str) -> Value {
        let host = self
            .headers
            .get("host")
            .and_then(Value::as_str)
            .unwrap_or("127.0.0.1")
            .to_owned();
        let prefix = host.split('.').next().unwrap_or_default().to_owned();
        json!({
            "accountId": ACCOUNT_ID,
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": prefix,
            "http": {
                "method": self.method,
                "path": self.raw_path,
                "protocol": self.protocol,
                "sourceIp": self.source_ip,
                "userAgent": self.headers.get("user-agent").and_then(Value::as_str).unwrap_or_default(),
            },
            "requestId": self.request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": self.now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": self.now.timestamp_millis(),
        })
    }
}

async fn handle(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let rid = request_id();
    let mut resp = serve(&gw, peer, parts, body, &rid).await;
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("apigw-requestid", v);
    }
    tracing::debug!(status = %resp.status(), elapsed = ?started.elapsed(), "request");
    resp
}

async fn serve(
    gw: &Gateway,
    peer: SocketAddr,
    parts: axum::http::request::Parts,
    body: Body,
    rid: &str,
) -> Response {
    let method = parts.method.as_str().to_owned();
    let raw_path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();

    let Some((route, path_params)) = gw.select(&method, &raw_path) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };

    let (headers, cookies) = event_headers(&parts.headers);
    let incoming = Incoming {
        method: method.clone(),
        raw_path: raw_path.clone(),
        raw_query: raw_query.clone(),
        headers,
        cookies,
        source_ip: peer.ip().to_string(),
        protocol: format!("{:?}", parts.version),
        request_id: rid.to_owned(),
        now: chrono::Utc::now(),
    };
    let route_key = route.route_key();

    let mut context = incoming.request_context(&gw.api_id, &route_key);
    if let Some(authorizer) = &route.route.authorizer {
        match authorize(gw, authorizer, &incoming, &route_key, &path_params).await {
            Ok(Decision::Allow(ctx)) => {
                context["authorizer"] = json!({ "lambda": ctx });
            }
            Ok(Decision::Deny) => return message(StatusCode::FORBIDDEN, "Forbidden"),
            Err(resp) => return resp,
        }
    }

    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": incoming.raw_path,
        "rawQueryString": incoming.raw_query,
        "headers": incoming.headers,
        "requestContext": context,
        "isBase64Encoded": false,
    });
    if !incoming.cookies.is_empty() {
        event["cookies"] = json!(incoming.cookies);
    }
    if !incoming.raw_query.is_empty() {
        event["queryStringParameters"] = Value::Object(query_parameters(&incoming.raw_query));
    }
    if !path_params.is_empty() {
        event["pathParameters"] = json!(path_params);
    }
    if !body.is_empty() {
        match std::str::from_utf8(&body) {
            Ok(text) => event["body"] = json!(text),
            Err(_) => {
                event["body"] = json!(B64.encode(&body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }

    let Some(host) = gw.hosts.get(&route.route.function) else {
        return internal_error();
    };
    let payload = event.to_string().into_bytes();
    if payload.len() > crate::host::PAYLOAD_LIMIT {
        // Lambda refuses events over 6 MB, whatever API Gateway accepts.
        return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    match host.invoke(payload).await {
        Ok(bytes) => function_response(&bytes),
        Err(e) => {
            gw.log.runner(&format!(
                "{} {} → {}: {e}",
                method, raw_path, route.route.function
            ));
            internal_error()
        }
    }
}

/// The authorizer's decision, from the cache or by invoking it; Err is the
/// answer to give (401 without identity, 500 on authorizer failure).
async fn authorize(
    gw: &Gateway,
    authorizer: &Authorizer,
    incoming: &Incoming,
    route_key: &str,
    path_params: &BTreeMap<String, String>,
) -> Result<Decision, Response> {
    let mut identity = Vec::new();
    for h in &authorizer.identity_headers {
        let v = incoming
            .headers
            .get(&h.to_ascii_lowercase())
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty());
        match v {
            Some(v) => identity.push(v.to_owned()),
            None => return Err(message(StatusCode::UNAUTHORIZED, "Unauthorized")),
        }
    }
    let cacheable = authorizer.ttl_secs > 0 && !identity.is_empty();
    let key = (authorizer.name.clone(), identity.join("\n"));
    if cacheable {
        let cache = gw.cache.lock().expect("lock");
        if let Some((expires, d)) = cache.get(&key)
            && *expires > Instant::now()
        {
            return Ok(d.clone());
        }
    }

    let mut event = json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": format!(
            "arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{}/$default/{}{}",
            gw.api_id, incoming.method, incoming.raw_path
        ),
        "identitySource": identity,
        "routeKey": route_key,
        "rawPath": incoming.raw_path,
        "rawQueryString": incoming.raw_query,
        "headers": incoming.headers,
        "requestContext": incoming.request_context(&gw.api_id, route_key),
        "pathParameters": path_params,
        "stageVariables": {},
    });
    if !incoming.cookies.is_empty() {
        event["cookies"] = json!(incoming.cookies);
    }
    if !incoming.raw_query.is_empty() {
        event["queryStringParameters"] = Value::Object(query_parameters(&incoming.raw_query));
    }
    let Some(host) = gw.hosts.get(&authorizer.function) else {
        return Err(internal_error());
    };
    let decision = match host.invoke(event.to_string().into_bytes()).await {
        Ok(bytes) => decision(&bytes, authorizer.simple_responses),
        Err(e) => Err(e.to_string()),
    };
    match decision {
        Ok(d) => {
            if cacheable {
                let mut cache = gw.cache.lock().expect("lock");
                let now = Instant::now();
                cache.retain(|_, (expires, _)| *expires > now);
                cache.insert(
                    key,
                    (now + Duration::from_secs(authorizer.ttl_secs), d.clone()),
                );
            }
            Ok(d)
        }
        Err(e) => {
            gw.log.runner(&format!(
                "authorizer {} ({}): {e}",
                authorizer.name, authorizer.function
            ));
            Err(internal_error())
        }
    }
}

/// Reads an authorizer response: simple (`isAuthorized`) or IAM policy.
fn decision(bytes: &[u8], simple: bool) -> Result<Decision, String> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("authorizer response is not JSON: {e}"))?;
    let context = v.get("context").cloned().unwrap_or(Value::Null);
    if simple {
        return match v.get("isAuthorized") {
            Some(Value::Bool(true)) => Ok(Decision::Allow(context)),
            Some(Value::Bool(false)) => Ok(Decision::Deny),
            _ => Err(format!(
                "simple authorizer response without a boolean isAuthorized: {v}"
            )),
        };
    }
    let statements = v["policyDocument"]["Statement"]
        .as_array()
        .ok_or_else(|| format!("authorizer response without policyDocument.Statement: {v}"))?;
    let effect = |e: &str| statements.iter().any(|s| s["Effect"].as_str() == Some(e));
    if effect("Deny") || !effect("Allow") {
        Ok(Decision::Deny)
    } else {
        Ok(Decision::Allow(context))
    }
}

/// Turns a function's response into HTTP, as HTTP APIs read payload 2.0 responses.
fn function_response(bytes: &[u8]) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return internal_error();
    };
    let structured = v.as_object().filter(|o| o.contains_key("statusCode"));
    let Some(o) = structured else {
        // A bare JSON value: 200 with that JSON as the body.
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            bytes.to_vec(),
        )
            .into_response();
    };
    let status = match &o["statusCode"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let Some(status) = status.and_then(|s| StatusCode::from_u16(s as u16).ok()) else {
        return internal_error();
    };
    let mut headers = HeaderMap::new();
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    };
    for (k, v) in o
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let (Ok(name), Some(value)) = (
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            text(v),
        ) && let Ok(value) = HeaderValue::from_str(&value)
        {
            headers.insert(name, value);
        }
    }
    for (k, vs) in o
        .get("multiValueHeaders")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let Ok(name) = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()) else {
            continue;
        };
        if headers.contains_key(&name) {
            continue;
        }
        for v in vs.as_array().into_iter().flatten() {
            if let Some(Ok(value)) = text(v).map(|t| HeaderValue::from_str(&t)) {
                headers.append(name.clone(), value);
            }
        }
    }
    for c in o
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(Ok(value)) = c.as_str().map(HeaderValue::from_str) {
            headers.append("set-cookie", value);
        }
    }
    let body = match o.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => {
            if o.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
                match B64.decode(s) {
                    Ok(b) => b,
                    Err(_) => return internal_error(),
                }
            } else {
                s.clone().into_bytes()
            }
        }
        Some(other) => other.to_string().into_bytes(),
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut().extend(headers);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        Route {
            function: format!("{method} {path}"),
            event: "E".into(),
            method: method.into(),
            path: path.into(),
            authorizer: None,
        }
    }

    fn gw(routes: &[(&str, &str)]) -> Gateway {
        let routes = routes.iter().map(|(m, p)| route(m, p)).collect();
        Gateway::new(
            routes,
            Arc::new(BTreeMap::new()),
            Log {
                runner: false,
                functions: false,
                capture: None,
            },
        )
    }

    #[test]
    fn routes_prefer_literals_then_params_then_greedy_and_methods_over_any() {
        let g = gw(&[
            ("GET", "/v1/keys"),
            ("DELETE", "/v1/keys/{id}"),
            ("GET", "/v1/keys/mine"),
            ("ANY", "/v1/files/{proxy+}"),
            ("GET", "/v1/files/{proxy+}"),
        ]);
        let key = |m: &str, p: &str| g.select(m, p).map(|(r, params)| (r.route_key(), params));
        assert_eq!(key("GET", "/v1/keys").unwrap().0, "GET /v1/keys");
        assert_eq!(key("GET", "/v1/keys/mine").unwrap().0, "GET /v1/keys/mine");
        let (k, params) = key("DELETE", "/v1/keys/key%201").unwrap();
        assert_eq!(k, "DELETE /v1/keys/{id}");
        assert_eq!(params["id"], "key 1");
        assert!(key("POST", "/v1/keys/abc").is_none());
        assert!(key("PUT", "/v1/keys").is_none());
        assert!(key("GET", "/v1/nope").is_none());
        assert!(key("GET", "/v1/keys/").is_none());
        let (k, params) = key("GET", "/v1/files/a/b/c.txt").unwrap();
        assert_eq!(k, "GET /v1/files/{proxy+}");
        assert_eq!(params["proxy"], "a/b/c.txt");
        assert_eq!(
            key("PUT", "/v1/files/a").unwrap().0,
            "ANY /v1/files/{proxy+}"
        );
        assert!(key("GET", "/v1/files").is_none());
    }

    #[test]
    fn the_default_route_takes_whatever_no_other_route_does() {
        let g = gw(&[("GET", "/v1/keys"), ("ANY", "$default")]);
        let key = |m: &str, p: &str| g.select(m, p).map(|(r, _)| r.route_key());
        assert_eq!(key("GET", "/v1/keys").unwrap(), "GET /v1/keys");
        assert_eq!(key("PUT", "/v1/keys").unwrap(), "$default");
        assert_eq!(key("GET", "/v1/nope").unwrap(), "$default");
    }

    #[test]
    fn headers_are_lower_case_and_joined() {
        let mut h = HeaderMap::new();
        h.append("X-Thing", HeaderValue::from_static("a"));
        h.append("x-thing", HeaderValue::from_static("b"));
        h.append("cookie", HeaderValue::from_static("s=1; t=2"));
        let (headers, cookies) = event_headers(&h);
        assert_eq!(headers["x-thing"], "a,b");
        assert!(!headers.contains_key("cookie"));
        assert_eq!(cookies, ["s=1", "t=2"]);
        let q = query_parameters("a=1&a=2&b=x%20y&c");
        assert_eq!(q["a"], "1,2");
        assert_eq!(q["b"], "x y");
        assert_eq!(q["c"], "");
    }

    #[test]
    fn authorizer_responses() {
        assert!(
            matches!(decision(br#"{"isAuthorized":true,"context":{"a":1}}"#, true), Ok(Decision::Allow(c)) if c["a"] == 1)
        );
        assert!(matches!(
            decision(br#"{"isAuthorized":false}"#, true),
            Ok(Decision::Deny)
        ));
        assert!(decision(br#"{"nope":1}"#, true).is_err());
        let policy = br#"{"principalId":"p","policyDocument":{"Statement":[{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"}]}}"#;
        assert!(matches!(decision(policy, false), Ok(Decision::Allow(_))));
    }
}
