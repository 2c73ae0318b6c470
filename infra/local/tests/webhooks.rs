//! End to end through the local stack, as a tenant would use webhooks: an
//! endpoint registered through the API, a domain event fanned out by
//! `fanout`, signed and delivered by `webhook-delivery` to a receiver on
//! 127.0.0.1, a failed first attempt retried on schedule, and the attempts
//! and stats read back through the API.

mod common;

use std::time::Duration;

use common::{Api, admin_key, onboard};
use nuvem_testkit::eventually_some;
use nuvem_testkit::receiver::{Received, Receiver, Reply};
use reqwest::{Client, Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn an_event_reaches_the_tenants_endpoint_signed_after_a_retry() {
    let runner = common::stack("e2e-webhooks", &[("WebhookAllowLoopback", "true")]).await;
    let api = Api {
        http: Client::new(),
        runner: &runner,
    };
    let admin = admin_key(&runner);
    let (account, owner) = onboard(&api, &admin, "45.723.174/0001-10", "ti@rapida.com.br").await;

    let receiver = Receiver::start().await;
    // The receiver is down for the first attempt.
    receiver.reply([Reply::status(503).body("maintenance")]);
    let (status, created) = api
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&owner),
            Some(json!({
                "url": receiver.url("/nuvem/events"),
                "description": "ERP",
                // Only what this test triggers: the owner's key, created
                // by the onboarding just before, may still be fanned out.
                "event_types": ["account.updated"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let webhook = created["webhook"]["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();

    // An onboarding event: the platform admin raises the account's quota.
    let (status, _) = api
        .call(
            Method::PATCH,
            &format!("/v1/admin/accounts/{account}"),
            Some(&admin),
            Some(json!({"quota_gb": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // First attempt (503), then the retry about 5 s later (200).
    let received = eventually_some("the delivery and its retry", || async {
        let got: Vec<Received> = receiver
            .received()
            .into_iter()
            .filter(|r| r.json()["type"] == "account.updated")
            .collect();
        (got.len() >= 2).then_some(got)
    })
    .await;
    assert_eq!(received.len(), 2, "delivered, then retried");
    for request in &received {
        request
            .verify(&secret)
            .expect("signed with the endpoint's secret");
        assert_eq!(request.path, "/nuvem/events");
    }
    assert_eq!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id")
    );
    let event = received[1].json();
    assert_eq!(event["type"], "account.updated");
    assert_eq!(event["account_id"], account.as_str());
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_secs(3),
        "retried after its wait: {gap:?}"
    );

    // The second attempt is recorded once its answer is in: after the
    // receiver saw the request.
    let attempts = eventually_some("both attempts on record", || async {
        let (status, attempts) = api
            .call(
                Method::GET,
                &format!("/v1/webhooks/{webhook}/attempts"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{attempts}");
        let recorded = attempts["items"].as_array().unwrap().len();
        (recorded >= 2 && attempts["items"][0]["attempt"] == 2).then_some(attempts)
    })
    .await;
    let items = attempts["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["outcome"], "succeeded");
    assert_eq!(items[0]["attempt"], 2);
    assert_eq!(items[1]["outcome"], "failed");
    assert_eq!(items[1]["response_status"], 503);
    assert_eq!(items[1]["response_body_excerpt"], "maintenance");

    // The endpoint's counters and health are recorded after the attempt.
    let stats = eventually_some("both attempts counted, the endpoint healthy", || async {
        let (status, stats) = api
            .call(
                Method::GET,
                &format!("/v1/webhooks/{webhook}/stats?window=1h"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        let counted = stats["stats"]["attempts"].as_u64().unwrap_or(0) >= 2;
        (counted && stats["state"]["failing_since"].is_null()).then_some(stats)
    })
    .await;
    assert_eq!(stats["stats"]["attempts"], 2);
    assert_eq!(stats["stats"]["success_rate"], 0.5);
    assert_eq!(stats["stats"]["by_status_class"]["5xx"], 1);
    assert_eq!(stats["state"]["failing_since"], serde_json::Value::Null);

    // The event is listed among the account's events.
    let (_, events) = api
        .call(Method::GET, "/v1/events", Some(&owner), None)
        .await;
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == event["id"]),
        "{events}"
    );

    // The business metrics, as CloudWatch reads them from the functions'
    // EMF lines: the signup and its approval, one failed and one succeeded
    // attempt (the owner's key event goes to no endpoint).
    let metric = |name: &str, dims: &[(&str, &str)]| common::metric_sum(&runner, name, dims);
    eventually_some("the attempts' metrics", || async {
        let ok = metric("WebhookDeliveryAttempts", &[("outcome", "succeeded")]);
        let failed = metric("WebhookDeliveryAttempts", &[("outcome", "failed")]);
        (ok >= 1.0 && failed >= 1.0).then_some(())
    })
    .await;
    assert_eq!(
        metric("WebhookDeliveryAttempts", &[("outcome", "succeeded")]),
        1.0
    );
    assert_eq!(
        metric("WebhookDeliveryAttempts", &[("outcome", "failed")]),
        1.0
    );
    assert_eq!(metric("WebhookDeliveriesExhausted", &[]), 0.0);
    assert_eq!(metric("Signups", &[]), 1.0);
    assert_eq!(metric("AccountReviews", &[("decision", "approve")]), 1.0);
    common::assert_no_secret_logged();
}
