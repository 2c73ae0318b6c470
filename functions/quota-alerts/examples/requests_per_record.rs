//! DynamoDB requests per S3 record: `quota-alerts` handles 200 S3 records
//! (puts, overwrites and deletes over 40 keys, with real S3's sequencers, 10
//! duplicates) in batches of 10 against the emulator, and an SDK interceptor
//! counts every DynamoDB request by operation.
//!
//! `cargo run -p quota-alerts --example requests_per_record` (run by `make measure`).

use nuvem_aws::Core;
use nuvem_aws::store::Store;
use nuvem_testkit::counting::RequestCounter;
use nuvem_testkit::fixtures::{sqs_batch, sqs_message};
use nuvem_testkit::{TestStack, tenants};
use serde_json::json;

fn notification(bucket: &str, key: &str, put: Option<u64>, sequencer: u64) -> String {
    let (name, object) = match put {
        Some(size) => (
            "ObjectCreated:Put",
            json!({"key": key, "size": size, "sequencer": format!("{sequencer:016X}")}),
        ),
        None => (
            "ObjectRemoved:Delete",
            json!({"key": key, "sequencer": format!("{sequencer:016X}")}),
        ),
    };
    json!({"Records": [{"eventName": name, "s3": {"bucket": {"name": bucket}, "object": object}}]})
        .to_string()
}

#[tokio::main]
async fn main() {
    let t = TestStack::new("bench").await;
    let counter = RequestCounter::default();
    let core = Core {
        store: Store::from_client(counter.dynamodb(&t.sdk), t.table()),
        events: nuvem_aws::queue::EventQueue::new(&t.sdk, t.events_queue()),
    };
    let id = tenants::active_account(&core.store, 1_000_000_000, 0)
        .await
        .id;
    let bucket = tenants::tenant_bucket(&t, &core.store, &id, "bench").await;
    let deps = quota_alerts::Deps { core };

    // 200 records: each key is put, overwritten, and every fourth deleted.
    let mut bodies = Vec::new();
    let mut seq = 1;
    for round in 0..5u64 {
        for key in 0..40u64 {
            let put = if round == 4 && key % 4 == 0 {
                None
            } else {
                Some(1000 + round * 10 + key)
            };
            bodies.push(notification(
                &bucket,
                &format!("backups/{key}.tar"),
                put,
                seq,
            ));
            seq += 1;
        }
    }
    let duplicates: Vec<String> = bodies.iter().step_by(20).cloned().collect();
    let records = bodies.len() + duplicates.len();
    bodies.extend(duplicates);
    counter.clear();
    for (n, chunk) in bodies.chunks(10).enumerate() {
        let records = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| sqs_message(format!("{n}-{i}"), body.clone()))
            .collect();
        let answer = quota_alerts::handle(&deps, sqs_batch(records)).await;
        assert!(answer.batch_item_failures.is_empty());
    }
    let counts = counter.counts();
    let writes: u64 = [
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "TransactWriteItems",
        "BatchWriteItem",
    ]
    .iter()
    .filter_map(|op| counts.get(*op))
    .sum();
    let total: u64 = counts.values().sum();
    println!("quota-alerts: {records} S3 records in batches of 10");
    for (op, n) in &counts {
        println!("  {op:<20} {n}");
    }
    println!(
        "write requests per record: {:.2}; all DynamoDB requests per record: {:.2}",
        writes as f64 / records as f64,
        total as f64 / records as f64
    );
}
