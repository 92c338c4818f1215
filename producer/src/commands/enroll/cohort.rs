//! Where an enrollment's participants come from: a CSV file, read twice as a stream (a
//! validation pass, then the enrollment pass), or a seeded synthetic cohort.
//!
//! CSV: a header row (participant id column, then one column per metric of the study), then rows;
//! several rows of one participant form a series, an empty cell is no reading. **The rows of a
//! participant must be contiguous**: that is what lets the enrollment pass hand out one
//! participant at a time without holding the file. The validation pass keeps only the first line
//! of each participant id seen (to report a participant that reappears later) and the numbers of
//! bad lines; no readings are kept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use pipeline::ParticipantId;
use pipeline::study::{Metric, Study};
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

/// One participant's readings, ready to be encrypted.
#[derive(Debug)]
pub struct Member {
    /// The participant.
    pub id: ParticipantId,
    /// Readings by metric (series in file order).
    pub readings: BTreeMap<String, Vec<f64>>,
}

/// A row the validation pass refused.
#[derive(Debug, Clone)]
pub struct BadRow {
    /// 1-based line in the file.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// What the validation pass found.
#[derive(Debug, Default)]
pub struct Validation {
    /// Distinct participants with at least one good row.
    pub participants: u64,
    /// Good rows.
    pub rows: u64,
    /// Bad rows, in file order.
    pub bad: Vec<BadRow>,
}

/// A CSV cohort file with its checked header.
pub struct CsvCohort {
    path: PathBuf,
    metrics: Vec<Metric>,
}

fn reader(path: &Path) -> anyhow::Result<csv::Reader<File>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(file))
}

impl CsvCohort {
    /// Opens `path` and checks its header against the study: every column after the first must
    /// be one of its metrics, once. A bad header is fatal (no row could be read correctly).
    pub fn open(path: &Path, study: &Study) -> anyhow::Result<CsvCohort> {
        let mut rdr = reader(path)?;
        let header = rdr
            .headers()
            .with_context(|| format!("{}: line 1: reading the header", path.display()))?
            .clone();
        if header.len() < 2 {
            bail!(
                "{}: line 1: the header must name the participant id column, then at least one metric",
                path.display()
            );
        }
        let mut metrics = Vec::new();
        for name in header.iter().skip(1) {
            let Some(metric) = study.metric(name) else {
                let known: Vec<&str> = study.metrics.iter().map(|m| m.name.as_str()).collect();
                bail!(
                    "{}: line 1: unknown metric column {name:?}; this study measures: {}",
                    path.display(),
                    known.join(", ")
                );
            };
            if metrics.iter().any(|m: &Metric| m.name == name) {
                bail!(
                    "{}: line 1: metric column {name:?} appears twice",
                    path.display()
                );
            }
            metrics.push(metric.clone());
        }
        Ok(CsvCohort {
            path: path.to_owned(),
            metrics,
        })
    }

    /// First pass: every row checked, nothing kept but ids and bad line numbers.
    pub fn validate(&self) -> anyhow::Result<Validation> {
        let mut result = Validation::default();
        let mut first_line: HashMap<ParticipantId, u64> = HashMap::new();
        let mut current: Option<ParticipantId> = None;
        for record in reader(&self.path)?.records() {
            let record = record.with_context(|| format!("reading {}", self.path.display()))?;
            let line = record.position().map_or(0, |p| p.line());
            let (id, _) = match self.parse_row(&record) {
                Ok(row) => row,
                Err(reason) => {
                    result.bad.push(BadRow { line, reason });
                    continue;
                }
            };
            if current.as_ref() != Some(&id) {
                if let Some(first) = first_line.get(&id) {
                    result.bad.push(BadRow {
                        line,
                        reason: format!(
                            "participant {id} already had rows ending before this one (first on line {first}); the rows of a participant must be contiguous"
                        ),
                    });
                    continue;
                }
                first_line.insert(id.clone(), line);
                result.participants += 1;
                current = Some(id);
            }
            result.rows += 1;
        }
        Ok(result)
    }

