//! The enrollment journal: which participants' submissions the broker has confirmed, so that a
//! re-run of the same enrollment (after a crash, a lost connection or Ctrl-C) publishes only
//! what is missing and nothing twice.
//!
//! A text file, appended to after every confirmed window and fsynced then (one fsync per window,
//! not per message):
//! ```text
//! # enrollment journal v1 run=<run id>
//! p-001<TAB><submission id>
//! p-002<TAB><submission id>
//! ```
//! Submission ids are derived from the run id and the participant (`<run>-<participant>`), so
//! the one case the journal cannot cover (a crash after the broker confirmed a window but before
//! the journal reached the disk) re-publishes a submission under the *same* id, which the
//! consumer recognises as a duplicate. A last line without its newline (a crash mid-write) is
//! dropped on open.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use pipeline::ParticipantId;

const HEADER: &str = "# enrollment journal v1 run=";

/// Journal failures.
#[derive(Debug, Error)]
pub enum JournalError {
    /// Reading or writing the file failed.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file is not a journal written by this program.
    #[error("journal {path}, line {line}: {reason}")]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// An open enrollment journal: the confirmed participants, and the file to append to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    run_id: String,
    confirmed: HashMap<ParticipantId, String>,
}

impl Journal {
    /// Opens the journal at `path`, creating it (with a fresh run id) when missing.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        if !path.exists() {
            let run_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
            let mut file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(path)
                .map_err(io_err)?;
            writeln!(file, "{HEADER}{run_id}").map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            return Ok(Journal {
                path: path.to_owned(),
                file,
                run_id,
                confirmed: HashMap::new(),
            });
        }
        let (run_id, confirmed, valid_len) = Self::read(path)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_err)?;
        // Cut a torn last record, so that the next append starts on a line of its own.
        if file.metadata().map_err(io_err)?.len() != valid_len {
            file.set_len(valid_len).map_err(io_err)?;
        }
        Ok(Journal {
            path: path.to_owned(),
            file,
            run_id,
            confirmed,
        })
    }

    /// Reads a journal without opening it for writing: run id, confirmed submissions and the
    /// length of its complete lines.
    #[allow(clippy::type_complexity)]
    pub fn read(
        path: &Path,
    ) -> Result<(String, HashMap<ParticipantId, String>, u64), JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        let corrupt = |line, reason: String| JournalError::Corrupt {
            path: path.to_owned(),
            line,
            reason,
        };
        let mut reader = BufReader::new(File::open(path).map_err(io_err)?);
        let mut run_id = None;
        let mut confirmed = HashMap::new();
        let mut valid_len = 0u64;
        let mut buf = String::new();
        for number in 1.. {
            buf.clear();
            let read = reader.read_line(&mut buf).map_err(io_err)?;
            if read == 0 || !buf.ends_with('\n') {
                break;
            }
            valid_len += read as u64;
            let line = buf.trim_end();
            if number == 1 {
                run_id = Some(
                    line.strip_prefix(HEADER)
                        .filter(|r| !r.is_empty())
                        .ok_or_else(|| corrupt(1, "not an enrollment journal".into()))?
                        .to_owned(),
                );
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let (participant, submission) = line
                .split_once('\t')
                .ok_or_else(|| corrupt(number, "expected PARTICIPANT<TAB>SUBMISSION".into()))?;
            let participant =
                ParticipantId::new(participant).map_err(|e| corrupt(number, e.to_string()))?;
            confirmed.insert(participant, submission.to_owned());
        }
        let run_id = run_id.ok_or_else(|| corrupt(1, "empty file".into()))?;
        Ok((run_id, confirmed, valid_len))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `participant`'s submission was confirmed in an earlier window or run.
    pub fn is_confirmed(&self, participant: &ParticipantId) -> bool {
        self.confirmed.contains_key(participant)
    }

    /// Participants confirmed so far.
    pub fn confirmed(&self) -> &HashMap<ParticipantId, String> {
        &self.confirmed
    }

    /// The submission id this enrollment uses for `participant` (stable across re-runs).
    pub fn submission_id(&self, participant: &ParticipantId) -> String {
        submission_id(&self.run_id, participant)
    }

    /// The run id (part of every submission id).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Records a confirmed window and makes it durable (one write, one fsync).
    pub fn record(
        &mut self,
        window: impl IntoIterator<Item = (ParticipantId, String)>,
    ) -> Result<(), JournalError> {
        let mut text = String::new();
        let mut added = Vec::new();
        for (participant, submission) in window {
            text.push_str(participant.as_str());
            text.push('\t');
            text.push_str(&submission);
            text.push('\n');
            added.push((participant, submission));
        }
        if added.is_empty() {
            return Ok(());
        }
        let io_err = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(text.as_bytes()).map_err(io_err)?;
        self.file.sync_data().map_err(io_err)?;
        self.confirmed.extend(added);
        Ok(())
    }
}

/// Submission id of `participant` in enrollment run `run_id`.
pub fn submission_id(run_id: &str, participant: &ParticipantId) -> String {
    format!("enr-{run_id}-{participant}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_journal_remembers_and_drops_a_torn_last_line() {
        let path = std::env::temp_dir().join(format!("journal-{}", uuid::Uuid::new_v4()));
        let a = ParticipantId::new("a").unwrap();
        let b = ParticipantId::new("b").unwrap();
        let mut journal = Journal::open(&path).unwrap();
        let id_a = journal.submission_id(&a);
        journal.record([(a.clone(), id_a.clone())]).unwrap();
        let run = journal.run_id().to_owned();
        drop(journal);
        // A crash in the middle of the next record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"b\tenr-x").unwrap();
        drop(f);

        let mut journal = Journal::open(&path).unwrap();
        assert_eq!(journal.run_id(), run);
        assert!(journal.is_confirmed(&a));
        assert!(!journal.is_confirmed(&b));
        assert_eq!(journal.submission_id(&a), id_a);
        let id_b = journal.submission_id(&b);
        journal.record([(b.clone(), id_b)]).unwrap();
        drop(journal);
        let (_, confirmed, _) = Journal::read(&path).unwrap();
        assert_eq!(confirmed.len(), 2);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let path = std::env::temp_dir().join(format!("journal-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "participant,glucose\n").unwrap();
        assert!(matches!(
            Journal::open(&path),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
        std::fs::remove_file(&path).unwrap();
    }
}
