//! Emails to tenants, rendered as plain text and HTML. Pure: sending is the
//! adapters' job.

use chrono::{DateTime, Utc};

use crate::account::Locale;

mod rpa_runs;
pub use rpa_runs::{rpa_export_email, rpa_report_email};

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

/// How many buckets a quota email lists at most.
pub const QUOTA_EMAIL_MAX_BUCKETS: usize = 5;

/// `bytes` in decimal units (1 KB = 1000 bytes, as quotas are sold) with one
/// decimal, in the locale's number format: `8,0 GB` in pt-BR, `8.0 GB` in
/// English. Under 1 KB it is a plain count: `512 bytes`.
pub fn format_bytes(locale: Locale, bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut unit = 1000u128;
    let mut index = 0;
    // Pick the unit after rounding, so 999 960 bytes is "1.0 MB", not "1000.0 KB".
    let tenths = loop {
        let tenths = (u128::from(bytes) * 10 + unit / 2) / unit;
        if tenths < 10_000 || index == UNITS.len() - 1 {
            break tenths;
        }
        unit *= 1000;
        index += 1;
    };
    let separator = match locale {
        Locale::PtBr => ',',
        Locale::En => '.',
    };
    format!("{}{separator}{} {}", tenths / 10, tenths % 10, UNITS[index])
}

