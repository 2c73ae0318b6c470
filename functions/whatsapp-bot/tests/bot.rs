//! `whatsapp-bot` against the emulator, a fake Graph API and a fake
//! chat-completions API with OpenRouter's errors: one reply per message
//! however often its job comes, silence where the bot must not answer,
//! the reply limit and a switched-off bot handing the conversation to a
//! person once, model failures, and a person giving it back.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::graph::{GraphClient, GraphConfig};
use nuvem_aws::store::{ConversationRecord, Direction, NewMessage, OutboundRecord, StoreRecord};
use nuvem_aws::whatsapp_jobs::{BotJob, OutboundQueue};
use nuvem_aws::{Core, table_keys};
use nuvem_domain::whatsapp::bot::{BotDecision, HandoffReason, SkipReason};
use nuvem_domain::whatsapp::identity::{CustomerIds, Recipient};
use nuvem_domain::whatsapp::outbound::{self, Origin, OutboundContent};
use nuvem_domain::whatsapp::store::{DEFAULT_FALLBACK_PT_BR, StorePatch};
use nuvem_testkit::fake_chat::{ChatReply, FakeChat};
use nuvem_testkit::fake_graph::FakeGraph;
use nuvem_testkit::inspect::drain;
use nuvem_testkit::{TestStack, tenants};
use serde_json::{Value, json};
use whatsapp_bot::{Chat, Deps, Outcome, decide_and_act};

const NUMBER: &str = "106540352242922";
const TOKEN: &str = "EAAGm0PX4ZCpsBAKv9ZBtoken";
const CHAT_KEY: &str = "sk-or-v1-test";
const CUSTOMER: &str = "5511912345678";

struct World {
    t: TestStack,
    deps: Deps,
    graph: FakeGraph,
    chat: FakeChat,
    account: String,
    store: StoreRecord,
}

async fn world() -> World {
    let t = TestStack::new("wa-bot").await;
    t.stack
        .put_secret(
            t.emulator,
            "ChatApiSecret",
            &json!({"api_key": CHAT_KEY}).to_string(),
        )
        .await
        .unwrap();
    let chat = FakeChat::start(CHAT_KEY).await;
    let graph = FakeGraph::start().await;
    graph.add_number(NUMBER, TOKEN, "+55 11 98765-4321", "Cantina da Nonna");
    let env = t.env("WhatsappBot");
    let chat_url = chat.url();
    let lookup = move |name: &str| match name {
        "CHAT_API_URL" => Some(chat_url.clone()),
        other => env(other),
    };
    let core = Core::from_lookup(&t.sdk, &lookup).unwrap();
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
    let deps = Deps {
        chat: Chat::from_lookup(
            &lookup,
            DeploymentSecret::from_lookup(&t.sdk, &lookup, "CHAT_SECRET_ARN").unwrap(),
        )
        .unwrap(),
        core,
        sealer,
        graph: GraphClient::new(
            GraphConfig::new(&graph.url(), "v26.0", Duration::from_secs(2)).unwrap(),
        ),
        outbound: OutboundQueue::new(&t.sdk, lookup("OUTBOUND_QUEUE_URL").unwrap()),
    };
    World {
        t,
        deps,
        graph,
        chat,
        account,
        store,
    }
}

impl World {
    /// A customer's message as the webhook records it, and the bot's job.
    async fn customer_says(
        &self,
        ids: CustomerIds,
        content: Value,
        at: DateTime<Utc>,
    ) -> (ConversationRecord, BotJob) {
        let store = &self.deps.core.store;
        let conversation = store
            .resolve_conversation(&self.account, &self.store.id, &ids, Some("Ana"), at)
            .await
            .unwrap()
            .unwrap();
        let wamid = format!("wamid.{}", nuvem_domain::ids::new_id("in"));
        assert!(
            store
                .record_message(&NewMessage {
                    wamid: &wamid,
                    direction: Direction::Inbound,
                    conversation: &conversation,
                    sent_at: at,
                    content,
                    event: None,
                })
                .await
                .unwrap()
        );
        let job = BotJob {
            account_id: self.account.clone(),
            store_id: self.store.id.clone(),
            conversation_id: conversation.id.clone(),
            phone_number_id: NUMBER.into(),
            wamid,
        };
        (conversation, job)
    }

