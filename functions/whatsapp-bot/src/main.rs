use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::graph::{GraphClient, GraphConfig};
use nuvem_aws::secrets::Sealer;
use nuvem_aws::whatsapp_jobs::OutboundQueue;
use nuvem_aws::{Core, config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let lookup = |name: &str| std::env::var(name).ok();
    let deps = whatsapp_bot::Deps {
        core: Core::from_env(&sdk)?,
        sealer: Sealer::from_env(&sdk)?,
        graph: GraphClient::new(GraphConfig::from_lookup(&lookup)?),
        outbound: OutboundQueue::new(&sdk, config::env("OUTBOUND_QUEUE_URL")?),
        chat: whatsapp_bot::Chat::from_lookup(
            &lookup,
            DeploymentSecret::from_lookup(&sdk, &lookup, "CHAT_SECRET_ARN")?,
        )?,
    };
    nuvem_aws::runtime::serve_sqs(|event| whatsapp_bot::handle(&deps, event)).await
}
