//! Packing a submission's outputs into as few plaintexts as possible, so that the worker
//! re-randomises, and the participant decrypts, one ciphertext per submission instead of one per
//! output (both cost a full exponentiation modulo n²).
//!
//! ## Layout
//! Every output i has a public bound `bound_i` on |v_i|, its encrypted mantissa
//! ([`crate::study::Bounded`]). Its slot holds `t_i = v_i + bias_i` with `bias_i = bound_i + 1`,
//! so `1 <= t_i <= 2·bias_i - 1` whenever the bound holds; the slot is
//! `width_i = bits(2·bias_i) + GUARD_BITS` wide. Slots are laid side by side from bit 0 up:
//! `packed = Σ t_i · 2^offset_i`, and a packed plaintext is at most
//! `bits(n) - SAFETY_MARGIN_BITS` wide, so it is below n and nothing wraps. Outputs are placed
//! first-fit in study order; one that fits in no open plaintext starts a new one.
//!
//! The worker computes the packed ciphertext with public operations only, by Horner's rule from
//! the highest slot down: `acc = E(t_k)`, then `acc = acc^(2^width_j) · E(t_j)`, where
//! `E(t_j) = E(v_j) · g^bias_j`. That is `Σ width` squarings modulo n² per packed ciphertext,
//! far less than the one re-randomisation (a |n|-bit exponent) it saves per output.
//!
//! ## Unpacking, and what happens if the bound assumption was false
//! `m_i = ((D(c) >> offset_i) mod 2^width_i) - bias_i`, value `= m_i · 16^exponent_i`.
//!
//! The bounds are sound consequences of one assumption on the readings (their mantissas are
//! within their metric's declared range, or below 2^`reading_mantissa_bits` where that is
//! tighter: [`crate::study::Metric::reading_bound`]) that the worker cannot check. A result computed from readings
//! that break it is **detected** at unpacking, not made impossible: [`unpack`] refuses a slot
//! outside `1..=2·bias - 1` and [`check_unused_bits`] refuses a plaintext with bits set above its
//! highest slot; a result is shown only if every check passes. Detection is certain whenever
//! every output stays below 2^`GUARD_BITS` times its bound, which holds when every reading's
//! mantissa is below 2^(`GUARD_BITS` - 1) times its own bound (outputs are linear in the
//! readings): honest slots never carry or borrow, so the lowest offending slot reads its own
//! `t` directly (or `2^width + t` after a borrow from above when `t < 0`), and `2^width >
//! 2^GUARD_BITS · 2·bias` puts that reading at or above `2·bias`, or at 0; if it is the highest
//! slot and `t < 0`, the whole plaintext is negative, wraps modulo n and sets the bits above the
//! layout. Larger violations (mantissas of 2^95 and more with the defaults: no f64 or i64
//! encoding gives one) may carry across slots and wrap modulo n, and
//! are caught with high probability but not with certainty. Only the submitter can break the
//! assumption, and a submitter can make its own results say anything by encrypting other
//! readings anyway; the checks are there so that a non-conforming client (say, one encoding with
//! much more precision) gets an error, not a wrong number.

use num_bigint::{BigInt, BigUint};
use num_traits::{One, Zero};
use paillier::EncryptedNumber;
use thiserror::Error;

use crate::study::Bounded;

/// Zero bits above each slot's largest honest value: they detect a violated bound.
pub const GUARD_BITS: u64 = 32;

/// A packed plaintext is kept this many bits below n's length. One bit suffices (n has exactly
/// `bits(n)` bits, so 2^(bits(n) - 1) <= n); the rest is a margin against a mistake.
pub const SAFETY_MARGIN_BITS: u64 = 16;

/// Why outputs could not be packed or unpacked.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PackingError {
    /// An output's bound alone needs more bits than a plaintext offers (its readings' exponents
    /// are far apart, or the key is small).
    #[error(
        "output {output}: its bound needs a {width}-bit slot, more than the {capacity} bits a plaintext offers"
    )]
    TooWide {
        /// Index of the output.
        output: usize,
        /// Bits the slot needs.
        width: u64,
        /// Bits available.
        capacity: u64,
    },
    /// A slot's value is outside what its bias allows: the readings broke the bound assumption.
    #[error(
        "slot at bit {offset} holds a value outside its bound: the readings' mantissas exceed the worker's assumption"
    )]
    SlotOverflow {
        /// Offset of the slot.
        offset: u64,
    },
    /// A packed plaintext has bits set above its highest slot.
    #[error(
        "packed plaintext has bits set above bit {used}: the readings' mantissas exceed the worker's assumption"
    )]
    UnusedBitsSet {
        /// Bits the layout uses.
        used: u64,
    },
    /// Homomorphic arithmetic refused an operation.
    #[error(transparent)]
    Paillier(#[from] paillier::Error),
}

/// Where one output sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Index of the packed plaintext.
    pub packed: usize,
    /// Lowest bit of the slot.
    pub offset: u64,
    /// Bits of the slot.
    pub width: u64,
    /// Added to the mantissa so that the slot holds a non-negative number.
    pub bias: BigUint,
}

/// Slots of all outputs (in output order) and the number of packed plaintexts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// One slot per output, in the order the bounds were given.
    pub slots: Vec<Slot>,
    /// Number of packed plaintexts.
    pub packed: usize,
}

/// Bits a plaintext may use for slots under a key of `key_bits`.
pub fn capacity(key_bits: u64) -> u64 {
    key_bits.saturating_sub(SAFETY_MARGIN_BITS)
}

