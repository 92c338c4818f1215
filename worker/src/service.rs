//! The worker service: consumes the work queue, computes in batches on a rayon pool, publishes
//! results with confirms and acks afterwards.
//!
//! - **Prefetch** is per consumer (`basic.qos` with `global = false`: quorum queues refuse global
//!   QoS by closing the connection) and is the only back-pressure: lapin buffers deliveries
//!   without bound.
//! - **Batches**: the first delivery opens a batch, which closes when it holds
//!   `worker.batch_size` deliveries or `worker.batch_max_wait` has passed.
//! - **Off the runtime**: a batch is computed on a dedicated rayon pool (`worker.threads`) and
//!   handed back through a oneshot channel, so heartbeats and I/O keep running.
//! - **Confirms before acks**: results and dead-letter copies of a batch are published together
//!   and every confirm awaited; only then are the deliveries acked. A delivery from before a
//!   reconnect cannot be acked (lapin answers `Ok(false)`); the broker redelivers it, and the
//!   duplicate result is recognised by the consumer.
//! - **Connections**: one for consuming, one for publishing (a blocked publishing connection would
//!   otherwise hold back acks). When either is lost (broker restart, network failure) the session
//!   ends: the batch in hand is not acked (the broker requeues it when the connection dies), and
//!   the worker rebuilds connections, channels and consumer from scratch, logging the loss and
//!   how long the recovery took. It gives up, with an error, when no session could be opened for
//!   `broker.reconnect_timeout` after a loss. (lapin's own recovery is not used: it is silent and
//!   deliveries from before it cannot be acked.)
//! - **Shutdown**: when the shutdown signal fires, the consumer is cancelled, the deliveries
//!   already received are processed, published and acked, and [`run`] returns.
//! - **No unbounded waits on the broker**: session setup is bounded by `broker.connect_timeout`,
//!   and the cancel and the closes of a shutdown or a lost session by
//!   [`broker::CLOSE_GRACE`]: a connection that dies (or a broker
//!   that stops answering) at the wrong moment makes the worker reconnect or stop, never hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, Consumer};
use thiserror::Error;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::events::{EventSink, WorkerEvent, unix_ms};
use crate::process::Processor;
use crate::stats::WorkerStats;
use pipeline::amqp_name::{AmqpName, NameKind};
use pipeline::broker::{self, BrokerError, ConfirmedPublisher, Retry};
use pipeline::config::Settings;
use pipeline::topology::{Topology, TopologyError, check_exchange, check_queue};

/// How often an idle worker checks that its connections are still alive.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// Why a worker session ended with an error.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// Connecting, publishing or consuming failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The topology could not be declared.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The settings cannot run a worker.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The rayon job vanished without an answer (it cannot panic: panics are caught per message).
    #[error("the compute pool dropped a batch")]
    ComputeLost,
    /// The connection was lost and could not be re-established in time.
    #[error(
        "lost the broker and could not reconnect within {} (broker.reconnect_timeout)",
        humantime::format_duration(*.0)
    )]
    Reconnect(Duration),
}

impl WorkerError {
    /// Whether the broker refused for good (a missing permission, queue or exchange, a refused
    /// login): the worker stops with it instead of reconnecting.
    pub fn is_refusal(&self) -> bool {
        // The variants are transparent: their own error is not in `source()`'s chain.
        match self {
            WorkerError::Broker(err) => broker::caused_by_refusal(err),
            WorkerError::Topology(err) => err.is_refusal() || broker::caused_by_refusal(err),
            _ => false,
        }
    }
}

/// With `topology.declare = false`: checks with passive declares, each on a channel of its own
/// (a missing object closes the channel it was checked on), that what a worker uses exists.
async fn check_provisioned(conn: &Connection, topology: &Topology) -> Result<(), WorkerError> {
    let checks: [(&str, bool); 3] = [
        (&topology.work_queue, true),
        (&topology.results_exchange, false),
        (&topology.dead_exchange, false),
    ];
    for (name, is_queue) in checks {
        let probe = conn
            .create_channel()
            .await
            .map_err(|source| BrokerError::Channel {
                context: "opening a channel",
                source,
            })?;
        if is_queue {
            check_queue(&probe, name).await?;
        } else {
            check_exchange(&probe, name).await?;
        }
        broker::close_channel(&probe, "checked").await;
    }
    Ok(())
}

