//! The HTTP API's `$default` route. API Gateway sends here every request no
//! route of the template matches, and answers a bare `{"message":"Not
//! Found"}` when there is no such route. This answers as every other route
//! does, in `application/problem+json`: 405 with `Allow` when the path is
//! ours and only the method is wrong, 404 otherwise.

use nuvem_aws::http::{Problem, Request, RequestExt, Response};

/// Every `(method, path)` route of `template.yaml`, other than `$default`.
/// A test compares it with the template, so a route added there without
/// being added here fails the build.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/activate"),
    ("GET", "/v1/admin/accounts"),
    ("GET", "/v1/admin/accounts/{id}"),
    ("PATCH", "/v1/admin/accounts/{id}"),
    ("POST", "/v1/admin/accounts/{id}/activation"),
    ("POST", "/v1/admin/accounts/{id}/approve"),
    ("GET", "/v1/admin/accounts/{id}/audit"),
    ("POST", "/v1/admin/accounts/{id}/reject"),
    ("GET", "/v1/buckets"),
    ("POST", "/v1/buckets"),
    ("DELETE", "/v1/buckets/{name}"),
    ("GET", "/v1/buckets/{name}"),
    ("PATCH", "/v1/buckets/{name}"),
    ("GET", "/v1/event-types"),
    ("GET", "/v1/events"),
    ("POST", "/v1/events"),
    ("POST", "/v1/events/{id}/retry"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("DELETE", "/v1/keys/{id}"),
    ("GET", "/v1/rpa/carriers"),
    ("POST", "/v1/rpa/carriers"),
    ("DELETE", "/v1/rpa/carriers/{code}"),
    ("GET", "/v1/rpa/carriers/{code}"),
    ("PATCH", "/v1/rpa/carriers/{code}"),
    ("GET", "/v1/rpa/clients"),
    ("POST", "/v1/rpa/clients"),
    ("POST", "/v1/rpa/clients/import"),
    ("DELETE", "/v1/rpa/clients/{id}"),
    ("GET", "/v1/rpa/clients/{id}"),
    ("PATCH", "/v1/rpa/clients/{id}"),
    ("GET", "/v1/rpa/processes"),
    ("POST", "/v1/rpa/processes"),
    ("GET", "/v1/rpa/processes/{id}"),
    ("POST", "/v1/rpa/processes/{id}/approve"),
    ("POST", "/v1/rpa/processes/{id}/cancel"),
    ("POST", "/v1/rpa/processes/{id}/download"),
    ("GET", "/v1/rpa/processes/{id}/executions"),
    ("GET", "/v1/rpa/processes/{id}/executions/{execution_id}"),
    (
        "GET",
        "/v1/rpa/processes/{id}/executions/{execution_id}/logs",
    ),
    ("GET", "/v1/rpa/processes/{id}/invoice"),
    ("POST", "/v1/rpa/processes/{id}/invoice-upload"),
    ("POST", "/v1/rpa/processes/{id}/retry"),
    ("POST", "/v1/rpa/processes/{id}/tax-filing"),
    ("GET", "/v1/rpa/reports/monthly"),
    ("GET", "/v1/rpa/schedules"),
    ("POST", "/v1/rpa/schedules"),
    ("DELETE", "/v1/rpa/schedules/{id}"),
    ("GET", "/v1/rpa/schedules/{id}"),
    ("PATCH", "/v1/rpa/schedules/{id}"),
    ("POST", "/v1/signup"),
    ("GET", "/v1/storage-keys"),
    ("POST", "/v1/storage-keys"),
    ("DELETE", "/v1/storage-keys/{id}"),
    ("GET", "/v1/storage-keys/{id}"),
    ("DELETE", "/v1/storage-keys/{id}/rotation"),
    ("POST", "/v1/storage-keys/{id}/rotation"),
    ("POST", "/v1/storage-keys/{id}/rotation/confirm"),
    ("GET", "/v1/usage"),
    ("GET", "/v1/webhooks"),
    ("POST", "/v1/webhooks"),
    ("DELETE", "/v1/webhooks/{id}"),
    ("GET", "/v1/webhooks/{id}"),
    ("PATCH", "/v1/webhooks/{id}"),
    ("GET", "/v1/webhooks/{id}/attempts"),
    ("GET", "/v1/webhooks/{id}/secret"),
    ("POST", "/v1/webhooks/{id}/secret/rotate"),
    ("GET", "/v1/webhooks/{id}/stats"),
    ("POST", "/v1/webhooks/{id}/test"),
    ("DELETE", "/v1/whatsapp/notices"),
    ("GET", "/v1/whatsapp/notices"),
    ("PUT", "/v1/whatsapp/notices"),
    ("GET", "/v1/whatsapp/stores"),
    ("POST", "/v1/whatsapp/stores"),
    ("DELETE", "/v1/whatsapp/stores/{id}"),
    ("GET", "/v1/whatsapp/stores/{id}"),
    ("PATCH", "/v1/whatsapp/stores/{id}"),
    ("GET", "/v1/whatsapp/stores/{id}/conversations"),
    (
        "GET",
        "/v1/whatsapp/stores/{id}/conversations/{conversation_id}/messages",
    ),
    (
        "POST",
        "/v1/whatsapp/stores/{id}/conversations/{conversation_id}/resume",
    ),
    ("POST", "/v1/whatsapp/stores/{id}/messages"),
    ("DELETE", "/v1/whatsapp/stores/{id}/numbers/{slot}"),
    ("PUT", "/v1/whatsapp/stores/{id}/numbers/{slot}"),
    ("POST", "/v1/whatsapp/stores/{id}/numbers/{slot}/check"),
    ("GET", "/v1/whatsapp/webhook"),
    ("POST", "/v1/whatsapp/webhook"),
];

/// Whether `path` fits the route template `pattern`, where `{name}` stands
/// for one non-empty segment (API Gateway's rule; no route here is greedy).
pub fn fits(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// The methods the routes at `path` accept, sorted; empty for no route.
/// Where a path fits both a literal route and a `{name}` one
/// (`/v1/rpa/clients/import` and `/v1/rpa/clients/{id}`), the resource is
/// the literal one: only its methods count.
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let fitting: Vec<_> = ROUTES
        .iter()
        .filter(|(_, pattern)| fits(pattern, path))
        .collect();
    let literal_segments =
        |pattern: &str| pattern.split('/').filter(|s| !s.starts_with('{')).count();
    let most = fitting
        .iter()
        .map(|(_, pattern)| literal_segments(pattern))
        .max()
        .unwrap_or(0);
    let mut methods: Vec<&'static str> = fitting
        .iter()
        .filter(|(_, pattern)| literal_segments(pattern) == most)
        .map(|(method, _)| *method)
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

pub fn handle(req: &Request) -> Response {
    let path = match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    };
    let allowed = allowed_methods(path);
    if allowed.is_empty() {
        return Problem::not_found("no route of this API matches the path").into_response();
    }
    Problem::method_not_allowed(&allowed).into_response()
}
