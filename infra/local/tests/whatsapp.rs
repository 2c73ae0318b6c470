//! WhatsApp end to end through the local stack (what `make dev` runs),
//! with Meta's Graph API and the chat model faked on 127.0.0.1: a
//! customer's message signed as Meta signs it, the bot's one reply at the
//! Graph API, the same webhook again without a second reply, statuses out
//! of order ending `read`, and the reply limit handing the conversation to
//! a person, told to the tenant's webhook endpoint.

mod common;

use chrono::Utc;
use common::{Api, admin_key, onboard};
use nuvem_domain::whatsapp::signature::sign;
use nuvem_testkit::fake_chat::FakeChat;
use nuvem_testkit::fake_graph::FakeGraph;
use nuvem_testkit::receiver::Receiver;
use nuvem_testkit::{emulator, eventually, eventually_some};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const NUMBER: &str = "106540352242922";
const TOKEN: &str = "EAAGm0PX4ZCpsE2E";
const APP_SECRET: &str = "segredo-do-app-e2e";
const CHAT_KEY: &str = "sk-or-v1-e2e";
const CUSTOMER: &str = "5511912345678";

fn notification(value: Value) -> Vec<u8> {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": "5511987654321", "phone_number_id": NUMBER});
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]
    }))
    .unwrap()
}

fn customer_text(wamid: &str, text: &str) -> Vec<u8> {
    notification(json!({
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": CUSTOMER}],
        "messages": [{"from": CUSTOMER, "id": wamid, "timestamp": Utc::now().timestamp().to_string(),
                      "type": "text", "text": {"body": text}}]
    }))
}

fn status_of(wamid: &str, status: &str, at: i64) -> Vec<u8> {
    notification(json!({"statuses": [{
        "id": wamid, "status": status, "timestamp": at.to_string(), "recipient_id": CUSTOMER
    }]}))
}

