//! A stack: every table, queue and bucket of the template created in the
//! emulator under `<stack name>-<LogicalId>`, and the functions' environment
//! resolved against them.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::template::{IndexDef, KeyElement, Resolver, Template};
use crate::{ACCOUNT_ID, Emulator, REGION};

/// A queue of the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// The template's resources, created in an emulator.
#[derive(Clone, Debug)]
pub struct Stack {
    pub name: String,
    pub template: Template,
    /// Logical id → table name.
    pub tables: BTreeMap<String, String>,
    /// Logical id → queue.
    pub queues: BTreeMap<String, Queue>,
    /// Logical id → bucket name.
    pub buckets: BTreeMap<String, String>,
    /// Logical id → KMS key (id, ARN).
    pub kms_keys: BTreeMap<String, (String, String)>,
    /// Logical id → Secrets Manager secret ARN.
    pub secrets: BTreeMap<String, String>,
    /// Logical id → IAM managed policy ARN.
    pub managed_policies: BTreeMap<String, String>,
    resolver: Resolver,
}

impl Stack {
    /// Creates the resources of `template.yaml` (see [`crate::template_path`])
    /// with parameter overrides `params`.
    pub async fn create(
        emu: &Emulator,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Stack> {
        let template = Template::load_default(params)?;
        Stack::create_from(emu, template, name).await
    }

    /// Creates the resources of an already-read template. Creating a stack
    /// whose resources already exist (same name, same emulator) reuses them.
    pub async fn create_from(emu: &Emulator, template: Template, name: &str) -> Result<Stack> {
        let sdk = emu.sdk_config().await;
        let db = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let mut stack = Stack {
            name: name.to_owned(),
            resolver: Resolver::new(template.params.clone(), name),
            template,
            tables: BTreeMap::new(),
            queues: BTreeMap::new(),
            buckets: BTreeMap::new(),
            kms_keys: BTreeMap::new(),
            secrets: BTreeMap::new(),
            managed_policies: BTreeMap::new(),
        };

        let tables: Vec<_> = stack.template.tables.values().cloned().collect();
        for def in tables {
            let table = format!("{name}-{}", def.logical_id);
            create_table(&db, &table, &def)
                .await
                .with_context(|| format!("table {table}"))?;
            stack.tables.insert(def.logical_id.clone(), table);
        }

        // Dead-letter queues before the queues that redrive into them.
        let mut pending: Vec<_> = stack.template.queues.values().cloned().collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut later = Vec::new();
            for def in pending {
                let dlq = match &def.redrive {
                    Some(r) => match stack.queues.get(&r.dead_letter_queue) {
                        Some(q) => Some((q.arn.clone(), r.max_receive_count)),
                        None => {
                            later.push(def);
                            continue;
                        }
                    },
                    None => None,
                };
                let mut queue = format!("{name}-{}", def.logical_id);
                if def.fifo {
                    queue.push_str(".fifo");
                }
                let created = create_queue(&sqs, &queue, &def, dlq)
                    .await
                    .with_context(|| format!("queue {queue}"))?;
                stack.queues.insert(def.logical_id.clone(), created);
            }
            if later.len() == before {
                bail!(
                    "queues redrive into each other: {:?}",
                    later.iter().map(|q| &q.logical_id).collect::<Vec<_>>()
                );
            }
            pending = later;
        }

        let http = reqwest::Client::new();
        let buckets: Vec<_> = stack.template.buckets.values().cloned().collect();
        for def in &buckets {
            let bucket = format!("{name}-{}", def.logical_id).to_ascii_lowercase();
            create_bucket(&http, emu.endpoint(), &bucket)
                .await
                .with_context(|| format!("bucket {bucket}"))?;
            stack.buckets.insert(def.logical_id.clone(), bucket);
        }
        for def in &buckets {
            if def.queue_notifications.is_empty() {
                continue;
            }
            let bucket = &stack.buckets[&def.logical_id];
            let mut xml = String::from(
                r#"<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#,
            );
            for (i, n) in def.queue_notifications.iter().enumerate() {
                let arn = &stack.queues[&n.queue].arn;
                xml.push_str(&format!(
                    "<QueueConfiguration><Id>{i}</Id><Queue>{arn}</Queue><Event>{}</Event>",
                    n.event
                ));
                if n.prefix.is_some() || n.suffix.is_some() {
                    xml.push_str("<Filter><S3Key>");
                    for (rule, v) in [("prefix", &n.prefix), ("suffix", &n.suffix)] {
                        if let Some(v) = v {
                            xml.push_str(&format!(
                                "<FilterRule><Name>{rule}</Name><Value>{v}</Value></FilterRule>"
                            ));
                        }
                    }
                    xml.push_str("</S3Key></Filter>");
                }
                xml.push_str("</QueueConfiguration>");
            }
            xml.push_str("</NotificationConfiguration>");
            let resp = s3_request(
                &http,
                reqwest::Method::PUT,
                &format!("{}/{bucket}?notification", emu.endpoint()),
                xml,
            )
            .await
            .with_context(|| format!("notifications of bucket {bucket}"))?;
            if !resp.status().is_success() {
                let status = resp.status();
                bail!(
                    "notifications of bucket {bucket}: {status}: {}",
                    resp.text().await.unwrap_or_default()
                );
            }
        }

        let kms = aws_sdk_kms::Client::new(&sdk);
        let keys: Vec<String> = stack
            .template
            .resource_types
            .iter()
            .filter(|(_, kind)| *kind == "AWS::KMS::Key")
            .map(|(id, _)| id.clone())
            .collect();
        for id in keys {
            let alias = format!("alias/{name}-{id}");
            let key = kms_key(&kms, &alias)
                .await
                .with_context(|| format!("KMS key {alias}"))?;
            stack.kms_keys.insert(id, key);
        }

        let secrets_manager = aws_sdk_secretsmanager::Client::new(&sdk);
        let secrets: Vec<_> = stack.template.secrets.values().cloned().collect();
        for def in secrets {
            let secret = format!("{name}-{}", def.logical_id);
            let arn = create_secret(&secrets_manager, &secret, &def.initial_value)
                .await
                .with_context(|| format!("secret {secret}"))?;
            stack.secrets.insert(def.logical_id.clone(), arn);
        }

        let iam = aws_sdk_iam::Client::new(&sdk);
        let policies: Vec<_> = stack
            .template
            .managed_policies
            .clone()
            .into_iter()
            .collect();
        for (id, doc) in policies {
            let name = format!("{name}-{id}");
            let doc = stack
                .resolver
                .resolve_document(&doc)
                .with_context(|| format!("policy {name}"))?;
            let arn = create_managed_policy(&iam, &name, &doc)
                .await
                .with_context(|| format!("policy {name}"))?;
            stack.managed_policies.insert(id, arn);
        }

        stack.build_resolver();
        stack.verify_senders(&sdk).await?;
        Ok(stack)
    }

