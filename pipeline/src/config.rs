//! Settings shared by the three binaries, read with the `config` crate.
//!
//! Layers, later ones win: `config/default.toml` (compiled in, so a binary runs from any
//! directory), an optional `--config FILE`, `PIPELINE__<SECTION>__<KEY>` environment variables,
//! `AMQP_URL`, `AMQP_PASSWORD_FILE` and `KEY_STORE`, and finally the overrides a binary passes
//! for its flags.
//!
//! The broker password may come from the URL or from `broker.password_file`, which is read once
//! here and replaces the URL's password; [`BrokerSettings`]' `Debug` shows the URL redacted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::study::{Study, StudyError};

/// The compiled-in defaults (the repository's `config/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of the environment variables that override single settings (`PIPELINE__WORKER__THREADS`).
pub const ENV_PREFIX: &str = "PIPELINE";

/// Why the settings could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A layer could not be read or does not match the expected shape.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is present but unusable.
    #[error("configuration: {key}: {reason}")]
    Invalid {
        /// Dotted key of the offending setting.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The study section is inconsistent.
    #[error("configuration: study: {0}")]
    Study(#[from] StudyError),
}

/// Everything the binaries read from configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the broker is and how to connect to it.
    pub broker: BrokerSettings,
    /// Names and arguments of exchanges and queues.
    pub topology: TopologySettings,
    /// Options of the per-participant reply queues.
    #[serde(default)]
    pub reply_queues: ReplyQueueSettings,
    /// Batching, threads and result obfuscation of the worker.
    pub worker: WorkerSettings,
    /// Bounds on untrusted input.
    pub limits: Limits,
    /// Who may submit for whom (validated AMQP `user_id`).
    #[serde(default)]
    pub identity: IdentitySettings,
    /// Where participant keys are kept.
    pub key_store: KeyStoreSettings,
    /// Participant-side defaults (key size of `producer keygen` / `enroll`).
    pub participant: ParticipantSettings,
    /// The study: metrics and computed outputs.
    pub study: Study,
}

/// Connection settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    /// AMQP URI, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f` (env `AMQP_URL`). After loading,
    /// it holds the password of `password_file` when that is set: never log it unredacted
    /// ([`crate::broker::redact_url`]).
    pub url: String,
    /// A file whose first line is the broker password (env `AMQP_PASSWORD_FILE`): read when the
    /// settings are loaded, it replaces the password of `url`, so that the password need not be
    /// in a command line or an environment. Refused when group or others may read or write it.
    #[serde(default, with = "opt_path")]
    pub password_file: Option<PathBuf>,
    /// Per-consumer prefetch window.
    pub prefetch: u16,
    /// First part of every connection name shown in the management UI.
    pub connection_name: String,
    /// Longest time one connection attempt may take.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Attempts before producer and consumer give up.
    pub connect_attempts: u32,
    /// Delay before the first retry (doubling after each failure).
    #[serde(with = "duration")]
    pub retry_delay: Duration,
    /// After a connection is lost mid-run (broker restart, network failure), how long producer,
    /// consumer and worker keep trying to get it back before they exit with an error.
    #[serde(with = "duration", default = "default_reconnect_timeout")]
    pub reconnect_timeout: Duration,
    /// Trust anchors and client certificate of `amqps://` connections.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Lets a plain `amqp://` URL name a host that is not loopback. Off: such a URL is refused
    /// at start, because the broker password and every message would cross the network in
    /// clear. On: the connection is made and a warning logged.
    #[serde(default)]
    pub allow_insecure_plaintext: bool,
}

// By hand, not derived: the URL may hold the password.
impl std::fmt::Debug for BrokerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerSettings")
            .field("url", &crate::broker::redact_url(&self.url))
            .field("password_file", &self.password_file)
            .field("prefetch", &self.prefetch)
            .field("connection_name", &self.connection_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("connect_attempts", &self.connect_attempts)
            .field("retry_delay", &self.retry_delay)
            .field("reconnect_timeout", &self.reconnect_timeout)
            .field("tls", &self.tls)
            .field("allow_insecure_plaintext", &self.allow_insecure_plaintext)
            .finish()
    }
}

