//! The Lambda entry points shared by every function's `main.rs`.

use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::http::{Request, Response};

/// Serves an HTTP API handler. Client mistakes are answers, not errors, so
/// the handler returns a `Response` for every request.
pub async fn serve_http<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<Request>| {
        let fut = handler(event.payload);
        async move { Ok::<_, Error>(fut.await) }
    }))
    .await
}

/// Serves an SQS consumer that reports partial batch failures.
pub async fn serve_sqs<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let fut = handler(event.payload);
        async move { Ok::<_, Error>(fut.await) }
    }))
    .await
}
