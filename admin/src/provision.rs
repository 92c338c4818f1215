//! Provisioning: the topology, users of each role with their permissions, participants' reply
//! queues, and the credentials file. Every operation is idempotent and resumable: it first reads
//! what the broker has (a few list requests), then creates only what is missing.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use lapin::uri::AMQPUri;
use pipeline::broker::{self, BrokerError, Retry};
use pipeline::config::BrokerSettings;
use pipeline::topology::TopologyError;
use pipeline::{ParticipantId, Topology};
use serde::Serialize;
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::api::{AdminCredentials, ApiError, ManagementApi, NewUser, PermissionEntry, UserInfo};
use crate::credentials::{Credential, CredentialsError, CredentialsFile, generate_password};
use crate::roles::{Cohort, PRIVILEGED_TAGS, Permissions, Role, TAG_PREFIX};

/// Users created and permissions set per definitions import: large enough that 1,000
/// participants are one request, small enough that one request stays a few hundred KB.
pub const IMPORT_CHUNK: usize = 1000;

impl From<BrokerError> for ProvisionError {
    fn from(e: BrokerError) -> Self {
        Self::Broker(Box::new(e))
    }
}

impl From<TopologyError> for ProvisionError {
    fn from(e: TopologyError) -> Self {
        Self::Topology(Box::new(e))
    }
}

/// Why provisioning stopped.
#[derive(Debug, Error)]
pub enum ProvisionError {
    /// The management API failed or refused.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The credentials file could not be used.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The admin's AMQP connection failed (boxed: the broker's errors are large, and this enum
    /// travels in every `Result` of the crate).
    #[error("AMQP as the admin: {0}")]
    Broker(Box<BrokerError>),
    /// A declaration over AMQP failed.
    #[error("AMQP as the admin: {0}")]
    Topology(Box<TopologyError>),
    /// The vhost is missing.
    #[error("vhost {0:?} does not exist: run `admin --vhost {0} topology` first")]
    NoVhost(String),
    /// A shared exchange or queue is missing.
    #[error("no {what} {name:?} on vhost {vhost:?}: run `admin --vhost {vhost} topology` first")]
    NoTopology {
        /// Vhost.
        vhost: String,
        /// "exchange" or "queue".
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// A user exists with another role or with management rights: never adopted or removed.
    #[error(
        "user {user:?} exists with tags [{tags}], not as a {wanted}: refusing to change or remove it (choose another name)"
    )]
    RoleConflict {
        /// User name.
        user: String,
        /// Its tags.
        tags: String,
        /// The role asked for.
        wanted: Role,
    },
    /// The broker URL cannot be parsed.
    #[error("broker URL: {0}")]
    AmqpUrl(String),
    /// A declaration task ended abnormally (panicked or was cancelled).
    #[error("declaring reply queues: {0}")]
    Task(String),
    /// Invalid input (an id, a CSV file).
    #[error("{0}")]
    Input(String),
}

impl ProvisionError {
    /// The process exit status for this error: 2 bad input, 3 refused by the broker (401/403),
    /// 4 something that must exist first is missing, 1 anything else.
    pub fn exit_status(&self) -> u8 {
        match self {
            ProvisionError::Input(_)
            | ProvisionError::RoleConflict { .. }
            | ProvisionError::AmqpUrl(_)
            | ProvisionError::Credentials(CredentialsError::Refused { .. }) => 2,
            ProvisionError::Api(ApiError::Unauthorized { .. } | ApiError::Forbidden { .. }) => 3,
            ProvisionError::NoVhost(_)
            | ProvisionError::NoTopology { .. }
            | ProvisionError::Api(ApiError::NotFound { .. }) => 4,
            _ => 1,
        }
    }
}

