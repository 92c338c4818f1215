//! Participant identifiers: the one piece of user input that becomes part of queue names and
//! file names, so its syntax is checked once, here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Longest accepted participant id. Short enough that `results.<id>` and key file names stay well
/// under AMQP's 255-byte short-string limit and common file-name limits.
pub const MAX_PARTICIPANT_ID_LEN: usize = 64;

/// Why a string is not a participant id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParticipantIdError {
    /// The id is empty.
    #[error("participant id is empty")]
    Empty,
    /// The id is longer than [`MAX_PARTICIPANT_ID_LEN`].
    #[error("participant id is {len} bytes long, the limit is {MAX_PARTICIPANT_ID_LEN}")]
    TooLong {
        /// Length of the rejected id in bytes.
        len: usize,
    },
    /// The id contains a character outside `A-Z a-z 0-9 _ -`, or starts with `-` or `_`.
    #[error(
        "participant id {0:?} is not allowed: use letters, digits, '-' and '_', starting with a letter or digit"
    )]
    BadSyntax(String),
}

/// A validated participant id: 1 to 64 characters of `A-Z a-z 0-9 _ -`, starting with a letter or
/// digit. No dots, slashes or spaces, so that it is safe in a queue name (`results.<id>`), in a
/// routing key, in a broker permission regex and as a file name in the key store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(String);

impl ParticipantId {
    /// Checks `id` and wraps it.
    pub fn new(id: &str) -> Result<Self, ParticipantIdError> {
        if id.is_empty() {
            return Err(ParticipantIdError::Empty);
        }
        if id.len() > MAX_PARTICIPANT_ID_LEN {
            return Err(ParticipantIdError::TooLong { len: id.len() });
        }
        let first_ok = id.as_bytes()[0].is_ascii_alphanumeric();
        let rest_ok = id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !(first_ok && rest_ok) {
            // The rejected id may be hostile: keep only a bounded prefix of it in the error.
            let shown: String = id.chars().take(MAX_PARTICIPANT_ID_LEN).collect();
            return Err(ParticipantIdError::BadSyntax(shown));
        }
        Ok(ParticipantId(id.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ParticipantId {
    type Err = ParticipantIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ParticipantId::new(s)
    }
}

impl Serialize for ParticipantId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ParticipantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ParticipantId::new(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for id in ["p-001", "A", "participant_42", "0abc"] {
            assert_eq!(ParticipantId::new(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_ids_unsafe_for_queue_or_file_names() {
        for id in ["", "-x", "_x", "a.b", "a/b", "../etc", "a b", "é", "a*"] {
            assert!(ParticipantId::new(id).is_err(), "{id:?} accepted");
        }
        assert_eq!(
            ParticipantId::new(&"a".repeat(65)),
            Err(ParticipantIdError::TooLong { len: 65 })
        );
        assert!(ParticipantId::new(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<ParticipantId>("\"p-1\"").is_ok());
        assert!(serde_json::from_str::<ParticipantId>("\"p.1\"").is_err());
    }
}
