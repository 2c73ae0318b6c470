use nuvem_aws::config;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    config::init_tracing();
    nuvem_aws::runtime::serve_http(|req| async move { fallback::handle(&req) }).await
}
