//! Generates keys in a loop, for profiling key generation (e.g. under
//! `valgrind --tool=callgrind`, which counts instructions and so is robust to a noisy machine).
//! Run: `cargo run --release -p paillier --example keygen_profile [-- <bits> <keys>]`.

use std::time::Instant;

use paillier::PrivateKey;

fn main() -> Result<(), paillier::Error> {
    let mut args = std::env::args().skip(1);
    let bits: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2048);
    let keys: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let started = Instant::now();
    for _ in 0..keys {
        std::hint::black_box(PrivateKey::generate(bits)?);
    }
    let per_key = started.elapsed().as_secs_f64() / keys as f64;
    println!("{bits}-bit keys: {keys}, {:.1} ms per key", per_key * 1e3);
    Ok(())
}
