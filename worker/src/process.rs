//! What a worker does with one message, as a pure, synchronous function: parse, validate,
//! compute, and say what to publish. No I/O here, so it runs on rayon threads and is tested
//! without a broker.

use pipeline::ParticipantId;
use pipeline::config::{IdentitySettings, Limits, Settings};
use pipeline::messages::DemoPayload;
use pipeline::messages::{
    DemoRequest, Incoming, InputError, MessageType, ResultMessage, SubmissionWire,
    demo_error_reply, parse_incoming, valid_message_id,
};
use pipeline::study::Study;
use pipeline::topology::Topology;

use crate::cost::{CostModel, WorkShape};

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
    /// `user_id` property: the sender's broker user, validated by RabbitMQ against the
    /// publishing connection (absent when the sender did not set it).
    pub user_id: Option<String>,
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
    cost: CostModel,
    /// `identity.insecure_shared_user`: trust the body's participant and `reply_to`.
    insecure_shared_user: bool,
    /// `identity`: which delegate may submit for which cohort's members.
    identity: IdentitySettings,
}

/// Where answers may go for a message whose sender is known (secure mode).
struct Sender {
    /// The validated broker user.
    user: String,
    /// The sender's own reply queue, when the user name is a valid participant id.
    own_queue: Option<String>,
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
            cost: CostModel::new(settings),
            insecure_shared_user: settings.identity.insecure_shared_user,
            identity: settings.identity.clone(),
        }
    }

    /// The sender of `request`, or the refusal of a message that names none (secure mode).
    fn sender(&self, request: &Request) -> Result<Sender, InputError> {
        let user = request
            .user_id
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or(InputError::MissingUserId)?;
        let own_queue = ParticipantId::new(user)
            .ok()
            .map(|p| self.topology.reply_queue(&p));
        Ok(Sender {
            user: user.to_owned(),
            own_queue,
        })
    }

    /// Refuses a `reply_to` other than `expected` (absent is fine: the queue is derived).
    fn check_reply_to(&self, request: &Request, expected: &str) -> Result<(), InputError> {
        match request.reply_to.as_deref() {
            Some(asked) if asked != expected => Err(InputError::ForeignReplyTo {
                reply_to: pipeline::messages::truncate_reason(asked),
                expected: expected.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses a message whose estimated work exceeds `limits.max_work`.
    fn check_cost(&self, shape: &WorkShape) -> Result<(), InputError> {
        self.cost
            .check(shape)
            .map(|_| ())
            .map_err(|(work, limit)| InputError::TooCostly { work, limit })
    }

    /// Processes one message. CPU-bound (key and ciphertext checks, homomorphic arithmetic,
    /// re-randomisation): call it from a rayon thread, not from the async runtime.
    ///
    /// Unless `identity.insecure_shared_user` is set, a message is bound to its validated
    /// `user_id`: a submission is accepted only for the participant who is that user (or from a
    /// delegate), its result goes to that participant's own reply queue whatever `reply_to`
    /// says (a different `reply_to` is refused), and a demo-shaped request is answered on the
    /// sender's own reply queue. Refusals are told to the sender's own queue only.
    pub fn process(&self, request: &Request) -> Outcome {
        if self.insecure_shared_user {
            return self.process_trusting(request);
        }
        let sender = match self.sender(request) {
            Ok(sender) => sender,
            Err(error) => return Outcome::Rejected { error, reply: None },
        };
        let hint = self.hint(request);
        let to_sender = |error: &InputError| {
            sender
                .own_queue
                .clone()
                .map(|rk| self.error_result(rk, &hint, None, error))
        };
        let incoming = match parse_incoming(&request.body, &self.limits) {
            Ok(incoming) => incoming,
            Err(error) => {
                let reply = to_sender(&error);
                return Outcome::Rejected { error, reply };
            }
        };
        match incoming {
            Incoming::Submission(wire) => {
                let participant = match ParticipantId::new(&wire.participant) {
                    Ok(p) => p,
                    Err(e) => {
                        let error = InputError::from(e);
                        let reply = to_sender(&error);
                        return Outcome::Rejected { error, reply };
                    }
                };
                if participant.as_str() != sender.user
                    && !self
                        .identity
                        .delegate_may_submit_for(&sender.user, participant.as_str())
                {
                    let error = InputError::IdentityMismatch {
                        user: sender.user.clone(),
                        participant: participant.to_string(),
                    };
                    let reply = to_sender(&error);
                    return Outcome::Rejected { error, reply };
                }
                let own_queue = self.topology.reply_queue(&participant);
                if let Err(error) = self.check_reply_to(request, &own_queue) {
                    let reply = to_sender(&error);
                    return Outcome::Rejected { error, reply };
                }
                self.submission(wire, Some(own_queue), &hint)
            }
            Incoming::Demo(payload) => {
                let Some(own_queue) = sender.own_queue.clone() else {
                    return Outcome::Rejected {
                        error: InputError::ReplyTo(format!(
                            "user {:?} has no reply queue of its own (not a participant id)",
                            sender.user
                        )),
                        reply: None,
                    };
                };
                if let Err(error) = self.check_reply_to(request, &own_queue) {
                    let reply = Some(self.demo_reply(&own_queue, &hint, demo_error_reply(&error)));
                    return Outcome::Rejected { error, reply };
                }
                self.demo(&payload, own_queue, &hint)
            }
        }
    }

    /// The correlation id of error results for a message whose body names no usable id.
    fn hint(&self, request: &Request) -> String {
        request
            .correlation_id
            .as_deref()
            .or(request.message_id.as_deref())
            .filter(|id| valid_message_id(id))
            .unwrap_or("unknown")
            .to_owned()
    }

    /// `identity.insecure_shared_user`: the behaviour from before identities were checked. The
    /// body's participant and `reply_to` are taken as given.
    fn process_trusting(&self, request: &Request) -> Outcome {
        // A usable reply_to is a routing key we can publish to; anything else gets no reply.
        let reply_to = request
            .reply_to
            .as_deref()
            .filter(|r| valid_message_id(r) && r.len() <= 255)
            .map(str::to_owned);
        let hint = self.hint(request);
        let incoming = match parse_incoming(&request.body, &self.limits) {
            Ok(incoming) => incoming,
            Err(error) => {
                let reply =
                    reply_to.map(|routing_key| self.error_result(routing_key, &hint, None, &error));
                return Outcome::Rejected { error, reply };
            }
        };
        match incoming {
            Incoming::Submission(wire) => self.submission(wire, reply_to, &hint),
            Incoming::Demo(payload) => {
                let Some(routing_key) = reply_to else {
                    return Outcome::Rejected {
                        error: InputError::ReplyTo(
                            "a demo request needs reply_to (the queue to answer to)".into(),
                        ),
                        reply: None,
                    };
                };
                self.demo(&payload, routing_key, &hint)
            }
        }
    }

    /// Validates, prices and evaluates a submission. `reply_to` is where answers go when given
    /// (the participant's own queue in secure mode); otherwise the participant's queue when
    /// its id is valid.
    fn submission(&self, wire: SubmissionWire, reply_to: Option<String>, hint: &str) -> Outcome {
        let participant = ParticipantId::new(&wire.participant).ok();
        let id = if valid_message_id(&wire.submission_id) {
            wire.submission_id.clone()
        } else {
            hint.to_owned()
        };
        let routing_key =
            reply_to.or_else(|| participant.as_ref().map(|p| self.topology.reply_queue(p)));
        let participant_str = participant.as_ref().map(ToString::to_string);
        let error_reply = |error: &InputError| {
            routing_key
                .clone()
                .map(|rk| self.error_result(rk, &id, participant_str.as_deref(), error))
        };
        let shape = submission_shape(&wire);
        // The structural checks (counts, exponents, key size, ciphertext ranges and gcds) cost
        // no exponentiation and name the fault precisely; the price is checked after them and
        // before the first exponentiation.
        let submission = match wire.validate(&self.study, &self.limits) {
            Ok(s) => s,
            Err(error) => {
                let reply = error_reply(&error);
                return Outcome::Rejected { error, reply };
            }
        };
        if let Err(error) = self.check_cost(&shape) {
            let reply = error_reply(&error);
            return Outcome::Rejected { error, reply };
        }
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
            // Deterministic (the same readings overflow the same way every time): refused once,
            // never retried up to the delivery limit.
            Err(reason) => {
                let error = InputError::Computation(reason);
                let reply = Some(self.error_result(
                    routing_key,
                    &submission.id,
                    Some(submission.participant.as_str()),
                    &error,
                ));
                Outcome::Rejected { error, reply }
            }
        }
    }

    /// Validates, prices and computes a demo-shaped request, answering on `routing_key`.
    fn demo(&self, payload: &DemoPayload, routing_key: String, hint: &str) -> Outcome {
        let reply = |body| self.demo_reply(&routing_key, hint, body);
        let request = match DemoRequest::validate(payload, &self.limits) {
            Ok(r) => r,
            Err(error) => {
                let reply = Some(reply(demo_error_reply(&error)));
                return Outcome::Rejected { error, reply };
            }
        };
        if let Err(error) = self.check_cost(&demo_shape(payload)) {
            let reply = Some(reply(demo_error_reply(&error)));
            return Outcome::Rejected { error, reply };
        }
        let factor = rand::random_range(1..=10i64);
        match request.compute(factor, self.obfuscate) {
            Ok(body) => Outcome::Done(reply(
                serde_json::to_vec(&body).expect("a demo reply always serialises"),
            )),
            Err(err) => {
                let error = InputError::Computation(err.to_string());
                let body = demo_error_reply(&error);
                Outcome::Rejected {
                    error,
                    reply: Some(reply(body)),
                }
            }
        }
    }

    fn demo_reply(&self, routing_key: &str, hint: &str, body: Vec<u8>) -> Reply {
        Reply {
            routing_key: routing_key.to_owned(),
            body,
            kind: MessageType::DemoReply,
            correlation_id: hint.to_owned(),
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

/// The work shape of a parsed submission (nothing validated yet: only lengths are read).
fn submission_shape(wire: &SubmissionWire) -> WorkShape {
    let readings = wire.readings.values().flatten();
    let (min, max) = readings.clone().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
        (lo.min(r.exponent), hi.max(r.exponent))
    });
    WorkShape {
        key_bits: wire.public_key.n.0.bits(),
        values: readings.count(),
        exponent_spread: if min <= max { max.abs_diff(min) } else { 0 },
        demo: false,
    }
}

/// The work shape of a parsed demo-shaped request.
fn demo_shape(payload: &DemoPayload) -> WorkShape {
    WorkShape {
        key_bits: payload.public_key.n.0.bits(),
        values: payload.values.len(),
        exponent_spread: 0,
        demo: true,
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
            user_id: None,
        }
    }

    /// The defaults in `identity.insecure_shared_user` mode: these tests are about parsing and
    /// computing; `identity_binds_*` below are about who may submit.
    fn trusting() -> Settings {
        let mut settings = Settings::defaults();
        settings.identity.insecure_shared_user = true;
        settings
    }

    fn rejected_kind(outcome: &Outcome) -> &'static str {
        match outcome {
            Outcome::Rejected { error, .. } => error.kind(),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn shapes_and_limits_are_told_apart_without_a_broker() {
        let mut settings = trusting();
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
        let p = Processor::new(&trusting());
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
        let p = Processor::new(&trusting());
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
            let mut settings = trusting();
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

    fn as_user(user: &str, body: Vec<u8>, reply_to: Option<&str>) -> Request {
        Request {
            user_id: Some(user.to_owned()),
            ..request(body, reply_to)
        }
    }

    #[test]
    fn identity_binds_submissions_to_their_sender() {
        let mut settings = Settings::defaults();
        settings.identity.delegates =
            BTreeMap::from([("clinic-coordinator".to_owned(), "clinic".to_owned())]);
        let p = Processor::new(&settings);
        let key = PrivateKey::generate(2048).unwrap();
        let bob = ParticipantId::new("bob").unwrap();
        let wire = SubmissionWire::encrypt(
            &Settings::defaults().study,
            "s-1",
            &bob,
            &key,
            &BTreeMap::from([("glucose".to_owned(), vec![5.0])]),
        )
        .unwrap();
        let body = serde_json::to_vec(&wire).unwrap();

        // Bob himself, with or without naming his own queue: answered on results.bob.
        for reply_to in [None, Some("results.bob")] {
            let Outcome::Done(reply) = p.process(&as_user("bob", body.clone(), reply_to)) else {
                panic!("bob's own submission refused")
            };
            assert_eq!(reply.routing_key, "results.bob");
        }
        // The delegate of cohort clinic enrolls for its member clinic-7: the result goes to
        // clinic-7's own queue.
        let member = ParticipantId::new("clinic-7").unwrap();
        let member_body = serde_json::to_vec(
            &SubmissionWire::encrypt(
                &Settings::defaults().study,
                "s-2",
                &member,
                &key,
                &BTreeMap::from([("glucose".to_owned(), vec![5.0])]),
            )
            .unwrap(),
        )
        .unwrap();
        let Outcome::Done(reply) = p.process(&as_user("clinic-coordinator", member_body, None))
        else {
            panic!("the delegate's submission for its member refused")
        };
        assert_eq!(reply.routing_key, "results.clinic-7");
        // The same delegate for bob, outside its cohort: refused like anyone else.
        let outcome = p.process(&as_user("clinic-coordinator", body.clone(), None));
        assert_eq!(rejected_kind(&outcome), "identity_mismatch");

        // Mallory claims to be bob: refused, and only mallory's own queue hears of it.
        let outcome = p.process(&as_user("mallory", body.clone(), Some("results.bob")));
        assert_eq!(rejected_kind(&outcome), "identity_mismatch");
        let Outcome::Rejected { reply: Some(r), .. } = outcome else {
            panic!("no notice")
        };
        assert_eq!(r.routing_key, "results.mallory");
        // Bob naming someone else's queue: refused.
        let outcome = p.process(&as_user("bob", body.clone(), Some("results.alice")));
        assert_eq!(rejected_kind(&outcome), "foreign_reply_to");
        // No user_id at all: refused, nobody answered.
        let outcome = p.process(&request(body.clone(), Some("results.bob")));
        assert_eq!(rejected_kind(&outcome), "missing_user_id");
        assert!(matches!(outcome, Outcome::Rejected { reply: None, .. }));
        // Bad bodies are answered on the sender's own queue, never on reply_to.
        let outcome = p.process(&as_user("mallory", b"{".to_vec(), Some("results.bob")));
        let Outcome::Rejected { reply: Some(r), .. } = outcome else {
            panic!("no notice")
        };
        assert_eq!(r.routing_key, "results.mallory");
    }

    #[test]
    fn identity_binds_demo_requests_to_the_senders_own_queue() {
        let p = Processor::new(&Settings::defaults());
        let key = PrivateKey::generate(2048).unwrap();
        let pk = key.public_key();
        let c = pk.encrypt_i64(3).unwrap();
        let body = format!(
            r#"{{"public_key": {{"g": "{}", "n": "{}"}}, "values": [["{}", {}]]}}"#,
            pk.n() + 1u32,
            pk.n(),
            c.ciphertext(),
            c.exponent()
        )
        .into_bytes();
        let Outcome::Done(reply) = p.process(&as_user("alice", body.clone(), None)) else {
            panic!("refused")
        };
        assert_eq!(reply.routing_key, "results.alice");
        let outcome = p.process(&as_user("alice", body, Some("results.bob")));
        assert_eq!(rejected_kind(&outcome), "foreign_reply_to");
        let Outcome::Rejected { reply: Some(r), .. } = outcome else {
            panic!("no notice")
        };
        assert_eq!(r.routing_key, "results.alice");
    }

    #[test]
    fn a_costly_demo_request_is_refused_before_any_exponentiation() {
        let p = Processor::new(&Settings::defaults());
        // An odd 8192-bit "modulus" without small factors passes the affordable key checks.
        let mut n = (num_bigint::BigUint::from(1u32) << 8191u32) + 1u32;
        while (3u32..2000).any(|d| (&n % d) == num_bigint::BigUint::from(0u32)) {
            n += 2u32;
        }
        let values = vec![r#"["2", 0]"#; 200].join(", ");
        let body = format!(
            r#"{{"public_key": {{"g": "{}", "n": "{n}"}}, "values": [{values}]}}"#,
            &n + 1u32
        );
        let started = std::time::Instant::now();
        let outcome = p.process(&as_user("alice", body.into_bytes(), None));
        assert_eq!(rejected_kind(&outcome), "too_costly");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn a_reading_at_a_foreign_exponent_is_refused_before_the_key_is_used() {
        let p = Processor::new(&trusting());
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
