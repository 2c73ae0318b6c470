use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::invoices::Invoices;
use nuvem_aws::rpa_api::{RpaApiConfig, RpaClient};
use nuvem_aws::rpa_jobs::RpaJobQueue;
use nuvem_aws::secrets::Sealer;
use nuvem_aws::{Core, config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let lookup = |name: &str| std::env::var(name).ok();
    let deps = rpa_worker::Deps {
        core: Core::from_env(&sdk)?,
        sealer: Sealer::from_env(&sdk)?,
        rpa: RpaClient::new(RpaApiConfig::from_lookup(&lookup)?),
        secret: DeploymentSecret::from_lookup(&sdk, &lookup, "RPA_SECRET_ARN")?,
        queue: RpaJobQueue::new(&sdk, config::env("RPA_JOBS_QUEUE_URL")?),
        invoices: Invoices::from_lookup(&sdk, &lookup)?,
    };
    nuvem_aws::runtime::serve_sqs(|event| rpa_worker::handle(&deps, event)).await
}
