//! From a Pub/Sub message to a row of its event table, or to a dead letter with the reason.
//!
//! Pure: no I/O, so it is unit-tested and benchmarked on its own.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::row::{self, normalize_timestamp, Meta};
use crate::schema::EventSchema;

/// The body Pub/Sub POSTs to a push endpoint.
#[derive(Debug, Deserialize)]
pub struct PushEnvelope {
    pub message: Option<PushMessage>,
    #[serde(default)]
    pub subscription: Option<String>,
    #[serde(default, rename = "deliveryAttempt")]
    pub delivery_attempt: Option<i64>,
}

/// The message inside a push envelope (`data` is base64). Pub/Sub writes the id and time
/// twice, camelCase and snake_case; either is taken.
#[derive(Debug, Deserialize)]
#[serde(from = "WireMessage")]
pub struct PushMessage {
    pub data: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub message_id: String,
    pub publish_time: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default, rename = "messageId")]
    message_id: Option<String>,
    #[serde(default, rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time: Option<String>,
    #[serde(default, rename = "publish_time")]
    publish_time_snake: Option<String>,
}

impl From<WireMessage> for PushMessage {
    fn from(w: WireMessage) -> Self {
        PushMessage {
            data: w.data,
            attributes: w.attributes,
            message_id: w.message_id.or(w.message_id_snake).unwrap_or_default(),
            publish_time: w.publish_time.or(w.publish_time_snake),
        }
    }
}

/// How a message reached log-ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A Pub/Sub push request to `serve`.
    Push,
    /// Streaming pull (`pull`).
    Pull,
    /// Read back from the dead-letter table (`replay`).
    Replay,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Push => "push",
            Via::Pull => "pull",
            Via::Replay => "replay",
        }
    }
}

/// A message from either delivery path, data decoded.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub message_id: String,
    pub subscription: Option<String>,
    pub data: Bytes,
    pub attributes: BTreeMap<String, String>,
    pub publish_time: Option<String>,
    pub delivery_attempt: Option<i64>,
    /// How it came.
    pub via: Via,
    /// Set when push data was not base64; `data` then holds the text as received.
    pub bad_base64: Option<String>,
}

impl Incoming {
    /// A push message; bad base64 is kept for the dead-letter table rather than refused.
    pub fn from_push(env: PushEnvelope, message: PushMessage) -> Incoming {
        let raw = message.data.unwrap_or_default();
        let (data, bad_base64) = match base64::engine::general_purpose::STANDARD.decode(&raw) {
            Ok(d) => (Bytes::from(d), None),
            Err(e) => (Bytes::from(raw), Some(e.to_string())),
        };
        Incoming {
            message_id: message.message_id,
            subscription: env.subscription,
            data,
            attributes: message.attributes,
            publish_time: message.publish_time,
            delivery_attempt: env.delivery_attempt,
            via: Via::Push,
            bad_base64,
        }
    }
}

/// Why an event was dead-lettered; the codes are the `reason_code` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    NotJson,
    BadBase64,
    MissingType,
    UnknownType,
    SchemaViolation,
    PayloadTooLarge,
    /// BigQuery refused the row although it passed the schema.
    Rejected,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::NotJson => "not_json",
            Reason::BadBase64 => "bad_base64",
            Reason::MissingType => "missing_type",
            Reason::UnknownType => "unknown_type",
            Reason::SchemaViolation => "schema_violation",
            Reason::PayloadTooLarge => "payload_too_large",
            Reason::Rejected => "bigquery_rejected",
        }
    }

    pub fn from_code(code: &str) -> Option<Reason> {
        [
            Reason::NotJson,
            Reason::BadBase64,
            Reason::MissingType,
            Reason::UnknownType,
            Reason::SchemaViolation,
            Reason::PayloadTooLarge,
            Reason::Rejected,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }
}

/// An event that cannot be stored in its table, with everything needed to find and replay it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub msg: Incoming,
    pub event_type: Option<String>,
    /// The event table, when the type is known.
    pub table: Option<String>,
    pub reason: Reason,
    pub detail: String,
}

