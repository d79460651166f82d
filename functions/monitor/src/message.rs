//! One message model, rendered twice: Slack Block Kit for incoming webhooks (`<@U…>` and
//! `<!subteam^S…>` mentions) and a Teams Adaptive Card for Workflows webhooks (`<at>`
//! mentions with their `msteams.entities`). Both stay inside the services' limits: Slack's
//! 150-character header, 3000-character sections and 10 fields; Teams' 28 KB payload.

use serde_json::{json, Value};
use sluice::config::{Owner, Severity};

/// What a message says.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub tone: Tone,
    /// One line (the header).
    pub title: String,
    /// Who is mentioned: (owners key, the owner), when known.
    pub owner: Option<(String, Owner)>,
    /// Paragraphs under the header.
    pub text: Vec<String>,
    /// Labelled facts: worker, table, date, counts ...
    pub facts: Vec<(String, String)>,
    /// An error, shown as code.
    pub error: Option<String>,
    /// Labelled links: logs of the run, the status page.
    pub links: Vec<(String, String)>,
}

/// How a message looks: its mark and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Error,
    Warn,
    Resolved,
    Info,
}

impl Tone {
    /// The tone of an alert of severity `s`.
    pub fn of(s: Severity) -> Tone {
        match s {
            Severity::Error => Tone::Error,
            Severity::Warn => Tone::Warn,
        }
    }
    fn mark(self) -> &'static str {
        match self {
            Tone::Error => "🔴",
            Tone::Warn => "🟠",
            Tone::Resolved => "✅",
            Tone::Info => "📋",
        }
    }
}

/// `s` cut to at most `n` characters, marked when cut.
pub fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Slack's mrkdwn escapes.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The longest error shown; the rest is in the logs.
const ERROR_CHARS: usize = 1500;

impl Message {
    fn owner_name(&self) -> Option<String> {
        self.owner
            .as_ref()
            .map(|(k, o)| o.name.clone().unwrap_or_else(|| k.clone()))
    }

