//! `admin`: provisions a study on a RabbitMQ broker (see the library's documentation).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use admin::{
    AdminCredentials, Cohort, CredentialsFile, ProvisionError, Provisioner, Role, Study, Summary,
};
use clap::{Args, Parser, Subcommand};
use pipeline::config::{LoadOptions, Settings};
use pipeline::{ParticipantId, Topology};
use tracing::info;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

const AFTER_HELP: &str = "\
Roles (permissions on the vhost; regexes anchored, dots escaped):
  participant ID     configure nothing, write ^readings$, read ^results\\.ID$
  worker USER        configure nothing, write ^(results|readings\\.dead)$, read ^readings\\.work$
  coordinator C      configure nothing, write ^readings$, read ^results\\.C-[0-9]+$ (members C-<n>)
  Nobody but the admin may write the default exchange or configure anything.

Admin access: the management API at --admin-url ($BROKER_ADMIN_URL, default
http://127.0.0.1:15672) as --admin-user ($BROKER_ADMIN_USER, default guest), an administrator;
its password from --admin-password-file or $BROKER_ADMIN_PASSWORD (default guest), never from
the command line. AMQP (topology, reply queues) goes to the host and port of --amqp-url
($AMQP_URL, else the configuration's broker.url) as the same admin.

Credentials: new users' passwords are generated (CSPRNG) and written once to the --credentials
file (CSV participant,password,amqp_url; mode 0600; created only when a password is written,
never overwritten, appended to by a resumed run) before the users exist. They are printed
nowhere else. Running a command again changes nothing; an existing user keeps its password
unless --reset-password.

Exit status: 0 done, 1 broker or I/O failure, 2 bad input or usage, 3 the broker refused the
admin (401/403), 4 something that must exist first is missing (vhost, topology).

Examples:
  admin --vhost study1 topology
  admin --vhost study1 worker worker-1 --credentials worker-1.csv
  admin --vhost study1 cohort --prefix clinic --count 1000 --credentials clinic.csv --json
  admin --vhost study1 coordinator clinic --credentials clinic-coordinator.csv
  admin --vhost study1 show
  admin --vhost study1 remove participant clinic-7 --delete-queue";

/// Provisions a study on a RabbitMQ broker: topology, least-privilege users for participants,
/// workers and cohort coordinators, their reply queues, and a credentials file.
#[derive(Debug, Parser)]
#[command(name = "admin", version, after_help = AFTER_HELP)]
struct Cli {
    /// Virtual host of the study.
    #[arg(long, global = true, default_value = "/", value_name = "VHOST")]
    vhost: String,
    /// Pipeline configuration the names come from (default: the compiled-in
    /// config/default.toml; its [topology] prefix included).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Broker URL whose scheme, host and port are used (its user, password and vhost are not;
    /// a command line is visible to other local users in the process list).
    #[arg(
        long,
        global = true,
        env = "AMQP_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    amqp_url: Option<String>,
    /// Management API base URL.
    #[arg(
        long,
        global = true,
        env = "BROKER_ADMIN_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:15672",
        value_name = "URL"
    )]
    admin_url: String,
    /// Admin user (needs the administrator tag).
    #[arg(
        long,
        global = true,
        env = "BROKER_ADMIN_USER",
        hide_env_values = true,
        default_value = "guest",
        value_name = "USER"
    )]
    admin_user: String,
    /// File whose first line is the admin's password (else $BROKER_ADMIN_PASSWORD, else guest);
    /// mode 0600 or narrower.
    #[arg(long, global = true, value_name = "FILE")]
    admin_password_file: Option<PathBuf>,
    /// Print a JSON summary on stdout (created/existing counts, credentials file).
    #[arg(long, global = true)]
    json: bool,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the vhost if missing, declare the shared exchanges, queues and bindings.
    Topology,
    /// Provision one participant: reply queue results.ID bound to results, user ID.
    Participant {
        /// Participant id (letters, digits, '-', '_').
        id: ParticipantId,
        #[command(flatten)]
        users: UserArgs,
    },
    /// Provision many participants in one step (users, reply queues, bindings).
    Cohort {
        #[command(flatten)]
        members: CohortMembers,
        #[command(flatten)]
        users: UserArgs,
    },
    /// Provision a worker user: read the work queue, write results and dead letters.
    Worker {
        /// User name.
        user: String,
        #[command(flatten)]
        users: UserArgs,
    },
    /// Provision the coordinator of cohort COHORT: write readings, read the reply queues of
    /// COHORT-<n> only.
    Coordinator {
        /// Cohort name (its members are COHORT-<n>; may not end in -<digits>).
        cohort: String,
        /// User name (default COHORT-coordinator).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        #[command(flatten)]
        users: UserArgs,
    },
    /// Delete users; participants' reply queues stay (unread results) unless --delete-queue.
    Remove {
        #[command(subcommand)]
        what: Remove,
    },
    /// List the users with permissions on the vhost, their roles and regexes.
    Show,
}

