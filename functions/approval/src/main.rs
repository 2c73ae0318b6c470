use nuvem_aws::{Core, config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    let sdk = config::lambda_sdk_config();
    let deps = approval::Deps {
        core: Core::from_env(&sdk)?,
    };
    nuvem_aws::runtime::serve_http(|req| approval::handle(&deps, req)).await
}