/// `url` parsed as lapin parses it, with a reason that never repeats the URL (amq-protocol-uri
/// quotes the whole URL, password included, in some of its errors).
pub fn parse_amqp_uri(url: &str) -> Result<lapin::uri::AMQPUri, String> {
    url.parse::<lapin::uri::AMQPUri>()
        .map_err(|reason| reason.replace(url, &crate::broker::redact_url(url)))
}

/// Reads a secret (a password) from the first line of `path`, refusing a file that group or
/// others may read or write (like ssh with private keys); `setting` names the setting or flag
/// in errors. The secret itself never appears in an error.
pub fn read_secret_file(path: &Path, setting: &'static str) -> Result<String, ConfigError> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;

    let invalid = |reason: String| ConfigError::Invalid {
        key: setting,
        reason,
    };
    let mut file = std::fs::File::open(path)
        .map_err(|e| invalid(format!("cannot open {}: {e}", path.display())))?;
    let mode = file
        .metadata()
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(invalid(format!(
            "{} may be read or written by group or others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(invalid(format!(
            "{}: the first line is empty",
            path.display()
        )));
    }
    Ok(line.to_owned())
}

impl BrokerSettings {
    /// Replaces the URL's password with the one in `password_file`, when that is set.
    fn apply_password_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.password_file else {
            return Ok(());
        };
        let password = read_secret_file(path, "broker.password_file")?;
        let invalid = |reason: String| ConfigError::Invalid {
            key: "broker.password_file",
            reason,
        };
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| invalid(format!("broker.url is not a URL: {e}")))?;
        if url.username().is_empty() {
            return Err(invalid(
                "broker.url names no user: write it as amqp(s)://USER@host:port/vhost".to_owned(),
            ));
        }
        // The url crate percent-encodes what a user-info part cannot hold (':', '@', '/', ...);
        // lapin decodes it again.
        url.set_password(Some(&password))
            .map_err(|()| invalid("broker.url cannot carry a password".to_owned()))?;
        self.url = url.into();
        Ok(())
    }
}

/// TLS settings of the broker connection (used with an `amqps://` URL only).
///
/// The server is verified against the system's trust store plus `ca_file`, and its certificate
/// must name the URL's host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CA certificate(s) that signed the broker's certificate, trusted in
    /// addition to the system roots (a private CA).
    #[serde(default, with = "opt_path")]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate (chain) presented to the broker, for RabbitMQ's EXTERNAL mechanism
    /// (`?auth_mechanism=external` in the URL) or a broker that requires client certificates.
    #[serde(default, with = "opt_path")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert`.
    #[serde(default, with = "opt_path")]
    pub client_key: Option<PathBuf>,
}

/// How the broker connection is protected, as decided by [`BrokerSettings::transport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `amqps://`: TLS.
    Tls,
    /// `amqp://` to a loopback address: nothing leaves the host.
    LoopbackPlaintext,
    /// `amqp://` to another host, allowed by `broker.allow_insecure_plaintext` (warned about).
    InsecurePlaintext,
}

