//! The study: which metrics participants send and which outputs workers compute from them.
//!
//! It is configuration (`[study]` in `config/default.toml`), checked by [`Study::validate`] before
//! a worker starts. The same definition is evaluated on ciphertexts by the worker
//! ([`Study::evaluate_encrypted`]) and on plain numbers ([`Study::evaluate_plain`]): the latter is
//! the reference the tests compare decrypted results with.
//!
//! A metric may carry a series of readings. `sum` and `mean` aggregate the series. Where an
//! output uses "the value" of a metric (`scale`, `weighted_sum`) that value is the **mean** of the
//! series, so that a participant who measured twice does not count double in a risk score; a
//! single reading is its own mean. An output whose metrics are absent from a submission is
//! skipped (and listed as skipped in the result).
//!
//! ## Bounds on encrypted values
//! Every value the worker computes carries a public upper bound on the absolute value of its
//! encrypted mantissa ([`Bounded`]), which is what lets [`crate::packing`] put several results in
//! one plaintext. The bounds follow from one assumption on the readings, and from the public
//! parts of every operation (exponents, series lengths, the encoded constants):
//! - a fresh reading at its metric's exponent has a mantissa of at most the metric's declared
//!   bound, max(|min|, |max|) · 16^-exponent ([`Metric::reading_bound`]): the producer refuses
//!   readings outside the range, and the worker refuses readings at any other exponent. Where
//!   `[limits] reading_mantissa_bits` (default 64) is tighter, 2^that - 1 is the bound instead;
//!   it is also the bound of a reading at any other exponent (only direct callers of
//!   [`Study::evaluate_encrypted`] can pass one: python-paillier's float encoding gives an f64 a
//!   mantissa below 2^57, so 64 covers every f64 and every i64 reading);
//! - lowering an exponent by d multiplies the mantissa, hence the bound, by 16^d;
//! - a sum's bound is the sum of its (aligned) operands' bounds;
//! - multiplying by an encoded constant multiplies the bound by |the constant's mantissa|
//!   (for a mean, the constant is the encoding of factor / series length);
//! - `random_scale` multiplies by its largest factor, never the one drawn, so nothing public
//!   depends on the secret factor.
//!
//! The worker cannot check the assumption (it never sees a mantissa); a submission that breaks
//! it is detected when the result is unpacked (see [`crate::packing`]).

use std::collections::{BTreeMap, HashSet};

use num_bigint::BigUint;
use num_traits::One;
use paillier::{EncodedNumber, EncryptedNumber, PublicKey};
use rand::{CryptoRng, RngExt};
use serde::Deserialize;
use thiserror::Error;

/// A study whose definition does not make sense.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StudyError {
    /// The study names no metric.
    #[error("no metrics defined")]
    NoMetrics,
    /// The study defines no output.
    #[error("no outputs defined")]
    NoOutputs,
    /// A metric or output name is empty or uses characters other than `a-z 0-9 _`.
    #[error("name {0:?} is not allowed: use a-z, 0-9 and '_', starting with a letter")]
    BadName(String),
    /// Two metrics, or two outputs, share a name.
    #[error("{what} {name:?} is defined twice")]
    Duplicate {
        /// "metric" or "output".
        what: &'static str,
        /// The repeated name.
        name: String,
    },
    /// An output refers to a metric the study does not define.
    #[error("output {output:?} uses unknown metric {metric:?}")]
    UnknownMetric {
        /// Output name.
        output: String,
        /// The unknown metric.
        metric: String,
    },
    /// A weighted sum without terms.
    #[error("output {0:?}: weighted_sum needs at least one term")]
    EmptyTerms(String),
    /// A weighted sum uses a metric in two terms.
    #[error("output {output:?}: metric {metric:?} appears in two terms (merge their weights)")]
    RepeatedTerm {
        /// Output name.
        output: String,
        /// The repeated metric.
        metric: String,
    },
    /// A factor, weight or offset is NaN or infinite.
    #[error("output {output:?}: {what} is not a finite number")]
    NonFinite {
        /// Output name.
        output: String,
        /// "factor", "weight" or "offset".
        what: &'static str,
    },
    /// A metric's precision is not a finite number above 0.
    #[error("metric {metric:?}: precision must be a finite number above 0, got {precision}")]
    BadPrecision {
        /// Metric name.
        metric: String,
        /// The configured precision.
        precision: f64,
    },
    /// A metric's plausible range is not finite or empty (it needs min < max).
    #[error(
        "metric {metric:?}: the plausible range needs finite min < max, got min = {min}, max = {max}"
    )]
    BadMetricRange {
        /// Metric name.
        metric: String,
        /// Configured lower end.
        min: f64,
        /// Configured upper end.
        max: f64,
    },
    /// A metric's range and precision need mantissas of more than [`MAX_METRIC_MANTISSA_BITS`]
    /// bits: more steps than an f64 reading can tell apart, and more than the worker's bound.
    #[error(
        "metric {metric:?}: a range up to {magnitude} at precision {precision} needs mantissas above 2^{max_bits}; use a coarser precision or a narrower range",
        max_bits = MAX_METRIC_MANTISSA_BITS
    )]
    MetricTooFine {
        /// Metric name.
        metric: String,
        /// max(|min|, |max|).
        magnitude: f64,
        /// The configured precision.
        precision: f64,
    },
    /// A `random_scale` range that is empty or includes factors below 1.
    #[error("output {output:?}: random_scale needs 1 <= min <= max <= {max_allowed}, got {min}..={max}", max_allowed = MAX_RANDOM_FACTOR)]
    BadRange {
        /// Output name.
        output: String,
        /// Configured smallest factor.
        min: i64,
        /// Configured largest factor.
        max: i64,
    },
}

