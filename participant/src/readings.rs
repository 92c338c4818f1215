//! A participant's readings: `METRIC=VALUE` parsing, grouping into the study's series, and
//! encryption into a submission. Nothing here needs the broker, so a typo is refused before
//! anything is published.

use std::collections::BTreeMap;

use paillier::PrivateKey;
use pipeline::ParticipantId;
use pipeline::messages::SubmissionWire;
use pipeline::study::{ReadingError as RangeError, Study};
use thiserror::Error;

/// Why readings were refused or could not be encrypted.
#[derive(Debug, Error)]
pub enum ReadingError {
    /// A `--reading` is not `METRIC=NUMBER`.
    #[error("reading {0:?} is not METRIC=NUMBER (e.g. glucose=5.4)")]
    Syntax(String),
    /// A reading's value is not a finite number.
    #[error("reading {metric}={value:?}: not a finite number")]
    NotANumber {
        /// Metric named.
        metric: String,
        /// The value given.
        value: String,
    },
    /// A metric the study does not define.
    #[error("unknown metric {metric:?}; this study measures: {known}")]
    UnknownMetric {
        /// The metric given.
        metric: String,
        /// The study's metrics.
        known: String,
    },
    /// No readings given.
    #[error("no readings given (use --reading METRIC=VALUE)")]
    NoReadings,
    /// A reading the study refuses (outside its metric's range), or one that could not be
    /// encoded or encrypted; nothing was encrypted.
    #[error("encrypting the readings: {0}")]
    Encrypt(#[from] RangeError),
}

/// Parses `METRIC=VALUE`.
pub fn parse_reading(text: &str) -> Result<(String, f64), ReadingError> {
    let (metric, value) = text
        .split_once('=')
        .ok_or_else(|| ReadingError::Syntax(text.to_owned()))?;
    let metric = metric.trim();
    if metric.is_empty() {
        return Err(ReadingError::Syntax(text.to_owned()));
    }
    let number: f64 = value.trim().parse().map_err(|_| ReadingError::NotANumber {
        metric: metric.to_owned(),
        value: value.to_owned(),
    })?;
    if !number.is_finite() {
        return Err(ReadingError::NotANumber {
            metric: metric.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok((metric.to_owned(), number))
}

/// Groups readings by metric (a metric given several times is a series, in the order given) and
/// checks every metric against the study.
pub fn group_readings(
    study: &Study,
    readings: impl IntoIterator<Item = (String, f64)>,
) -> Result<BTreeMap<String, Vec<f64>>, ReadingError> {
    let mut grouped: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (metric, value) in readings {
        if study.metric(&metric).is_none() {
            let known: Vec<&str> = study.metrics.iter().map(|m| m.name.as_str()).collect();
            return Err(ReadingError::UnknownMetric {
                metric,
                known: known.join(", "),
            });
        }
        grouped.entry(metric).or_default().push(value);
    }
    if grouped.is_empty() {
        return Err(ReadingError::NoReadings);
    }
    Ok(grouped)
}

/// Encrypts readings into a submission with a fresh id (key owner's fast path), each at its
/// metric's fixed exponent; a reading outside its metric's range is refused before anything is
/// encrypted.
pub fn encrypt_submission(
    study: &Study,
    participant: &ParticipantId,
    key: &PrivateKey,
    readings: &BTreeMap<String, Vec<f64>>,
) -> Result<SubmissionWire, ReadingError> {
    let id = uuid::Uuid::new_v4().to_string();
    Ok(SubmissionWire::encrypt(
        study,
        &id,
        participant,
        key,
        readings,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::Settings;

    #[test]
    fn readings_parse_and_group_into_series() {
        let study = Settings::defaults().study;
        let readings = ["glucose=5.4", "cholesterol = 4.2", "glucose=6"]
            .iter()
            .map(|r| parse_reading(r).unwrap());
        let grouped = group_readings(&study, readings).unwrap();
        assert_eq!(grouped["glucose"], vec![5.4, 6.0]);
        assert_eq!(grouped["cholesterol"], vec![4.2]);
    }

    #[test]
    fn bad_readings_are_clear_errors() {
        assert!(matches!(
            parse_reading("glucose"),
            Err(ReadingError::Syntax(_))
        ));
        assert!(matches!(
            parse_reading("glucose=abc"),
            Err(ReadingError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_reading("glucose=NaN"),
            Err(ReadingError::NotANumber { .. })
        ));
        let study = Settings::defaults().study;
        let err = group_readings(&study, [("weight".to_owned(), 80.0)]).unwrap_err();
        assert!(err.to_string().contains("glucose, cholesterol"), "{err}");
    }
}
