//! `producer`: the participant's side of submitting. Creates keys (`keygen`), submits
//! encrypted readings (`submit`) and enrolls whole cohorts (`enroll`). Each command lives in its own module under `commands/`.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pipeline::config::{LoadOptions, Settings};

/// Encrypts health readings with the participant's own Paillier key and submits them to the
/// study's pipeline. Plaintext readings and private keys never leave this machine.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// TOML file overriding config/default.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Broker URL.
    #[arg(long, global = true, env = "AMQP_URL", value_name = "URL")]
    amqp_url: Option<String>,
    /// Key store directory.
    #[arg(long, global = true, env = "KEY_STORE", value_name = "DIR")]
    key_store: Option<PathBuf>,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a participant's key pair in the key store (private key file mode 0600,
    /// python-paillier pheutil JWK format).
    Keygen(commands::keygen::Args),
    /// Encrypt readings and submit them; prints the submission id.
    Submit(commands::submit::Args),
    /// Enroll a cohort (CSV file or synthetic): create missing keys, encrypt and publish every
    /// participant's submission; resumable through a journal of confirmed submissions.
    Enroll(commands::enroll::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    pipeline::logging::init(cli.verbose);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let options = LoadOptions {
        file: cli.config.clone(),
        ..LoadOptions::default()
    }
    .set("broker.url", cli.amqp_url.as_ref())
    .set("key_store.dir", cli.key_store.as_ref().map(|p| p.display()));
    let settings = Settings::load(&options).context("loading the configuration")?;
    match cli.command {
        Command::Keygen(args) => commands::keygen::run(&settings, args).await,
        Command::Submit(args) => commands::submit::run(&settings, args).await,
        Command::Enroll(args) => commands::enroll::run(&settings, args).await,
    }
}
