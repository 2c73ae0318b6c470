//! The `whatsapp` routes against the emulator and a fake Graph API on
//! 127.0.0.1: stores and their bot settings, the 20-store bound, number
//! slots with their Graph check, one claim per number across accounts,
//! roles, tenant isolation, and tokens that never come back.

use std::time::Duration;

use nuvem_aws::Core;
use nuvem_aws::graph::{GraphClient, GraphConfig};
use nuvem_aws::http::Request;
use nuvem_aws::whatsapp_jobs::OutboundQueue;
use nuvem_testkit::fake_graph::{FakeGraph, GraphReply};
use nuvem_testkit::fixtures::{
    as_principal, http_event, reply, with_body, with_json, with_path_param, with_route,
    without_body,
};
use nuvem_testkit::inspect::{drain, scan_all};
use nuvem_testkit::{TestStack, tenants};
use serde_json::{Value, json};

const TOKEN: &str = "EAAGm0PX4ZCpsBAKv9ZBtoken";
const NUMBER: &str = "106540352242922";

struct World {
    t: TestStack,
    deps: whatsapp::Deps,
    graph: FakeGraph,
    account: String,
    other: String,
}

async fn world() -> World {
    let t = TestStack::new("whatsapp").await;
    let core = Core::from_lookup(&t.sdk, &t.env("Whatsapp")).unwrap();
    let account = tenants::active_account(&core.store, 1_000, 0).await.id;
    let other = tenants::active_account(&core.store, 1_000, 0).await.id;
    let graph = FakeGraph::start().await;
    graph.add_number(NUMBER, TOKEN, "+1 555-078-3881", "Cantina da Nonna");
    let deps = whatsapp::Deps {
        core,
        sealer: t.sealer(),
        graph: GraphClient::new(
            GraphConfig::new(&graph.url(), "v26.0", Duration::from_secs(5)).unwrap(),
        ),
        outbound: OutboundQueue::new(&t.sdk, &t.stack.queue("WhatsAppOutboundQueue").url),
    };
    World {
        t,
        deps,
        graph,
        account,
        other,
    }
}

impl World {
    async fn call_as(
        &self,
        account: &str,
        role: &str,
        route: &str,
        params: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req: Request =
            without_body(with_route(http_event("whatsapp/create-store.json"), route));
        for (name, value) in params {
            req = with_path_param(req, name, value);
        }
        if let Some(body) = body {
            req = with_json(req, &body);
        }
        let req = as_principal(req, account, "key_01jd0000000000000000000001", role);
        let (status, _, body) = reply(&whatsapp::handle(&self.deps, req).await);
        (status, body)
    }

    async fn owner(
        &self,
        route: &str,
        params: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_as(&self.account, "owner", route, params, body)
            .await
    }

