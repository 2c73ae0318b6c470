//! Committed events whose send failed are sent by the relay, once.

use chrono::{Duration, Utc};
use nuvem_aws::Core;
use nuvem_testkit::TestStack;
use nuvem_testkit::fixtures::{http_event, reply, with_json};
use nuvem_testkit::inspect::drain;
use serde_json::{Value, json};

/// Signs up through the real handler with the given events queue.
async fn sign_up(core: &Core, document: &str, email: &str) -> String {
    let deps = signup::Deps {
        core: core.clone(),
        per_address_per_hour: 100,
    };
    let body = json!({"organization_name": "Mercado Bom Preço", "document": document,
        "phone": "(85) 3222-1100", "email": email, "imperius_licenses": 0});
    let (status, _, answer) =
        reply(&signup::handle(&deps, with_json(http_event("signup/signup.json"), &body)).await);
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_event_whose_send_failed_is_relayed_once_after_the_grace_period() {
    let t = TestStack::new("relay").await;
    let env = t.env("OutboxRelay");
    let core = Core::from_lookup(&t.sdk, &env).unwrap();
    // The same function with a queue that does not exist: every send fails.
    let broken = Core::from_lookup(&t.sdk, &|name: &str| match name {
        "EVENTS_QUEUE_URL" => Some(format!("{}-gone", t.events_queue())),
        other => env(other),
    })
    .unwrap();

    let lost = sign_up(&broken, "529.982.247-25", "lost@example.com").await;
    let sent = sign_up(&core, "11.222.333/0001-81", "sent@example.com").await;
    let queued: Vec<Value> = drain(&t.sqs, t.events_queue(), 10)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["account_id"], sent.as_str());

    let deps = outbox_relay::Deps { core };
    // Within the grace period the writer may still be sending: leave it.
    assert_eq!(outbox_relay::handle(&deps, Utc::now()).await.sent, 0);

    let later = Utc::now() + outbox_relay::GRACE + Duration::seconds(1);
    let report = outbox_relay::handle(&deps, later).await;
    assert_eq!((report.sent, report.failed), (1, 0));
    let relayed = drain(&t.sqs, t.events_queue(), 10).await;
    assert_eq!(relayed.len(), 1);
    let event: Value = serde_json::from_str(relayed[0].body().unwrap()).unwrap();
    assert_eq!(event["type"], "account.signed_up");
    assert_eq!(event["account_id"], lost.as_str());

    // Relayed once: the outbox is empty now.
    assert_eq!(outbox_relay::handle(&deps, later).await.sent, 0);
    assert!(drain(&t.sqs, t.events_queue(), 10).await.is_empty());
}
