//! Telling an AWS call that may succeed if repeated later (the service was
//! slow, busy or down) from one that will not: the first is a 503 with
//! `Retry-After` for an API client, the second a fault to fix.

use aws_smithy_runtime_api::client::result::SdkError;
// The trait every SDK crate re-exports from aws-smithy-types.
use aws_sdk_dynamodb::error::ProvideErrorMetadata;

/// The error codes AWS services answer when they are throttling or failing
/// (DynamoDB, SQS, S3, KMS, SES, Secrets Manager): the SDK retried them and
/// gave up, and a later request may pass.
const BUSY_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "RequestThrottled",
    "KMSInternalException",
    "InternalServerError",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// Whether the call failed because the service was slow (the operation
/// timeout of [`crate::config::lambda_sdk_config`]), unreachable, busy or
/// failing, rather than because of the request.
pub fn is_unavailable<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => {
            failure.is_timeout() || failure.is_io() || failure.is_other()
        }
        SdkError::ServiceError(_) => e.code().is_some_and(|code| BUSY_CODES.contains(&code)),
        _ => false,
    }
}

/// `e` as the error its caller keeps: `unavailable(text)` when the same
/// call may pass later ([`is_unavailable`]), else `other(text)`, the text
/// being the SDK's full description of the failure.
pub fn classify<E, R, T>(
    e: SdkError<E, R>,
    unavailable: impl FnOnce(String) -> T,
    other: impl FnOnce(String) -> T,
) -> T
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let busy = is_unavailable(&e);
    let text = aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string();
    if busy { unavailable(text) } else { other(text) }
}

/// An error that says whether the same call may pass later; an HTTP route
/// answers it with 503 and `Retry-After` (see `http::Problem::fault`).
pub trait Unavailable {
    fn is_unavailable(&self) -> bool;
}
