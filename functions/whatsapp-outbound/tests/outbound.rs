//! `whatsapp-outbound` against the emulator and a fake Graph API that
//! answers with Meta's documented errors: one Graph call per message
//! however often its job comes, throttling retried later and given up
//! after ten attempts, refusals recorded with Meta's error and told once,
//! token and block errors that stop the number, and senders that died
//! mid-call never repeated.

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use nuvem_aws::Core;
use nuvem_aws::graph::{GraphClient, GraphConfig};
use nuvem_aws::store::{ConversationEntry, OutboundRecord, StoreRecord};
use nuvem_aws::whatsapp_jobs::{OutboundJob, OutboundQueue};
use nuvem_domain::whatsapp::graph_error::{MAX_SEND_ATTEMPTS, retry_delay_secs};
use nuvem_domain::whatsapp::identity::{CustomerIds, Recipient};
use nuvem_domain::whatsapp::outbound::{self, Origin, OutboundContent, OutboundState};
use nuvem_domain::whatsapp::store::NumberStatus;
use nuvem_testkit::fake_graph::{Call, FakeGraph, GraphReply};
use nuvem_testkit::inspect::drain;
use nuvem_testkit::{TestStack, tenants};
use serde_json::Value;
use whatsapp_outbound::{CLAIM_EXPIRY, Deps, send};

const NUMBER: &str = "106540352242922";
const TOKEN: &str = "EAAGm0PX4ZCpsBAKv9ZBtoken";

struct World {
    t: TestStack,
    deps: Deps,
    graph: FakeGraph,
    account: String,
    store: StoreRecord,
}

async fn world() -> World {
    let t = TestStack::new("wa-outbound").await;
    let env = t.env("WhatsappOutbound");
    let core = Core::from_lookup(&t.sdk, &env).unwrap();
    let sealer = t.sealer();
    let account = tenants::active_account(&core.store, 1_000, 0).await.id;
    let store = tenants::whatsapp_store_with_connected_number(
        &core.store,
        &sealer,
        &account,
        NUMBER,
        TOKEN,
    )
    .await;
    let graph = FakeGraph::start().await;
    graph.add_number(NUMBER, TOKEN, "+55 11 98765-4321", "Cantina da Nonna");
    let deps = Deps {
        core,
        sealer,
        graph: GraphClient::new(
            GraphConfig::new(&graph.url(), "v26.0", Duration::from_secs(2)).unwrap(),
        ),
        queue: OutboundQueue::new(&t.sdk, env("OUTBOUND_QUEUE_URL").unwrap()),
    };
    World {
        t,
        deps,
        graph,
        account,
        store,
    }
}

impl World {
    /// A text to `to`, recorded `queued` as the API leaves it; its job.
    async fn queued(&self, text: &str) -> (OutboundRecord, OutboundJob) {
        let store = &self.deps.core.store;
        let now = Utc::now();
        let conversation = store
            .resolve_conversation(
                &self.account,
                &self.store.id,
                &CustomerIds::new(Some("5511912345678"), None),
                None,
                now,
            )
            .await
            .unwrap()
            .unwrap();
        let record = OutboundRecord::queued(
            outbound::new_outbound_id(),
            &conversation,
            NUMBER,
            Recipient::Phone("5511912345678".into()),
            OutboundContent::Text { body: text.into() },
            Origin::Api,
            now,
        );
        assert!(store.create_outbound(&record).await.unwrap());
        let job = OutboundJob {
            account_id: self.account.clone(),
            outbound_id: record.id.clone(),
            attempt: 1,
        };
        (record, job)
    }