/// Largest factor a `random_scale` output may draw (2^32): a larger one would only widen the
/// result's bound without making the computation more useful.
pub const MAX_RANDOM_FACTOR: i64 = 1 << 32;

/// A metric's mantissa bound (max(|min|, |max|) · 16^-exponent) must stay below 2^this: an
/// f64 reading has 53 significant bits, so finer steps would only encode rounding noise, and
/// every encoding then fits the smallest key the worker accepts and an i64.
pub const MAX_METRIC_MANTISSA_BITS: u32 = 63;

/// A reading the producer refuses to encode: checked before anything is encrypted.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ReadingError {
    /// A metric the study does not define.
    #[error("unknown metric {0:?}")]
    UnknownMetric(String),
    /// NaN or infinite.
    #[error("{metric} = {value}: not a finite number")]
    NonFinite {
        /// Metric name.
        metric: String,
        /// The value given.
        value: f64,
    },
    /// Outside the metric's declared plausible range.
    #[error(
        "{metric} = {value} {unit} is outside the study's plausible range {min}..={max} {unit}; nothing was encrypted"
    )]
    OutOfRange {
        /// Metric name.
        metric: String,
        /// The value given.
        value: f64,
        /// Lower end of the range.
        min: f64,
        /// Upper end of the range.
        max: f64,
        /// The metric's unit.
        unit: String,
    },
    /// The encoding does not fit the key, or encryption refused it.
    #[error("encoding {metric}: {source}")]
    Paillier {
        /// Metric name.
        metric: String,
        /// What the arithmetic refused.
        #[source]
        source: paillier::Error,
    },
}

/// Why an output could not be computed from a submission's ciphertexts.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("output {output:?}: {source}")]
pub struct EvaluationError {
    /// The output being computed.
    pub output: String,
    /// What the arithmetic refused (overflow, exponent range...).
    #[source]
    pub source: paillier::Error,
}

/// The study definition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Study {
    /// What participants measure.
    pub metrics: Vec<Metric>,
    /// What workers compute, in this order.
    pub outputs: Vec<Output>,
}

/// A measured quantity.
///
/// Every reading of a metric is encoded at the metric's one exponent ([`Metric::exponent`],
/// from `precision`): the exponent travels in clear, so an exponent that followed the value's
/// size (python-paillier's float encoding) would tell the institute a coarse bucket of every
/// reading. A fixed exponent tells it nothing but the study's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    /// Name used in submissions and in `--reading NAME=VALUE`.
    pub name: String,
    /// Unit readings are given in.
    pub unit: String,
    /// Finest step a reading is kept to, in the metric's unit (e.g. 0.0001): the encoding
    /// exponent is floor(log16(precision)), as python-paillier's `encode(..., precision=)`.
    pub precision: f64,
    /// Lowest plausible reading; the producer refuses lower ones before encrypting.
    pub min: f64,
    /// Highest plausible reading; the producer refuses higher ones before encrypting.
    pub max: f64,
}

/// floor(log16(precision)) for a finite `precision > 0`, computed exactly from the f64's
/// binary exponent: floor(log16(x)) = floor(floor(log2(x)) / 4). (`floor(ln(x) / ln(16))`, what
/// python-paillier computes, is off by one at some exact powers of 16, e.g. 16^-31.)
pub fn precision_exponent(precision: f64) -> Option<i32> {
    if !(precision.is_finite() && precision > 0.0) {
        return None;
    }
    let bits = precision.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let floor_log2 = if biased == 0 {
        // Subnormal: the leading one sits inside the fraction field.
        let fraction = bits & ((1u64 << 52) - 1);
        -1074 + (63 - fraction.leading_zeros() as i32)
    } else {
        biased - 1023
    };
    Some(floor_log2.div_euclid(4))
}

/// `value · 16^-exponent`, exactly unless it overflows: multiplying by a power of two only
/// changes the f64's exponent. Done in steps so that 2^k itself never overflows; the steps move
/// monotonically from `value` to the result, so no intermediate rounds.
fn scale_by_16_pow_neg(value: f64, exponent: i32) -> f64 {
    let mut shift = -4 * i64::from(exponent);
    let mut scaled = value;
    while shift != 0 {
        let step = shift.clamp(-1000, 1000);
        scaled *= 2f64.powi(step as i32);
        shift -= step;
    }
    scaled
}

impl Metric {
    /// The encoding exponent of every reading of this metric: floor(log16(precision)). The
    /// study must be validated (a valid precision always has one).
    pub fn exponent(&self) -> i32 {
        precision_exponent(self.precision).expect("a validated metric has a positive precision")
    }

    /// max(|min|, |max|) · 16^-exponent, rounded up: no in-range reading's mantissa exceeds it.
    pub fn mantissa_bound(&self) -> BigUint {
        let magnitude = self.min.abs().max(self.max.abs());
        let bound = scale_by_16_pow_neg(magnitude, self.exponent()).ceil();
        // Validated below 2^63, so exact as an integer.
        BigUint::from(bound as u64)
    }

    /// The bound worker and packing assume for a reading of this metric at its exponent: the
    /// declared range's, or 2^`reading_mantissa_bits` - 1 where that is tighter.
    pub fn reading_bound(&self, reading_mantissa_bits: u32) -> BigUint {
        let assumed = (BigUint::one() << reading_mantissa_bits) - 1u32;
        assumed.min(self.mantissa_bound())
    }