    /// Slack incoming-webhook body.
    pub fn slack(&self) -> Value {
        let mention = self.owner.as_ref().and_then(|(_, o)| {
            o.slack.as_ref().map(|id| {
                if id.starts_with('S') {
                    format!("<!subteam^{id}>")
                } else {
                    format!("<@{id}>")
                }
            })
        });
        let mention = mention.or_else(|| self.owner_name());
        let title = cut(&format!("{} {}", self.tone.mark(), self.title), 150);
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}}),
        ];
        let mut lead: Vec<String> = vec![];
        if let Some(m) = &mention {
            lead.push(format!("Owner: {m}"));
        }
        lead.extend(self.text.iter().map(|t| slack_escape(t)));
        if !lead.is_empty() {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&lead.join("\n"), 3000)}}));
        }
        if !self.facts.is_empty() {
            let fields: Vec<Value> = self
                .facts
                .iter()
                .take(10)
                .map(|(k, v)| json!({"type": "mrkdwn", "text": cut(&format!("*{}*\n{}", slack_escape(k), slack_escape(v)), 2000)}))
                .collect();
            blocks.push(json!({"type": "section", "fields": fields}));
        }
        if let Some(e) = &self.error {
            let e = cut(e, ERROR_CHARS).replace("```", "'''");
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{}```", slack_escape(&e))}}));
        }
        if !self.links.is_empty() {
            let links: Vec<String> = self
                .links
                .iter()
                .map(|(label, url)| format!("<{url}|{}>", slack_escape(label)))
                .collect();
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(&links.join(" · "), 3000)}]}));
        }
        let fallback = match &mention {
            Some(m) => format!("{} {} ({m})", self.tone.mark(), self.title),
            None => format!("{} {}", self.tone.mark(), self.title),
        };
        json!({"text": cut(&fallback, 3000), "blocks": blocks})
    }

    /// Teams Workflows webhook body: an Adaptive Card as a message attachment.
    pub fn teams(&self) -> Value {
        let color = match self.tone {
            Tone::Error => "Attention",
            Tone::Warn => "Warning",
            Tone::Resolved => "Good",
            Tone::Info => "Default",
        };
        let mut body = vec![
            json!({"type": "TextBlock", "text": cut(&format!("{} {}", self.tone.mark(), self.title), 400), "weight": "Bolder", "size": "Medium", "wrap": true, "color": color}),
        ];
        let mut entities = vec![];
        let mut lead: Vec<String> = vec![];
        if let Some((key, o)) = &self.owner {
            let name = o.name.clone().unwrap_or_else(|| key.clone());
            match &o.teams {
                Some(upn) => {
                    let at = format!("<at>{name}</at>");
                    entities.push(json!({"type": "mention", "text": at, "mentioned": {"id": upn, "name": name}}));
                    lead.push(format!("Owner: {at}"));
                }
                None => lead.push(format!("Owner: {name}")),
            }
        }
        lead.extend(self.text.iter().cloned());
        if !lead.is_empty() {
            body.push(
                json!({"type": "TextBlock", "text": cut(&lead.join("\n\n"), 4000), "wrap": true}),
            );
        }
        if !self.facts.is_empty() {
            let facts: Vec<Value> = self
                .facts
                .iter()
                .take(20)
                .map(|(k, v)| json!({"title": cut(k, 100), "value": cut(v, 500)}))
                .collect();
            body.push(json!({"type": "FactSet", "facts": facts}));
        }
        if let Some(e) = &self.error {
            body.push(json!({"type": "TextBlock", "text": cut(e, ERROR_CHARS), "wrap": true, "fontType": "Monospace", "isSubtle": true}));
        }
        let actions: Vec<Value> = self
            .links
            .iter()
            .map(|(label, url)| json!({"type": "Action.OpenUrl", "title": label, "url": url}))
            .collect();
        let mut card = json!({
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
            "msteams": {"width": "Full"},
        });
        if !actions.is_empty() {
            card["actions"] = Value::Array(actions);
        }
        if !entities.is_empty() {
            card["msteams"]["entities"] = Value::Array(entities);
        }
        json!({
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}],
        })
    }
}

/// Teams Workflows refuses bodies over 28 KB, Slack messages over 40,000 characters of
/// text; a digest that would be larger drops its longest lists first, so this is the
/// budget the renderers keep to (checked by the tests below).
#[cfg(test)]
pub const MAX_BODY_BYTES: usize = 27 * 1024;

/// Percent-encodes everything but RFC 3986's unreserved characters (for a URL's query value or
/// path parameter).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Cloud Logging, filtered to one run's lines (every line of a run carries its run id).
pub fn logs_url(project: &str, run_id: &str) -> String {
    let enc = percent_encode(&format!("jsonPayload.run_id=\"{run_id}\""));
    format!("https://console.cloud.google.com/logs/query;query={enc}?project={project}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            tone: Tone::Error,
            title: "pg-copy failed: shop.orders for 2026-12-02".into(),
            owner: Some((
                "finance-analyst".into(),
                Owner {
                    name: Some("Ana".into()),
                    slack: Some("U024BE7LH".into()),
                    teams: Some("ana@acme.example".into()),
                },
            )),
            text: vec!["Run 20261203T060000-1a2b3c4d on prod.".into()],
            facts: vec![
                ("Worker".into(), "pg-copy".into()),
                ("Rows in".into(), "0".into()),
            ],
            error: Some("relation \"orders\" does not exist".into()),
            links: vec![
                ("Logs".into(), logs_url("acme", "20261203T060000-1a2b3c4d")),
                ("Status page".into(), "https://status.example/".into()),
            ],
        }
    }

    #[test]
    fn slack_blocks_mention_the_owner() {
        let want = json!({
            "text": "🔴 pg-copy failed: shop.orders for 2026-12-02 (<@U024BE7LH>)",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "🔴 pg-copy failed: shop.orders for 2026-12-02", "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "Owner: <@U024BE7LH>\nRun 20261203T060000-1a2b3c4d on prod."}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Worker*\npg-copy"},
                    {"type": "mrkdwn", "text": "*Rows in*\n0"}
                ]},
                {"type": "section", "text": {"type": "mrkdwn", "text": "```relation \"orders\" does not exist```"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "<https://console.cloud.google.com/logs/query;query=jsonPayload.run_id%3D%2220261203T060000-1a2b3c4d%22?project=acme|Logs> · <https://status.example/|Status page>"}]}
            ]
        });
        assert_eq!(msg().slack(), want);
        let mut group = msg();
        group.owner.as_mut().unwrap().1.slack = Some("S0614TZR7".into());
        assert!(group.slack()["text"]
            .as_str()
            .unwrap()
            .ends_with("(<!subteam^S0614TZR7>)"));
    }

    #[test]
    fn teams_cards_carry_mention_entities() {
        let card = msg().teams();
        let c = &card["attachments"][0]["content"];
        assert_eq!(
            card["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(c["type"], "AdaptiveCard");
        assert_eq!(
            c["body"][1]["text"],
            "Owner: <at>Ana</at>\n\nRun 20261203T060000-1a2b3c4d on prod."
        );
        assert_eq!(
            c["msteams"]["entities"],
            json!([{"type": "mention", "text": "<at>Ana</at>", "mentioned": {"id": "ana@acme.example", "name": "Ana"}}])
        );
        assert_eq!(
            c["body"][2]["facts"][0],
            json!({"title": "Worker", "value": "pg-copy"})
        );
        assert_eq!(c["actions"][1]["url"], "https://status.example/");
    }

    #[test]
    fn long_errors_and_titles_stay_within_the_limits() {
        let mut m = msg();
        m.title = "x".repeat(400);
        m.error = Some("e".repeat(100_000));
        m.facts = (0..30)
            .map(|i| (format!("k{i}"), "v".repeat(3000)))
            .collect();
        let s = m.slack();
        assert_eq!(
            s["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            150
        );
        assert_eq!(s["blocks"][2]["fields"].as_array().unwrap().len(), 10);
        for b in s["blocks"].as_array().unwrap() {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= 3000);
            }
        }
        assert!(serde_json::to_vec(&m.teams()).unwrap().len() < MAX_BODY_BYTES);
        assert!(serde_json::to_vec(&s).unwrap().len() < MAX_BODY_BYTES);
        // Markup in values cannot forge mentions or links.
        m.text = vec!["<!channel> <http://x|y>".into()];
        assert!(m.slack()["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("&lt;!channel&gt;"));
    }
}