/// POSTs a notification signed with the app secret, as Meta does.
async fn meta_posts(http: &Client, base: &str, body: Vec<u8>) {
    let signature = sign(APP_SECRET, &body);
    let resp = http
        .post(format!("{base}/v1/whatsapp/webhook"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_talks_to_the_bot_until_a_person_takes_over() {
    let graph = FakeGraph::start().await;
    graph.add_number(NUMBER, TOKEN, "+55 11 98765-4321", "Cantina da Nonna");
    let chat = FakeChat::start(CHAT_KEY).await;
    let runner = common::stack(
        "e2e-whatsapp",
        &[
            ("WebhookAllowLoopback", "true"),
            ("GraphApiUrl", &graph.url()),
            ("ChatApiUrl", &chat.url()),
        ],
    )
    .await;
    for (secret, value) in [
        (
            "WhatsAppSecret",
            json!({"app_secret": APP_SECRET, "verify_token": "v"}),
        ),
        ("ChatApiSecret", json!({"api_key": CHAT_KEY})),
    ] {
        common::put_secret(&runner, secret, value).await;
    }
    let http = Client::new();
    let base = runner.base_url().trim_end_matches('/').to_owned();
    let api = Api {
        http: http.clone(),
        runner: &runner,
    };
    let admin = admin_key(&runner);
    let (_, owner) = onboard(&api, &admin, "45.723.174/0001-10", "zap@cantina.com.br").await;
    let owner = Some(owner.as_str());

    // The tenant: a store whose bot answers twice per hour, its number,
    // and a webhook endpoint told of handoffs.
    let (status, store) = api
        .call(
            Method::POST,
            "/v1/whatsapp/stores",
            owner,
            Some(json!({"name": "Cantina da Nonna", "store_type": "restaurante", "message_limit": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{store}");
    let store = store["id"].as_str().unwrap().to_owned();
    let (status, slot) = api
        .call(
            Method::PUT,
            &format!("/v1/whatsapp/stores/{store}/numbers/1"),
            owner,
            Some(
                json!({"phone_number_id": NUMBER, "waba_id": "102290129340398",
                        "display_phone_number": "+55 11 98765-4321", "access_token": TOKEN}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{slot}");
    let receiver = Receiver::start().await;
    let (status, hook) = api
        .call(
            Method::POST,
            "/v1/webhooks",
            owner,
            Some(json!({"url": receiver.url("/zap"), "event_types": ["whatsapp.conversation.handoff"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");

    // A customer writes: one reply reaches the Graph API, from the number,
    // as a reply to their message.
    meta_posts(
        &http,
        &base,
        customer_text("wamid.e2e.1", "Vocês entregam hoje?"),
    )
    .await;
    let sends = eventually_some("the bot's reply at the Graph API", || async {
        let sends = graph.sends();
        (!sends.is_empty()).then_some(sends)
    })
    .await;
    assert_eq!(sends[0].text(), Some("Resposta: Vocês entregam hoje?"));
    assert_eq!(sends[0].to(), Some(CUSTOMER));
    assert_eq!(sends[0].body["context"]["message_id"], "wamid.e2e.1");
    let reply = sends[0].wamid.clone().unwrap();

    // Meta sends the same webhook again: the bot's job runs again and
    // sends nothing; a later message shows the queue has moved past it.
    meta_posts(
        &http,
        &base,
        customer_text("wamid.e2e.1", "Vocês entregam hoje?"),
    )
    .await;
    meta_posts(
        &http,
        &base,
        customer_text("wamid.e2e.2", "E até que horas?"),
    )
    .await;
    let sends = eventually_some("the second reply", || async {
        let sends = graph.sends();
        (sends.len() >= 2).then_some(sends)
    })
    .await;
    assert_eq!(sends[1].text(), Some("Resposta: E até que horas?"));
    // Every bot job handled, the repeated one included.
    let sqs = aws_sdk_sqs::Client::new(&emulator().await.sdk_config().await);
    let bot_queue = runner.stack().queue("WhatsAppBotQueue").url.clone();
    eventually("the bot's queue drained", || async {
        let out = sqs
            .get_queue_attributes()
            .queue_url(&bot_queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes().cloned().unwrap_or_default();
        let count = |name| attrs.get(&name).map_or(0, |v| v.parse::<u64>().unwrap());
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            == 0
    })
    .await;
    let sends = graph.sends();
    let first_replies = |sends: &[nuvem_testkit::fake_graph::GraphRequest]| {
        sends
            .iter()
            .filter(|s| s.text() == Some("Resposta: Vocês entregam hoje?"))
            .count()
    };
    assert_eq!(first_replies(&sends), 1);
    assert_eq!(
        chat.requests().len(),
        2,
        "the model was asked once per message"
    );

    // Statuses of the first reply arrive out of order: it ends `read`.
    let t = Utc::now().timestamp();
    for (name, at) in [("read", t + 2), ("sent", t), ("delivered", t + 1)] {
        meta_posts(&http, &base, status_of(&reply, name, at)).await;
    }
    let (_, conversations) = api
        .call(
            Method::GET,
            &format!("/v1/whatsapp/stores/{store}/conversations"),
            owner,
            None,
        )
        .await;
    let conversation = conversations["items"][0]["id"].as_str().unwrap().to_owned();
    let messages = format!("/v1/whatsapp/stores/{store}/conversations/{conversation}/messages");
    let (_, page) = api.call(Method::GET, &messages, owner, None).await;
    let line = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["wamid"] == reply.as_str())
        .cloned()
        .unwrap();
    assert_eq!(line["status"], "read", "{line}");

    // The third message is past the limit of two replies: the customer
    // gets the fallback once, the conversation waits for a person, and the
    // tenant's endpoint is told.
    meta_posts(
        &http,
        &base,
        customer_text("wamid.e2e.3", "Posso pagar com Pix?"),
    )
    .await;
    let handoff = eventually_some("the handoff at the tenant's endpoint", || async {
        receiver
            .received()
            .into_iter()
            .find(|r| r.json()["type"] == "whatsapp.conversation.handoff")
    })
    .await;
    let event = handoff.json();
    assert_eq!(event["data"]["reason"], "limit_reached");
    assert_eq!(event["data"]["conversation_id"], conversation.as_str());
    assert_eq!(event["data"]["wamid"], "wamid.e2e.3");
    eventually("the fallback text at the Graph API", || async {
        graph.sends().iter().any(|s| {
            s.text()
                .is_some_and(|t| t.starts_with("Obrigado pela mensagem!"))
        })
    })
    .await;
    let (_, waiting) = api
        .call(
            Method::GET,
            &format!("/v1/whatsapp/stores/{store}/conversations?needs_human=true"),
            owner,
            None,
        )
        .await;
    assert_eq!(waiting["items"][0]["id"], conversation.as_str());
    assert_eq!(chat.requests().len(), 2, "no model call past the limit");
    common::assert_no_secret_logged();
}
