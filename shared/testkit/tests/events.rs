//! The HTTP API sample events of `events/` are requests `lambda_http` reads,
//! each aimed at a route the template gives its function.

use lambda_http::RequestExt;
use nuvem_testkit::fixtures::http_event;
use nuvem_testkit::template::EventSource;
use nuvem_testkit::{Template, workspace_root};

#[test]
fn http_sample_events_are_requests_for_their_functions_routes() {
    let template = Template::load_default(&Default::default()).expect("template.yaml");
    let mut checked = 0;
    for f in template.functions.values() {
        let routes: Vec<(String, String)> = f
            .events
            .iter()
            .filter_map(|e| match &e.source {
                EventSource::HttpApi(h) => Some((h.method.to_uppercase(), h.path.clone())),
                _ => None,
            })
            .collect();
        if routes.is_empty() {
            continue;
        }
        let dir = workspace_root().join("events").join(&f.binary);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let req = http_event(&format!("{}/{name}", f.binary));
            let route = nuvem_aws::http::route(&req);
            let method = req.method().as_str();
            let matched = routes.iter().any(|(m, p)| {
                let key = if p == "$default" {
                    p.clone()
                } else {
                    format!("{m} {p}")
                };
                key == route && (m == "ANY" || m == method)
            });
            assert!(
                matched,
                "{}/{name}: {method} {route} is not a route of {}",
                f.binary, f.logical_id
            );
            assert!(
                req.raw_http_path().starts_with('/'),
                "{}/{name}: no raw path",
                f.binary
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} HTTP sample events found");
}
