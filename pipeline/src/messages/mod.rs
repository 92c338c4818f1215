//! What travels on the wire: submissions, results, and the original demo's request and reply.
//!
//! All bodies are JSON. Big integers (the modulus, ciphertexts) are decimal strings, read through
//! [`paillier::json::BigUintDecimal`] so that they never pass through an `f64`. Incoming bodies
//! are classified by probing their top-level keys ([`parse_incoming`]) rather than with a serde
//! `untagged` enum, which would buffer the document and turn bare big integers into floats.

mod demo;
mod error;
mod properties;
mod result;
mod submission;

pub use demo::{DemoPayload, DemoPublicKey, DemoReply, DemoRequest, DemoValue, demo_error_reply};
pub use error::InputError;
pub use properties::{MessageType, Properties, now_secs, truncate_reason};
pub use result::{
    DecryptError, DecryptedValue, EncryptedValue, ErrorBody, PackedCiphertext,
    RESULT_VERSION_PACKED, RESULT_VERSION_UNPACKED, ResultMessage, ResultStatus,
};
pub use submission::{
    KeyWire, ReadingWire, SUBMISSION_VERSION, Submission, SubmissionWire, valid_message_id,
};

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config::Limits;

/// A message taken from the work queue, parsed but not yet validated.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A submission in this project's format.
    Submission(SubmissionWire),
    /// A request in the original demo's format.
    Demo(DemoPayload),
}

/// The top-level keys that tell the shapes apart; values are skipped, not buffered.
///
/// Deserialised by hand, as a map only: serde's derived struct deserializers also accept a JSON
/// array (fields by position), so `[1, "s-1", "p-1", {..}, {..}]` would otherwise have been
/// read as a submission. A top-level key given twice is refused here too.
#[derive(Default)]
struct ShapeProbe {
    version: bool,
    readings: bool,
    public_key: bool,
    values: bool,
}

