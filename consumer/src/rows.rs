//! The file `consumer collect` writes: one row per submission, CSV or JSON lines, appended to
//! (a re-run adds to the same file; the CSV header is written only into an empty file).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

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
}

impl RowWriter {
    /// Opens (appending) `path`; the CSV columns follow `study`'s outputs.
    pub fn open(path: &Path, format: RowFormat, study: &Study) -> io::Result<RowWriter> {
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
        })
    }

    /// Writes one row and flushes it.
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
                    participant.to_owned(),
                    result.submission_id.clone(),
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
                row.push(result.skipped.join(" "));
                row.push(match outcome {
                    RowOutcome::Error(reason) => reason.clone(),
                    RowOutcome::Ok(_) => String::new(),
                });
                w.write_record(&row)?;
                w.flush()
            }
            Inner::Jsonl(w) => {
                let value = match outcome {
                    RowOutcome::Ok(values) => json!({
                        "participant": participant,
                        "submission_id": result.submission_id,
                        "status": status,
                        "outputs": values.iter().map(|v| json!({"name": v.name, "value": v.value, "unit": v.unit})).collect::<Vec<_>>(),
                        "skipped": result.skipped,
                    }),
                    RowOutcome::Error(reason) => json!({
                        "participant": participant,
                        "submission_id": result.submission_id,
                        "status": status,
                        "error": reason,
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
