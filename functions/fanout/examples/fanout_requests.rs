//! SQS and DynamoDB requests to fan one event out to 100 webhook endpoints:
//! `fanout` handles one `key.created` event (no email) for an account with
//! 100 subscribed endpoints against the emulator, and an SDK interceptor
//! counts every request by operation. Target: at most 12 SQS requests and
//! one query.
//!
//! `cargo run -p fanout --example fanout_requests` (run by `make measure`).

use chrono::Utc;
use nuvem_aws::deliveries::DeliveryQueue;
use nuvem_aws::mail::Mailer;
use nuvem_aws::store::Store;
use nuvem_domain::events::{Envelope, EventType};
use nuvem_testkit::counting::RequestCounter;
use nuvem_testkit::fixtures::{sqs_batch, sqs_message};
use nuvem_testkit::inspect::drain;
use nuvem_testkit::{TestStack, tenants};
use serde_json::json;

const ENDPOINTS: usize = 100;

#[tokio::main]
async fn main() {
    let t = TestStack::new("bench-fanout").await;
    let plain = Store::new(&t.sdk, t.table());
    let account = tenants::active_account(&plain, 1_000_000_000, 0).await;
    let sealer = t.sealer();
    for i in 0..ENDPOINTS {
        let request = json!({
            "url": format!("https://hooks.example.com/nuvem/{i}"),
            "description": format!("receiver {i}"),
            "headers": {"authorization": "Bearer 0123456789abcdef"},
        });
        tenants::webhook_endpoint(&plain, &sealer, &account.id, request, None).await;
    }

    let counter = RequestCounter::default();
    let deliveries_url = t.stack.queue("DeliveriesQueue").url.clone();
    let deps = fanout::Deps {
        store: Store::from_client(counter.dynamodb(&t.sdk), t.table()),
        mailer: Mailer::new(&t.sdk, "nuvem@nuvem.example"),
        deliveries: DeliveryQueue::from_client(counter.sqs(&t.sdk), &deliveries_url),
        outbound: nuvem_aws::whatsapp_jobs::OutboundQueue::from_client(
            counter.sqs(&t.sdk),
            &t.stack.queue("WhatsAppOutboundQueue").url,
        ),
        public_base_url: "https://app.nuvem.example".into(),
        access: nuvem_aws::storage_access::StorageAccess::from_lookup(&t.sdk, &t.env("Fanout"))
            .expect("configuration"),
    };
    let event = Envelope::new(
        EventType::KeyCreated,
        account.id.clone(),
        json!({"key_id": "key_01jd2x4r8ytq3m5n7p9s1v3w5x", "name": "backup", "role": "operator"}),
        Utc::now(),
    );
    let batch = sqs_batch(vec![sqs_message(
        "bench",
        serde_json::to_string(&event).unwrap(),
    )]);

    let started = std::time::Instant::now();
    let answer = fanout::handle(&deps, batch).await;
    let elapsed = started.elapsed();
    assert!(answer.batch_item_failures.is_empty());
    let tasks = drain(&t.sqs, &deliveries_url, 1_000).await;
    assert_eq!(tasks.len(), ENDPOINTS, "one task per endpoint");

    let counts = counter.counts();
    println!(
        "fanout: one event to {ENDPOINTS} subscribed endpoints ({elapsed:?} against the emulator)"
    );
    for (op, n) in &counts {
        println!("  {op:<20} {n}");
    }
    let sqs: u64 = counts
        .iter()
        .filter(|(op, _)| op.starts_with("Send"))
        .map(|(_, n)| n)
        .sum();
    let dynamodb = counter.total() - sqs;
    println!("SQS requests: {sqs} (target <= 12); DynamoDB requests: {dynamodb} (target: 1 query)");
    assert!(sqs <= 12 && dynamodb == 1, "over target");
}
