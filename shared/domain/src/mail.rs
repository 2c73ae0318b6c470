//! Emails to tenants, rendered as plain text and HTML. Pure: sending is the
//! adapters' job.

use chrono::{DateTime, Utc};

use crate::account::Locale;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Escapes the five characters that matter in HTML text and attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A piece of a paragraph. Everything is escaped in HTML, fixed wording
/// included, so no interpolated value can ever reach the markup raw.
enum Part<'a> {
    Text(&'a str),
    Link(&'a str),
}
use Part::{Link, Text};

fn render(locale: Locale, subject: String, paragraphs: &[&[Part<'_>]]) -> Message {
    let text = paragraphs
        .iter()
        .map(|parts| {
            parts
                .iter()
                .map(|part| match part {
                    Text(s) | Link(s) => *s,
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n\n");

    let mut body = String::new();
    for parts in paragraphs {
        body.push_str("<p>");
        for part in *parts {
            match part {
                Text(s) => body.push_str(&escape_html(s).replace('\n', "<br>\n")),
                Link(url) => {
                    let url = escape_html(url);
                    body.push_str(&format!("<a href=\"{url}\">{url}</a>"));
                }
            }
        }
        body.push_str("</p>\n");
    }
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family: Arial, Helvetica, sans-serif; line-height: 1.5; color: #1f2933;\">\n\
         {body}</body>\n</html>\n",
        lang = locale.as_str(),
        title = escape_html(&subject),
    );
    Message {
        subject,
        text: text + "\n",
        html,
    }
}

fn format_date(locale: Locale, at: DateTime<Utc>) -> String {
    match locale {
        Locale::PtBr => at.format("%d/%m/%Y %H:%M UTC").to_string(),
        Locale::En => at.format("%-d %B %Y, %H:%M UTC").to_string(),
    }
}

/// Sent when an account is approved: the link activates it and lets the
/// tenant create its first key.
pub fn activation_email(
    locale: Locale,
    organization_name: &str,
    activation_url: &str,
    expires_at: DateTime<Utc>,
) -> Message {
    let date = format_date(locale, expires_at);
    match locale {
        Locale::PtBr => render(
            locale,
            "Sua conta na nuvem foi aprovada".into(),
            &[
                &[Text("Olá!")],
                &[
                    Text("Temos uma ótima notícia: o cadastro de "),
                    Text(organization_name),
                    Text(" na nuvem foi aprovado."),
                ],
                &[Text(
                    "Para ativar a conta e gerar sua primeira chave de acesso, acesse o link abaixo:",
                )],
                &[Link(activation_url)],
                &[
                    Text("Por segurança, o link só pode ser usado uma vez e vale até "),
                    Text(&date),
                    Text(
                        ". Se ele expirar, é só falar com o nosso suporte que enviaremos um novo.",
                    ),
                ],
                &[Text(
                    "Se você não reconhece este cadastro, pode ignorar esta mensagem.",
                )],
                &[Text("Atenciosamente,\nEquipe nuvem")],
            ],
        ),
        Locale::En => render(
            locale,
            "Your nuvem account has been approved".into(),
            &[
                &[Text("Hello!")],
                &[
                    Text("Good news: the nuvem account for "),
                    Text(organization_name),
                    Text(" has been approved."),
                ],
                &[Text(
                    "To activate the account and create your first access key, open the link below:",
                )],
                &[Link(activation_url)],
                &[
                    Text("For your security, the link works only once and is valid until "),
                    Text(&date),
                    Text(
                        ". If it expires, just contact our support team and we will send you a new one.",
                    ),
                ],
                &[Text(
                    "If you do not recognise this signup, you can safely ignore this email.",
                )],
                &[Text("Best regards,\nThe nuvem team")],
            ],
        ),
    }
}

/// Sent when an approver rejects a signup; `reason` is the approver's text.
pub fn rejection_email(locale: Locale, organization_name: &str, reason: &str) -> Message {
    let reason = reason.trim();
    match locale {
        Locale::PtBr => render(
            locale,
            "Atualização sobre o seu cadastro na nuvem".into(),
            &[
                &[Text("Olá!")],
                &[
                    Text("Agradecemos o interesse de "),
                    Text(organization_name),
                    Text(
                        " na nuvem. Após analisarmos o cadastro, infelizmente não foi possível aprová-lo neste momento.",
                    ),
                ],
                &[Text("Motivo: "), Text(reason)],
                &[Text(
                    "Se você acredita que houve um engano ou quiser nos enviar mais informações, fale com o nosso suporte. Você também pode fazer um novo cadastro quando quiser.",
                )],
                &[Text("Atenciosamente,\nEquipe nuvem")],
            ],
        ),
        Locale::En => render(
            locale,
            "An update on your nuvem signup".into(),
            &[
                &[Text("Hello!")],
                &[
                    Text("Thank you for signing "),
                    Text(organization_name),
                    Text(
                        " up for nuvem. After reviewing the application, we are unfortunately unable to approve it at this time.",
                    ),
                ],
                &[Text("Reason: "), Text(reason)],
                &[Text(
                    "If you believe this is a mistake or would like to send us more information, please contact our support team. You are also welcome to sign up again at any time.",
                )],
                &[Text("Best regards,\nThe nuvem team")],
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const URL: &str = "https://app.nuvem.com.br/activate?token=nvm_at_abc&lang=pt";

    fn expires() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, 14, 5, 0).unwrap()
    }

    #[test]
    fn escape_html_covers_special_characters() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & Jerry's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
        assert_eq!(escape_html("Ação"), "Ação");
    }

    #[test]
    fn activation_contains_link_in_both_parts() {
        for locale in Locale::ALL {
            let m = activation_email(locale, "Padaria Pão Quente", URL, expires());
            assert!(m.text.contains(URL), "{locale}");
            let escaped = escape_html(URL);
            assert!(
                m.html
                    .contains(&format!("<a href=\"{escaped}\">{escaped}</a>")),
                "{locale}"
            );
            assert!(m.text.contains("Padaria Pão Quente"));
            assert!(
                m.html
                    .contains(&format!("<html lang=\"{}\">", locale.as_str()))
            );
        }
    }

    #[test]
    fn activation_language_and_date_follow_locale() {
        let pt = activation_email(Locale::PtBr, "Org", URL, expires());
        let en = activation_email(Locale::En, "Org", URL, expires());
        assert_ne!(pt.subject, en.subject);
        assert!(pt.subject.contains("aprovada"));
        assert!(pt.text.contains("Olá!") && pt.text.contains("01/07/2026 14:05 UTC"));
        assert!(en.text.contains("Hello!") && en.text.contains("1 July 2026, 14:05 UTC"));
        assert!(!en.text.contains("Olá"));
    }

    #[test]
    fn rejection_language_follows_locale() {
        let pt = rejection_email(Locale::PtBr, "Org", "Documentação incompleta");
        let en = rejection_email(Locale::En, "Org", "Incomplete documents");
        assert!(pt.text.contains("Motivo: Documentação incompleta"));
        assert!(en.text.contains("Reason: Incomplete documents"));
        assert_ne!(pt.subject, en.subject);
        assert!(pt.html.contains("Motivo: Documentação incompleta"));
    }

    #[test]
    fn interpolated_values_are_escaped_in_html_only() {
        let evil = "<script>alert('x')</script> & Co";
        for locale in Locale::ALL {
            let messages = [
                activation_email(locale, evil, "https://x.test/a?b=1&c=\"2\"", expires()),
                rejection_email(locale, "Org", evil),
                rejection_email(locale, evil, "motivo"),
            ];
            for m in messages {
                assert!(m.text.contains(evil));
                assert!(!m.html.contains("<script"), "{}", m.html);
                assert!(
                    m.html
                        .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co"),
                    "{}",
                    m.html
                );
            }
            let m = activation_email(locale, "Org", "https://x.test/a?b=1&c=\"2\"", expires());
            assert!(
                m.html
                    .contains("href=\"https://x.test/a?b=1&amp;c=&quot;2&quot;\"")
            );
        }
    }

    #[test]
    fn multiline_reason_keeps_its_lines() {
        let m = rejection_email(Locale::En, "Org", "  line one\nline <two>  ");
        assert!(m.text.contains("Reason: line one\nline <two>\n"));
        assert!(
            m.html
                .contains("Reason: line one<br>\nline &lt;two&gt;</p>")
        );
    }
}
