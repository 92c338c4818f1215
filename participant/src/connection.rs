//! A participant-side program's connection to the broker: [`Client`] declares the shared
//! topology and replaces its connection when the old one is lost (broker restart, network
//! failure). Operations that can be retried as a whole run through [`Client::retrying`];
//! publishing ([`crate::publish`]) and result streams ([`crate::results`]) resume on the new
//! connection themselves. Other callers see the loss ([`ClientError::is_connection_loss`]) and
//! decide to [`Client::reconnect`] and retry. Reconnecting gives up after
//! `broker.reconnect_timeout`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lapin::Connection;
use lapin::options::QueueDeclareOptions;
use lapin::types::{FieldTable, ShortString};
use pipeline::amqp_name::AmqpName;
use pipeline::broker::{self, BrokerError, ConfirmedPublisher, Retry};
use pipeline::config::{BrokerSettings, Settings};
use pipeline::participant::{ParticipantId, ParticipantIdError};
use pipeline::topology::{Topology, TopologyError, check_exchange};
use thiserror::Error;
use tracing::{debug, info, warn};

/// What went wrong talking to the broker on the participant side.
#[derive(Debug, Error)]
pub enum ClientError {
    /// A submission names a participant id that is not valid.
    #[error("the submission's participant: {0}")]
    Participant(#[source] ParticipantIdError),
    /// Broker failure.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Topology declaration failure.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A task of the client's own ended abnormally (a bug: they do not panic otherwise).
    #[error("internal error: {0}")]
    Task(String),
}

impl ClientError {
    /// Whether the error is a lost connection: reconnecting and retrying can succeed.
    pub fn is_connection_loss(&self) -> bool {
        broker::caused_by_connection_loss(self) && !self.is_refusal()
    }

    /// Whether the broker refused for good (a missing permission, queue or exchange, a refused
    /// login): retrying cannot help, the error is reported as it is.
    pub fn is_refusal(&self) -> bool {
        // The variants are transparent: their own error is not in `source()`'s chain.
        match self {
            ClientError::Broker(err) => broker::caused_by_refusal(err),
            ClientError::Topology(err) => err.is_refusal() || broker::caused_by_refusal(err),
            _ => false,
        }
    }
}

/// Reply queue declares [`Client::declare_reply_queues`] keeps in flight at once.
pub const DECLARES_IN_FLIGHT: usize = 64;

/// Reconnects one operation may go through before its error is returned (a broker that keeps
/// dropping connections is a failure, not a loss to wait out).
pub(crate) const MAX_RECONNECTS: u32 = 5;

/// Pause before trying again when a new connection is lost while it is being set up.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// A connection to the broker for a participant-side program, with the topology declared; it
/// replaces its connection when the old one is lost (see the module documentation).
pub struct Client {
    link: Mutex<Link>,
    /// Held while reconnecting, so that callers noticing the same loss reconnect once.
    reconnecting: tokio::sync::Mutex<()>,
    pub(crate) broker: BrokerSettings,
    role: String,
    pub(crate) topology: Topology,
    /// `topology.declare`: declare what is used, or only check that it exists.
    declare: bool,
    pub(crate) app_id: String,
}

/// The connection of the moment and its publishing channel. `generation` counts reconnects, so
/// that several callers noticing the same loss reconnect once.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) conn: Arc<Connection>,
    pub(crate) publisher: ConfirmedPublisher,
    pub(crate) generation: u64,
}

impl Client {
    /// Connects (failing fast when the broker is unreachable) and declares the shared topology.
    pub async fn connect(settings: &Settings, role: &str) -> Result<Self, ClientError> {
        let topology = Topology::new(&settings.topology, &settings.reply_queues);
        let link = Self::open(
            &settings.broker,
            role,
            &topology,
            settings.topology.declare,
            Retry::Bounded(settings.broker.connect_attempts),
            0,
        )
        .await?;
        Ok(Client {
            link: Mutex::new(link),
            reconnecting: tokio::sync::Mutex::new(()),
            broker: settings.broker.clone(),
            role: role.to_owned(),
            topology,
            declare: settings.topology.declare,
            app_id: role.to_owned(),
        })
    }

