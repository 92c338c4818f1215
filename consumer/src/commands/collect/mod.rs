//! `consumer collect`: the results of a whole cohort into one file.
//!
//! Every participant's reply queue (the key store's participants, or `--participants FILE`) is
//! declared once, which also tells how many results it holds. Then all the queues that owe
//! something are consumed at once, on one channel ([`Client::cohort_results`]): the broker pushes
//! each result as it arrives, whichever participant it is for, so nothing is polled and one slow
//! participant holds up nobody. What has arrived is decrypted together on rayon (key load and
//! decryption, off the async runtime), written one row per submission and flushed, and only then
//! acked. A result whose submission id was already written in this run is a duplicate
//! (at-least-once delivery): acked, counted, not written again.
//!
//! Without `--wait`, one pass: the results queued at the start are taken (the pass ends early
//! if nothing arrives for 5 s). With `--wait`, collecting goes on until every expected result
//! arrived (and what was queued at the start was taken) or the time is up; expected is one
//! result per participant, or with `--journal` (from `producer enroll`) exactly the journal's
//! submissions.
//!
//! Faults: a lost connection is re-established (for at most `broker.reconnect_timeout`) and
//! every queue is consumed again; results not acked before the loss are redelivered and
//! recognised as duplicates. A re-run after a crash appends to the same file: the submissions
//! the file already holds count as collected, and their redelivered results are acked, not
//! written again.

mod rows;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use participant::Client;
use participant::journal::Journal;
use participant::keystore::{KeyStore, KeyStoreError};
use participant::progress::Progress;
use pipeline::ParticipantId;
use pipeline::config::Settings;
use pipeline::messages::ResultStatus;
use rayon::prelude::*;
use tracing::{info, warn};

use rows::{RowFormat, RowOutcome, RowWriter};

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

/// Without `--wait`: the pass ends when no result arrived for this long (results counted at the
/// start but taken meanwhile by another consumer would otherwise be waited for forever).
const NO_WAIT_IDLE: Duration = Duration::from_secs(5);

/// Most results decrypted in one go (what has arrived is taken, up to this many).
const MAX_BATCH: usize = 256;

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
    // Every reply queue is declared once (it may not exist yet: collecting can start before the
    // enrollment), and the declare's answer says how many results it holds now. Those are all
    // taken, even for participants already complete (duplicates left by a crash are acked).
    // Then every queue that owes something is consumed at once on one channel: the broker
    // pushes each result as it arrives, nothing is polled.
    let mut owed: HashMap<usize, u32> = HashMap::new();
    let mut consumed = Vec::new();
    let declared = client
        .declare_reply_queues(&participants)
        .await
        .context("declaring the reply queues")?;
    for (participant, (queue, ready)) in participants.iter().zip(declared) {
        let waited_for = args.wait.is_some() && expected.contains_key(participant);
        if ready > 0 || waited_for {
            if ready > 0 {
                owed.insert(consumed.len(), ready);
            }
            consumed.push((participant.clone(), queue));
        }
    }
    let mut stream = None;
    if !consumed.is_empty() {
        stream = Some(
            client
                .cohort_results(consumed, settings.broker.prefetch)
                .await?,
        );
    }
    let keys = Arc::new(store);
    while let Some(results) = stream.as_mut() {
        if owed.is_empty() && (args.wait.is_none() || expected.is_empty()) {
            break;
        }
        // Without --wait, a quiet spell ends the pass (results counted but taken by someone
        // else); with it, only the deadline does.
        let idle = match deadline {
            None => NO_WAIT_IDLE,
            Some(d) => d.saturating_duration_since(Instant::now()),
        };
        let Some(first) = results.next(idle).await? else {
            break;
        };
        // Whatever else has arrived is decrypted together, across the cores.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match results.try_next() {
                Some(r) => batch.push(r),
                None => break,
            }
        }
        let participants_of: Vec<ParticipantId> = batch
            .iter()
            .map(|r| results.queues()[r.index].0.clone())
            .collect();
        let keys = Arc::clone(&keys);
        let (batch, participants_of, decrypted) = tokio::task::spawn_blocking(move || {
            let decrypted = batch
                .par_iter()
                .zip(&participants_of)
                .map(|(r, participant)| match &r.result {
                    Ok(m) if m.status == ResultStatus::Ok => {
                        // A key that cannot be loaded is fatal, as a missing one is at start.
                        let key = keys.load_private(participant)?;
                        Ok(Some(
                            m.decrypt(&key).map_err(|e| format!("cannot decrypt: {e}")),
                        ))
                    }
                    _ => Ok(None),
                })
                .collect::<Result<Vec<_>, KeyStoreError>>();
            (batch, participants_of, decrypted)
        })
        .await
        .context("decryption thread")?;
        let decrypted = decrypted?;
        for ((received, participant), decrypted) in
            batch.iter().zip(&participants_of).zip(decrypted)
        {
            if let Some(left) = owed.get_mut(&received.index) {
                *left -= 1;
                if *left == 0 {
                    owed.remove(&received.index);
                }
            }
            let result = match &received.result {
                Err(reason) => {
                    counts.unreadable += 1;
                    warn!(%participant, reason = %participant::text::escaped(reason), "discarding a message that is not a result");
                    received.discard().await?;
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
            received.ack().await?;
        }
    }
    if let Some(results) = stream {
        results.close().await;
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