/// Shared state of one worker (across reconnects).
pub(crate) struct WorkerContext {
    pub(crate) processor: Arc<Processor>,
    pub(crate) pool: Arc<rayon::ThreadPool>,
    pub(crate) topology: Topology,
    pub(crate) publisher: Arc<ConfirmedPublisher>,
    pub(crate) tag: String,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) events: Arc<EventSink>,
}

/// A shutdown switch for [`run`]: `send(true)` asks the worker to finish and return.
pub type ShutdownSender = watch::Sender<bool>;

/// Creates a shutdown switch.
pub fn shutdown_channel() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

/// Consumer tag: `worker-<host>-<pid>`, with `-<n>` for further workers in the same process
/// (tests run several), so the management UI shows who consumes.
pub fn consumer_tag() -> String {
    static INSTANCES: AtomicUsize = AtomicUsize::new(0);
    let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
    let base = format!("worker-{}-{}", broker::host_name(), std::process::id());
    if n == 0 {
        base
    } else {
        format!("{base}-{}", n + 1)
    }
}

/// Runs a worker until `shutdown` turns true (or its sender is dropped), reconnecting whenever a
/// session fails. `stats` is updated as it goes. Emits no events (see [`run_with_events`]).
pub async fn run(
    settings: &Settings,
    shutdown: watch::Receiver<bool>,
    stats: Arc<WorkerStats>,
) -> Result<(), WorkerError> {
    run_with_events(settings, shutdown, stats, Arc::new(EventSink::disabled())).await
}

/// [`run`], also writing the worker's events (start, every batch, lost connections, reconnects,
/// stop) to `events`.
pub async fn run_with_events(
    settings: &Settings,
    mut shutdown: watch::Receiver<bool>,
    stats: Arc<WorkerStats>,
    events: Arc<EventSink>,
) -> Result<(), WorkerError> {
    settings
        .study
        .validate()
        .map_err(|e| WorkerError::Settings(format!("study: {e}")))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(settings.worker_threads())
        .thread_name(|i| format!("compute-{i}"))
        .build()
        .map_err(|e| WorkerError::Settings(format!("rayon pool: {e}")))?;
    let pool = Arc::new(pool);
    let processor = Arc::new(Processor::new(settings));
    let topology = Topology::new(&settings.topology, &settings.reply_queues);
    let tag = consumer_tag();
    if settings.identity.insecure_shared_user {
        warn!(
            "identity.insecure_shared_user is set: submissions are NOT bound to their sender's \
             broker user; any client can submit for any participant and send results to any \
             queue. Development only."
        );
    }
    info!(
        tag,
        threads = pool.current_num_threads(),
        batch_size = settings.worker.batch_size,
        batch_max_wait = ?settings.worker.batch_max_wait,
        prefetch = settings.broker.prefetch,
        queue = topology.work_queue,
        "worker starting"
    );
    events.emit(&WorkerEvent::WorkerStarted {
        unix_ms: unix_ms(),
        tag: tag.clone(),
        threads: pool.current_num_threads(),
        batch_size: settings.worker.batch_size,
        prefetch: settings.broker.prefetch,
        queue: topology.work_queue.clone(),
    });
    let mut backoff = Duration::from_millis(250);
    // When the last session was lost: bounds the time spent getting a new one.
    let mut lost_at: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let retry = match lost_at {
            None => Retry::Forever,
            Some(at) => {
                let left = settings
                    .broker
                    .reconnect_timeout
                    .saturating_sub(at.elapsed());
                if left.is_zero() {
                    return Err(WorkerError::Reconnect(settings.broker.reconnect_timeout));
                }
                Retry::Within(left)
            }
        };
        let session = tokio::select! {
            s = Session::open(settings, &topology, &tag, retry) => s,
            _ = shutdown.changed() => break,
        };
        let session = match session {
            Ok(s) => s,
            // A missing permission, queue or exchange, or a refused login: no retry can mend
            // it, and retrying for ever would hide it.
            Err(err) if err.is_refusal() => return Err(err),
            Err(err) => {
                error!(error = %err, retry_in = ?backoff, "could not start a session");
                if lost_at
                    .is_some_and(|at| at.elapsed() + backoff >= settings.broker.reconnect_timeout)
                {
                    return Err(WorkerError::Reconnect(settings.broker.reconnect_timeout));
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(250);
        if let Some(at) = lost_at.take() {
            let after_ms = at.elapsed().as_millis() as u64;
            info!(tag, after_ms, "reconnected to the broker, consuming again");
            events.emit(&WorkerEvent::Reconnected {
                unix_ms: unix_ms(),
                after_ms,
            });
        }
        WorkerStats::add(&stats.sessions, 1);
        let ctx = WorkerContext {
            processor: Arc::clone(&processor),
            pool: Arc::clone(&pool),
            topology: topology.clone(),
            publisher: Arc::clone(&session.publisher),
            tag: tag.clone(),
            stats: Arc::clone(&stats),
            events: Arc::clone(&events),
        };
        let ended = session.consume(settings, &ctx, &mut shutdown).await;
        session.close().await;
        let reason = match ended {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::ConsumerGone) => {
                warn!(
                    "the broker cancelled the consumer (queue deleted or connection closed); reconnecting"
                );
                "the broker cancelled the consumer".to_owned()
            }
            Err(err) if err.is_refusal() => return Err(err),
            Err(err) => {
                warn!(
                    error = %err,
                    limit = ?settings.broker.reconnect_timeout,
                    "connection to the broker lost (unacked deliveries go back to the queue); reconnecting"
                );
                err.to_string()
            }
        };
        events.emit(&WorkerEvent::ConnectionLost {
            unix_ms: unix_ms(),
            reason,
        });
        lost_at = Some(Instant::now());
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => break,
        }
    }
    let s = stats.snapshot();
    info!(
        batches = s.batches,
        done = s.done,
        rejected = s.rejected,
        retried = s.retried,
        failed = s.failed,
        stale = s.stale,
        sessions = s.sessions,
        "worker stopped"
    );
    events.emit(&WorkerEvent::WorkerStopped {
        unix_ms: unix_ms(),
        totals: s,
    });
    Ok(())
}