impl BrokerSettings {
    /// Decides how the connection to `url` is protected, refusing a plain URL to a host that is
    /// not loopback unless `allow_insecure_plaintext` is set, and TLS settings on a plain URL
    /// (they would silently not be used).
    pub fn transport(&self) -> Result<Transport, ConfigError> {
        let uri = parse_amqp_uri(&self.url).map_err(|reason| ConfigError::Invalid {
            key: "broker.url",
            reason: format!("not an AMQP URI: {reason}"),
        })?;
        if uri.scheme == lapin::uri::AMQPScheme::AMQPS {
            return Ok(Transport::Tls);
        }
        if self.tls.ca_file.is_some() || self.tls.client_cert.is_some() {
            return Err(ConfigError::Invalid {
                key: "broker.tls",
                reason: "TLS files are set but broker.url is a plain amqp:// URL: use amqps://"
                    .to_owned(),
            });
        }
        // The host as written, not lapin's parse: amq-protocol-uri reads an IPv6 literal as
        // "localhost" (it only keeps domain names), which would make any IPv6 host look local.
        let host = url_host(&self.url);
        if is_loopback_host(host) {
            Ok(Transport::LoopbackPlaintext)
        } else if self.allow_insecure_plaintext {
            Ok(Transport::InsecurePlaintext)
        } else {
            Err(ConfigError::Invalid {
                key: "broker.url",
                reason: format!(
                    "plain amqp:// to {host} would send the password and every message \
                     unencrypted: use amqps:// (see broker.tls), or set \
                     broker.allow_insecure_plaintext = true"
                ),
            })
        }
    }
}

/// The host part of `url` as written (an IPv6 literal keeps its brackets).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        host_port
            .find(']')
            .map_or(host_port, |end| &host_port[..=end])
    } else {
        host_port.split(':').next().unwrap_or("")
    }
}

/// Whether `host` (as in a URL: an IPv6 address in brackets) is this machine's loopback:
/// 127.0.0.0/8, ::1 or the name `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

fn default_declare() -> bool {
    true
}

fn default_reconnect_timeout() -> Duration {
    Duration::from_secs(120)
}

/// Names of exchanges and queues (before the prefix is applied) and queue arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySettings {
    /// Whether the binaries declare the exchanges and queues they use (true: a development
    /// broker, a user with configure rights) or only check that they exist with passive
    /// declares (false: the operator provisioned them; no configure right needed).
    #[serde(default = "default_declare")]
    pub declare: bool,
    /// Prepended to every name: separates tests and studies on one broker.
    pub prefix: String,
    /// Direct exchange submissions are published to.
    pub readings_exchange: String,
    /// Routing key of submissions.
    pub submission_routing_key: String,
    /// Quorum work queue.
    pub work_queue: String,
    /// Deliveries before the broker dead-letters a failing message.
    pub delivery_limit: i32,
    /// Longest work queue; publishes beyond are refused.
    pub work_queue_max_length: i64,
    /// Exchange rejected submissions are dead-lettered to.
    pub dead_exchange: String,
    /// Queue that keeps rejected submissions.
    pub dead_queue: String,
    /// Direct exchange results are published to.
    pub results_exchange: String,
    /// Alternate exchange of `results_exchange`: catches results nobody can receive.
    pub unroutable_exchange: String,
    /// Queue that keeps unroutable results.
    pub unroutable_queue: String,
    /// Reply queue of participant P is `<prefix><reply_queue_prefix>P`.
    pub reply_queue_prefix: String,
    /// Longest `dead_queue` (messages); publishes beyond are refused (`x-overflow =
    /// reject-publish`), so a flood of bad messages cannot fill the broker.
    #[serde(default = "default_dead_queue_max_length")]
    pub dead_queue_max_length: i64,
    /// Largest total of message bodies in `dead_queue` (bytes), with reject-publish.
    #[serde(default = "default_dead_queue_max_bytes")]
    pub dead_queue_max_bytes: i64,
    /// Longest `unroutable_queue` (messages), with reject-publish.
    #[serde(default = "default_dead_queue_max_length")]
    pub unroutable_queue_max_length: i64,
    /// Largest total of message bodies in `unroutable_queue` (bytes), with reject-publish.
    #[serde(default = "default_dead_queue_max_bytes")]
    pub unroutable_queue_max_bytes: i64,
}

fn default_dead_queue_max_length() -> i64 {
    100_000
}

fn default_dead_queue_max_bytes() -> i64 {
    1 << 30
}