    /// The value a reading is encoded as: `value` rounded to the metric's step 16^exponent
    /// (what a participant gets back from a `mean` of that one reading). For references in
    /// tests and for telling users what precision is kept.
    pub fn rounded(&self, value: f64) -> f64 {
        let exponent = self.exponent();
        scale_by_16_pow_neg(
            scale_by_16_pow_neg(value, exponent).round_ties_even(),
            -exponent,
        )
    }

    /// Checks a reading against the metric's range (and finiteness) without encoding it.
    pub fn check_reading(&self, value: f64) -> Result<(), ReadingError> {
        if !value.is_finite() {
            return Err(ReadingError::NonFinite {
                metric: self.name.clone(),
                value,
            });
        }
        if !(self.min..=self.max).contains(&value) {
            return Err(ReadingError::OutOfRange {
                metric: self.name.clone(),
                value,
                min: self.min,
                max: self.max,
                unit: self.unit.clone(),
            });
        }
        Ok(())
    }

    /// Encodes a reading at exactly the metric's exponent, mantissa = round(value ·
    /// 16^-exponent) half to even: what python-paillier's `EncodedNumber.encode(key, value,
    /// precision=self.precision)` gives. Refuses a non-finite or out-of-range value.
    pub fn encode(&self, key: &PublicKey, value: f64) -> Result<EncodedNumber, ReadingError> {
        self.check_reading(value)?;
        let exponent = self.exponent();
        // In range, so |scaled| <= the mantissa bound < 2^63: the rounded value is an exact i64.
        let mantissa = scale_by_16_pow_neg(value, exponent).round_ties_even() as i64;
        let paillier_error = |source| ReadingError::Paillier {
            metric: self.name.clone(),
            source,
        };
        let magnitude = BigUint::from(mantissa.unsigned_abs());
        if &magnitude > key.max_int() {
            return Err(paillier_error(paillier::Error::EncodingOverflow));
        }
        // The mantissa modulo n: negative values wrap to n - |mantissa| (|mantissa| <= max_int < n).
        let encoding = if mantissa < 0 {
            key.n() - magnitude
        } else {
            magnitude
        };
        EncodedNumber::from_parts(key.clone(), encoding, exponent).map_err(paillier_error)
    }

    fn validate(&self) -> Result<(), StudyError> {
        if precision_exponent(self.precision).is_none() {
            return Err(StudyError::BadPrecision {
                metric: self.name.clone(),
                precision: self.precision,
            });
        }
        if !(self.min.is_finite() && self.max.is_finite() && self.min < self.max) {
            return Err(StudyError::BadMetricRange {
                metric: self.name.clone(),
                min: self.min,
                max: self.max,
            });
        }
        let magnitude = self.min.abs().max(self.max.abs());
        let scaled = scale_by_16_pow_neg(magnitude, self.exponent());
        // An overflow to infinity is refused too (never NaN: the scaling is by finite powers of 2).
        if scaled.ceil() >= 2f64.powi(MAX_METRIC_MANTISSA_BITS as i32) {
            return Err(StudyError::MetricTooFine {
                metric: self.name.clone(),
                magnitude,
                precision: self.precision,
            });
        }
        Ok(())
    }
}

/// One computed output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "OutputSpec")]
pub struct Output {
    /// Name shown to the participant.
    pub name: String,
    /// Unit of the result; defaults to the metric's unit for `sum` and `mean`.
    pub unit: Option<String>,
    /// What is computed.
    pub kind: OutputKind,
}

/// The computations a study may ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    /// `mean(metric) × factor`: a unit conversion.
    Scale {
        /// Metric scaled.
        metric: String,
        /// Multiplier.
        factor: f64,
    },
    /// Sum of the metric's series.
    Sum {
        /// Metric summed.
        metric: String,
    },
    /// Mean of the metric's series.
    Mean {
        /// Metric averaged.
        metric: String,
    },
    /// `offset + Σ weight × mean(metric)`: a linear score.
    WeightedSum {
        /// The terms; weights may be fractional or negative.
        terms: Vec<Term>,
        /// Added to the sum.
        offset: f64,
    },
    /// `mean(metric) × r`, r drawn uniformly from `min..=max` (CSPRNG) for every submission and
    /// output: the original demo's "useful computation" (it used 1..=10).
    RandomScale {
        /// Metric scaled.
        metric: String,
        /// Smallest factor (at least 1).
        min: i64,
        /// Largest factor.
        max: i64,
    },
}

/// An output as written in configuration: one flat table whose `kind` says which of the other
/// keys must be present. (A flat struct rather than a serde-tagged enum, so that unknown keys and
/// keys of the wrong kind are refused with a message naming the output.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSpec {
    name: String,
    kind: String,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    factor: Option<f64>,
    #[serde(default)]
    terms: Option<Vec<Term>>,
    #[serde(default)]
    offset: Option<f64>,
    #[serde(default)]
    min: Option<i64>,
    #[serde(default)]
    max: Option<i64>,
}

impl TryFrom<OutputSpec> for Output {
    type Error = String;

