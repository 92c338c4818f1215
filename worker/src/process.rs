//! What a worker does with one message, as a pure, synchronous function: parse, validate,
//! compute, and say what to publish. No I/O here, so it runs on rayon threads and is tested
//! without a broker.

use pipeline::config::{Limits, Settings};
use pipeline::messages::{
    DemoRequest, Incoming, InputError, MessageType, ResultMessage, demo_error_reply,
    parse_incoming, valid_message_id,
};
use pipeline::study::Study;
use pipeline::topology::Topology;

/// The parts of a delivery processing needs.
#[derive(Debug, Clone)]
pub struct Request {
    /// Message body.
    pub body: Vec<u8>,
    /// `reply_to` property.
    pub reply_to: Option<String>,
    /// `correlation_id` property (a submission id hint for error results of unreadable bodies).
    pub correlation_id: Option<String>,
    /// `message_id` property.
    pub message_id: Option<String>,
}

/// A message to send back to the submitter.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Routing key on the results exchange (the submission's `reply_to`, or the participant's
    /// reply queue).
    pub routing_key: String,
    /// Body.
    pub body: Vec<u8>,
    /// Result or demo reply.
    pub kind: MessageType,
    /// The submission answered.
    pub correlation_id: String,
}

/// What to do with a message.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Computed: publish the reply, then ack.
    Done(Reply),
    /// Invalid input: dead-letter it with the reason, send the error reply if there is one, ack.
    Rejected {
        /// Why.
        error: InputError,
        /// Error result, when the sender can be reached.
        reply: Option<Reply>,
    },
    /// Valid input whose computation failed: retry (requeue) until the queue's delivery limit;
    /// the last attempt dead-letters it and sends the error reply.
    Failed {
        /// What failed.
        reason: String,
        /// Error result for the last attempt.
        reply: Option<Reply>,
    },
}

impl Outcome {
    /// Short code for logs and headers.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "done",
            Outcome::Rejected { error, .. } => error.kind(),
            Outcome::Failed { .. } => "computation_failed",
        }
    }
}

/// Everything processing needs from the configuration.
#[derive(Debug, Clone)]
pub struct Processor {
    study: Study,
    limits: Limits,
    topology: Topology,
    obfuscate: bool,
    pack: bool,
}

impl Processor {
    /// A processor for `settings` (the study must already be validated).
    pub fn new(settings: &Settings) -> Self {
        Processor {
            study: settings.study.clone(),
            limits: settings.limits.clone(),
            topology: Topology::new(&settings.topology, &settings.reply_queues),
            obfuscate: settings.worker.obfuscate_results,
            pack: settings.worker.pack_results,
        }
    }

