//! Meta delivers webhooks at least once and in any order. A property test
//! over one conversation's notifications, duplicated and shuffled, through
//! the real webhook handler and bot against the emulator: every message is
//! stored once, the bot answers every customer message exactly once, and
//! every sent message ends in the delivery state of its statuses taken in
//! order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use nuvem_aws::Core;
use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::graph::{GraphClient, GraphConfig};
use nuvem_aws::store::{ConversationEntry, StoreRecord};
use nuvem_aws::whatsapp_jobs::{BotJob, BotQueue, OutboundQueue};
use nuvem_domain::whatsapp::outbound;
use nuvem_domain::whatsapp::signature::sign;
use nuvem_domain::whatsapp::status::{DeliveryStatus, StatusUpdate, fold_statuses};
use nuvem_testkit::fake_chat::FakeChat;
use nuvem_testkit::fake_graph::FakeGraph;
use nuvem_testkit::fixtures::{http_event, reply, with_body};
use nuvem_testkit::inspect::drain;
use nuvem_testkit::{TestStack, tenants, unique_name};
use proptest::prelude::*;
use serde_json::{Value, json};

const NUMBER: &str = "106540352242922";
const APP_SECRET: &str = "segredo-do-app";
const CHAT_KEY: &str = "sk-or-v1-prop";

struct World {
    t: TestStack,
    webhook: whatsapp_webhook::Deps,
    bot: whatsapp_bot::Deps,
    chat: FakeChat,
    account: String,
    store: StoreRecord,
    _graph: FakeGraph,
}

async fn world() -> World {
    let t = TestStack::new("wa-deliveries").await;
    t.stack
        .put_secret(
            t.emulator,
            "WhatsAppSecret",
            &json!({"app_secret": APP_SECRET, "verify_token": "v"}).to_string(),
        )
        .await
        .unwrap();
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
    let webhook_env = t.env("WhatsappWebhook");
    let bot_env = t.env("WhatsappBot");
    let chat_url = chat.url();
    let bot_lookup = move |name: &str| match name {
        "CHAT_API_URL" => Some(chat_url.clone()),
        other => bot_env(other),
    };
    let core = Core::from_lookup(&t.sdk, &webhook_env).unwrap();
    let account = tenants::active_account(&core.store, 1_000, 0).await.id;
    let store = tenants::whatsapp_store_with_number(&core.store, &account, NUMBER).await;
    let webhook = whatsapp_webhook::Deps {
        core: core.clone(),
        secret: DeploymentSecret::from_lookup(&t.sdk, &webhook_env, "WHATSAPP_SECRET_ARN").unwrap(),
        bot: BotQueue::new(&t.sdk, webhook_env("BOT_QUEUE_URL").unwrap()),
    };
    let bot = whatsapp_bot::Deps {
        core,
        sealer: t.sealer(),
        graph: GraphClient::new(
            GraphConfig::new(&graph.url(), "v26.0", Duration::from_secs(2)).unwrap(),
        ),
        outbound: OutboundQueue::new(&t.sdk, bot_lookup("OUTBOUND_QUEUE_URL").unwrap()),
        chat: whatsapp_bot::Chat::from_lookup(
            &bot_lookup,
            DeploymentSecret::from_lookup(&t.sdk, &bot_lookup, "CHAT_SECRET_ARN").unwrap(),
        )
        .unwrap(),
    };
    World {
        t,
        webhook,
        bot,
        chat,
        account,
        store,
        _graph: graph,
    }
}

/// One notification as Meta would POST it, for our number.
fn notification(value: Value) -> Vec<u8> {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": "15550783881", "phone_number_id": NUMBER});
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]
    }))
    .unwrap()
}

/// A conversation's deliveries: customer messages and statuses of
/// messages we sent.
#[derive(Debug, Clone)]
struct Conversation {
    customer: String,
    /// (wamid, text, unix seconds)
    inbound: Vec<(String, String, i64)>,
    /// wamid of a sent message → its statuses in the order they happened.
    statuses: BTreeMap<String, Vec<(String, i64)>>,
}

fn conversation() -> impl Strategy<Value = Conversation> {
    let status_names = prop::sample::select(vec!["sent", "delivered", "read", "failed"]);
    (
        1usize..4,
        prop::collection::vec(prop::collection::vec(status_names, 1..4), 0..3),
    )
        .prop_map(|(inbound, sent)| {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let tag = unique_name("c").replace('-', "");
            let now = Utc::now().timestamp();
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            Conversation {
                // A customer of their own per case.
                customer: format!(
                    "5511{:09}",
                    (u64::from(std::process::id()) * 1000 + n) % 1_000_000_000
                ),
                inbound: (0..inbound)
                    .map(|i| {
                        (
                            format!("wamid.{tag}.in{i}"),
                            format!("pergunta {i}"),
                            now - 60 + i as i64,
                        )
                    })
                    .collect(),
                statuses: sent
                    .into_iter()
                    .enumerate()
                    .map(|(i, names)| {
                        let steps = names
                            .into_iter()
                            .enumerate()
                            .map(|(j, s)| (s.to_owned(), now - 30 + j as i64))
                            .collect();
                        (format!("wamid.{tag}.out{i}"), steps)
                    })
                    .collect(),
            }
        })
}