    async fn record(&self, id: &str) -> OutboundRecord {
        self.deps
            .core
            .store
            .get_outbound(&self.account, id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn run(&self, job: &OutboundJob) {
        send(&self.deps, job, None, Utc::now()).await.unwrap();
    }

    fn jobs_queue(&self) -> &str {
        &self.t.stack.queue("WhatsAppOutboundQueue").url
    }

    /// Jobs waiting in the outbound queue, visible or delayed (which of
    /// the two depends on how long the test took, so only the sum counts).
    async fn jobs_waiting(&self) -> i64 {
        let out = self
            .t
            .sqs
            .get_queue_attributes()
            .queue_url(self.jobs_queue())
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attr = |name| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .map_or(0, |v| v.parse().unwrap())
        };
        attr(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + attr(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
    }

    /// The types of the events queued since the last call.
    async fn events(&self) -> Vec<(String, Value)> {
        drain(&self.t.sqs, self.t.events_queue(), 100)
            .await
            .into_iter()
            .map(|m| {
                let e: Value = serde_json::from_str(m.body().unwrap()).unwrap();
                (e["type"].as_str().unwrap().to_owned(), e["data"].clone())
            })
            .collect()
    }
}

#[tokio::test]
async fn a_message_is_sent_once_however_often_its_job_comes() {
    let w = world().await;
    let (record, job) = w.queued("Seu pedido saiu para entrega 🛵").await;
    join_all((0..4).map(|_| send(&w.deps, &job, None, Utc::now()))).await;
    w.run(&job).await;
    let sends = w.graph.sends();
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0].to(), Some("5511912345678"));
    assert_eq!(sends[0].text(), Some("Seu pedido saiu para entrega 🛵"));
    assert_eq!(sends[0].bearer(), Some(TOKEN));
    let sent = w.record(&record.id).await;
    assert_eq!(sent.state, OutboundState::Sent);
    let wamid = sent.wamid.unwrap();
    // The message item its statuses update, in the conversation.
    let message = w
        .deps
        .core
        .store
        .get_message(&wamid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        message.conversation_id.as_deref(),
        Some(record.conversation_id.as_str())
    );
    assert_eq!(
        message.content.unwrap()["text"]["body"],
        "Seu pedido saiu para entrega 🛵"
    );
    let page = w
        .deps
        .core
        .store
        .conversation_entries(&record.conversation_id, None, 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "listed once, as the sent message");
    assert!(
        matches!(&page.items[0], ConversationEntry::Message(m) if m.wamid == wamid && m.origin == Some(Origin::Api)),
        "{:?}",
        page.items
    );
    assert!(w.events().await.is_empty());
}

#[tokio::test]
async fn throttled_sends_come_back_later_and_stale_jobs_do_nothing() {
    let w = world().await;
    let (record, job) = w.queued("Promoção de hoje").await;
    w.graph
        .script(NUMBER, [GraphReply::rate_limited().on(Call::Send)]);
    w.run(&job).await;
    let waiting = w.record(&record.id).await;
    assert_eq!(waiting.state, OutboundState::Queued);
    assert_eq!(waiting.attempt, 2);
    assert_eq!(waiting.error.as_ref().unwrap()["code"], 130429);
    // The next attempt is queued, not before the first retry delay (SQS
    // holds the job that long; the record says when).
    assert_eq!(w.jobs_waiting().await, 1);
    assert_eq!(
        waiting.not_before.unwrap() - waiting.updated_at,
        chrono::Duration::seconds(i64::from(retry_delay_secs(1)))
    );
    // The first job again (SQS redelivered it, maybe because queueing the
    // next attempt failed): no call; the next attempt queued again, still
    // delayed (a duplicate job of one attempt finds it claimed).
    w.run(&job).await;
    assert_eq!(w.graph.sends().len(), 1);
    assert_eq!(w.jobs_waiting().await, 2);
    let next = OutboundJob {
        attempt: 2,
        ..job.clone()
    };
    w.run(&next).await;
    let sent = w.record(&record.id).await;
    assert_eq!(sent.state, OutboundState::Sent);
    assert!(sent.error.is_none());
    assert_eq!(w.graph.sends().len(), 2);
}

#[tokio::test]
async fn a_message_still_throttled_after_ten_attempts_fails() {
    let w = world().await;
    let (record, job) = w.queued("Oi").await;
    w.graph.script(
        NUMBER,
        (0..MAX_SEND_ATTEMPTS).map(|i| {
            if i % 2 == 0 {
                GraphReply::rate_limited().on(Call::Send)
            } else {
                GraphReply::server_error(503).on(Call::Send)
            }
        }),
    );
    for attempt in 1..=MAX_SEND_ATTEMPTS {
        w.run(&OutboundJob {
            attempt,
            ..job.clone()
        })
        .await;
    }
    assert_eq!(w.graph.sends().len(), MAX_SEND_ATTEMPTS as usize);
    let failed = w.record(&record.id).await;
    assert_eq!(failed.state, OutboundState::Failed);
    assert_eq!(failed.attempt, MAX_SEND_ATTEMPTS);
    let events = w.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "whatsapp.message.failed");
    assert_eq!(events[0].1["message_id"], record.id.as_str());
}

