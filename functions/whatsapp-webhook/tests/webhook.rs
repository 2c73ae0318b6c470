//! `whatsapp-webhook` against the emulator, with Meta's payload shapes:
//! the handshake, signatures (right, wrong, missing, over base64 bodies and
//! over the unicode escapes Meta signs), every message type stored once
//! with one event, several entries and numbers in one POST, unclaimed
//! numbers, statuses in any order, BSUID-only customers, number and
//! user-id changes, and 5xx answers when nothing can be stored.

use std::collections::BTreeSet;

use base64::Engine;
use nuvem_aws::Core;
use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::store::{MessageRecord, Store, StoreRecord};
use nuvem_aws::whatsapp_jobs::BotQueue;
use nuvem_domain::whatsapp::identity::CustomerIds;
use nuvem_domain::whatsapp::signature::sign;
use nuvem_domain::whatsapp::status::DeliveryStatus;
use nuvem_domain::whatsapp::webhook::{Inbound, parse_notification};
use nuvem_testkit::fixtures::{http_event, http_event_edited, reply, with_body, with_query};
use nuvem_testkit::inspect::{drain, scan_all};
use nuvem_testkit::{TestStack, tenants};
use serde_json::{Value, json};
use whatsapp_webhook::Deps;

const APP_SECRET: &str = "9f3c2a1b7e6d5c4b3a29180f7e6d5c4b";
const VERIFY_TOKEN: &str = "token-de-verificacao-da-nuvem";
const NUMBER: &str = "106540352242922";

struct World {
    t: TestStack,
    deps: Deps,
    account: String,
    store: StoreRecord,
}

async fn world() -> World {
    let t = TestStack::new("wa-webhook").await;
    t.stack
        .put_secret(
            t.emulator,
            "WhatsAppSecret",
            &json!({"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}).to_string(),
        )
        .await
        .unwrap();
    let env = t.env("WhatsappWebhook");
    let core = Core::from_lookup(&t.sdk, &env).unwrap();
    let account = tenants::active_account(&core.store, 1_000, 0).await.id;
    let store = tenants::whatsapp_store_with_number(&core.store, &account, NUMBER).await;
    let deps = Deps {
        core,
        secret: DeploymentSecret::from_lookup(&t.sdk, &env, "WHATSAPP_SECRET_ARN").unwrap(),
        bot: BotQueue::new(&t.sdk, env("BOT_QUEUE_URL").unwrap()),
    };
    World {
        t,
        deps,
        account,
        store,
    }
}

/// A fixture of Meta's payloads (shared with the domain's parser tests).
fn meta(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/domain/tests/fixtures/whatsapp/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One `messages` change for our number with these contacts, messages and
/// statuses, as Meta sends it.
fn notification(contacts: Value, messages: Value, statuses: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER},
            "contacts": contacts,
            "messages": messages,
            "statuses": statuses,
        }}]}]
    }))
    .unwrap()
}

fn text(from: Option<&str>, user_id: Option<&str>, wamid: &str, at: i64, body: &str) -> Value {
    let mut m = json!({
        "id": wamid, "timestamp": at.to_string(), "type": "text", "text": {"body": body}
    });
    if let Some(from) = from {
        m["from"] = json!(from);
    }
    if let Some(user_id) = user_id {
        m["from_user_id"] = json!(user_id);
    }
    m
}

fn status(wamid: &str, status: &str, at: i64) -> Value {
    let mut s = json!({
        "id": wamid, "status": status, "timestamp": at.to_string(), "recipient_id": "5511987654321"
    });
    if status == "failed" {
        s["errors"] = json!([{
            "code": 131047,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."}
        }]);
    }
    s
}

impl World {
    async fn post_with(&self, body: &[u8], signature: Option<String>) -> (u16, Value) {
        let mut req = http_event_edited("whatsapp-webhook/receive.json", |e| {
            let headers = e["headers"].as_object_mut().unwrap();
            headers.remove("x-hub-signature-256");
            if let Some(signature) = &signature {
                headers.insert("x-hub-signature-256".into(), json!(signature));
            }
        });
        req = with_body(req, String::from_utf8(body.to_vec()).unwrap());
        let (status, _, body) = reply(&whatsapp_webhook::handle(&self.deps, req).await);
        (status, body)
    }

