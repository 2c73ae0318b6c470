//! The stores' bot: answers a customer's message with an OpenAI-compatible
//! chat-completions model (OpenRouter by default), or hands the
//! conversation to a person.
//!
//! One reply per inbound `wamid`, however often the job comes: the reply's
//! id derives from the `wamid` ([`outbound::reply_id`]) and is written by
//! conditional put, and a job that finds it written only makes sure it is
//! queued for sending. The decision ([`bot::decide`]) reads the store's
//! settings, the conversation and its messages of the context window:
//!
//! - silent for messages without text, outside the 24-hour window, or in a
//!   conversation a person has;
//! - a handoff when the bot is off, has sent `message_limit` replies in the
//!   context window, or the model failed after its retries: the
//!   conversation becomes `needs_human`, the customer gets the store's
//!   `fallback_text` once, and `whatsapp.conversation.handoff` is emitted;
//! - otherwise the model's answer, sent by `whatsapp-outbound` as a reply
//!   to the customer's message. The message is marked read, with the
//!   typing indicator, while the model thinks.

use std::sync::Mutex;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use nuvem_aws::Core;
use nuvem_aws::chat::{ApiKey, ChatClient, ChatConfig, ChatMessage};
use nuvem_aws::config::ConfigError;
use nuvem_aws::deployment_secret::DeploymentSecret;
use nuvem_aws::graph::GraphClient;
use nuvem_aws::secrets::{SealContext, Sealer};
use nuvem_aws::store::{ConversationEntry, ConversationRecord, OutboundRecord, StoreWithNumbers};
use nuvem_aws::whatsapp_jobs::{BotJob, OutboundQueue, queue_if_waiting};
use nuvem_domain::whatsapp::bot::{self, BotDecision, HandoffReason, ReplyInput};
use nuvem_domain::whatsapp::identity::CustomerIds;
use nuvem_domain::whatsapp::outbound::{self, Origin, OutboundContent, OutboundState};
use nuvem_domain::whatsapp::prompt::{self, PromptLine, Speaker};
use nuvem_domain::whatsapp::store::AccessToken;
use nuvem_domain::whatsapp::{events, store::StoreSettings};
use serde::Deserialize;
use serde_json::json;

/// Model attempts per message (429 and 5xx are retried within the chat
/// client's time budget; 401 and 402 are not).
pub const MODEL_ATTEMPTS: u32 = 4;
/// Conversation lines read for the context window at most.
const CONTEXT_LINES: i32 = 200;

/// Secrets Manager's `CHAT_SECRET_ARN`: the chat API's key.
#[derive(Deserialize)]
pub struct ChatSecret {
    #[serde(default)]
    pub api_key: String,
}

/// The chat-completions client, rebuilt when the key in Secrets Manager
/// changes (kept otherwise, with its connections).
pub struct Chat {
    base_url: String,
    model: String,
    timeout_ms: Option<String>,
    secret: DeploymentSecret<ChatSecret>,
    client: Mutex<Option<(String, ChatClient)>>,
}

impl Chat {
    /// `CHAT_API_URL`, `CHAT_MODEL`, `CHAT_TIMEOUT_MS` as
    /// [`ChatConfig::from_lookup`] reads them; the key from `secret`.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        secret: DeploymentSecret<ChatSecret>,
    ) -> Result<Chat, ConfigError> {
        // Checked now, so a deployment mistake fails at start.
        let config = ChatConfig::from_lookup(lookup, ApiKey::new("unset"))?;
        Ok(Chat {
            base_url: config.base_url.to_string(),
            model: config.model,
            timeout_ms: lookup("CHAT_TIMEOUT_MS"),
            secret,
            client: Mutex::new(None),
        })
    }

    async fn client(&self) -> Result<ChatClient, String> {
        let secret = self
            .secret
            .current()
            .await
            .map_err(|e| format!("chat secret: {e}"))?;
        let mut cached = self.client.lock().unwrap();
        if let Some((key, client)) = cached.as_ref()
            && *key == secret.api_key
        {
            return Ok(client.clone());
        }
        let lookup = |name: &str| match name {
            "CHAT_API_URL" => Some(self.base_url.clone()),
            "CHAT_MODEL" => Some(self.model.clone()),
            "CHAT_TIMEOUT_MS" => self.timeout_ms.clone(),
            _ => None,
        };
        let config = ChatConfig::from_lookup(&lookup, ApiKey::new(&secret.api_key))
            .map_err(|e| e.to_string())?;
        let client = ChatClient::new(config);
        *cached = Some((secret.api_key.clone(), client.clone()));
        Ok(client)
    }
}

pub struct Deps {
    pub core: Core,
    pub sealer: Sealer,
    pub graph: GraphClient,
    pub outbound: OutboundQueue,
    pub chat: Chat,
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    nuvem_aws::runtime::each_record(&event, |record| process(deps, record)).await
}