#[tokio::test]
async fn refusals_fail_the_message_with_metas_error_once() {
    let w = world().await;
    for (reply, code) in [
        (GraphReply::outside_window(), 131047),
        (GraphReply::code(131026), 131026),
        (GraphReply::code(131048), 131048),
        (GraphReply::code(131049), 131049),
        (GraphReply::code(130472), 130472),
    ] {
        let (record, job) = w.queued("Olá de novo").await;
        w.graph.script(NUMBER, [reply.on(Call::Send)]);
        w.run(&job).await;
        w.run(&job).await;
        let failed = w.record(&record.id).await;
        assert_eq!(failed.state, OutboundState::Failed, "{code}");
        assert_eq!(failed.error.unwrap()["code"], code);
        let events = w.events().await;
        assert_eq!(events.len(), 1, "{code}: {events:?}");
        assert_eq!(events[0].1["error"]["code"], code);
        assert_eq!(events[0].1["recipient"]["wa_id"], "5511912345678");
    }
    assert_eq!(w.graph.sends().len(), 5);
    assert_eq!(w.jobs_waiting().await, 0, "nothing retried");
}

#[tokio::test]
async fn token_and_block_errors_stop_the_number() {
    for (reply, code) in [
        (GraphReply::token_expired(), 190),
        (GraphReply::blocked(), 368),
    ] {
        let w = world().await;
        let (record, job) = w.queued("Seu pedido").await;
        let (after, after_job) = w.queued("Outro pedido").await;
        w.graph.script(NUMBER, [reply.on(Call::Send)]);
        w.run(&job).await;
        assert_eq!(w.record(&record.id).await.state, OutboundState::Failed);
        let number = w
            .deps
            .core
            .store
            .get_whatsapp_number(
                &w.account,
                &w.store.id,
                nuvem_domain::whatsapp::store::Slot::new(1).unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(number.status, NumberStatus::Error { code: c, .. } if c == code),
            "{:?}",
            number.status
        );
        let mut types: Vec<String> = w.events().await.into_iter().map(|(t, _)| t).collect();
        types.sort();
        assert_eq!(
            types,
            ["whatsapp.message.failed", "whatsapp.number.status_changed"]
        );
        // Nothing more goes out from it.
        w.run(&after_job).await;
        let stopped = w.record(&after.id).await;
        assert_eq!(stopped.state, OutboundState::Failed);
        assert_eq!(stopped.error.unwrap()["reason"], "number_unavailable");
        assert_eq!(w.graph.sends().len(), 1, "{code}");
    }
}

