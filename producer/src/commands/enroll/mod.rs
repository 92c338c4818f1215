//! `producer enroll`: a whole cohort at once, from a CSV file or a seeded synthetic cohort.
//!
//! Three stages, each bounded, so memory does not grow with the cohort:
//! 1. (CSV only) a validation pass over the whole file: a bad row is reported with its line
//!    number; by default nothing is published then (`--skip-bad-rows` publishes the rest);
//! 2. a blocking thread streams the participants, skips those the journal already confirmed,
//!    and prepares windows on rayon (load or generate the key, encrypt with the owner's fast
//!    path, serialise), at most two windows ahead of the broker. Windows start at 8
//!    participants and double up to `--window`, so that the first submissions are on their way
//!    after a few encryptions instead of a whole window's;
//! 3. the async side declares each window's reply queues (pipelined:
//!    [`Client::declare_reply_queues`](participant::Client::declare_reply_queues)),
//!    publishes the window pipelined with confirms
//!    ([`ConfirmedPublisher::publish_all`](pipeline::broker::ConfirmedPublisher)), then appends
//!    the window to the journal and fsyncs it. A re-run skips what the journal holds.

mod cohort;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use paillier::PrivateKey;
use participant::Client;
use participant::journal::{self, Journal};
use participant::keystore::KeyStore;
use participant::progress::Progress;
use pipeline::ParticipantId;
use pipeline::config::Settings;
use pipeline::messages::SubmissionWire;
use pipeline::study::Study;
use rayon::prelude::*;

use cohort::{CsvCohort, Member, Synthetic};

/// Arguments of `enroll`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["csv", "synthetic"])))]
pub struct Args {
    /// Cohort file: header `participant,<metric>,...`; several rows of a participant (which
    /// must be contiguous) form a series; an empty cell is no reading.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Enroll N synthetic participants (syn-000001, ...) with plausible random readings.
    #[arg(long, value_name = "N")]
    synthetic: Option<u64>,
    /// Seed of the synthetic readings (same N and seed: same cohort).
    #[arg(long, default_value_t = 1, requires = "synthetic")]
    seed: u64,
    /// Modulus length of keys created for participants without one.
    /// Default: `[participant] key_bits` of the configuration (3072 unless changed).
    #[arg(long)]
    bits: Option<u64>,
    /// Publish the good rows even if some are bad (they are reported and skipped).
    #[arg(long)]
    skip_bad_rows: bool,
    /// Journal of confirmed submissions (default: in the key store, named after the cohort).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Participants prepared and published per window (confirms awaited per window).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    window: u64,
}

/// Participants in the first window of an enrollment (then doubling up to `--window`).
const FIRST_WINDOW: usize = 8;

/// A participant's submission, encrypted and ready to publish.
struct Prepared {
    participant: ParticipantId,
    submission: SubmissionWire,
    key_created: bool,
    readings: usize,
}

/// What the preparing thread counted.
#[derive(Debug, Default)]
struct PrepStats {
    already_done: u64,
}

/// Default journal path: `<key store>/<cohort name>.enroll-journal`.
fn default_journal(store: &KeyStore, args: &Args) -> PathBuf {
    let name = match (&args.csv, args.synthetic) {
        (Some(csv), _) => csv
            .file_stem()
            .map_or_else(|| "cohort".to_owned(), |s| s.to_string_lossy().into_owned()),
        (None, Some(n)) => format!("synthetic-{n}-seed{}", args.seed),
        (None, None) => "cohort".to_owned(),
    };
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    store.dir().join(format!("{name}.enroll-journal"))
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("securing {}", dir.display()))?;
    }
    Ok(())
}

/// Loads the participant's key or creates it, then encrypts their readings.
fn prepare(
    study: &Study,
    store: &KeyStore,
    bits: u64,
    run_id: &str,
    member: Member,
) -> anyhow::Result<Prepared> {
    let (key, key_created) = if store.contains(&member.id) {
        (store.load_private(&member.id)?, false)
    } else {
        let key = PrivateKey::generate(bits)
            .with_context(|| format!("generating a key for {}", member.id))?;
        store.save(&member.id, &key)?;
        (key, true)
    };
    let submission_id = journal::submission_id(run_id, &member.id);
    let submission =
        SubmissionWire::encrypt(study, &submission_id, &member.id, &key, &member.readings)
            .with_context(|| format!("encrypting the readings of {}", member.id))?;
    Ok(Prepared {
        readings: member.readings.values().map(Vec::len).sum(),
        participant: member.id,
        submission,
        key_created,
    })
}

