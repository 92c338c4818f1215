//! Printing decrypted results as a table or as JSON lines.

use std::io::{self, Write};

use participant::text::escaped;
use pipeline::messages::{DecryptedValue, ResultMessage, ResultStatus};
use serde_json::json;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable: one block per submission.
    Table,
    /// One JSON object per line and submission.
    Json,
}

/// Writes results to stdout.
pub struct Printer {
    format: Format,
    out: io::Stdout,
}

impl Printer {
    /// A printer for `format`.
    pub fn new(format: Format) -> Self {
        Printer {
            format,
            out: io::stdout(),
        }
    }

    /// Prints one result; `decrypted` is its outputs or why they could not be decrypted. Every
    /// string from the result (ids, names, units, error kinds and messages) is printed
    /// [`escaped`], in JSON too: a terminal shows JSON lines as well.
    pub fn print(
        &mut self,
        result: &ResultMessage,
        decrypted: Result<Vec<DecryptedValue>, String>,
    ) -> io::Result<()> {
        let mut out = self.out.lock();
        match self.format {
            Format::Json => {
                let value = match (&result.status, &decrypted) {
                    (ResultStatus::Error, _) => json!({
                        "submission_id": escaped(&result.submission_id),
                        "status": "error",
                        "error": result.error.as_ref().map(|e| json!({
                            "kind": escaped(&e.kind),
                            "message": escaped(&e.message),
                        })),
                    }),
                    (ResultStatus::Ok, Ok(values)) => json!({
                        "submission_id": escaped(&result.submission_id),
                        "status": "ok",
                        "outputs": values.iter().map(|v| json!({"name": escaped(&v.name), "value": v.value, "unit": escaped(&v.unit)})).collect::<Vec<_>>(),
                        "skipped": result.skipped.iter().map(|s| escaped(s)).collect::<Vec<_>>(),
                    }),
                    (ResultStatus::Ok, Err(reason)) => json!({
                        "submission_id": escaped(&result.submission_id),
                        "status": "undecryptable",
                        "error": escaped(reason),
                    }),
                };
                writeln!(out, "{value}")
            }
            Format::Table => {
                writeln!(out, "submission {}", escaped(&result.submission_id))?;
                match (&result.status, &decrypted) {
                    (ResultStatus::Error, _) => {
                        let (kind, message) = result
                            .error
                            .as_ref()
                            .map_or(("unknown", "no reason given"), |e| {
                                (e.kind.as_str(), e.message.as_str())
                            });
                        writeln!(out, "  ERROR {}: {}", escaped(kind), escaped(message))?;
                    }
                    (ResultStatus::Ok, Ok(values)) => {
                        let names: Vec<_> = values.iter().map(|v| escaped(&v.name)).collect();
                        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
                        for (v, name) in values.iter().zip(&names) {
                            writeln!(
                                out,
                                "  {:width$}  {:>12.4} {}",
                                name,
                                v.value,
                                escaped(&v.unit),
                                width = width
                            )?;
                        }
                        if !result.skipped.is_empty() {
                            writeln!(
                                out,
                                "  (not computed, metric missing: {})",
                                escaped(&result.skipped.join(", "))
                            )?;
                        }
                    }
                    (ResultStatus::Ok, Err(reason)) => {
                        writeln!(out, "  ERROR cannot decrypt: {}", escaped(reason))?;
                    }
                }
                writeln!(out)
            }
        }
    }

    /// Flushes what is left.
    pub fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
