use nuvem_aws::graph::{GraphClient, GraphConfig};
use nuvem_aws::secrets::Sealer;
use nuvem_aws::whatsapp_jobs::OutboundQueue;
use nuvem_aws::{Core, config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = whatsapp::Deps {
        core: Core::from_env(&sdk)?,
        sealer: Sealer::from_env(&sdk)?,
        graph: GraphClient::new(GraphConfig::from_lookup(&|name| std::env::var(name).ok())?),
        outbound: OutboundQueue::new(&sdk, config::env("OUTBOUND_QUEUE_URL")?),
    };
    nuvem_aws::runtime::serve_http(|req| whatsapp::handle(&deps, req)).await
}