    /// Second pass: the participants, one at a time, skipping the lines in `bad`.
    pub fn members(&self, bad: HashSet<u64>) -> anyhow::Result<CsvMembers> {
        Ok(CsvMembers {
            records: reader(&self.path)?.into_records(),
            metrics: self.metrics.clone(),
            path: self.path.clone(),
            bad,
            pending: None,
        })
    }

    fn parse_row(
        &self,
        record: &csv::StringRecord,
    ) -> Result<(ParticipantId, Vec<(usize, f64)>), String> {
        parse_row(&self.metrics, record)
    }
}

/// A row's participant and readings; a reading outside its metric's range makes the row bad
/// (reported with its line in the validation pass, before anything is encrypted).
fn parse_row(
    metrics: &[Metric],
    record: &csv::StringRecord,
) -> Result<(ParticipantId, Vec<(usize, f64)>), String> {
    if record.len() != metrics.len() + 1 {
        return Err(format!(
            "{} cells, the header has {}",
            record.len(),
            metrics.len() + 1
        ));
    }
    let id = ParticipantId::new(&record[0]).map_err(|e| e.to_string())?;
    let mut readings = Vec::new();
    for (i, cell) in record.iter().skip(1).enumerate() {
        if cell.is_empty() {
            continue;
        }
        match cell.parse::<f64>() {
            Ok(v) if v.is_finite() => {
                metrics[i].check_reading(v).map_err(|e| e.to_string())?;
                readings.push((i, v));
            }
            _ => {
                return Err(format!(
                    "{}: {cell:?} is not a finite number",
                    metrics[i].name
                ));
            }
        }
    }
    if readings.is_empty() {
        return Err(format!("participant {id}: no reading on this row"));
    }
    Ok((id, readings))
}

/// The enrollment pass over a CSV cohort: yields each participant once its rows are complete.
pub struct CsvMembers {
    records: csv::StringRecordsIntoIter<File>,
    metrics: Vec<Metric>,
    path: PathBuf,
    bad: HashSet<u64>,
    pending: Option<Member>,
}

impl Iterator for CsvMembers {
    type Item = anyhow::Result<Member>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let record = match self.records.next() {
                None => return self.pending.take().map(Ok),
                Some(Err(e)) => {
                    return Some(Err(
                        anyhow::Error::new(e).context(format!("reading {}", self.path.display()))
                    ));
                }
                Some(Ok(record)) => record,
            };
            let line = record.position().map_or(0, |p| p.line());
            if self.bad.contains(&line) {
                continue;
            }
            let (id, readings) = match parse_row(&self.metrics, &record) {
                Ok(row) => row,
                // Validated moments ago: the file changed under us.
                Err(reason) => {
                    return Some(Err(anyhow::anyhow!(
                        "{}: line {line}: {reason} (did the file change during the enrollment?)",
                        self.path.display()
                    )));
                }
            };
            let finished = match &self.pending {
                Some(member) if member.id != id => self.pending.take(),
                _ => None,
            };
            let member = self.pending.get_or_insert_with(|| Member {
                id,
                readings: BTreeMap::new(),
            });
            for (i, value) in readings {
                member
                    .readings
                    .entry(self.metrics[i].name.clone())
                    .or_default()
                    .push(value);
            }
            if let Some(done) = finished {
                return Some(Ok(done));
            }
        }
    }
}

/// A reproducible synthetic cohort: participants `syn-000001`... with one to three readings per
/// metric, drawn from `seed` (the same N and seed give the same ids and readings, so a
/// re-run resumes the same enrollment).
pub struct Synthetic {
    rng: StdRng,
    next: u64,
    count: u64,
    metrics: Vec<Metric>,
}

impl Synthetic {
    /// `count` participants measuring every metric of `study`.
    pub fn new(study: &Study, count: u64, seed: u64) -> Synthetic {
        Synthetic {
            rng: StdRng::seed_from_u64(seed),
            next: 0,
            count,
            metrics: study.metrics.clone(),
        }
    }
}