async fn process(deps: &Deps, record: &SqsMessage) -> Result<(), String> {
    let Some(job) = nuvem_aws::runtime::read_body::<BotJob>(record, "bot job") else {
        return Ok(());
    };
    answer(deps, &job, Utc::now()).await
}

fn store_error(e: impl std::fmt::Display) -> String {
    format!("store: {e}")
}

/// What the bot did with a message (for tests and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A reply or fallback for this message exists already.
    AlreadyAnswered,
    /// The store, conversation or message is gone.
    Gone,
    Decided(BotDecision),
}

/// Handles one job; `Err` leaves it to SQS to deliver again.
pub async fn answer(deps: &Deps, job: &BotJob, now: DateTime<Utc>) -> Result<(), String> {
    let outcome = decide_and_act(deps, job, now).await?;
    tracing::info!(wamid = %job.wamid, outcome = ?outcome, "bot");
    if let Outcome::Decided(decision) = outcome {
        nuvem_aws::metrics::bot_decision(match decision {
            BotDecision::Reply => "reply",
            BotDecision::Handoff(_) => "handoff",
            BotDecision::Skip(_) => "skip",
        });
    }
    Ok(())
}

pub async fn decide_and_act(
    deps: &Deps,
    job: &BotJob,
    now: DateTime<Utc>,
) -> Result<Outcome, String> {
    let store = &deps.core.store;
    let reply_id = outbound::reply_id(&job.wamid);
    if let Some(reply) = store
        .get_outbound(&job.account_id, &reply_id)
        .await
        .map_err(store_error)?
    {
        ensure_queued(deps, &reply).await?;
        return Ok(Outcome::AlreadyAnswered);
    }
    let (Some(shop), Some(conversation), Some(message)) = (
        store
            .get_whatsapp_store(&job.account_id, &job.store_id)
            .await
            .map_err(store_error)?,
        store
            .get_conversation(&job.account_id, &job.store_id, &job.conversation_id)
            .await
            .map_err(store_error)?,
        store.get_message(&job.wamid).await.map_err(store_error)?,
    ) else {
        return Ok(Outcome::Gone);
    };
    let settings = &shop.store.settings;
    let question = message.content.as_ref().and_then(prompt::question);
    let since = bot::context_start(now, settings.context_minutes);
    let lines = store
        .conversation_entries(&conversation.id, Some(since), CONTEXT_LINES, None)
        .await
        .map_err(store_error)?
        .items;
    let decision = bot::decide(&ReplyInput {
        bot_enabled: settings.enabled,
        has_text: question.is_some(),
        last_customer_message_at: conversation.last_customer_at,
        now,
        replies_in_context: bot_replies(&lines, conversation.resumed_at),
        message_limit: settings.message_limit,
        needs_human: conversation.needs_human,
    });
    match decision {
        BotDecision::Skip(_) => {}
        BotDecision::Handoff(reason) => {
            hand_off(deps, job, &shop, &conversation, reason, now).await?;
        }
        BotDecision::Reply => {
            let question = question.unwrap_or_default();
            show_typing(deps, job, &shop).await;
            let history = history(&lines, &job.wamid);
            let reply = match ask_model(deps, settings, &history, &question).await {
                Ok(reply) => reply,
                Err(failure) => {
                    tracing::warn!(wamid = %job.wamid, error = %failure, "the model did not answer");
                    let again = store
                        .get_conversation(&job.account_id, &job.store_id, &job.conversation_id)
                        .await
                        .map_err(store_error)?
                        .unwrap_or(conversation.clone());
                    let after = bot::after_model_failure(
                        again.needs_human,
                        again.last_customer_at,
                        Utc::now(),
                    );
                    if let BotDecision::Handoff(reason) = after {
                        hand_off(deps, job, &shop, &again, reason, now).await?;
                    }
                    return Ok(Outcome::Decided(after));
                }
            };
            let Some(record) = reply_record(job, &conversation, reply, now) else {
                return Ok(Outcome::Gone);
            };
            if store.create_outbound(&record).await.map_err(store_error)? {
                ensure_queued(deps, &record).await?;
            }
        }
    }
    Ok(Outcome::Decided(decision))
}

