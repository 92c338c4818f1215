//! Publishing with confirms on a [`Client`]: a participant's submission, or many prepared
//! messages at once (bulk enrollment), republished after a reconnect until the broker confirmed
//! them.

use lapin::types::ShortString;
use pipeline::ParticipantId;
use pipeline::broker::{BrokerError, Outgoing};
use pipeline::messages::{MessageType, Properties, SubmissionWire};
use tracing::{debug, warn};

use crate::connection::{Client, ClientError, MAX_RECONNECTS};

impl Client {
    /// The message that carries `submission`, replying to `reply_to`; refused when an id or
    /// the reply queue does not fit AMQP.
    pub fn submission_message(
        &self,
        submission: &SubmissionWire,
        reply_to: &str,
    ) -> Result<Outgoing, ClientError> {
        let props = Properties {
            kind: MessageType::Submission,
            message_id: submission.submission_id.clone(),
            correlation_id: submission.submission_id.clone(),
            reply_to: Some(reply_to.to_owned()),
            app_id: self.app_id.clone(),
        }
        .to_amqp()
        .map_err(BrokerError::from)?;
        // The broker checks user_id against the connection's user; the worker binds the
        // submission to it (issue 10).
        let props = match pipeline::broker::url_user(&self.broker.url).map(ShortString::try_new) {
            Some(Ok(user)) => props.with_user_id(user),
            _ => props,
        };
        Ok(Outgoing {
            exchange: self.topology.readings_exchange.clone(),
            routing_key: self.topology.submission_routing_key.clone(),
            body: serde_json::to_vec(submission).expect("a submission always serialises"),
            properties: props,
        })
    }

    /// Declares the reply queue, publishes `submission` and waits for the broker's confirm
    /// (republishing on a new connection if the old one was lost before the confirm).
    pub async fn submit(&self, submission: &SubmissionWire) -> Result<(), ClientError> {
        let participant =
            ParticipantId::new(&submission.participant).map_err(ClientError::Participant)?;
        let reply_to = self.declare_reply_queue(&participant).await?;
        self.publish_all(std::slice::from_ref(
            &self.submission_message(submission, &reply_to)?,
        ))
        .await?;
        debug!(
            submission_id = submission.submission_id,
            reply_to, "submission confirmed"
        );
        Ok(())
    }

    /// Publishes prepared messages with confirms. After a connection loss it reconnects and
    /// republishes exactly the messages not yet confirmed (at-least-once: one whose confirm was
    /// lost with the connection may reach the broker twice; receivers deduplicate by id).
    pub async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), ClientError> {
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        let mut reconnects = 0;
        loop {
            let link = self.link();
            match link.publisher.publish_pending(messages, &mut pending).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    let err = ClientError::from(err);
                    if !err.is_connection_loss() || reconnects >= MAX_RECONNECTS {
                        return Err(err);
                    }
                    reconnects += 1;
                    warn!(
                        unconfirmed = pending.len(),
                        "publishing interrupted; republishing the unconfirmed messages after reconnecting"
                    );
                    self.reconnect_from(link.generation, &err).await?;
                }
            }
        }
    }
}
