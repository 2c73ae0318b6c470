use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use nuvem_aws::blobs::Blobs;
use nuvem_aws::{Core, config, runtime};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = usage_reconciler::Deps::new(Core::from_env(&sdk)?, Blobs::new(&sdk));
    // The EventBridge scheduled event carries nothing the reconciler needs.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move {
            let now = Utc::now();
            let deadline =
                runtime::stop_by(event.context.deadline, now, usage_reconciler::SAFETY_MARGIN);
            Ok::<_, Error>(usage_reconciler::handle(deps, now, deadline).await)
        }
    }))
    .await
}
