use nuvem_aws::deliveries::DeliveryQueue;
use nuvem_aws::secrets::Sealer;
use nuvem_aws::webhook::Sender;
use nuvem_aws::{Core, config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = webhook_delivery::Deps {
        core: Core::from_env(&sdk)?,
        queue: DeliveryQueue::new(&sdk, config::env("DELIVERIES_QUEUE_URL")?),
        sender: Sender::new(config::env_or("WEBHOOK_ALLOW_LOOPBACK", false)?),
        sealer: Sealer::from_env(&sdk)?,
    };
    nuvem_aws::runtime::serve_sqs(|event| webhook_delivery::handle(&deps, event)).await
}
