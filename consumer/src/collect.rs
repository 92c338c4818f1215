//! `consumer collect`: the results of a whole cohort into one file.
//!
//! For every participant (the key store's, or `--participants FILE`), the messages waiting in the
//! reply queue are counted (a passive declare), exactly that many are taken, decrypted in
//! parallel (rayon), written one row per submission and flushed, and only then acked. A result
//! whose submission id was already written in this run is a duplicate (at-least-once delivery):
//! acked, counted, not written again. With `--wait`, rounds repeat over the participants still
//! waiting until every expected result arrived or the time is up; expected is one result per
//! participant, or with `--journal` (from `producer enroll`) exactly the journal's submissions.
//!
//! Faults: a lost connection is re-established (for at most `broker.reconnect_timeout`) and
//! collecting goes on; results not acked before the loss are redelivered and recognised as
//! duplicates. A re-run after a crash appends to the same file: the submissions the file already
//! holds count as collected, and their redelivered results are acked, not written again.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pipeline::ParticipantId;
use pipeline::client::{Client, Received};
use pipeline::config::Settings;
use pipeline::journal::Journal;
use pipeline::keystore::KeyStore;
use pipeline::messages::ResultStatus;
use pipeline::progress::Progress;
use rayon::prelude::*;
use tracing::{info, warn};

use crate::rows::{RowFormat, RowOutcome, RowWriter};

/// Arguments of `collect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// File to append one row per submission to.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Row format.
    #[arg(long, value_enum, default_value_t = RowFormat::Csv)]
    format: RowFormat,
    /// Participants to collect, one id per line ('#' starts a comment); default: every
    /// participant in the key store.
    #[arg(long, value_name = "FILE")]
    participants: Option<PathBuf>,
    /// Enrollment journal of `producer enroll`: expect exactly its submissions (and, without
    /// --participants, collect its participants).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Keep collecting until every expected result arrived, for at most this long (e.g. 30s);
    /// without it, one pass over what is queued now.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    wait: Option<Duration>,
}

/// Counters for the summary.
#[derive(Debug, Default)]
struct Counts {
    results: u64,
    errors: u64,
    duplicates: u64,
    unreadable: u64,
    /// Rows found in the output file from an earlier run.
    earlier: u64,
}

/// What a participant still owes.
enum Expected {
    /// At least one result.
    Any,
    /// These submission ids.
    Ids(HashSet<String>),
}

fn read_participants(path: &PathBuf) -> anyhow::Result<Vec<ParticipantId>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut ids = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        ids.push(
            ParticipantId::new(line)
                .with_context(|| format!("{}: line {}", path.display(), i + 1))?,
        );
    }
    Ok(ids)
}

/// Marks `submission_id` of `participant` as collected; true when that completed the participant.
fn complete(
    expected: &mut HashMap<ParticipantId, Expected>,
    participant: &ParticipantId,
    submission_id: &str,
) -> bool {
    let done = match expected.get_mut(participant) {
        Some(Expected::Ids(ids)) => {
            ids.remove(submission_id);
            ids.is_empty()
        }
        Some(Expected::Any) => true,
        None => false,
    };
    done && expected.remove(participant).is_some()
}

