use nuvem_aws::{Core, config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = signup::Deps {
        core: Core::from_env(&sdk)?,
        per_address_per_hour: config::env_or("SIGNUPS_PER_HOUR_PER_ADDRESS", 5)?,
    };
    nuvem_aws::runtime::serve_http(|req| signup::handle(&deps, req)).await
}
