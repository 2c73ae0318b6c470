//! The Lambda entry points shared by every function's `main.rs`.

use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::http::{Request, Response};

/// Serves an HTTP API handler through `lambda_http`. Client mistakes are
/// answers, not errors, so the handler returns a `Response` for every request.
pub async fn serve_http<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response> + Send,
{
    lambda_http::run(service_fn(|request: Request| {
        // Boxed: a handler's future nests one future per route and SDK call,
        // deep enough to overflow the compiler's layout query depth inline.
        let fut: Pin<Box<dyn Future<Output = Response> + Send + '_>> = Box::pin(handler(request));
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
        // Boxed for the same reason as in `serve_http`.
        let fut: Pin<Box<dyn Future<Output = SqsBatchResponse> + '_>> =
            Box::pin(handler(event.payload));
        async move { Ok::<_, Error>(fut.await) }
    }))
    .await
}