/// What a command did, for people (logged) and scripts (`--json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The command.
    pub command: String,
    /// The vhost.
    pub vhost: String,
    /// Whether `topology` created the vhost.
    pub vhost_created: bool,
    /// Users created by this run.
    pub users_created: usize,
    /// Users that existed and kept their password.
    pub users_existing: usize,
    /// Existing users given a new password (`--reset-password`).
    pub passwords_reset: usize,
    /// Users whose permissions were set or corrected (`remove`: removed from this vhost).
    pub permissions_set: usize,
    /// Reply queues declared and bound by this run.
    pub queues_declared: usize,
    /// Reply queues that existed with their binding.
    pub queues_existing: usize,
    /// Users deleted.
    pub users_removed: usize,
    /// Queues deleted.
    pub queues_removed: usize,
    /// The credentials file, when the command may write one.
    pub credentials_file: Option<PathBuf>,
    /// Rows appended to it by this run.
    pub credentials_written: usize,
    /// Wall time of the command.
    pub seconds: f64,
}

/// One user's role and permissions on the vhost, for `show`.
#[derive(Debug, Clone, Serialize)]
pub struct UserAccess {
    /// User name.
    pub user: String,
    /// The role its tag marks, if any.
    pub role: Option<Role>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its permissions.
    #[serde(flatten)]
    pub permissions: Permissions,
}

/// The study on a broker: vhost, names, AMQP address.
#[derive(Debug, Clone)]
pub struct Study {
    /// The vhost.
    pub vhost: String,
    /// Exchange and queue names (prefix applied) and queue arguments.
    pub topology: Topology,
    /// Connection settings; its URL gives scheme, host and port (its user, password and vhost
    /// are replaced by each user's own).
    pub broker: BrokerSettings,
}

/// Provisions one study as the admin.
pub struct Provisioner {
    api: ManagementApi,
    admin: AdminCredentials,
    study: Study,
    base_uri: AMQPUri,
}

impl Provisioner {
    /// A provisioner; checks the broker URL but contacts nothing yet.
    pub fn new(admin: AdminCredentials, study: Study) -> Result<Provisioner, ProvisionError> {
        let base_uri = pipeline::config::parse_amqp_uri(&study.broker.url).map_err(|err| {
            ProvisionError::AmqpUrl(format!(
                "{err} (in {})",
                broker::redact_url(&study.broker.url)
            ))
        })?;
        Ok(Provisioner {
            api: ManagementApi::new(&admin),
            admin,
            study,
            base_uri,
        })
    }

    /// The management API client.
    pub fn api(&self) -> &ManagementApi {
        &self.api
    }

    /// The study.
    pub fn study(&self) -> &Study {
        &self.study
    }

    fn summary(&self, command: &str) -> Summary {
        Summary {
            command: command.to_owned(),
            vhost: self.study.vhost.clone(),
            ..Summary::default()
        }
    }

    /// `user`'s AMQP URL on the study's vhost (scheme, host, port and options of the broker URL).
    pub fn amqp_url(&self, user: &str, password: &str) -> String {
        let authority = &self.base_uri.authority;
        format!(
            "{}://{}:{}@{}:{}/{}",
            self.base_uri.scheme,
            url_part(user),
            url_part(password),
            authority.host,
            authority.port,
            url_part(&self.study.vhost)
        )
    }

    async fn connect_admin(&self) -> Result<lapin::Connection, ProvisionError> {
        let mut settings = self.study.broker.clone();
        settings.url = self.amqp_url(&self.admin.user, &self.admin.password);
        let attempts = settings.connect_attempts;
        Ok(broker::connect(&settings, "admin", Retry::Bounded(attempts), false).await?)
    }

    async fn channel(conn: &lapin::Connection) -> Result<lapin::Channel, ProvisionError> {
        conn.create_channel()
            .await
            .map_err(|source| BrokerError::Channel {
                context: "opening a channel as the admin",
                source,
            })
            .map_err(Into::into)
    }

    fn require_vhost(&self) -> Result<(), ProvisionError> {
        if self.api.vhost_exists(&self.study.vhost)? {
            Ok(())
        } else {
            Err(ProvisionError::NoVhost(self.study.vhost.clone()))
        }
    }

    fn require_exchange(&self, name: &str) -> Result<(), ProvisionError> {
        if self.api.exchange_exists(&self.study.vhost, name)? {
            Ok(())
        } else {
            Err(ProvisionError::NoTopology {
                vhost: self.study.vhost.clone(),
                what: "exchange",
                name: name.to_owned(),
            })
        }
    }