    async fn open(
        broker: &BrokerSettings,
        role: &str,
        topology: &Topology,
        declare: bool,
        retry: Retry,
        generation: u64,
    ) -> Result<Link, ClientError> {
        let conn = broker::connect(broker, role, retry, false).await?;
        // Bounded: a connection dying during the setup must mean reconnecting, not waiting for
        // an answer that never comes.
        let setup = async {
            if declare {
                let publisher = ConfirmedPublisher::new(&conn).await?;
                topology.declare(publisher.channel()).await?;
                return Ok::<_, ClientError>(publisher);
            }
            // A failed passive declare closes its channel: check on one of its own, so that
            // the publishing channel stays usable.
            let probe = conn
                .create_channel()
                .await
                .map_err(|source| BrokerError::Channel {
                    context: "opening a channel",
                    source,
                })?;
            check_exchange(&probe, &topology.readings_exchange).await?;
            broker::close_channel(&probe, "checked").await;
            Ok(ConfirmedPublisher::new(&conn).await?)
        };
        let publisher = match broker::answered_within(
            broker.connect_timeout,
            "setting up the connection",
            setup,
        )
        .await
        {
            Ok(publisher) => publisher,
            Err(err) => {
                broker::close_connection(&conn, "connection setup failed").await;
                return Err(err);
            }
        };
        Ok(Link {
            conn: Arc::new(conn),
            publisher,
            generation,
        })
    }