/// Bot replies in the context window that were not given up, since a
/// person last gave the conversation back (`resumed_at`), if they did.
fn bot_replies(lines: &[ConversationEntry], resumed_at: Option<DateTime<Utc>>) -> u32 {
    let after_resume = |at: Option<DateTime<Utc>>| match (resumed_at, at) {
        (Some(resumed), Some(at)) => at >= resumed,
        _ => true,
    };
    let count = lines
        .iter()
        .filter(|line| match line {
            ConversationEntry::Message(m) => {
                m.origin == Some(Origin::Bot) && after_resume(m.sent_at)
            }
            ConversationEntry::Pending(p) => {
                p.origin == Origin::Bot
                    && p.state != OutboundState::Failed
                    && after_resume(Some(p.created_at))
            }
        })
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// The conversation before the message being answered, as the model reads
/// it.
fn history(lines: &[ConversationEntry], answering: &str) -> Vec<PromptLine> {
    lines
        .iter()
        .filter_map(|line| match line {
            ConversationEntry::Message(m) if m.wamid == answering => None,
            ConversationEntry::Message(m) => {
                let speaker = if m.direction == Some(nuvem_aws::store::Direction::Inbound) {
                    Speaker::Customer
                } else {
                    Speaker::Store
                };
                Some(PromptLine {
                    speaker,
                    text: prompt::text_of(m.content.as_ref()?)?,
                })
            }
            ConversationEntry::Pending(p) if p.state != OutboundState::Failed => Some(PromptLine {
                speaker: Speaker::Store,
                text: prompt::text_of(&p.message.content())?,
            }),
            ConversationEntry::Pending(_) => None,
        })
        .collect()
}

async fn ask_model(
    deps: &Deps,
    settings: &StoreSettings,
    history: &[PromptLine],
    question: &str,
) -> Result<String, String> {
    let client = deps.chat.client().await?;
    let messages: Vec<ChatMessage> = prompt::build(settings, history, question)
        .into_iter()
        .map(|line| match line.speaker {
            Speaker::System => ChatMessage::system(line.text),
            Speaker::Customer => ChatMessage::user(line.text),
            Speaker::Store => ChatMessage::assistant(line.text),
        })
        .collect();
    let answer = client
        .complete_with_retries(&messages, MODEL_ATTEMPTS)
        .await
        .map_err(|e| e.to_string())?;
    prompt::reply_text(&answer).ok_or_else(|| "the model's answer is empty".to_owned())
}

/// Marks the customer's message read and shows "typing…" while the model
/// thinks. Best effort: the reply matters, the indicator does not.
async fn show_typing(deps: &Deps, job: &BotJob, shop: &StoreWithNumbers) {
    let Some(number) = shop
        .numbers
        .iter()
        .find(|n| n.settings.phone_number_id == job.phone_number_id)
    else {
        return;
    };
    let context = SealContext::whatsapp_access_token(&number.account_id, &job.phone_number_id);
    let token = match deps.sealer.open(&number.sealed_token, &context).await {
        Ok(token) => token,
        Err(e) => {
            tracing::warn!(error = %e, "typing indicator skipped: token not opened");
            return;
        }
    };
    let Ok(token) = AccessToken::parse(&token) else {
        return;
    };
    if let Err(e) = deps
        .graph
        .mark_read(&job.phone_number_id, &token, &job.wamid, true)
        .await
    {
        tracing::warn!(error = %e, "typing indicator not shown");
    }
}

/// The reply (or fallback) to a customer's message, `queued`; `None` for
/// a conversation without any id of the customer.
fn reply_record(
    job: &BotJob,
    conversation: &ConversationRecord,
    text: String,
    now: DateTime<Utc>,
) -> Option<OutboundRecord> {
    let to = CustomerIds::new(
        conversation.wa_id.as_deref(),
        conversation.user_id.as_deref(),
    )
    .reply_to()?;
    let mut reply = OutboundRecord::queued(
        outbound::reply_id(&job.wamid),
        conversation,
        &job.phone_number_id,
        to,
        OutboundContent::Text { body: text },
        Origin::Bot,
        now,
    );
    reply.reply_to = Some(job.wamid.clone());
    Some(reply)
}

/// The conversation goes to a person: `needs_human`, the fallback text,
/// the event; nothing if a person already has it.
async fn hand_off(
    deps: &Deps,
    job: &BotJob,
    shop: &StoreWithNumbers,
    conversation: &ConversationRecord,
    reason: HandoffReason,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let Some(fallback) = reply_record(
        job,
        conversation,
        shop.store.settings.fallback_text().to_owned(),
        now,
    ) else {
        return Ok(());
    };
    let event = events::handoff(
        &job.account_id,
        &job.store_id,
        &conversation.id,
        reason,
        &job.wamid,
        json!({
            "wa_id": conversation.wa_id,
            "user_id": conversation.user_id,
            "name": conversation.name,
        }),
        now,
    );
    if deps
        .core
        .store
        .hand_off(conversation, &fallback, &event)
        .await
        .map_err(store_error)?
    {
        deps.core.emit(&event, None).await;
        ensure_queued(deps, &fallback).await?;
    }
    Ok(())
}

async fn ensure_queued(deps: &Deps, reply: &OutboundRecord) -> Result<(), String> {
    queue_if_waiting(&deps.outbound, reply)
        .await
        .map_err(|e| format!("queue: {e}"))
}