impl<'de> Deserialize<'de> for ShapeProbe {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ShapeProbe;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ShapeProbe, A::Error> {
                let mut probe = ShapeProbe::default();
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    match key.as_str() {
                        "version" => probe.version = true,
                        "readings" => probe.readings = true,
                        "public_key" => probe.public_key = true,
                        "values" => probe.values = true,
                        _ => {}
                    }
                    if !seen.insert(key) {
                        return Err(serde::de::Error::custom("a top-level key appears twice"));
                    }
                }
                Ok(probe)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Checks the size, finds out which shape `body` has, and parses it strictly (unknown fields
/// refused). Semantic checks (keys, ciphertexts, metrics) are [`SubmissionWire::validate`] and
/// [`DemoRequest::validate`].
pub fn parse_incoming(body: &[u8], limits: &Limits) -> Result<Incoming, InputError> {
    if body.len() > limits.max_body_bytes {
        return Err(InputError::BodyTooLarge {
            size: body.len(),
            max: limits.max_body_bytes,
        });
    }
    let probe: ShapeProbe = serde_json::from_slice(body).map_err(|e| match e.classify() {
        // A duplicate top-level key is named; any other shape error means "not an object".
        serde_json::error::Category::Data if e.to_string().contains("appears twice") => {
            InputError::from_json(&e)
        }
        serde_json::error::Category::Data => {
            InputError::Schema("the body must be a JSON object".into())
        }
        _ => InputError::from_json(&e),
    })?;
    if probe.readings || probe.version {
        serde_json::from_slice(body)
            .map(Incoming::Submission)
            .map_err(|e| InputError::from_json(&e))
    } else if probe.public_key && probe.values {
        serde_json::from_slice(body)
            .map(Incoming::Demo)
            .map_err(|e| InputError::from_json(&e))
    } else {
        Err(InputError::UnknownShape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn kind(body: &[u8]) -> &'static str {
        match parse_incoming(body, &Settings::defaults().limits) {
            Ok(Incoming::Submission(_)) => "submission",
            Ok(Incoming::Demo(_)) => "demo",
            Err(e) => e.kind(),
        }
    }

    /// Found by the hostile corpus: a 100,000-deep array was probed as a submission (serde's
    /// derived structs accept arrays), so the positional form of a submission was accepted.
    #[test]
    fn only_a_top_level_object_is_read() {
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(kind(deep.as_bytes()), "invalid_message");
        let positional = br#"[1, "s-1", "p-1", {"n": "15"}, {"glucose": [["7", 0]]}]"#;
        assert_eq!(kind(positional), "invalid_message");
        let err = parse_incoming(positional, &Settings::defaults().limits).unwrap_err();
        assert!(err.to_string().contains("JSON object"), "{err}");
    }

    #[test]
    fn nested_structs_are_read_from_objects_only() {
        let object = br#"{"version": 1, "submission_id": "s", "participant": "p",
            "public_key": {"n": "15"}, "readings": {"glucose": [{"ciphertext": "7", "exponent": 0}]}}"#;
        assert_eq!(kind(object), "submission");
        let key_array = br#"{"version": 1, "submission_id": "s", "participant": "p",
            "public_key": ["15"], "readings": {"glucose": [{"ciphertext": "7", "exponent": 0}]}}"#;
        assert_eq!(kind(key_array), "invalid_message");
        let reading_array = br#"{"version": 1, "submission_id": "s", "participant": "p",
            "public_key": {"n": "15"}, "readings": {"glucose": [["7", 0]]}}"#;
        assert_eq!(kind(reading_array), "invalid_message");
        let demo_key_array = br#"{"public_key": ["16", "15"], "values": [["7", 0]]}"#;
        assert_eq!(kind(demo_key_array), "invalid_message");
        assert_eq!(
            kind(br#"{"public_key": {"g": "16", "n": "15"}, "values": [["7", 0]]}"#),
            "demo"
        );
    }

    /// Values the probe skips are skipped without recursion: a body of the largest accepted
    /// size that is almost all nesting must not overflow a worker thread's stack.
    #[test]
    fn nesting_as_deep_as_the_body_limit_allows_is_refused_without_a_stack_overflow() {
        let limits = Settings::defaults().limits;
        let depth = (limits.max_body_bytes - 64) / 2;
        for key in ["version", "unknown", "public_key"] {
            let body = format!(
                r#"{{"{key}": {}1{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            assert!(body.len() <= limits.max_body_bytes);
            // On a thread with a small stack, as rayon's are by default (2 MiB).
            let kind = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || kind(body.as_bytes()))
                .unwrap()
                .join()
                .expect("no stack overflow");
            assert_ne!(kind, "submission");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_every_level() {
        for body in [
            &br#"{"version": 1, "version": 1, "readings": {}}"#[..],
            br#"{"values": [], "values": [], "public_key": {"g": "2", "n": "1"}}"#,
            br#"{"hello": 1, "hello": 2}"#,
            br#"{"version": 1, "submission_id": "s", "participant": "p", "public_key": {"n": "1"},
                 "readings": {"glucose": [], "glucose": [{"ciphertext": "1", "exponent": 0}]}}"#,
            br#"{"version": 1, "submission_id": "s", "participant": "p", "public_key": {"n": "1", "n": "3"},
                 "readings": {}}"#,
        ] {
            assert_eq!(kind(body), "invalid_message", "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn the_body_size_is_checked_before_parsing() {
        let mut limits = Settings::defaults().limits;
        limits.max_body_bytes = 10;
        // Not JSON, but over the limit: refused for its size, so it was never parsed.
        let err = parse_incoming(b"\xff{{{{{{{{{{", &limits).unwrap_err();
        assert_eq!(err.kind(), "body_too_large");
        assert_eq!(
            parse_incoming(b"{{{{{{{{{{", &limits).unwrap_err().kind(),
            "malformed_json"
        );
    }
}
