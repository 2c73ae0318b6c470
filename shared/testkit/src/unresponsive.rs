//! A dependency that never answers: a listener on 127.0.0.1 that accepts
//! connections, reads what comes and says nothing, as a service does when it
//! is overloaded or hung. Pointed at by an SDK client with an operation
//! timeout, every call fails by that timeout, however fast the machine.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Starts the listener on an ephemeral port of 127.0.0.1 (it runs until the
/// runtime ends); its `http://` URL.
pub async fn unresponsive_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr: SocketAddr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = [0u8; 4096];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    format!("http://{addr}")
}

/// `sdk` with its endpoint at an [`unresponsive_endpoint`] and every call
/// given up after `timeout` (retries included), as `lambda_sdk_config` does
/// with `SDK_TIMEOUT_MS`.
pub async fn unresponsive_sdk(
    sdk: &aws_config::SdkConfig,
    timeout: Duration,
) -> aws_config::SdkConfig {
    sdk.to_builder()
        .endpoint_url(unresponsive_endpoint().await)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(timeout)
                .build(),
        )
        .build()
}
