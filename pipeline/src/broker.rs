//! Connections to RabbitMQ and a publisher that knows whether every message arrived.
//!
//! - [`connect`] names the connection after the role, host and pid (shown in the management UI),
//!   retries a bounded number of times ([`Retry::Bounded`]: producer and consumer fail fast on an
//!   unreachable broker), for a bounded time ([`Retry::Within`]: getting a lost connection back),
//!   or for ever ([`Retry::Forever`]: a worker's first connection).
//! - [`ConfirmedPublisher`] publishes on a confirm-mode channel, awaits every confirm, republishes
//!   what the broker nacked, and treats a returned (unroutable) message as an error;
//!   [`ConfirmedPublisher::publish_pending`] tells the caller which messages are still
//!   unconfirmed when the connection is lost, so that it republishes exactly those on a new one.
//! - [`is_connection_loss`] / [`caused_by_connection_loss`] tell a lost connection (worth
//!   reconnecting for) from a refusal (worth reporting).
//! - [`answered_within`], [`close_connection`] and [`close_channel`] bound the waits for the
//!   broker's answer where lapin has none (setting up, closing): a connection that dies at the
//!   wrong moment must not leave a process waiting for ever.
//!
//! The binaries do not use lapin's automatic recovery: it is silent (no log says the connection
//! was lost or how long it took to come back), and deliveries received before a recovery can no
//! longer be acked. Each binary instead rebuilds its connection, channels and consumers itself,
//! logs the loss (`warn`) and the recovery with its duration (`info`), and gives up after
//! `broker.reconnect_timeout`.
//!
//! Consuming and publishing use separate connections: while the broker blocks a publishing
//! connection (memory or disk alarm) lapin writes nothing on it, acks included.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::ShortString;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::amqp_name::{AmqpName, AmqpNameError, NameKind};
use crate::config::{BrokerSettings, ConfigError, TlsSettings, Transport};

/// Failures talking to the broker.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// No connection could be made.
    #[error("cannot connect to the broker at {url} after {attempts} attempt(s): {reason}")]
    Unreachable {
        /// The URL, password removed.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Last failure.
        reason: String,
    },
    /// A channel operation failed.
    #[error("{context}: {source}")]
    Channel {
        /// What was being done.
        context: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker could not route a mandatory message (a missing queue or binding).
    #[error(
        "{count} message(s) returned unroutable by the broker ({reply}), e.g. message id {example}"
    )]
    Returned {
        /// Messages returned.
        count: usize,
        /// Broker's reply text (e.g. NO_ROUTE).
        reply: String,
        /// One of their message ids.
        example: String,
    },
    /// The broker kept refusing (nacking) messages.
    #[error("{count} message(s) still nacked by the broker after {attempts} attempts")]
    Nacked {
        /// Messages not accepted.
        count: usize,
        /// Attempts made.
        attempts: u32,
    },
    /// The configuration does not allow this connection (see
    /// [`BrokerSettings::transport`](crate::config::BrokerSettings::transport)).
    #[error(transparent)]
    Refused(Box<ConfigError>),
    /// A TLS file from configuration could not be read.
    #[error("cannot read {setting} {}: {source}", .path.display())]
    TlsFile {
        /// The setting that names the file, e.g. `broker.tls.ca_file`.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed on a certificate: the broker's is not trusted (or does not name
    /// the URL's host), or the broker refused ours. Not retried: trying again cannot help.
    #[error(
        "TLS with the broker at {url} failed: {reason} (check broker.tls.ca_file, the URL's host \
         name, and broker.tls.client_cert)"
    )]
    Certificate {
        /// The URL, password removed.
        url: String,
        /// The TLS library's reason.
        reason: String,
    },
    /// The broker refused the login (wrong user or password) or the vhost. Not retried.
    #[error(
        "the broker at {url} refused the connection: {reason} (check the user, password and vhost \
         of the AMQP URL)"
    )]
    Login {
        /// The URL, password removed.
        url: String,
        /// The broker's reply.
        reason: String,
    },
    /// A name or id AMQP cannot carry (too long, or empty where that means something else).
    #[error(transparent)]
    Name(#[from] AmqpNameError),
    /// The broker did not answer a request in time: the connection is treated as lost.
    #[error("{context}: no answer from the broker within {}", humantime::format_duration(*.after))]
    Stalled {
        /// What was being done.
        context: &'static str,
        /// How long was waited.
        after: Duration,
    },
}

