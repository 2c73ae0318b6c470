//! Reads a SAM template (`template.yaml`): parameters, functions (with
//! `Globals.Function` merged in) and their events, the HTTP API's
//! authorizers, tables, queues and buckets.
//!
//! CloudFormation short forms (`!Ref X`, `!GetAtt X.Arn`, `!Sub "..."`, any
//! `!Fn`) are rewritten to their long forms (`Ref`, `Fn::GetAtt`, `Fn::Sub`)
//! when the file is read, so the rest of the code sees only long forms.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_yaml::{Mapping, Value};

use crate::{ACCOUNT_ID, REGION};

/// A template parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub kind: String,
    pub default: Option<String>,
}

/// A parsed template with its parameters' effective values.
#[derive(Clone, Debug)]
pub struct Template {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    /// Declared parameters.
    pub parameters: BTreeMap<String, Parameter>,
    /// Effective parameter values: defaults, then overrides.
    pub params: BTreeMap<String, String>,
    /// `AWS::Serverless::Function`s by logical id.
    pub functions: BTreeMap<String, Function>,
    /// `AWS::Serverless::HttpApi`s by logical id.
    pub http_apis: BTreeMap<String, HttpApi>,
    pub tables: BTreeMap<String, TableDef>,
    pub queues: BTreeMap<String, QueueDef>,
    pub buckets: BTreeMap<String, BucketDef>,
    /// `AWS::SecretsManager::Secret`s by logical id.
    pub secrets: BTreeMap<String, SecretDef>,
    /// `AWS::IAM::ManagedPolicy`s by logical id: their `PolicyDocument`,
    /// unresolved.
    pub managed_policies: BTreeMap<String, Value>,
    /// Every resource's type, by logical id.
    pub resource_types: BTreeMap<String, String>,
}

/// A function, with `Globals.Function` merged in.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`, else the last component of `CodeUri`.
    pub binary: String,
    pub code_uri: Option<String>,
    pub timeout_secs: u64,
    pub memory_mb: u64,
    /// `ReservedConcurrentExecutions`: the most instances at once.
    pub reserved_concurrency: Option<u32>,
    /// Environment variables, unresolved (long-form intrinsics); see
    /// [`Resolver`] and `Stack::function_env`.
    pub env: BTreeMap<String, Value>,
    pub events: Vec<Event>,
}

