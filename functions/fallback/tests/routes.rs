//! The catch-all route against the template it stands behind.

use std::collections::BTreeSet;

use fallback::{ROUTES, allowed_methods, handle};
use nuvem_aws::http::Request;
use nuvem_testkit::Template;
use nuvem_testkit::fixtures::{http_event, http_event_edited, reply};
use proptest::prelude::*;
use serde_json::Value;

/// The sample `$default` request (`PUT /v1/keys`), re-aimed.
fn request(method: &str, path: &str) -> Request {
    http_event_edited("fallback/wrong-method.json", |event| {
        event["rawPath"] = path.into();
        event["requestContext"]["http"]["path"] = path.into();
        event["requestContext"]["http"]["method"] = method.into();
    })
}

/// (status, Allow header, problem body)
fn answer(method: &str, path: &str) -> (u16, Option<String>, Value) {
    let resp = handle(&request(method, path));
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, content_type, body) = reply(&resp);
    assert_eq!(content_type, "application/problem+json");
    (status, allow, body)
}

#[test]
fn its_routes_are_the_templates_and_it_is_the_public_default() {
    let template = Template::load_default(&Default::default()).expect("template.yaml");
    let routes = template.routes().expect("routes");
    let (default, others): (Vec<_>, Vec<_>) =
        routes.into_iter().partition(|r| r.path == "$default");
    let served: BTreeSet<(String, String)> =
        others.into_iter().map(|r| (r.method, r.path)).collect();
    let known: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        served.difference(&known).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes of template.yaml missing from fallback::ROUTES"
    );
    assert_eq!(
        known.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "fallback::ROUTES names routes template.yaml does not have"
    );
    assert_eq!(default.len(), 1, "one $default route");
    assert_eq!(default[0].function, "Fallback");
    assert_eq!(default[0].method, "ANY");
    assert!(default[0].authorizer.is_none(), "the catch-all is public");
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// A concrete path for a route template: each `{param}` becomes `segment`.
fn concrete(pattern: &str, segment: &str) -> String {
    pattern
        .split('/')
        .map(|s| if s.starts_with('{') { segment } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

proptest! {
    /// Any path of a route, with any parameter value, asked with a method no
    /// route of that path takes: 405 naming exactly the methods that do.
    #[test]
    fn wrong_method_on_a_known_path_is_405_with_allow(
        route in 0..ROUTES.len(),
        segment in "[A-Za-z0-9_.~%-]{1,40}",
        method in 0..METHODS.len(),
    ) {
        let (_, pattern) = ROUTES[route];
        let path = concrete(pattern, &segment);
        // Worked out apart from the function: the routes whose template
        // gives this very path for some value of its parameters, and of
        // those the most literal ones (`/v1/rpa/clients/import` is its own
        // resource, though it fits `/v1/rpa/clients/{id}` too, whose
        // function refuses it with 405).
        let fitting: Vec<_> = ROUTES
            .iter()
            .filter(|(_, p)| path.split('/').any(|value| concrete(p, value) == path))
            .collect();
        let params = |p: &str| p.split('/').filter(|s| s.starts_with('{')).count();
        let fewest = fitting.iter().map(|(_, p)| params(p)).min().unwrap();
        let expected: BTreeSet<&str> = fitting
            .iter()
            .filter(|(_, p)| params(p) == fewest)
            .map(|(m, _)| *m)
            .collect();
        let method = METHODS[method];
        prop_assume!(!expected.contains(method));
        let (status, allow, body) = answer(method, &path);
        prop_assert_eq!(status, 405);
        prop_assert_eq!(&body["status"], 405);
        let listed: BTreeSet<&str> = allow.as_deref().unwrap().split(", ").collect();
        prop_assert_eq!(listed, expected);
    }

    /// A path that is not one of a route's, whatever the method: 404, no Allow.
    #[test]
    fn other_paths_are_404(path in "(/[a-z0-9{}_-]{0,12}){0,5}", method in 0..METHODS.len()) {
        prop_assume!(allowed_methods(&path).is_empty());
        let (status, allow, body) = answer(METHODS[method], &path);
        prop_assert_eq!(status, 404);
        prop_assert!(allow.is_none());
        prop_assert_eq!(&body["status"], 404);
    }
}

#[test]
fn the_sample_event_is_a_405_naming_get_and_post() {
    let resp = handle(&http_event("fallback/wrong-method.json"));
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST");
}

#[test]
fn near_misses_of_a_route_are_404() {
    for path in [
        "/v1/keys/",
        "/v1/keys//",
        "/v1/keys/a/b",
        "/v1//keys",
        "v1/keys",
        "/V1/keys",
        "/v1/webhooks//test",
        "",
    ] {
        assert_eq!(answer("POST", path).0, 404, "{path:?}");
    }
    assert_eq!(allowed_methods("/v1/webhooks/wh_1/secret"), ["GET"]);
    assert_eq!(allowed_methods("/v1/rpa/clients/import"), ["POST"]);
    assert_eq!(
        allowed_methods("/v1/rpa/clients/cli_1"),
        ["DELETE", "GET", "PATCH"]
    );
    assert_eq!(
        allowed_methods("/v1/buckets/fotos"),
        ["DELETE", "GET", "PATCH"]
    );
}