    fn require_queue(&self, name: &str) -> Result<(), ProvisionError> {
        if self.api.queue_exists(&self.study.vhost, name)? {
            Ok(())
        } else {
            Err(ProvisionError::NoTopology {
                vhost: self.study.vhost.clone(),
                what: "queue",
                name: name.to_owned(),
            })
        }
    }

    /// Creates the vhost when missing (and gives the admin full rights on it, nobody else), then
    /// declares the shared exchanges, queues and bindings over AMQP with
    /// [`Topology::declare`]: the very declaration the binaries use, so the arguments agree.
    pub async fn topology(&self) -> Result<Summary, ProvisionError> {
        let started = Instant::now();
        let mut summary = self.summary("topology");
        self.api.check_admin()?;
        if !self.api.vhost_exists(&self.study.vhost)? {
            self.api.create_vhost(&self.study.vhost)?;
            let all = Permissions {
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            };
            self.api
                .set_permissions(&self.study.vhost, &self.admin.user, &all)?;
            summary.vhost_created = true;
            info!(vhost = %self.study.vhost, admin = %self.admin.user, "vhost created; the admin has full rights on it");
        }
        let conn = self.connect_admin().await?;
        let ch = Self::channel(&conn).await?;
        let declared = self.study.topology.declare(&ch).await;
        broker::close_connection(&conn, "topology declared").await;
        declared?;
        info!(vhost = %self.study.vhost, "topology declared (exchanges, work, dead-letter and unroutable queues)");
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Participants `ids` (one, or a whole cohort): reply queue `results.<id>` bound to the
    /// results exchange, user `<id>` with [`Permissions::participant`], new passwords appended
    /// to `credentials` before the users exist.
    pub async fn participants(
        &self,
        command: &str,
        ids: &[ParticipantId],
        credentials: &mut CredentialsFile,
        reset_password: bool,
    ) -> Result<Summary, ProvisionError> {
        let started = Instant::now();
        let mut summary = self.summary(command);
        let vhost = &self.study.vhost;
        let topology = &self.study.topology;
        self.require_vhost()?;
        self.require_exchange(&topology.results_exchange)?;
        let mut seen = HashSet::new();
        if let Some(dup) = ids.iter().find(|id| !seen.insert(*id)) {
            return Err(ProvisionError::Input(format!(
                "participant {dup} is listed twice"
            )));
        }
        let users = self.api.users()?;
        for id in ids {
            check_role(&users, id.as_str(), Role::Participant)?;
        }

        if let [id] = ids {
            self.note_cohort(id, &users)?;
        }

        // Reply queues first: a participant that can log in finds its queue there.
        let queues: HashSet<String> = self.api.queue_names(vhost)?.into_iter().collect();
        let bindings: HashSet<(String, String)> = self
            .api
            .bindings_from(vhost, &topology.results_exchange)?
            .into_iter()
            .collect();
        let missing: Vec<&ParticipantId> = ids
            .iter()
            .filter(|id| {
                let q = topology.reply_queue(id);
                !(queues.contains(&q) && bindings.contains(&(q.clone(), q)))
            })
            .collect();
        summary.queues_existing = ids.len() - missing.len();
        if !missing.is_empty() {
            let t = Instant::now();
            let conn = self.connect_admin().await?;
            let outcome = declare_reply_queues(&conn, topology, &missing).await;
            broker::close_connection(&conn, "reply queues declared").await;
            summary.queues_declared = outcome?;
            info!(
                count = missing.len(),
                seconds = t.elapsed().as_secs_f64(),
                "reply queues declared and bound"
            );
        }

        let wanted: Vec<(String, Permissions)> = ids
            .iter()
            .map(|id| (id.to_string(), Permissions::participant(topology, id)))
            .collect();
        self.ensure_users(
            Role::Participant,
            &wanted,
            credentials,
            reset_password,
            &users,
            &mut summary,
        )?;
        summary.credentials_file = Some(credentials.path().to_owned());
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Says so when a participant provisioned on its own is, by its id `<C>-<n>`, a member of a
    /// cohort whose coordinator exists: that coordinator can read its results.
    fn note_cohort(
        &self,
        id: &ParticipantId,
        users: &BTreeMap<String, UserInfo>,
    ) -> Result<(), ProvisionError> {
        let Some(cohort) = id
            .as_str()
            .rsplit_once('-')
            .and_then(|(name, _)| Cohort::new(name).ok())
            .filter(|c| c.contains(id))
        else {
            return Ok(());
        };
        let read = Permissions::coordinator(&self.study.topology, &cohort).read;
        let coordinators: Vec<String> = self
            .api
            .permissions(&self.study.vhost)?
            .into_values()
            .filter(|p| p.read == read)
            .filter(|p| {
                users
                    .get(&p.user)
                    .is_some_and(|u| u.tags.iter().any(|t| t == Role::Coordinator.tag()))
            })
            .map(|p| p.user)
            .collect();
        for coordinator in coordinators {
            warn!(participant = %id, %cohort, %coordinator, "the participant is a member of this cohort by its id: the cohort's coordinator can read its results");
        }
        Ok(())
    }

    /// A worker user with [`Permissions::worker`].
    pub fn worker(
        &self,
        user: &str,
        credentials: &mut CredentialsFile,
        reset_password: bool,
    ) -> Result<Summary, ProvisionError> {
        let started = Instant::now();
        let mut summary = self.summary("worker");
        let topology = &self.study.topology;
        valid_user_name(user)?;
        self.require_vhost()?;
        self.require_queue(&topology.work_queue)?;
        self.require_exchange(&topology.results_exchange)?;
        self.require_exchange(&topology.dead_exchange)?;
        let users = self.api.users()?;
        check_role(&users, user, Role::Worker)?;
        let wanted = [(user.to_owned(), Permissions::worker(topology))];
        self.ensure_users(
            Role::Worker,
            &wanted,
            credentials,
            reset_password,
            &users,
            &mut summary,
        )?;
        summary.credentials_file = Some(credentials.path().to_owned());
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// A cohort's coordinator user with [`Permissions::coordinator`].
    pub fn coordinator(
        &self,
        cohort: &Cohort,
        user: &str,
        credentials: &mut CredentialsFile,
        reset_password: bool,
    ) -> Result<Summary, ProvisionError> {
        let started = Instant::now();
        let mut summary = self.summary("coordinator");
        let topology = &self.study.topology;
        valid_user_name(user)?;
        if ParticipantId::new(user).is_ok_and(|id| cohort.contains(&id)) {
            return Err(ProvisionError::Input(format!(
                "coordinator user {user:?} has the form of a member of cohort {cohort}: choose another name"
            )));
        }
        self.require_vhost()?;
        self.require_exchange(&topology.readings_exchange)?;
        self.require_exchange(&topology.results_exchange)?;
        let users = self.api.users()?;
        check_role(&users, user, Role::Coordinator)?;
        let wanted = [(user.to_owned(), Permissions::coordinator(topology, cohort))];
        self.ensure_users(
            Role::Coordinator,
            &wanted,
            credentials,
            reset_password,
            &users,
            &mut summary,
        )?;
        summary.credentials_file = Some(credentials.path().to_owned());
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Creates the missing users of `wanted` (passwords from `credentials` when an earlier run
    /// wrote them, else generated and appended first), resets passwords when asked, and sets the
    /// permissions that differ from `wanted`, all in as few definitions imports as fit.
    fn ensure_users(
        &self,
        role: Role,
        wanted: &[(String, Permissions)],
        credentials: &mut CredentialsFile,
        reset_password: bool,
        users: &BTreeMap<String, UserInfo>,
        summary: &mut Summary,
    ) -> Result<(), ProvisionError> {
        let vhost = &self.study.vhost;
        let current = self.api.permissions(vhost)?;
        let mut new_rows = Vec::new();
        let mut new_users = Vec::new();
        for (user, _) in wanted {
            let exists = users.contains_key(user);
            if exists && !reset_password {
                summary.users_existing += 1;
                debug!(user, "exists: password unchanged");
                continue;
            }
            let password = match credentials.password_of(user) {
                // Written by an interrupted run (or, with --reset-password, by this reset run
                // before it was interrupted): used as it is, so the file stays right.
                Some(password) => password.to_owned(),
                None => {
                    let password = generate_password()?;
                    new_rows.push(Credential {
                        user: user.clone(),
                        amqp_url: self.amqp_url(user, &password),
                        password: password.clone(),
                    });
                    password
                }
            };
            if exists {
                summary.passwords_reset += 1;
            } else {
                summary.users_created += 1;
            }
            new_users.push(NewUser {
                name: user.clone(),
                password,
                tags: role.tag().to_owned(),
            });
        }
        // On disk before any of these users exists on the broker.
        credentials.append(&new_rows)?;
        summary.credentials_written = new_rows.len();
        if !new_rows.is_empty() {
            info!(rows = new_rows.len(), file = %credentials.path().display(), "credentials written");
        }
        let entries: Vec<PermissionEntry> = wanted
            .iter()
            .filter(|(user, permissions)| {
                current.get(user).map(|p| p.permissions()).as_ref() != Some(permissions)
            })
            .map(|(user, permissions)| PermissionEntry {
                user: user.clone(),
                vhost: vhost.clone(),
                permissions: permissions.clone(),
            })
            .collect();
        summary.permissions_set = entries.len();
        // Each chunk carries its users and then their permissions (the broker imports users
        // first), so that an interruption leaves no permission without its user.
        let t = Instant::now();
        let mut users_left: &[NewUser] = &new_users;
        let mut entries_left: &[PermissionEntry] = &entries;
        while !users_left.is_empty() || !entries_left.is_empty() {
            let (users_chunk, rest) = users_left.split_at(users_left.len().min(IMPORT_CHUNK));
            users_left = rest;
            let (entries_chunk, rest) = entries_left.split_at(entries_left.len().min(IMPORT_CHUNK));
            entries_left = rest;
            self.api.import(users_chunk, entries_chunk)?;
        }
        if !new_users.is_empty() || !entries.is_empty() {
            info!(
                role = %role,
                created = summary.users_created,
                reset = summary.passwords_reset,
                permissions = entries.len(),
                seconds = t.elapsed().as_secs_f64(),
                "users and permissions imported"
            );
        }
        for (user, permissions) in wanted {
            debug!(user, role = %role, configure = %permissions.configure, write = %permissions.write, read = %permissions.read, "permissions");
        }
        Ok(())
    }

    /// Removes users of `role` from the study. User names are broker-wide: a user that also has
    /// permissions on another vhost (another study) only loses those on this one; any other is
    /// deleted (the broker closes its connections). With `delete_queues`, participants' reply
    /// queues go too, with any unread results; otherwise they stay.
    pub fn remove(
        &self,
        role: Role,
        names: &[String],
        delete_queues: bool,
    ) -> Result<Summary, ProvisionError> {
        let started = Instant::now();
        let mut summary = self.summary("remove");
        let vhost = &self.study.vhost;
        let users = self.api.users()?;
        for name in names {
            check_role(&users, name, role)?;
        }
        let elsewhere: HashSet<String> = self
            .api
            .all_permissions()?
            .into_iter()
            .filter(|(_, v)| v != vhost)
            .map(|(user, _)| user)
            .collect();
        let mut delete = Vec::new();
        for name in names {
            if !users.contains_key(name) {
                info!(user = %name, "user did not exist");
            } else if elsewhere.contains(name) {
                self.api.clear_permissions(vhost, name)?;
                summary.permissions_set += 1;
                info!(user = %name, %vhost, "user kept (it has permissions on other vhosts): its permissions on this vhost removed");
            } else {
                delete.push(name.clone());
            }
        }
        if delete.len() == 1 {
            self.api.delete_user(&delete[0])?;
        } else {
            self.api.delete_users(&delete)?;
        }
        summary.users_removed = delete.len();
        if !delete.is_empty() {
            info!(count = delete.len(), role = %role, "users deleted (their connections are closed by the broker)");
        }
        if role == Role::Participant {
            for name in names {
                let queue = format!("{}{}", self.study.topology.reply_queue_prefix, name);
                if delete_queues {
                    if self.api.delete_queue(&self.study.vhost, &queue)? {
                        summary.queues_removed += 1;
                        info!(%queue, "reply queue deleted");
                    }
                } else {
                    debug!(%queue, "reply queue kept (it may hold unread results)");
                }
            }
            if !delete_queues {
                info!(
                    "reply queues kept: they may hold unread results (--delete-queue deletes them)"
                );
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Every user with permissions on the vhost, its role and regexes.
    pub fn show(&self) -> Result<Vec<UserAccess>, ProvisionError> {
        self.require_vhost()?;
        let users = self.api.users()?;
        let permissions = self.api.permissions(&self.study.vhost)?;
        Ok(permissions
            .into_values()
            .map(|p| {
                let tags = users
                    .get(&p.user)
                    .map(|u| u.tags.clone())
                    .unwrap_or_default();
                UserAccess {
                    role: tags.iter().find_map(|t| Role::from_tag(t)),
                    tags,
                    permissions: p.permissions(),
                    user: p.user,
                }
            })
            .collect())
    }
}

/// Channels reply queues are declared on at once. The broker runs each channel's methods one
/// after the other, and a durable declaration waits for its metadata to be stored: declaring on
/// several channels lets it store several at a time.
pub const DECLARE_CHANNELS: usize = 8;

/// Declares and binds the reply queues of `ids` with [`Topology::declare_reply_queue`], on
/// [`DECLARE_CHANNELS`] channels of `conn`; returns how many.
async fn declare_reply_queues(
    conn: &lapin::Connection,
    topology: &Topology,
    ids: &[&ParticipantId],
) -> Result<usize, ProvisionError> {
    let topology = std::sync::Arc::new(topology.clone());
    let lanes = DECLARE_CHANNELS.min(ids.len()).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..lanes {
        let ch = Provisioner::channel(conn).await?;
        let topology = topology.clone();
        let mine: Vec<ParticipantId> = ids
            .iter()
            .skip(lane)
            .step_by(lanes)
            .map(|id| (*id).clone())
            .collect();
        tasks.spawn(async move {
            for (done, id) in mine.iter().enumerate() {
                if let Err(err) = topology.declare_reply_queue(&ch, id).await {
                    return (done, Err(err));
                }
            }
            broker::close_channel(&ch, "reply queues declared").await;
            (mine.len(), Ok(()))
        });
    }
    let mut declared = 0;
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let (done, outcome) = joined.map_err(|err| ProvisionError::Task(err.to_string()))?;
        declared += done;
        if let Err(err) = outcome {
            failure.get_or_insert(err);
        }
    }
    match failure {
        Some(err) => Err(err.into()),
        None => Ok(declared),
    }
}

/// Percent-encodes a URL's user, password or vhost (RFC 3986 unreserved characters stay).
fn url_part(s: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}

/// Refuses a user name that would not be safe in a URL, a CSV cell or a regex.
fn valid_user_name(user: &str) -> Result<(), ProvisionError> {
    ParticipantId::new(user)
        .map(|_| ())
        .map_err(|err| ProvisionError::Input(format!("user name: {err}")))
}

/// An existing user may be provisioned for `role` only when it has that role's tag, or no
/// management tag and no other role's tag (a user made before roles were tagged).
fn check_role(
    users: &BTreeMap<String, UserInfo>,
    user: &str,
    role: Role,
) -> Result<(), ProvisionError> {
    let Some(info) = users.get(user) else {
        return Ok(());
    };
    let other_role = info
        .tags
        .iter()
        .any(|t| t.starts_with(TAG_PREFIX) && t != role.tag());
    let privileged = info
        .tags
        .iter()
        .any(|t| PRIVILEGED_TAGS.contains(&t.as_str()));
    if other_role || privileged {
        return Err(ProvisionError::RoleConflict {
            user: user.to_owned(),
            tags: info.tags.join(","),
            wanted: role,
        });
    }
    if !info.tags.iter().any(|t| t == role.tag()) {
        warn!(user, role = %role, "user exists without a role tag (made before roles were tagged); treated as this role");
    }
    Ok(())
}