    pub(crate) fn link(&self) -> Link {
        self.link
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces a lost connection: connects again (for at most `broker.reconnect_timeout`) and
    /// declares the topology again. Logs the loss and how long the recovery took; a failure to
    /// reconnect in time is an error.
    pub async fn reconnect(&self, cause: &ClientError) -> Result<(), ClientError> {
        let lost = self.link();
        self.reconnect_from(lost.generation, cause).await
    }

    pub(crate) async fn reconnect_from(
        &self,
        generation: u64,
        cause: &ClientError,
    ) -> Result<(), ClientError> {
        let _one_at_a_time = self.reconnecting.lock().await;
        if self.link().generation != generation {
            return Ok(()); // someone else reconnected since this link failed
        }
        let started = Instant::now();
        warn!(role = self.role, error = %cause, limit = ?self.broker.reconnect_timeout, "connection to the broker lost; reconnecting");
        let link = loop {
            let left = self
                .broker
                .reconnect_timeout
                .saturating_sub(started.elapsed());
            let opened = Self::open(
                &self.broker,
                &self.role,
                &self.topology,
                self.declare,
                Retry::Within(left),
                generation + 1,
            )
            .await;
            match opened {
                Ok(link) => break link,
                // Connected, then lost again while declaring (a broker still starting up).
                Err(err)
                    if err.is_connection_loss()
                        && !err.is_refusal()
                        && started.elapsed() + RETRY_PAUSE < self.broker.reconnect_timeout =>
                {
                    debug!(error = %err, "lost the new connection at once; trying again");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(err) => {
                    warn!(role = self.role, error = %err, "could not reconnect to the broker");
                    return Err(err);
                }
            }
        };
        let old = std::mem::replace(
            &mut *self.link.lock().unwrap_or_else(PoisonError::into_inner),
            link,
        );
        broker::close_connection(&old.conn, "replaced after a connection loss").await;
        info!(
            role = self.role,
            after_ms = started.elapsed().as_millis() as u64,
            "reconnected to the broker"
        );
        Ok(())
    }

    /// Runs `op` on the current link; after a connection loss, reconnects and runs it again.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, ClientError>
    where
        F: FnMut(Link) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut reconnects = 0;
        loop {
            let link = self.link();
            let generation = link.generation;
            match op(link).await {
                Err(err) if err.is_connection_loss() && reconnects < MAX_RECONNECTS => {
                    reconnects += 1;
                    self.reconnect_from(generation, &err).await?
                }
                other => return other,
            }
        }
    }

    /// The broker settings the client connects with.
    pub(crate) fn broker_settings(&self) -> &BrokerSettings {
        &self.broker
    }

    /// The resolved topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The connection of the moment (e.g. to open a consuming channel). After
    /// [`Client::reconnect`], ask again.
    pub fn connection(&self) -> Arc<Connection> {
        self.link().conn
    }

    /// Declares (idempotently) the participant's reply queue and its binding, or with
    /// `topology.declare = false` checks that it exists; returns its name. Reconnects when the
    /// connection was lost.
    pub async fn declare_reply_queue(
        &self,
        participant: &ParticipantId,
    ) -> Result<String, ClientError> {
        Ok(self.declare_reply_queue_counted(participant).await?.0)
    }

    /// [`Client::declare_reply_queue`], also returning how many results were ready in the
    /// queue (from the declare's own answer: no further round trip).
    pub async fn declare_reply_queue_counted(
        &self,
        participant: &ParticipantId,
    ) -> Result<(String, u32), ClientError> {
        self.retrying(|link| async move {
            if self.declare {
                return Ok(self
                    .topology
                    .declare_reply_queue_counted(link.publisher.channel(), participant)
                    .await?);
            }
            let probe =
                link.conn
                    .create_channel()
                    .await
                    .map_err(|source| BrokerError::Channel {
                        context: "opening a channel",
                        source,
                    })?;
            let checked = self.topology.check_reply_queue(&probe, participant).await?;
            broker::close_channel(&probe, "checked").await;
            Ok(checked)
        })
        .await
    }

    /// Declares the reply queues of many participants at once; returns, in the same order,
    /// each queue's name and the results ready in it. Up to [`DECLARES_IN_FLIGHT`] declares are
    /// sent without waiting for each other's answers (pipelined on one channel): the broker
    /// still handles them one after another, but the round trips no longer add up. Reconnects
    /// when the connection was lost (and declares them all again: declaring is idempotent).
    pub async fn declare_reply_queues(
        &self,
        participants: &[ParticipantId],
    ) -> Result<Vec<(String, u32)>, ClientError> {
        self.retrying(|link| async move {
            let mut declared = Vec::with_capacity(participants.len());
            for chunk in participants.chunks(DECLARES_IN_FLIGHT) {
                let mut tasks = tokio::task::JoinSet::new();
                for (i, participant) in chunk.iter().enumerate() {
                    let (topology, participant) = (self.topology.clone(), participant.clone());
                    let channel = link.publisher.channel().clone();
                    let (declare, conn) = (self.declare, Arc::clone(&link.conn));
                    tasks.spawn(async move {
                        let declared = if declare {
                            topology
                                .declare_reply_queue_counted(&channel, &participant)
                                .await
                        } else {
                            check_on_own_channel(&conn, &topology, &participant).await
                        };
                        (i, declared)
                    });
                }
                let mut answers: Vec<Option<(String, u32)>> = vec![None; chunk.len()];
                let mut first_error = None;
                while let Some(joined) = tasks.join_next().await {
                    // A declare task cannot panic short of a bug in lapin; report it as such.
                    let (i, outcome) =
                        joined.map_err(|e| ClientError::Task(format!("declaring a queue: {e}")))?;
                    match outcome {
                        Ok(answer) => answers[i] = Some(answer),
                        Err(err) => {
                            // One refused declare closes the channel under the others: report
                            // the refusal, not the closed channel it caused.
                            let err = ClientError::from(err);
                            if first_error
                                .as_ref()
                                .is_none_or(|e: &ClientError| e.is_connection_loss())
                            {
                                first_error = Some(err);
                            }
                        }
                    }
                }
                if let Some(err) = first_error {
                    return Err(err);
                }
                declared.extend(answers.into_iter().flatten());
            }
            Ok(declared)
        })
        .await
    }

    /// Messages ready in an existing `queue` (a passive declare). Reconnects when the connection
    /// was lost.
    pub async fn message_count(&self, queue: &str) -> Result<u32, ClientError> {
        let name = ShortString::from(AmqpName::queue(queue).map_err(BrokerError::from)?);
        self.retrying(|link| {
            let name = name.clone();
            async move {
                let declared = link
                    .publisher
                    .channel()
                    .queue_declare(
                        name,
                        QueueDeclareOptions {
                            passive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|source| BrokerError::Channel {
                        context: "counting the messages of a queue",
                        source,
                    })?;
                Ok(declared.message_count())
            }
        })
        .await
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        broker::close_connection(&self.link().conn, "done").await;
    }
}

/// [`Topology::check_reply_queue`] on a channel of its own (a missing queue closes the channel
/// it was checked on), closed afterwards.
async fn check_on_own_channel(
    conn: &Connection,
    topology: &Topology,
    participant: &ParticipantId,
) -> Result<(String, u32), TopologyError> {
    let probe = conn
        .create_channel()
        .await
        .map_err(|source| TopologyError::Declare {
            what: "channel",
            name: "for a passive check".to_owned(),
            source,
        })?;
    let checked = topology.check_reply_queue(&probe, participant).await;
    broker::close_channel(&probe, "checked").await;
    checked
}
