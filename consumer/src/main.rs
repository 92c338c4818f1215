//! `consumer`: the participant's side of reading results. Without a subcommand it shows one
//! participant's results ([`commands::show`]): reads the reply queue, decrypts each result with
//! the participant's key and prints it. `consumer collect` ([`commands::collect`]) does the same
//! for a whole cohort into one file. Each command lives in its own module under `commands/`;
//! what they share with `producer` (connection, result streams, key store, journal, progress,
//! global flags) is the `participant` crate, the wire contract is `pipeline`.

mod commands;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Reads the participant's reply queue (results.<ID>), decrypts each result with the key store and
/// prints its outputs by name with units. A result is acknowledged (removed from the queue) only
/// after it was printed and stdout flushed. A duplicate of a result already shown (same
/// submission id: delivery is at-least-once) is acknowledged and not shown again. Error results
/// (a refused submission) are shown as errors.
///
/// Exits once no result has arrived for --timeout: it prints what is queued and whatever arrives
/// while it waits, and returns when the queue has stayed empty for that long. Exit status 0 when
/// results (or none) were read, 1 on a failure (broker unreachable, missing key, ...).
///
/// `consumer collect --out FILE` collects a whole cohort instead (see `consumer collect --help`).
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    show: commands::show::Args,
    #[command(flatten)]
    common: participant::cli::CommonArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Collect the results of every participant (key store, --participants or --journal) into
    /// one CSV or JSON-lines file, one row per submission.
    Collect(commands::collect::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Before anything else, in particular before a key is loaded.
    if let Err(err) = participant::cli::protect_process() {
        eprintln!("error: cannot disable core dumps: {err}");
        return ExitCode::FAILURE;
    }
    let args = Cli::parse();
    pipeline::logging::init(args.common.verbose);
    participant::cli::exit_code(run(args).await)
}

async fn run(args: Cli) -> anyhow::Result<()> {
    let settings = args
        .common
        .load_settings()
        .context("loading the configuration")?;
    match args.command {
        Some(Command::Collect(collect)) => commands::collect::run(&settings, collect).await,
        None => {
            let participant = args
                .show
                .participant
                .clone()
                .context("--participant ID is required (or use `consumer collect`)")?;
            commands::show::run(&settings, &participant, args.show).await
        }
    }
}
