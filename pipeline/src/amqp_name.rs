//! [`AmqpName`]: one checked type for the names and ids AMQP carries as short strings (queue and
//! exchange names, routing keys, consumer tags, message and correlation ids, reply-to).
//!
//! AMQP 0-9-1 sends these as `shortstr`: at most 255 bytes. lapin panics on a longer one, and the
//! ways around that (dropping the property, sending an empty tag) change what the message means:
//! an empty consumer tag asks the broker to make one up, a missing message id defeats
//! de-duplication. A name is therefore checked once, where it is made, and refused with an
//! [`AmqpNameError`] saying which kind of name and why.

use std::fmt;
use std::ops::Deref;

use lapin::types::ShortString;
use thiserror::Error;

/// Longest AMQP short string, in bytes.
pub const MAX_SHORTSTR_BYTES: usize = 255;

/// Which kind of name: decides whether it may be empty, and names it in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A queue name. Never empty: an empty name asks the broker for a made-up one (or means "the
    /// last queue declared on the channel"), which the pipeline never wants.
    Queue,
    /// An exchange name. May be empty: the default exchange.
    Exchange,
    /// A routing key. May be empty (fanout exchanges ignore it).
    RoutingKey,
    /// A consumer tag. Never empty: an empty tag asks the broker to make one up, which loses the
    /// tag telling who consumes in the management UI.
    ConsumerTag,
    /// A message id. Never empty: receivers deduplicate and identify returns by it.
    MessageId,
    /// A correlation id (the submission a message belongs to). Never empty.
    CorrelationId,
    /// The reply-to queue of a message. Never empty (no reply-to is `None`, not "").
    ReplyTo,
    /// The app id (who publishes). Never empty.
    AppId,
}

impl NameKind {
    /// Whether AMQP (or the pipeline's use of it) gives the empty string a meaning of its own.
    pub fn may_be_empty(self) -> bool {
        matches!(self, NameKind::Exchange | NameKind::RoutingKey)
    }

    /// The kind in words, for errors.
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Queue => "queue name",
            NameKind::Exchange => "exchange name",
            NameKind::RoutingKey => "routing key",
            NameKind::ConsumerTag => "consumer tag",
            NameKind::MessageId => "message id",
            NameKind::CorrelationId => "correlation id",
            NameKind::ReplyTo => "reply-to queue",
            NameKind::AppId => "app id",
        }
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name AMQP cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AmqpNameError {
    /// Longer than an AMQP short string.
    #[error("{kind} {shown:?} is {len} bytes; AMQP carries at most 255")]
    TooLong {
        /// Which name.
        kind: NameKind,
        /// Its length in bytes.
        len: usize,
        /// Its beginning (names may be built from user input: not quoted whole).
        shown: String,
    },
    /// Empty where the empty string means something else.
    #[error("{kind} is empty")]
    Empty {
        /// Which name.
        kind: NameKind,
    },
}

/// A checked AMQP short-string name of a given [`NameKind`]. Dereferences to `str`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AmqpName {
    kind: NameKind,
    text: String,
}

impl AmqpName {
    /// Checks `text` as a name of `kind`: at most [`MAX_SHORTSTR_BYTES`] bytes, and not empty
    /// unless the kind allows it.
    pub fn new(kind: NameKind, text: impl Into<String>) -> Result<AmqpName, AmqpNameError> {
        let text = text.into();
        if text.is_empty() && !kind.may_be_empty() {
            return Err(AmqpNameError::Empty { kind });
        }
        if text.len() > MAX_SHORTSTR_BYTES {
            return Err(AmqpNameError::TooLong {
                kind,
                len: text.len(),
                shown: text.chars().take(40).collect(),
            });
        }
        Ok(AmqpName { kind, text })
    }

    /// A queue name ([`NameKind::Queue`]).
    pub fn queue(text: impl Into<String>) -> Result<AmqpName, AmqpNameError> {
        AmqpName::new(NameKind::Queue, text)
    }

    /// An exchange name ([`NameKind::Exchange`]).
    pub fn exchange(text: impl Into<String>) -> Result<AmqpName, AmqpNameError> {
        AmqpName::new(NameKind::Exchange, text)
    }

    /// A routing key ([`NameKind::RoutingKey`]).
    pub fn routing_key(text: impl Into<String>) -> Result<AmqpName, AmqpNameError> {
        AmqpName::new(NameKind::RoutingKey, text)
    }

    /// What kind of name it is.
    pub fn kind(&self) -> NameKind {
        self.kind
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The name as lapin takes it (cannot fail: the length was checked).
    pub fn to_short_string(&self) -> ShortString {
        ShortString::try_new(self.text.as_str()).expect("checked against 255 bytes when made")
    }
}

impl Deref for AmqpName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for AmqpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<AmqpName> for ShortString {
    fn from(name: AmqpName) -> ShortString {
        name.to_short_string()
    }
}

impl From<&AmqpName> for ShortString {
    fn from(name: &AmqpName) -> ShortString {
        name.to_short_string()
    }
}

impl From<AmqpName> for String {
    fn from(name: AmqpName) -> String {
        name.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_255_bytes_is_accepted_and_256_refused() {
        let longest = "q".repeat(MAX_SHORTSTR_BYTES);
        let name = AmqpName::queue(longest.clone()).unwrap();
        assert_eq!(name.as_str(), longest);
        assert_eq!(name.to_short_string().as_str(), longest);

        let err = AmqpName::queue("q".repeat(MAX_SHORTSTR_BYTES + 1)).unwrap_err();
        assert!(
            matches!(
                err,
                AmqpNameError::TooLong {
                    kind: NameKind::Queue,
                    len: 256,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn the_limit_counts_bytes_not_characters() {
        // 128 two-byte characters: 128 characters, 256 bytes.
        let err = AmqpName::new(NameKind::ConsumerTag, "é".repeat(128)).unwrap_err();
        assert!(
            matches!(err, AmqpNameError::TooLong { len: 256, .. }),
            "{err:?}"
        );
        assert!(AmqpName::new(NameKind::ConsumerTag, "é".repeat(127)).is_ok());
    }

    #[test]
    fn empty_is_refused_unless_amqp_gives_it_a_meaning() {
        for kind in [
            NameKind::Queue,
            NameKind::ConsumerTag,
            NameKind::MessageId,
            NameKind::CorrelationId,
            NameKind::ReplyTo,
            NameKind::AppId,
        ] {
            assert_eq!(
                AmqpName::new(kind, "").unwrap_err(),
                AmqpNameError::Empty { kind }
            );
        }
        assert_eq!(AmqpName::exchange("").unwrap().as_str(), "");
        assert_eq!(AmqpName::routing_key("").unwrap().as_str(), "");
    }

    #[test]
    fn an_error_names_the_kind_and_quotes_only_the_beginning() {
        let err = AmqpName::new(NameKind::MessageId, "x".repeat(1000)).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("message id \""), "{text}");
        assert!(text.contains("1000 bytes"), "{text}");
        assert!(text.len() < 120, "{text}");
    }
}