/// Who may submit for whom. RabbitMQ checks a message's `user_id` property against the
/// publishing connection's user; the worker binds every submission to that user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySettings {
    /// Development only: every client shares one broker user, so `user_id` proves nothing. The
    /// worker then accepts submissions without `user_id` for any participant and answers to
    /// `reply_to` (the behaviour before identities were checked), and warns at start.
    pub insecure_shared_user: bool,
    /// Coordinators allowed to submit on their cohort's behalf: broker user -> cohort name `C`.
    /// A delegate may submit only for the cohort's members `C-<n>` (the participants whose
    /// reply queues `admin coordinator C` lets it read), for nobody else: otherwise one cohort's
    /// coordinator could put forged results into any participant's queue. Results still go to
    /// the participant's own reply queue. Never RabbitMQ's `impersonator` tag.
    pub delegates: BTreeMap<String, String>,
}

impl IdentitySettings {
    /// True when `user` is a delegate whose cohort `C` has `participant` as a member (`C-<n>`).
    pub fn delegate_may_submit_for(&self, user: &str, participant: &str) -> bool {
        self.delegates.get(user).is_some_and(|cohort| {
            !cohort.is_empty()
                && participant
                    .strip_prefix(cohort.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    }
}

/// Options of per-participant reply queues.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyQueueSettings {
    /// `x-expires` of reply queues; `None` (the default) keeps them for ever. RabbitMQ deletes an
    /// expired queue together with the results in it.
    #[serde(default, with = "opt_duration")]
    pub expires: Option<Duration>,
    /// `x-max-length` of every reply queue (reject-publish beyond); 0 = unbounded.
    #[serde(default = "default_reply_max_length")]
    pub max_length: i64,
    /// `x-max-length-bytes` of every reply queue (reject-publish beyond); 0 = unbounded.
    #[serde(default = "default_reply_max_bytes")]
    pub max_bytes: i64,
}

impl Default for ReplyQueueSettings {
    fn default() -> Self {
        ReplyQueueSettings {
            expires: None,
            max_length: default_reply_max_length(),
            max_bytes: default_reply_max_bytes(),
        }
    }
}

fn default_reply_max_length() -> i64 {
    10_000
}

fn default_reply_max_bytes() -> i64 {
    64 << 20
}

/// Worker behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Deliveries per batch.
    pub batch_size: usize,
    /// Longest wait for a batch to fill.
    #[serde(with = "duration")]
    pub batch_max_wait: Duration,
    /// rayon threads; 0 = one per core.
    pub threads: usize,
    /// Re-randomise result ciphertexts before publishing them.
    pub obfuscate_results: bool,
    /// Pack a submission's outputs into as few ciphertexts as fit (result format 2); false
    /// sends one ciphertext per output (format 1).
    pub pack_results: bool,
    /// Longest time to finish the deliveries in hand after SIGINT/SIGTERM.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
}

/// Smallest `limits.key_bits_min` the configuration accepts (only tests go below 2048).
pub const MIN_KEY_BITS: u64 = 128;

/// Bounds on untrusted input, checked before any expensive work: the body size before the body
/// is parsed, the number of readings and the key size before any big-number arithmetic (the key
/// size is checked on the bit length of n, before trial division or n² is computed; a modulus
/// longer than [`paillier::json::MAX_DECIMAL_DIGITS`] digits is refused while it is read).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted message body.
    pub max_body_bytes: usize,
    /// Most readings in one submission, over all metrics.
    pub max_readings: usize,
    /// Smallest accepted public key (bits); at least [`MIN_KEY_BITS`].
    pub key_bits_min: u64,
    /// Largest accepted public key (bits); at most [`paillier::json::MAX_KEY_BITS`].
    pub key_bits_max: u64,
    /// Assumed bound on fresh readings: |mantissa| < 2^reading_mantissa_bits. Result packing
    /// derives every slot's width from it, or from the metric's declared range where that is
    /// tighter ([`crate::study::Metric::reading_bound`]; see [`crate::packing`]).
    pub reading_mantissa_bits: u32,
    /// Most work one message may cost, in units of one honest submission at the study's key
    /// size (`participant.key_bits`): see `worker::cost`. Estimated from public data (modulus
    /// length, number of values, exponent spread) before any exponentiation; a costlier message
    /// is refused with the kind `too_costly`.
    #[serde(default = "default_max_work")]
    pub max_work: f64,
}

