//! The Lambda entry points shared by every function's `main.rs`.

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::IntoResponse;
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
    lambda_http::run(service_fn(|request: Request| {
        // Boxed: a handler's future nests one future per route and SDK call,
        // deep enough to overflow the compiler's layout query depth inline.
        let fut: Pin<Box<dyn Future<Output = Response> + Send + '_>> = Box::pin(handler(request));
        async move {
            let response = fut.await;
            crate::metrics::flush();
            Ok::<_, Error>(Finished(response))
        }
    }))
    .await
}

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
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        // Boxed for the same reason as in `serve_http`.
        let fut: Pin<Box<dyn Future<Output = SqsBatchResponse> + '_>> =
            Box::pin(handler(event.payload));
        async move {
            let response = fut.await;
            crate::metrics::flush();
            Ok::<_, Error>(response)
        }
    }))
    .await
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
            let id = record.message_id.clone().unwrap_or_default();
            tracing::warn!(message_id = %id, error = %e, "record failed; it will be retried");
            let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
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
