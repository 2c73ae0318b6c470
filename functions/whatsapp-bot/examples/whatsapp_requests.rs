//! DynamoDB requests per WhatsApp message, against the emulator, counted by
//! an SDK interceptor: the webhook storing a customer's message (the first
//! of a conversation, a later one, the same one again) and a status, the
//! bot answering a message, and the sender sending the answer.
//!
//! `cargo run -p whatsapp-bot --example whatsapp_requests` (run by `make measure`).

use std::time::Duration;

use chrono::Utc;
use nuvem_aws::Core;
use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::graph::{GraphClient, GraphConfig};
use nuvem_aws::queue::EventQueue;
use nuvem_aws::store::Store;
use nuvem_aws::whatsapp_jobs::{BotJob, BotQueue, OutboundJob, OutboundQueue};
use nuvem_domain::whatsapp::outbound;
use nuvem_domain::whatsapp::signature::sign;
use nuvem_testkit::counting::RequestCounter;
use nuvem_testkit::fake_chat::FakeChat;
use nuvem_testkit::fake_graph::FakeGraph;
use nuvem_testkit::fixtures::{http_event, reply, with_body};
use nuvem_testkit::inspect::drain;
use nuvem_testkit::{TestStack, tenants};
use serde_json::{Value, json};

const NUMBER: &str = "106540352242922";
const TOKEN: &str = "EAAGm0PX4ZCpsBENCH";
const APP_SECRET: &str = "bench-app-secret";
const CHAT_KEY: &str = "sk-or-v1-bench";

fn text(wamid: &str, body: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5511912345678"}],
            "messages": [{"from": "5511912345678", "id": wamid,
                          "timestamp": Utc::now().timestamp().to_string(),
                          "type": "text", "text": {"body": body}}]
        }}]}]
    }))
    .unwrap()
}

fn status(wamid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER},
            "statuses": [{"id": wamid, "status": "delivered",
                          "timestamp": Utc::now().timestamp().to_string(), "recipient_id": "5511912345678"}]
        }}]}]
    }))
    .unwrap()
}

fn line(what: &str, counter: &RequestCounter) {
    let counts = counter.counts();
    let detail: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
    println!(
        "{what:<44} {:>2} DynamoDB requests ({})",
        counter.total(),
        detail.join(", ")
    );
    counter.clear();
}

#[tokio::main]
async fn main() {
    let t = TestStack::new("bench-whatsapp").await;
    for (secret, value) in [
        (
            "WhatsAppSecret",
            json!({"app_secret": APP_SECRET, "verify_token": "v"}),
        ),
        ("ChatApiSecret", json!({"api_key": CHAT_KEY})),
    ] {
        t.stack
            .put_secret(t.emulator, secret, &value.to_string())
            .await
            .unwrap();
    }
    let graph = FakeGraph::start().await;
    graph.add_number(NUMBER, TOKEN, "+55 11 98765-4321", "Cantina da Nonna");
    let chat = FakeChat::start(CHAT_KEY).await;
    let counter = RequestCounter::default();
    let env = t.env("WhatsappBot");
    let chat_url = chat.url();
    let lookup = move |name: &str| match name {
        "CHAT_API_URL" => Some(chat_url.clone()),
        other => env(other),
    };
    let core = Core {
        store: Store::from_client(counter.dynamodb(&t.sdk), t.table()),
        events: EventQueue::new(&t.sdk, t.events_queue()),
    };
    let plain = Store::new(&t.sdk, t.table());
    let sealer = t.sealer();
    let account = tenants::active_account(&plain, 1_000, 0).await.id;
    let store =
        tenants::whatsapp_store_with_connected_number(&plain, &sealer, &account, NUMBER, TOKEN)
            .await;

    let bot_queue = t.stack.queue("WhatsAppBotQueue").url.clone();
    let outbound_queue = t.stack.queue("WhatsAppOutboundQueue").url.clone();
    let webhook = whatsapp_webhook::Deps {
        core: core.clone(),
        secret: DeploymentSecret::from_lookup(
            &t.sdk,
            &t.env("WhatsappWebhook"),
            "WHATSAPP_SECRET_ARN",
        )
        .unwrap(),
        bot: BotQueue::new(&t.sdk, &bot_queue),
    };
    let graph_client =
        GraphClient::new(GraphConfig::new(&graph.url(), "v26.0", Duration::from_secs(5)).unwrap());
    let bot = whatsapp_bot::Deps {
        core: core.clone(),
        sealer: sealer.clone(),
        graph: graph_client.clone(),
        outbound: OutboundQueue::new(&t.sdk, &outbound_queue),
        chat: whatsapp_bot::Chat::from_lookup(
            &lookup,
            DeploymentSecret::from_lookup(&t.sdk, &lookup, "CHAT_SECRET_ARN").unwrap(),
        )
        .unwrap(),
    };
    let sender = whatsapp_outbound::Deps {
        core,
        sealer,
        graph: graph_client,
        queue: OutboundQueue::new(&t.sdk, &outbound_queue),
    };
    let post = |body: Vec<u8>| {
        let webhook = &webhook;
        async move {
            let mut req = with_body(
                http_event("whatsapp-webhook/receive.json"),
                String::from_utf8(body.clone()).unwrap(),
            );
            req.headers_mut().insert(
                "x-hub-signature-256",
                sign(APP_SECRET, &body).parse().unwrap(),
            );
            let (status, _, answer) = reply(&whatsapp_webhook::handle(webhook, req).await);
            assert_eq!(status, 200, "{answer}");
        }
    };
    let jobs = |url: String| {
        let sqs = t.sqs.clone();
        async move {
            drain(&sqs, &url, 10)
                .await
                .into_iter()
                .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap())
                .collect::<Vec<_>>()
        }
    };

    println!(
        "## WhatsApp: DynamoDB requests per message (emulator, counted by an SDK interceptor)"
    );
    post(text("wamid.bench.1", "Oi!")).await;
    line("webhook, a new customer's first message", &counter);
    post(text("wamid.bench.2", "Vocês entregam hoje?")).await;
    line("webhook, a message in a conversation", &counter);
    post(text("wamid.bench.2", "Vocês entregam hoje?")).await;
    line("webhook, the same message again", &counter);
    drain(&t.sqs, &bot_queue, 10).await;

    let job: BotJob = serde_json::from_value(json!({
        "account_id": account, "store_id": store.id,
        "conversation_id": plain.get_message("wamid.bench.2").await.unwrap().unwrap().conversation_id,
        "phone_number_id": NUMBER, "wamid": "wamid.bench.2"
    }))
    .unwrap();
    whatsapp_bot::answer(&bot, &job, Utc::now()).await.unwrap();
    line("bot, answering a message", &counter);
    whatsapp_bot::answer(&bot, &job, Utc::now()).await.unwrap();
    line("bot, the same job again", &counter);

    let queued = jobs(outbound_queue.clone()).await;
    let send: OutboundJob = serde_json::from_value(queued[0].clone()).unwrap();
    assert_eq!(send.outbound_id, outbound::reply_id("wamid.bench.2"));
    whatsapp_outbound::send(&sender, &send, None, Utc::now())
        .await
        .unwrap();
    line("sender, sending the answer", &counter);
    let wamid = graph.sends()[0].wamid.clone().unwrap();
    post(status(&wamid)).await;
    line("webhook, a status of the answer", &counter);
}
