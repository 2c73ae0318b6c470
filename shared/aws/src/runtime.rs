//! The Lambda entry points shared by every function's `main.rs`.

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_http::{IntoResponse, Service};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::http::{Request, Response};

/// Serves an HTTP API handler through `lambda_http`. Client mistakes are
/// answers, not errors, so the handler returns a `Response` for every request.
pub async fn serve_http<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response> + Send,
{
    crate::metrics::install();
    let mut adapter = lambda_http::Adapter::from(service_fn(|request: Request| {
        // Boxed: a handler's future nests one future per route and SDK call,
        // deep enough to overflow the compiler's layout query depth inline.
        let fut: Pin<Box<dyn Future<Output = Response> + Send + '_>> = Box::pin(handler(request));
        async move {
            let response = fut.await;
            crate::metrics::flush();
            Ok::<_, Error>(Finished(response))
        }
    }));
    lambda_runtime::run(service_fn(
        move |mut event: LambdaEvent<lambda_http::request::LambdaRequest>| {
            encode_raw_query(&mut event.payload);
            adapter.call(event)
        },
    ))
    .await
}

/// `lambda_http` builds the request's URI from `rawQueryString` as the
/// client sent it, and panics ("failed to build request") on bytes a URI
/// cannot hold, such as a raw `"` or space: the invocation would crash
/// before any handler, and the client get the gateway's 500. Such a query
/// is percent-encoded first, as a careful client would have sent it; its
/// parameters decode to the same text.
fn encode_raw_query(payload: &mut lambda_http::request::LambdaRequest) {
    let lambda_http::request::LambdaRequest::ApiGatewayV2(event) = payload else {
        return;
    };
    let Some(query) = event.raw_query_string.as_mut() else {
        return;
    };
    if let std::borrow::Cow::Owned(encoded) =
        percent_encoding::utf8_percent_encode(query, NOT_QUERY).into()
    {
        *query = encoded;
    }
}

/// What a query may not hold as is: every byte but RFC 3986's query
/// characters and `%` (escapes pass as sent); non-ASCII bytes always.
const NOT_QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'/')
    .remove(b'?')
    .remove(b'%');

/// An answer whose body is already what API Gateway gets: UTF-8 JSON text,
/// or nothing. `lambda_http`'s own `IntoResponse` for `http::Response`
/// re-decodes text bodies by their `charset`, which links every legacy
/// encoding of `encoding_rs` (about 180 KB of each HTTP function's 8 MB
/// budget) for answers that are always UTF-8.
struct Finished(Response);

impl IntoResponse for Finished {
    fn into_response(self) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        Box::pin(std::future::ready(self.0))
    }
}

/// Serves an SQS consumer that reports partial batch failures.
pub async fn serve_sqs<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    crate::metrics::install();
    let dead_letters = std::sync::OnceLock::new();
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        // Boxed for the same reason as in `serve_http`.
        let fut: Pin<Box<dyn Future<Output = SqsBatchResponse> + '_>> =
            Box::pin(handler(event.payload));
        let dead_letters = &dead_letters;
        async move {
            let response = set_aside(fut.await, dead_letters).await;
            crate::metrics::flush();
            Ok::<_, Error>(response)
        }
    }))
    .await
}

