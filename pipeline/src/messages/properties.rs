//! AMQP properties every message of the pipeline carries.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;
use lapin::types::ShortString;

/// The `type` property: what a body is, without parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A participant's submission.
    Submission,
    /// A worker's result (outputs or error).
    Result,
    /// A reply in the original demo's format.
    DemoReply,
    /// A refused message kept in the dead-letter queue.
    Rejected,
}

impl MessageType {
    /// Value of the `type` property.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Submission => "submission",
            MessageType::Result => "result",
            MessageType::DemoReply => "demo-reply",
            MessageType::Rejected => "rejected",
        }
    }
}

/// The properties of a message about to be published.
#[derive(Debug, Clone)]
pub struct Properties {
    /// Message type.
    pub kind: MessageType,
    /// Unique id of this message.
    pub message_id: String,
    /// The submission it belongs to.
    pub correlation_id: String,
    /// Where answers go (submissions only).
    pub reply_to: Option<String>,
    /// Who publishes (`producer`, `worker-<host>-<pid>`).
    pub app_id: String,
}

/// AMQP properties: JSON, persistent, ids, reply_to, app_id, type and a timestamp. Ids that do not
/// fit an AMQP short string are left out rather than panicking.
pub fn properties(p: &Properties) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_type(p.kind.as_str().into())
        .with_timestamp(now_secs());
    if let Ok(id) = ShortString::try_new(p.message_id.clone()) {
        props = props.with_message_id(id);
    }
    if let Ok(id) = ShortString::try_new(p.correlation_id.clone()) {
        props = props.with_correlation_id(id);
    }
    if let Some(Ok(reply_to)) = p.reply_to.clone().map(ShortString::try_new) {
        props = props.with_reply_to(reply_to);
    }
    if let Ok(app) = ShortString::try_new(p.app_id.clone()) {
        props = props.with_app_id(app);
    }
    props
}

/// Seconds since the epoch, as AMQP timestamps count.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A reason bounded for a header (reasons may quote hostile input).
pub fn truncate_reason(reason: &str) -> String {
    super::error::truncate(reason, 500)
}
