//! Deliveries per second of one `webhook-delivery` instance: 500 tasks for
//! 10 endpoints of one account, handled in batches of 10 (the event
//! source's batch size, one batch after another as one Lambda instance
//! does), each signed and sent to a receiver on 127.0.0.1 that answers 200
//! at once. The DynamoDB and SQS requests per delivery are counted too: the
//! emulator is far slower than DynamoDB, so the rate is a floor.
//!
//! The signed HTTP attempts alone (no DynamoDB, no SQS) are timed as well,
//! ten at a time as a batch runs them: the ceiling the handler would reach
//! with DynamoDB's single-digit-millisecond latency.
//!
//! `cargo run --release -p webhook-delivery --example throughput` (run by `make measure`).

use std::time::Instant;

use aws_lambda_events::sqs::SqsMessage;
use chrono::Utc;
use nuvem_aws::Core;
use nuvem_aws::deliveries::{DeliveryQueue, DeliveryTask};
use nuvem_aws::queue::EventQueue;
use nuvem_aws::store::Store;
use nuvem_aws::webhook::Sender;
use nuvem_domain::events::{Envelope, EventType};
use nuvem_domain::webhook::delivery::delivery_id;
use nuvem_testkit::counting::RequestCounter;
use nuvem_testkit::fixtures::{sqs_batch, sqs_message};
use nuvem_testkit::receiver::Receiver;
use nuvem_testkit::{TestStack, tenants};
use serde_json::json;

const ENDPOINTS: usize = 10;
const DELIVERIES: usize = 500;

#[tokio::main]
async fn main() {
    let t = TestStack::new("bench-delivery").await;
    let receiver = Receiver::start().await;
    let plain = Store::new(&t.sdk, t.table());
    let account = tenants::active_account(&plain, 1_000_000_000, 0).await;
    let sealer = t.sealer();
    let mut endpoints = Vec::new();
    for i in 0..ENDPOINTS {
        let request = json!({"url": receiver.url(&format!("/hook/{i}"))});
        let endpoint = tenants::webhook_endpoint(&plain, &sealer, &account.id, request, None).await;
        endpoints.push(endpoint.id.clone());
    }
    let counter = RequestCounter::default();
    let url = t.stack.queue("DeliveriesQueue").url.clone();
    let deps = webhook_delivery::Deps {
        core: Core {
            store: Store::from_client(counter.dynamodb(&t.sdk), t.table()),
            events: EventQueue::new(&t.sdk, t.events_queue()),
        },
        queue: DeliveryQueue::from_client(counter.sqs(&t.sdk), &url),
        sender: Sender::new(true),
        sealer: sealer.clone(),
    };
    let records: Vec<SqsMessage> = (0..DELIVERIES)
        .map(|i| {
            let event = Envelope::new(
                EventType::KeyCreated,
                account.id.clone(),
                json!({"key_id": format!("key_{i}"), "role": "operator"}),
                Utc::now(),
            );
            let endpoint_id = &endpoints[i % ENDPOINTS];
            let task = DeliveryTask {
                delivery_id: delivery_id(&event.id, endpoint_id),
                endpoint_id: endpoint_id.clone(),
                attempt: 1,
                not_before: None,
                event,
            };
            sqs_message(format!("m{i}"), serde_json::to_string(&task).unwrap())
        })
        .collect();

    let started = Instant::now();
    for chunk in records.chunks(10) {
        let answer = webhook_delivery::handle(&deps, sqs_batch(chunk.to_vec())).await;
        assert!(answer.batch_item_failures.is_empty());
    }
    let elapsed = started.elapsed();
    assert_eq!(receiver.received().len(), DELIVERIES);

    println!(
        "webhook-delivery: {DELIVERIES} deliveries to {ENDPOINTS} endpoints on 127.0.0.1 in batches of 10: {elapsed:.2?}, {:.0} deliveries/s against the emulator",
        DELIVERIES as f64 / elapsed.as_secs_f64()
    );
    for (op, n) in counter.counts() {
        println!(
            "  {op:<20} {:.2} per delivery",
            n as f64 / DELIVERIES as f64
        );
    }

    // The HTTP part alone: sign, send, read the answer; ten at a time.
    let endpoint = plain
        .get_endpoint(&account.id, &endpoints[0])
        .await
        .unwrap()
        .unwrap();
    let event = Envelope::new(
        EventType::KeyCreated,
        account.id.clone(),
        json!({"key_id": "key_1", "role": "operator"}),
        Utc::now(),
    );
    let secrets = nuvem_aws::webhook::secrets::open(&deps.sealer, &endpoint, Utc::now())
        .await
        .unwrap();
    const ATTEMPTS: usize = 5_000;
    let started = Instant::now();
    for _ in 0..ATTEMPTS / 10 {
        let attempts = (0..10).map(|_| {
            nuvem_aws::webhook::attempt(
                &deps.sender,
                &endpoint,
                &secrets,
                &event,
                "dlv_x",
                1,
                Utc::now(),
            )
        });
        for attempted in futures::future::join_all(attempts).await {
            assert_eq!(attempted.record.response_status, Some(200));
        }
    }
    let elapsed = started.elapsed();
    println!(
        "signed HTTP attempts alone, 10 concurrent: {ATTEMPTS} in {elapsed:.2?}, {:.0} attempts/s",
        ATTEMPTS as f64 / elapsed.as_secs_f64()
    );
}