    async fn text(&self, text: &str) -> BotJob {
        self.customer_says(
            CustomerIds::new(Some(CUSTOMER), None),
            json!({"type": "text", "text": {"body": text}}),
            Utc::now(),
        )
        .await
        .1
    }

    async fn run(&self, job: &BotJob) -> Outcome {
        decide_and_act(&self.deps, job, Utc::now()).await.unwrap()
    }

    async fn reply_to(&self, job: &BotJob) -> Option<OutboundRecord> {
        self.deps
            .core
            .store
            .get_outbound(&self.account, &outbound::reply_id(&job.wamid))
            .await
            .unwrap()
    }

    async fn conversation(&self, id: &str) -> ConversationRecord {
        self.deps
            .core
            .store
            .get_conversation(&self.account, &self.store.id, id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn settings(&self, patch: Value) {
        let patch: StorePatch = serde_json::from_value(patch).unwrap();
        let settings = patch.apply(&self.store.settings).unwrap();
        self.deps
            .core
            .store
            .update_whatsapp_store(&self.account, &self.store.id, &settings, Utc::now())
            .await
            .unwrap()
            .unwrap();
    }

    /// Send jobs queued for `whatsapp-outbound`, by message id.
    async fn send_jobs(&self) -> Vec<String> {
        drain(
            &self.t.sqs,
            &self.t.stack.queue("WhatsAppOutboundQueue").url,
            100,
        )
        .await
        .into_iter()
        .map(|m| {
            serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["outbound_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
    }

    async fn handoffs(&self) -> Vec<Value> {
        drain(&self.t.sqs, self.t.events_queue(), 100)
            .await
            .into_iter()
            .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap())
            .filter(|e| e["type"] == "whatsapp.conversation.handoff")
            .map(|e| e["data"].clone())
            .collect()
    }
}

fn text_of(r: &OutboundRecord) -> &str {
    match &r.message {
        OutboundContent::Text { body } => body,
        other => panic!("not a text: {other:?}"),
    }
}

#[tokio::test]
async fn one_reply_per_message_however_often_its_job_comes() {
    let w = world().await;
    let job = w.text("Vocês entregam hoje?").await;
    assert_eq!(w.run(&job).await, Outcome::Decided(BotDecision::Reply));
    for _ in 0..3 {
        assert_eq!(w.run(&job).await, Outcome::AlreadyAnswered);
    }
    assert_eq!(w.chat.requests().len(), 1, "the model is asked once");
    let reply = w.reply_to(&job).await.unwrap();
    assert_eq!(text_of(&reply), "Resposta: Vocês entregam hoje?");
    assert_eq!(reply.origin, Origin::Bot);
    assert_eq!(reply.reply_to.as_deref(), Some(job.wamid.as_str()));
    assert_eq!(reply.to, Recipient::Phone(CUSTOMER.into()));
    assert_eq!(reply.phone_number_id, NUMBER);
    // Queued for sending (again by each later job: the sender claims once).
    let jobs = w.send_jobs().await;
    assert!(
        !jobs.is_empty() && jobs.iter().all(|id| *id == reply.id),
        "{jobs:?}"
    );
    // The model read the store's prompt and the question last.
    let request = &w.chat.requests()[0];
    let messages = request.body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("Cantina da Nonna")
    );
    assert_eq!(messages.last().unwrap()["content"], "Vocês entregam hoje?");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {CHAT_KEY}").as_str())
    );
    // The customer saw "read" and "typing…" meanwhile.
    let reads = w.graph.reads();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].message_id(), Some(job.wamid.as_str()));
    assert!(reads[0].typing());
}

