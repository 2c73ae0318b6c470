//! The floor of a Rust Lambda's cold start: `lambda_runtime` on a
//! current-thread runtime answering its event, nothing else. `make measure`
//! reports each function's init as a multiple of this one's.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
