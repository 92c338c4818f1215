//! The study as a participant-facing page reads it: what to measure (with each metric's unit,
//! precision, fixed encoding exponent and plausible range), what comes back (outputs and their
//! display units), the key size to create, and where to publish. Written by
//! `producer study-json`; the JSON shape is a contract (pinned by a test), versioned by `format`.
//!
//! Everything here is public configuration: it is exactly what the institute already knows, and
//! it is what a client needs to encode readings the worker accepts.

use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::topology::Topology;

/// Version of the published study's shape.
pub const PUBLISHED_STUDY_FORMAT: u32 = 1;

/// The study as published: `{"format": 1, "key_bits": …, "readings_exchange": …,
/// "submission_routing_key": …, "reply_queue_prefix": …, "metrics": […], "outputs": […]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedStudy {
    /// [`PUBLISHED_STUDY_FORMAT`].
    pub format: u32,
    /// Modulus length participants' keys are created with (`participant.key_bits`).
    pub key_bits: u64,
    /// Exchange submissions are published to (topology prefix applied).
    pub readings_exchange: String,
    /// Routing key of submissions.
    pub submission_routing_key: String,
    /// Reply queue of participant P: this prefix followed by P (topology prefix applied).
    pub reply_queue_prefix: String,
    /// What participants measure, in study order.
    pub metrics: Vec<PublishedMetric>,
    /// What the worker computes, in study order.
    pub outputs: Vec<PublishedOutput>,
}

/// One metric: how its readings must be encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedMetric {
    /// Name used in submissions.
    pub name: String,
    /// Unit readings are given in.
    pub unit: String,
    /// Configured precision (python-paillier's `precision=`).
    pub precision: f64,
    /// The encoding exponent every reading must carry: floor(log16(precision)).
    pub exponent: i32,
    /// Lowest accepted reading.
    pub min: f64,
    /// Highest accepted reading.
    pub max: f64,
}

/// One output: its name and the unit its value is shown in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedOutput {
    /// Output name.
    pub name: String,
    /// Display unit ([`crate::study::Study::unit_of`]; may be empty).
    pub unit: String,
}

impl PublishedStudy {
    /// The published form of validated `settings`.
    pub fn from_settings(settings: &Settings) -> PublishedStudy {
        let topology = Topology::new(&settings.topology, &settings.reply_queues);
        let study = &settings.study;
        PublishedStudy {
            format: PUBLISHED_STUDY_FORMAT,
            key_bits: settings.participant.key_bits,
            readings_exchange: topology.readings_exchange,
            submission_routing_key: topology.submission_routing_key,
            reply_queue_prefix: topology.reply_queue_prefix,
            metrics: study
                .metrics
                .iter()
                .map(|m| PublishedMetric {
                    name: m.name.clone(),
                    unit: m.unit.clone(),
                    precision: m.precision,
                    exponent: m.exponent(),
                    min: m.min,
                    max: m.max,
                })
                .collect(),
            outputs: study
                .outputs
                .iter()
                .map(|o| PublishedOutput {
                    name: o.name.clone(),
                    unit: study.unit_of(o),
                })
                .collect(),
        }
    }

    /// Pretty-printed JSON, ending with a newline.
    pub fn to_json_pretty(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(self).expect("a published study always serialises");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::LoadOptions;

    #[test]
    fn the_default_study_is_published_in_the_pinned_shape() {
        let settings = Settings::defaults();
        let published = serde_json::to_value(PublishedStudy::from_settings(&settings)).unwrap();
        assert_eq!(
            published,
            json!({
                "format": 1,
                "key_bits": 3072,
                "readings_exchange": "readings",
                "submission_routing_key": "submission",
                "reply_queue_prefix": "results.",
                "metrics": [
                    {"name": "glucose", "unit": "mmol/L", "precision": 0.0001, "exponent": -4,
                     "min": 0.0, "max": 150.0},
                    {"name": "cholesterol", "unit": "mmol/L", "precision": 0.0001, "exponent": -4,
                     "min": 0.0, "max": 50.0}
                ],
                "outputs": [
                    {"name": "glucose_mg_dl", "unit": "mg/dL"},
                    {"name": "cholesterol_mg_dl", "unit": "mg/dL"},
                    {"name": "glucose_sum", "unit": "mmol/L"},
                    {"name": "glucose_mean", "unit": "mmol/L"},
                    {"name": "cholesterol_mean", "unit": "mmol/L"},
                    {"name": "risk_score", "unit": "points"}
                ]
            })
        );
    }

    #[test]
    fn the_topology_prefix_is_applied_and_the_json_reads_back() {
        let settings = Settings::load(
            &LoadOptions {
                ignore_environment: true,
                ..LoadOptions::default()
            }
            .set("topology.prefix", Some("study7."))
            .set("participant.key_bits", Some(4096)),
        )
        .unwrap();
        let published = PublishedStudy::from_settings(&settings);
        assert_eq!(published.readings_exchange, "study7.readings");
        assert_eq!(published.reply_queue_prefix, "study7.results.");
        assert_eq!(published.submission_routing_key, "submission");
        assert_eq!(published.key_bits, 4096);
        let back: PublishedStudy = serde_json::from_str(&published.to_json_pretty()).unwrap();
        assert_eq!(back, published);
    }
}