/// A valid event: the row for its table, serialized for insertAll.
#[derive(Debug, Clone)]
pub struct Row {
    pub table: String,
    pub insert_id: String,
    pub json: Vec<u8>,
    pub msg: Incoming,
    pub event_type: String,
}

/// Where one message goes.
#[derive(Debug, Clone)]
pub enum Routed {
    Row(Row),
    Dead(DeadLetter),
}

/// Validates and routes messages by event type.
#[derive(Debug)]
pub struct Router {
    pub schemas: BTreeMap<String, EventSchema>,
    pub type_attribute: String,
    pub type_field: Option<String>,
    pub max_payload_bytes: usize,
}

impl Router {
    /// Routes one message; `now` is the `_ingested_at` stamp (RFC 3339, UTC).
    pub fn route(&self, msg: Incoming, now: &str) -> Routed {
        let dead = |msg: Incoming, event_type: Option<String>, reason: Reason, detail: String| {
            let table = event_type
                .as_ref()
                .and_then(|t| self.schemas.get(t))
                .map(|s| s.table.clone());
            Routed::Dead(DeadLetter {
                msg,
                event_type,
                table,
                reason,
                detail,
            })
        };
        let attr_type = msg.attributes.get(&self.type_attribute).cloned();
        if let Some(e) = &msg.bad_base64 {
            let d = format!("message data is not base64: {e}");
            return dead(msg, attr_type, Reason::BadBase64, d);
        }
        if msg.data.len() > self.max_payload_bytes {
            let d = format!(
                "payload of {} bytes is over the limit of {} (events.max_payload_bytes)",
                msg.data.len(),
                self.max_payload_bytes
            );
            return dead(msg, attr_type, Reason::PayloadTooLarge, d);
        }
        let mut event: Value = match serde_json::from_slice(&msg.data) {
            Ok(v) => v,
            Err(e) => {
                let d = format!("payload is not JSON: {e}");
                return dead(msg, attr_type, Reason::NotJson, d);
            }
        };
        let event_type = attr_type.or_else(|| {
            self.type_field
                .as_ref()
                .and_then(|f| event.get(f))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let Some(event_type) = event_type else {
            let d = match &self.type_field {
                Some(f) => format!(
                    "no event type: neither attribute `{}` nor field `{f}` is set",
                    self.type_attribute
                ),
                None => format!(
                    "no event type: attribute `{}` is not set",
                    self.type_attribute
                ),
            };
            return dead(msg, None, Reason::MissingType, d);
        };
        let Some(schema) = self.schemas.get(&event_type) else {
            let d =
                format!("unknown event type `{event_type}` (no schemas/events/{event_type}.json)");
            return dead(msg, Some(event_type), Reason::UnknownType, d);
        };
        // The type field routes the event; a schema that does not declare it (say with
        // `additionalProperties: false`) is checked without it, and the table, being the
        // type's, stores it in no column.
        if let (Some(f), Value::Object(fields)) = (&self.type_field, &mut event) {
            if !schema.declares(f) {
                fields.remove(f);
            }
        }
        // The row is written straight to insertAll's JSON; on a violation it is dropped. Room
        // for the meta columns (about 200 bytes) and some escaping, so it is rarely regrown.
        let mut json = Vec::with_capacity(msg.data.len() + msg.data.len() / 16 + 320);
        json.push(b'{');
        let extra = match schema
            .validate(&event)
            .and_then(|()| schema.write_columns(event, &mut json))
        {
            Ok(extra) => extra,
            Err(v) => {
                let at = if v.pointer.is_empty() {
                    "/".to_string()
                } else {
                    v.pointer
                };
                let d = format!("at {at}: {}", v.message);
                return dead(msg, Some(event_type), Reason::SchemaViolation, d);
            }
        };
        row::write_meta(
            Meta {
                message_id: &msg.message_id,
                publish_time: msg.publish_time.as_deref(),
                attributes: &msg.attributes,
                extra,
                ingested_at: now,
            },
            &mut json,
        );
        Routed::Row(Row {
            table: schema.table.clone(),
            insert_id: msg.message_id.clone(),
            json,
            msg,
            event_type,
        })
    }
}

impl DeadLetter {
    /// Insert id: one row per message and reason, however often it is redelivered.
    pub fn insert_id(&self) -> String {
        format!("{}:{}", self.msg.message_id, self.reason.code())
    }

    /// The `ops.dead_letter` row, serialized for insertAll.
    pub fn row(&self, received_at: &str, max_payload_bytes: usize) -> Vec<u8> {
        let data = &self.msg.data[..self.msg.data.len().min(max_payload_bytes)];
        let row = json!({
            "message_id": self.msg.message_id,
            "subscription": self.msg.subscription,
            "event_type": self.event_type,
            "reason_code": self.reason.code(),
            "reason": self.detail,
            "payload": base64::engine::general_purpose::STANDARD.encode(data),
            "payload_size": self.msg.data.len(),
            "attributes": serde_json::to_string(&self.msg.attributes).unwrap_or_default(),
            "publish_time": self.msg.publish_time.as_deref().and_then(normalize_timestamp),
            "received_at": received_at,
            "delivery_attempt": self.msg.delivery_attempt,
            "via": self.msg.via.as_str(),
        });
        serde_json::to_vec(&row).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn router() -> Router {
        let s = EventSchema::from_json(
            "signup",
            Path::new("signup.json"),
            &json!({"type": "object", "required": ["user_id"], "properties": {"user_id": {"type": "integer"}, "plan": {"type": "string", "enum": ["free", "pro"]}}}),
        )
        .unwrap();
        Router {
            schemas: [("signup".to_string(), s)].into_iter().collect(),
            type_attribute: "event_type".into(),
            type_field: Some("type".into()),
            max_payload_bytes: 100,
        }
    }

    fn msg(data: &str, event_type: Option<&str>) -> Incoming {
        Incoming {
            message_id: "m1".into(),
            subscription: Some("projects/p/subscriptions/s".into()),
            data: Bytes::from(data.to_string()),
            attributes: event_type
                .map(|t| {
                    [("event_type".to_string(), t.to_string())]
                        .into_iter()
                        .collect()
                })
                .unwrap_or_default(),
            publish_time: Some("2026-11-23T10:00:00.5Z".into()),
            delivery_attempt: None,
            via: Via::Push,
            bad_base64: None,
        }
    }

    fn reason(r: Routed) -> (Reason, String) {
        match r {
            Routed::Dead(d) => (d.reason, d.detail),
            Routed::Row(r) => panic!("routed to {}", r.table),
        }
    }

    #[test]
    fn valid_events_become_rows() {
        let r = router();
        let Routed::Row(row) = r.route(
            msg(r#"{"user_id": 5, "plan": "pro"}"#, Some("signup")),
            "2026-11-23T10:00:01.000000Z",
        ) else {
            panic!()
        };
        assert_eq!(row.table, "signup");
        assert_eq!(row.insert_id, "m1");
        let v: Value = serde_json::from_slice(&row.json).unwrap();
        assert_eq!(v["user_id"], 5);
        assert_eq!(v["_publish_time"], "2026-11-23T10:00:00.5Z");
        assert_eq!(v["_attributes"], r#"{"event_type":"signup"}"#);
        // The type may also come from a field; the schema does not declare it, so it is
        // routing, not payload: no column, no `_extra`.
        let Routed::Row(row) = r.route(msg(r#"{"type": "signup", "user_id": 5}"#, None), "t")
        else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&row.json).unwrap();
        assert_eq!(v["_extra"], Value::Null);
    }

    #[test]
    fn the_type_field_is_checked_apart_from_a_closed_schema() {
        let schema =
            |doc: Value| EventSchema::from_json("signup", Path::new("signup.json"), &doc).unwrap();
        let closed = schema(
            json!({"type": "object", "additionalProperties": false, "properties": {"user_id": {"type": "integer"}}}),
        );
        let declared = schema(json!({"type": "object", "additionalProperties": false,
            "properties": {"type": {"type": "string", "const": "signup"}, "user_id": {"type": "integer"}}}));
        for (s, stored) in [(closed, None), (declared, Some("signup"))] {
            let r = Router {
                schemas: [("signup".to_string(), s)].into_iter().collect(),
                ..router()
            };
            let Routed::Row(row) = r.route(msg(r#"{"type": "signup", "user_id": 5}"#, None), "t")
            else {
                panic!("a closed schema refused its own type field")
            };
            let v: Value = serde_json::from_slice(&row.json).unwrap();
            assert_eq!(v["type"].as_str(), stored);
            // Other undeclared properties are still refused.
            let (code, detail) = reason(r.route(
                msg(r#"{"type": "signup", "user_id": 5, "x": 1}"#, None),
                "t",
            ));
            assert_eq!(code, Reason::SchemaViolation, "{detail}");
        }
    }

    #[test]
    fn bad_events_are_dead_lettered_with_a_reason() {
        let r = router();
        assert_eq!(
            reason(r.route(msg("{nope", Some("signup")), "t")).0,
            Reason::NotJson
        );
        assert_eq!(reason(r.route(msg("{}", None), "t")).0, Reason::MissingType);
        let (code, detail) = reason(r.route(msg("{}", Some("refund")), "t"));
        assert_eq!(code, Reason::UnknownType);
        assert!(detail.contains("schemas/events/refund.json"));
        let (code, detail) = reason(r.route(
            msg(r#"{"user_id": 1, "plan": "gold"}"#, Some("signup")),
            "t",
        ));
        assert_eq!(code, Reason::SchemaViolation);
        assert!(detail.starts_with("at /plan: "), "{detail}");
        let (code, detail) = reason(r.route(msg(&"x".repeat(101), Some("signup")), "t"));
        assert_eq!(code, Reason::PayloadTooLarge);
        assert!(detail.contains("101 bytes"));
        let env: PushEnvelope = serde_json::from_value(
            json!({"message": {"data": "!!!", "messageId": "9"}, "subscription": "s"}),
        )
        .unwrap();
        let m = env.message.unwrap();
        let env = PushEnvelope {
            message: None,
            subscription: Some("s".into()),
            delivery_attempt: Some(2),
        };
        let (code, _) = reason(r.route(Incoming::from_push(env, m), "t"));
        assert_eq!(code, Reason::BadBase64);
    }

    #[test]
    fn push_envelopes_as_pubsub_writes_them() {
        let body = r#"{"subscription":"projects/p/subscriptions/s","message":{"publishTime":"2026-11-23T11:32:51.977Z","data":"e30=","publish_time":"2026-11-23T11:32:51.977Z","messageId":"20001","message_id":"20001","attributes":{"a":"b"}}}"#;
        let env: PushEnvelope = serde_json::from_str(body).unwrap();
        let m = env.message.unwrap();
        assert_eq!(m.message_id, "20001");
        assert_eq!(m.publish_time.as_deref(), Some("2026-11-23T11:32:51.977Z"));
        let env: PushEnvelope =
            serde_json::from_str(r#"{"message":{"data":"e30=","message_id":"7"}}"#).unwrap();
        assert_eq!(env.message.unwrap().message_id, "7");
    }

    #[test]
    fn dead_letter_rows_keep_the_payload() {
        let r = router();
        let Routed::Dead(d) = r.route(msg("{nope", Some("signup")), "t") else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&d.row("2026-11-23T10:00:00Z", 3)).unwrap();
        assert_eq!(v["payload"], "e25v");
        assert_eq!(v["payload_size"], 5);
        assert_eq!(v["reason_code"], "not_json");
        assert_eq!(d.insert_id(), "m1:not_json");
        assert_eq!(
            Reason::from_code("schema_violation"),
            Some(Reason::SchemaViolation)
        );
    }
}
