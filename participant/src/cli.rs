//! Command-line pieces the participant-side binaries (`producer`, `consumer`) share: their
//! global flags, how those flags override the configuration, and how a failure becomes an exit
//! status. One place, so both tools accept and report the same way.

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
    /// Broker URL.
    #[arg(
        long,
        global = true,
        env = "AMQP_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub amqp_url: Option<String>,
    /// Key store directory.
    #[arg(long, global = true, env = "KEY_STORE", value_name = "DIR")]
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
            "key_store.dir",
            self.key_store.as_ref().map(|p| p.display()),
        );
        Settings::load(&options)
    }
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