    /// Gives secret `logical_id` a new value, as an operator would with
    /// `aws secretsmanager put-secret-value` (functions that read it before
    /// see it once their copy is [`nuvem_aws::deployment_secret::REFRESH_AFTER`] old).
    pub async fn put_secret(&self, emu: &Emulator, logical_id: &str, value: &str) -> Result<()> {
        let arn = self
            .secrets
            .get(logical_id)
            .ok_or_else(|| anyhow!("{logical_id} is not a secret of the template"))?;
        let client = aws_sdk_secretsmanager::Client::new(&emu.sdk_config().await);
        client
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_secretsmanager::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    fn build_resolver(&mut self) {
        let r = &mut self.resolver;
        for (id, table) in &self.tables {
            r.refs.insert(id.clone(), table.clone());
            r.attrs.insert(
                format!("{id}.Arn"),
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table}"),
            );
        }
        for (id, q) in &self.queues {
            r.refs.insert(id.clone(), q.url.clone());
            r.attrs.insert(format!("{id}.Arn"), q.arn.clone());
            r.attrs.insert(format!("{id}.QueueName"), q.name.clone());
            r.attrs.insert(format!("{id}.QueueUrl"), q.url.clone());
        }
        for (id, b) in &self.buckets {
            r.refs.insert(id.clone(), b.clone());
            r.attrs
                .insert(format!("{id}.Arn"), format!("arn:aws:s3:::{b}"));
            r.attrs
                .insert(format!("{id}.DomainName"), format!("{b}.s3.amazonaws.com"));
            r.attrs.insert(
                format!("{id}.RegionalDomainName"),
                format!("{b}.s3.{REGION}.amazonaws.com"),
            );
        }
        for (id, (key_id, arn)) in &self.kms_keys {
            r.refs.insert(id.clone(), key_id.clone());
            r.attrs.insert(format!("{id}.Arn"), arn.clone());
            r.attrs.insert(format!("{id}.KeyId"), key_id.clone());
        }
        for (id, arn) in self.secrets.iter().chain(&self.managed_policies) {
            r.refs.insert(id.clone(), arn.clone());
        }
        for id in self.template.functions.keys() {
            let fname = format!("{}-{id}", self.name);
            r.attrs.insert(
                format!("{id}.Arn"),
                format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{fname}"),
            );
            r.refs.insert(id.clone(), fname);
        }
        for id in self.template.http_apis.keys() {
            r.refs.entry(id.clone()).or_insert_with(|| "local".into());
        }
        // Anything else a function might name: `<stack>-<LogicalId>`.
        for id in self.template.resource_types.keys() {
            r.refs
                .entry(id.clone())
                .or_insert_with(|| format!("{}-{id}", self.name));
        }
    }