fn default_max_work() -> f64 {
    24.0
}

/// Participant-side defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantSettings {
    /// Modulus length of keys `producer keygen` and `producer enroll` create when `--bits` is
    /// not given: one of [`paillier::GENERATED_KEY_BITS`].
    pub key_bits: u64,
}

/// Key store location.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyStoreSettings {
    /// Directory of key files (env `KEY_STORE`).
    pub dir: PathBuf,
}

/// Where the layers come from besides the compiled-in defaults.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A TOML file overriding the defaults (`--config FILE`).
    pub file: Option<PathBuf>,
    /// Read `PIPELINE__*`, `AMQP_URL`, `AMQP_PASSWORD_FILE` and `KEY_STORE` (on unless a test
    /// wants isolation).
    pub ignore_environment: bool,
    /// Final overrides, dotted key and value, e.g. `("broker.url", "amqp://...")`.
    pub overrides: Vec<(String, String)>,
}

impl LoadOptions {
    /// Adds an override for `key` when `value` is present.
    pub fn set(mut self, key: &str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.overrides.push((key.to_owned(), value.to_string()));
        }
        self
    }
}

impl Settings {
    /// Loads and checks the settings.
    pub fn load(options: &LoadOptions) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(file) = &options.file {
            builder = builder.add_source(config::File::from(file.as_path()).required(true));
        }
        if !options.ignore_environment {
            builder = builder.add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .separator("__")
                    .try_parsing(true),
            );
            builder = builder
                .set_override_option("broker.url", non_empty_env("AMQP_URL"))?
                .set_override_option("broker.password_file", non_empty_env("AMQP_PASSWORD_FILE"))?
                .set_override_option("key_store.dir", non_empty_env("KEY_STORE"))?;
        }
        for (key, value) in &options.overrides {
            builder = builder.set_override(key.as_str(), value.as_str())?;
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.broker.apply_password_file()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The compiled-in defaults alone (no file, no environment): what tests start from.
    pub fn defaults() -> Settings {
        Settings::load(&LoadOptions {
            ignore_environment: true,
            ..LoadOptions::default()
        })
        .expect("the compiled-in config/default.toml is valid (checked by a unit test)")
    }

    /// Checks values a type cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.broker.prefetch == 0 {
            return invalid("broker.prefetch", "must be at least 1 (0 means unlimited)");
        }
        if self.broker.connect_attempts == 0 {
            return invalid("broker.connect_attempts", "must be at least 1");
        }
        if self.broker.reconnect_timeout.is_zero() {
            return invalid("broker.reconnect_timeout", "must be longer than 0s");
        }
        if self.broker.tls.client_cert.is_some() != self.broker.tls.client_key.is_some() {
            return invalid(
                "broker.tls.client_cert",
                "broker.tls.client_cert and broker.tls.client_key go together: set both or neither",
            );
        }
        self.broker.transport()?;
        if self.topology.delivery_limit < 1 {
            return invalid(
                "topology.delivery_limit",
                "must be at least 1 (RabbitMQ 3.x drops messages with -1)",
            );
        }
        if self.topology.work_queue_max_length < 1 {
            return invalid("topology.work_queue_max_length", "must be at least 1");
        }
        if self.worker.batch_size == 0 {
            return invalid("worker.batch_size", "must be at least 1");
        }
        if self.limits.max_body_bytes == 0 {
            return invalid("limits.max_body_bytes", "must be at least 1");
        }
        if self.limits.max_readings == 0 {
            return invalid("limits.max_readings", "must be at least 1");
        }
        if self.limits.key_bits_min < MIN_KEY_BITS {
            // A modulus of a few bits is no key, and n = 1 would reach arithmetic that assumes n > 1.
            return invalid(
                "limits.key_bits_min",
                "must be at least 128 (and 2048 or more outside tests)",
            );
        }
        if self.limits.key_bits_max > paillier::json::MAX_KEY_BITS {
            return invalid(
                "limits.key_bits_max",
                "must be at most 8192: larger ciphertexts exceed what the JSON number reader accepts",
            );
        }
        if !(self.limits.max_work.is_finite() && self.limits.max_work >= 1.0) {
            return invalid(
                "limits.max_work",
                "must be at least 1 (one honest submission at the study's key size)",
            );
        }
        if self.topology.dead_queue_max_length < 1
            || self.topology.dead_queue_max_bytes < 1
            || self.topology.unroutable_queue_max_length < 1
            || self.topology.unroutable_queue_max_bytes < 1
        {
            return invalid(
                "topology.dead_queue_max_length",
                "queue bounds (dead_queue_max_*, unroutable_queue_max_*) must be at least 1",
            );
        }
        if self.reply_queues.max_length < 0 || self.reply_queues.max_bytes < 0 {
            return invalid(
                "reply_queues.max_length",
                "reply queue bounds must not be negative (0 = unbounded)",
            );
        }
        if !(1..=1024).contains(&self.limits.reading_mantissa_bits) {
            return invalid("limits.reading_mantissa_bits", "must be between 1 and 1024");
        }
        if !paillier::GENERATED_KEY_BITS.contains(&self.participant.key_bits) {
            return invalid("participant.key_bits", "must be 2048, 3072 or 4096");
        }
        if self.limits.key_bits_min > self.limits.key_bits_max {
            return invalid("limits.key_bits_min", "is larger than limits.key_bits_max");
        }
        if let Some(expires) = self.reply_queues.expires
            && (expires.as_millis() < 1 || expires.as_millis() > i32::MAX as u128)
        {
            return invalid(
                "reply_queues.expires",
                "must be between 1ms and about 24 days (x-expires is a 32-bit millisecond count)",
            );
        }
        self.study.validate()?;
        Ok(())
    }

    /// Number of rayon threads the worker should use (resolving 0 = all cores).
    pub fn worker_threads(&self) -> usize {
        if self.worker.threads > 0 {
            self.worker.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// The key store directory.
    pub fn key_store_dir(&self) -> &Path {
        &self.key_store.dir
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Serde helpers for humantime durations ("250ms", "5s").
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for an optional humantime duration; an empty string also means "none".
mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        match text.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) => humantime::parse_duration(t)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Serde helpers for an optional path; an empty string also means "none" (so that an
/// environment variable can unset a path a file set).
mod opt_path {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        Ok(text.filter(|t| !t.trim().is_empty()).map(PathBuf::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_match_the_issue() {
        let s = Settings::defaults();
        assert_eq!(s.topology.readings_exchange, "readings");
        assert_eq!(s.topology.work_queue, "readings.work");
        assert_eq!(s.topology.results_exchange, "results");
        assert!(s.worker.obfuscate_results);
        assert!(s.worker.pack_results);
        assert_eq!(s.limits.reading_mantissa_bits, 64);
        assert_eq!(s.participant.key_bits, 3072);
        assert_eq!(s.worker.batch_max_wait, Duration::from_millis(20));
        assert!(s.reply_queues.expires.is_none());
        assert_eq!(s.study.metrics.len(), 2);
    }

    #[test]
    fn overrides_win_and_are_typed() {
        let s = Settings::load(&LoadOptions {
            ignore_environment: true,
            overrides: vec![
                ("broker.prefetch".into(), "7".into()),
                ("reply_queues.expires".into(), "2h".into()),
                ("worker.obfuscate_results".into(), "false".into()),
            ],
            ..LoadOptions::default()
        })
        .unwrap();
        assert_eq!(s.broker.prefetch, 7);
        assert_eq!(s.reply_queues.expires, Some(Duration::from_secs(7200)));
        assert!(!s.worker.obfuscate_results);
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let err = Settings::load(&LoadOptions {
            ignore_environment: true,
            overrides: vec![("topology.delivery_limit".into(), "-1".into())],
            ..LoadOptions::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("topology.delivery_limit"), "{err}");
    }

    #[test]
    fn limits_outside_what_the_worker_can_enforce_are_refused() {
        let load = |key: &str, value: &str| {
            Settings::load(&LoadOptions {
                ignore_environment: true,
                overrides: vec![(key.into(), value.into())],
                ..LoadOptions::default()
            })
        };
        for (key, value) in [
            ("limits.max_body_bytes", "0"),
            ("limits.max_readings", "0"),
            ("limits.key_bits_min", "1"),
            ("limits.key_bits_min", "127"),
            ("limits.key_bits_max", "8193"),
            ("limits.key_bits_min", "8193"),
        ] {
            let err = load(key, value).expect_err(&format!("{key} = {value} accepted"));
            assert!(
                err.to_string().contains("limits.key_bits") || err.to_string().contains(key),
                "{key}: {err}"
            );
        }
        let s = load("limits.key_bits_min", "128").unwrap();
        assert_eq!(s.limits.key_bits_min, MIN_KEY_BITS);
        let s = load("limits.key_bits_max", "8192").unwrap();
        assert_eq!(s.limits.key_bits_max, paillier::json::MAX_KEY_BITS);
    }

    fn load_with(overrides: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load(&LoadOptions {
            ignore_environment: true,
            overrides: overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..LoadOptions::default()
        })
    }

    #[test]
    fn plain_amqp_to_loopback_is_allowed() {
        for url in [
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            "amqp://guest:guest@127.8.9.10:5672/%2f",
            "amqp://guest:guest@localhost:5672/%2f",
            "amqp://guest:guest@LOCALHOST/%2f",
            "amqp://guest:guest@[::1]:5672/%2f",
        ] {
            let s = load_with(&[("broker.url", url)]).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                s.broker.transport().unwrap(),
                Transport::LoopbackPlaintext,
                "{url}"
            );
        }
    }

    #[test]
    fn plain_amqp_to_another_host_is_refused_naming_the_setting() {
        for url in [
            "amqp://guest:secret@rabbitmq:5672/%2f",
            "amqp://guest:secret@10.0.0.7:5672/%2f",
            "amqp://guest:secret@[2001:db8::1]:5672/%2f",
            "amqp://guest:secret@localhost.example.org/%2f",
            "amqp://guest:secret@128.0.0.1/%2f",
        ] {
            let err = load_with(&[("broker.url", url)])
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"))
                .to_string();
            assert!(
                err.contains("broker.allow_insecure_plaintext"),
                "{url}: {err}"
            );
            assert!(err.contains("amqps://"), "{url}: {err}");
            assert!(!err.contains("secret"), "the password leaked: {err}");
            assert!(!err.contains('\n'), "not one line: {err}");
        }
    }

    #[test]
    fn plain_amqp_to_another_host_is_allowed_when_explicitly_insecure() {
        let s = load_with(&[
            ("broker.url", "amqp://guest:guest@rabbitmq:5672/%2f"),
            ("broker.allow_insecure_plaintext", "true"),
        ])
        .unwrap();
        assert_eq!(s.broker.transport().unwrap(), Transport::InsecurePlaintext);
    }

    #[test]
    fn amqps_to_any_host_is_tls() {
        let s = load_with(&[
            ("broker.url", "amqps://guest:guest@rabbitmq:5671/%2f"),
            ("broker.tls.ca_file", "/etc/ca.pem"),
            ("broker.tls.client_cert", "/etc/client.pem"),
            ("broker.tls.client_key", "/etc/client.key"),
        ])
        .unwrap();
        assert_eq!(s.broker.transport().unwrap(), Transport::Tls);
        assert_eq!(s.broker.tls.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert!(!s.broker.allow_insecure_plaintext);
    }

    #[test]
    fn tls_settings_that_cannot_be_used_are_refused() {
        let err = load_with(&[
            ("broker.url", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ("broker.tls.ca_file", "/etc/ca.pem"),
        ])
        .expect_err("TLS files with a plain URL");
        assert!(err.to_string().contains("broker.tls"), "{err}");
        let err = load_with(&[
            ("broker.url", "amqps://127.0.0.1:5671/%2f"),
            ("broker.tls.client_cert", "/etc/client.pem"),
        ])
        .expect_err("a certificate without its key");
        assert!(err.to_string().contains("broker.tls.client_key"), "{err}");
        // An empty value (e.g. from the environment) means "not set".
        let s = load_with(&[("broker.tls.ca_file", "")]).unwrap();
        assert!(s.broker.tls.ca_file.is_none());
    }

    #[test]
    fn a_file_layer_overrides_only_what_it_sets() {
        let dir = std::env::temp_dir().join(format!("pipeline-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("site.toml");
        std::fs::write(&file, "[worker]\nbatch_size = 3\n").unwrap();
        let s = Settings::load(&LoadOptions {
            file: Some(file),
            ignore_environment: true,
            ..LoadOptions::default()
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(s.worker.batch_size, 3);
        assert_eq!(s.worker.batch_max_wait, Duration::from_millis(20));
    }

    fn secret_file(mode: u32, text: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("pipeline-pw-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, file)
    }

    #[test]
    fn a_password_file_replaces_the_urls_password() {
        // Characters a URL's user-info cannot hold as they are: they must come back intact.
        let (dir, file) = secret_file(0o600, "p@ss:w/rd%?#\nsecond line ignored\n");
        let s = load_with(&[
            (
                "broker.url",
                "amqp://alice:old@127.0.0.1:5672/%2f?heartbeat=10",
            ),
            ("broker.password_file", file.to_str().unwrap()),
        ])
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let uri = parse_amqp_uri(&s.broker.url).unwrap();
        assert_eq!(uri.authority.userinfo.username, "alice");
        assert_eq!(uri.authority.userinfo.password, "p@ss:w/rd%?#");
        assert_eq!(uri.vhost, "/");
        assert_eq!(uri.query.heartbeat, Some(10));
        let shown = format!("{:?}", s.broker);
        assert!(
            !shown.contains("rd%") && !shown.contains("p%40ss"),
            "{shown}"
        );
    }

    #[test]
    fn a_password_file_others_may_read_is_refused() {
        let (dir, file) = secret_file(0o640, "secret-pw\n");
        let err = load_with(&[("broker.password_file", file.to_str().unwrap())]).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        let text = err.to_string();
        assert!(text.contains("chmod 600"), "{text}");
        assert!(!text.contains("secret-pw"), "{text}");
    }

    #[test]
    fn a_password_file_needs_a_user_in_the_url() {
        let (dir, file) = secret_file(0o600, "secret-pw\n");
        let err = load_with(&[
            ("broker.url", "amqp://127.0.0.1:5672/%2f"),
            ("broker.password_file", file.to_str().unwrap()),
        ])
        .unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.to_string().contains("names no user"), "{err}");
    }

    #[test]
    fn an_unparsable_url_is_reported_without_its_password() {
        // amq-protocol-uri quotes such a URL whole in its error.
        let err = load_with(&[("broker.url", "amqp:alice:secret-pw@127.0.0.1")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("broker.url"), "{text}");
        assert!(!text.contains("secret-pw"), "{text}");
    }

    #[test]
    fn debug_output_redacts_the_password() {
        let s = load_with(&[("broker.url", "amqp://alice:secret-pw@127.0.0.1:5672/%2f")]).unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains("alice:***@127.0.0.1"), "{shown}");
        assert!(!shown.contains("secret-pw"), "{shown}");
    }
}
