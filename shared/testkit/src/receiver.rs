//! A customer's webhook receiver on 127.0.0.1: it records every request,
//! verifies Standard Webhooks signatures the way a receiver would, and
//! answers from a script (status, headers, a delay) so that tests can play
//! each outcome rule.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nuvem_domain::webhook::signature::{WebhookSecret, verify};

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Waited before answering (to play timeouts and slow receivers).
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_owned();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Verifies the Standard Webhooks signature with `secret` (`whsec_…`)
    /// as a receiver does: id, timestamp within 5 minutes, body.
    pub fn verify(&self, secret: &str) -> Result<(), String> {
        let secret = WebhookSecret::parse(secret).map_err(|e| e.to_string())?;
        let id = self.header("webhook-id").ok_or("no webhook-id")?;
        let timestamp: i64 = self
            .header("webhook-timestamp")
            .ok_or("no webhook-timestamp")?
            .parse()
            .map_err(|_| "bad webhook-timestamp")?;
        let signature = self
            .header("webhook-signature")
            .ok_or("no webhook-signature")?;
        verify(
            signature,
            &secret,
            id,
            timestamp,
            &self.body,
            chrono::Utc::now().timestamp(),
            300,
        )
        .map_err(|e| e.to_string())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    /// Answered once the scripted replies are used up (200 when unset).
    fallback: Option<Reply>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    base: String,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    /// Starts a receiver on an ephemeral port of 127.0.0.1; it runs until
    /// the test's runtime ends.
    pub async fn start() -> Receiver {
        let script = Arc::new(Mutex::new(Script::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(script.clone());
        let addr = crate::local_http::serve("127.0.0.1:0", app)
            .await
            .expect("bind a local port");
        Receiver {
            base: format!("http://{addr}"),
            script,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Queues answers, used one per request in order.
    pub fn reply(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().replies.extend(replies);
    }

    /// The answer once the queued ones are used up.
    pub fn fallback(&self, reply: Reply) {
        self.script.lock().unwrap().fallback = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// Waits until at least `n` requests arrived (or `timeout` passed) and
    /// returns all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= n || Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut script = script.lock().unwrap();
        script.received.push(Received {
            method: method.to_string(),
            path: uri.path().to_owned(),
            headers: crate::local_http::lowercase_headers(&headers),
            body: body.to_vec(),
            at: Instant::now(),
        });
        script
            .replies
            .pop_front()
            .or_else(|| script.fallback.clone())
            .unwrap_or_else(|| Reply::status(200))
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