/// Why the broker refused something for good: a missing permission (`ACCESS_REFUSED`), a
/// missing queue or exchange (`NOT_FOUND`), or a vhost the user may not use (`NOT_ALLOWED`).
/// Retrying cannot help until an operator changes the broker, so every binary stops on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 403: the user lacks a permission, or the login was refused.
    AccessRefused,
    /// 404: the queue or exchange does not exist.
    NotFound,
    /// 530: the user may not use the vhost (or the vhost does not exist).
    NotAllowed,
}

/// The permanent refusal `err` is, if it is one (see [`Refusal`]).
pub fn refusal(err: &lapin::Error) -> Option<Refusal> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => match amqp.get_id() {
            403 => Some(Refusal::AccessRefused),
            404 => Some(Refusal::NotFound),
            530 => Some(Refusal::NotAllowed),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `err` or any error in its chain is a permanent refusal by the broker ([`refusal`],
/// or [`BrokerError::Login`]): a reason to stop with that error, never to retry.
pub fn caused_by_refusal(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(lapin) = e.downcast_ref::<lapin::Error>()
            && refusal(lapin).is_some()
        {
            return true;
        }
        match e.downcast_ref::<BrokerError>() {
            Some(BrokerError::Channel { source, .. }) if refusal(source).is_some() => return true,
            Some(BrokerError::Login { .. }) => return true,
            _ => {}
        }
        if e.downcast_ref::<crate::topology::TopologyError>()
            .is_some_and(crate::topology::TopologyError::is_refusal)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// How long a connection or channel that is being given up is given to close politely.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Runs a request to the broker (`fut`), giving up after `limit` with [`BrokerError::Stalled`].
///
/// Why: a lapin request waits for the broker's answer, and when the connection dies at the wrong
/// moment (a reset while a session is being set up, a broker restarting) that answer may never
/// come and nothing else ends the wait. Every setup step is bounded so that a process either
/// proceeds or reconnects; a stalled step counts as a connection loss.
pub async fn answered_within<T, E>(
    limit: Duration,
    context: &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    E: From<BrokerError>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(outcome) => outcome,
        Err(_) => Err(BrokerError::Stalled {
            context,
            after: limit,
        }
        .into()),
    }
}

/// Closes `conn` politely when it is still up, waiting at most [`CLOSE_GRACE`].
///
/// lapin's close waits for the broker's close-ok; on a connection that died or is dying it can
/// wait for ever (amqp-rs/lapin#400), and a process must not hang while letting go of a
/// connection it no longer needs. Closing is best effort: the broker requeues whatever was
/// unacked on the connection however it ends.
pub async fn close_connection(conn: &Connection, reason: &str) {
    if !conn.status().connected() {
        return;
    }
    let closing = conn.close(200, reason.into());
    if tokio::time::timeout(CLOSE_GRACE, closing).await.is_err() {
        debug!(
            reason,
            "the broker did not confirm closing the connection in time; dropped"
        );
    }
}

/// Closes `channel` politely when it is still up, waiting at most [`CLOSE_GRACE`] (see
/// [`close_connection`] for why).
pub async fn close_channel(channel: &Channel, reason: &str) {
    if !channel.status().connected() {
        return;
    }
    let closing = channel.close(200, reason.into());
    if tokio::time::timeout(CLOSE_GRACE, closing).await.is_err() {
        debug!(
            reason,
            "the broker did not confirm closing the channel in time; dropped"
        );
    }
}

/// How hard [`connect`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// At most this many attempts, delays doubling from `retry_delay`.
    Bounded(u32),
    /// Until it works or this much time has passed (delays doubling up to 5 s, so that a broker
    /// back after an outage is found within seconds).
    Within(Duration),
    /// Until it works (delays doubling up to 30 s).
    Forever,
}

/// Whether `err` means the connection (or its channel) is gone, so that reconnecting and doing
/// the same again can succeed: I/O errors, missed heartbeats, the broker closing the connection
/// (e.g. `CONNECTION_FORCED` on shutdown), and operations on channels or connections already
/// closed by such a failure. A channel-level refusal (`NOT_FOUND`, `PRECONDITION_FAILED`,
/// `ACCESS_REFUSED`) is not: doing it again would fail the same way.
pub fn is_connection_loss(err: &lapin::Error) -> bool {
    use lapin::ErrorKind;
    match err.kind() {
        ErrorKind::IOError(_)
        | ErrorKind::MissingHeartbeatError
        | ErrorKind::InvalidChannel(_)
        | ErrorKind::InvalidChannelState(..)
        | ErrorKind::InvalidConnectionState(_) => true,
        // A refusal on connection level (530 NOT_ALLOWED: no access to the vhost) closes the
        // connection too, but reconnecting cannot mend it.
        ErrorKind::ProtocolError(_) => err.is_amqp_hard_error() && refusal(err).is_none(),
        _ => false,
    }
}

/// Whether `err` or any error in its source chain is a connection loss ([`is_connection_loss`])
/// or a request the broker left unanswered ([`BrokerError::Stalled`]).
pub fn caused_by_connection_loss(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(lapin) = e.downcast_ref::<lapin::Error>()
            && is_connection_loss(lapin)
        {
            return true;
        }
        match e.downcast_ref::<BrokerError>() {
            Some(BrokerError::Channel { source, .. }) if is_connection_loss(source) => return true,
            Some(BrokerError::Stalled { .. }) => return true,
            _ => {}
        }
        next = e.source();
    }
    false
}

