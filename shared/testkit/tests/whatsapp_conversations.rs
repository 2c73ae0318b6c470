//! WhatsApp conversations and messages in the table, against the emulator:
//! one conversation per person whichever identifier comes first, one
//! message per `wamid` however often it is delivered, and delivery states
//! that end as if every status had arrived once and in order — under
//! shuffled, duplicated and concurrent deliveries.

use chrono::{DateTime, TimeZone, Utc};
use futures::future::join_all;
use nuvem_aws::store::{ConversationEntry, Direction, NewMessage, Store};
use nuvem_domain::whatsapp::identity::CustomerIds;
use nuvem_domain::whatsapp::status::{DeliveryStatus, StatusUpdate, fold_statuses};
use nuvem_domain::whatsapp::webhook::ErrorDetail;
use nuvem_testkit::{TestStack, tenants};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

const STORE: &str = "st_01jbm7x0000000000000000000";

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + seconds, 0).unwrap()
}

#[tokio::test]
async fn one_person_is_one_conversation_and_a_message_is_stored_once() {
    let t = TestStack::new("wa-conv").await;
    let db = Store::new(&t.sdk, t.table());
    let account = tenants::active_account(&db, 1_000, 0).await.id;
    let other = tenants::active_account(&db, 1_000, 0).await.id;

    let phone_only = CustomerIds::new(Some("5511987654321"), None);
    let both = CustomerIds::new(Some("5511987654321"), Some("BR.1234567890"));
    let bsuid_only = CustomerIds::new(None, Some("BR.1234567890"));

    let first = db
        .resolve_conversation(&account, STORE, &phone_only, Some("Ana"), at(0))
        .await
        .unwrap()
        .unwrap();
    let linked = db
        .resolve_conversation(&account, STORE, &both, None, at(10))
        .await
        .unwrap()
        .unwrap();
    let by_bsuid = db
        .resolve_conversation(&account, STORE, &bsuid_only, None, at(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(linked.id, first.id);
    assert_eq!(
        by_bsuid.id, first.id,
        "the BSUID was linked to the phone's conversation"
    );

    // Concurrent first messages of a new person: one conversation.
    let newcomer = CustomerIds::new(None, Some("BR.999"));
    let racing =
        join_all((0..4).map(|_| db.resolve_conversation(&account, STORE, &newcomer, None, at(30))))
            .await;
    let ids: std::collections::BTreeSet<String> =
        racing.into_iter().map(|c| c.unwrap().unwrap().id).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(!ids.contains(&first.id));

    // The same customer key under another account's store id is not theirs.
    assert!(
        db.resolve_conversation(&other, STORE, &phone_only, None, at(40))
            .await
            .unwrap()
            .is_none()
    );

    // Messages: stored once, listed in time order, the window kept at the
    // customer's latest message whatever order they arrive in.
    let messages = [("wamid.B", 200), ("wamid.A", 100), ("wamid.C", 300)];
    for round in 0..2 {
        for (wamid, second) in messages {
            let recorded = db
                .record_message(&NewMessage {
                    wamid,
                    direction: Direction::Inbound,
                    conversation: &first,
                    sent_at: at(second),
                    content: json!({"type": "text", "text": wamid}),
                    event: None,
                })
                .await
                .unwrap();
            assert_eq!(recorded, round == 0, "{wamid} in round {round}");
        }
    }
    let listed = db
        .conversation_entries(&first.id, None, 10, None)
        .await
        .unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|e| match e {
                ConversationEntry::Message(m) => m.wamid.as_str(),
                ConversationEntry::Pending(p) => p.id.as_str(),
            })
            .collect::<Vec<_>>(),
        vec!["wamid.A", "wamid.B", "wamid.C"]
    );
    assert!(
        !db.record_message(&NewMessage {
            wamid: "wamid.A",
            direction: Direction::Inbound,
            conversation: &first,
            sent_at: at(100),
            content: json!({"type": "text", "text": "changed"}),
            event: None,
        })
        .await
        .unwrap(),
        "a re-sent message is not stored again"
    );
    let a = db.get_message("wamid.A").await.unwrap().unwrap();
    assert_eq!(a.content, Some(json!({"type": "text", "text": "wamid.A"})));
    let conversation = db
        .get_conversation(&account, STORE, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.last_customer_at, Some(at(300)));
    assert_eq!(conversation.last_activity_at, at(300));
    let page = db
        .list_conversations(&account, STORE, None, 10, None)
        .await
        .unwrap();
    assert_eq!(page.items[0].id, first.id, "most recent activity first");
}

