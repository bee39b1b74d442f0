//! A [`Message`] as a Slack incoming webhook's payload (Block Kit): a header, the agent's text
//! as `plain_text` (Slack shows it as written: no mrkdwn, no mentions), the facts, Airlock's
//! line as context, and one URL button per approver. Held to Slack's limits: header 150
//! characters, section text 3000, ten fields of 2000, button text 75, URL 3000, 25 buttons.
//!
//! Pure: it never sends.

use serde_json::{Value, json};

use super::chat::{Message, shown};

fn plain(text: &str, chars: usize) -> Value {
    json!({"type": "plain_text", "text": crate::summary::shorten(text, chars), "emoji": false})
}

/// The payload posted.
pub fn payload(m: &Message) -> Value {
    let mut blocks = vec![json!({"type": "header", "text": plain(&m.title, 150)})];
    if let Some(text) = &m.agent_text {
        blocks.push(json!({"type": "section", "text": plain(&format!("Written by the agent: {text}"), 3000)}));
    }
    let fields: Vec<Value> = (m.facts.iter().take(10))
        .map(|(label, value)| plain(&format!("{label}: {value}"), 2000))
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    blocks.push(json!({"type": "context", "elements": [plain(&m.note, 3000)]}));
    let buttons: Vec<Value> = (m.buttons.iter().take(25).enumerate())
        .filter(|(_, (_, url))| url.len() <= 3000)
        .map(|(i, (label, url))| {
            json!({"type": "button", "text": plain(label, 75), "url": url, "action_id": format!("open-{i}")})
        })
        .collect();
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    json!({"text": shown(&m.fallback, 3000), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::payload;
    use crate::channel::chat::Message;

    #[test]
    fn a_message_keeps_to_slacks_limits_and_never_uses_markup_for_the_agents_text() {
        let m = Message {
            title: format!("Approve? {}", "x".repeat(400)),
            agent_text: Some("*bold* <!channel> https[:]//evil".into()),
            facts: (0..12).map(|i| (format!("F{i}"), "v".into())).collect(),
            note: "Role finance decides.".into(),
            buttons: (0..30)
                .map(|i| {
                    (
                        format!("Open as {}", "a".repeat(100)),
                        format!("http://h/a/{i}"),
                    )
                })
                .collect(),
            fallback: "[Airlock] Approve?".into(),
        };
        let p = payload(&m);
        let blocks = p["blocks"].as_array().unwrap();
        assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
        assert_eq!(
            blocks[1]["text"]["type"], "plain_text",
            "the agent's text is never mrkdwn"
        );
        assert_eq!(blocks[2]["fields"].as_array().unwrap().len(), 10);
        let buttons = blocks[4]["elements"].as_array().unwrap();
        assert_eq!(buttons.len(), 25);
        assert!(
            buttons
                .iter()
                .all(|b| b["text"]["text"].as_str().unwrap().chars().count() <= 75)
        );
        assert!(!p.to_string().contains("mrkdwn"));
    }
}