    /// POSTs `body` signed with the app secret, as Meta does.
    async fn post(&self, body: &[u8]) -> (u16, Value) {
        self.post_with(body, Some(sign(APP_SECRET, body))).await
    }

    async fn accepted(&self, body: &[u8]) -> Value {
        let (status, answer) = self.post(body).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    fn store(&self) -> &Store {
        &self.deps.core.store
    }

    async fn message(&self, wamid: &str) -> MessageRecord {
        self.store()
            .get_message(wamid)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{wamid} is stored"))
    }

    /// The stored messages' wamids.
    async fn stored_wamids(&self) -> BTreeSet<String> {
        scan_all(&self.t.db, self.t.table())
            .await
            .into_iter()
            .filter(|i| i["sk"].as_s().is_ok_and(|sk| sk == "WAMSG"))
            .filter(|i| i.contains_key("direction"))
            .map(|i| i["wamid"].as_s().unwrap().clone())
            .collect()
    }

    /// The events queued since the last call, as (type, data).
    async fn events(&self) -> Vec<(String, Value)> {
        drain(&self.t.sqs, self.t.events_queue(), 1000)
            .await
            .into_iter()
            .map(|m| {
                let e: Value = serde_json::from_str(m.body().unwrap()).unwrap();
                (e["type"].as_str().unwrap().to_owned(), e["data"].clone())
            })
            .collect()
    }

    /// The conversation of the customer with these ids, if they have one.
    async fn conversation_of(&self, wa_id: Option<&str>, user_id: Option<&str>) -> String {
        self.store()
            .resolve_conversation(
                &self.account,
                &self.store.id,
                &CustomerIds::new(wa_id, user_id),
                None,
                chrono::Utc::now(),
            )
            .await
            .unwrap()
            .unwrap()
            .id
    }
}

#[tokio::test]
async fn the_handshake_answers_only_the_configured_token() {
    let w = world().await;
    let ask = |pairs: &[(&str, &str)]| {
        let req = with_query(http_event("whatsapp-webhook/verify.json"), pairs);
        let deps = &w.deps;
        async move { reply(&whatsapp_webhook::handle(deps, req).await) }
    };
    let (status, content_type, _) = ask(&[
        ("hub.mode", "subscribe"),
        ("hub.verify_token", VERIFY_TOKEN),
        ("hub.challenge", "1158201444"),
    ])
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/plain; charset=utf-8")
    );
    for wrong in [
        vec![
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "dev-verify-token"),
            ("hub.challenge", "1"),
        ],
        vec![
            ("hub.mode", "unsubscribe"),
            ("hub.verify_token", VERIFY_TOKEN),
            ("hub.challenge", "1"),
        ],
        vec![("hub.mode", "subscribe"), ("hub.challenge", "1")],
        vec![],
    ] {
        let (status, content_type, body) = ask(&wrong).await;
        assert_eq!(status, 403, "{wrong:?}: {body}");
        assert_eq!(content_type, "application/problem+json");
    }
}

#[tokio::test]
async fn the_challenge_is_sent_back_as_plain_text() {
    let w = world().await;
    let req = with_query(
        http_event("whatsapp-webhook/verify.json"),
        &[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", VERIFY_TOKEN),
            ("hub.challenge", "1158201444"),
        ],
    );
    let resp = whatsapp_webhook::handle(&w.deps, req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().as_ref(), b"1158201444");
}

#[tokio::test]
async fn unsigned_forged_or_malformed_signatures_store_nothing() {
    let w = world().await;
    let body = notification(
        json!([{"wa_id": "5511987654321"}]),
        json!([text(
            Some("5511987654321"),
            None,
            "wamid.forged",
            1795521600,
            "oi"
        )]),
        json!([]),
    );
    let mut tampered = body.clone();
    let at = tampered.len() - 10;
    tampered[at] = b' ';
    for (what, sent, signature) in [
        ("missing", body.clone(), None),
        (
            "another secret",
            body.clone(),
            Some(sign("outro-segredo", &body)),
        ),
        (
            "no prefix",
            body.clone(),
            Some(sign(APP_SECRET, &body)[7..].to_owned()),
        ),
        (
            "not hex",
            body.clone(),
            Some(format!("sha256={}", "zz".repeat(32))),
        ),
        (
            "sha1",
            body.clone(),
            Some(format!("sha1={}", "ab".repeat(20))),
        ),
        ("of another body", tampered, Some(sign(APP_SECRET, &body))),
    ] {
        let (status, problem) = w.post_with(&sent, signature).await;
        assert_eq!(status, 401, "{what}: {problem}");
        assert_eq!(problem["status"], 401, "{what}");
    }
    assert!(w.stored_wamids().await.is_empty());
    assert!(w.events().await.is_empty());
    assert_eq!(w.accepted(&body).await["messages"], 1);
}

