//! `GraphClient` against the fake Graph API: request shapes, the wamid of a
//! send, and Meta's errors coming back as the domain classifies them.

use std::time::Duration;

use nuvem_aws::graph::{GraphClient, GraphConfig, GraphFailureOwned, status_after_check};
use nuvem_domain::whatsapp::graph_error::SendVerdict;
use nuvem_domain::whatsapp::identity::Recipient;
use nuvem_domain::whatsapp::store::{AccessToken, NumberStatus};
use nuvem_testkit::fake_graph::{Call, FakeGraph, GraphReply, MAX_TEXT_CHARS};
use serde_json::json;

const ID: &str = "106540352242922";
const TOKEN: &str = "EAAGm0PX4ZCpsBAKZAtoken";
const CUSTOMER: &str = "5511912345678";
const BSUID: &str = "US.13491208655302741918";

async fn setup() -> (FakeGraph, GraphClient) {
    let graph = FakeGraph::start().await;
    graph.add_number(ID, TOKEN, "+55 11 98765-4321", "Loja Exemplo");
    let config = GraphConfig::new(&graph.url(), "v26.0", Duration::from_millis(500)).unwrap();
    (graph, GraphClient::new(config))
}

fn token() -> AccessToken {
    AccessToken::parse(TOKEN).unwrap()
}

fn phone() -> Recipient {
    Recipient::Phone(CUSTOMER.into())
}

#[tokio::test]
async fn a_text_send_returns_the_wamid_meta_gave() {
    let (graph, client) = setup().await;
    let sent = client
        .send_text(ID, &token(), &phone(), "Olá! 😀", Some("wamid.inbound"))
        .await
        .unwrap();

    let sends = graph.sends();
    assert_eq!(sends.len(), 1);
    let request = &sends[0];
    assert_eq!(request.wamid.as_deref(), Some(sent.wamid.as_str()));
    assert!(sent.wamid.starts_with("wamid."));
    assert_eq!(sent.wa_id.as_deref(), Some(CUSTOMER));
    assert_eq!(sent.user_id, None);

    assert_eq!(request.path, format!("/v26.0/{ID}/messages"));
    assert_eq!(request.bearer(), Some(TOKEN));
    assert_eq!(
        request.body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "type": "text",
            "text": {"preview_url": false, "body": "Olá! 😀"},
            "context": {"message_id": "wamid.inbound"}
        })
    );
    // The token travels only in the Authorization header.
    assert!(!request.raw_body.contains(TOKEN) && !request.query.contains(TOKEN));

    // What a developer sees of it (`make dev`): the send, never the token.
    let seen: serde_json::Value = reqwest::get(format!("{}/_fake/requests", graph.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["requests"][0]["wamid"], sent.wamid.as_str());
    assert_eq!(seen["requests"][0]["body"]["text"]["body"], "Olá! 😀");
    assert!(!seen.to_string().contains(TOKEN));
    assert_eq!(graph.sends().len(), 1, "inspecting is not a Graph request");
}

#[tokio::test]
async fn a_customer_known_only_by_bsuid_is_addressed_with_recipient() {
    let (graph, client) = setup().await;
    let sent = client
        .send_text(ID, &token(), &Recipient::User(BSUID.into()), "Oi", None)
        .await
        .unwrap();
    assert_eq!(sent.user_id.as_deref(), Some(BSUID));
    assert_eq!(sent.wa_id, None);
    let body = &graph.sends()[0].body;
    assert_eq!(body["recipient"], BSUID);
    assert!(body.get("to").is_none() && body.get("context").is_none());
}

#[tokio::test]
async fn templates_carry_language_and_body_parameters() {
    let (graph, client) = setup().await;
    let params = vec!["Loja Exemplo".to_owned(), "80%".to_owned()];
    client
        .send_template(ID, &token(), &phone(), "aviso_cota", "pt_BR", &params)
        .await
        .unwrap();
    client
        .send_template(ID, &token(), &phone(), "ola", "en_US", &[])
        .await
        .unwrap();
    let sends = graph.sends();
    assert!(sends.iter().all(|s| s.accepted()));
    assert_eq!(
        sends[0].body["template"],
        json!({
            "name": "aviso_cota",
            "language": {"code": "pt_BR"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "Loja Exemplo"},
                {"type": "text", "text": "80%"}
            ]}]
        })
    );
    assert_eq!(sends[0].body["type"], "template");
    assert!(sends[1].body["template"].get("components").is_none());
}

#[tokio::test]
async fn mark_read_with_and_without_the_typing_indicator() {
    let (graph, client) = setup().await;
    client
        .mark_read(
            ID,
            &token(),
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA",
            true,
        )
        .await
        .unwrap();
    client
        .mark_read(ID, &token(), "wamid.second", false)
        .await
        .unwrap();
    let reads = graph.reads();
    assert_eq!(reads.len(), 2);
    assert!(reads.iter().all(|r| r.accepted()));
    assert_eq!(
        reads[0].body,
        json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA",
            "typing_indicator": {"type": "text"}
        })
    );
    assert!(!reads[1].typing());
    assert!(graph.sends().is_empty());
}

