//! The `webhooks` routes against the emulator and a receiver on 127.0.0.1:
//! endpoint CRUD and validation, tenant isolation, secrets and rotation, test
//! deliveries, attempts, stats, events, custom events and replays.

use nuvem_aws::Core;
use nuvem_aws::deliveries::{DeliveryQueue, DeliveryTask};
use nuvem_aws::http::Request;
use nuvem_aws::webhook::{Sender, secrets};
use nuvem_domain::webhook::endpoint::UrlPolicy;
use nuvem_testkit::fixtures::{
    as_principal, http_event, reply, with_body, with_json, with_path_id, with_query, with_route,
    without_body,
};
use nuvem_testkit::inspect::{drain, item_ids, scan_all};
use nuvem_testkit::receiver::{Receiver, Reply};
use nuvem_testkit::{TestStack, tenants};
use serde_json::{Value, json};

struct World {
    t: TestStack,
    deps: webhooks::Deps,
    receiver: Receiver,
    account: String,
    other: String,
}

async fn world() -> World {
    let t = TestStack::new("webhooks").await;
    let core = Core::from_lookup(&t.sdk, &t.env("Webhooks")).unwrap();
    let account = tenants::active_account(&core.store, 1_000, 0).await.id;
    let other = tenants::active_account(&core.store, 1_000, 0).await.id;
    let deps = webhooks::Deps {
        core,
        deliveries: DeliveryQueue::new(&t.sdk, &t.stack.queue("DeliveriesQueue").url),
        sender: Sender::new(true),
        url_policy: UrlPolicy {
            allow_loopback: true,
        },
        sealer: t.sealer(),
    };
    World {
        t,
        deps,
        receiver: Receiver::start().await,
        account,
        other,
    }
}

impl World {
    /// `route` on behalf of `account` with `role`, with an optional body.
    async fn call_as(
        &self,
        account: &str,
        role: &str,
        route: &str,
        id: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let req = self.request(account, role, route, id, body);
        let (status, _, body) = reply(&webhooks::handle(&self.deps, req).await);
        (status, body)
    }

    fn request(
        &self,
        account: &str,
        role: &str,
        route: &str,
        id: Option<&str>,
        body: Option<Value>,
    ) -> Request {
        let mut req = without_body(with_route(
            http_event("webhooks/create-webhook.json"),
            route,
        ));
        if let Some(id) = id {
            req = with_path_id(req, id);
        }
        if let Some(body) = body {
            req = with_json(req, &body);
        }
        as_principal(req, account, "key_01jd0000000000000000000001", role)
    }

    /// `route` as the owner of `account`, sent with an `Idempotency-Key`.
    /// Answers (status, replayed?, body).
    async fn call_once(
        &self,
        account: &str,
        key: &str,
        route: &str,
        id: Option<&str>,
        body: Option<Value>,
    ) -> (u16, bool, Value) {
        let mut req = self.request(account, "owner", route, id, body);
        req.headers_mut()
            .insert("idempotency-key", key.parse().expect("a header value"));
        let resp = webhooks::handle(&self.deps, req).await;
        let replayed = resp.headers().get("idempotent-replayed").is_some();
        let (status, _, body) = reply(&resp);
        (status, replayed, body)
    }

