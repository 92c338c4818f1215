//! `consumer` (without a subcommand): show one participant's results. Reads the participant's
//! reply queue, decrypts each result with the key store and prints it ([`output`]).

mod output;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use participant::Client;
use participant::keystore::KeyStore;
use pipeline::ParticipantId;
use pipeline::config::Settings;
use pipeline::messages::ResultStatus;
use tracing::{info, warn};

use output::{Format, Printer};

/// Arguments of showing one participant's results.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Participant whose results to read.
    #[arg(long, required = true)]
    pub participant: Option<ParticipantId>,
    /// How long to wait for a further result before exiting (e.g. 5s, 2m). With --submission:
    /// how long to wait for that submission's result in all (then exit status 1).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Wait for the result of this submission (the id `producer submit` printed): show
    /// whatever arrives before it, and exit 0 as soon as it is shown; exit 1 when it has not
    /// arrived within --timeout.
    #[arg(long, value_name = "ID")]
    submission: Option<String>,
    /// Output format: a table, or one JSON object per result.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// A result is acknowledged only after it was printed and stdout flushed; a duplicate is
/// acknowledged without being shown again.
pub async fn run(
    settings: &Settings,
    participant: &ParticipantId,
    args: Args,
) -> anyhow::Result<()> {
    // Shared with the decryption threads, not copied per result.
    let key = Arc::new(KeyStore::new(settings.key_store_dir()).load_private(participant)?);

    let client = Client::connect(settings, "consumer").await?;
    let mut results = client
        .results(participant, settings.broker.prefetch)
        .await?;
    let mut printer = Printer::new(args.format);
    let (mut shown, mut errors, mut duplicates, mut unreadable) = (0u64, 0u64, 0u64, 0u64);
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut awaited_shown = false;
    loop {
        let idle = match &args.submission {
            // Waiting for one result: the timeout bounds the whole wait, not each gap.
            Some(_) => deadline.saturating_duration_since(tokio::time::Instant::now()),
            None => args.timeout,
        };
        let Some(received) = results.next(idle).await? else {
            break;
        };
        let awaited = matches!(
            (&args.submission, &received.result),
            (Some(id), Ok(result)) if &result.submission_id == id
        );
        match &received.result {
            Err(reason) => {
                unreadable += 1;
                warn!(reason = %participant::text::escaped(reason), "discarding a message that is not a result");
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
                        let key = Arc::clone(&key);
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
        if awaited {
            awaited_shown = true;
            break;
        }
    }
    printer.finish()?;
    results.close().await;
    client.close().await;
    if let Some(id) = &args.submission {
        anyhow::ensure!(
            awaited_shown,
            "no result for submission {} within {}",
            participant::text::escaped(id),
            humantime::format_duration(args.timeout)
        );
        info!(
            shown,
            errors, duplicates, unreadable, "the awaited result was shown"
        );
        return Ok(());
    }
    info!(
        shown,
        errors, duplicates, unreadable, "no further result within the timeout"
    );
    Ok(())
}
