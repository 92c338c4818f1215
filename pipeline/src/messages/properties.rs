//! AMQP properties every message of the pipeline carries.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;
use lapin::types::ShortString;

use crate::amqp_name::{AmqpName, AmqpNameError, NameKind};

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

impl Properties {
    /// AMQP properties: JSON, persistent, ids, reply_to, app_id, type and a timestamp. An id
    /// AMQP cannot carry (longer than 255 bytes, or empty) is refused, not left out: a message
    /// without its id could not be deduplicated or matched with its submission.
    pub fn to_amqp(&self) -> Result<BasicProperties, AmqpNameError> {
        let id = |kind, text: &str| AmqpName::new(kind, text).map(ShortString::from);
        let mut props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_type(self.kind.as_str().into())
            .with_timestamp(now_secs())
            .with_message_id(id(NameKind::MessageId, &self.message_id)?)
            .with_correlation_id(id(NameKind::CorrelationId, &self.correlation_id)?)
            .with_app_id(id(NameKind::AppId, &self.app_id)?);
        if let Some(reply_to) = &self.reply_to {
            props = props.with_reply_to(id(NameKind::ReplyTo, reply_to)?);
        }
        Ok(props)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(id: &str) -> Properties {
        Properties {
            kind: MessageType::Submission,
            message_id: id.to_owned(),
            correlation_id: id.to_owned(),
            reply_to: Some("results.p-1".to_owned()),
            app_id: "producer".to_owned(),
        }
    }

    #[test]
    fn ids_are_carried_or_refused_never_dropped() {
        let props = submission("s-1").to_amqp().unwrap();
        assert_eq!(props.message_id().as_ref().unwrap().as_str(), "s-1");
        assert_eq!(props.correlation_id().as_ref().unwrap().as_str(), "s-1");
        assert_eq!(props.reply_to().as_ref().unwrap().as_str(), "results.p-1");

        let long = "i".repeat(256);
        let err = submission(&long).to_amqp().unwrap_err();
        assert!(
            matches!(
                err,
                AmqpNameError::TooLong {
                    kind: NameKind::MessageId,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = submission("").to_amqp().unwrap_err();
        assert_eq!(
            err,
            AmqpNameError::Empty {
                kind: NameKind::MessageId
            }
        );
    }
}
