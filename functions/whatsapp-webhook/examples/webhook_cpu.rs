//! CPU cost of the webhook handler per message, without I/O: check the
//! signature over the raw body, parse the notification, and build each
//! message's stored content and identity, on Meta's "every message type"
//! payload (one POST with a message of every type).
//!
//! `cargo run --release -p whatsapp-webhook --example webhook_cpu` (run by `make measure`).

use std::hint::black_box;
use std::time::Instant;

use nuvem_domain::whatsapp::content;
use nuvem_domain::whatsapp::identity::{CustomerIds, identity_move};
use nuvem_domain::whatsapp::signature::{sign, verify};
use nuvem_domain::whatsapp::webhook::{Inbound, parse_notification};

fn main() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/domain/tests/fixtures/whatsapp/every_message_type.json"
    ))
    .expect("the fixture");
    let secret = "9f3c2a1b7e6d5c4b3a29180f7e6d5c4b";
    let header = sign(secret, &body);
    let handle = |body: &[u8]| {
        verify(secret, Some(&header), body).unwrap();
        let notification = parse_notification(body).unwrap();
        let mut messages = 0;
        for event in &notification.events {
            if let Inbound::Message {
                contact, message, ..
            } = event
            {
                black_box(content::inbound(message));
                black_box(CustomerIds::of_message(message, contact.as_ref()));
                black_box(identity_move(message));
                black_box(message.bot_text());
                messages += 1;
            }
        }
        messages
    };
    let messages = handle(&body);
    for _ in 0..200 {
        black_box(handle(black_box(&body)));
    }
    let runs = 5_000u32;
    let start = Instant::now();
    for _ in 0..runs {
        black_box(handle(black_box(&body)));
    }
    let per_post = start.elapsed() / runs;
    println!(
        "whatsapp webhook: {:.1} µs per message ({messages} messages, {} bytes per POST, {runs} runs, no I/O)",
        per_post.as_secs_f64() * 1e6 / f64::from(messages),
        body.len()
    );
}