#[tokio::test]
async fn meta_error_codes_come_back_as_the_domain_classifies_them() {
    let (graph, client) = setup().await;
    let cases = [
        (GraphReply::rate_limited(), Some(130429), SendVerdict::Retry),
        (GraphReply::code(131056), Some(131056), SendVerdict::Retry),
        (GraphReply::code(80007), Some(80007), SendVerdict::Retry),
        (GraphReply::code(4), Some(4), SendVerdict::Retry),
        (
            GraphReply::outside_window(),
            Some(131047),
            SendVerdict::Failed,
        ),
        (GraphReply::code(131026), Some(131026), SendVerdict::Failed),
        (GraphReply::code(130472), Some(130472), SendVerdict::Failed),
        (
            GraphReply::token_expired(),
            Some(190),
            SendVerdict::NumberError,
        ),
        (GraphReply::blocked(), Some(368), SendVerdict::NumberError),
        (
            GraphReply::server_error(500),
            Some(131000),
            SendVerdict::Retry,
        ),
        (
            GraphReply::server_error(503),
            Some(131016),
            SendVerdict::Retry,
        ),
        (
            GraphReply::raw(502, "<html>Bad Gateway</html>"),
            None,
            SendVerdict::Retry,
        ),
        (GraphReply::raw(400, ""), None, SendVerdict::Failed),
        (
            GraphReply::error(400, 131999, "(#131999) Something new", "new"),
            Some(131999),
            SendVerdict::Failed,
        ),
    ];
    for (reply, code, verdict) in cases {
        graph.script(ID, [reply.clone()]);
        let failure = client
            .send_text(ID, &token(), &phone(), "x", None)
            .await
            .unwrap_err();
        assert_eq!(failure.code(), code, "{reply:?}");
        assert_eq!(failure.verdict(), verdict, "{failure}");
        assert!(matches!(failure, GraphFailureOwned::Response { .. }));
    }
    let expired = {
        graph.script(ID, [GraphReply::token_expired()]);
        client
            .send_text(ID, &token(), &phone(), "x", None)
            .await
            .unwrap_err()
    };
    assert_eq!(expired.status(), Some(401));
    assert_eq!(expired.error().unwrap().error_subcode, Some(463));
}

#[tokio::test]
async fn a_malformed_send_is_refused_and_failed() {
    let (_graph, client) = setup().await;
    let too_long = "a".repeat(MAX_TEXT_CHARS + 1);
    let failure = client
        .send_text(ID, &token(), &phone(), &too_long, None)
        .await
        .unwrap_err();
    assert_eq!((failure.status(), failure.code()), (Some(400), Some(100)));
    assert_eq!(failure.verdict(), SendVerdict::Failed);
}

#[tokio::test]
async fn number_checks_and_the_status_they_lead_to() {
    let (graph, client) = setup().await;
    let result = client.check_number(ID, &token()).await;
    let info = result.as_ref().unwrap();
    assert_eq!(info.id, ID);
    assert_eq!(
        info.display_phone_number.as_deref(),
        Some("+55 11 98765-4321")
    );
    assert_eq!(info.verified_name.as_deref(), Some("Loja Exemplo"));
    assert_eq!(info.quality_rating.as_deref(), Some("GREEN"));
    assert_eq!(info.platform_type.as_deref(), Some("CLOUD_API"));
    assert_eq!(status_after_check(&result), Some(NumberStatus::Connected));
    let check = &graph.checks()[0];
    assert_eq!(check.path, format!("/v26.0/{ID}"));
    assert!(check.query.starts_with("fields="));

    let wrong = client
        .check_number(ID, &AccessToken::parse("EAAwrong").unwrap())
        .await;
    let failure = wrong.as_ref().unwrap_err();
    assert_eq!((failure.status(), failure.code()), (Some(401), Some(190)));
    assert!(matches!(
        status_after_check(&wrong),
        Some(NumberStatus::Error { code: 190, .. })
    ));

    let unknown = client.check_number("999", &token()).await;
    assert_eq!(unknown.as_ref().unwrap_err().code(), Some(100));
    assert_eq!(
        status_after_check(&unknown),
        Some(NumberStatus::Disconnected)
    );

    graph.script(ID, [GraphReply::rate_limited().on(Call::Check)]);
    let throttled = client.check_number(ID, &token()).await;
    assert_eq!(status_after_check(&throttled), None);
}

#[tokio::test]
async fn a_timeout_or_an_unreachable_api_is_retried() {
    let (graph, client) = setup().await;
    graph.script(ID, [GraphReply::normal().delay(Duration::from_secs(2))]);
    let failure = client
        .send_text(ID, &token(), &phone(), "x", None)
        .await
        .unwrap_err();
    assert_eq!(failure, GraphFailureOwned::Timeout);
    assert_eq!(failure.verdict(), SendVerdict::Retry);

    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config =
        GraphConfig::new(&format!("http://{closed}"), "v26.0", Duration::from_secs(2)).unwrap();
    let failure = GraphClient::new(config)
        .send_text(ID, &token(), &phone(), "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(failure, GraphFailureOwned::Network(_)),
        "{failure}"
    );
    assert_eq!(failure.verdict(), SendVerdict::Retry);
    assert!(!failure.to_string().contains(TOKEN));
}