    /// Processes one message. CPU-bound (key and ciphertext checks, homomorphic arithmetic,
    /// re-randomisation): call it from a rayon thread, not from the async runtime.
    pub fn process(&self, request: &Request) -> Outcome {
        // A usable reply_to is a routing key we can publish to; anything else gets no reply.
        let reply_to = request
            .reply_to
            .as_deref()
            .filter(|r| valid_message_id(r) && r.len() <= 255)
            .map(str::to_owned);
        let hint = request
            .correlation_id
            .as_deref()
            .or(request.message_id.as_deref())
            .filter(|id| valid_message_id(id))
            .unwrap_or("unknown")
            .to_owned();
        let incoming = match parse_incoming(&request.body, &self.limits) {
            Ok(incoming) => incoming,
            Err(error) => {
                let reply =
                    reply_to.map(|routing_key| self.error_result(routing_key, &hint, None, &error));
                return Outcome::Rejected { error, reply };
            }
        };
        match incoming {
            Incoming::Submission(wire) => {
                // Error results go to reply_to, else to the participant's queue if the id is valid.
                let participant = pipeline::ParticipantId::new(&wire.participant).ok();
                let id = if valid_message_id(&wire.submission_id) {
                    wire.submission_id.clone()
                } else {
                    hint.clone()
                };
                let routing_key = reply_to
                    .clone()
                    .or_else(|| participant.as_ref().map(|p| self.topology.reply_queue(p)));
                let participant_str = participant.as_ref().map(ToString::to_string);
                let error_reply = |error: &InputError| {
                    routing_key
                        .clone()
                        .map(|rk| self.error_result(rk, &id, participant_str.as_deref(), error))
                };
                let submission = match wire.validate(&self.study, &self.limits) {
                    Ok(s) => s,
                    Err(error) => {
                        let reply = error_reply(&error);
                        return Outcome::Rejected { error, reply };
                    }
                };
                let routing_key = routing_key.expect("a valid submission has a participant");
                let evaluation = self
                    .study
                    .evaluate_encrypted(
                        &submission.readings,
                        self.limits.reading_mantissa_bits,
                        &mut rand::rng(),
                    )
                    .map_err(|e| e.to_string());
                let result = evaluation.and_then(|evaluation| {
                    let (id, participant) = (&submission.id, submission.participant.as_str());
                    if self.pack {
                        ResultMessage::ok_packed(id, participant, &evaluation, self.obfuscate)
                            .map_err(|e| e.to_string())
                    } else {
                        Ok(ResultMessage::ok_unpacked(
                            id,
                            participant,
                            &evaluation,
                            self.obfuscate,
                        ))
                    }
                });
                match result {
                    Ok(result) => Outcome::Done(Reply {
                        routing_key,
                        body: result.to_json(),
                        kind: MessageType::Result,
                        correlation_id: submission.id,
                    }),
                    Err(reason) => {
                        let body = ResultMessage::error(
                            &submission.id,
                            Some(submission.participant.as_str()),
                            "computation_failed",
                            &reason,
                        )
                        .to_json();
                        Outcome::Failed {
                            reason,
                            reply: Some(Reply {
                                routing_key,
                                body,
                                kind: MessageType::Result,
                                correlation_id: submission.id,
                            }),
                        }
                    }
                }
            }
            Incoming::Demo(payload) => {
                let Some(routing_key) = reply_to else {
                    return Outcome::Rejected {
                        error: InputError::ReplyTo(
                            "a demo request needs reply_to (the queue to answer to)".into(),
                        ),
                        reply: None,
                    };
                };
                let demo_reply = |body| Reply {
                    routing_key: routing_key.clone(),
                    body,
                    kind: MessageType::DemoReply,
                    correlation_id: hint.clone(),
                };
                let request = match DemoRequest::validate(&payload, &self.limits) {
                    Ok(r) => r,
                    Err(error) => {
                        let reply = Some(demo_reply(demo_error_reply(&error)));
                        return Outcome::Rejected { error, reply };
                    }
                };
                let factor = rand::random_range(1..=10i64);
                match request.compute(factor, self.obfuscate) {
                    Ok(reply) => Outcome::Done(demo_reply(
                        serde_json::to_vec(&reply).expect("a demo reply always serialises"),
                    )),
                    Err(err) => Outcome::Failed {
                        reason: err.to_string(),
                        reply: None,
                    },
                }
            }
        }
    }