#[tokio::test]
async fn a_sender_that_died_mid_call_is_never_repeated() {
    let w = world().await;
    let (record, job) = w.queued("Oi").await;
    let now = Utc::now();
    assert!(
        w.deps
            .core
            .store
            .claim_outbound(&record, None, now)
            .await
            .unwrap()
    );
    // Its sender may still be calling: the job comes back later.
    assert!(
        send(&w.deps, &job, None, now + chrono::Duration::seconds(5))
            .await
            .is_err()
    );
    // Past the function's timeout it is dead: outcome unknown, not resent.
    send(
        &w.deps,
        &job,
        None,
        now + CLAIM_EXPIRY + chrono::Duration::seconds(1),
    )
    .await
    .unwrap();
    let failed = w.record(&record.id).await;
    assert_eq!(failed.state, OutboundState::Failed);
    assert_eq!(failed.error.unwrap()["reason"], "outcome_unknown");
    assert!(w.graph.sends().is_empty());
    assert_eq!(w.events().await.len(), 1);
}

/// The claim names the job message whose delivery sends: another job for
/// the same message (a bot's repeated reply job) is acknowledged while the
/// sender works, and the sender's own job received again (its invocation
/// died) records the outcome unknown at once instead of after the expiry.
#[tokio::test]
async fn other_jobs_leave_a_message_to_its_sender_and_its_own_job_ends_it() {
    use nuvem_aws::idempotency::Delivery;
    let w = world().await;
    let (record, job) = w.queued("Oi de novo").await;
    let now = Utc::now();
    let sender = Delivery {
        message_id: "job-1",
        receive_count: 1,
    };
    assert!(
        w.deps
            .core
            .store
            .claim_outbound(&record, Some(&sender.claimed_by()), now)
            .await
            .unwrap()
    );
    let at = now + chrono::Duration::seconds(5);
    let other = Delivery {
        message_id: "job-2",
        receive_count: 1,
    };
    send(&w.deps, &job, Some(other), at).await.unwrap();
    assert!(
        send(&w.deps, &job, Some(sender), at).await.is_err(),
        "a second copy of the sender's receive waits"
    );
    assert_eq!(w.record(&record.id).await.state, OutboundState::Sending);

    let again = Delivery {
        message_id: "job-1",
        receive_count: 2,
    };
    send(&w.deps, &job, Some(again), at).await.unwrap();
    let failed = w.record(&record.id).await;
    assert_eq!(failed.state, OutboundState::Failed);
    assert_eq!(failed.error.unwrap()["reason"], "outcome_unknown");
    assert!(w.graph.sends().is_empty());
}

/// A job whose body can never be read is not retried: it goes to the
/// dead-letter queue at once, as it came. Where that queue cannot be
/// reached, it is failed instead, and SQS's redrive takes it there later.
#[tokio::test]
async fn unreadable_jobs_go_to_the_dead_letter_queue_at_once() {
    use nuvem_aws::runtime::{DeadLetterQueue, set_aside};
    use std::sync::OnceLock;
    let w = world().await;
    let batch = || {
        nuvem_testkit::fixtures::sqs_batch(vec![
            nuvem_testkit::fixtures::sqs_message("m1", r#"{"account_id": "acc_1"}"#),
            nuvem_testkit::fixtures::sqs_message("m2", "not json"),
        ])
    };
    let dlq = w.t.stack.queue("WhatsAppOutboundDLQ").url.clone();
    let response = whatsapp_outbound::handle(&w.deps, batch()).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "neither is retried"
    );
    let queue = OnceLock::from(Some(DeadLetterQueue::new(&w.t.sdk, &dlq)));
    let response = set_aside(response, &queue).await;
    assert!(response.batch_item_failures.is_empty());
    let mut bodies: Vec<String> = drain(&w.t.sqs, &dlq, 10)
        .await
        .iter()
        .map(|m| m.body().unwrap().to_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["not json", r#"{"account_id": "acc_1"}"#]);

    let response = whatsapp_outbound::handle(&w.deps, batch()).await;
    let failed = nuvem_testkit::fixtures::failed_ids_without_dead_letter_queue(response).await;
    assert_eq!(failed, ["m1", "m2"]);
}