/// The webhook stores a message and then opens the conversation's window;
/// a delivery that stopped in between (a fault, a crash) left the window
/// closed, and the bot skipped the message. Meta's repeat of the webhook
/// finds the message stored and opens the window all the same.
#[tokio::test]
async fn a_repeated_webhook_opens_the_window_its_first_delivery_left_closed() {
    let w = world().await;
    let (conversation, job) = w
        .customer_says(
            CustomerIds::new(Some(CUSTOMER), None),
            json!({"type": "text", "text": {"body": "Ainda dá tempo?"}}),
            Utc::now(),
        )
        .await;
    // As if the first delivery had stopped after storing the message.
    w.t.db
        .update_item()
        .table_name(w.t.table())
        .key("pk", AttributeValue::S(table_keys::account_pk(&w.account)))
        .key(
            "sk",
            AttributeValue::S(table_keys::whatsapp_conversation_sk(
                &w.store.id,
                &conversation.id,
            )),
        )
        .update_expression("REMOVE last_customer_at, customer_us")
        .send()
        .await
        .unwrap();
    assert_eq!(
        w.run(&job).await,
        Outcome::Decided(BotDecision::Skip(SkipReason::OutsideWindow))
    );
    let repeat = w
        .deps
        .core
        .store
        .record_message(&NewMessage {
            wamid: &job.wamid,
            direction: Direction::Inbound,
            conversation: &conversation,
            sent_at: Utc::now(),
            content: json!({"type": "text", "text": {"body": "Ainda dá tempo?"}}),
            event: None,
        })
        .await
        .unwrap();
    assert!(!repeat, "stored once");
    assert_eq!(w.run(&job).await, Outcome::Decided(BotDecision::Reply));
}

#[tokio::test]
async fn the_model_reads_the_conversation_so_far() {
    let w = world().await;
    let first = w.text("Oi, qual o cardápio de hoje?").await;
    w.run(&first).await;
    let second = w.text("E tem sobremesa?").await;
    w.run(&second).await;
    let messages = w.chat.requests()[1].body["messages"].clone();
    let said: Vec<(&str, &str)> = messages
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said,
        [
            ("user", "Oi, qual o cardápio de hoje?"),
            ("assistant", "Resposta: Oi, qual o cardápio de hoje?"),
            ("user", "E tem sobremesa?"),
        ]
    );
}