/// A typical range for a metric's readings (adult fasting values, mmol/L, for the default
/// study's metrics; a generic positive range otherwise), kept inside the metric's declared
/// plausible range so that every synthetic reading is one the producer accepts.
fn plausible_range(metric: &Metric) -> (f64, f64) {
    let (low, high): (f64, f64) = match metric.name.as_str() {
        "glucose" => (3.9, 9.5),
        "cholesterol" => (3.0, 7.8),
        _ => (1.0, 100.0),
    };
    let (low, high) = (low.max(metric.min), high.min(metric.max));
    if low < high {
        (low, high)
    } else {
        (metric.min, metric.max)
    }
}

impl Iterator for Synthetic {
    type Item = anyhow::Result<Member>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.count {
            return None;
        }
        self.next += 1;
        let id = ParticipantId::new(&format!("syn-{:06}", self.next)).expect("a valid id");
        let mut readings = BTreeMap::new();
        for metric in &self.metrics {
            let (low, high) = plausible_range(metric);
            let n = self.rng.random_range(1..=3usize);
            let series = (0..n)
                .map(|_| {
                    ((self.rng.random_range(low..high) * 10.0).round() / 10.0)
                        .clamp(metric.min, metric.max)
                })
                .collect();
            readings.insert(metric.name.clone(), series);
        }
        Some(Ok(Member { id, readings }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cohort(text: &str) -> (CsvCohort, PathBuf) {
        let path = std::env::temp_dir().join(format!("cohort-{}.csv", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).unwrap();
        let study = pipeline::Settings::defaults().study;
        (CsvCohort::open(&path, &study).unwrap(), path)
    }

    #[test]
    fn rows_group_into_series_and_bad_rows_carry_their_line() {
        let (c, path) = cohort(
            "id,glucose,cholesterol\np1,5.0,4.0\np1,6.0,\np2,x,4\np3,,5\np1,5,5\n../p,1,1\n",
        );
        let v = c.validate().unwrap();
        let lines: Vec<u64> = v.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![4, 6, 7], "{:?}", v.bad);
        assert_eq!(v.participants, 2);
        let members: Vec<Member> = c
            .members(lines.into_iter().collect())
            .unwrap()
            .collect::<anyhow::Result<_>>()
            .unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].readings["glucose"], vec![5.0, 6.0]);
        assert_eq!(members[0].readings["cholesterol"], vec![4.0]);
        assert_eq!(members[1].id.as_str(), "p3");
        assert!(!members[1].readings.contains_key("glucose"));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_reading_outside_its_metrics_range_is_a_bad_row_with_its_line() {
        let (c, path) = cohort("id,glucose,cholesterol\np1,5.0,4.0\np2,151,4.0\np3,5,-0.5\n");
        let v = c.validate().unwrap();
        let lines: Vec<u64> = v.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4], "{:?}", v.bad);
        assert!(
            v.bad[0]
                .reason
                .contains("glucose = 151 mmol/L is outside the study's plausible range"),
            "{}",
            v.bad[0].reason
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn an_unknown_metric_column_is_refused_with_line_1() {
        let path = std::env::temp_dir().join(format!("cohort-{}.csv", uuid::Uuid::new_v4()));
        std::fs::write(&path, "id,glucose,weight\np1,5,80\n").unwrap();
        let study = pipeline::Settings::defaults().study;
        let err = CsvCohort::open(&path, &study).err().unwrap().to_string();
        assert!(err.contains("line 1") && err.contains("weight"), "{err}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn synthetic_cohorts_are_reproducible() {
        let study = pipeline::Settings::defaults().study;
        let a: Vec<_> = Synthetic::new(&study, 5, 7)
            .map(|m| m.unwrap().readings)
            .collect();
        let b: Vec<_> = Synthetic::new(&study, 5, 7)
            .map(|m| m.unwrap().readings)
            .collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 5);
    }
}