    async fn new_store(&self, account: &str, name: &str) -> String {
        let (status, body) = self
            .call_as(
                account,
                "owner",
                "POST /v1/whatsapp/stores",
                &[],
                Some(json!({"name": name, "store_type": "restaurante"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }
}

fn number_body(phone_number_id: &str, token: &str) -> Value {
    json!({
        "phone_number_id": phone_number_id,
        "waba_id": "102290129340398",
        "display_phone_number": "+1 555-078-3881",
        "access_token": token,
    })
}

#[tokio::test]
async fn stores_are_created_read_changed_and_deleted() {
    let w = world().await;
    let (status, created) = w
        .owner(
            "POST /v1/whatsapp/stores",
            &[],
            Some(json!({
                "name": "Cantina da Nonna",
                "store_type": "restaurante",
                "bot_name": "Nonna",
                "forbidden": ["política"],
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["message_limit"], 30);
    assert_eq!(created["context_minutes"], 60);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["language"], "pt-BR");
    assert!(
        created["fallback_text"]
            .as_str()
            .unwrap()
            .starts_with("Obrigado")
    );
    let slots: Vec<(u64, &str)> = created["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["slot"].as_u64().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(slots, vec![(1, "empty"), (2, "empty"), (3, "empty")]);
    let id = created["id"].as_str().unwrap();

    let (status, changed) = w
        .owner(
            "PATCH /v1/whatsapp/stores/{id}",
            &[("id", id)],
            Some(json!({"language": "en", "message_limit": 5, "bot_name": null})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["message_limit"], 5);
    assert_eq!(changed["bot_name"], Value::Null);
    assert!(
        changed["fallback_text"]
            .as_str()
            .unwrap()
            .starts_with("Thank you")
    );
    assert_eq!(changed["name"], "Cantina da Nonna");

    // Operators read; only owners change.
    let (status, read) = w
        .call_as(
            &w.account,
            "operator",
            "GET /v1/whatsapp/stores/{id}",
            &[("id", id)],
            None,
        )
        .await;
    assert_eq!((status, &read["message_limit"]), (200, &json!(5)));
    let (status, _) = w
        .call_as(
            &w.account,
            "operator",
            "PATCH /v1/whatsapp/stores/{id}",
            &[("id", id)],
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, listed) = w
        .call_as(&w.account, "operator", "GET /v1/whatsapp/stores", &[], None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // Another account sees nothing of it.
    for route in [
        "GET /v1/whatsapp/stores/{id}",
        "PATCH /v1/whatsapp/stores/{id}",
        "DELETE /v1/whatsapp/stores/{id}",
    ] {
        let (status, body) = w
            .call_as(
                &w.other,
                "owner",
                route,
                &[("id", id)],
                Some(json!({"enabled": false})),
            )
            .await;
        assert_eq!(status, 404, "{route}: {body}");
    }
    let (_, theirs) = w
        .call_as(&w.other, "owner", "GET /v1/whatsapp/stores", &[], None)
        .await;
    assert_eq!(theirs["items"], json!([]));

    let (status, _) = w
        .owner("DELETE /v1/whatsapp/stores/{id}", &[("id", id)], None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = w
        .owner("GET /v1/whatsapp/stores/{id}", &[("id", id)], None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = w
        .owner(
            "GET /v1/whatsapp/stores/{id}",
            &[("id", "not-a-store")],
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_store_requests_are_refused_and_store_nothing() {
    let w = world().await;
    let cases = [
        (
            json!({"name": "Loja", "store_type": "loja", "colour": "red"}),
            422,
        ),
        (json!({"name": " ", "store_type": "loja"}), 422),
        (
            json!({"name": "Loja", "store_type": "loja", "message_limit": 0}),
            422,
        ),
        (
            json!({"name": "Loja", "store_type": "loja", "context_minutes": "60"}),
            422,
        ),
        (
            json!({"name": "Loja", "store_type": "loja", "language": "fr"}),
            422,
        ),
        (json!(["not", "an", "object"]), 422),
    ];
    for (body, expected) in cases {
        let (status, problem) = w
            .owner("POST /v1/whatsapp/stores", &[], Some(body.clone()))
            .await;
        assert_eq!(status, expected, "{body} → {problem}");
    }
    let req = as_principal(
        with_body(
            with_route(
                http_event("whatsapp/create-store.json"),
                "POST /v1/whatsapp/stores",
            ),
            "{not json",
        ),
        &w.account,
        "key_01jd0000000000000000000001",
        "owner",
    );
    let (status, _, _) = reply(&whatsapp::handle(&w.deps, req).await);
    assert_eq!(status, 400);
    let stored = scan_all(&aws_sdk_dynamodb::Client::new(&w.t.sdk), w.t.table()).await;
    assert!(
        !stored.iter().any(|i| i
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .is_some_and(|s| s.starts_with("WASTORE#"))),
        "nothing stored"
    );
}

#[tokio::test]
async fn an_account_has_at_most_twenty_stores() {
    let w = world().await;
    for i in 0..20 {
        w.new_store(&w.account, &format!("Loja {i}")).await;
    }
    let (status, problem) = w
        .owner(
            "POST /v1/whatsapp/stores",
            &[],
            Some(json!({"name": "Loja 21", "store_type": "loja"})),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
}

#[tokio::test]
async fn numbers_are_checked_claimed_once_and_never_show_their_token() {
    let w = world().await;
    let store = w.new_store(&w.account, "Cantina").await;
    let theirs = w.new_store(&w.other, "Outra").await;
    let slot1 = [("id", store.as_str()), ("slot", "1")];

    let (status, saved) = w
        .owner(
            "PUT /v1/whatsapp/stores/{id}/numbers/{slot}",
            &slot1,
            Some(number_body(NUMBER, TOKEN)),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["status"], "connected");
    assert_eq!(saved["display_phone_number"], "+15550783881");
    assert!(!saved.to_string().contains(TOKEN));
    let checks = w.graph.checks();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].bearer(), Some(TOKEN));

    // The token is sealed in the table, never in the clear.
    let stored = scan_all(&aws_sdk_dynamodb::Client::new(&w.t.sdk), w.t.table()).await;
    assert!(!format!("{stored:?}").contains(TOKEN));

    // The same number in another account's store, or another slot: 409.
    let (status, _) = w
        .call_as(
            &w.other,
            "owner",
            "PUT /v1/whatsapp/stores/{id}/numbers/{slot}",
            &[("id", theirs.as_str()), ("slot", "1")],
            Some(number_body(NUMBER, TOKEN)),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = w
        .owner(
            "PUT /v1/whatsapp/stores/{id}/numbers/{slot}",
            &[("id", store.as_str()), ("slot", "2")],
            Some(number_body(NUMBER, TOKEN)),
        )
        .await;
    assert_eq!(status, 409);

    // A wrong token is saved with Meta's error; slots outside 1–3 are 404.
    let (status, wrong) = w
        .owner(
            "PUT /v1/whatsapp/stores/{id}/numbers/{slot}",
            &[("id", store.as_str()), ("slot", "3")],
            Some(number_body("200", "EAAGwrong")),
        )
        .await;
    assert_eq!(status, 200, "{wrong}");
    assert_eq!(wrong["status"], "error");
    assert!(wrong["error"]["code"].is_i64(), "{wrong}");
    for slot in ["0", "4", "x"] {
        let (status, _) = w
            .owner(
                "PUT /v1/whatsapp/stores/{id}/numbers/{slot}",
                &[("id", store.as_str()), ("slot", slot)],
                Some(number_body("300", TOKEN)),
            )
            .await;
        assert_eq!(status, 404, "slot {slot}");
    }
    let (status, problem) = w
        .owner(
            "PUT /v1/whatsapp/stores/{id}/numbers/{slot}",
            &[("id", store.as_str()), ("slot", "2")],
            Some(json!({"phone_number_id": "12a", "waba_id": "1", "display_phone_number": "x", "access_token": ""})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(!problem.to_string().contains("EAAG"));

    // Checking again: the token expired at Meta.
    w.graph.script(NUMBER, [GraphReply::token_expired()]);
    let (status, checked) = w
        .call_as(
            &w.account,
            "operator",
            "POST /v1/whatsapp/stores/{id}/numbers/{slot}/check",
            &slot1,
            None,
        )
        .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["status"], "error");
    assert_eq!(checked["error"]["code"], 190);
    let changes: Vec<Value> = drain(&w.t.sqs, w.t.events_queue(), 100)
        .await
        .into_iter()
        .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap())
        .filter(|e| e["type"] == "whatsapp.number.status_changed")
        .collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["data"]["previous_status"], "connected");
    assert_eq!(changes[0]["data"]["status"], "error");
    assert_eq!(changes[0]["data"]["error"]["code"], 190);
    // Meta unavailable: the last known status stays.
    w.graph.script(NUMBER, [GraphReply::server_error(503)]);
    let (_, store_view) = w
        .owner(
            "GET /v1/whatsapp/stores/{id}",
            &[("id", store.as_str())],
            None,
        )
        .await;
    assert_eq!(store_view["numbers"][0]["status"], "error");
    let (status, checked) = w
        .owner(
            "POST /v1/whatsapp/stores/{id}/numbers/{slot}/check",
            &slot1,
            None,
        )
        .await;
    assert_eq!(status, 503, "{checked}");
    let (_, store_view) = w
        .owner(
            "GET /v1/whatsapp/stores/{id}",
            &[("id", store.as_str())],
            None,
        )
        .await;
    assert_eq!(
        store_view["numbers"][0]["status"], "error",
        "kept: {store_view}"
    );

    // Emptying the slot frees the number for another account's store.
    let (status, _) = w
        .owner(
            "DELETE /v1/whatsapp/stores/{id}/numbers/{slot}",
            &slot1,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = w
        .owner(
            "DELETE /v1/whatsapp/stores/{id}/numbers/{slot}",
            &slot1,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = w
        .call_as(
            &w.other,
            "owner",
            "PUT /v1/whatsapp/stores/{id}/numbers/{slot}",
            &[("id", theirs.as_str()), ("slot", "1")],
            Some(number_body(NUMBER, TOKEN)),
        )
        .await;
    assert_eq!(status, 200);
    let route = w
        .deps
        .core
        .store
        .whatsapp_route(NUMBER)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(route.account_id, w.other);
}

#[tokio::test]
async fn messages_are_queued_from_a_number_that_can_send() {
    let w = world().await;
    let store = w.new_store(&w.account, "Cantina da Nonna").await;
    let params = [("id", store.as_str())];
    let send = |body: Value| {
        w.call_as(
            &w.account,
            "operator",
            "POST /v1/whatsapp/stores/{id}/messages",
            &params,
            Some(body),
        )
    };
    // No number yet: nothing can be sent.
    let (status, problem) = send(json!({"to": "+55 11 91234-5678", "text": "Olá!"})).await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = w
        .owner(
            "PUT /v1/whatsapp/stores/{id}/numbers/{slot}",
            &[("id", store.as_str()), ("slot", "2")],
            Some(number_body(NUMBER, TOKEN)),
        )
        .await;
    assert_eq!(status, 200);

    let (status, queued) =
        send(json!({"to": "+55 11 91234-5678", "text": "  Seu pedido saiu!  "})).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["state"], "queued");
    assert_eq!(queued["to"], json!({"phone": "5511912345678"}));
    assert_eq!(
        queued["message"],
        json!({"type": "text", "text": {"body": "Seu pedido saiu!"}})
    );
    assert_eq!(queued["phone_number_id"], NUMBER);
    let (status, template) = send(json!({
        "to": "BR.13491208655302741918",
        "template": {"name": "pedido_pronto", "language": "pt_BR", "parameters": ["Ana"]},
        "slot": 2
    }))
    .await;
    assert_eq!(status, 202, "{template}");
    // One job per message, naming it.
    let jobs = drain(&w.t.sqs, &w.t.stack.queue("WhatsAppOutboundQueue").url, 10).await;
    let mut named: Vec<String> = jobs
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["outbound_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    named.sort();
    let mut expected = vec![
        queued["id"].as_str().unwrap().to_owned(),
        template["id"].as_str().unwrap().to_owned(),
    ];
    expected.sort();
    assert_eq!(named, expected);
    // The phone's conversation is the one a message from them lands in.
    let conversation = w
        .deps
        .core
        .store
        .resolve_conversation(
            &w.account,
            &store,
            &nuvem_domain::whatsapp::identity::CustomerIds::new(Some("5511912345678"), None),
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued["conversation_id"], conversation.id.as_str());

    // Refused, and nothing queued: bad bodies, empty slots, another
    // account's store, a role that may not send.
    for (body, field) in [
        (json!({"to": "+55 11 91234-5678"}), "text"),
        (json!({"to": "abc", "text": "x"}), "to"),
        (
            json!({"to": "5511912345678", "text": "x".repeat(4097)}),
            "text",
        ),
        (
            json!({"to": "5511912345678", "text": "x", "slot": 7}),
            "slot",
        ),
    ] {
        let (status, problem) = send(body).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let (status, _) = send(json!({"to": "5511912345678", "text": "x", "slot": 1})).await;
    assert_eq!(status, 409);
    let (status, _) = w
        .call_as(
            &w.other,
            "owner",
            "POST /v1/whatsapp/stores/{id}/messages",
            &[("id", store.as_str())],
            Some(json!({"to": "5511912345678", "text": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        drain(&w.t.sqs, &w.t.stack.queue("WhatsAppOutboundQueue").url, 10)
            .await
            .is_empty()
    );
}