/// How a session ended without error.
enum SessionEnd {
    /// Asked to stop; the deliveries in hand were finished.
    Shutdown,
    /// The consumer stream ended without our asking.
    ConsumerGone,
}

/// The connections, channels and consumer of one connected period.
struct Session {
    consume_conn: Connection,
    publish_conn: Connection,
    publisher: Arc<ConfirmedPublisher>,
    consumer: Consumer,
    channel: lapin::Channel,
}

impl Session {
    async fn open(
        settings: &Settings,
        topology: &Topology,
        tag: &str,
        retry: Retry,
    ) -> Result<Self, WorkerError> {
        let publish_conn =
            broker::connect(&settings.broker, "worker-publish", retry, false).await?;
        let consume_conn =
            broker::connect(&settings.broker, "worker-consume", retry, false).await?;
        // Each step waits for the broker's answer; bounded, so that a connection dying in the
        // middle of the setup means reconnecting, not waiting for ever.
        let limit = settings.broker.connect_timeout;
        let setup = async {
            if settings.topology.declare {
                let publisher = ConfirmedPublisher::new(&publish_conn).await?;
                topology.declare(publisher.channel()).await?;
            } else {
                check_provisioned(&publish_conn, topology).await?;
            }
            let publisher = ConfirmedPublisher::new(&publish_conn).await?;
            let channel_err = |context| move |source| BrokerError::Channel { context, source };
            let channel = consume_conn
                .create_channel()
                .await
                .map_err(channel_err("opening the consuming channel"))?;
            channel
                .basic_qos(settings.broker.prefetch, BasicQosOptions { global: false })
                .await
                .map_err(channel_err("setting the prefetch window"))?;
            let consumer = channel
                .basic_consume(
                    AmqpName::queue(topology.work_queue.as_str())
                        .map_err(BrokerError::from)?
                        .into(),
                    AmqpName::new(NameKind::ConsumerTag, tag)
                        .map_err(BrokerError::from)?
                        .into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(channel_err("consuming the work queue"))?;
            Ok::<_, WorkerError>((publisher, channel, consumer))
        };
        let (publisher, channel, consumer) =
            match broker::answered_within(limit, "setting up the worker session", setup).await {
                Ok(parts) => parts,
                Err(err) => {
                    broker::close_connection(&consume_conn, "session setup failed").await;
                    broker::close_connection(&publish_conn, "session setup failed").await;
                    return Err(err);
                }
            };
        info!(queue = topology.work_queue, tag, "consuming");
        Ok(Session {
            consume_conn,
            publish_conn,
            publisher: Arc::new(publisher),
            consumer,
            channel,
        })
    }

    async fn consume(
        &self,
        settings: &Settings,
        ctx: &WorkerContext,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, WorkerError> {
        let mut consumer = self.consumer.clone();
        let batch_size = settings.worker.batch_size;
        let mut stopping: Option<Instant> = None;
        loop {
            let first = match stopping {
                None => tokio::select! {
                    biased;
                    changed = shutdown.changed() => {
                        // A dropped sender also means stop.
                        if changed.is_err() || *shutdown.borrow() {
                            stopping = Some(self.stop_consuming(ctx).await + settings.worker.shutdown_grace);
                        }
                        continue;
                    }
                    item = consumer.next() => item,
                    // A consumer whose connection died does not always end its stream (e.g. when
                    // the failure was reported while a batch was being processed): look.
                    _ = tokio::time::sleep(LIVENESS_CHECK) => {
                        self.check_connections()?;
                        continue;
                    }
                },
                Some(deadline) => match tokio::time::timeout_at(deadline, consumer.next()).await {
                    Ok(item) => item,
                    Err(_) => {
                        warn!("shutdown grace period over; the broker will requeue what is left");
                        return Ok(SessionEnd::Shutdown);
                    }
                },
            };
            let first = match first {
                None if stopping.is_some() => return Ok(SessionEnd::Shutdown),
                None => return Ok(SessionEnd::ConsumerGone),
                Some(Err(err)) => {
                    return Err(BrokerError::Channel {
                        context: "consuming",
                        source: err,
                    }
                    .into());
                }
                Some(Ok(delivery)) => delivery,
            };
            let mut batch = Vec::with_capacity(batch_size);
            batch.push(first);
            let mut stream_error = None;
            let mut ended = false;
            let deadline = Instant::now() + settings.worker.batch_max_wait;
            while batch.len() < batch_size {
                match tokio::time::timeout_at(deadline, consumer.next()).await {
                    Ok(Some(Ok(delivery))) => batch.push(delivery),
                    Ok(Some(Err(err))) => {
                        stream_error = Some(err);
                        break;
                    }
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            crate::batch::process_batch(ctx, batch).await?;
            if let Some(err) = stream_error {
                return Err(BrokerError::Channel {
                    context: "consuming",
                    source: err,
                }
                .into());
            }
            if ended {
                return Ok(if stopping.is_some() {
                    SessionEnd::Shutdown
                } else {
                    SessionEnd::ConsumerGone
                });
            }
        }
    }

    /// An error when either connection is no longer usable.
    fn check_connections(&self) -> Result<(), WorkerError> {
        for (conn, context) in [
            (&self.consume_conn, "the consuming connection"),
            (&self.publish_conn, "the publishing connection"),
        ] {
            if !conn.status().connected() {
                return Err(BrokerError::Channel {
                    context,
                    source: lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Error)
                        .into(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Cancels the consumer; deliveries already sent by the broker still arrive and are processed.
    async fn stop_consuming(&self, ctx: &WorkerContext) -> Instant {
        info!(
            tag = ctx.tag,
            "shutdown requested: cancelling the consumer, finishing the deliveries in hand"
        );
        let cancel = self
            .channel
            .basic_cancel(self.consumer.tag(), BasicCancelOptions::default());
        match tokio::time::timeout(broker::CLOSE_GRACE, cancel).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(error = %err, "cancelling the consumer failed"),
            // A dead connection: nothing more will be delivered on it anyway.
            Err(_) => warn!("the broker did not answer the cancel; finishing what is in hand"),
        }
        Instant::now()
    }

    /// Lets go of the session's connections; bounded, whatever state they are in.
    async fn close(self) {
        drop(self.consumer);
        broker::close_channel(&self.channel, "worker stopping").await;
        broker::close_connection(&self.consume_conn, "worker stopping").await;
        broker::close_connection(&self.publish_conn, "worker stopping").await;
    }
}
