//! The file `consumer collect` writes: one row per submission, CSV or JSON lines, appended to
//! (a re-run adds to the same file; the CSV header is written only into an empty file).
//!
//! A run killed between writing a row and acking its message leaves the row in the file and
//! the message in the queue; so on open the writer reads which submissions the file already
//! holds ([`RowWriter::existing`]) and `collect` acks their redelivered results without writing
//! them again. A row cut short by the kill (no final newline) is removed on open: its message
//! was not acked either and comes back.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read as _, Write};
use std::path::Path;

use participant::text::{csv_cell, escaped};
use pipeline::messages::{DecryptedValue, ResultMessage, ResultStatus};
use pipeline::study::Study;
use serde_json::json;

/// Output file format of `collect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RowFormat {
    /// `participant,submission_id,status,<one column per study output>,skipped,error`.
    Csv,
    /// One JSON object per line, outputs with their units.
    Jsonl,
}

/// What a row says about its submission.
pub enum RowOutcome<'a> {
    /// Decrypted outputs.
    Ok(&'a [DecryptedValue]),
    /// The worker refused the submission, or the result could not be decrypted.
    Error(String),
}

enum Inner {
    // Boxed: the csv writer carries its own buffer and state, far larger than a BufWriter.
    Csv(Box<csv::Writer<File>>),
    Jsonl(BufWriter<File>),
}

/// Appends result rows to a file, each flushed to the OS before the caller acks its message.
pub struct RowWriter {
    inner: Inner,
    outputs: Vec<String>,
    file: File,
    existing: Vec<(String, String)>,
    torn: bool,
}

impl RowWriter {
    /// Opens (appending) `path`; the CSV columns follow `study`'s outputs.
    pub fn open(path: &Path, format: RowFormat, study: &Study) -> io::Result<RowWriter> {
        let (existing, torn) = repair_and_scan(path, format)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let empty = file.metadata()?.len() == 0;
        let outputs: Vec<String> = study.outputs.iter().map(|o| o.name.clone()).collect();
        let sync_handle = file.try_clone()?;
        let inner = match format {
            RowFormat::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(file);
                if empty {
                    let mut header = vec!["participant", "submission_id", "status"];
                    header.extend(outputs.iter().map(String::as_str));
                    header.extend(["skipped", "error"]);
                    w.write_record(&header)?;
                    w.flush()?;
                }
                Inner::Csv(Box::new(w))
            }
            RowFormat::Jsonl => Inner::Jsonl(BufWriter::new(file)),
        };
        Ok(RowWriter {
            inner,
            outputs,
            file: sync_handle,
            existing,
            torn,
        })
    }

    /// `(participant, submission id)` of every row the file held when it was opened.
    pub fn existing(&self) -> &[(String, String)] {
        &self.existing
    }

    /// Whether a row cut short by an earlier run was removed on open.
    pub fn repaired(&self) -> bool {
        self.torn
    }

    /// Writes one row and flushes it. Strings from the wire (submission id, skipped metrics,
    /// error messages) are [`escaped`]; in CSV each such cell is also neutralised
    /// ([`csv_cell`]) so that a spreadsheet cannot run it as a formula.
    pub fn write(
        &mut self,
        participant: &str,
        result: &ResultMessage,
        outcome: &RowOutcome<'_>,
    ) -> io::Result<()> {
        let status = match (result.status, outcome) {
            (ResultStatus::Error, _) => "error",
            (ResultStatus::Ok, RowOutcome::Ok(_)) => "ok",
            (ResultStatus::Ok, RowOutcome::Error(_)) => "undecryptable",
        };
        match &mut self.inner {
            Inner::Csv(w) => {
                let mut row = vec![
                    csv_cell(participant).into_owned(),
                    csv_cell(&result.submission_id).into_owned(),
                    status.to_owned(),
                ];
                for name in &self.outputs {
                    let value = match outcome {
                        RowOutcome::Ok(values) => values
                            .iter()
                            .find(|v| &v.name == name)
                            .map(|v| v.value.to_string()),
                        RowOutcome::Error(_) => None,
                    };
                    row.push(value.unwrap_or_default());
                }
                row.push(csv_cell(&result.skipped.join(" ")).into_owned());
                row.push(match outcome {
                    RowOutcome::Error(reason) => csv_cell(reason).into_owned(),
                    RowOutcome::Ok(_) => String::new(),
                });
                w.write_record(&row)?;
                w.flush()
            }
            Inner::Jsonl(w) => {
                let value = match outcome {
                    RowOutcome::Ok(values) => json!({
                        "participant": escaped(participant),
                        "submission_id": escaped(&result.submission_id),
                        "status": status,
                        "outputs": values.iter().map(|v| json!({"name": escaped(&v.name), "value": v.value, "unit": escaped(&v.unit)})).collect::<Vec<_>>(),
                        "skipped": result.skipped.iter().map(|s| escaped(s)).collect::<Vec<_>>(),
                    }),
                    RowOutcome::Error(reason) => json!({
                        "participant": escaped(participant),
                        "submission_id": escaped(&result.submission_id),
                        "status": status,
                        "error": escaped(reason),
                    }),
                };
                writeln!(w, "{value}")?;
                w.flush()
            }
        }
    }

    /// Makes everything written durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// Reads the rows already in `path` (if any): drops a last line without its newline (a row cut
/// short by a crash) and returns `(participant, submission id)` of every complete row, and
/// whether a line was dropped.
fn repair_and_scan(path: &Path, format: RowFormat) -> io::Result<(Vec<(String, String)>, bool)> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
        Err(err) => return Err(err),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let torn = complete < bytes.len();
    if torn {
        file.set_len(complete as u64)?;
        file.sync_all()?;
        bytes.truncate(complete);
    }
    let bad = |line: usize, what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line {line}: {what} (not a file written by consumer collect?)"),
        )
    };
    let mut rows = Vec::new();
    match format {
        RowFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(true)
                .from_reader(bytes.as_slice());
            let headers = reader.headers().map_err(io::Error::other)?.clone();
            let column = |name: &str| headers.iter().position(|h| h == name);
            let (Some(p), Some(s)) = (column("participant"), column("submission_id")) else {
                if bytes.is_empty() {
                    return Ok((rows, torn));
                }
                return Err(bad(1, "no participant and submission_id columns"));
            };
            for (i, record) in reader.records().enumerate() {
                let record = record.map_err(io::Error::other)?;
                match (record.get(p), record.get(s)) {
                    (Some(p), Some(s)) => rows.push((p.to_owned(), s.to_owned())),
                    _ => return Err(bad(i + 2, "missing fields")),
                }
            }
        }
        RowFormat::Jsonl => {
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let value: serde_json::Value =
                    serde_json::from_slice(line).map_err(|e| bad(i + 1, &e.to_string()))?;
                match (
                    value["participant"].as_str(),
                    value["submission_id"].as_str(),
                ) {
                    (Some(p), Some(s)) => rows.push((p.to_owned(), s.to_owned())),
                    _ => return Err(bad(i + 1, "no participant and submission_id")),
                }
            }
        }
    }
    Ok((rows, torn))
}