    async fn call(&self, route: &str, id: Option<&str>, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.account, "owner", route, id, body).await
    }

    async fn query(&self, route: &str, id: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let req = with_query(
            with_path_id(
                with_route(http_event("webhooks/get-webhook.json"), route),
                id,
            ),
            query,
        );
        let req = as_principal(
            req,
            &self.account,
            "key_01jd0000000000000000000001",
            "owner",
        );
        let (status, _, body) = reply(&webhooks::handle(&self.deps, req).await);
        (status, body)
    }

    async fn create(&self, extra: Value) -> (String, String) {
        let mut body = json!({
            "url": self.receiver.url("/nuvem"),
            "description": "ERP da matriz",
            "headers": {"authorization": "Bearer erp-token"},
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, created) = self.call("POST /v1/webhooks", None, Some(body)).await;
        assert_eq!(status, 201, "{created}");
        (
            created["webhook"]["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn stored_endpoints(&self) -> usize {
        scan_all(&self.t.db, self.t.table())
            .await
            .iter()
            .filter(|i| i["sk"].as_s().is_ok_and(|s| s.starts_with("WEBHOOK#")))
            .count()
    }
}

#[tokio::test]
async fn the_fixture_creates_an_endpoint() {
    let w = world().await;
    let req = as_principal(
        http_event("webhooks/create-webhook.json"),
        &w.account,
        "key_01jd0000000000000000000001",
        "owner",
    );
    let (status, _, body) = reply(&webhooks::handle(&w.deps, req).await);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["webhook"]["url"], "https://hooks.example.com/nuvem");
    assert_eq!(body["webhook"]["headers"]["authorization"], "[redacted]");
    assert!(body["secret"].as_str().unwrap().starts_with("whsec_"));
}

#[tokio::test]
async fn endpoints_are_created_read_updated_and_deleted() {
    let w = world().await;
    let (id, secret) = w.create(json!({})).await;
    let (status, read) = w.call("GET /v1/webhooks/{id}", Some(&id), None).await;
    assert_eq!(status, 200);
    assert_eq!(read["description"], "ERP da matriz");
    assert_eq!(read["event_types"], json!([]));
    assert_eq!(read["method"], "POST");
    assert_eq!(read["timeout_seconds"], 15);
    assert_eq!(read["enabled"], true);
    assert!(read.get("secret").is_none(), "the secret has its own route");
    let (status, list) = w.call("GET /v1/webhooks", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, shown) = w
        .call("GET /v1/webhooks/{id}/secret", Some(&id), None)
        .await;
    assert_eq!(shown["secret"], secret.as_str());

    let patch = json!({"event_types": ["quota.threshold_crossed", "custom.order.paid"],
        "rate_limit_per_second": 5, "description": ""});
    let (status, updated) = w
        .call("PATCH /v1/webhooks/{id}", Some(&id), Some(patch))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["rate_limit_per_second"], 5);
    assert_eq!(updated["description"], "");
    assert_eq!(
        updated["url"],
        w.receiver.url("/nuvem").as_str(),
        "unchanged"
    );
    let (status, cleared) = w
        .call(
            "PATCH /v1/webhooks/{id}",
            Some(&id),
            Some(json!({"rate_limit_per_second": null})),
        )
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["rate_limit_per_second"], Value::Null);
    assert_eq!(cleared["event_types"].as_array().unwrap().len(), 2, "kept");
    // A header value sent back as shown keeps the stored one.
    let (status, _) = w
        .call(
            "PATCH /v1/webhooks/{id}",
            Some(&id),
            Some(json!({"headers": {"authorization": "[redacted]"}})),
        )
        .await;
    assert_eq!(status, 200);
    w.call("POST /v1/webhooks/{id}/test", Some(&id), None).await;
    assert_eq!(
        w.receiver.received()[0].header("authorization"),
        Some("Bearer erp-token")
    );
    let (status, bad) = w
        .call(
            "PATCH /v1/webhooks/{id}",
            Some(&id),
            Some(json!({"timeout_seconds": 301})),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    let (_, after) = w.call("GET /v1/webhooks/{id}", Some(&id), None).await;
    assert_eq!(
        after["timeout_seconds"], 15,
        "a refused patch changes nothing"
    );

    assert_eq!(
        w.call("DELETE /v1/webhooks/{id}", Some(&id), None).await.0,
        204
    );
    assert_eq!(
        w.call("GET /v1/webhooks/{id}", Some(&id), None).await.0,
        404
    );
    assert_eq!(
        w.call("DELETE /v1/webhooks/{id}", Some(&id), None).await.0,
        404
    );
    assert_eq!(w.stored_endpoints().await, 0);
}

