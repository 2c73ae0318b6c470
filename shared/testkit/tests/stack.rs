//! The kit against the emulator: a stack from the real template, resolved
//! function environments, and mail read back.

use std::collections::BTreeMap;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sqs::types::QueueAttributeName;
use nuvem_testkit::{Stack, Template, emulator, unique_name};

#[tokio::test]
async fn a_stack_from_the_real_template_has_its_table_and_queues() {
    let emu = emulator().await;
    let name = unique_name("kit");
    let stack = Stack::create(emu, &name, &Default::default())
        .await
        .expect("stack");
    let sdk = emu.sdk_config().await;

    let table = stack.table("Table");
    assert_eq!(table, format!("{name}-Table"));
    let db = aws_sdk_dynamodb::Client::new(&sdk);
    let described = db
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let mut gsis: Vec<_> = described
        .global_secondary_indexes()
        .iter()
        .map(|g| g.index_name().unwrap().to_owned())
        .collect();
    gsis.sort();
    assert_eq!(gsis, ["gsi1", "gsi2"]);
    let ttl = db
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description.unwrap().attribute_name(),
        Some("expires_at")
    );

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let events = stack.queue("EventsQueue");
    let dlq = stack.queue("EventsDLQ");
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&events.url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let policy: serde_json::Value =
        serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(policy["deadLetterTargetArn"], dlq.arn.as_str());
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "5");
    assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "180");
    assert!(
        dlq.arn.ends_with(&format!(":{name}-EventsDLQ")),
        "{}",
        dlq.arn
    );
}

#[tokio::test]
async fn function_env_resolves_refs_params_and_globals() {
    let emu = emulator().await;
    let overrides = BTreeMap::from([(
        "PublicBaseUrl".to_owned(),
        "http://127.0.0.1:3000".to_owned(),
    )]);
    let stack = Stack::create(emu, &unique_name("kit"), &overrides)
        .await
        .expect("stack");
    let env = stack.function_env("Fanout");
    assert_eq!(env["TABLE_NAME"], stack.table("Table"));
    assert_eq!(env["EVENTS_QUEUE_URL"], stack.queue("EventsQueue").url);
    assert_eq!(env["MAIL_FROM"], "nuvem@nuvem.example");
    assert_eq!(env["PUBLIC_BASE_URL"], "http://127.0.0.1:3000");
    assert_eq!(env["RUST_LOG"], "info");
    assert!(!stack.function_env("Signup").contains_key("MAIL_FROM"));
}

#[tokio::test]
async fn mail_sent_from_mail_from_is_read_back() {
    let emu = emulator().await;
    let stack = Stack::create(emu, &unique_name("kit"), &Default::default())
        .await
        .expect("stack");
    let from = stack.function_env("Fanout")["MAIL_FROM"].clone();
    let to = format!("{}@cliente.example", unique_name("dest"));
    let ses = aws_sdk_sesv2::Client::new(&emu.sdk_config().await);
    let utf8 = |s: &str| Content::builder().data(s).charset("UTF-8").build().unwrap();
    for (subject, text, html) in [
        ("Conta aprovada", "Olá!", Some("<p>Olá!</p>")),
        ("Só texto", "Linha única", None),
    ] {
        let mut body = Body::builder().text(utf8(text));
        if let Some(h) = html {
            body = body.html(utf8(h));
        }
        ses.send_email()
            .from_email_address(&from)
            .destination(Destination::builder().to_addresses(&to).build())
            .content(
                EmailContent::builder()
                    .simple(
                        Message::builder()
                            .subject(utf8(subject))
                            .body(body.build())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("send");
    }
    let mine: Vec<_> = emu
        .sent_emails()
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.to.contains(&to))
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[0].from, from);
    assert_eq!(mine[0].subject, "Conta aprovada");
    assert_eq!(mine[0].html.as_deref(), Some("<p>Olá!</p>"));
    assert_eq!(mine[1].subject, "Só texto");
    assert_eq!(mine[1].text.as_deref(), Some("Linha única"));
}

#[tokio::test]
async fn an_unverified_sender_is_rejected() {
    let emu = emulator().await;
    let ses = aws_sdk_sesv2::Client::new(&emu.sdk_config().await);
    let err = ses
        .send_email()
        .from_email_address("someone@unverified.example")
        .destination(Destination::builder().to_addresses("x@y.example").build())
        .content(
            EmailContent::builder()
                .simple(
                    Message::builder()
                        .subject(Content::builder().data("s").build().unwrap())
                        .body(
                            Body::builder()
                                .text(Content::builder().data("t").build().unwrap())
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await;
    assert!(err.is_err());
}

#[tokio::test]
async fn buckets_notify_their_queues() {
    let text = r#"
Resources:
  Uploads:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration:
        QueueConfigurations:
          - Event: "s3:ObjectCreated:*"
            Queue: !GetAtt S3Events.Arn
  S3Events:
    Type: AWS::SQS::Queue
"#;
    let emu = emulator().await;
    let template = Template::parse(text, &Default::default()).unwrap();
    let stack = Stack::create_from(emu, template, &unique_name("kit"))
        .await
        .expect("stack");
    let bucket = stack.bucket("Uploads");
    assert!(bucket.ends_with("-uploads"));
    let url = format!("{}/{bucket}/a/b.txt", emu.endpoint());
    let put = reqwest::Client::new()
        .put(&url)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body("hello")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let sqs = aws_sdk_sqs::Client::new(&emu.sdk_config().await);
    let got = nuvem_testkit::inspect::drain(&sqs, &stack.queue("S3Events").url, 10).await;
    let records: Vec<_> = got
        .iter()
        .filter_map(|m| serde_json::from_str::<serde_json::Value>(m.body().unwrap()).ok())
        .filter(|v| v["Records"].is_array())
        .collect();
    assert_eq!(records.len(), 1, "{got:?}");
    // Keys in S3 notifications are URL-encoded; moto also encodes `/` (real S3 does not).
    let key = records[0]["Records"][0]["s3"]["object"]["key"]
        .as_str()
        .unwrap();
    assert_eq!(key.replace("%2F", "/"), "a/b.txt");
}