#[derive(Debug, Subcommand)]
enum Remove {
    /// Participants by id.
    Participant {
        /// Participant ids.
        #[arg(required = true)]
        ids: Vec<ParticipantId>,
        /// Also delete their reply queues, with any unread results.
        #[arg(long)]
        delete_queue: bool,
    },
    /// A whole cohort's participants.
    Cohort {
        #[command(flatten)]
        members: CohortMembers,
        /// Also delete their reply queues, with any unread results.
        #[arg(long)]
        delete_queue: bool,
    },
    /// Worker users.
    Worker {
        /// User names.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// The coordinator of a cohort.
    Coordinator {
        /// Cohort name.
        cohort: String,
        /// User name (default COHORT-coordinator).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
struct CohortMembers {
    /// Cohort name: members are PREFIX-1 … PREFIX-COUNT (with --csv: every id must be PREFIX-<n>).
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Number of members.
    #[arg(long, requires = "prefix", conflicts_with = "csv", value_name = "N")]
    count: Option<u64>,
    /// CSV file with the ids (the `participant` column, else the first).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct UserArgs {
    /// Credentials file new passwords are written to (created 0600; appended on resume).
    #[arg(long, value_name = "FILE")]
    credentials: PathBuf,
    /// Give existing users a new password (default: an existing user keeps its own). Give a new
    /// --credentials file: a password the file already holds for a user is reused (a reset that
    /// was interrupted resumes with it).
    #[arg(long)]
    reset_password: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Provision(err)) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_status())
        }
        Err(Failure::Setup(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Output(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Provision(ProvisionError),
    Setup(String),
    Output(String),
}

impl From<ProvisionError> for Failure {
    fn from(err: ProvisionError) -> Self {
        Failure::Provision(err)
    }
}

fn init_logging(verbosity: u8) {
    let default = match verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default},lapin=warn,amq_protocol=warn,ureq=warn,rustls=warn"
        ))
    });
    // lapin's AMQP frames (the login with the password) stay out of the log whatever RUST_LOG
    // says: see pipeline::logging.
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(filter),
        )
        .with(pipeline::logging::no_protocol_frames())
        .try_init();
}