/// `url` with the password replaced, for messages and logs: the one function every message or
/// log line that shows a broker URL goes through.
///
/// Conservative where the URL is malformed: the user-info is taken to end at the last `@` (a
/// password may hold an unencoded one), and without `scheme://` everything before that `@` is
/// hidden.
pub fn redact_url(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_owned();
    };
    match url.find("://") {
        Some(scheme_end) if scheme_end < at => {
            let start = scheme_end + 3;
            match url[start..at].split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..start], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => format!("***{}", &url[at..]),
    }
}

/// The broker user an AMQP URL logs in as (what RabbitMQ validates the `user_id` property
/// against): the URL's user name, or `guest` when it names none (AMQP's default).
pub fn url_user(url: &str) -> Option<String> {
    url.parse::<lapin::uri::AMQPUri>()
        .ok()
        .map(|uri| uri.authority.userinfo.username)
}

/// Host name for connection names and consumer tags.
pub fn host_name() -> String {
    gethostname::gethostname()
        .to_string_lossy()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(64)
        .collect()
}

/// Connection name shown in the management UI: `<prefix> <role> <host> pid <pid>`.
pub fn connection_name(settings: &BrokerSettings, role: &str) -> String {
    format!(
        "{} {} {} pid {}",
        settings.connection_name,
        role,
        host_name(),
        std::process::id()
    )
}

/// The TLS configuration of `tls`: the CA file as extra trust anchors, the client certificate
/// and key as identity. Files are read on every call, so that renewed certificates are picked up
/// by the next connection.
pub fn tls_config(tls: &TlsSettings) -> Result<OwnedTLSConfig, BrokerError> {
    let read = |setting: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| BrokerError::TlsFile {
            setting,
            path: path.to_owned(),
            source,
        })
    };
    let cert_chain = match &tls.ca_file {
        Some(path) => {
            let pem = read("broker.tls.ca_file", path)?;
            Some(String::from_utf8(pem).map_err(|_| BrokerError::TlsFile {
                setting: "broker.tls.ca_file",
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "not a PEM file (not text)",
                ),
            })?)
        }
        None => None,
    };
    let identity = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read("broker.tls.client_cert", cert)?,
            key: read("broker.tls.client_key", key)?,
        }),
        _ => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// Whether a failed connection attempt failed on a certificate (rustls' "invalid peer