#[tokio::test]
async fn bad_endpoints_are_refused_and_nothing_is_stored() {
    let w = world().await;
    let cases = [
        (json!({"url": "ftp://hooks.example.com/x"}), "url"),
        (json!({"url": "http://10.0.0.8/x"}), "url"),
        (
            json!({"url": "https://user:pass@hooks.example.com/x"}),
            "url",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "event_types": ["account.deleted"]}),
            "event_types",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "event_types": ["webhook.test"]}),
            "event_types",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "headers": {"webhook-signature": "v1,x"}}),
            "headers",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "headers": {"X-Amz-Date": "x"}}),
            "headers",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "headers": {"x-erp": "a\r\nb: c"}}),
            "headers",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "timeout_seconds": 0}),
            "timeout_seconds",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "method": "TRACE"}),
            "method",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "account_id": w.other}),
            "account_id",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "secret": "whsec_c2hvcnQ="}),
            "secret",
        ),
        (json!({"url": 42}), "url"),
    ];
    for (body, field) in cases {
        let (status, problem) = w.call("POST /v1/webhooks", None, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {problem}");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{body}: {problem}"
        );
    }
    let req = with_body(
        with_route(
            http_event("webhooks/create-webhook.json"),
            "POST /v1/webhooks",
        ),
        "{\"url\": ",
    );
    let req = as_principal(req, &w.account, "key_01jd0000000000000000000001", "owner");
    assert_eq!(reply(&webhooks::handle(&w.deps, req).await).0, 400);
    assert_eq!(w.stored_endpoints().await, 0);
}