fn admin_password(file: Option<&Path>) -> Result<String, Failure> {
    if let Some(path) = file {
        // The same reader as broker.password_file: first line, refused when others may read it.
        return pipeline::config::read_secret_file(path, "--admin-password-file")
            .map_err(|err| Failure::Setup(err.to_string()));
    }
    Ok(std::env::var("BROKER_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "guest".to_owned()))
}

fn provisioner(cli: &Cli) -> Result<Provisioner, Failure> {
    let options = LoadOptions {
        file: cli.config.clone(),
        ..LoadOptions::default()
    }
    .set("broker.url", cli.amqp_url.as_ref());
    let settings = Settings::load(&options).map_err(|err| Failure::Setup(err.to_string()))?;
    let admin = AdminCredentials {
        url: cli.admin_url.clone(),
        user: cli.admin_user.clone(),
        password: admin_password(cli.admin_password_file.as_deref())?,
    };
    let study = Study {
        vhost: cli.vhost.clone(),
        topology: Topology::new(&settings.topology, &settings.reply_queues),
        broker: settings.broker.clone(),
    };
    Ok(Provisioner::new(admin, study)?)
}

fn cohort(name: &str) -> Result<Cohort, ProvisionError> {
    Cohort::new(name).map_err(|err| ProvisionError::Input(err.to_string()))
}

fn members(args: &CohortMembers) -> Result<Vec<ParticipantId>, ProvisionError> {
    let prefix = args.prefix.as_deref().map(cohort).transpose()?;
    match (&args.csv, args.count, prefix) {
        (Some(path), _, prefix) => {
            let ids = admin::participants_from_csv(path)?;
            if let Some(c) = prefix
                && let Some(outside) = ids.iter().find(|id| !c.contains(id))
            {
                return Err(ProvisionError::Input(format!(
                    "{}: participant {outside} is not {c}-<n>, so the coordinator of {c} could not collect for it",
                    path.display()
                )));
            }
            Ok(ids)
        }
        (None, Some(count), Some(c)) if count >= 1 => {
            Ok((1..=count).map(|n| c.member(n)).collect())
        }
        _ => Err(ProvisionError::Input(
            "give --prefix P --count N (N at least 1), or --csv FILE".into(),
        )),
    }
}

fn report(cli: &Cli, summary: &Summary) -> Result<(), Failure> {
    info!(
        command = %summary.command,
        vhost = %summary.vhost,
        created = summary.users_created,
        existing = summary.users_existing,
        reset = summary.passwords_reset,
        permissions_set = summary.permissions_set,
        queues_declared = summary.queues_declared,
        queues_existing = summary.queues_existing,
        removed = summary.users_removed,
        credentials_written = summary.credentials_written,
        seconds = format!("{:.2}", summary.seconds),
        "done"
    );
    if cli.json {
        let text =
            serde_json::to_string(summary).map_err(|err| Failure::Output(err.to_string()))?;
        println!("{text}");
    }
    Ok(())
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    let p = provisioner(cli)?;
    let summary = match &cli.command {
        Command::Topology => p.topology().await?,
        Command::Participant { id, users } => {
            let mut file = CredentialsFile::open(&users.credentials, "participant")
                .map_err(ProvisionError::from)?;
            p.participants(
                "participant",
                std::slice::from_ref(id),
                &mut file,
                users.reset_password,
            )
            .await?
        }
        Command::Cohort { members: m, users } => {
            let ids = members(m)?;
            let mut file = CredentialsFile::open(&users.credentials, "participant")
                .map_err(ProvisionError::from)?;
            info!(participants = ids.len(), "provisioning a cohort");
            p.participants("cohort", &ids, &mut file, users.reset_password)
                .await?
        }
        Command::Worker { user, users } => {
            let mut file =
                CredentialsFile::open(&users.credentials, "user").map_err(ProvisionError::from)?;
            p.worker(user, &mut file, users.reset_password)?
        }
        Command::Coordinator {
            cohort: name,
            user,
            users,
        } => {
            let c = cohort(name)?;
            let user = user.clone().unwrap_or_else(|| c.coordinator_user());
            let mut file =
                CredentialsFile::open(&users.credentials, "user").map_err(ProvisionError::from)?;
            p.coordinator(&c, &user, &mut file, users.reset_password)?
        }
        Command::Remove { what } => match what {
            Remove::Participant { ids, delete_queue } => {
                let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
                p.remove(Role::Participant, &names, *delete_queue)?
            }
            Remove::Cohort {
                members: m,
                delete_queue,
            } => {
                let names: Vec<String> = members(m)?.iter().map(ToString::to_string).collect();
                p.remove(Role::Participant, &names, *delete_queue)?
            }
            Remove::Worker { users } => p.remove(Role::Worker, users, false)?,
            Remove::Coordinator { cohort: name, user } => {
                let user = user.clone().unwrap_or_else(|| match cohort(name) {
                    Ok(c) => c.coordinator_user(),
                    Err(_) => format!("{name}-coordinator"),
                });
                p.remove(Role::Coordinator, &[user], false)?
            }
        },
        Command::Show => {
            let access = p.show()?;
            if cli.json {
                let text = serde_json::to_string(&access)
                    .map_err(|err| Failure::Output(err.to_string()))?;
                println!("{text}");
            } else {
                for a in &access {
                    let role = a.role.map_or("-", Role::name);
                    println!(
                        "{}\t{role}\tconfigure={}\twrite={}\tread={}",
                        a.user, a.permissions.configure, a.permissions.write, a.permissions.read
                    );
                }
            }
            return Ok(());
        }
    };
    report(cli, &summary)
}