/// Places outputs with these mantissa bounds (first fit, in order) under a key of `key_bits`.
pub fn layout(bounds: &[&BigUint], key_bits: u64) -> Result<Layout, PackingError> {
    let capacity = capacity(key_bits);
    // Bits used so far in each open plaintext.
    let mut used: Vec<u64> = Vec::new();
    let mut slots = Vec::with_capacity(bounds.len());
    for (output, bound) in bounds.iter().enumerate() {
        let bias = *bound + 1u32;
        let width = (&bias << 1u32).bits() + GUARD_BITS;
        if width > capacity {
            return Err(PackingError::TooWide {
                output,
                width,
                capacity,
            });
        }
        let packed = match used.iter().position(|u| u + width <= capacity) {
            Some(index) => index,
            None => {
                used.push(0);
                used.len() - 1
            }
        };
        slots.push(Slot {
            packed,
            offset: used[packed],
            width,
            bias,
        });
        used[packed] += width;
    }
    Ok(Layout {
        slots,
        packed: used.len(),
    })
}

/// The packed ciphertexts for `values` (not re-randomised: obfuscate each before it leaves).
/// Their exponent label is 0 and means nothing: each output's exponent travels in its slot
/// description.
pub fn pack(values: &[&Bounded], layout: &Layout) -> Result<Vec<EncryptedNumber>, PackingError> {
    assert_eq!(values.len(), layout.slots.len(), "one slot per value");
    let mut packed = Vec::with_capacity(layout.packed);
    for index in 0..layout.packed {
        let mut members: Vec<(&Bounded, &Slot)> = values
            .iter()
            .copied()
            .zip(&layout.slots)
            .filter(|(_, slot)| slot.packed == index)
            .collect();
        members.sort_by_key(|(_, slot)| slot.offset);
        // Horner's rule from the highest slot down: acc = acc·2^width_j + t_j.
        let mut acc: Option<EncryptedNumber> = None;
        for (value, slot) in members.iter().rev() {
            let key = value.value.public_key();
            let biased = value
                .value
                .relabel_exponent(0)?
                .add_encoded(&key.encode_bigint(&BigInt::from(slot.bias.clone()))?)?;
            acc = Some(match acc {
                None => biased,
                Some(higher) => {
                    let shift = key.encode_bigint(&(BigInt::one() << slot.width))?;
                    higher.mul_encoded(&shift)?.add(&biased)?
                }
            });
        }
        packed.push(acc.expect("every packed plaintext has at least one slot"));
    }
    Ok(packed)
}

/// The signed mantissa in a slot of a decrypted packed plaintext, refused if outside the slot's
/// honest range `1..=2·bias - 1`.
pub fn unpack(
    plaintext: &BigUint,
    offset: u64,
    width: u64,
    bias: &BigUint,
) -> Result<BigInt, PackingError> {
    let mask = (BigUint::one() << width) - 1u32;
    let slot = (plaintext >> offset) & mask;
    if slot.is_zero() || slot >= (bias << 1u32) {
        return Err(PackingError::SlotOverflow { offset });
    }
    Ok(BigInt::from(slot) - BigInt::from(bias.clone()))
}

/// Refuses a packed plaintext with bits set at or above `used` (the end of its highest slot).
pub fn check_unused_bits(plaintext: &BigUint, used: u64) -> Result<(), PackingError> {
    if (plaintext >> used).is_zero() {
        Ok(())
    } else {
        Err(PackingError::UnusedBitsSet { used })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_first_fit_and_never_exceed_the_capacity() {
        let small = BigUint::from(1000u32); // 11 bits for 2·1001, + guard
        let big = BigUint::one() << 1000u32;
        let bounds = [&small, &big, &small, &big, &small];
        let layout = layout(&bounds, 2048).unwrap();
        let w_small = 11 + GUARD_BITS;
        let w_big = 1002 + GUARD_BITS;
        assert_eq!(layout.slots[0].offset, 0);
        assert_eq!(layout.slots[0].width, w_small);
        assert_eq!(layout.slots[1].offset, w_small);
        assert_eq!(layout.slots[1].width, w_big);
        // Two big slots do not fit together with the first ones: the second big one opens a
        // new plaintext, and later small ones go back into the first if they fit.
        assert_eq!(layout.slots[3].packed, 1);
        assert_eq!(layout.slots[4].packed, 0);
        assert_eq!(layout.packed, 2);
        for index in 0..layout.packed {
            let used: u64 = layout
                .slots
                .iter()
                .filter(|s| s.packed == index)
                .map(|s| s.width)
                .sum();
            assert!(used <= capacity(2048));
        }
        let huge = BigUint::one() << 2040u32;
        assert!(matches!(
            super::layout(&[&huge], 2048),
            Err(PackingError::TooWide { output: 0, .. })
        ));
    }

    #[test]
    fn unpack_reads_signed_values_and_refuses_out_of_range_slots() {
        let bias = BigUint::from(100u32);
        // Slots: 7 at offset 0 (t = 107), -100 + 1 at offset 40 (t = 1), 99 at offset 80.
        let plain = BigUint::from(107u32)
            + (BigUint::from(1u32) << 40u32)
            + (BigUint::from(199u32) << 80u32);
        assert_eq!(unpack(&plain, 0, 40, &bias).unwrap(), BigInt::from(7));
        assert_eq!(unpack(&plain, 40, 40, &bias).unwrap(), BigInt::from(-99));
        assert_eq!(unpack(&plain, 80, 40, &bias).unwrap(), BigInt::from(99));
        check_unused_bits(&plain, 120).unwrap();
        assert!(check_unused_bits(&plain, 87).is_err());
        // 200 = 2·bias: a value of +100 broke |v| <= 99.
        let over = BigUint::from(200u32);
        assert!(unpack(&over, 0, 40, &bias).is_err());
        // Zero: a value of -100.
        assert!(unpack(&BigUint::zero(), 0, 40, &bias).is_err());
    }
}