/// One entry of a function's `Events`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub name: String,
    pub source: EventSource,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventSource {
    HttpApi(HttpApiEvent),
    Sqs(SqsEvent),
    Schedule(ScheduleEvent),
    /// An event type this kit does not run locally (S3, SNS, ...).
    Other {
        kind: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpApiEvent {
    /// `ApiId: !Ref X` (None: SAM's implicit API).
    pub api: Option<String>,
    /// Upper case; `ANY` matches every method.
    pub method: String,
    pub path: String,
    /// `Auth: Authorizer: NONE`.
    pub auth_none: bool,
    /// `Auth: Authorizer: <name>`, overriding the API's default authorizer.
    pub authorizer: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SqsEvent {
    /// Logical id of the queue (`Queue: !GetAtt X.Arn`).
    pub queue: String,
    /// 1..=10 for the runner (default 10).
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
    pub enabled: bool,
    /// `ScalingConfig.MaximumConcurrency`: the most batches at once.
    pub max_concurrency: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleEvent {
    /// `rate(...)` or `cron(...)`.
    pub expression: String,
    pub enabled: bool,
    /// `Input`: the event to send instead of the scheduled-event shape.
    pub input: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpApi {
    pub logical_id: String,
    pub default_authorizer: Option<String>,
    pub authorizers: BTreeMap<String, Authorizer>,
}

/// A Lambda REQUEST authorizer of an HTTP API.
#[derive(Clone, Debug, PartialEq)]
pub struct Authorizer {
    pub name: String,
    /// Logical id of the authorizer function (`FunctionArn: !GetAtt X.Arn`).
    pub function: String,
    /// Identity headers (as written; compare case-insensitively).
    pub identity_headers: Vec<String>,
    /// `Identity.ReauthorizeEvery` (0 = no cache). SAM's default is 300.
    pub ttl_secs: u64,
    pub simple_responses: bool,
    pub payload_version: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KeyElement {
    pub attribute: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexDef {
    pub name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    pub logical_id: String,
    /// (name, S|N|B)
    pub attribute_definitions: Vec<(String, String)>,
    pub key_schema: Vec<KeyElement>,
    pub global_secondary_indexes: Vec<IndexDef>,
    pub local_secondary_indexes: Vec<IndexDef>,
    /// The TTL attribute, when `TimeToLiveSpecification.Enabled`.
    pub ttl_attribute: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueueDef {
    pub logical_id: String,
    pub fifo: bool,
    pub content_based_deduplication: bool,
    pub visibility_timeout: Option<u64>,
    pub message_retention_period: Option<u64>,
    pub delay_seconds: Option<u64>,
    pub redrive: Option<Redrive>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Redrive {
    /// Logical id of the dead-letter queue.
    pub dead_letter_queue: String,
    pub max_receive_count: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SecretDef {
    pub logical_id: String,
    /// The value CloudFormation would create: `SecretString`, or
    /// `GenerateSecretString`'s `SecretStringTemplate` with a random
    /// `GenerateStringKey`.
    pub initial_value: String,
}

/// The secret's first value, as CloudFormation makes it.
fn secret(id: &str, props: &Value) -> Result<SecretDef> {
    if let Some(v) = props.get("SecretString").and_then(scalar) {
        return Ok(SecretDef {
            logical_id: id.to_owned(),
            initial_value: v,
        });
    }
    let generate = props
        .get("GenerateSecretString")
        .ok_or_else(|| anyhow!("neither SecretString nor GenerateSecretString"))?;
    let random = nuvem_domain::ids::new_id("gen");
    let initial_value = match (
        generate.get("SecretStringTemplate").and_then(scalar),
        generate.get("GenerateStringKey").and_then(scalar),
    ) {
        (Some(template), Some(key)) => {
            let mut object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&template).context("SecretStringTemplate")?;
            object.insert(key, serde_json::Value::String(random));
            serde_json::Value::Object(object).to_string()
        }
        _ => random,
    };
    Ok(SecretDef {
        logical_id: id.to_owned(),
        initial_value,
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct BucketDef {
    pub logical_id: String,
    /// `NotificationConfiguration.QueueConfigurations`.
    pub queue_notifications: Vec<QueueNotification>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueueNotification {
    /// Logical id of the target queue.
    pub queue: String,
    /// e.g. `s3:ObjectCreated:*`.
    pub event: String,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

/// One HTTP route of a template: a function's `HttpApi` event with its
/// effective authorizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub function: String,
    pub event: String,
    pub method: String,
    pub path: String,
    /// None: public.
    pub authorizer: Option<Authorizer>,
}

impl Template {
    /// [`crate::template_path`] with its defaults and `overrides`.
    pub fn load_default(overrides: &BTreeMap<String, String>) -> Result<Template> {
        Template::load(&crate::template_path(), overrides)
    }

    pub fn load(path: &Path, overrides: &BTreeMap<String, String>) -> Result<Template> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut t =
            Template::parse(&text, overrides).with_context(|| format!("in {}", path.display()))?;
        t.path = Some(path.to_owned());
        Ok(t)
    }

    /// Parses template text; `overrides` replace parameter defaults (an
    /// unknown parameter name is an error, as in CloudFormation).
    pub fn parse(text: &str, overrides: &BTreeMap<String, String>) -> Result<Template> {
        let doc: Value = serde_yaml::from_str(text).context("template is not YAML")?;
        let doc = long_form(doc);

        let mut parameters = BTreeMap::new();
        if let Some(ps) = doc.get("Parameters").and_then(Value::as_mapping) {
            for (k, v) in ps {
                let name = key(k)?;
                parameters.insert(
                    name.clone(),
                    Parameter {
                        name,
                        kind: v
                            .get("Type")
                            .and_then(scalar)
                            .unwrap_or_else(|| "String".into()),
                        default: v.get("Default").and_then(scalar_or_list),
                    },
                );
            }
        }
        let mut params = BTreeMap::new();
        for (name, p) in &parameters {
            if let Some(d) = &p.default {
                params.insert(name.clone(), d.clone());
            }
        }
        for (name, value) in overrides {
            if !parameters.contains_key(name) {
                bail!("parameter {name} is not declared in the template");
            }
            params.insert(name.clone(), value.clone());
        }
        for name in parameters.keys() {
            if !params.contains_key(name) {
                bail!("parameter {name} has no default and no value");
            }
        }
        let only_params = Resolver::new(params.clone(), "stack");

        let globals = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Value::Null);
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| anyhow!("template has no Resources"))?;

        let mut t = Template {
            path: None,
            parameters,
            params,
            functions: BTreeMap::new(),
            http_apis: BTreeMap::new(),
            tables: BTreeMap::new(),
            queues: BTreeMap::new(),
            buckets: BTreeMap::new(),
            secrets: BTreeMap::new(),
            managed_policies: BTreeMap::new(),
            resource_types: BTreeMap::new(),
        };
        for (k, res) in resources {
            let id = key(k)?;
            let kind = res.get("Type").and_then(scalar).unwrap_or_default();
            let props = res
                .get("Properties")
                .cloned()
                .unwrap_or(Value::Mapping(Mapping::new()));
            t.resource_types.insert(id.clone(), kind.clone());
            let parsed = match kind.as_str() {
                "AWS::Serverless::Function" => function(&id, res, &props, &globals, &only_params)
                    .map(|f| {
                        t.functions.insert(id.clone(), f);
                    }),
                "AWS::Serverless::HttpApi" => http_api(&id, &props, &only_params).map(|a| {
                    t.http_apis.insert(id.clone(), a);
                }),
                "AWS::DynamoDB::Table" => table(&id, &props).map(|d| {
                    t.tables.insert(id.clone(), d);
                }),
                "AWS::SQS::Queue" => queue(&id, &props, &only_params).map(|q| {
                    t.queues.insert(id.clone(), q);
                }),
                "AWS::S3::Bucket" => bucket(&id, &props).map(|b| {
                    t.buckets.insert(id.clone(), b);
                }),
                "AWS::SecretsManager::Secret" => secret(&id, &props).map(|d| {
                    t.secrets.insert(id.clone(), d);
                }),
                "AWS::IAM::ManagedPolicy" => props
                    .get("PolicyDocument")
                    .cloned()
                    .ok_or_else(|| anyhow!("no PolicyDocument"))
                    .map(|doc| {
                        t.managed_policies.insert(id.clone(), doc);
                    }),
                _ => Ok(()),
            };
            parsed.with_context(|| format!("resource {id} ({kind})"))?;
        }
        t.check()?;
        Ok(t)
    }

    fn check(&self) -> Result<()> {
        for f in self.functions.values() {
            for e in &f.events {
                if let EventSource::Sqs(s) = &e.source
                    && !self.queues.contains_key(&s.queue)
                {
                    bail!(
                        "{}.{}: queue {} is not an AWS::SQS::Queue of the template",
                        f.logical_id,
                        e.name,
                        s.queue
                    );
                }
            }
        }
        for api in self.http_apis.values() {
            for a in api.authorizers.values() {
                if !self.functions.contains_key(&a.function) {
                    bail!(
                        "authorizer {} of {}: function {} not in the template",
                        a.name,
                        api.logical_id,
                        a.function
                    );
                }
            }
        }
        for q in self.queues.values() {
            if let Some(r) = &q.redrive
                && !self.queues.contains_key(&r.dead_letter_queue)
            {
                bail!(
                    "{}: dead-letter queue {} not in the template",
                    q.logical_id,
                    r.dead_letter_queue
                );
            }
        }
        self.routes().map(|_| ())
    }

    /// Every HTTP route, with its effective authorizer (the event's own, else
    /// its API's default; none for `Authorizer: NONE`).
    pub fn routes(&self) -> Result<Vec<Route>> {
        let mut routes = Vec::new();
        for f in self.functions.values() {
            for e in &f.events {
                let EventSource::HttpApi(h) = &e.source else {
                    continue;
                };
                let api = match &h.api {
                    Some(id) => Some(self.http_apis.get(id).ok_or_else(|| {
                        anyhow!("{}.{}: ApiId {id} is not an HttpApi", f.logical_id, e.name)
                    })?),
                    None => None,
                };
                let authorizer = if h.auth_none {
                    None
                } else {
                    let name = h
                        .authorizer
                        .clone()
                        .or_else(|| api.and_then(|a| a.default_authorizer.clone()));
                    match (name, api) {
                        (None, _) => None,
                        (Some(name), Some(api)) => {
                            Some(api.authorizers.get(&name).cloned().ok_or_else(|| {
                                anyhow!(
                                    "{}.{}: authorizer {name} not defined",
                                    f.logical_id,
                                    e.name
                                )
                            })?)
                        }
                        (Some(name), None) => bail!(
                            "{}.{}: authorizer {name} on the implicit API",
                            f.logical_id,
                            e.name
                        ),
                    }
                };
                routes.push(Route {
                    function: f.logical_id.clone(),
                    event: e.name.clone(),
                    method: h.method.clone(),
                    path: h.path.clone(),
                    authorizer,
                });
            }
        }
        routes.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
        for w in routes.windows(2) {
            if w[0].path == w[1].path && w[0].method == w[1].method {
                bail!(
                    "route {} {} is served by both {} and {}",
                    w[0].method,
                    w[0].path,
                    w[0].function,
                    w[1].function
                );
            }
        }
        Ok(routes)
    }

    /// The functions' SQS event sources: (function, event).
    pub fn queue_consumers(&self) -> Vec<(&Function, &SqsEvent)> {
        self.functions
            .values()
            .flat_map(|f| {
                f.events.iter().filter_map(move |e| match &e.source {
                    EventSource::Sqs(s) => Some((f, s)),
                    _ => None,
                })
            })
            .collect()
    }

    /// The functions' schedules: (function, event name, schedule).
    pub fn schedules(&self) -> Vec<(&Function, &str, &ScheduleEvent)> {
        self.functions
            .values()
            .flat_map(|f| {
                f.events.iter().filter_map(move |e| match &e.source {
                    EventSource::Schedule(s) => Some((f, e.name.as_str(), s)),
                    _ => None,
                })
            })
            .collect()
    }

    pub fn function(&self, logical_id: &str) -> Result<&Function> {
        self.functions
            .get(logical_id)
            .ok_or_else(|| anyhow!("no function {logical_id} in the template"))
    }
}

// ------------------------------------------------------------------ parsing

fn function(
    id: &str,
    res: &Value,
    props: &Value,
    globals: &Value,
    params: &Resolver,
) -> Result<Function> {
    let code_uri = props.get("CodeUri").and_then(scalar);
    let binary = res
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(scalar)
        .or_else(|| {
            code_uri.as_deref().map(|c| {
                c.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or(c)
                    .to_owned()
            })
        })
        .ok_or_else(|| anyhow!("no Metadata.BuildProperties.Binary and no CodeUri"))?;
    let number = |name: &str, default: u64| -> Result<u64> {
        match props.get(name).or_else(|| globals.get(name)) {
            Some(v) => params
                .resolve(v)?
                .parse()
                .with_context(|| format!("{name} is not a number")),
            None => Ok(default),
        }
    };
    let timeout_secs = number("Timeout", 3)?;
    let memory_mb = number("MemorySize", 128)?;
    let reserved_concurrency = props
        .get("ReservedConcurrentExecutions")
        .map(|v| {
            params
                .resolve(v)?
                .parse()
                .context("ReservedConcurrentExecutions")
        })
        .transpose()?;
    let mut env = BTreeMap::new();
    for source in [globals, props] {
        if let Some(vars) = source
            .get("Environment")
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
        {
            for (k, v) in vars {
                env.insert(key(k)?, v.clone());
            }
        }
    }
    let mut events = Vec::new();
    if let Some(evs) = props.get("Events").and_then(Value::as_mapping) {
        for (k, ev) in evs {
            let name = key(k)?;
            let source = event(ev, params).with_context(|| format!("event {name}"))?;
            events.push(Event { name, source });
        }
    }
    Ok(Function {
        logical_id: id.to_owned(),
        binary,
        code_uri,
        timeout_secs,
        memory_mb,
        reserved_concurrency,
        env,
        events,
    })
}

fn event(ev: &Value, params: &Resolver) -> Result<EventSource> {
    let kind = ev.get("Type").and_then(scalar).unwrap_or_default();
    let empty = Value::Mapping(Mapping::new());
    let p = ev.get("Properties").unwrap_or(&empty);
    let enabled = match p.get("Enabled") {
        Some(v) => params.resolve(v)? != "false",
        None => true,
    };
    Ok(match kind.as_str() {
        "HttpApi" => {
            let auth = p
                .get("Auth")
                .and_then(|a| a.get("Authorizer"))
                .and_then(scalar);
            EventSource::HttpApi(HttpApiEvent {
                api: p.get("ApiId").and_then(ref_target),
                method: p
                    .get("Method")
                    .and_then(scalar)
                    .unwrap_or_else(|| "ANY".into())
                    .to_ascii_uppercase(),
                // SAM spells the catch-all route `/$default`.
                path: p
                    .get("Path")
                    .and_then(scalar)
                    .filter(|p| p != "/$default")
                    .unwrap_or_else(|| "$default".into()),
                auth_none: auth.as_deref() == Some("NONE"),
                authorizer: auth.filter(|a| a != "NONE"),
            })
        }
        "SQS" => {
            let queue = p.get("Queue").and_then(ref_target).ok_or_else(|| {
                anyhow!("Queue must be !GetAtt <Queue>.Arn of a queue of the template")
            })?;
            let batch_size = match p.get("BatchSize") {
                Some(v) => params.resolve(v)?.parse().context("BatchSize")?,
                None => 10,
            };
            let report = p
                .get("FunctionResponseTypes")
                .and_then(Value::as_sequence)
                .is_some_and(|s| {
                    s.iter()
                        .any(|v| scalar(v).as_deref() == Some("ReportBatchItemFailures"))
                });
            let max_concurrency = p
                .get("ScalingConfig")
                .and_then(|s| s.get("MaximumConcurrency"))
                .map(|v| params.resolve(v)?.parse().context("MaximumConcurrency"))
                .transpose()?;
            EventSource::Sqs(SqsEvent {
                queue,
                batch_size,
                report_batch_item_failures: report,
                enabled,
                max_concurrency,
            })
        }
        "Schedule" | "ScheduleV2" => {
            let expression = p
                .get("Schedule")
                .or_else(|| p.get("ScheduleExpression"))
                .map(|v| params.resolve(v))
                .transpose()?
                .ok_or_else(|| anyhow!("no Schedule / ScheduleExpression"))?;
            let enabled = enabled
                && match p.get("State") {
                    Some(v) => params.resolve(v)? != "DISABLED",
                    None => true,
                };
            let input = p.get("Input").map(|v| params.resolve(v)).transpose()?;
            EventSource::Schedule(ScheduleEvent {
                expression,
                enabled,
                input,
            })
        }
        other => EventSource::Other {
            kind: other.to_owned(),
        },
    })
}

fn http_api(id: &str, props: &Value, params: &Resolver) -> Result<HttpApi> {
    let auth = props.get("Auth");
    let default_authorizer = auth
        .and_then(|a| a.get("DefaultAuthorizer"))
        .and_then(scalar);
    let mut authorizers = BTreeMap::new();
    if let Some(list) = auth
        .and_then(|a| a.get("Authorizers"))
        .and_then(Value::as_mapping)
    {
        for (k, a) in list {
            let name = key(k)?;
            let Some(farn) = a.get("FunctionArn") else {
                // JWT authorizers are not run locally.
                continue;
            };
            let function = ref_target(farn).ok_or_else(|| {
                anyhow!("authorizer {name}: FunctionArn must be !GetAtt <Function>.Arn")
            })?;
            let identity = a.get("Identity");
            let identity_headers = identity
                .and_then(|i| i.get("Headers"))
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(scalar).collect())
                .unwrap_or_default();
            let ttl_secs = match identity.and_then(|i| i.get("ReauthorizeEvery")) {
                Some(v) => params
                    .resolve(v)?
                    .parse()
                    .with_context(|| format!("authorizer {name}: ReauthorizeEvery"))?,
                None => 300,
            };
            let simple_responses = match a.get("EnableSimpleResponses") {
                Some(v) => params.resolve(v)? == "true",
                None => false,
            };
            let payload_version = a
                .get("AuthorizerPayloadFormatVersion")
                .and_then(scalar)
                .unwrap_or_else(|| "2.0".into());
            authorizers.insert(
                name.clone(),
                Authorizer {
                    name,
                    function,
                    identity_headers,
                    ttl_secs,
                    simple_responses,
                    payload_version,
                },
            );
        }
    }
    Ok(HttpApi {
        logical_id: id.to_owned(),
        default_authorizer,
        authorizers,
    })
}

fn key_schema(v: Option<&Value>) -> Vec<KeyElement> {
    v.and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|k| {
            Some(KeyElement {
                attribute: k.get("AttributeName").and_then(scalar)?,
                key_type: k.get("KeyType").and_then(scalar)?,
            })
        })
        .collect()
}

fn indexes(v: Option<&Value>) -> Vec<IndexDef> {
    v.and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let projection = i.get("Projection");
            Some(IndexDef {
                name: i.get("IndexName").and_then(scalar)?,
                key_schema: key_schema(i.get("KeySchema")),
                projection_type: projection
                    .and_then(|p| p.get("ProjectionType"))
                    .and_then(scalar)
                    .unwrap_or_else(|| "ALL".into()),
                non_key_attributes: projection
                    .and_then(|p| p.get("NonKeyAttributes"))
                    .and_then(Value::as_sequence)
                    .map(|s| s.iter().filter_map(scalar).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn table(id: &str, p: &Value) -> Result<TableDef> {
    let attribute_definitions = p
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some((
                a.get("AttributeName").and_then(scalar)?,
                a.get("AttributeType").and_then(scalar)?,
            ))
        })
        .collect();
    let key_schema = key_schema(p.get("KeySchema"));
    if key_schema.is_empty() {
        bail!("no KeySchema");
    }
    let ttl = p.get("TimeToLiveSpecification");
    let ttl_attribute = ttl
        .filter(|t| t.get("Enabled").and_then(scalar).as_deref() != Some("false"))
        .and_then(|t| t.get("AttributeName"))
        .and_then(scalar);
    Ok(TableDef {
        logical_id: id.to_owned(),
        attribute_definitions,
        key_schema,
        global_secondary_indexes: indexes(p.get("GlobalSecondaryIndexes")),
        local_secondary_indexes: indexes(p.get("LocalSecondaryIndexes")),
        ttl_attribute,
    })
}

fn queue(id: &str, p: &Value, params: &Resolver) -> Result<QueueDef> {
    let num = |name: &str| -> Result<Option<u64>> {
        p.get(name)
            .map(|v| {
                params
                    .resolve(v)?
                    .parse::<u64>()
                    .with_context(|| format!("{name} is not a number"))
            })
            .transpose()
    };
    let flag = |name: &str| p.get(name).and_then(scalar).as_deref() == Some("true");
    let redrive = match p.get("RedrivePolicy") {
        None => None,
        Some(r) => {
            let target = r
                .get("deadLetterTargetArn")
                .and_then(ref_target)
                .ok_or_else(|| {
                    anyhow!("RedrivePolicy.deadLetterTargetArn must be !GetAtt <Queue>.Arn")
                })?;
            let max = r
                .get("maxReceiveCount")
                .map(|v| params.resolve(v))
                .transpose()?
                .ok_or_else(|| anyhow!("RedrivePolicy without maxReceiveCount"))?
                .parse()
                .context("maxReceiveCount")?;
            Some(Redrive {
                dead_letter_queue: target,
                max_receive_count: max,
            })
        }
    };
    Ok(QueueDef {
        logical_id: id.to_owned(),
        fifo: flag("FifoQueue"),
        content_based_deduplication: flag("ContentBasedDeduplication"),
        visibility_timeout: num("VisibilityTimeout")?,
        message_retention_period: num("MessageRetentionPeriod")?,
        delay_seconds: num("DelaySeconds")?,
        redrive,
    })
}

fn bucket(id: &str, p: &Value) -> Result<BucketDef> {
    let mut queue_notifications = Vec::new();
    let configs = p
        .get("NotificationConfiguration")
        .and_then(|n| n.get("QueueConfigurations"))
        .and_then(Value::as_sequence);
    for c in configs.into_iter().flatten() {
        let queue = c
            .get("Queue")
            .and_then(ref_target)
            .ok_or_else(|| anyhow!("QueueConfigurations[].Queue must be !GetAtt <Queue>.Arn"))?;
        let event = c
            .get("Event")
            .and_then(scalar)
            .ok_or_else(|| anyhow!("QueueConfigurations[] without Event"))?;
        let mut prefix = None;
        let mut suffix = None;
        let rules = c
            .get("Filter")
            .and_then(|f| f.get("S3Key"))
            .and_then(|k| k.get("Rules"))
            .and_then(Value::as_sequence);
        for r in rules.into_iter().flatten() {
            let name = r
                .get("Name")
                .and_then(scalar)
                .unwrap_or_default()
                .to_ascii_lowercase();
            let value = r.get("Value").and_then(scalar);
            match name.as_str() {
                "prefix" => prefix = value,
                "suffix" => suffix = value,
                _ => {}
            }
        }
        queue_notifications.push(QueueNotification {
            queue,
            event,
            prefix,
            suffix,
        });
    }
    Ok(BucketDef {
        logical_id: id.to_owned(),
        queue_notifications,
    })
}

// -------------------------------------------------------- values and intrinsics

fn key(k: &Value) -> Result<String> {
    scalar(k).ok_or_else(|| anyhow!("non-scalar key {k:?}"))
}

/// A YAML scalar as a string (`true`, `30`, `text`).
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn scalar_or_list(v: &Value) -> Option<String> {
    scalar(v).or_else(|| {
        v.as_sequence()
            .map(|s| s.iter().filter_map(scalar).collect::<Vec<_>>().join(","))
    })
}

/// The logical id named by `Ref: X` or `Fn::GetAtt: [X, attr]`.
pub fn ref_target(v: &Value) -> Option<String> {
    if let Some(r) = v.get("Ref") {
        return scalar(r);
    }
    let g = v.get("Fn::GetAtt")?;
    match g {
        Value::Sequence(s) => s.first().and_then(scalar),
        Value::String(s) => s.split('.').next().map(str::to_owned),
        _ => None,
    }
}

/// Rewrites short-form intrinsics (`!Ref`, `!GetAtt`, `!Sub`, `!Join`, ...)
/// into long forms, recursively.
pub fn long_form(v: Value) -> Value {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = long_form(t.value);
            let (name, inner) = match tag {
                "Ref" => ("Ref".to_owned(), inner),
                "Condition" => ("Condition".to_owned(), inner),
                "GetAtt" => {
                    let inner = match inner {
                        Value::String(s) => match s.split_once('.') {
                            Some((res, attr)) => Value::Sequence(vec![res.into(), attr.into()]),
                            None => Value::String(s),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), inner)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut m = Mapping::new();
            m.insert(Value::String(name), inner);
            Value::Mapping(m)
        }
        Value::Mapping(m) => {
            Value::Mapping(m.into_iter().map(|(k, v)| (k, long_form(v))).collect())
        }
        Value::Sequence(s) => Value::Sequence(s.into_iter().map(long_form).collect()),
        other => other,
    }
}

/// Resolves intrinsics to strings: parameters, pseudo parameters, and the
/// `Ref`s and attributes of resources the caller knows.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    pub params: BTreeMap<String, String>,
    /// `Ref X` of resources.
    pub refs: BTreeMap<String, String>,
    /// `Fn::GetAtt [X, Attr]` of resources, keyed `X.Attr`.
    pub attrs: BTreeMap<String, String>,
    pub stack_name: String,
}

impl Resolver {
    pub fn new(params: BTreeMap<String, String>, stack_name: &str) -> Resolver {
        Resolver {
            params,
            stack_name: stack_name.to_owned(),
            ..Default::default()
        }
    }

    fn reference(&self, name: &str) -> Result<String> {
        if let Some(v) = self.params.get(name).or_else(|| self.refs.get(name)) {
            return Ok(v.clone());
        }
        Ok(match name {
            "AWS::Region" => REGION.into(),
            "AWS::AccountId" => ACCOUNT_ID.into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::StackId" => format!(
                "arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{}/00000000-0000-0000-0000-000000000000",
                self.stack_name
            ),
            _ => bail!("cannot resolve Ref {name}"),
        })
    }

    fn attribute(&self, res: &str, attr: &str) -> Result<String> {
        self.attrs
            .get(&format!("{res}.{attr}"))
            .cloned()
            .ok_or_else(|| anyhow!("cannot resolve Fn::GetAtt {res}.{attr}"))
    }

    /// A document (a policy, say) as JSON, every intrinsic in it resolved
    /// to a string.
    pub fn resolve_document(&self, v: &Value) -> Result<serde_json::Value> {
        use serde_json::Value as Json;
        Ok(match v {
            Value::Mapping(m)
                if m.len() == 1
                    && m.keys()
                        .filter_map(scalar)
                        .any(|k| k == "Ref" || k.starts_with("Fn::")) =>
            {
                Json::String(self.resolve(v)?)
            }
            Value::Mapping(m) => Json::Object(
                m.iter()
                    .map(|(k, v)| Ok((key(k)?, self.resolve_document(v)?)))
                    .collect::<Result<_>>()?,
            ),
            Value::Sequence(items) => Json::Array(
                items
                    .iter()
                    .map(|i| self.resolve_document(i))
                    .collect::<Result<_>>()?,
            ),
            other => Json::String(self.resolve(other)?),
        })
    }

    /// A value as a string, intrinsics resolved.
    pub fn resolve(&self, v: &Value) -> Result<String> {
        if let Some(s) = scalar(v) {
            return Ok(s);
        }
        let Some(m) = v.as_mapping().filter(|m| m.len() == 1) else {
            bail!("cannot resolve {v:?} to a string");
        };
        let (k, arg) = m.iter().next().expect("one entry");
        let k = scalar(k).unwrap_or_default();
        match k.as_str() {
            "Ref" => self.reference(&scalar(arg).ok_or_else(|| anyhow!("Ref of a non-string"))?),
            "Fn::GetAtt" => {
                let (res, attr) = match arg {
                    Value::Sequence(s) if s.len() == 2 => {
                        (scalar(&s[0]).unwrap_or_default(), self.resolve(&s[1])?)
                    }
                    Value::String(s) => {
                        let (a, b) = s.split_once('.').ok_or_else(|| anyhow!("Fn::GetAtt {s}"))?;
                        (a.to_owned(), b.to_owned())
                    }
                    _ => bail!("bad Fn::GetAtt {arg:?}"),
                };
                self.attribute(&res, &attr)
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.clone(), BTreeMap::new()),
                    Value::Sequence(s) if s.len() == 2 => {
                        let text = scalar(&s[0])
                            .ok_or_else(|| anyhow!("Fn::Sub template is not a string"))?;
                        let mut vars = BTreeMap::new();
                        for (k, v) in s[1].as_mapping().into_iter().flatten() {
                            vars.insert(key(k)?, self.resolve(v)?);
                        }
                        (text, vars)
                    }
                    _ => bail!("bad Fn::Sub {arg:?}"),
                };
                self.substitute(&text, &vars)
            }
            "Fn::Join" => {
                let s = arg
                    .as_sequence()
                    .filter(|s| s.len() == 2)
                    .ok_or_else(|| anyhow!("bad Fn::Join"))?;
                let sep = scalar(&s[0]).unwrap_or_default();
                let parts = s[1]
                    .as_sequence()
                    .ok_or_else(|| anyhow!("Fn::Join of a non-list"))?
                    .iter()
                    .map(|p| self.resolve(p))
                    .collect::<Result<Vec<_>>>()?;
                Ok(parts.join(&sep))
            }
            "Fn::Select" => {
                let s = arg
                    .as_sequence()
                    .filter(|s| s.len() == 2)
                    .ok_or_else(|| anyhow!("bad Fn::Select"))?;
                let i: usize = self.resolve(&s[0])?.parse()?;
                let list: Vec<String> = match &s[1] {
                    Value::Sequence(items) => items
                        .iter()
                        .map(|p| self.resolve(p))
                        .collect::<Result<_>>()?,
                    other => self.resolve(other)?.split(',').map(str::to_owned).collect(),
                };
                list.get(i)
                    .cloned()
                    .ok_or_else(|| anyhow!("Fn::Select index {i} out of range"))
            }
            other => bail!("intrinsic {other} is not supported locally"),
        }
    }

    fn substitute(&self, text: &str, vars: &BTreeMap<String, String>) -> Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| anyhow!("unclosed ${{ in Fn::Sub {text:?}"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(v);
            } else if !name.starts_with("AWS::") && name.contains('.') {
                let (res, attr) = name.split_once('.').expect("has a dot");
                out.push_str(&self.attribute(res, attr)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real() -> Template {
        Template::load_default(&BTreeMap::new()).expect("template.yaml parses")
    }

    #[test]
    fn reads_the_real_template() {
        let t = real();
        assert_eq!(t.params["MailFrom"], "nuvem@nuvem.example");
        let fanout = t.function("Fanout").unwrap();
        assert_eq!(fanout.binary, "fanout");
        assert_eq!(fanout.timeout_secs, 30);
        assert_eq!(fanout.memory_mb, 128);
        assert!(fanout.env.contains_key("TABLE_NAME"), "globals merged");
        assert!(fanout.env.contains_key("MAIL_FROM"));
        let consumers = t.queue_consumers();
        let (f, sqs) = consumers
            .iter()
            .find(|(f, _)| f.logical_id == "Fanout")
            .unwrap();
        assert_eq!(f.logical_id, "Fanout");
        assert_eq!(sqs.queue, "EventsQueue");
        assert_eq!(sqs.batch_size, 10);
        assert!(sqs.report_batch_item_failures);
        // QueueConsumerConcurrency's default, resolved.
        assert_eq!(f.reserved_concurrency, Some(5));
        assert_eq!(sqs.max_concurrency, Some(5));
        assert_eq!(t.function("Webhooks").unwrap().reserved_concurrency, None);

        let q = &t.queues["EventsQueue"];
        assert_eq!(q.visibility_timeout, Some(180));
        assert_eq!(q.redrive.as_ref().unwrap().dead_letter_queue, "EventsDLQ");
        assert_eq!(q.redrive.as_ref().unwrap().max_receive_count, 5);
        let table = &t.tables["Table"];
        assert_eq!(table.global_secondary_indexes.len(), 2);
        assert_eq!(table.ttl_attribute.as_deref(), Some("expires_at"));

        let api = &t.http_apis["HttpApi"];
        let auth = &api.authorizers["KeyAuthorizer"];
        assert_eq!(auth.function, "Authorizer");
        assert_eq!(auth.identity_headers, ["Authorization"]);
        assert_eq!(auth.ttl_secs, 30);
        assert!(auth.simple_responses);
        assert_eq!(api.default_authorizer.as_deref(), Some("KeyAuthorizer"));

        let routes = t.routes().unwrap();
        let signup = routes.iter().find(|r| r.path == "/v1/signup").unwrap();
        assert_eq!(
            (signup.method.as_str(), signup.function.as_str()),
            ("POST", "Signup")
        );
        assert!(signup.authorizer.is_none());
        let revoke = routes.iter().find(|r| r.path == "/v1/keys/{id}").unwrap();
        assert_eq!(revoke.method, "DELETE");
        assert_eq!(revoke.authorizer.as_ref().unwrap().name, "KeyAuthorizer");
    }

    #[test]
    fn parameters_can_be_overridden_but_not_invented() {
        let o = BTreeMap::from([("AuthorizerCacheSeconds".to_owned(), "0".to_owned())]);
        let t = Template::load_default(&o).unwrap();
        assert_eq!(
            t.http_apis["HttpApi"].authorizers["KeyAuthorizer"].ttl_secs,
            0
        );
        let bad = BTreeMap::from([("Nope".to_owned(), "1".to_owned())]);
        assert!(Template::load_default(&bad).is_err());
    }

    #[test]
    fn short_and_long_forms_resolve_alike() {
        let text = r#"
Parameters:
  P: { Type: String, Default: pv }
Resources:
  Q:
    Type: AWS::SQS::Queue
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/some-thing/
      Environment:
        Variables:
          A: !Ref Q
          B: { Ref: Q }
          C: !GetAtt Q.Arn
          D: { "Fn::GetAtt": [Q, Arn] }
          E: !Sub "${P}/${Q}/${Q.Arn}/${AWS::Region}/${AWS::AccountId}/${!Literal}"
          F: { "Fn::Sub": ["${x}-${P}", { x: !Ref Q }] }
          G: !Join ["-", [a, !Ref P]]
          H: 42
      Events:
        Tick:
          Type: Schedule
          Properties: { Schedule: rate(5 minutes) }
"#;
        let t = Template::parse(text, &BTreeMap::new()).unwrap();
        let f = t.function("F").unwrap();
        assert_eq!(f.binary, "some-thing");
        assert_eq!(f.timeout_secs, 3);
        let mut r = Resolver::new(t.params.clone(), "s");
        r.refs.insert("Q".into(), "http://q".into());
        r.attrs.insert("Q.Arn".into(), "arn:q".into());
        let env: BTreeMap<_, _> = f
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), r.resolve(v).unwrap()))
            .collect();
        assert_eq!(env["A"], "http://q");
        assert_eq!(env["B"], "http://q");
        assert_eq!(env["C"], "arn:q");
        assert_eq!(env["D"], "arn:q");
        assert_eq!(
            env["E"],
            "pv/http://q/arn:q/us-east-1/123456789012/${Literal}"
        );
        assert_eq!(env["F"], "http://q-pv");
        assert_eq!(env["G"], "a-pv");
        assert_eq!(env["H"], "42");
        let schedules = t.schedules();
        assert_eq!(schedules[0].2.expression, "rate(5 minutes)");
    }
}