/// certificate", or the broker's alert refusing ours), which no retry can mend.
fn is_certificate_failure(err: &lapin::Error) -> bool {
    if !err.is_io_error() {
        return false;
    }
    let text = err.to_string();
    text.contains("invalid peer certificate")
        || text.contains("received fatal alert: BadCertificate")
        || text.contains("received fatal alert: UnknownCA")
        || text.contains("received fatal alert: CertificateRequired")
        || text.contains("received fatal alert: CertificateUnknown")
}

static INSECURE_WARNING: Once = Once::new();

/// Connects as `role` (e.g. "worker-consume", "producer"). With `recover`, lapin re-establishes
/// the connection, its channels, QoS, confirm mode, declared topology and consumers by itself
/// after a network failure or a broker restart (the binaries pass `false` and reconnect
/// themselves: see the module documentation).
pub async fn connect(
    settings: &BrokerSettings,
    role: &str,
    retry: Retry,
    recover: bool,
) -> Result<Connection, BrokerError> {
    let transport = settings
        .transport()
        .map_err(|e| BrokerError::Refused(Box::new(e)))?;
    if transport == Transport::InsecurePlaintext {
        INSECURE_WARNING.call_once(|| {
            warn!(
                url = %redact_url(&settings.url),
                "broker.allow_insecure_plaintext: connecting WITHOUT TLS to a host that is not \
                 loopback; the password and every message cross the network unencrypted"
            );
        });
    }
    let name = connection_name(settings, role);
    let mut delay = settings.retry_delay;
    let mut attempt = 0u32;
    let started = Instant::now();
    let max_delay = match retry {
        Retry::Forever => Duration::from_secs(30),
        _ => Duration::from_secs(5),
    };
    loop {
        attempt += 1;
        let mut props = ConnectionProperties::default().with_connection_name(name.clone().into());
        if recover {
            props = props.enable_auto_recover().configure_backoff(|b| {
                b.with_max_times(usize::MAX)
                    .with_max_delay(Duration::from_secs(10))
            });
        }
        // Plain URLs go through the same call: lapin applies the TLS configuration to amqps://
        // only.
        let tls = match transport {
            Transport::Tls => tls_config(&settings.tls)?,
            _ => OwnedTLSConfig::default(),
        };
        let runtime = lapin::runtime::default_runtime().map_err(|source| BrokerError::Channel {
            context: "binding the connection to the tokio runtime",
            source,
        })?;
        let outcome = tokio::time::timeout(
            settings.connect_timeout,
            Connection::connect_with_config(&settings.url, props, tls, runtime),
        )
        .await;
        let reason = match outcome {
            Ok(Ok(conn)) => {
                info!(
                    connection = %name,
                    url = %redact_url(&settings.url),
                    tls = transport == Transport::Tls,
                    "connected to the broker"
                );
                return Ok(conn);
            }
            Ok(Err(err)) if is_certificate_failure(&err) => {
                return Err(BrokerError::Certificate {
                    url: redact_url(&settings.url),
                    reason: err.to_string(),
                });
            }
            // Refused logins are not retried: a wrong password stays wrong, and RabbitMQ counts
            // every attempt.
            Ok(Err(err)) if refusal(&err).is_some() => {
                return Err(BrokerError::Login {
                    url: redact_url(&settings.url),
                    reason: err.to_string(),
                });
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!(
                "no answer within {}",
                humantime::format_duration(settings.connect_timeout)
            ),
        };
        let give_up = match retry {
            Retry::Bounded(max) => attempt >= max,
            Retry::Within(limit) => started.elapsed() + delay >= limit,
            Retry::Forever => false,
        };
        if give_up {
            return Err(BrokerError::Unreachable {
                url: redact_url(&settings.url),
                attempts: attempt,
                reason,
            });
        }
        warn!(attempt, %reason, retry_in = ?delay, "broker not reachable, retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(max_delay);
    }
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Target exchange.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Body.
    pub body: Vec<u8>,
    /// Properties (should carry a unique message id: returned messages are identified by it).
    pub properties: BasicProperties,
}

/// What became of one message given to [`ConfirmedPublisher::publish_each`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishFate {
    /// The broker took responsibility for it.
    Confirmed,
    /// The broker refused it (`basic.nack`), e.g. its queue is full with reject-publish.
    Nacked,
    /// No queue took it (`basic.return`, with the broker's reply text).
    Returned(String),
}

/// Publishes on a confirm-mode channel and reports success only once the broker has taken
/// responsibility for every message (`basic.ack` without a return). Cloning shares the channel.
#[derive(Clone)]
pub struct ConfirmedPublisher {
    channel: Channel,
    max_attempts: u32,
}

impl ConfirmedPublisher {
    /// Opens a channel on `conn` and puts it into confirm mode.
    pub async fn new(conn: &Connection) -> Result<Self, BrokerError> {
        let channel = conn
            .create_channel()
            .await
            .map_err(|source| BrokerError::Channel {
                context: "opening the publishing channel",
                source,
            })?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|source| BrokerError::Channel {
                context: "enabling publisher confirms",
                source,
            })?;
        Ok(ConfirmedPublisher {
            channel,
            max_attempts: 5,
        })
    }

    /// The underlying channel (e.g. to declare topology on it).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes one message and awaits its confirm.
    pub async fn publish(&self, message: Outgoing) -> Result<(), BrokerError> {
        self.publish_all(std::slice::from_ref(&message)).await
    }

    /// Sends one message, mandatory (an unroutable one comes back as a return). The outer error
    /// is a name AMQP cannot carry (nothing was sent), the inner one the channel's.
    async fn send(
        &self,
        m: &Outgoing,
    ) -> Result<Result<PublisherConfirm, lapin::Error>, BrokerError> {
        let exchange = short(NameKind::Exchange, &m.exchange)?;
        let routing_key = short(NameKind::RoutingKey, &m.routing_key)?;
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        Ok(self
            .channel
            .basic_publish(
                exchange,
                routing_key,
                options,
                &m.body,
                m.properties.clone(),
            )
            .await)
    }

    /// Publishes all `messages` (pipelined: all sent, then all confirms awaited), republishes the
    /// ones nacked, and fails if any came back unroutable or the channel broke. The broker may
    /// hold duplicates of republished messages: receivers deduplicate by id.
    pub async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), BrokerError> {
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        self.publish_pending(messages, &mut pending).await
    }

    /// Publishes every message once and reports each one's own fate, so that a message the
    /// broker refuses (nack: a full queue with reject-publish; return: no route) settles only
    /// itself and never the others sent with it. Nothing is republished. `Err` only when the
    /// channel broke (then no fate is known; the caller reconnects).
    pub async fn publish_each(
        &self,
        messages: &[Outgoing],
    ) -> Result<Vec<PublishFate>, BrokerError> {
        let mut confirms = Vec::with_capacity(messages.len());
        for m in messages {
            let confirm = self.send(m).await?.map_err(|source| BrokerError::Channel {
                context: "publishing",
                source,
            })?;
            confirms.push(confirm);
        }
        let mut fates = vec![PublishFate::Confirmed; messages.len()];
        let mut returned_ids = Vec::new();
        for (i, confirm) in confirms.into_iter().enumerate() {
            match confirm.await {
                Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => {}
                Ok(Confirmation::Ack(Some(ret))) => {
                    // A return may be attached to another message's confirm: it names its
                    // message by id.
                    returned_ids.push((
                        ret.properties
                            .message_id()
                            .as_ref()
                            .map(ToString::to_string),
                        ret.reply_text.to_string(),
                    ));
                }
                Ok(Confirmation::Nack(_)) => fates[i] = PublishFate::Nacked,
                Err(source) => {
                    return Err(BrokerError::Channel {
                        context: "publishing",
                        source,
                    });
                }
            }
        }
        for (id, reply) in returned_ids {
            let mut matched = false;
            for (m, fate) in messages.iter().zip(fates.iter_mut()) {
                if id.is_some() && m.properties.message_id().as_ref().map(ToString::to_string) == id
                {
                    *fate = PublishFate::Returned(reply.clone());
                    matched = true;
                }
            }
            if !matched {
                warn!(
                    reply,
                    "the broker returned a message that names no message id"
                );
            }
        }
        Ok(fates)
    }

    /// Publishes `messages[i]` for every `i` in `pending` and removes each index from `pending`
    /// once the broker confirmed it. On error, `pending` holds exactly the messages without a
    /// confirm: after a connection loss ([`caused_by_connection_loss`]) the caller republishes
    /// those on a new connection (the broker may have taken some whose confirm was lost with
    /// the connection: at-least-once, receivers deduplicate by id). Nacked messages are
    /// republished here, a few times; with lapin's recovery on, a broken channel is waited for.
    pub async fn publish_pending(
        &self,
        messages: &[Outgoing],
        pending: &mut Vec<usize>,
    ) -> Result<(), BrokerError> {
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let mut confirms = Vec::with_capacity(pending.len());
            let mut failed = Vec::new();
            let mut channel_error = None;
            for &i in pending.iter() {
                let m = &messages[i];
                if channel_error.is_some() {
                    // The channel is broken: the rest cannot go out on it either.
                    failed.push(i);
                    continue;
                }
                let result = self.send(m).await?;
                match result {
                    Ok(confirm) => confirms.push((i, confirm)),
                    Err(err) => {
                        failed.push(i);
                        channel_error.get_or_insert(err);
                    }
                }
            }
            let mut returned: Vec<(String, String)> = Vec::new();
            for (i, confirm) in confirms {
                match confirm.await {
                    Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => {}
                    Ok(Confirmation::Ack(Some(ret))) => {
                        // The return may be attached to another message's confirm: keep the id
                        // it names, not `i`.
                        let id = ret
                            .properties
                            .message_id()
                            .as_ref()
                            .map_or_else(|| "?".to_owned(), ToString::to_string);
                        returned.push((id, ret.reply_text.to_string()));
                    }
                    Ok(Confirmation::Nack(_)) => failed.push(i),
                    Err(err) => {
                        failed.push(i);
                        channel_error.get_or_insert(err);
                    }
                }
            }
            failed.sort_unstable();
            *pending = failed;
            if let Some((example, reply)) = returned.first() {
                let ids: HashSet<_> = returned.iter().map(|(id, _)| id).collect();
                return Err(BrokerError::Returned {
                    count: ids.len(),
                    reply: reply.clone(),
                    example: example.clone(),
                });
            }
            if pending.is_empty() {
                break;
            }
            if let Some(err) = channel_error {
                if attempt >= self.max_attempts || !is_connection_loss(&err) {
                    return Err(BrokerError::Channel {
                        context: "publishing",
                        source: err,
                    });
                }
                // Only a connection with lapin's recovery on comes back by itself; otherwise
                // this returns the error at once and the caller reconnects.
                debug!(error = %err, count = pending.len(), "publishing failed, waiting for the channel to recover");
                self.channel
                    .wait_for_recovery(err)
                    .await
                    .map_err(|source| BrokerError::Channel {
                        context: "publishing",
                        source,
                    })?;
            } else {
                if attempt >= self.max_attempts {
                    return Err(BrokerError::Nacked {
                        count: pending.len(),
                        attempts: attempt,
                    });
                }
                warn!(
                    count = pending.len(),
                    attempt, "broker nacked messages, republishing"
                );
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
        }
        debug!(count = messages.len(), "published and confirmed");
        Ok(())
    }
}

/// `name` checked as a name of `kind`, as lapin takes it.
fn short(kind: NameKind, name: &str) -> Result<ShortString, BrokerError> {
    Ok(AmqpName::new(kind, name)?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_do_not_leak_into_messages() {
        assert_eq!(
            redact_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact_url("amqp://host"), "amqp://host");
        assert_eq!(redact_url("amqp://guest@host"), "amqp://guest@host");
        // An unencoded '@' in the password, and a URL without "//".
        assert_eq!(redact_url("amqps://u:p@ss@host/v"), "amqps://u:***@host/v");
        assert_eq!(redact_url("amqp:u:secret@host"), "***@host");
    }
}
