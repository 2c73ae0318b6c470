//! What the fakes of outside APIs and the webhook receiver share: serving
//! an axum app on 127.0.0.1, and reading a request's headers.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::http::HeaderMap;

/// Serves `app` on `addr` (`127.0.0.1:0` for an ephemeral port) until the
/// runtime ends; the address it listens on.
pub async fn serve(addr: &str, app: axum::Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// Headers by lowercase name (values that are not text read as empty).
pub fn lowercase_headers(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}