thread_local! {
    /// The records of this invocation whose body can never be read. Every
    /// function runs on a current-thread runtime without spawned tasks, so
    /// an invocation sets them aside and collects them on one thread.
    static UNREADABLE: std::cell::RefCell<Vec<SqsMessage>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A record's JSON body as `T`. A body that does not parse never will, so
/// the record is not failed (SQS would deliver the same bytes again, up to
/// its queue's `maxReceiveCount`): it is logged, counted
/// (`UnreadableMessages`) and set aside, and [`set_aside`] moves it to the
/// consumer's dead-letter queue when the invocation ends. `None` then: the
/// consumer is done with the record.
pub fn read_body<T: serde::de::DeserializeOwned>(record: &SqsMessage, what: &str) -> Option<T> {
    match serde_json::from_str(record.body.as_deref().unwrap_or("")) {
        Ok(value) => Some(value),
        Err(e) => unreadable(record, what, &e),
    }
}

/// A record's body as an S3 notification, the way [`read_body`] reads
/// other bodies; `None` too for the `s3:TestEvent` S3 sends when
/// notifications are configured (nothing to do).
pub fn read_s3_notification(record: &SqsMessage) -> Option<nuvem_domain::s3_event::Notification> {
    match nuvem_domain::s3_event::Notification::parse(record.body.as_deref().unwrap_or("")) {
        Ok(notification) => notification,
        Err(e) => unreadable(record, "S3 notification", &e),
    }
}

fn unreadable<T>(record: &SqsMessage, what: &str, error: &dyn std::fmt::Display) -> Option<T> {
    let id = record.message_id.as_deref().unwrap_or_default();
    tracing::error!(message_id = %id, error = %error, "not a {what}: set aside for the dead-letter queue");
    crate::metrics::unreadable_message();
    UNREADABLE.with(|u| u.borrow_mut().push(record.clone()));
    None
}

/// Sends the records [`read_body`] set aside in this invocation to the
/// consumer's dead-letter queue, as they came (body and attributes). One that
/// cannot be sent there is reported as failed instead: SQS delivers it again
/// and its queue's redrive policy moves it to the same place in the end.
/// The queue is made from the environment when first needed
/// ([`DeadLetterQueue::from_env`]).
pub async fn set_aside(
    mut response: SqsBatchResponse,
    dead_letters: &std::sync::OnceLock<Option<DeadLetterQueue>>,
) -> SqsBatchResponse {
    let unreadable = UNREADABLE.with(|u| std::mem::take(&mut *u.borrow_mut()));
    if unreadable.is_empty() {
        return response;
    }
    let dead_letters = dead_letters.get_or_init(DeadLetterQueue::from_env).as_ref();
    for record in unreadable {
        let sent = match dead_letters {
            Some(dlq) => dlq.send(&record).await,
            None => Err("no DEAD_LETTER_QUEUE_URL".to_owned()),
        };
        if let Err(e) = sent {
            report_failed(
                &mut response,
                &record,
                &e,
                "not set aside; it will come back",
            );
        }
    }
    response
}

/// A consumer's dead-letter queue (`DEAD_LETTER_QUEUE_URL`), for the records
/// it sets aside; its client is built on first use only.
pub struct DeadLetterQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl DeadLetterQueue {
    pub fn new(sdk: &aws_config::SdkConfig, url: impl Into<String>) -> Self {
        DeadLetterQueue {
            sqs: aws_sdk_sqs::Client::new(sdk),
            url: url.into(),
        }
    }

    /// The queue of `DEAD_LETTER_QUEUE_URL`, if the function has one.
    pub fn from_env() -> Option<DeadLetterQueue> {
        let url = std::env::var("DEAD_LETTER_QUEUE_URL").ok()?;
        Some(DeadLetterQueue::new(
            &crate::config::lambda_sdk_config(),
            url,
        ))
    }

    async fn send(&self, record: &SqsMessage) -> Result<(), String> {
        let mut send = self
            .sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(record.body.clone().unwrap_or_default());
        for (name, attribute) in &record.message_attributes {
            let value = aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type(
                    attribute
                        .data_type
                        .clone()
                        .unwrap_or_else(|| "String".into()),
                )
                .set_string_value(attribute.string_value.clone())
                .build()
                .map_err(|e| e.to_string())?;
            send = send.message_attributes(name, value);
        }
        send.send().await.map(drop).map_err(|e| e.to_string())
    }
}

/// Runs `process` on each record of a batch in turn and reports the ones
/// that failed, so SQS redelivers only those (their message ids).
pub async fn each_record<'a, F, Fut>(
    event: &'a aws_lambda_events::sqs::SqsEvent,
    process: F,
) -> aws_lambda_events::sqs::SqsBatchResponse
where
    F: Fn(&'a aws_lambda_events::sqs::SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
    for record in &event.records {
        if let Err(e) = process(record).await {
            report_failed(
                &mut response,
                record,
                &e,
                "record failed; it will be retried",
            );
        }
    }
    response
}

/// Logs why `record` failed and reports it in `response`, so SQS delivers
/// it again (its queue's redrive policy ends with the dead-letter queue).
pub fn report_failed(
    response: &mut SqsBatchResponse,
    record: &SqsMessage,
    error: &str,
    what: &'static str,
) {
    let id = record.message_id.clone().unwrap_or_default();
    tracing::warn!(message_id = %id, error = %error, "{what}");
    let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
    failure.item_identifier = id;
    response.batch_item_failures.push(failure);
}

/// When a scheduled function should stop taking on work: Lambda's deadline
/// for the invocation (`context.deadline`, epoch milliseconds) less
/// `margin`, kept back to save where it stopped; a minute from `now` when
/// the deadline is unreadable.
pub fn stop_by(
    deadline_ms: u64,
    now: chrono::DateTime<chrono::Utc>,
    margin: chrono::Duration,
) -> chrono::DateTime<chrono::Utc> {
    i64::try_from(deadline_ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or(now + chrono::Duration::minutes(1))
        - margin
}

#[cfg(test)]
mod tests {
    use lambda_http::RequestExt;
    use lambda_http::request::LambdaRequest;
    use proptest::prelude::*;

    use super::*;

    fn event_with_query(query: &str) -> LambdaRequest {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/keys/list-keys.json")).unwrap();
        event["rawQueryString"] = query.into();
        serde_json::from_value(event).unwrap()
    }

    fn request_of(query: &str) -> Request {
        let mut payload = event_with_query(query);
        encode_raw_query(&mut payload);
        payload.into()
    }

    #[test]
    fn a_raw_query_a_uri_cannot_hold_reaches_the_handler_as_sent() {
        let request = request_of("limit=\"5\"&name=caf\u{e9} au lait&bad=%zz&ok=a%20b");
        let query = request.query_string_parameters();
        assert_eq!(query.first("limit"), Some("\"5\""));
        assert_eq!(query.first("name"), Some("caf\u{e9} au lait"));
        assert_eq!(query.first("bad"), Some("%zz"));
        assert_eq!(query.first("ok"), Some("a b"));
        // A query a URI can hold is left exactly as sent.
        let request = request_of("limit=5&cursor=eyJwayI6IkEifQ");
        assert_eq!(request.uri().query(), Some("limit=5&cursor=eyJwayI6IkEifQ"));
    }

    proptest! {
        #[test]
        fn any_raw_query_becomes_a_request(query in "\\PC{0,40}") {
            let request = request_of(&query);
            let _ = request.query_string_parameters();
        }
    }
}