    fn error_result(
        &self,
        routing_key: String,
        submission_id: &str,
        participant: Option<&str>,
        error: &InputError,
    ) -> Reply {
        let body =
            ResultMessage::error(submission_id, participant, error.kind(), &error.to_string())
                .to_json();
        Reply {
            routing_key,
            body,
            kind: MessageType::Result,
            correlation_id: submission_id.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use paillier::PrivateKey;
    use serde_json::json;

    use super::*;
    use pipeline::ParticipantId;
    use pipeline::messages::SubmissionWire;

    fn request(body: Vec<u8>, reply_to: Option<&str>) -> Request {
        Request {
            body,
            reply_to: reply_to.map(str::to_owned),
            correlation_id: None,
            message_id: Some("m-1".into()),
        }
    }

    fn rejected_kind(outcome: &Outcome) -> &'static str {
        match outcome {
            Outcome::Rejected { error, .. } => error.kind(),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn shapes_and_limits_are_told_apart_without_a_broker() {
        let mut settings = Settings::defaults();
        settings.limits.max_body_bytes = 200;
        let p = Processor::new(&settings);
        let cases: [(&[u8], &str); 6] = [
            (b"{", "malformed_json"),
            (b"\xff\xfe", "malformed_json"),
            (b"[1, 2]", "invalid_message"),
            (br#"{"hello": 1}"#, "unknown_shape"),
            (
                br#"{"version": 1, "readings": {}, "extra": true}"#,
                "invalid_message",
            ),
            (&[b' '; 201], "body_too_large"),
        ];
        for (body, kind) in cases {
            let outcome = p.process(&request(body.to_vec(), Some("results.x")));
            assert_eq!(
                rejected_kind(&outcome),
                kind,
                "{:?}",
                String::from_utf8_lossy(body)
            );
            // The sender named a reply queue, so it hears about it.
            assert!(matches!(outcome, Outcome::Rejected { reply: Some(_), .. }));
        }
    }

    #[test]
    fn a_demo_body_with_bare_big_integers_gets_a_demo_reply() {
        let p = Processor::new(&Settings::defaults());
        let key = PrivateKey::generate(2048).unwrap();
        let pk = key.public_key();
        let values: Vec<_> = [10i64, 11]
            .iter()
            .map(|v| pk.encrypt_i64(*v).unwrap())
            .collect();
        // n and g as bare JSON integers, as Python's json module writes them.
        let body = format!(
            r#"{{"public_key": {{"g": {}, "n": {}}}, "values": [["{}", {}], ["{}", {}]]}}"#,
            pk.n() + 1u32,
            pk.n(),
            values[0].ciphertext(),
            values[0].exponent(),
            values[1].ciphertext(),
            values[1].exponent()
        );
        let Outcome::Done(reply) = p.process(&request(body.into_bytes(), Some("demo.reply")))
        else {
            panic!("demo request refused")
        };
        assert_eq!(reply.kind, MessageType::DemoReply);
        let parsed: pipeline::messages::DemoReply = serde_json::from_slice(&reply.body).unwrap();
        let out: Vec<f64> = parsed
            .decode(pk)
            .unwrap()
            .iter()
            .map(|c| key.decrypt_f64(c).unwrap())
            .collect();
        let factor = out[0] / 10.0;
        assert!((1.0..=10.0).contains(&factor) && factor.fract() == 0.0);
        assert_eq!(out[1], factor * 11.0);
    }

    #[test]
    fn a_submission_without_reply_to_is_answered_on_the_participants_queue() {
        let p = Processor::new(&Settings::defaults());
        let key = PrivateKey::generate(2048).unwrap();
        let id = ParticipantId::new("p-7").unwrap();
        let wire = SubmissionWire::encrypt(
            &Settings::defaults().study,
            "s-1",
            &id,
            &key,
            &BTreeMap::from([("glucose".to_owned(), vec![5.0])]),
        )
        .unwrap();
        let body = serde_json::to_vec(&wire).unwrap();
        let Outcome::Done(reply) = p.process(&request(body, None)) else {
            panic!("refused")
        };
        assert_eq!(reply.routing_key, "results.p-7");
        assert_eq!(reply.correlation_id, "s-1");

        let mut hostile = serde_json::to_value(&wire).unwrap();
        hostile["participant"] = json!("p.7/../x");
        let outcome = p.process(&request(serde_json::to_vec(&hostile).unwrap(), None));
        assert_eq!(rejected_kind(&outcome), "invalid_participant");
        // No usable reply_to and no valid participant: nobody to answer.
        assert!(matches!(outcome, Outcome::Rejected { reply: None, .. }));
    }

    #[test]
    fn packed_results_need_one_ciphertext_and_decrypt_like_unpacked_ones() {
        let key = PrivateKey::generate(2048).unwrap();
        let id = ParticipantId::new("p-8").unwrap();
        let readings = BTreeMap::from([
            ("glucose".to_owned(), vec![5.4, 6.1]),
            ("cholesterol".to_owned(), vec![4.2]),
        ]);
        let wire =
            SubmissionWire::encrypt(&Settings::defaults().study, "s-2", &id, &key, &readings)
                .unwrap();
        let body = serde_json::to_vec(&wire).unwrap();
        let mut decrypted = Vec::new();
        for pack in [true, false] {
            let mut settings = Settings::defaults();
            settings.worker.pack_results = pack;
            let Outcome::Done(reply) =
                Processor::new(&settings).process(&request(body.clone(), None))
            else {
                panic!("refused")
            };
            let result: ResultMessage = serde_json::from_slice(&reply.body).unwrap();
            let ciphertexts = if pack {
                assert_eq!(result.version, pipeline::messages::RESULT_VERSION_PACKED);
                result.packed.len()
            } else {
                assert_eq!(result.version, pipeline::messages::RESULT_VERSION_UNPACKED);
                result.outputs.len()
            };
            assert_eq!(ciphertexts, if pack { 1 } else { 6 });
            decrypted.push(result.decrypt(&key).unwrap());
        }
        assert_eq!(decrypted[0], decrypted[1]);
        // The worker computes on readings kept to their metric's step (16^-4 here).
        let study = Settings::defaults().study;
        let kept = study.rounded_readings(&readings);
        let expected = study.evaluate_plain(&kept);
        for (got, want) in decrypted[0].iter().zip(&expected.outputs) {
            assert!((got.value - want.value).abs() < 1e-9, "{}", got.name);
        }
    }

    #[test]
    fn a_reading_at_a_foreign_exponent_is_refused_before_the_key_is_used() {
        let p = Processor::new(&Settings::defaults());
        let key = PrivateKey::generate(2048).unwrap();
        let id = ParticipantId::new("p-9").unwrap();
        let wire = SubmissionWire::encrypt(
            &Settings::defaults().study,
            "s-9",
            &id,
            &key,
            &BTreeMap::from([("glucose".to_owned(), vec![5.4, 33.0])]),
        )
        .unwrap();
        let mut hostile = serde_json::to_value(&wire).unwrap();
        // python-paillier's float exponent for 33.0, instead of the study's -4.
        hostile["readings"]["glucose"][1]["exponent"] = json!(-12);
        let outcome = p.process(&request(serde_json::to_vec(&hostile).unwrap(), None));
        assert_eq!(rejected_kind(&outcome), "exponent_mismatch");
        let Outcome::Rejected {
            error,
            reply: Some(reply),
        } = outcome
        else {
            panic!("the participant is reachable: it gets an error result")
        };
        assert_eq!(
            error.to_string(),
            "reading glucose[1] has exponent -12; this study encodes it at exponent -4 (the metric's precision; python-paillier: encode with precision=)"
        );
        let result: ResultMessage = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(result.error.unwrap().kind, "exponent_mismatch");
        // Under an even modulus (refused as soon as the key is looked at) the exponent is still
        // what is reported: it is judged first, before any arithmetic with the key.
        hostile["public_key"]["n"] = json!("4");
        let outcome = p.process(&request(serde_json::to_vec(&hostile).unwrap(), None));
        assert_eq!(rejected_kind(&outcome), "exponent_mismatch");
        hostile["readings"]["glucose"][1]["exponent"] = json!(-4);
        let outcome = p.process(&request(serde_json::to_vec(&hostile).unwrap(), None));
        assert_eq!(rejected_kind(&outcome), "invalid_public_key");
    }
}
