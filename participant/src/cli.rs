//! Command-line pieces the participant-side binaries (`producer`, `consumer`) share: their
//! global flags, how those flags override the configuration, how a failure becomes an exit
//! status, and the process protection they start with ([`protect_process`]). One place, so
//! both tools accept and report the same way.

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

use pipeline::config::{ConfigError, LoadOptions, Settings};

/// Flags every participant-side command accepts (flatten into a clap `Parser`).
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// TOML file overriding config/default.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Broker URL, e.g. amqps://USER@broker:5671/study. Other local users see a command line
    /// in the process list: give a password in $AMQP_URL (visible only to you and root) or,
    /// better, with --amqp-password-file, not here.
    #[arg(
        long,
        global = true,
        env = "AMQP_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub amqp_url: Option<String>,
    /// File whose first line is the broker password, replacing the URL's (mode 0600 or
    /// narrower: a file group or others may read is refused). Config: broker.password_file.
    #[arg(
        long,
        global = true,
        env = "AMQP_PASSWORD_FILE",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub amqp_password_file: Option<PathBuf>,
    /// Key store directory (mode 0700, yours; private keys 0600).
    #[arg(
        long,
        global = true,
        env = "KEY_STORE",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub key_store: Option<PathBuf>,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl CommonArgs {
    /// The configuration with these flags applied over file and environment.
    pub fn load_settings(&self) -> Result<Settings, ConfigError> {
        let options = LoadOptions {
            file: self.config.clone(),
            ..LoadOptions::default()
        }
        .set("broker.url", self.amqp_url.as_ref())
        .set(
            "broker.password_file",
            self.amqp_password_file.as_ref().map(|p| p.display()),
        )
        .set(
            "key_store.dir",
            self.key_store.as_ref().map(|p| p.display()),
        );
        Settings::load(&options)
    }
}

/// Keeps the private keys this process will hold out of core dumps and away from debuggers of
/// the same user: the core file size limit is set to 0 (soft and hard, so that nothing in the
/// process raises it again) and the process is made non-dumpable (`PR_SET_DUMPABLE` 0, which
/// also makes `/proc/<pid>/mem` and ptrace refuse other processes without `CAP_SYS_PTRACE`).
/// Called first thing by `producer` and `consumer`; a failure is fatal, since running on could
/// write keys to disk on a crash.
pub fn protect_process() -> std::io::Result<()> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    setrlimit(Resource::Core, none)?;
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    Ok(())
}

/// Exit status of a command: success, or the error on one line of stderr (its whole cause
/// chain, with `{:#}`) and failure.
pub fn exit_code<E: Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
