//! The conversation the bot's model reads: a system message built from the
//! store's bot settings, then the customer's and the store's messages of
//! the context window in order, the message being answered last.
//!
//! Only text is shown to the model (a text, the title of a reply button or
//! list row, a template button's text, a media caption as "[image] …");
//! everything else the customer sent is named, not described.

use super::store::{Language, StoreSettings};

/// Who wrote a line of the conversation, as chat-completion roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    System,
    Customer,
    Store,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptLine {
    pub speaker: Speaker,
    pub text: String,
}

/// The longest reply nuvem sends: WhatsApp's text limit.
pub const MAX_REPLY_CHARS: usize = 4096;
/// History lines given to the model at most (the newest are kept).
pub const MAX_HISTORY_LINES: usize = 40;

/// The model's instructions for a store.
pub fn system_prompt(settings: &StoreSettings) -> String {
    let who = match &settings.bot_name {
        Some(name) => format!("You are {name}, the WhatsApp assistant of"),
        None => "You are the WhatsApp assistant of".to_owned(),
    };
    let mut prompt = format!(
        "{who} \"{}\", a {}. You talk with the store's customers.",
        settings.name, settings.store_type
    );
    let base = settings.base_prompt.trim();
    if !base.is_empty() {
        prompt.push_str("\n\nThe store's instructions:\n");
        prompt.push_str(base);
    }
    if !settings.forbidden.is_empty() {
        prompt.push_str(
            "\n\nNever talk about these topics; if asked, politely decline and offer help with the store instead:\n",
        );
        for topic in &settings.forbidden {
            prompt.push_str("- ");
            prompt.push_str(topic);
            prompt.push('\n');
        }
    }
    prompt.push_str(match settings.language {
        Language::PtBr => {
            "\n\nAnswer in Brazilian Portuguese, unless the customer writes in another language."
        }
        Language::En => "\n\nAnswer in English, unless the customer writes in another language.",
    });
    prompt.push_str(
        " Keep answers short, as WhatsApp messages: plain text, no Markdown headings or tables. \
         Do not invent prices, stock, opening hours or policies that the instructions do not give; \
         say that a person from the store will confirm instead.",
    );
    prompt
}

/// The lines for the model: the system prompt, then `history` (oldest
/// first, without the message being answered), cut to the newest
/// [`MAX_HISTORY_LINES`], then `question`.
pub fn build(settings: &StoreSettings, history: &[PromptLine], question: &str) -> Vec<PromptLine> {
    let mut lines = vec![PromptLine {
        speaker: Speaker::System,
        text: system_prompt(settings),
    }];
    let skip = history.len().saturating_sub(MAX_HISTORY_LINES);
    lines.extend(
        history
            .iter()
            .skip(skip)
            .filter(|l| !l.text.trim().is_empty())
            .cloned(),
    );
    lines.push(PromptLine {
        speaker: Speaker::Customer,
        text: question.to_owned(),
    });
    lines
}

/// The model's answer as a WhatsApp text: trimmed, cut to
/// [`MAX_REPLY_CHARS`] characters; `None` when nothing is left.
pub fn reply_text(answer: &str) -> Option<String> {
    let answer = answer.trim();
    if answer.is_empty() {
        return None;
    }
    Some(match answer.char_indices().nth(MAX_REPLY_CHARS) {
        Some((cut, _)) => answer[..cut].trim_end().to_owned(),
        None => answer.to_owned(),
    })
}

/// What the bot answers in a customer's message: its text, reply title or
/// a media caption ([`super::message::InboundMessage::bot_text`]'s rule);
/// `None` for media without a caption and everything without text.
pub fn question(content: &serde_json::Value) -> Option<String> {
    let kind = content.get("type")?.as_str()?;
    let media = ["image", "video", "document", "audio", "sticker"].contains(&kind);
    if media
        && content
            .get(kind)?
            .get("caption")
            .and_then(|c| c.as_str())
            .is_none_or(|c| c.trim().is_empty())
    {
        return None;
    }
    if kind == "template" {
        return None;
    }
    text_of(content)
}

