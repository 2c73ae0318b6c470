use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::whatsapp_jobs::BotQueue;
use nuvem_aws::{Core, config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let lookup = |name: &str| std::env::var(name).ok();
    let deps = whatsapp_webhook::Deps {
        core: Core::from_env(&sdk)?,
        secret: DeploymentSecret::from_lookup(&sdk, &lookup, "WHATSAPP_SECRET_ARN")?,
        bot: BotQueue::new(&sdk, config::env("BOT_QUEUE_URL")?),
    };
    nuvem_aws::runtime::serve_http(|req| whatsapp_webhook::handle(&deps, req)).await
}