    fn try_from(spec: OutputSpec) -> Result<Self, Self::Error> {
        let name = spec.name;
        let allowed: &[&str] = match spec.kind.as_str() {
            "scale" => &["metric", "factor"],
            "sum" | "mean" => &["metric"],
            "weighted_sum" => &["terms", "offset"],
            "random_scale" => &["metric", "min", "max"],
            other => {
                return Err(format!(
                    "output {name:?}: unknown kind {other:?} (expected scale, sum, mean, weighted_sum or random_scale)"
                ));
            }
        };
        let present = [
            ("metric", spec.metric.is_some()),
            ("factor", spec.factor.is_some()),
            ("terms", spec.terms.is_some()),
            ("offset", spec.offset.is_some()),
            ("min", spec.min.is_some()),
            ("max", spec.max.is_some()),
        ];
        if let Some((key, _)) = present.iter().find(|(k, p)| *p && !allowed.contains(k)) {
            return Err(format!(
                "output {name:?}: key {key:?} does not apply to kind {:?}",
                spec.kind
            ));
        }
        let need =
            |v: Option<String>| v.ok_or(format!("output {name:?}: {} needs a metric", spec.kind));
        let kind = match spec.kind.as_str() {
            "scale" => OutputKind::Scale {
                metric: need(spec.metric)?,
                factor: spec
                    .factor
                    .ok_or(format!("output {name:?}: scale needs a factor"))?,
            },
            "sum" => OutputKind::Sum {
                metric: need(spec.metric)?,
            },
            "mean" => OutputKind::Mean {
                metric: need(spec.metric)?,
            },
            "random_scale" => OutputKind::RandomScale {
                metric: need(spec.metric)?,
                min: spec
                    .min
                    .ok_or(format!("output {name:?}: random_scale needs min"))?,
                max: spec
                    .max
                    .ok_or(format!("output {name:?}: random_scale needs max"))?,
            },
            _ => OutputKind::WeightedSum {
                terms: spec
                    .terms
                    .ok_or(format!("output {name:?}: weighted_sum needs terms"))?,
                offset: spec.offset.unwrap_or(0.0),
            },
        };
        Ok(Output {
            name,
            unit: spec.unit,
            kind,
        })
    }
}

/// A term of a weighted sum.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// Metric whose mean enters the sum.
    pub metric: String,
    /// Its weight.
    pub weight: f64,
}

/// An encrypted value with a public upper bound on the absolute value of its mantissa
/// (`|mantissa| <= bound`), valid as long as the readings met the assumption the bound started
/// from (see the module documentation). Every operation computes the new bound from public
/// data only: the operands' bounds and exponents and the encoded constants.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounded {
    /// The ciphertext and its exponent.
    pub value: EncryptedNumber,
    /// Upper bound on |mantissa|.
    pub bound: BigUint,
}

impl Bounded {
    /// A fresh reading, whose mantissa is assumed below 2^`bits` in absolute value.
    pub fn reading(value: EncryptedNumber, bits: u32) -> Self {
        Bounded {
            value,
            bound: (BigUint::one() << bits) - 1u32,
        }
    }

    /// `bound · 16^(from - to)`: the bound after an exponent was lowered from `from` to `to`.
    fn aligned(bound: &BigUint, from: i32, to: i32) -> BigUint {
        debug_assert!(from >= to);
        bound << (4 * u64::from((from - to).unsigned_abs()))
    }

    /// Homomorphic addition; the operand with the larger exponent was scaled by 16^diff.
    pub fn add(&self, other: &Bounded) -> Result<Bounded, paillier::Error> {
        let value = self.value.add(&other.value)?;
        let e = value.exponent();
        let bound = Self::aligned(&self.bound, self.value.exponent(), e)
            + Self::aligned(&other.bound, other.value.exponent(), e);
        Ok(Bounded { value, bound })
    }

    /// Adds a known plaintext.
    pub fn add_encoded(&self, constant: &EncodedNumber) -> Result<Bounded, paillier::Error> {
        let value = self.value.add_encoded(constant)?;
        let e = value.exponent();
        let magnitude = mantissa_magnitude(constant)?;
        let bound = Self::aligned(&self.bound, self.value.exponent(), e)
            + Self::aligned(&magnitude, constant.exponent(), e);
        Ok(Bounded { value, bound })
    }

    /// Multiplies by an encoded constant; the bound grows by |its mantissa|.
    pub fn mul_encoded(&self, constant: &EncodedNumber) -> Result<Bounded, paillier::Error> {
        let magnitude = mantissa_magnitude(constant)?;
        self.mul_encoded_within(constant, &magnitude)
    }

    /// Multiplies by an encoded constant whose mantissa is at most `limit` in absolute value,
    /// and takes `limit` (public) rather than the constant (possibly secret) into the bound.
    fn mul_encoded_within(
        &self,
        constant: &EncodedNumber,
        limit: &BigUint,
    ) -> Result<Bounded, paillier::Error> {
        Ok(Bounded {
            value: self.value.mul_encoded(constant)?,
            bound: &self.bound * limit,
        })
    }
}

/// |mantissa| of an encoded constant.
fn mantissa_magnitude(constant: &EncodedNumber) -> Result<BigUint, paillier::Error> {
    Ok(constant
        .public_key()
        .decode(constant)?
        .mantissa()
        .magnitude()
        .clone())
}

/// An output's value together with its name and unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed<T> {
    /// Output name.
    pub name: String,
    /// Output unit (may be empty).
    pub unit: String,
    /// The value: `f64` in the plaintext reference, a ciphertext in the worker.
    pub value: T,
}

/// What evaluating a study on one submission gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation<T> {
    /// Outputs computed, in study order.
    pub outputs: Vec<Computed<T>>,
    /// Outputs skipped because a metric they need is absent.
    pub skipped: Vec<String>,
}

