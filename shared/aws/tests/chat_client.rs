//! `ChatClient` against the fake chat-completions API: replies, what is
//! retried (429 honouring `Retry-After`, 5xx, timeouts) and what is not
//! (401, 402, an error in a 200, empty content). Waits are recorded, not
//! slept, except in one test that sleeps a few milliseconds for real.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nuvem_aws::chat::{ApiKey, ChatClient, ChatConfig, ChatFailure, ChatMessage, RetryPolicy};
use nuvem_testkit::fake_chat::{ChatReply, FakeChat};

const KEY: &str = "sk-or-v1-test-key";
const MODEL: &str = "openai/gpt-4o-mini";

type Waits = Arc<Mutex<Vec<Duration>>>;

fn config(chat: &FakeChat, key: &str) -> ChatConfig {
    let mut config = ChatConfig::new(&chat.url(), MODEL, ApiKey::new(key)).unwrap();
    config.timeout = Duration::from_millis(300);
    config
}

/// A client whose waits are recorded instead of slept.
fn recording(config: ChatConfig) -> (ChatClient, Waits) {
    let waits = Waits::default();
    let record = waits.clone();
    let client = ChatClient::new(config).with_sleep(move |wait| {
        record.lock().unwrap().push(wait);
        async {}
    });
    (client, waits)
}

async fn setup() -> (FakeChat, ChatClient, Waits) {
    let chat = FakeChat::start(KEY).await;
    let (client, waits) = recording(config(&chat, KEY));
    (chat, client, waits)
}

fn messages(text: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("Você é a Bia, da Loja Exemplo."),
        ChatMessage::user("Oi"),
        ChatMessage::assistant("Olá! Como posso ajudar?"),
        ChatMessage::user(text),
    ]
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test]
async fn a_completion_returns_the_reply_text() {
    let (chat, client, _) = setup().await;
    let reply = client
        .complete(&messages("Vocês abrem domingo?"))
        .await
        .unwrap();
    assert_eq!(reply, "Resposta: Vocês abrem domingo?");

    let requests = chat.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/api/v1/chat/completions");
    assert_eq!(request.model(), Some(MODEL));
    assert_eq!(request.body["stream"], false);
    assert_eq!(request.messages().len(), 4);
    assert_eq!(request.messages()[2].0, "assistant");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[tokio::test]
async fn retries_honour_retry_after_then_succeed() {
    let (chat, client, waits) = setup().await;
    chat.reply([
        ChatReply::rate_limited(Some(5)),
        ChatReply::server_error(502),
    ]);
    let reply = client
        .complete_with_retries(&messages("Tem entrega?"), 3)
        .await
        .unwrap();
    assert_eq!(reply, "Resposta: Tem entrega?");
    assert_eq!(chat.requests().len(), 3);
    // Retry-After (5 s) over the first backoff (1 s); then the second
    // backoff (2 s).
    assert_eq!(*waits.lock().unwrap(), [secs(5), secs(2)]);
}

#[tokio::test]
async fn no_credits_and_a_bad_key_are_not_retried() {
    let (chat, client, waits) = setup().await;
    chat.reply([ChatReply::no_credits()]);
    let failure = client
        .complete_with_retries(&messages("x"), 5)
        .await
        .unwrap_err();
    let ChatFailure::Fatal { status, message } = &failure else {
        panic!("{failure:?}")
    };
    assert_eq!(*status, 402);
    assert!(message.starts_with("Insufficient credits"), "{message}");
    assert_eq!(chat.requests().len(), 1);

    let (wrong, _) = recording(config(&chat, "sk-or-v1-wrong"));
    let failure = wrong
        .complete_with_retries(&messages("x"), 5)
        .await
        .unwrap_err();
    assert_eq!(
        failure,
        ChatFailure::Fatal {
            status: 401,
            message: "User not found.".into()
        }
    );
    assert!(!failure.to_string().contains("wrong"));
    assert_eq!(chat.requests().len(), 2);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_error_in_a_200_or_an_empty_answer_is_a_failure_not_a_reply() {
    let (chat, client, waits) = setup().await;
    let replies = [
        ChatReply::error_in_body(502, "Provider disconnected"),
        ChatReply::choice_error(500, "Model crashed"),
        ChatReply::empty(),
        ChatReply::text("  \n "),
        ChatReply::null_content(),
        ChatReply::no_choices(),
        ChatReply::raw(200, "<html>not json</html>"),
    ];
    let n = replies.len();
    chat.reply(replies);
    for _ in 0..n {
        let failure = client
            .complete_with_retries(&messages("x"), 3)
            .await
            .unwrap_err();
        assert!(
            matches!(failure, ChatFailure::Invalid { .. }),
            "{failure:?}"
        );
    }
    assert_eq!(chat.requests().len(), n, "none retried");
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_timeout_is_retryable() {
    let (chat, client, waits) = setup().await;
    chat.reply([ChatReply::echo().delay(Duration::from_secs(2))]);
    let failure = client.complete(&messages("x")).await.unwrap_err();
    assert_eq!(
        failure,
        ChatFailure::Retryable {
            retry_after: None,
            reason: "timed out".into()
        }
    );

    chat.reply([ChatReply::echo().delay(Duration::from_secs(2))]);
    let reply = client
        .complete_with_retries(&messages("de novo"), 2)
        .await
        .unwrap();
    assert_eq!(reply, "Resposta: de novo");
    assert_eq!(*waits.lock().unwrap(), [secs(1)]);
}

#[tokio::test]
async fn retries_stop_at_the_attempt_limit_or_the_budget() {
    let (chat, client, waits) = setup().await;
    chat.reply([
        ChatReply::server_error(503),
        ChatReply::server_error(503),
        ChatReply::server_error(500),
    ]);
    let failure = client
        .complete_with_retries(&messages("x"), 3)
        .await
        .unwrap_err();
    assert!(failure.is_retryable());
    assert!(failure.to_string().contains("HTTP 500"), "{failure}");
    assert_eq!(chat.requests().len(), 3);
    assert_eq!(*waits.lock().unwrap(), [secs(1), secs(2)]);

    // A Retry-After longer than the budget allows ends the retries at once:
    // the caller hands over rather than answer minutes later.
    waits.lock().unwrap().clear();
    chat.reply([ChatReply::rate_limited(Some(120))]);
    let failure = client
        .complete_with_retries(&messages("x"), 3)
        .await
        .unwrap_err();
    assert_eq!(
        failure,
        ChatFailure::Retryable {
            retry_after: Some(secs(120)),
            reason: "HTTP 429: Rate limit exceeded: free-models-per-min.".into()
        }
    );
    assert_eq!(chat.requests().len(), 4);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_default_sleep_waits_for_real() {
    let chat = FakeChat::start(KEY).await;
    let mut config = config(&chat, KEY);
    config.retry = RetryPolicy {
        first_backoff: Duration::from_millis(30),
        max_backoff: Duration::from_millis(60),
        budget: secs(5),
        min_attempt: Duration::from_millis(100),
    };
    let client = ChatClient::new(config);
    chat.reply([ChatReply::rate_limited(None), ChatReply::server_error(500)]);
    let started = std::time::Instant::now();
    let reply = client
        .complete_with_retries(&messages("x"), 3)
        .await
        .unwrap();
    assert_eq!(reply, "Resposta: x");
    let requests = chat.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(30));
    assert!(requests[2].at - requests[1].at >= Duration::from_millis(60));
    assert!(started.elapsed() < secs(2));
}