    /// Makes every `MAIL_FROM` sender (the address and its domain) a
    /// verified SES identity, so that `SendEmail` from it succeeds.
    async fn verify_senders(&self, sdk: &aws_config::SdkConfig) -> Result<()> {
        let mut identities = Vec::new();
        for id in self.template.functions.keys() {
            for (k, v) in self.try_function_env(id)? {
                if k == "MAIL_FROM" || k.ends_with("_MAIL_FROM") {
                    let address = match (v.find('<'), v.rfind('>')) {
                        (Some(a), Some(b)) if a < b => v[a + 1..b].trim().to_owned(),
                        _ => v.trim().to_owned(),
                    };
                    if let Some((_, domain)) = address.split_once('@') {
                        identities.push(domain.to_owned());
                    }
                    identities.push(address);
                }
            }
        }
        identities.sort();
        identities.dedup();
        if identities.is_empty() {
            return Ok(());
        }
        let ses = aws_sdk_sesv2::Client::new(sdk);
        for identity in identities {
            if let Err(e) = ses
                .create_email_identity()
                .email_identity(&identity)
                .send()
                .await
            {
                let already = e
                    .as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception());
                if !already {
                    return Err(anyhow!("{}", aws_sdk_sesv2::error::DisplayErrorContext(e)))
                        .with_context(|| format!("verifying SES identity {identity}"));
                }
            }
        }
        Ok(())
    }

    /// The table of a logical id. Panics if the template has no such table.
    pub fn table(&self, logical_id: &str) -> &str {
        self.tables.get(logical_id).unwrap_or_else(|| {
            panic!(
                "no table {logical_id} in the stack (have {:?})",
                self.tables.keys()
            )
        })
    }

    /// The queue of a logical id. Panics if the template has no such queue.
    pub fn queue(&self, logical_id: &str) -> &Queue {
        self.queues.get(logical_id).unwrap_or_else(|| {
            panic!(
                "no queue {logical_id} in the stack (have {:?})",
                self.queues.keys()
            )
        })
    }

    /// The bucket of a logical id. Panics if the template has no such bucket.
    pub fn bucket(&self, logical_id: &str) -> &str {
        self.buckets.get(logical_id).unwrap_or_else(|| {
            panic!(
                "no bucket {logical_id} in the stack (have {:?})",
                self.buckets.keys()
            )
        })
    }

    /// The (local) function name of a function: `<stack>-<LogicalId>`.
    pub fn function_name(&self, logical_id: &str) -> String {
        format!("{}-{logical_id}", self.name)
    }

    /// The resolver of this stack's names, for other template values.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// A function's environment variables (globals merged), resolved.
    /// Panics if the function is unknown or a value cannot be resolved.
    pub fn function_env(&self, logical_id: &str) -> BTreeMap<String, String> {
        self.try_function_env(logical_id)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_function_env(&self, logical_id: &str) -> Result<BTreeMap<String, String>> {
        let f = self.template.function(logical_id)?;
        f.env
            .iter()
            .map(|(k, v)| {
                let value = self
                    .resolver
                    .resolve(v)
                    .with_context(|| format!("{logical_id}: environment variable {k}"))?;
                Ok((k.clone(), value))
            })
            .collect()
    }
}

fn key_schema(keys: &[KeyElement]) -> Result<Vec<KeySchemaElement>> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(Into::into)
        })
        .collect()
}

fn projection(i: &IndexDef) -> Projection {
    let mut p =
        Projection::builder().projection_type(ProjectionType::from(i.projection_type.as_str()));
    for a in &i.non_key_attributes {
        p = p.non_key_attributes(a);
    }
    p.build()
}

