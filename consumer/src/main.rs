//! `consumer`: reads a participant's results, decrypts them with the participant's key and prints
//! them. Output formatting is in [`output`]. `consumer collect` ([`collect`]) does the same for a
//! whole cohort into one file ([`rows`]).

mod collect;
mod output;
mod rows;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pipeline::ParticipantId;
use pipeline::client::Client;
use pipeline::keystore::KeyStore;
use pipeline::messages::ResultStatus;
use tracing::{info, warn};

use output::{Format, Printer};

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
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Participant whose results to read.
    #[arg(long, required = true)]
    participant: Option<ParticipantId>,
    /// How long to wait for a further result before exiting (e.g. 5s, 2m).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Output format: a table, or one JSON object per result.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    common: pipeline::cli::CommonArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Collect the results of every participant (key store, --participants or --journal) into
    /// one CSV or JSON-lines file, one row per submission.
    Collect(collect::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    pipeline::logging::init(args.common.verbose);
    pipeline::cli::exit_code(run(args).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let settings = args
        .common
        .load_settings()
        .context("loading the configuration")?;
    let participant = match args.command {
        Some(Command::Collect(collect)) => return collect::run(&settings, collect).await,
        None => args
            .participant
            .context("--participant ID is required (or use `consumer collect`)")?,
    };
    // Shared with each decryption thread, never copied (the key holds p, q and CRT values).
    let key =
        std::sync::Arc::new(KeyStore::new(settings.key_store_dir()).load_private(&participant)?);

    let client = Client::connect(&settings, "consumer").await?;
    let mut results = client
        .results(&participant, settings.broker.prefetch)
        .await?;
    let mut printer = Printer::new(args.format);
    let (mut shown, mut errors, mut duplicates, mut unreadable) = (0u64, 0u64, 0u64, 0u64);
    while let Some(received) = results.next(args.timeout).await? {
        match &received.result {
            Err(reason) => {
                unreadable += 1;
                warn!(%reason, "discarding a message that is not a result");
                received.discard().await?;
                continue;
            }
            Ok(_) if received.duplicate => {
                duplicates += 1;
                info!("duplicate result (already shown), acknowledging it");
            }
            Ok(result) => {
                let decrypted = match result.status {
                    ResultStatus::Ok => {
                        let key = std::sync::Arc::clone(&key);
                        let result = result.clone();
                        tokio::task::spawn_blocking(move || result.decrypt(&key))
                            .await
                            .context("decryption thread")?
                            .map_err(|e| e.to_string())
                    }
                    ResultStatus::Error => {
                        errors += 1;
                        Ok(Vec::new())
                    }
                };
                printer.print(result, decrypted)?;
                std::io::stdout().flush().context("writing to stdout")?;
                shown += 1;
            }
        }
        // Only now: the result is on the screen (or in the pipe).
        received.ack().await?;
    }
    printer.finish()?;
    results.close().await;
    client.close().await;
    info!(
        shown,
        errors, duplicates, unreadable, "no further result within the timeout"
    );
    Ok(())
}