impl OutputKind {
    /// Metrics this output reads.
    pub fn metrics(&self) -> Vec<&str> {
        match self {
            OutputKind::Scale { metric, .. }
            | OutputKind::Sum { metric }
            | OutputKind::Mean { metric }
            | OutputKind::RandomScale { metric, .. } => vec![metric.as_str()],
            OutputKind::WeightedSum { terms, .. } => {
                terms.iter().map(|t| t.metric.as_str()).collect()
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 64
}

impl Study {
    /// Refuses a study that cannot be evaluated or would be ambiguous.
    pub fn validate(&self) -> Result<(), StudyError> {
        if self.metrics.is_empty() {
            return Err(StudyError::NoMetrics);
        }
        if self.outputs.is_empty() {
            return Err(StudyError::NoOutputs);
        }
        let mut metrics = HashSet::new();
        for metric in &self.metrics {
            if !valid_name(&metric.name) {
                return Err(StudyError::BadName(metric.name.clone()));
            }
            if !metrics.insert(metric.name.as_str()) {
                return Err(StudyError::Duplicate {
                    what: "metric",
                    name: metric.name.clone(),
                });
            }
            metric.validate()?;
        }
        let mut outputs = HashSet::new();
        for output in &self.outputs {
            let name = &output.name;
            if !valid_name(name) {
                return Err(StudyError::BadName(name.clone()));
            }
            if !outputs.insert(name.as_str()) {
                return Err(StudyError::Duplicate {
                    what: "output",
                    name: name.clone(),
                });
            }
            let non_finite = |what| StudyError::NonFinite {
                output: name.clone(),
                what,
            };
            match &output.kind {
                OutputKind::Scale { factor, .. } if !factor.is_finite() => {
                    return Err(non_finite("factor"));
                }
                OutputKind::RandomScale { min, max, .. }
                    if !(1 <= *min && min <= max && *max <= MAX_RANDOM_FACTOR) =>
                {
                    return Err(StudyError::BadRange {
                        output: name.clone(),
                        min: *min,
                        max: *max,
                    });
                }
                OutputKind::WeightedSum { terms, offset } => {
                    if terms.is_empty() {
                        return Err(StudyError::EmptyTerms(name.clone()));
                    }
                    if !offset.is_finite() {
                        return Err(non_finite("offset"));
                    }
                    let mut seen = HashSet::new();
                    for term in terms {
                        if !term.weight.is_finite() {
                            return Err(non_finite("weight"));
                        }
                        if !seen.insert(term.metric.as_str()) {
                            return Err(StudyError::RepeatedTerm {
                                output: name.clone(),
                                metric: term.metric.clone(),
                            });
                        }
                    }
                }
                _ => {}
            }
            for metric in output.kind.metrics() {
                if !metrics.contains(metric) {
                    return Err(StudyError::UnknownMetric {
                        output: name.clone(),
                        metric: metric.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The metric called `name`, if the study has one.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// Encodes a reading of `metric` at the metric's exponent ([`Metric::encode`]): the one
    /// function every producer encodes readings with.
    pub fn encode_reading(
        &self,
        key: &PublicKey,
        metric: &str,
        value: f64,
    ) -> Result<EncodedNumber, ReadingError> {
        self.metric(metric)
            .ok_or_else(|| ReadingError::UnknownMetric(metric.to_owned()))?
            .encode(key, value)
    }

    /// The bound on a fresh reading's mantissa the worker assumes: the metric's declared range
    /// ([`Metric::reading_bound`]) for a reading at the metric's exponent (the worker refuses
    /// any other in submissions), else 2^`reading_mantissa_bits` - 1.
    fn reading_bound(&self, metric: &str, exponent: i32, reading_mantissa_bits: u32) -> BigUint {
        match self.metric(metric) {
            Some(m) if m.exponent() == exponent => m.reading_bound(reading_mantissa_bits),
            _ => (BigUint::one() << reading_mantissa_bits) - 1u32,
        }
    }

    /// Unit shown for `output`: its own, else (sum, mean, random_scale) its metric's, else empty.
    pub fn unit_of(&self, output: &Output) -> String {
        if let Some(unit) = &output.unit {
            return unit.clone();
        }
        match &output.kind {
            OutputKind::Sum { metric }
            | OutputKind::Mean { metric }
            | OutputKind::RandomScale { metric, .. } => self
                .metric(metric)
                .map(|m| m.unit.clone())
                .unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// The readings as the producer encodes them: each rounded to its metric's step
    /// ([`Metric::rounded`]); metrics the study does not define are left as they are. Evaluate
    /// these with [`Study::evaluate_plain`] to get exactly what the worker computes from a
    /// producer's submission.
    pub fn rounded_readings(
        &self,
        readings: &BTreeMap<String, Vec<f64>>,
    ) -> BTreeMap<String, Vec<f64>> {
        readings
            .iter()
            .map(|(name, series)| {
                let series = match self.metric(name) {
                    Some(metric) => series.iter().map(|v| metric.rounded(*v)).collect(),
                    None => series.clone(),
                };
                (name.clone(), series)
            })
            .collect()
    }

    /// Evaluates the study on plain readings: the reference for what the worker computes.
    /// `random_scale` outputs take their smallest factor `min` here; use
    /// [`Study::evaluate_plain_with`] to supply the factors the worker drew.
    pub fn evaluate_plain(&self, readings: &BTreeMap<String, Vec<f64>>) -> Evaluation<f64> {
        self.evaluate_plain_with(readings, |min, _| min)
    }

    /// [`Study::evaluate_plain`] with the factor of each computed `random_scale` output, in study
    /// order, taken from `draw(min, max)`: with a generator seeded like the one given to
    /// [`Study::evaluate_encrypted`], both draw the same factors.
    pub fn evaluate_plain_with(
        &self,
        readings: &BTreeMap<String, Vec<f64>>,
        draw: impl FnMut(i64, i64) -> i64,
    ) -> Evaluation<f64> {
        let mut draw = draw;
        let sum = |metric: &str| -> f64 { readings[metric].iter().sum() };
        let mean = |metric: &str| -> f64 { sum(metric) / readings[metric].len() as f64 };
        self.evaluate_with(
            |m| readings.get(m).is_some_and(|s| !s.is_empty()),
            |kind| -> Result<f64, paillier::Error> {
                Ok(match kind {
                    OutputKind::Scale { metric, factor } => mean(metric) * factor,
                    OutputKind::Sum { metric } => sum(metric),
                    OutputKind::Mean { metric } => mean(metric),
                    OutputKind::WeightedSum { terms, offset } => {
                        offset
                            + terms
                                .iter()
                                .map(|t| t.weight * mean(&t.metric))
                                .sum::<f64>()
                    }
                    OutputKind::RandomScale { metric, min, max } => {
                        mean(metric) * draw(*min, *max) as f64
                    }
                })
            },
        )
        .expect("plain arithmetic cannot fail")
    }

    /// Evaluates the study on a submission's ciphertexts (all under one key), tracking a bound
    /// for every value from each reading's bound (its metric's declared range when it carries
    /// the metric's exponent, capped at 2^`reading_mantissa_bits` - 1). Each metric's series is summed once (ciphertext additions are
    /// cheap); every output then costs one scalar multiplication per metric it uses (the mean
    /// is the sum times the encoding of 1/len). `rng` draws the `random_scale` factors: pass a
    /// CSPRNG (`rand::rng()`); the factors never leave the worker.
    pub fn evaluate_encrypted<R: CryptoRng + ?Sized>(
        &self,
        readings: &BTreeMap<String, Vec<EncryptedNumber>>,
        reading_mantissa_bits: u32,
        rng: &mut R,
    ) -> Result<Evaluation<Bounded>, EvaluationError> {
        let mut sums: BTreeMap<&str, (Bounded, usize)> = BTreeMap::new();
        for (metric, series) in readings {
            let reading = |value: &EncryptedNumber| Bounded {
                bound: self.reading_bound(metric, value.exponent(), reading_mantissa_bits),
                value: value.clone(),
            };
            let mut iter = series.iter();
            let Some(first) = iter.next() else { continue };
            let mut total = reading(first);
            for next in iter {
                total = total
                    .add(&reading(next))
                    .map_err(|source| EvaluationError {
                        output: format!("(sum of {metric})"),
                        source,
                    })?;
            }
            sums.insert(metric.as_str(), (total, series.len()));
        }
        // Multiplying by the weight divided by the series length gives weight × mean in one step.
        let scaled = |metric: &str, factor: f64| -> Result<Bounded, paillier::Error> {
            let (sum, len) = &sums[metric];
            let constant = sum.value.public_key().encode_f64(factor / *len as f64)?;
            sum.mul_encoded(&constant)
        };
        self.evaluate_with(
            |m| sums.contains_key(m),
            |kind| match kind {
                OutputKind::Scale { metric, factor } => scaled(metric, *factor),
                OutputKind::Sum { metric } => Ok(sums[metric.as_str()].0.clone()),
                OutputKind::Mean { metric } => scaled(metric, 1.0),
                OutputKind::WeightedSum { terms, offset } => {
                    let mut total = scaled(&terms[0].metric, terms[0].weight)?;
                    for term in &terms[1..] {
                        total = total.add(&scaled(&term.metric, term.weight)?)?;
                    }
                    if *offset != 0.0 {
                        // As EncryptedNumber::add_f64: encoded at most at the sum's exponent.
                        let key = total.value.public_key();
                        let constant =
                            key.encode_f64_with(*offset, None, Some(total.value.exponent()))?;
                        total = total.add_encoded(&constant)?;
                    }
                    Ok(total)
                }
                OutputKind::RandomScale { metric, min, max } => {
                    // mean first, then the integer factor (exponent 0): the result's exponent
                    // and bound are the same whichever factor is drawn, so neither reveals it
                    // (encoding factor / len as one f64 would give a factor-dependent exponent).
                    let mean = scaled(metric, 1.0)?;
                    let factor = rng.random_range(*min..=*max);
                    let key = mean.value.public_key();
                    let limit = BigUint::from(max.unsigned_abs());
                    mean.mul_encoded_within(&key.encode_i64(factor)?, &limit)
                }
            },
        )
    }

    fn evaluate_with<T>(
        &self,
        has_metric: impl Fn(&str) -> bool,
        mut compute: impl FnMut(&OutputKind) -> Result<T, paillier::Error>,
    ) -> Result<Evaluation<T>, EvaluationError> {
        let mut evaluation = Evaluation {
            outputs: Vec::with_capacity(self.outputs.len()),
            skipped: Vec::new(),
        };
        for output in &self.outputs {
            if !output.kind.metrics().into_iter().all(&has_metric) {
                evaluation.skipped.push(output.name.clone());
                continue;
            }
            let value = compute(&output.kind).map_err(|source| EvaluationError {
                output: output.name.clone(),
                source,
            })?;
            evaluation.outputs.push(Computed {
                name: output.name.clone(),
                unit: self.unit_of(output),
                value,
            });
        }
        Ok(evaluation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study(toml_outputs: &str) -> Result<Study, String> {
        let text = format!(
            "[[metrics]]\nname = \"glucose\"\nunit = \"mmol/L\"\nprecision = 0.0001\nmin = 0.0\nmax = 150.0\n[[metrics]]\nname = \"cholesterol\"\nunit = \"mmol/L\"\nprecision = 0.0001\nmin = 0.0\nmax = 50.0\n{toml_outputs}"
        );
        config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize::<Study>())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn default_study_is_valid() {
        crate::config::Settings::defaults()
            .study
            .validate()
            .unwrap();
    }

    #[test]
    fn inconsistent_studies_are_refused_with_a_clear_message() {
        let cases = [
            (
                "[[outputs]]\nname = \"x\"\nkind = \"sum\"\nmetric = \"weight\"\n",
                "unknown metric \"weight\"",
            ),
            (
                "[[outputs]]\nname = \"x\"\nkind = \"sum\"\nmetric = \"glucose\"\n[[outputs]]\nname = \"x\"\nkind = \"mean\"\nmetric = \"glucose\"\n",
                "output \"x\" is defined twice",
            ),
            (
                "[[outputs]]\nname = \"x\"\nkind = \"weighted_sum\"\nterms = []\n",
                "at least one term",
            ),
            (
                "[[outputs]]\nname = \"x\"\nkind = \"scale\"\nmetric = \"glucose\"\nfactor = nan\n",
                "factor is not a finite number",
            ),
            (
                "[[outputs]]\nname = \"x\"\nkind = \"weighted_sum\"\nterms = [{metric = \"glucose\", weight = 1}, {metric = \"glucose\", weight = 2}]\n",
                "appears in two terms",
            ),
            (
                "[[outputs]]\nname = \"Bad Name\"\nkind = \"sum\"\nmetric = \"glucose\"\n",
                "not allowed",
            ),
            (
                "[[outputs]]\nname = \"x\"\nkind = \"random_scale\"\nmetric = \"glucose\"\nmin = 0\nmax = 10\n",
                "1 <= min <= max",
            ),
            (
                "[[outputs]]\nname = \"x\"\nkind = \"random_scale\"\nmetric = \"glucose\"\nmin = 5\nmax = 4\n",
                "got 5..=4",
            ),
        ];
        for (outputs, expected) in cases {
            let err = study(outputs).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        }
    }

    #[test]
    fn unknown_kinds_and_fields_do_not_parse() {
        let err = study("[[outputs]]\nname = \"x\"\nkind = \"median\"\nmetric = \"glucose\"\n")
            .unwrap_err();
        assert!(err.contains("unknown kind"), "{err}");
        let err = study(
            "[[outputs]]\nname = \"x\"\nkind = \"sum\"\nmetric = \"glucose\"\nfactor = 2.0\n",
        )
        .unwrap_err();
        assert!(err.contains("does not apply"), "{err}");
        let err =
            study("[[outputs]]\nname = \"x\"\nkind = \"sum\"\nmetrc = \"glucose\"\n").unwrap_err();
        assert!(err.contains("metrc"), "{err}");
    }

    #[test]
    fn random_scale_parses_and_needs_its_range() {
        let s = study(
            "[[outputs]]\nname = \"glucose_x\"\nkind = \"random_scale\"\nmetric = \"glucose\"\nmin = 1\nmax = 10\n",
        )
        .unwrap();
        s.validate().unwrap();
        assert_eq!(
            s.outputs[0].kind,
            OutputKind::RandomScale {
                metric: "glucose".into(),
                min: 1,
                max: 10
            }
        );
        assert_eq!(s.unit_of(&s.outputs[0]), "mmol/L");
        let err = study(
            "[[outputs]]\nname = \"x\"\nkind = \"random_scale\"\nmetric = \"glucose\"\nmin = 1\n",
        )
        .unwrap_err();
        assert!(err.contains("needs max"), "{err}");
        let err = study(
            "[[outputs]]\nname = \"x\"\nkind = \"random_scale\"\nmetric = \"glucose\"\nmin = 1\nmax = 2\nfactor = 3.0\n",
        )
        .unwrap_err();
        assert!(err.contains("does not apply"), "{err}");
    }

    #[test]
    fn the_bench_demo_study_replaces_the_default_study() {
        let file =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/demo-study.toml");
        let settings = crate::config::Settings::load(&crate::config::LoadOptions {
            file: Some(file),
            ignore_environment: true,
            ..Default::default()
        })
        .unwrap();
        let names: Vec<&str> = settings
            .study
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(names, ["glucose_x", "cholesterol_x"]);
        assert!(matches!(
            settings.study.outputs[1].kind,
            OutputKind::RandomScale {
                min: 1,
                max: 10,
                ..
            }
        ));
    }

    #[test]
    fn plain_evaluation_uses_the_mean_of_a_series() {
        let s = crate::config::Settings::defaults().study;
        let readings = BTreeMap::from([
            ("glucose".to_owned(), vec![5.0, 6.0]),
            ("cholesterol".to_owned(), vec![4.0]),
        ]);
        let e = s.evaluate_plain(&readings);
        let get = |n: &str| e.outputs.iter().find(|o| o.name == n).unwrap().value;
        assert!((get("glucose_mg_dl") - 5.5 * 18.016).abs() < 1e-9);
        assert!((get("glucose_sum") - 11.0).abs() < 1e-12);
        assert!((get("glucose_mean") - 5.5).abs() < 1e-12);
        assert!((get("risk_score") - (-2.5 + 0.35 * 5.5 + 0.6 * 4.0)).abs() < 1e-12);
        assert!(e.skipped.is_empty());
    }

    #[test]
    fn outputs_whose_metric_is_absent_are_skipped() {
        let s = crate::config::Settings::defaults().study;
        let e = s.evaluate_plain(&BTreeMap::from([("glucose".to_owned(), vec![5.0])]));
        assert!(e.skipped.contains(&"risk_score".to_owned()));
        assert!(e.skipped.contains(&"cholesterol_mean".to_owned()));
        assert!(e.outputs.iter().any(|o| o.name == "glucose_mean"));
    }

    fn metric(precision: f64, min: f64, max: f64) -> Metric {
        Metric {
            name: "glucose".into(),
            unit: "mmol/L".into(),
            precision,
            min,
            max,
        }
    }

    #[test]
    fn the_exponent_is_floor_log16_of_the_precision_exactly() {
        assert_eq!(precision_exponent(0.0001), Some(-4));
        assert_eq!(precision_exponent(0.001), Some(-3));
        assert_eq!(precision_exponent(0.01), Some(-2));
        assert_eq!(precision_exponent(1.0), Some(0));
        assert_eq!(precision_exponent(15.99), Some(0));
        assert_eq!(precision_exponent(16.0), Some(1));
        // Exact powers of 16 and their neighbours, over the whole f64 range (subnormals
        // included): ln(p) / ln(16) is off by one at some of these, e.g. 16^-31.
        for k in -268..=255i32 {
            let power = scale_by_16_pow_neg(1.0, -k);
            assert!(power > 0.0 && power.is_finite(), "16^{k}");
            assert_eq!(precision_exponent(power), Some(k), "16^{k}");
            let below = f64::from_bits(power.to_bits() - 1);
            assert_eq!(precision_exponent(below), Some(k - 1), "just below 16^{k}");
            if k < 255 {
                let above = f64::from_bits(power.to_bits() + 1);
                assert_eq!(precision_exponent(above), Some(k), "just above 16^{k}");
            }
        }
        assert_eq!(precision_exponent(f64::from_bits(1)), Some(-269)); // 2^-1074
        assert_eq!(precision_exponent(f64::MAX), Some(255));
        for bad in [0.0, -0.0001, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(precision_exponent(bad), None, "{bad}");
        }
    }

    #[test]
    fn precision_and_range_are_required_and_checked() {
        let cases = [
            (
                metric(0.0, 0.0, 1.0),
                "precision must be a finite number above 0",
            ),
            (metric(-1.0, 0.0, 1.0), "got -1"),
            (metric(f64::NAN, 0.0, 1.0), "precision must be"),
            (metric(0.1, 1.0, 1.0), "min < max, got min = 1, max = 1"),
            (metric(0.1, 2.0, 1.0), "min < max"),
            (metric(0.1, f64::NEG_INFINITY, 1.0), "finite min < max"),
            (metric(0.1, 0.0, f64::NAN), "finite min < max"),
            (metric(1e-12, 0.0, 1e8), "needs mantissas above 2^63"),
        ];
        for (m, expected) in cases {
            let s = Study {
                metrics: vec![m],
                outputs: vec![Output {
                    name: "x".into(),
                    unit: None,
                    kind: OutputKind::Sum {
                        metric: "glucose".into(),
                    },
                }],
            };
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        }
        let err = config::Config::builder()
            .add_source(config::File::from_str(
                "[[metrics]]\nname = \"glucose\"\nunit = \"mmol/L\"\nmin = 0.0\nmax = 1.0\n[[outputs]]\nname = \"x\"\nkind = \"sum\"\nmetric = \"glucose\"\n",
                config::FileFormat::Toml,
            ))
            .build()
            .and_then(|c| c.try_deserialize::<Study>())
            .unwrap_err()
            .to_string();
        assert!(err.contains("precision"), "{err}");
    }

    #[test]
    fn readings_are_encoded_at_the_metrics_exponent_with_python_paillier_rounding() {
        let key = paillier::PrivateKey::generate_insecure_for_tests(256);
        let pk = key.public_key();
        let m = metric(0.0001, -10.0, 150.0);
        let mantissa = |v: f64| {
            let encoded = m.encode(pk, v).unwrap();
            assert_eq!(encoded.exponent(), -4, "{v}");
            pk.decode(&encoded).unwrap().mantissa().clone()
        };
        assert_eq!(mantissa(1.2), num_bigint::BigInt::from(78643)); // 1.2 · 65536 = 78643.2
        assert_eq!(mantissa(33.0), num_bigint::BigInt::from(33 * 65536));
        assert_eq!(mantissa(-2.5), num_bigint::BigInt::from(-163840));
        assert_eq!(mantissa(0.0), num_bigint::BigInt::from(0));
        // Exactly half a step rounds to even, as Python's round().
        assert_eq!(mantissa(0.5 / 65536.0), num_bigint::BigInt::from(0));
        assert_eq!(mantissa(1.5 / 65536.0), num_bigint::BigInt::from(2));
        assert_eq!(mantissa(-1.5 / 65536.0), num_bigint::BigInt::from(-2));
        assert_eq!(m.rounded(1.2), 78643.0 / 65536.0);
        // The range is inclusive.
        assert_eq!(mantissa(150.0), num_bigint::BigInt::from(150 * 65536));
        assert_eq!(m.mantissa_bound(), BigUint::from(150u32 * 65536));
    }

    #[test]
    fn out_of_range_and_non_finite_readings_are_refused_with_a_typed_error() {
        let key = paillier::PrivateKey::generate_insecure_for_tests(256);
        let s = crate::config::Settings::defaults().study;
        let err = s
            .encode_reading(key.public_key(), "glucose", 150.5)
            .unwrap_err();
        assert_eq!(
            err,
            ReadingError::OutOfRange {
                metric: "glucose".into(),
                value: 150.5,
                min: 0.0,
                max: 150.0,
                unit: "mmol/L".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            "glucose = 150.5 mmol/L is outside the study's plausible range 0..=150 mmol/L; nothing was encrypted"
        );
        assert!(matches!(
            s.encode_reading(key.public_key(), "cholesterol", -0.1),
            Err(ReadingError::OutOfRange { .. })
        ));
        assert!(matches!(
            s.encode_reading(key.public_key(), "glucose", f64::NAN),
            Err(ReadingError::NonFinite { .. })
        ));
        assert_eq!(
            s.encode_reading(key.public_key(), "weight", 80.0),
            Err(ReadingError::UnknownMetric("weight".into()))
        );
    }
}