/// Sent when an account's storage crosses `level_percent` (80, 95 or 100) of
/// its quota. `biggest_buckets` are the tenant's own bucket names (not the
/// physical ones) with their sizes; the biggest
/// [`QUOTA_EMAIL_MAX_BUCKETS`] are listed, largest first.
pub fn quota_email(
    locale: Locale,
    organization_name: &str,
    level_percent: u8,
    used_bytes: u64,
    quota_bytes: u64,
    biggest_buckets: &[(String, u64)],
) -> Message {
    let used = format_bytes(locale, used_bytes);
    let quota = format_bytes(locale, quota_bytes);
    let level = format!("{level_percent}%");
    let full = level_percent >= 100;

    let mut buckets: Vec<&(String, u64)> = biggest_buckets.iter().collect();
    buckets.sort_by_key(|b| std::cmp::Reverse(b.1));
    buckets.truncate(QUOTA_EMAIL_MAX_BUCKETS);
    let bucket_lines = buckets
        .iter()
        .map(|(name, size)| format!("• {name}: {}", format_bytes(locale, *size)))
        .collect::<Vec<_>>()
        .join("\n");

    let (subject, hello, usage, listing, full_warning, advice, bye) = match locale {
        Locale::PtBr => (
            format!("Seu armazenamento na nuvem atingiu {level} da cota"),
            "Olá!",
            [
                Text("O armazenamento de "),
                Text(organization_name),
                Text(" na nuvem atingiu "),
                Text(&level),
                Text(" da cota contratada: "),
                Text(&used),
                Text(" em uso de "),
                Text(&quota),
                Text("."),
            ],
            "Os buckets que mais ocupam espaço:\n",
            "Com a cota esgotada, novos envios de arquivos podem ser recusados.",
            "Para liberar espaço, apague backups antigos e arquivos de que você não precisa mais. Se precisar de mais espaço, fale com o nosso suporte para aumentar a sua cota.",
            "Atenciosamente,\nEquipe nuvem",
        ),
        Locale::En => (
            format!("Your nuvem storage has reached {level} of its quota"),
            "Hello!",
            [
                Text("The nuvem storage of "),
                Text(organization_name),
                Text(" has reached "),
                Text(&level),
                Text(" of its quota: "),
                Text(&used),
                Text(" used of "),
                Text(&quota),
                Text("."),
            ],
            "The buckets using the most space:\n",
            "With the quota used up, new uploads may be refused.",
            "To free up space, delete old backups and files you no longer need. If you need more space, contact our support team to increase your quota.",
            "Best regards,\nThe nuvem team",
        ),
    };

    let hello = [Text(hello)];
    let listing = [Text(listing), Text(&bucket_lines)];
    let full_warning = [Text(full_warning)];
    let advice = [Text(advice)];
    let bye = [Text(bye)];
    let mut paragraphs: Vec<&[Part<'_>]> = vec![&hello, &usage];
    if !buckets.is_empty() {
        paragraphs.push(&listing);
    }
    if full {
        paragraphs.push(&full_warning);
    }
    paragraphs.push(&advice);
    paragraphs.push(&bye);
    render(locale, subject, &paragraphs)
}

/// Sent when nuvem disables a webhook endpoint on its own: the receiver
/// answered 410 Gone (`gone`), or every delivery failed for 5 days.
pub fn webhook_disabled_email(
    locale: Locale,
    organization_name: &str,
    url: &str,
    gone: bool,
) -> Message {
    match locale {
        Locale::PtBr => render(
            locale,
            "Um webhook da sua conta na nuvem foi desativado".into(),
            &[
                &[Text("Olá!")],
                &[
                    Text("Desativamos um endpoint de webhook de "),
                    Text(organization_name),
                    Text(":"),
                ],
                &[Text(url)],
                &[Text(if gone {
                    "O servidor respondeu 410 (Gone), que indica que o endpoint não existe mais."
                } else {
                    "Todas as entregas para ele falharam nos últimos 5 dias."
                })],
                &[Text(
                    "Enquanto ele estiver desativado, nenhum evento será enviado para ele. Depois de corrigir o endpoint, reative-o pela API (PATCH /v1/webhooks/{id} com \"enabled\": true) e reenvie os eventos perdidos com POST /v1/events/{id}/retry.",
                )],
                &[Text("Atenciosamente,\nEquipe nuvem")],
            ],
        ),
        Locale::En => render(
            locale,
            "A webhook endpoint of your nuvem account was disabled".into(),
            &[
                &[Text("Hello!")],
                &[
                    Text("We disabled a webhook endpoint of "),
                    Text(organization_name),
                    Text(":"),
                ],
                &[Text(url)],
                &[Text(if gone {
                    "The server answered 410 (Gone), which says the endpoint no longer exists."
                } else {
                    "Every delivery to it failed for the last 5 days."
                })],
                &[Text(
                    "While it is disabled, no event is sent to it. Once the endpoint is fixed, enable it again through the API (PATCH /v1/webhooks/{id} with \"enabled\": true) and send the missed events again with POST /v1/events/{id}/retry.",
                )],
                &[Text("Best regards,\nThe nuvem team")],
            ],
        ),
    }
}

/// An RPA process moved on (`rpa.process.status_changed`): whose invoice,
/// of which month, and what it waits for now.
pub fn rpa_process_email(
    locale: Locale,
    organization_name: &str,
    legal_name: &str,
    carrier: &str,
    month: &str,
    status: crate::rpa::process::ProcessStatus,
) -> Message {
    use crate::rpa::process::ProcessStatus::*;
    let invoice_pt = format!("A fatura {carrier} de {month} de {legal_name}");
    let invoice_en = format!("The {carrier} invoice of {month} for {legal_name}");
    match locale {
        Locale::PtBr => {
            let (subject, line) = match status {
                AwaitingDownload => ("aguarda download", "aguarda um novo download."),
                AwaitingApproval => (
                    "aguarda aprovação",
                    "chegou e aguarda aprovação. Confira o PDF e aprove-a pela API (POST /v1/rpa/processes/{id}/approve).",
                ),
                AwaitingTaxFiling => ("aprovada", "foi aprovada e aguarda o envio ao SAT."),
                Filed => ("enviada ao SAT", "foi enviada ao SAT."),
            };
            render(
                locale,
                format!("{legal_name} ({month}): fatura {subject}"),
                &[
                    &[Text("Olá!")],
                    &[Text(&invoice_pt), Text(" "), Text(line)],
                    &[Text("Conta: "), Text(organization_name)],
                    &[Text("Atenciosamente,\nEquipe nuvem")],
                ],
            )
        }
        Locale::En => {
            let (subject, line) = match status {
                AwaitingDownload => ("awaits a download", "awaits a new download."),
                AwaitingApproval => (
                    "awaits approval",
                    "has arrived and awaits approval. Check the PDF and approve it through the API (POST /v1/rpa/processes/{id}/approve).",
                ),
                AwaitingTaxFiling => (
                    "approved",
                    "was approved and awaits filing with the tax system (SAT).",
                ),
                Filed => ("filed", "was filed with the tax system (SAT)."),
            };
            render(
                locale,
                format!("{legal_name} ({month}): invoice {subject}"),
                &[
                    &[Text("Hello!")],
                    &[Text(&invoice_en), Text(" "), Text(line)],
                    &[Text("Account: "), Text(organization_name)],
                    &[Text("Best regards,\nThe nuvem team")],
                ],
            )
        }
    }
}

/// An RPA schedule was paused after failing too many runs in a row
/// (`rpa.schedule.paused`).
pub fn rpa_schedule_paused_email(
    locale: Locale,
    organization_name: &str,
    schedule_name: &str,
    failures: u64,
    last_error: &str,
) -> Message {
    let failures = failures.to_string();
    match locale {
        Locale::PtBr => render(
            locale,
            format!("Agendamento pausado: {schedule_name}"),
            &[
                &[Text("Olá!")],
                &[
                    Text("O agendamento \u{201c}"),
                    Text(schedule_name),
                    Text("\u{201d} de "),
                    Text(organization_name),
                    Text(" falhou "),
                    Text(&failures),
                    Text(" vezes seguidas e foi pausado. O último erro:"),
                ],
                &[Text(last_error)],
                &[Text(
                    "Depois de corrigir a causa, reative-o pela API (PATCH /v1/rpa/schedules/{id} com \"active\": true).",
                )],
                &[Text("Atenciosamente,\nEquipe nuvem")],
            ],
        ),
        Locale::En => render(
            locale,
            format!("Schedule paused: {schedule_name}"),
            &[
                &[Text("Hello!")],
                &[
                    Text("The schedule \u{201c}"),
                    Text(schedule_name),
                    Text("\u{201d} of "),
                    Text(organization_name),
                    Text(" failed "),
                    Text(&failures),
                    Text(" times in a row and was paused. The last error:"),
                ],
                &[Text(last_error)],
                &[Text(
                    "Once the cause is fixed, make it active again through the API (PATCH /v1/rpa/schedules/{id} with \"active\": true).",
                )],
                &[Text("Best regards,\nThe nuvem team")],
            ],
        ),
    }
}

/// A hard-quota account's storage keys lost (`blocked`) or got back the
/// right to write (`quota.writes_blocked`, `quota.writes_restored`).
pub fn writes_blocked_email(
    locale: Locale,
    organization_name: &str,
    blocked: bool,
    used_bytes: u64,
    quota_bytes: u64,
) -> Message {
    let used = format_bytes(locale, used_bytes);
    let quota = format_bytes(locale, quota_bytes);
    match (locale, blocked) {
        (Locale::PtBr, true) => render(
            locale,
            "Cota esgotada: novos backups estão bloqueados".to_owned(),
            &[
                &[Text("Olá!")],
                &[
                    Text("O armazenamento de "),
                    Text(organization_name),
                    Text(" atingiu 100% da cota ("),
                    Text(&used),
                    Text(" de "),
                    Text(&quota),
                    Text(
                        "). Por isso as chaves de armazenamento (como a do Imperius Backup) não gravam mais: novos backups serão recusados.",
                    ),
                ],
                &[Text(
                    "Elas continuam lendo e apagando. Apague backups antigos para liberar espaço, ou fale conosco para aumentar a sua cota; as gravações voltam assim que o uso ficar abaixo da cota.",
                )],
                &[Text("Atenciosamente,\nEquipe nuvem")],
            ],
        ),
        (Locale::PtBr, false) => render(
            locale,
            "Backups liberados: o uso voltou a ficar abaixo da cota".to_owned(),
            &[
                &[Text("Olá!")],
                &[
                    Text("O armazenamento de "),
                    Text(organization_name),
                    Text(" está abaixo da cota ("),
                    Text(&used),
                    Text(" de "),
                    Text(&quota),
                    Text("), e as chaves de armazenamento voltaram a gravar."),
                ],
                &[Text("Atenciosamente,\nEquipe nuvem")],
            ],
        ),
        (Locale::En, true) => render(
            locale,
            "Quota reached: new backups are blocked".to_owned(),
            &[
                &[Text("Hello!")],
                &[
                    Text("The storage of "),
                    Text(organization_name),
                    Text(" reached 100% of its quota ("),
                    Text(&used),
                    Text(" of "),
                    Text(&quota),
                    Text(
                        "). Its storage keys (such as Imperius Backup's) can no longer write: new backups will be refused.",
                    ),
                ],
                &[Text(
                    "They can still read and delete. Delete old backups to free space, or contact us to raise your quota; writing comes back as soon as usage is below the quota.",
                )],
                &[Text("Best regards,\nThe nuvem team")],
            ],
        ),
        (Locale::En, false) => render(
            locale,
            "Backups unblocked: usage is below the quota again".to_owned(),
            &[
                &[Text("Hello!")],
                &[
                    Text("The storage of "),
                    Text(organization_name),
                    Text(" is below its quota ("),
                    Text(&used),
                    Text(" of "),
                    Text(&quota),
                    Text("), and its storage keys write again."),
                ],
                &[Text("Best regards,\nThe nuvem team")],
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn writes_blocked_and_restored_in_both_languages() {
        let gb = 1_000_000_000;
        let m = writes_blocked_email(Locale::PtBr, "Padaria Pão Quente", true, 10 * gb, 10 * gb);
        assert_eq!(m.subject, "Cota esgotada: novos backups estão bloqueados");
        assert!(m.text.contains("Padaria Pão Quente"));
        assert!(m.text.contains("10,0 GB de 10,0 GB"), "{}", m.text);
        assert!(m.text.contains("continuam lendo e apagando"));
        let m = writes_blocked_email(Locale::En, "Joe's Garage", false, 9 * gb, 10 * gb);
        assert_eq!(
            m.subject,
            "Backups unblocked: usage is below the quota again"
        );
        assert!(m.text.contains("9.0 GB of 10.0 GB"), "{}", m.text);
        assert!(m.html.contains("<html lang=\"en\">"));
    }

    const URL: &str = "https://app.nuvem.com.br/activate?token=nvm_at_abc&lang=pt";

    fn expires() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, 14, 5, 0).unwrap()
    }

    #[test]
    fn webhook_disabled_names_the_url_and_why() {
        for locale in Locale::ALL {
            let url = "https://hooks.example.com/nuvem?a=1&b=<2>";
            let gone = webhook_disabled_email(locale, "Padaria", url, true);
            let failing = webhook_disabled_email(locale, "Padaria", url, false);
            assert!(
                gone.text.contains(url) && gone.text.contains("410"),
                "{locale}"
            );
            assert!(
                failing.text.contains('5') && !failing.text.contains("410"),
                "{locale}"
            );
            assert!(gone.html.contains(&escape_html(url)) && !gone.html.contains("<2>"));
        }
        assert!(
            webhook_disabled_email(Locale::PtBr, "P", "https://x", true)
                .subject
                .contains("desativado")
        );
        assert!(
            webhook_disabled_email(Locale::En, "P", "https://x", true)
                .subject
                .contains("disabled")
        );
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

    const GB: u64 = 1_000_000_000;

    fn buckets() -> Vec<(String, u64)> {
        vec![
            ("fotos".to_owned(), 1_200_000_000),
            ("backups".to_owned(), 6_500_000_000),
            ("logs".to_owned(), 300_000_000),
        ]
    }

    #[test]
    fn bytes_are_decimal_and_localized() {
        assert_eq!(format_bytes(Locale::PtBr, 8 * GB), "8,0 GB");
        assert_eq!(format_bytes(Locale::En, 8 * GB), "8.0 GB");
        assert_eq!(format_bytes(Locale::PtBr, 0), "0 bytes");
        assert_eq!(format_bytes(Locale::En, 999), "999 bytes");
        assert_eq!(format_bytes(Locale::En, 1000), "1.0 KB");
        assert_eq!(format_bytes(Locale::En, 1_250_000), "1.3 MB");
        assert_eq!(format_bytes(Locale::En, 999_960), "1.0 MB");
        assert_eq!(format_bytes(Locale::PtBr, 9_500_000_000), "9,5 GB");
        assert_eq!(format_bytes(Locale::En, 1_000_000_000_000_000), "1.0 PB");
        assert_eq!(format_bytes(Locale::En, u64::MAX), "18446.7 PB");
    }

    #[test]
    fn quota_email_in_portuguese() {
        let m = quota_email(
            Locale::PtBr,
            "Padaria Pão Quente",
            80,
            8 * GB,
            10 * GB,
            &buckets(),
        );
        assert_eq!(m.subject, "Seu armazenamento na nuvem atingiu 80% da cota");
        assert!(m.text.starts_with("Olá!"));
        assert!(m.text.contains("Padaria Pão Quente"));
        assert!(m.text.contains("8,0 GB em uso de 10,0 GB"), "{}", m.text);
        assert!(
            m.text
                .contains("• backups: 6,5 GB\n• fotos: 1,2 GB\n• logs: 300,0 MB"),
            "{}",
            m.text
        );
        assert!(m.text.contains("apague backups antigos"));
        assert!(m.text.contains("aumentar a sua cota"));
        assert!(!m.text.contains("recusados"));
        assert!(m.html.contains("<html lang=\"pt-BR\">"));
        assert!(m.html.contains("• backups: 6,5 GB<br>\n• fotos: 1,2 GB"));
    }

    #[test]
    fn quota_email_in_english() {
        let m = quota_email(Locale::En, "Org", 95, 9_500_000_000, 10 * GB, &buckets());
        assert_eq!(m.subject, "Your nuvem storage has reached 95% of its quota");
        assert!(m.text.contains("9.5 GB used of 10.0 GB"), "{}", m.text);
        assert!(m.text.contains("• backups: 6.5 GB"));
        assert!(m.text.contains("delete old backups"));
        assert!(!m.text.contains("refused"));
        assert!(!m.text.contains("Olá"));
    }

    #[test]
    fn quota_email_at_100_warns_about_uploads() {
        let pt = quota_email(Locale::PtBr, "Org", 100, 10 * GB, 10 * GB, &[]);
        let en = quota_email(Locale::En, "Org", 100, 12 * GB, 10 * GB, &[]);
        assert!(
            pt.text
                .contains("novos envios de arquivos podem ser recusados")
        );
        assert!(en.text.contains("new uploads may be refused"));
        assert!(en.text.contains("12.0 GB used of 10.0 GB"));
        // No bucket list without buckets.
        assert!(!pt.text.contains("buckets que mais"));
        assert!(!en.text.contains("using the most"));
    }

    #[test]
    fn quota_email_lists_the_biggest_buckets_only() {
        let many: Vec<(String, u64)> = (1..=8).map(|i| (format!("b{i}"), i * GB)).collect();
        let m = quota_email(Locale::En, "Org", 80, 36 * GB, 40 * GB, &many);
        for shown in ["b8", "b7", "b6", "b5", "b4"] {
            assert!(m.text.contains(&format!("• {shown}: ")), "{shown}");
        }
        for hidden in ["b3", "b2", "b1"] {
            assert!(!m.text.contains(&format!("• {hidden}: ")), "{hidden}");
        }
        assert!(m.text.find("• b8").unwrap() < m.text.find("• b4").unwrap());
    }

    #[test]
    fn quota_email_escapes_in_html_only() {
        let evil = "<script>alert('x')</script> & Co";
        let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co";
        for locale in Locale::ALL {
            let m = quota_email(locale, evil, 100, GB, GB, &[(evil.to_owned(), GB)]);
            assert!(m.text.contains(evil));
            assert!(!m.html.contains("<script"), "{}", m.html);
            assert_eq!(m.html.matches(escaped).count(), 2, "{}", m.html);
        }
    }

    #[test]
    fn rpa_process_email_says_what_the_invoice_waits_for() {
        use crate::rpa::process::ProcessStatus;
        let pt = rpa_process_email(
            Locale::PtBr,
            "Contábil Silva",
            "Padaria Pão Quente Ltda",
            "VIVO",
            "2026-11",
            ProcessStatus::AwaitingApproval,
        );
        assert_eq!(
            pt.subject,
            "Padaria Pão Quente Ltda (2026-11): fatura aguarda aprovação"
        );
        assert!(
            pt.text.contains(
                "A fatura VIVO de 2026-11 de Padaria Pão Quente Ltda chegou e aguarda aprovação."
            ),
            "{}",
            pt.text
        );
        assert!(
            pt.html.contains("Padaria P&atilde;o") || pt.html.contains("Padaria Pão"),
            "{}",
            pt.html
        );
        let en = rpa_process_email(
            Locale::En,
            "Silva",
            "ACME",
            "OI",
            "2026-12",
            ProcessStatus::Filed,
        );
        assert_eq!(en.subject, "ACME (2026-12): invoice filed");
        assert!(en.text.contains("was filed with the tax system"));
        let escaped = rpa_process_email(
            Locale::En,
            "<b>",
            "<script>",
            "OI",
            "2026-12",
            ProcessStatus::Filed,
        );
        assert!(!escaped.html.contains("<script>"));
    }
}