#[tokio::test]
async fn every_message_type_is_stored_once_with_one_event() {
    let w = world().await;
    let body = meta("every_message_type.json");
    let parsed = parse_notification(&body).unwrap();
    let wamids: BTreeSet<String> = parsed
        .events
        .iter()
        .filter_map(|e| match e {
            Inbound::Message { message, .. } => Some(message.id.clone()),
            _ => None,
        })
        .collect();
    assert!(wamids.len() >= 17, "the fixture has every type");
    let answer = w.accepted(&body).await;
    assert_eq!(answer["messages"], wamids.len());
    // Meta re-sends what it thinks was not received: nothing new.
    w.accepted(&body).await;
    w.accepted(&body).await;
    assert_eq!(w.stored_wamids().await, wamids);
    let events = w.events().await;
    let received: Vec<&str> = events
        .iter()
        .filter(|(t, _)| t == "whatsapp.message.received")
        .map(|(_, d)| d["wamid"].as_str().unwrap())
        .collect();
    assert_eq!(received.len(), wamids.len(), "one event per message");
    assert_eq!(
        received.iter().copied().collect::<BTreeSet<_>>().len(),
        wamids.len()
    );

    let types: BTreeSet<String> = futures::future::join_all(wamids.iter().map(|m| w.message(m)))
        .await
        .into_iter()
        .map(|m| m.content.unwrap()["type"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "reaction",
        "order",
        "request_welcome",
    ] {
        assert!(types.contains(expected), "{expected} in {types:?}");
    }
    // The event carries the message as stored, and who sent it.
    let (_, data) = events
        .iter()
        .find(|(_, d)| d["message"]["type"] == "image")
        .unwrap();
    assert_eq!(data["store_id"], w.store.id.as_str());
    assert_eq!(data["phone_number_id"], NUMBER);
    assert!(data["message"]["image"]["id"].is_string());
    assert!(data["message"]["image"]["mime_type"].is_string());
    assert!(data["message"]["image"]["sha256"].is_string());
}

#[tokio::test]
async fn unknown_types_context_and_referral_are_kept() {
    let w = world().await;
    let body = meta("unknown_type.json");
    w.accepted(&body).await;
    let parsed = parse_notification(&body).unwrap();
    for event in &parsed.events {
        let Inbound::Message { message, .. } = event else {
            continue;
        };
        let stored = w.message(&message.id).await.content.unwrap();
        assert_eq!(
            stored,
            nuvem_domain::whatsapp::content::inbound(message),
            "{} as parsed",
            message.id
        );
    }
    let reply = text(
        Some("5511987654321"),
        None,
        "wamid.reply",
        1795521600,
        "esse aqui",
    );
    let mut reply = reply;
    reply["context"] = json!({"from": "15550783881", "id": "wamid.catalogo"});
    reply["referral"] =
        json!({"source_url": "https://fb.me/anuncio", "source_type": "ad", "source_id": "120"});
    w.accepted(&notification(json!([]), json!([reply]), json!([])))
        .await;
    let stored = w.message("wamid.reply").await.content.unwrap();
    assert_eq!(stored["context"]["id"], "wamid.catalogo");
    assert_eq!(stored["referral"]["source_type"], "ad");
}

#[tokio::test]
async fn the_signature_covers_the_bytes_meta_sent_not_a_reserialisation() {
    let w = world().await;
    // Meta escapes non-ASCII and slashes; serde_json writes them raw, so a
    // body read and written again is not the body Meta signed.
    let raw = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Jo\u00e3o"},"wa_id":"5511987654321"}],"messages":[{"from":"5511987654321","id":"wamid.unicode","timestamp":"1795521600","type":"text","text":{"body":"P\u00e3o de a\u00e7\u00facar \ud83c\udf5e em https:\/\/nuvem.example\/pedido"}}]},"field":"messages"}]}]}"#
    .as_bytes();
    let reserialised = serde_json::to_vec(&serde_json::from_slice::<Value>(raw).unwrap()).unwrap();
    assert_ne!(reserialised, raw);
    assert_eq!(
        w.post_with(&reserialised, Some(sign(APP_SECRET, raw)))
            .await
            .0,
        401
    );
    w.accepted(raw).await;
    let stored = w.message("wamid.unicode").await.content.unwrap();
    assert_eq!(
        stored["text"]["body"],
        "Pão de açúcar 🍞 em https://nuvem.example/pedido"
    );
}

#[tokio::test]
async fn base64_bodies_are_checked_after_decoding() {
    let w = world().await;
    let body = notification(
        json!([{"wa_id": "5511987654321"}]),
        json!([text(
            Some("5511987654321"),
            None,
            "wamid.b64",
            1795521600,
            "Olá"
        )]),
        json!([]),
    );
    let signature = sign(APP_SECRET, &body);
    let req = http_event_edited("whatsapp-webhook/receive.json", |e| {
        e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
        e["isBase64Encoded"] = json!(true);
        e["headers"]["x-hub-signature-256"] = json!(signature);
    });
    let (status, _, answer) = reply(&whatsapp_webhook::handle(&w.deps, req).await);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        w.message("wamid.b64").await.content.unwrap()["text"]["body"],
        "Olá"
    );
}