async fn create_table(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    def: &crate::template::TableDef,
) -> Result<()> {
    let mut req = db
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&def.key_schema)?));
    for (name, kind) in &def.attribute_definitions {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()?,
        );
    }
    for i in &def.global_secondary_indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&i.name)
                .set_key_schema(Some(key_schema(&i.key_schema)?))
                .projection(projection(i))
                .build()?,
        );
    }
    for i in &def.local_secondary_indexes {
        req = req.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(&i.name)
                .set_key_schema(Some(key_schema(&i.key_schema)?))
                .projection(projection(i))
                .build()?,
        );
    }
    if let Err(e) = req.send().await {
        if e.as_service_error()
            .is_some_and(|s| s.is_resource_in_use_exception())
        {
            return Ok(()); // created earlier, e.g. by a previous `make dev`
        }
        return Err(anyhow!(
            "{}",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        ));
    }
    if let Some(attr) = &def.ttl_attribute {
        db.update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attr)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| anyhow!("TTL: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    }
    Ok(())
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    def: &crate::template::QueueDef,
    dlq: Option<(String, u64)>,
) -> Result<Queue> {
    let mut attrs = std::collections::HashMap::new();
    let mut set = |k: QueueAttributeName, v: String| {
        attrs.insert(k, v);
    };
    if def.fifo {
        set(QueueAttributeName::FifoQueue, "true".into());
    }
    if def.content_based_deduplication {
        set(QueueAttributeName::ContentBasedDeduplication, "true".into());
    }
    if let Some(v) = def.visibility_timeout {
        set(QueueAttributeName::VisibilityTimeout, v.to_string());
    }
    if let Some(v) = def.message_retention_period {
        set(QueueAttributeName::MessageRetentionPeriod, v.to_string());
    }
    if let Some(v) = def.delay_seconds {
        set(QueueAttributeName::DelaySeconds, v.to_string());
    }
    if let Some((arn, max)) = dlq {
        let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max});
        set(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let req = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attrs));
    let url = req
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?
        .queue_url
        .ok_or_else(|| anyhow!("CreateQueue returned no URL"))?;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    let arn = attrs
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_else(|| format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"));
    Ok(Queue {
        name: name.to_owned(),
        url,
        arn,
    })
}

/// A path-style S3 request to the emulator (moto does not check signatures;
/// the credential scope tells it the service).
async fn s3_request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: String,
) -> Result<reqwest::Response> {
    let resp = http
        .request(method, url)
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/s3/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(body)
        .send()
        .await?;
    Ok(resp)
}

async fn create_bucket(http: &reqwest::Client, endpoint: &str, bucket: &str) -> Result<()> {
    let resp = s3_request(
        http,
        reqwest::Method::PUT,
        &format!("{endpoint}/{bucket}"),
        String::new(),
    )
    .await?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    if text.contains("BucketAlreadyOwnedByYou") {
        return Ok(());
    }
    bail!("CreateBucket: {status}: {text}")
}

/// The stack's symmetric key under `alias` (id, ARN): found by its alias when
/// the stack already exists, else created and given the alias.
/// Creates a secret with its first value, or finds the one a previous run
/// of the same stack created (its value kept). Its ARN.
/// An IAM managed policy (found again if it exists, as on a re-created
/// stack): its ARN.
async fn create_managed_policy(
    iam: &aws_sdk_iam::Client,
    name: &str,
    doc: &serde_json::Value,
) -> Result<String> {
    use aws_sdk_iam::error::ProvideErrorMetadata;
    match iam
        .create_policy()
        .policy_name(name)
        .policy_document(doc.to_string())
        .send()
        .await
    {
        Ok(out) => out
            .policy
            .and_then(|p| p.arn)
            .ok_or_else(|| anyhow!("CreatePolicy answered no ARN")),
        Err(e) if e.code() == Some("EntityAlreadyExists") => {
            Ok(format!("arn:aws:iam::{ACCOUNT_ID}:policy/{name}"))
        }
        Err(e) => Err(anyhow!("{}", aws_sdk_iam::error::DisplayErrorContext(e))),
    }
}

async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> Result<String> {
    fn err<E: std::error::Error>(e: E) -> anyhow::Error {
        anyhow!("{}", aws_sdk_secretsmanager::error::DisplayErrorContext(e))
    }
    match client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
    {
        Ok(out) => out.arn.ok_or_else(|| anyhow!("no ARN")),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_exists_exception()) =>
        {
            let found = client
                .describe_secret()
                .secret_id(name)
                .send()
                .await
                .map_err(err)?;
            found.arn.ok_or_else(|| anyhow!("no ARN"))
        }
        Err(e) => Err(err(e)),
    }
}

async fn kms_key(kms: &aws_sdk_kms::Client, alias: &str) -> Result<(String, String)> {
    fn sdk_error(e: impl std::error::Error) -> anyhow::Error {
        anyhow!("{}", aws_sdk_kms::error::DisplayErrorContext(e))
    }
    let metadata = match kms.describe_key().key_id(alias).send().await {
        Ok(found) => found.key_metadata,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception()) =>
        {
            let created = kms
                .create_key()
                .description(alias)
                .send()
                .await
                .map_err(sdk_error)?;
            let metadata = created.key_metadata.context("no key metadata")?;
            kms.create_alias()
                .alias_name(alias)
                .target_key_id(metadata.key_id())
                .send()
                .await
                .map_err(sdk_error)?;
            Some(metadata)
        }
        Err(e) => return Err(sdk_error(e)),
    };
    let metadata = metadata.context("no key metadata")?;
    Ok((
        metadata.key_id().to_owned(),
        metadata.arn().unwrap_or_default().to_owned(),
    ))
}