#[tokio::test]
async fn another_account_cannot_see_or_touch_an_endpoint() {
    let w = world().await;
    let (id, _) = w.create(json!({})).await;
    let other = w.other.clone();
    for (route, body) in [
        ("GET /v1/webhooks/{id}", None),
        ("PATCH /v1/webhooks/{id}", Some(json!({"enabled": false}))),
        ("DELETE /v1/webhooks/{id}", None),
        ("GET /v1/webhooks/{id}/secret", None),
        ("POST /v1/webhooks/{id}/secret/rotate", None),
        ("POST /v1/webhooks/{id}/test", None),
        ("GET /v1/webhooks/{id}/attempts", None),
        ("GET /v1/webhooks/{id}/stats", None),
    ] {
        let (status, answer) = w.call_as(&other, "owner", route, Some(&id), body).await;
        assert_eq!(status, 404, "{route}: {answer}");
    }
    let (_, list) = w
        .call_as(&other, "owner", "GET /v1/webhooks", None, None)
        .await;
    assert_eq!(list["items"], json!([]));
    assert!(
        w.receiver.received().is_empty(),
        "no test delivery was made"
    );
    let (_, mine) = w.call("GET /v1/webhooks/{id}", Some(&id), None).await;
    assert_eq!(mine["enabled"], true);
    // An operator reads but does not change or see secrets.
    let operator = w.account.clone();
    assert_eq!(
        w.call_as(
            &operator,
            "operator",
            "GET /v1/webhooks/{id}",
            Some(&id),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        w.call_as(
            &operator,
            "operator",
            "GET /v1/webhooks/{id}/secret",
            Some(&id),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        w.call_as(
            &operator,
            "operator",
            "DELETE /v1/webhooks/{id}",
            Some(&id),
            None
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_signing_for_a_day() {
    let w = world().await;
    let (id, old) = w.create(json!({})).await;
    let (status, rotated) = w
        .call("POST /v1/webhooks/{id}/secret/rotate", Some(&id), None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["previous_secret"], old.as_str());
    let until = chrono::DateTime::parse_from_rfc3339(
        rotated["previous_secret_expires_at"].as_str().unwrap(),
    )
    .unwrap();
    let hours = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{hours} minutes");

    let (status, attempt) = w.call("POST /v1/webhooks/{id}/test", Some(&id), None).await;
    assert_eq!(status, 200, "{attempt}");
    let request = &w.receiver.received()[0];
    request.verify(&new).unwrap();
    request.verify(&old).unwrap();
    assert_eq!(request.json()["type"], "webhook.test");
    assert_eq!(request.json()["data"]["webhook_id"], id.as_str());

    // A secret of the tenant's own choosing.
    let own = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (_, rotated) = w
        .call(
            "POST /v1/webhooks/{id}/secret/rotate",
            Some(&id),
            Some(json!({"secret": own})),
        )
        .await;
    assert_eq!(rotated["secret"], own);
    let (status, _) = w
        .call(
            "POST /v1/webhooks/{id}/secret/rotate",
            Some(&id),
            Some(json!({"secret": "whsec_"})),
        )
        .await;
    assert_eq!(status, 422);
}

/// The table never holds a signing secret in the clear, and a sealed secret
/// opens only for the endpoint it was sealed for.
#[tokio::test]
async fn secrets_are_stored_sealed_for_their_own_endpoint() {
    let w = world().await;
    let (a, secret_a) = w.create(json!({})).await;
    let (b, _) = w.create(json!({})).await;
    w.call("POST /v1/webhooks/{id}/secret/rotate", Some(&a), None)
        .await;
    let items = scan_all(&w.t.db, w.t.table()).await;
    let stored: Vec<_> = items
        .iter()
        .filter(|i| i["sk"].as_s().is_ok_and(|s| s.starts_with("WEBHOOK#")))
        .collect();
    assert_eq!(stored.len(), 2);
    for item in &stored {
        assert!(item["sealed_secret"].as_s().is_ok());
        let text = format!("{item:?}");
        assert!(!text.contains("whsec_"), "a secret in the clear: {text}");
        let raw = &secret_a["whsec_".len()..];
        assert!(!text.contains(raw), "a secret's key in the clear: {text}");
    }

    let store = &w.deps.core.store;
    let sealer = &w.deps.sealer;
    let now = chrono::Utc::now();
    let record_a = store.get_endpoint(&w.account, &a).await.unwrap().unwrap();
    let opened = secrets::open(sealer, &record_a, now).await.unwrap();
    assert_eq!(opened.previous.unwrap().0.to_string_form(), secret_a);
    // A's ciphertext copied onto B (or onto another account's endpoint)
    // does not open there, though this instance has just opened it for A.
    let mut forged = store.get_endpoint(&w.account, &b).await.unwrap().unwrap();
    forged.sealed_secret = record_a.sealed_secret.clone();
    assert!(secrets::open(sealer, &forged, now).await.is_err());
    let mut elsewhere = record_a.clone();
    elsewhere.account_id = w.other.clone();
    assert!(secrets::open(sealer, &elsewhere, now).await.is_err());
    forged.sealed_secret = "bm90IGEgY2lwaGVydGV4dA==".into();
    assert!(secrets::open(sealer, &forged, now).await.is_err());
}

#[tokio::test]
async fn test_deliveries_are_answered_logged_and_counted() {
    let w = world().await;
    let (id, _) = w.create(json!({})).await;
    w.receiver.reply([
        Reply::status(200).body("ok"),
        Reply::status(500).body("nope"),
        Reply::status(204),
        Reply::status(200).body(&"x".repeat(10_000)),
    ]);
    let mut answers = Vec::new();
    for _ in 0..4 {
        let (status, attempt) = w.call("POST /v1/webhooks/{id}/test", Some(&id), None).await;
        assert_eq!(status, 200, "{attempt}");
        answers.push(attempt);
    }
    assert_eq!(answers[0]["response_status"], 200);
    assert_eq!(answers[0]["response_body_excerpt"], "ok");
    assert_eq!(answers[1]["response_status"], 500);
    assert_eq!(answers[1]["outcome"], "failed");
    assert_eq!(
        answers[3]["response_body_excerpt"].as_str().unwrap().len(),
        4096
    );
    assert_eq!(answers[0]["request_headers"]["authorization"], "[redacted]");

    let (_, all) = w.query("GET /v1/webhooks/{id}/attempts", &id, &[]).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
    assert_eq!(all["items"][0]["id"], answers[3]["id"], "newest first");
    let (_, failed) = w
        .query(
            "GET /v1/webhooks/{id}/attempts",
            &id,
            &[("outcome", "failed")],
        )
        .await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    assert_eq!(failed["items"][0]["response_status"], 500);
    let (_, page) = w
        .query("GET /v1/webhooks/{id}/attempts", &id, &[("limit", "3")])
        .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = w
        .query(
            "GET /v1/webhooks/{id}/attempts",
            &id,
            &[("limit", "3"), ("cursor", &cursor)],
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        w.query(
            "GET /v1/webhooks/{id}/attempts",
            &id,
            &[("outcome", "maybe")]
        )
        .await
        .0,
        422
    );

    let (status, stats) = w
        .query("GET /v1/webhooks/{id}/stats", &id, &[("window", "1h")])
        .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["stats"]["attempts"], 4);
    assert_eq!(stats["stats"]["succeeded"], 3);
    assert_eq!(stats["stats"]["success_rate"], 0.75);
    assert_eq!(stats["stats"]["by_status_class"]["2xx"], 3);
    assert_eq!(stats["stats"]["by_status_class"]["5xx"], 1);
    assert!(stats["stats"]["latency_ms"]["p99"].is_u64());
    assert_eq!(stats["state"]["enabled"], true);
    assert_eq!(stats["latency_exact"], true);
    let since = chrono::DateTime::parse_from_rfc3339(stats["since"].as_str().unwrap()).unwrap();
    assert_eq!(since.timestamp() % 3600, 0, "windows start on the hour");
    assert!(since <= chrono::Utc::now() - chrono::Duration::hours(1));
    assert_eq!(
        w.query("GET /v1/webhooks/{id}/stats", &id, &[("window", "2d")])
            .await
            .0,
        422
    );
}

/// Stats count every attempt of a window however many it holds (from the
/// hourly counters); past 1,000 attempts the latency percentiles are the
/// bounds of the histogram buckets that hold them.
#[tokio::test]
async fn stats_of_a_busy_window_count_every_attempt() {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    use nuvem_aws::table_keys as k;
    let w = world().await;
    let (id, _) = w.create(json!({})).await;
    w.receiver.reply([Reply::status(200)]);
    let (status, _) = w.call("POST /v1/webhooks/{id}/test", Some(&id), None).await;
    assert_eq!(status, 200);
    // A busy hour two hours ago, as 50,000 attempts left its counters.
    let hour = (chrono::Utc::now() - chrono::Duration::hours(2)).format("%Y-%m-%dT%H");
    let counters = [
        ("attempts", 50_000),
        ("succeeded", 49_000),
        ("c2xx", 49_000),
        ("c5xx", 1_000),
        ("l05", 45_000), // ≤ 100 ms
        ("l09", 4_400),  // ≤ 500 ms
        ("l13", 600),    // ≤ 2 s
    ];
    let mut put =
        w.t.db
            .put_item()
            .table_name(w.t.table())
            .item("pk", S(k::attempts_pk(&w.account, &id)))
            .item("sk", S(k::rollup_sk(&hour.to_string())));
    for (name, count) in counters {
        put = put.item(name, N(count.to_string()));
    }
    put.send().await.unwrap();

    let (_, day) = w
        .query("GET /v1/webhooks/{id}/stats", &id, &[("window", "24h")])
        .await;
    assert_eq!(day["stats"]["attempts"], 50_001, "{day}");
    assert_eq!(day["stats"]["succeeded"], 49_001);
    assert_eq!(day["stats"]["by_status_class"]["2xx"], 49_001);
    assert_eq!(day["stats"]["by_status_class"]["5xx"], 1_000);
    assert_eq!(day["latency_exact"], false);
    assert_eq!(
        day["stats"]["latency_ms"],
        json!({"p50": 100, "p95": 500, "p99": 2000})
    );
    let (_, hour) = w
        .query("GET /v1/webhooks/{id}/stats", &id, &[("window", "1h")])
        .await;
    assert_eq!(hour["stats"]["attempts"], 1, "{hour}");
    assert_eq!(hour["latency_exact"], true);
}

#[tokio::test]
async fn custom_events_are_kept_listed_and_replayed() {
    let w = world().await;
    let (paid, _) = w
        .create(json!({"event_types": ["custom.order.paid"]}))
        .await;
    let (_quota, _) = w
        .create(json!({"event_types": ["quota.threshold_crossed"]}))
        .await;
    let (status, event) = w
        .call(
            "POST /v1/events",
            None,
            Some(json!({"type": "custom.order.paid", "data": {"order": 42}})),
        )
        .await;
    assert_eq!(status, 202, "{event}");
    let event_id = event["id"].as_str().unwrap().to_owned();
    assert_eq!(event["account_id"], w.account.as_str());
    for bad in [
        json!({"type": "account.approved"}),
        json!({"type": "custom."}),
        json!({"type": "custom.Order"}),
        json!({"type": "custom.order.paid", "data": [1]}),
        json!({"type": "custom.order.paid", "account_id": w.other}),
    ] {
        let (status, problem) = w.call("POST /v1/events", None, Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }
    // The custom event went to the events queue (fan-out's input).
    let queued = drain(&w.t.sqs, w.t.events_queue(), 10).await;
    assert_eq!(queued.len(), 1);
    assert!(queued[0].body().unwrap().contains(&event_id));

    let (status, events) = w.call("GET /v1/events", None, None).await;
    assert_eq!(status, 200);
    let ids = item_ids(&events);
    assert_eq!(ids[0], event_id, "newest first");
    let (_, theirs) = w
        .call_as(&w.other.clone(), "owner", "GET /v1/events", None, None)
        .await;
    assert!(
        theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"] != event_id.as_str()),
        "another account does not see it"
    );

    let (status, replay) = w
        .call("POST /v1/events/{id}/retry", Some(&event_id), None)
        .await;
    assert_eq!(status, 202, "{replay}");
    assert_eq!(replay["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(replay["deliveries"][0]["webhook_id"], paid.as_str());
    let tasks: Vec<DeliveryTask> = drain(&w.t.sqs, &w.t.stack.queue("DeliveriesQueue").url, 10)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].event.id, event_id);
    assert_eq!(tasks[0].endpoint_id, paid);
    let (status, _) = w
        .call(
            "POST /v1/events/{id}/retry",
            Some(&event_id),
            Some(json!({"webhook_id": "wh_nope"})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = w
        .call_as(
            &w.other.clone(),
            "owner",
            "POST /v1/events/{id}/retry",
            Some(&event_id),
            None,
        )
        .await;
    assert_eq!(status, 404, "another account's event");
}

/// A tenant's `data` is theirs, whatever its shape: keys named like
/// DynamoDB's type tags, empty maps and lists, nulls, numbers beyond what a
/// DynamoDB number holds. It is kept and listed as sent, and never breaks
/// the listing of the account's other events.
#[tokio::test]
async fn custom_event_data_of_any_shape_is_kept_and_listed_as_sent() {
    let w = world().await;
    let shapes = [
        json!({"N": 1, "S": "s", "L": [{}, ["x"], [null]], "M": {"N": {"N": "5"}}, "BOOL": true}),
        json!({"big": 1.2345678901234568e39, "tiny": 1e-130, "neg": -7764603974021746i64}),
        json!({"": {}, "empty": [], "null": null, "nested": {"a": {"b": {"c": []}}}}),
        json!({"ü ✓": "Pão de açúcar \u{1F35E}", "NS": ["1"], "SS": [], "B": "AA=="}),
    ];
    let mut sent = Vec::new();
    for data in &shapes {
        let body = json!({"type": "custom.shape.test", "data": data});
        let (status, event) = w.call("POST /v1/events", None, Some(body)).await;
        assert_eq!(status, 202, "{data}: {event}");
        sent.push((event["id"].as_str().unwrap().to_owned(), data.clone()));
    }
    let (status, events) = w.call("GET /v1/events", None, None).await;
    assert_eq!(status, 200, "{events}");
    for (id, data) in &sent {
        let listed = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} is listed"));
        assert_eq!(&listed["data"], data);
    }
}

#[tokio::test]
async fn a_custom_event_sent_again_with_its_idempotency_key_fires_once() {
    let w = world().await;
    let events_queued = || drain(&w.t.sqs, w.t.events_queue(), 10);
    let order = json!({"type": "custom.order.paid", "data": {"order": 42, "total": "99.90"}});
    // Sent five times at once, as a client retrying after timeouts might.
    let sends = (0..5).map(|_| {
        w.call_once(
            &w.account,
            "pedido-42",
            "POST /v1/events",
            None,
            Some(order.clone()),
        )
    });
    let answers = futures::future::join_all(sends).await;
    let first = &answers.iter().find(|a| !a.1).expect("one took effect").2;
    for (status, _, event) in &answers {
        assert_eq!(*status, 202, "{event}");
        assert_eq!(event, first, "every repeat answers the first event");
    }
    assert_eq!(answers.iter().filter(|a| !a.1).count(), 1);
    assert_eq!(events_queued().await.len(), 1, "fired once");

    // The same request written differently is the same request.
    let reordered = json!({"data": {"total": "99.90", "order": 42}, "type": "custom.order.paid"});
    let (status, replayed, again) = w
        .call_once(
            &w.account,
            "pedido-42",
            "POST /v1/events",
            None,
            Some(reordered),
        )
        .await;
    assert_eq!((status, replayed), (202, true));
    assert_eq!(&again, first);

    // The same key with another request is a mistake, and changes nothing.
    let other = json!({"type": "custom.order.paid", "data": {"order": 43}});
    let (status, _, problem) = w
        .call_once(
            &w.account,
            "pedido-42",
            "POST /v1/events",
            None,
            Some(other.clone()),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    // Keys are the account's own: another account's equal key is its own.
    let (status, replayed, theirs) = w
        .call_once(
            &w.other,
            "pedido-42",
            "POST /v1/events",
            None,
            Some(order.clone()),
        )
        .await;
    assert_eq!((status, replayed), (202, false));
    assert_ne!(theirs["id"], first["id"]);
    assert_eq!(theirs["account_id"], w.other.as_str());
    // A new key is a new event.
    let (status, replayed, _) = w
        .call_once(
            &w.account,
            "pedido-43",
            "POST /v1/events",
            None,
            Some(other),
        )
        .await;
    assert_eq!((status, replayed), (202, false));
    assert_eq!(events_queued().await.len(), 2);

    for bad in ["", "com espaço", &"k".repeat(256)] {
        let (status, _, problem) = w
            .call_once(
                &w.account,
                bad,
                "POST /v1/events",
                None,
                Some(order.clone()),
            )
            .await;
        assert_eq!(status, 400, "{bad:?}: {problem}");
    }
    assert!(
        events_queued().await.is_empty(),
        "nothing fired by bad keys"
    );
    let (_, listed) = w.call("GET /v1/events", None, None).await;
    let custom: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("custom."))
        .collect();
    assert_eq!(custom.len(), 2, "{listed}");
    assert_eq!(custom.iter().filter(|e| e["id"] == first["id"]).count(), 1);
}

#[tokio::test]
async fn a_replay_repeated_with_its_idempotency_key_queues_the_same_deliveries() {
    let w = world().await;
    let (a, _) = w.create(json!({})).await;
    let (b, _) = w.create(json!({})).await;
    let (_, event) = w
        .call(
            "POST /v1/events",
            None,
            Some(json!({"type": "custom.sync", "data": {}})),
        )
        .await;
    let event_id = event["id"].as_str().unwrap().to_owned();
    let deliveries = |answer: &Value| -> std::collections::BTreeMap<String, String> {
        answer["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["webhook_id"].as_str().unwrap().to_owned(),
                    d["delivery_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let route = "POST /v1/events/{id}/retry";
    let (status, _, first) = w
        .call_once(&w.account, "r1", route, Some(&event_id), None)
        .await;
    assert_eq!(status, 202, "{first}");
    let first = deliveries(&first);
    assert_eq!(first.keys().collect::<Vec<_>>(), {
        let mut both = vec![&a, &b];
        both.sort();
        both
    });
    let (_, _, again) = w
        .call_once(&w.account, "r1", route, Some(&event_id), None)
        .await;
    assert_eq!(deliveries(&again), first, "the same deliveries, sent once");
    let (_, _, only_a) = w
        .call_once(
            &w.account,
            "r1",
            route,
            Some(&event_id),
            Some(json!({"webhook_id": a})),
        )
        .await;
    assert_eq!(deliveries(&only_a)[&a], first[&a]);
    let (_, _, other) = w
        .call_once(&w.account, "r2", route, Some(&event_id), None)
        .await;
    assert!(
        deliveries(&other)
            .values()
            .all(|id| !first.values().any(|f| f == id)),
        "another key is another replay"
    );
    let (_, plain) = w.call(route, Some(&event_id), None).await;
    assert!(
        deliveries(&plain)
            .values()
            .all(|id| !first.values().any(|f| f == id))
    );
    let (status, _, _) = w
        .call_once(&w.account, "a b", route, Some(&event_id), None)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_catalogue_lists_every_type_with_an_example() {
    let w = world().await;
    let (status, catalogue) = w.call("GET /v1/event-types", None, None).await;
    assert_eq!(status, 200);
    let items = catalogue["items"].as_array().unwrap();
    assert_eq!(items.len(), nuvem_domain::events::EventType::ALL.len());
    for item in items {
        let example: nuvem_domain::events::Envelope =
            serde_json::from_value(item["example"].clone()).expect("an envelope");
        assert_eq!(example.event_type.as_str(), item["type"].as_str().unwrap());
        assert!(example.data.is_object());
        assert!(!item["description"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn only_enabling_a_disabled_endpoint_clears_its_failure_state() {
    let w = world().await;
    let (id, _) = w.create(json!({})).await;
    let store = &w.deps.core.store;
    let endpoint = store.get_endpoint(&w.account, &id).await.unwrap().unwrap();
    let since = chrono::Utc::now() - chrono::Duration::days(2);
    store
        .record_endpoint_health(
            &endpoint,
            nuvem_aws::store::HealthChange::Failing(since),
            since,
        )
        .await
        .unwrap();
    let (_, edited) = w
        .call(
            "PATCH /v1/webhooks/{id}",
            Some(&id),
            Some(json!({"description": "novo"})),
        )
        .await;
    assert!(
        edited["failing_since"].is_string(),
        "the 5-day clock goes on: {edited}"
    );

    let event = nuvem_domain::events::Envelope::new(
        nuvem_domain::events::EventType::WebhookEndpointDisabled,
        w.account.clone(),
        json!({"webhook_id": id, "reason": "gone"}),
        chrono::Utc::now(),
    );
    let failing = store.get_endpoint(&w.account, &id).await.unwrap().unwrap();
    let change = nuvem_aws::store::HealthChange::Disable {
        reason: "the endpoint answered 410 Gone".into(),
        event,
    };
    assert!(
        store
            .record_endpoint_health(&failing, change, chrono::Utc::now())
            .await
            .unwrap()
    );
    let (_, disabled) = w.call("GET /v1/webhooks/{id}", Some(&id), None).await;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(
        disabled["disabled_reason"],
        "the endpoint answered 410 Gone"
    );
    let (status, enabled) = w
        .call(
            "PATCH /v1/webhooks/{id}",
            Some(&id),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["failing_since"], Value::Null);
    assert_eq!(enabled["disabled_reason"], Value::Null);
}