impl Conversation {
    /// Every notification, each as Meta would send it once.
    fn notifications(&self) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        for (wamid, text, at) in &self.inbound {
            all.push(notification(json!({
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": self.customer}],
                "messages": [{"from": self.customer, "id": wamid, "timestamp": at.to_string(),
                              "type": "text", "text": {"body": text}}]
            })));
        }
        for (wamid, steps) in &self.statuses {
            for (status, at) in steps {
                let mut s = json!({"id": wamid, "status": status, "timestamp": at.to_string(),
                                   "recipient_id": self.customer});
                if status == "failed" {
                    s["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
                }
                all.push(notification(json!({"statuses": [s]})));
            }
        }
        all
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn shared_world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| runtime().block_on(world()))
}

impl World {
    async fn post(&self, body: &[u8]) {
        let mut req = with_body(
            http_event("whatsapp-webhook/receive.json"),
            String::from_utf8(body.to_vec()).unwrap(),
        );
        req.headers_mut().insert(
            "x-hub-signature-256",
            sign(APP_SECRET, body).parse().unwrap(),
        );
        let (status, _, answer) = reply(&whatsapp_webhook::handle(&self.webhook, req).await);
        assert_eq!(status, 200, "{answer}");
    }

    /// Runs the bot on every job queued so far, in the order received.
    async fn run_bot(&self) {
        let url = &self.t.stack.queue("WhatsAppBotQueue").url;
        for m in drain(&self.t.sqs, url, 100).await {
            let job: BotJob = serde_json::from_str(m.body().unwrap()).unwrap();
            whatsapp_bot::answer(&self.bot, &job, Utc::now())
                .await
                .unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn duplicated_shuffled_deliveries_end_as_if_delivered_once_in_order(
        c in conversation(),
        copies in prop::collection::vec(1usize..4, 12),
        order in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let w = shared_world();
        // Each notification 1 to 3 times, the whole shuffled.
        let mut deliveries: Vec<Vec<u8>> = c
            .notifications()
            .into_iter()
            .enumerate()
            .flat_map(|(i, n)| std::iter::repeat_n(n, copies[i % copies.len()]))
            .collect();
        let mut x = seed | 1;
        for i in (1..deliveries.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            deliveries.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let rotate = order.index(deliveries.len().max(1));
        deliveries.rotate_left(rotate);
        let asked_before = w.chat.requests().len();

        runtime().block_on(async {
            for delivery in &deliveries {
                w.post(delivery).await;
                w.run_bot().await;
            }
        });

        let store = &w.webhook.core.store;
        runtime().block_on(async {
            // One stored message per inbound wamid, all in one conversation.
            let mut conversations = BTreeSet::new();
            for (wamid, text, _) in &c.inbound {
                let stored = store.get_message(wamid).await.unwrap().expect("stored");
                assert_eq!(stored.content.unwrap()["text"]["body"], text.as_str());
                conversations.insert(stored.conversation_id.unwrap());
            }
            assert_eq!(conversations.len(), 1);
            let conversation = conversations.into_iter().next().unwrap();
            let entries = store
                .conversation_entries(&conversation, None, 100, None)
                .await
                .unwrap()
                .items;
            let inbound = entries
                .iter()
                .filter(|e| matches!(e, ConversationEntry::Message(m) if m.direction == Some(nuvem_aws::store::Direction::Inbound)))
                .count();
            assert_eq!(inbound, c.inbound.len());
            // One bot reply per inbound message, and the model asked once each.
            for (wamid, text, _) in &c.inbound {
                let reply = store
                    .get_outbound(&w.account, &outbound::reply_id(wamid))
                    .await
                    .unwrap()
                    .expect("a reply");
                assert_eq!(reply.reply_to.as_deref(), Some(wamid.as_str()));
                assert_eq!(reply.message.content()["text"]["body"], format!("Resposta: {text}"));
                assert_eq!(reply.store_id, w.store.id);
            }
            let replies = entries.iter().filter(|e| matches!(e, ConversationEntry::Pending(_))).count();
            assert_eq!(replies, c.inbound.len());
            assert_eq!(w.chat.requests().len() - asked_before, c.inbound.len());
            // Every sent message's delivery as if its statuses came in order.
            for (wamid, steps) in &c.statuses {
                let in_order: Vec<StatusUpdate> = steps
                    .iter()
                    .map(|(status, at)| StatusUpdate {
                        id: wamid.clone(),
                        status: DeliveryStatus::parse(status),
                        timestamp: *at,
                        recipient_id: Some(c.customer.clone()),
                        recipient_user_id: None,
                        recipient_parent_user_id: None,
                        conversation: None,
                        pricing: None,
                        errors: Vec::new(),
                        biz_opaque_callback_data: None,
                    })
                    .collect();
                let expected = fold_statuses(&in_order).unwrap();
                let stored = store.get_message(wamid).await.unwrap().unwrap().delivery.unwrap();
                assert_eq!(stored.status, expected.status, "{wamid}");
                assert_eq!(stored.status_at, expected.status_at, "{wamid}");
                assert_eq!(stored.failure.is_some(), expected.failure.is_some(), "{wamid}");
            }
        });
    }
}