/// Collects; exit status non-zero on failure, or when `--wait` ran out with results missing.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = KeyStore::new(settings.key_store_dir());
    let journal = match &args.journal {
        Some(path) => Some(Journal::read(path)?.1),
        None => None,
    };
    let participants = match (&args.participants, &journal) {
        (Some(path), _) => read_participants(path)?,
        (None, Some(confirmed)) => {
            let mut ids: Vec<ParticipantId> = confirmed.keys().cloned().collect();
            ids.sort();
            ids
        }
        (None, None) => store.participants()?,
    };
    if participants.is_empty() {
        bail!(
            "no participants to collect (key store {} is empty)",
            store.dir().display()
        );
    }
    // A missing key is an error before anything is taken. Keys are loaded only when results
    // are waiting, one participant at a time, so memory does not grow with the cohort.
    if let Some(missing) = participants.iter().find(|p| !store.contains(p)) {
        store.load_private(missing)?;
    }
    let mut expected: HashMap<ParticipantId, Expected> = participants
        .iter()
        .map(|p| {
            let e = match journal.as_ref().and_then(|j| j.get(p)) {
                Some(id) => Expected::Ids(HashSet::from([id.clone()])),
                None => Expected::Any,
            };
            (p.clone(), e)
        })
        .collect();

    let mut writer = RowWriter::open(&args.out, args.format, &settings.study)
        .with_context(|| format!("opening {}", args.out.display()))?;
    if writer.repaired() {
        warn!(
            file = %args.out.display(),
            "removed a row cut short by an earlier run; its result is still in the queue"
        );
    }
    let mut counts = Counts::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut progress = Progress::new("participants complete", Some(participants.len() as u64));
    // Rows of an earlier run: collected already (their results may come again if that run died
    // before acking them).
    for (participant, submission_id) in writer.existing() {
        if !seen.insert(submission_id.clone()) {
            continue;
        }
        counts.earlier += 1;
        let Ok(participant) = ParticipantId::new(participant) else {
            continue;
        };
        if complete(&mut expected, &participant, submission_id) {
            progress.inc(1);
        }
    }
    if counts.earlier > 0 {
        info!(
            rows = counts.earlier,
            file = %args.out.display(),
            "the output file already holds results of an earlier run; they are not written again"
        );
    }
    let client = Client::connect(settings, "consumer-collect").await?;
    let deadline = args.wait.map(|w| Instant::now() + w);
    let mut round: Vec<ParticipantId> = participants.clone();
    loop {
        for participant in &round {
            let queue = client.declare_reply_queue(participant).await?;
            let waiting = client
                .message_count(&queue)
                .await
                .with_context(|| format!("counting the results in {queue}"))?;
            if waiting == 0 {
                continue;
            }
            let mut stream = client
                .results(participant, settings.broker.prefetch)
                .await?;
            let mut batch: Vec<Received> = Vec::new();
            while batch.len() < waiting as usize {
                match stream.next(Duration::from_secs(5)).await? {
                    Some(r) => batch.push(r),
                    None => break,
                }
            }
            let key = store.load_private(participant)?;
            let (batch, decrypted) = tokio::task::spawn_blocking(move || {
                let decrypted: Vec<Option<Result<Vec<_>, String>>> = batch
                    .par_iter()
                    .map(|r| match &r.result {
                        Ok(m) if m.status == ResultStatus::Ok => {
                            Some(m.decrypt(&key).map_err(|e| format!("cannot decrypt: {e}")))
                        }
                        _ => None,
                    })
                    .collect();
                (batch, decrypted)
            })
            .await
            .context("decryption thread")?;
            for (received, decrypted) in batch.iter().zip(decrypted) {
                let result = match &received.result {
                    Err(reason) => {
                        counts.unreadable += 1;
                        warn!(%participant, %reason, "discarding a message that is not a result");
                        stream.discard(received).await?;
                        continue;
                    }
                    Ok(result) => result,
                };
                if !seen.insert(result.submission_id.clone()) {
                    counts.duplicates += 1;
                } else {
                    let outcome = match (&result.status, &decrypted) {
                        (ResultStatus::Ok, Some(Ok(values))) => RowOutcome::Ok(values),
                        (ResultStatus::Ok, Some(Err(reason))) => RowOutcome::Error(reason.clone()),
                        _ => RowOutcome::Error(result.error.as_ref().map_or_else(
                            || "refused (no reason given)".to_owned(),
                            |e| format!("{}: {}", e.kind, e.message),
                        )),
                    };
                    if matches!(outcome, RowOutcome::Error(_)) {
                        counts.errors += 1;
                    }
                    writer
                        .write(participant.as_str(), result, &outcome)
                        .with_context(|| format!("writing {}", args.out.display()))?;
                    counts.results += 1;
                    if complete(&mut expected, participant, &result.submission_id) {
                        progress.inc(1);
                    }
                }
                // Only now: the row is in the file (flushed to the OS).
                stream.ack(received).await?;
            }
            stream.close().await;
        }
        let out_of_time = deadline.is_none_or(|d| Instant::now() >= d);
        if expected.is_empty() || out_of_time {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        round = participants
            .iter()
            .filter(|p| expected.contains_key(*p))
            .cloned()
            .collect();
    }
    writer
        .sync()
        .with_context(|| format!("writing {}", args.out.display()))?;
    progress.finish();
    client.close().await;

    let elapsed = started.elapsed().as_secs_f64();
    let mut still: Vec<&ParticipantId> = expected.keys().collect();
    still.sort();
    let shown: Vec<String> = still.iter().take(10).map(ToString::to_string).collect();
    println!(
        "collect: {} participant(s), {} result(s) written ({} error(s)), {} already in the file, {} duplicate(s), {} unreadable, {} participant(s) still waiting{} in {elapsed:.1} s ({:.1} results/s) -> {}",
        participants.len(),
        counts.results,
        counts.errors,
        counts.earlier,
        counts.duplicates,
        counts.unreadable,
        still.len(),
        if still.is_empty() {
            String::new()
        } else {
            format!(
                " ({}{})",
                shown.join(", "),
                if still.len() > 10 { ", ..." } else { "" }
            )
        },
        counts.results as f64 / elapsed.max(1e-9),
        args.out.display(),
    );
    if args.wait.is_some() && !still.is_empty() {
        bail!(
            "{} participant(s) still waiting for results after {}",
            still.len(),
            humantime::format_duration(args.wait.unwrap_or_default())
        );
    }
    Ok(())
}
