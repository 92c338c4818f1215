//! `worker`: computes the study's outputs on encrypted submissions from the work queue and
//! publishes them to the participants' reply queues. Run as many as you like on the same queue:
//! they share its load. The work itself lives in the `worker` library.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use pipeline::config::{LoadOptions, Settings};
use tracing::{info, warn};
use worker::{EventSink, ShutdownSender, WorkerStats};

/// Computes on encrypted health readings: consumes the work queue, evaluates the study on
/// ciphertexts in parallel batches, publishes each result (with publisher confirms) to the
/// participant's reply queue, and acknowledges a submission only once its result is confirmed.
/// Invalid submissions are dead-lettered with the reason. SIGINT/SIGTERM: finish the deliveries
/// in hand, then exit 0 (a second signal exits at once).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML file overriding config/default.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Broker URL, e.g. amqps://USER@broker:5671/study. Other local users see a command line
    /// in the process list: give a password in $AMQP_URL (visible only to you and root) or,
    /// better, with --amqp-password-file, not here.
    #[arg(long, env = "AMQP_URL", hide_env_values = true, value_name = "URL")]
    amqp_url: Option<String>,
    /// File whose first line is the broker password, replacing the URL's (mode 0600 or
    /// narrower: a file group or others may read is refused). Config: broker.password_file.
    #[arg(
        long,
        env = "AMQP_PASSWORD_FILE",
        hide_env_values = true,
        value_name = "FILE"
    )]
    amqp_password_file: Option<PathBuf>,
    /// rayon threads for the computation (0 = one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Deliveries per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Longest wait for a batch to fill, e.g. 20ms.
    #[arg(long, value_name = "DURATION")]
    batch_max_wait: Option<String>,
    /// Unacknowledged deliveries this worker may hold.
    #[arg(long)]
    prefetch: Option<u16>,
    /// Write the worker's events (start, each batch with its counters, lost connections,
    /// reconnects, stop with totals) as JSON lines to FILE (appended; `-` for standard output).
    /// Read these, not the log, in tests and scripts.
    #[arg(
        long,
        env = "WORKER_EVENTS",
        hide_env_values = true,
        value_name = "FILE"
    )]
    events: Option<PathBuf>,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    pipeline::logging::init(args.verbose);
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line, its whole cause chain: a missing permission or queue must be readable
            // at a glance, not buried under a backtrace-style listing.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let options = LoadOptions {
        file: args.config.clone(),
        ..LoadOptions::default()
    }
    .set("broker.url", args.amqp_url.as_ref())
    .set(
        "broker.password_file",
        args.amqp_password_file.as_ref().map(|p| p.display()),
    )
    .set("worker.threads", args.threads)
    .set("worker.batch_size", args.batch_size)
    .set("worker.batch_max_wait", args.batch_max_wait.as_ref())
    .set("broker.prefetch", args.prefetch);
    let settings = Settings::load(&options).context("loading the configuration")?;
    let events = match &args.events {
        Some(path) => EventSink::open(path)
            .with_context(|| format!("opening the events file {}", path.display()))?,
        None => EventSink::disabled(),
    };

    let (stop, stopped) = worker::shutdown_channel();
    tokio::spawn(forward_signals(stop));
    let stats = Arc::new(WorkerStats::default());
    worker::run_with_events(&settings, stopped, stats, Arc::new(events))
        .await
        .context("worker failed")?;
    Ok(())
}

/// First SIGINT/SIGTERM: graceful stop. Second: exit at once (the broker requeues what is unacked).
async fn forward_signals(stop: ShutdownSender) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop the worker with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
    let _ = stop.send(true);
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    warn!("second signal: exiting without finishing");
    std::process::exit(130);
}