#[tokio::test]
async fn not_a_notification_is_a_400_and_oversize_a_413() {
    let w = world().await;
    for body in [
        &b"{\"object\": \"page\", \"entry\": []}"[..],
        b"[1, 2]",
        b"not json",
        b"{\"object\": \"whatsapp_business_account\", \"entry\": {}}",
    ] {
        let (status, problem) = w.post(body).await;
        assert_eq!(status, 400, "{}: {problem}", String::from_utf8_lossy(body));
    }
    let huge = vec![b' '; whatsapp_webhook::BODY_LIMIT + 1];
    assert_eq!(w.post(&huge).await.0, 413);
    assert!(w.stored_wamids().await.is_empty());
}

#[tokio::test]
async fn every_entry_and_change_is_routed_and_unclaimed_numbers_counted() {
    let w = world().await;
    // A store of another account claims the batch's second number (which
    // gets a status); nobody claims the third (two messages and an error).
    let other = tenants::active_account(w.store(), 1_000, 0).await.id;
    tenants::whatsapp_store_with_number(w.store(), &other, "106540352242923").await;
    let body = meta("batched.json");
    let answer = w.accepted(&body).await;
    assert_eq!(
        answer,
        json!({"messages": 1, "statuses": 1, "unrouted": 3}),
        "{answer}"
    );
    let unrouted = || w.store().unrouted_whatsapp_items("300000000000001");
    assert_eq!(unrouted().await.unwrap(), 3);
    w.accepted(&body).await;
    assert_eq!(unrouted().await.unwrap(), 6);
    assert_eq!(w.stored_wamids().await, ["wamid.a1".to_owned()].into());
    let delivery = w.message("wamid.out1").await.delivery.unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    let events = w.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["store_id"], w.store.id.as_str());
}

#[tokio::test]
async fn statuses_only_move_forward_and_a_failure_is_told_once() {
    let w = world().await;
    let sent = |s: &str, at: i64| status("wamid.out", s, at);
    // Newest first, repeated: the message still ends `read`.
    let body = notification(
        json!([]),
        json!([]),
        json!([
            sent("read", 12),
            sent("delivered", 11),
            sent("read", 12),
            sent("sent", 10)
        ]),
    );
    let answer = w.accepted(&body).await;
    assert_eq!(answer["statuses"], 4);
    w.accepted(&notification(
        json!([]),
        json!([]),
        json!([sent("delivered", 11)]),
    ))
    .await;
    let delivery = w.message("wamid.out").await.delivery.unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Read);
    assert_eq!(delivery.status_at, 12);

    let failed = status("wamid.lost", "failed", 20);
    let body = notification(
        json!([]),
        json!([]),
        json!([status("wamid.lost", "sent", 19), failed]),
    );
    w.accepted(&body).await;
    w.accepted(&body).await;
    let stored = w.message("wamid.lost").await.delivery.unwrap();
    assert_eq!(stored.status, DeliveryStatus::Failed);
    assert_eq!(stored.failure.unwrap().error.unwrap().code, 131047);
    let failures: Vec<Value> = w
        .events()
        .await
        .into_iter()
        .filter(|(t, _)| t == "whatsapp.message.failed")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["wamid"], "wamid.lost");
    assert_eq!(failures[0]["error"]["code"], 131047);
    assert_eq!(failures[0]["recipient"]["wa_id"], "5511987654321");
}

