//! The copy of a refused message that goes to the dead-letter exchange.
//!
//! RabbitMQ's own dead-lettering (reject without requeue) records only the reason "rejected".
//! To keep *why* a message was refused, the worker republishes the original body itself, with
//! the original properties and these extra headers, and acks the original once the copy is
//! confirmed:
//!
//! | header | value |
//! |---|---|
//! | `x-rejection-kind` | stable code, e.g. `invalid_ciphertext` |
//! | `x-rejection-reason` | human-readable reason |
//! | `x-rejected-by` | the worker's consumer tag |
//! | `x-rejected-at` | Unix time, seconds |
//! | `x-original-exchange`, `x-original-routing-key` | where the message was published |
//! | `x-original-user-id` | the sender's validated `user_id` (the property itself is removed) |
//! | `x-original-body-bytes` | only when the body was cut to [`DEAD_LETTER_BODY_MAX`] bytes |
//!
//! The `user_id` property never travels on the copy: RabbitMQ checks it against the publishing
//! connection's user (the worker's), so a copy carrying a participant's `user_id` would be
//! refused and close the worker's channel, with every other message of its batch.

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, LongString, ShortString};

use pipeline::broker::Outgoing;
use pipeline::messages::truncate_reason;

/// Header with the stable rejection code.
pub const HEADER_KIND: &str = "x-rejection-kind";
/// Header with the human-readable rejection reason.
pub const HEADER_REASON: &str = "x-rejection-reason";
/// Header naming the worker that refused the message.
pub const HEADER_REJECTED_BY: &str = "x-rejected-by";
/// Header with the refused message's `user_id` property.
pub const HEADER_ORIGINAL_USER_ID: &str = "x-original-user-id";
/// Header with the size of a body that was cut to [`DEAD_LETTER_BODY_MAX`] bytes.
pub const HEADER_ORIGINAL_BODY_BYTES: &str = "x-original-body-bytes";
/// Largest body copied into the dead-letter queue; the rest is cut (a body refused for its size
/// is kept as evidence, not stored whole).
pub const DEAD_LETTER_BODY_MAX: usize = 64 * 1024;

/// Builds the dead-letter copy of `delivery` (whose body is `body`).
pub(crate) fn dead_letter(
    delivery: &Delivery,
    body: &[u8],
    dead_exchange: &str,
    kind: &str,
    reason: &str,
    rejected_by: &str,
) -> Outgoing {
    let original: &BasicProperties = &delivery.properties;
    let mut headers = original.headers().clone().unwrap_or_default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v));
    headers.insert(HEADER_KIND.into(), s(kind));
    headers.insert(HEADER_REASON.into(), s(&truncate_reason(reason)));
    headers.insert(HEADER_REJECTED_BY.into(), s(rejected_by));
    headers.insert(
        "x-rejected-at".into(),
        AMQPValue::LongLongInt(pipeline::messages::now_secs() as i64),
    );
    headers.insert("x-original-exchange".into(), s(delivery.exchange.as_str()));
    headers.insert(
        "x-original-routing-key".into(),
        s(delivery.routing_key.as_str()),
    );
    if let Some(user) = original.user_id() {
        headers.insert(HEADER_ORIGINAL_USER_ID.into(), s(user.as_str()));
    }
    let body = if body.len() > DEAD_LETTER_BODY_MAX {
        headers.insert(
            HEADER_ORIGINAL_BODY_BYTES.into(),
            AMQPValue::LongLongInt(i64::try_from(body.len()).unwrap_or(i64::MAX)),
        );
        &body[..DEAD_LETTER_BODY_MAX]
    } else {
        body
    };
    let mut properties = without_user_id(original)
        .with_headers(headers)
        .with_delivery_mode(2);
    // The publisher identifies returned messages by message id: make sure there is one.
    if original.message_id().is_none() {
        let id = format!("dead-{}", uuid::Uuid::new_v4());
        properties = properties.with_message_id(ShortString::from(id));
    }
    Outgoing {
        exchange: dead_exchange.to_owned(),
        routing_key: delivery.routing_key.to_string(),
        body: body.to_vec(),
        properties,
    }
}

/// `properties` without `user_id` (lapin has no setter that clears one field: rebuilt from the
/// other fields), and without `expiration`: the sender does not decide how long the evidence of
/// a refusal is kept.
fn without_user_id(p: &BasicProperties) -> BasicProperties {
    let mut out = BasicProperties::default();
    if let Some(v) = p.content_type() {
        out = out.with_content_type(v.clone());
    }
    if let Some(v) = p.content_encoding() {
        out = out.with_content_encoding(v.clone());
    }
    if let Some(v) = p.delivery_mode() {
        out = out.with_delivery_mode(*v);
    }
    if let Some(v) = p.priority() {
        out = out.with_priority(*v);
    }
    if let Some(v) = p.correlation_id() {
        out = out.with_correlation_id(v.clone());
    }
    if let Some(v) = p.reply_to() {
        out = out.with_reply_to(v.clone());
    }
    if let Some(v) = p.message_id() {
        out = out.with_message_id(v.clone());
    }
    if let Some(v) = p.timestamp() {
        out = out.with_timestamp(*v);
    }
    if let Some(v) = p.kind() {
        out = out.with_type(v.clone());
    }
    if let Some(v) = p.app_id() {
        out = out.with_app_id(v.clone());
    }
    if let Some(v) = p.cluster_id() {
        out = out.with_cluster_id(v.clone());
    }
    out
}

/// Number of earlier deliveries of this message (quorum queues' `x-delivery-count`; absent on
/// the first delivery).
pub(crate) fn delivery_count(delivery: &Delivery) -> i64 {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count"))
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(*n),
            AMQPValue::LongInt(n) => Some(i64::from(*n)),
            AMQPValue::ShortInt(n) => Some(i64::from(*n)),
            AMQPValue::LongUInt(n) => Some(i64::from(*n)),
            _ => None,
        })
        .unwrap_or(0)
}