#[tokio::test]
async fn no_reply_without_text_or_outside_the_window() {
    let w = world().await;
    let ids = || CustomerIds::new(Some(CUSTOMER), None);
    let (_, reaction) = w
        .customer_says(
            ids(),
            json!({"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}}),
            Utc::now(),
        )
        .await;
    assert_eq!(
        w.run(&reaction).await,
        Outcome::Decided(BotDecision::Skip(SkipReason::NoText))
    );
    let (_, voice) = w
        .customer_says(
            ids(),
            json!({"type": "audio", "audio": {"id": "1", "voice": true}}),
            Utc::now(),
        )
        .await;
    assert_eq!(
        w.run(&voice).await,
        Outcome::Decided(BotDecision::Skip(SkipReason::NoText))
    );
    // Another customer who wrote 25 hours ago (Meta re-sent it late).
    let (_, late) = w
        .customer_says(
            CustomerIds::new(Some("5521999990000"), None),
            json!({"type": "text", "text": {"body": "ainda está aí?"}}),
            Utc::now() - chrono::Duration::hours(25),
        )
        .await;
    assert_eq!(
        w.run(&late).await,
        Outcome::Decided(BotDecision::Skip(SkipReason::OutsideWindow))
    );
    assert!(w.chat.requests().is_empty());
    assert!(w.send_jobs().await.is_empty());
}

#[tokio::test]
async fn the_limit_hands_off_once_and_a_person_gives_it_back() {
    let w = world().await;
    w.settings(json!({"message_limit": 2})).await;
    let mut jobs = Vec::new();
    for text in ["oi", "tudo bem?"] {
        let job = w.text(text).await;
        assert_eq!(w.run(&job).await, Outcome::Decided(BotDecision::Reply));
        jobs.push(job);
    }
    let third = w.text("e agora?").await;
    assert_eq!(
        w.run(&third).await,
        Outcome::Decided(BotDecision::Handoff(HandoffReason::LimitReached))
    );
    let conversation = w.conversation(&third.conversation_id).await;
    assert!(conversation.needs_human);
    let fallback = w.reply_to(&third).await.unwrap();
    assert_eq!(text_of(&fallback), DEFAULT_FALLBACK_PT_BR);
    let handoffs = w.handoffs().await;
    assert_eq!(handoffs.len(), 1);
    assert_eq!(handoffs[0]["reason"], "limit_reached");
    assert_eq!(
        handoffs[0]["conversation_id"],
        third.conversation_id.as_str()
    );
    assert_eq!(handoffs[0]["customer"]["wa_id"], CUSTOMER);
    // The job again, and the next message: no second fallback, no event.
    assert_eq!(w.run(&third).await, Outcome::AlreadyAnswered);
    let fourth = w.text("alô?").await;
    assert_eq!(
        w.run(&fourth).await,
        Outcome::Decided(BotDecision::Skip(SkipReason::NeedsHuman))
    );
    assert!(w.reply_to(&fourth).await.is_none());
    assert!(w.handoffs().await.is_empty());
    assert_eq!(w.chat.requests().len(), 2);

    // An operator gives it back: the bot answers again, counting afresh.
    w.deps
        .core
        .store
        .resume_conversation(&w.account, &w.store.id, &third.conversation_id, Utc::now())
        .await
        .unwrap()
        .unwrap();
    let fifth = w.text("voltei").await;
    assert_eq!(w.run(&fifth).await, Outcome::Decided(BotDecision::Reply));
    assert_eq!(
        text_of(&w.reply_to(&fifth).await.unwrap()),
        "Resposta: voltei"
    );
}

#[tokio::test]
async fn a_switched_off_bot_hands_off_with_the_stores_fallback() {
    let w = world().await;
    w.settings(
        json!({"enabled": false, "fallback_text": "Já te respondemos, aguarde um instante."}),
    )
    .await;
    let job = w.text("oi").await;
    assert_eq!(
        w.run(&job).await,
        Outcome::Decided(BotDecision::Handoff(HandoffReason::BotDisabled))
    );
    assert_eq!(
        text_of(&w.reply_to(&job).await.unwrap()),
        "Já te respondemos, aguarde um instante."
    );
    assert_eq!(w.handoffs().await[0]["reason"], "bot_disabled");
    assert!(w.chat.requests().is_empty());
}

#[tokio::test]
async fn model_failures_are_retried_when_they_may_pass_and_else_hand_off() {
    let w = world().await;
    // Throttled once (honouring Retry-After), then an answer.
    w.chat.reply([
        ChatReply::rate_limited(Some(1)),
        ChatReply::text("Entregamos até as 22h."),
    ]);
    let job = w.text("até que horas entregam?").await;
    assert_eq!(w.run(&job).await, Outcome::Decided(BotDecision::Reply));
    assert_eq!(
        text_of(&w.reply_to(&job).await.unwrap()),
        "Entregamos até as 22h."
    );
    assert_eq!(w.chat.requests().len(), 2);

    // No credits: not retried; the conversation goes to a person.
    w.chat.reply([ChatReply::no_credits()]);
    let job = w.text("e amanhã?").await;
    assert_eq!(
        w.run(&job).await,
        Outcome::Decided(BotDecision::Handoff(HandoffReason::ModelFailed))
    );
    assert_eq!(w.chat.requests().len(), 3);
    assert_eq!(w.handoffs().await[0]["reason"], "model_failed");
}

#[tokio::test]
async fn an_answer_that_is_an_error_or_empty_is_not_sent() {
    for reply in [
        ChatReply::error_in_body(502, "Provider returned error"),
        ChatReply::empty(),
    ] {
        let w = world().await;
        w.chat.fallback(reply);
        let job = w.text("oi").await;
        assert_eq!(
            w.run(&job).await,
            Outcome::Decided(BotDecision::Handoff(HandoffReason::ModelFailed))
        );
        let fallback = w.reply_to(&job).await.unwrap();
        assert_eq!(text_of(&fallback), DEFAULT_FALLBACK_PT_BR);
    }
}

#[tokio::test]
async fn a_customer_known_only_by_bsuid_is_answered_at_the_bsuid() {
    let w = world().await;
    let (_, job) = w
        .customer_says(
            CustomerIds::new(None, Some("BR.13491208655302741918")),
            json!({"type": "text", "text": {"body": "oi"}}),
            Utc::now(),
        )
        .await;
    w.run(&job).await;
    assert_eq!(
        w.reply_to(&job).await.unwrap().to,
        Recipient::User("BR.13491208655302741918".into())
    );
}