fn status(wamid: &str, status: &str, second: i64, code: Option<i64>) -> StatusUpdate {
    StatusUpdate {
        id: wamid.to_owned(),
        status: DeliveryStatus::parse(status),
        timestamp: 1_780_000_000 + second,
        recipient_id: Some("5511987654321".into()),
        recipient_user_id: None,
        recipient_parent_user_id: None,
        conversation: None,
        pricing: None,
        errors: code
            .map(|code| ErrorDetail {
                code,
                title: Some("failed".into()),
                message: None,
                details: None,
                href: None,
            })
            .into_iter()
            .collect(),
        biz_opaque_callback_data: None,
    }
}

/// Statuses of three sent messages as Meta would report them in order.
fn history() -> Vec<StatusUpdate> {
    vec![
        status("wamid.out1", "sent", 1, None),
        status("wamid.out1", "delivered", 2, None),
        status("wamid.out1", "read", 5, None),
        status("wamid.out2", "sent", 1, None),
        status("wamid.out2", "failed", 3, Some(131047)),
        status("wamid.out3", "sent", 2, None),
        status("wamid.out3", "delivered", 4, None),
        status("wamid.out3", "played", 9, None),
    ]
}

#[test]
fn delivery_states_end_as_if_delivered_once_in_order() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_stack, db, account) = rt.block_on(async {
        let t = TestStack::new("wa-status").await;
        let db = Store::new(&t.sdk, t.table());
        let account = tenants::active_account(&db, 1_000, 0).await.id;
        (t, db, account)
    });
    let expected: Vec<_> = ["wamid.out1", "wamid.out2", "wamid.out3"]
        .iter()
        .map(|w| {
            fold_statuses(history().iter().filter(|s| s.id == *w))
                .expect("every message has statuses")
        })
        .collect();

    // Each case: the history with some statuses repeated, shuffled, applied
    // in concurrent waves, the message itself recorded halfway through.
    let strategy = (
        proptest::collection::vec(0..history().len(), 0..6),
        any::<u64>(),
        1usize..4,
    );
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&strategy, |(repeats, seed, wave)| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let prefix = format!("c{case}-");
            let mut deliveries: Vec<StatusUpdate> = history()
                .into_iter()
                .chain(repeats.iter().map(|&i| history()[i].clone()))
                .map(|mut s| {
                    s.id = format!("{prefix}{}", s.id);
                    s
                })
                .collect();
            shuffle(&mut deliveries, seed);
            rt.block_on(async {
                let conversation = db
                    .resolve_conversation(
                        &account,
                        STORE,
                        &CustomerIds::new(Some(&format!("55119{case:08}")), None),
                        None,
                        at(0),
                    )
                    .await
                    .unwrap()
                    .unwrap();
                let half = deliveries.len() / 2;
                for (i, chunk) in deliveries.chunks(wave).enumerate() {
                    if i * wave >= half && i * wave < half + wave {
                        let wamid = format!("{prefix}wamid.out1");
                        db.record_message(&NewMessage {
                            wamid: &wamid,
                            direction: Direction::Outbound,
                            conversation: &conversation,
                            sent_at: at(1),
                            content: json!({"type": "text", "text": "Olá"}),
                            event: None,
                        })
                        .await
                        .unwrap();
                    }
                    for state in
                        join_all(chunk.iter().map(|s| db.apply_status(s, |_, _| None))).await
                    {
                        state.unwrap();
                    }
                }
                for (w, want) in ["wamid.out1", "wamid.out2", "wamid.out3"]
                    .iter()
                    .zip(&expected)
                {
                    let stored = db
                        .get_message(&format!("{prefix}{w}"))
                        .await
                        .unwrap()
                        .unwrap();
                    prop_assert_eq!(stored.delivery.as_ref(), Some(want), "{}", w);
                }
                let out1 = db
                    .get_message(&format!("{prefix}wamid.out1"))
                    .await
                    .unwrap()
                    .unwrap();
                prop_assert_eq!(out1.direction, Some(Direction::Outbound));
                prop_assert_eq!(
                    out1.conversation_id.as_deref(),
                    Some(conversation.id.as_str())
                );
                Ok(())
            })
        })
        .unwrap();
    let read = &expected[0];
    assert_eq!(read.status, DeliveryStatus::Read);
    assert_eq!(expected[1].status, DeliveryStatus::Failed);
    assert_eq!(
        expected[1]
            .failure
            .as_ref()
            .and_then(|f| f.error.as_ref())
            .map(|e| e.code),
        Some(131047)
    );
}

/// A Fisher–Yates shuffle from a seed (proptest shrinks the seed).
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (seed >> 33) as usize % (i + 1);
        items.swap(i, j);
    }
}
