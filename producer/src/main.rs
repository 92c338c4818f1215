//! `producer`: the participant's side of submitting. Creates keys (`keygen`), submits
//! encrypted readings (`submit`), enrolls whole cohorts (`enroll`) and publishes the study as
//! JSON (`study-json`). Each command lives in its own module under `commands/`; what they share
//! with `consumer` (connection, publishing, key store, journal, progress, global flags) is the
//! `participant` crate, the wire contract is `pipeline`.

mod commands;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Encrypts health readings with the participant's own Paillier key and submits them to the
/// study's pipeline. Plaintext readings and private keys never leave this machine.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: participant::cli::CommonArgs,
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
    /// Print (or write to --output) the study as JSON for participant-facing pages: metrics with
    /// their precision, fixed exponent and range, outputs with units, key size, exchange names.
    StudyJson(commands::study_json::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Before anything else, in particular before a key is loaded.
    if let Err(err) = participant::cli::protect_process() {
        eprintln!("error: cannot disable core dumps: {err}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    pipeline::logging::init(cli.common.verbose);
    participant::cli::exit_code(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli
        .common
        .load_settings()
        .context("loading the configuration")?;
    match cli.command {
        Command::Keygen(args) => commands::keygen::run(&settings, args).await,
        Command::Submit(args) => commands::submit::run(&settings, args).await,
        Command::Enroll(args) => commands::enroll::run(&settings, args).await,
        Command::StudyJson(args) => commands::study_json::run(&settings, args).await,
    }
}