#[tokio::test]
async fn a_customer_is_one_conversation_whichever_id_arrives() {
    let w = world().await;
    // BSUID only (the phone is hidden behind a username).
    w.accepted(&meta("bsuid_only.json")).await;
    let by_bsuid = w
        .conversation_of(None, Some("US.13491208655302741918"))
        .await;
    // Later the same person with both: linked, not a second conversation.
    w.accepted(&notification(
        json!([{"wa_id": "16505551234", "user_id": "US.13491208655302741918"}]),
        json!([text(
            Some("16505551234"),
            Some("US.13491208655302741918"),
            "wamid.both",
            1749416390,
            "oi"
        )]),
        json!([]),
    ))
    .await;
    // Then by phone only.
    w.accepted(&notification(
        json!([{"wa_id": "16505551234"}]),
        json!([text(
            Some("16505551234"),
            None,
            "wamid.phone",
            1749416391,
            "ainda eu"
        )]),
        json!([]),
    ))
    .await;
    for wamid in ["wamid.bsuid1", "wamid.both", "wamid.phone"] {
        assert_eq!(
            w.message(wamid).await.conversation_id.unwrap(),
            by_bsuid,
            "{wamid}"
        );
    }

    // The customer changes number, then BSUID: still the same conversation.
    w.accepted(&meta("system_changes.json")).await;
    assert_eq!(w.conversation_of(Some("12195555358"), None).await, by_bsuid);
    assert_eq!(
        w.conversation_of(None, Some("US.98765432109876543210"))
            .await,
        by_bsuid
    );
    let conversation = w
        .store()
        .get_conversation(&w.account, &w.store.id, &by_bsuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.wa_id.as_deref(), Some("12195555358"));
    assert_eq!(
        conversation.user_id.as_deref(),
        Some("US.98765432109876543210")
    );
    // The old number was released: whoever has it now is someone else.
    w.accepted(&notification(
        json!([{"wa_id": "16505551234"}]),
        json!([text(
            Some("16505551234"),
            None,
            "wamid.recycled",
            1749416500,
            "olá?"
        )]),
        json!([]),
    ))
    .await;
    assert_ne!(
        w.message("wamid.recycled").await.conversation_id.unwrap(),
        by_bsuid
    );
}

#[tokio::test]
async fn the_last_customer_message_opens_the_window() {
    let w = world().await;
    let now = chrono::Utc::now().timestamp();
    w.accepted(&notification(
        json!([]),
        json!([
            text(
                Some("5511987654321"),
                None,
                "wamid.late",
                now - 60,
                "segunda"
            ),
            text(
                Some("5511987654321"),
                None,
                "wamid.early",
                now - 3600,
                "primeira"
            ),
        ]),
        json!([]),
    ))
    .await;
    let id = w.conversation_of(Some("5511987654321"), None).await;
    let c = w
        .store()
        .get_conversation(&w.account, &w.store.id, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.last_customer_at.unwrap().timestamp(), now - 60);
}

