use nuvem_aws::deliveries::DeliveryQueue;
use nuvem_aws::secrets::Sealer;
use nuvem_aws::webhook::Sender;
use nuvem_aws::{Core, config};
use nuvem_domain::webhook::endpoint::UrlPolicy;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let allow_loopback = config::env_or("WEBHOOK_ALLOW_LOOPBACK", false)?;
    let deps = webhooks::Deps {
        core: Core::from_env(&sdk)?,
        deliveries: DeliveryQueue::new(&sdk, config::env("DELIVERIES_QUEUE_URL")?),
        sender: Sender::new(allow_loopback),
        url_policy: UrlPolicy { allow_loopback },
        sealer: Sealer::from_env(&sdk)?,
    };
    nuvem_aws::runtime::serve_http(|req| webhooks::handle(&deps, req)).await
}
