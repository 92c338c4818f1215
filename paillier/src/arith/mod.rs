//! Placeholder arithmetic (num-bigint's own modpow); replaced by the Montgomery kernel.
#![allow(dead_code)]
use num_bigint::{BigInt, BigUint};
use num_integer::Integer;
use num_traits::{One, Signed, Zero};

#[derive(Clone, Debug)]
pub(crate) struct Modulus {
    m: BigUint,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Residue(BigUint);

impl Modulus {
    pub fn new(m: &BigUint) -> Option<Modulus> {
        if m.is_odd() && *m > BigUint::one() {
            Some(Modulus { m: m.clone() })
        } else {
            None
        }
    }
    pub fn value(&self) -> &BigUint {
        &self.m
    }
    pub fn to_residue(&self, x: &BigUint) -> Residue {
        Residue(x % &self.m)
    }
    pub fn from_residue(&self, x: &Residue) -> BigUint {
        x.0.clone()
    }
    pub fn one(&self) -> Residue {
        Residue(BigUint::one())
    }
    pub fn mul(&self, a: &Residue, b: &Residue) -> Residue {
        Residue(&a.0 * &b.0 % &self.m)
    }
    pub fn square(&self, a: &Residue) -> Residue {
        Residue(&a.0 * &a.0 % &self.m)
    }
    pub fn pow(&self, base: &Residue, exp: &BigUint) -> Residue {
        Residue(base.0.modpow(exp, &self.m))
    }
    pub fn pow_u64(&self, base: &Residue, exp: u64) -> Residue {
        Residue(base.0.modpow(&BigUint::from(exp), &self.m))
    }
    pub fn mul_plain(&self, a: &BigUint, b: &BigUint) -> BigUint {
        a * b % &self.m
    }
    pub fn pow_plain(&self, base: &BigUint, exp: &BigUint) -> BigUint {
        base.modpow(exp, &self.m)
    }
}

pub(crate) fn mod_inverse(a: &BigUint, m: &BigUint) -> Option<BigUint> {
    let a = BigInt::from(a.clone());
    let m = BigInt::from(m.clone());
    let e = a.extended_gcd(&m);
    if !e.gcd.is_one() {
        return None;
    }
    let mut x = e.x % &m;
    if x.is_negative() {
        x += &m;
    }
    if x.is_zero() { None } else { x.to_biguint() }
}

pub(crate) fn gcd(a: &BigUint, b: &BigUint) -> BigUint {
    a.gcd(b)
}