/// Runs the enrollment; returns an error (non-zero exit) if anything was not published.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = KeyStore::new(settings.key_store_dir());
    let study = settings.study.clone();

    // Stage 1: validate everything before anything is published.
    let mut skipped_lines = Vec::new();
    let (members, total): (Box<dyn Iterator<Item = anyhow::Result<Member>> + Send>, u64) = match (
        &args.csv,
        args.synthetic,
    ) {
        (Some(path), _) => {
            let csv = CsvCohort::open(path, &study)?;
            let validation = csv.validate()?;
            for bad in &validation.bad {
                eprintln!("{}: line {}: {}", path.display(), bad.line, bad.reason);
            }
            if !validation.bad.is_empty() && !args.skip_bad_rows {
                bail!(
                    "{} bad row(s) in {}; nothing was published (fix them, or use --skip-bad-rows to enroll the rest)",
                    validation.bad.len(),
                    path.display()
                );
            }
            skipped_lines = validation.bad.iter().map(|b| b.line).collect();
            let bad: HashSet<u64> = skipped_lines.iter().copied().collect();
            (Box::new(csv.members(bad)?), validation.participants)
        }
        (None, Some(n)) => (Box::new(Synthetic::new(&study, n, args.seed)), n),
        (None, None) => bail!("give --csv FILE or --synthetic N"),
    };

    ensure_dir(store.dir())?;
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| default_journal(&store, &args));
    let mut journal = Journal::open(&journal_path)?;
    let confirmed: Arc<HashSet<ParticipantId>> =
        Arc::new(journal.confirmed().keys().cloned().collect());
    let run_id = journal.run_id().to_owned();

    let client = Client::connect(settings, "producer-enroll").await?;

    // Stage 2: prepare windows on rayon, at most two ahead of the publisher.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Prepared>>(2);
    let window = usize::try_from(args.window).unwrap_or(128);
    let bits = args.bits.unwrap_or(settings.participant.key_bits);
    let prep_store = store.clone();
    let prep_study = study.clone();
    let preparer = tokio::task::spawn_blocking(move || -> anyhow::Result<PrepStats> {
        let mut stats = PrepStats::default();
        let mut members = members;
        // The first windows are small and each is twice the last, up to --window: the first
        // submissions reach the broker (and the workers) after a few participants are
        // encrypted, not after a whole window; later windows are full size, so a large cohort
        // still pays one confirm wait and one journal fsync per --window participants.
        let mut size = FIRST_WINDOW.min(window);
        loop {
            let mut batch = Vec::with_capacity(size);
            while batch.len() < size {
                match members.next() {
                    None => break,
                    Some(member) => {
                        let member = member?;
                        if confirmed.contains(&member.id) {
                            stats.already_done += 1;
                        } else {
                            batch.push(member);
                        }
                    }
                }
            }
            if batch.is_empty() {
                return Ok(stats);
            }
            let prepared = batch
                .into_par_iter()
                .map(|m| prepare(&prep_study, &prep_store, bits, &run_id, m))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if tx.blocking_send(prepared).is_err() {
                // The publisher stopped (it reports why).
                return Ok(stats);
            }
            size = (size * 2).min(window);
        }
    });

    // Stage 3: publish each window with confirms, then journal it.
    let mut progress = Progress::new("participants", Some(total));
    // Participants confirmed by an earlier run count as done from the start.
    progress.inc((journal.confirmed().len() as u64).min(total));
    let (mut published, mut readings, mut keys_created) = (0u64, 0u64, 0u64);
    let outcome: anyhow::Result<()> = async {
        while let Some(window) = rx.recv().await {
            let ids: Vec<ParticipantId> = window.iter().map(|p| p.participant.clone()).collect();
            let declared = client
                .declare_reply_queues(&ids)
                .await
                .context("declaring the reply queues")?;
            let messages: Vec<_> = window
                .iter()
                .zip(&declared)
                .map(|(p, (reply_to, _))| client.submission_message(&p.submission, reply_to))
                .collect::<Result<_, _>>()
                .context("preparing the submissions")?;
            client
                .publish_all(&messages)
                .await
                .context("publishing submissions")?;
            journal.record(
                window
                    .iter()
                    .map(|p| (p.participant.clone(), p.submission.submission_id.clone())),
            )?;
            for p in &window {
                readings += p.readings as u64;
                keys_created += u64::from(p.key_created);
            }
            published += window.len() as u64;
            progress.inc(window.len() as u64);
        }
        Ok(())
    }
    .await;
    drop(rx);
    let prep = preparer.await.context("preparing thread")?;
    progress.finish();
    client.close().await;

    let elapsed = started.elapsed();
    let already_done = prep.as_ref().map_or(0, |s| s.already_done);
    let rate = published as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "enrollment: {published} participant(s) published ({published} submission(s), {readings} reading(s), {keys_created} key(s) created), {already_done} already done, {} bad row(s) skipped{}, in {:.1} s ({rate:.1} participants/s); journal {}",
        skipped_lines.len(),
        if skipped_lines.is_empty() {
            String::new()
        } else {
            format!(" (lines {})", join_lines(&skipped_lines))
        },
        elapsed.as_secs_f64(),
        journal.path().display(),
    );
    outcome.with_context(|| {
        format!(
            "enrollment stopped after {published} confirmed participant(s); run the same command again to resume"
        )
    })?;
    prep.with_context(|| {
        format!(
            "enrollment stopped after {published} confirmed participant(s); run the same command again to resume"
        )
    })?;
    Ok(())
}

fn join_lines(lines: &[u64]) -> String {
    let shown: Vec<String> = lines.iter().take(20).map(u64::to_string).collect();
    let more = lines.len().saturating_sub(20);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
