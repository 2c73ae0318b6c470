use lambda_runtime::{Error, LambdaEvent, service_fn};
use nuvem_aws::{Core, config};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = outbox_relay::Deps {
        core: Core::from_env(&sdk)?,
    };
    // The EventBridge scheduled event carries nothing the relay needs.
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
        let deps = &deps;
        async move { Ok::<_, Error>(outbox_relay::handle(deps, chrono::Utc::now()).await) }
    }))
    .await
}
