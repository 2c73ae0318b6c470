use nuvem_aws::{Core, config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = quota_alerts::Deps {
        core: Core::from_env(&sdk)?,
    };
    nuvem_aws::runtime::serve_sqs(|event| quota_alerts::handle(&deps, event)).await
}