/// The text of a stored message's content for the model: its text, reply
/// title or caption; other kinds named in brackets.
pub fn text_of(content: &serde_json::Value) -> Option<String> {
    let kind = content.get("type")?.as_str()?;
    let at = |path: &[&str]| {
        let mut v = content;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str().map(str::to_owned)
    };
    match kind {
        "text" => at(&["text", "body"]),
        "interactive" => at(&["interactive", "title"]),
        "button" => at(&["button", "text"]),
        "template" => at(&["template", "name"]).map(|name| format!("[template {name}]")),
        "image" | "video" | "document" | "audio" | "sticker" => {
            Some(match at(&[kind, "caption"]) {
                Some(caption) => format!("[{kind}] {caption}"),
                None => format!("[{kind}]"),
            })
        }
        "reaction" | "system" | "request_welcome" | "unsupported" => None,
        other => Some(format!("[{other}]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatsapp::store::StoreRequest;
    use serde_json::json;

    fn settings(v: serde_json::Value) -> StoreSettings {
        serde_json::from_value::<StoreRequest>(v)
            .unwrap()
            .validate()
            .unwrap()
    }

    #[test]
    fn the_system_prompt_carries_the_settings() {
        let s = settings(json!({
            "name": "Cantina da Nonna", "store_type": "restaurante", "bot_name": "Giulia",
            "base_prompt": "Entregamos das 11h às 23h.", "forbidden": ["política", "religião"]
        }));
        let p = system_prompt(&s);
        for part in [
            "Giulia",
            "Cantina da Nonna",
            "restaurante",
            "Entregamos das 11h às 23h.",
            "- política",
            "- religião",
            "Brazilian Portuguese",
        ] {
            assert!(p.contains(part), "{part} in {p}");
        }
        let en = settings(json!({"name": "Shop", "store_type": "shop", "language": "en"}));
        let p = system_prompt(&en);
        assert!(p.contains("Answer in English") && !p.contains("Never talk about"));
    }

    #[test]
    fn history_is_cut_to_the_newest_lines_and_the_question_comes_last() {
        let s = settings(json!({"name": "Loja", "store_type": "loja"}));
        let history: Vec<PromptLine> = (0..MAX_HISTORY_LINES + 5)
            .map(|i| PromptLine {
                speaker: if i % 2 == 0 {
                    Speaker::Customer
                } else {
                    Speaker::Store
                },
                text: format!("linha {i}"),
            })
            .collect();
        let lines = build(&s, &history, "e agora?");
        assert_eq!(lines.len(), MAX_HISTORY_LINES + 2);
        assert_eq!(lines[0].speaker, Speaker::System);
        assert_eq!(lines[1].text, "linha 5");
        assert_eq!(lines.last().unwrap().text, "e agora?");
    }

    #[test]
    fn replies_are_trimmed_and_capped() {
        assert_eq!(reply_text("  Olá!  "), Some("Olá!".into()));
        assert_eq!(reply_text(" \n "), None);
        let long = "é".repeat(MAX_REPLY_CHARS + 10);
        assert_eq!(reply_text(&long).unwrap().chars().count(), MAX_REPLY_CHARS);
    }

    #[test]
    fn stored_content_as_text() {
        assert_eq!(
            text_of(&json!({"type": "text", "text": {"body": "oi"}})),
            Some("oi".into())
        );
        assert_eq!(
            text_of(&json!({"type": "image", "image": {"id": "1", "caption": "o bolo"}})),
            Some("[image] o bolo".into())
        );
        assert_eq!(
            text_of(
                &json!({"type": "interactive", "interactive": {"type": "button_reply", "id": "a", "title": "Sim"}})
            ),
            Some("Sim".into())
        );
        assert_eq!(
            text_of(&json!({"type": "reaction", "reaction": {"emoji": "👍"}})),
            None
        );
        assert_eq!(
            text_of(&json!({"type": "audio", "audio": {"id": "2"}})),
            Some("[audio]".into())
        );
        assert_eq!(
            question(&json!({"type": "audio", "audio": {"id": "2"}})),
            None
        );
        assert_eq!(
            question(&json!({"type": "image", "image": {"id": "1", "caption": "tem desse?"}})),
            Some("[image] tem desse?".into())
        );
    }
}