#[tokio::test]
async fn without_its_secret_or_its_table_the_webhook_answers_5xx() {
    let w = world().await;
    let body = notification(
        json!([]),
        json!([text(
            Some("5511987654321"),
            None,
            "wamid.later",
            1795521600,
            "oi"
        )]),
        json!([]),
    );
    // A secret that cannot be read: Meta is asked to come back.
    let lost = Deps {
        core: w.deps.core.clone(),
        secret: DeploymentSecret::new(
            &w.t.sdk,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope",
        ),
        bot: w.deps.bot.clone(),
    };
    let req = with_body(
        http_event("whatsapp-webhook/receive.json"),
        String::from_utf8(body.clone()).unwrap(),
    );
    let resp = whatsapp_webhook::handle(&lost, req).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));

    // Deployed but Meta's app secret not put in yet: nothing is accepted.
    w.t.stack
        .put_secret(
            w.t.emulator,
            "WhatsAppSecret",
            &json!({"app_secret": "", "verify_token": "x"}).to_string(),
        )
        .await
        .unwrap();
    let fresh = Deps {
        core: w.deps.core.clone(),
        secret: DeploymentSecret::from_lookup(
            &w.t.sdk,
            &w.t.env("WhatsappWebhook"),
            "WHATSAPP_SECRET_ARN",
        )
        .unwrap(),
        bot: w.deps.bot.clone(),
    };
    let req = http_event_edited("whatsapp-webhook/receive.json", |e| {
        e["body"] = json!(String::from_utf8(body.clone()).unwrap());
        e["headers"]["x-hub-signature-256"] = json!(sign("", &body));
    });
    assert_eq!(whatsapp_webhook::handle(&fresh, req).await.status(), 503);

    // The table cannot be written: 5xx, so that Meta sends it again.
    w.t.stack
        .put_secret(
            w.t.emulator,
            "WhatsAppSecret",
            &json!({"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}).to_string(),
        )
        .await
        .unwrap();
    let broken = Deps {
        core: Core::from_lookup(&w.t.sdk, &|name| match name {
            "TABLE_NAME" => Some("no-such-table".into()),
            other => w.t.env("WhatsappWebhook")(other),
        })
        .unwrap(),
        secret: w.deps.secret.clone(),
        bot: w.deps.bot.clone(),
    };
    let req = with_body(
        http_event_edited("whatsapp-webhook/receive.json", |e| {
            e["headers"]["x-hub-signature-256"] = json!(sign(APP_SECRET, &body));
        }),
        String::from_utf8(body.clone()).unwrap(),
    );
    let status = whatsapp_webhook::handle(&broken, req).await.status();
    assert!(status.is_server_error(), "{status}");
    // Once the table is back, Meta's retry stores it.
    w.accepted(&body).await;
    assert!(w.stored_wamids().await.contains("wamid.later"));
}

#[test]
fn the_sample_event_is_signed_with_the_dev_secret() {
    let req = http_event("whatsapp-webhook/receive.json");
    let header = req
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    nuvem_domain::whatsapp::signature::verify("dev-app-secret", header, req.body().as_ref())
        .unwrap();
    let parsed = parse_notification(req.body().as_ref()).unwrap();
    assert_eq!(parsed.events.len(), 1);
}

#[tokio::test]
async fn messages_with_text_go_to_the_bot_on_every_delivery() {
    let w = world().await;
    let body = notification(
        json!([{"wa_id": "5511987654321"}]),
        json!([
            text(Some("5511987654321"), None, "wamid.q1", 1795521600, "Tem mesa para 4?"),
            {"from": "5511987654321", "id": "wamid.r1", "timestamp": "1795521601",
             "type": "reaction", "reaction": {"message_id": "wamid.q1", "emoji": "👍"}},
            {"from": "5511987654321", "id": "wamid.v1", "timestamp": "1795521602",
             "type": "audio", "audio": {"id": "99", "mime_type": "audio/ogg", "voice": true}},
        ]),
        json!([status("wamid.out", "read", 1795521603)]),
    );
    w.accepted(&body).await;
    // Meta sends it again: the job goes again (the bot answers once).
    w.accepted(&body).await;
    let jobs: Vec<Value> = drain(&w.t.sqs, &w.t.stack.queue("WhatsAppBotQueue").url, 100)
        .await
        .into_iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(
        jobs.iter()
            .all(|j| j["wamid"] == "wamid.q1" && j["phone_number_id"] == NUMBER)
    );
    assert_eq!(jobs[0]["store_id"], w.store.id.as_str());
    assert_eq!(
        jobs[0]["conversation_id"],
        w.message("wamid.q1")
            .await
            .conversation_id
            .unwrap()
            .as_str()
    );
}
