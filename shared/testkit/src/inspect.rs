//! Reading the emulator's state back, to assert what was (not) stored or sent.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub type Item = HashMap<String, AttributeValue>;

/// Every item of a (test-sized) table.
pub async fn scan_all(db: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = db
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// The partition keys of a table's items, sorted: a readable picture of what a test stored.
pub async fn partition_keys(db: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let mut keys: Vec<String> = scan_all(db, table)
        .await
        .iter()
        .filter_map(|i| i.get("pk").and_then(|v| v.as_s().ok()).cloned())
        .collect();
    keys.sort();
    keys
}

/// Drains up to `max` messages currently in a queue (deleting them).
pub async fn drain(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max: usize,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    while all.len() < max {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive");
        let batch = out.messages.unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        for m in &batch {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        all.extend(batch);
    }
    all
}

/// The `id`s of a listing page's `items`, in order (panics on another shape).
pub fn item_ids(page: &serde_json::Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("a page of items")
        .iter()
        .map(|item| item["id"].as_str().expect("an item id"))
        .collect()
}
