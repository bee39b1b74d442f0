//! A [`Message`] as a Microsoft Teams workflow webhook's payload: an Adaptive Card 1.5 in a
//! `message` attachment. Airlock's words in `TextBlock`s and a `FactSet`; the agent's text only
//! in a `RichTextBlock`'s `TextRun`, which Teams shows as written (no markdown); one
//! `Action.OpenUrl` per approver.
//!
//! Pure: it never sends.

use serde_json::{Value, json};

use super::chat::Message;

/// The payload posted.
pub fn payload(m: &Message) -> Value {
    let mut body = vec![
        json!({"type": "TextBlock", "text": m.title, "weight": "Bolder", "size": "Medium", "wrap": true}),
    ];
    if let Some(text) = &m.agent_text {
        body.push(json!({"type": "TextBlock", "text": "Written by the agent:", "isSubtle": true, "wrap": true}));
        body.push(json!({"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text}]}));
    }
    let facts: Vec<Value> = (m.facts.iter())
        .map(|(title, value)| json!({"title": title, "value": value}))
        .collect();
    if !facts.is_empty() {
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    body.push(json!({"type": "TextBlock", "text": m.note, "isSubtle": true, "wrap": true}));
    let actions: Vec<Value> = (m.buttons.iter())
        .map(|(title, url)| json!({"type": "Action.OpenUrl", "title": title, "url": url}))
        .collect();
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = json!(actions);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    })
}

#[cfg(test)]
mod tests {
    use super::payload;
    use crate::channel::chat::Message;

    #[test]
    fn the_agents_text_stands_only_in_a_text_run() {
        let m = Message {
            title: "Approve? Refund".into(),
            agent_text: Some("**click** [here](https[:]//x)".into()),
            facts: vec![("Class".into(), "financial".into())],
            note: "Role finance decides.".into(),
            buttons: vec![("Open as ann@example.com".into(), "http://h/a/1/0/t".into())],
            fallback: "x".into(),
        };
        let p = payload(&m);
        let card = &p["attachments"][0]["content"];
        assert_eq!(card["version"], "1.5");
        assert_eq!(card["body"][2]["inlines"][0]["type"], "TextRun");
        let text_blocks: Vec<&str> = (card["body"].as_array().unwrap().iter())
            .filter(|b| b["type"] == "TextBlock")
            .filter_map(|b| b["text"].as_str())
            .collect();
        assert!(
            text_blocks.iter().all(|t| !t.contains("**click**")),
            "{text_blocks:?}"
        );
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    }
}
