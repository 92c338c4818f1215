//! Repeats one private-key operation for instruction counting (valgrind's callgrind, or
//! `perf stat -e instructions`): `ct_cost <bits> <decrypt|encrypt_owner> <count>`. The key
//! generation before the loop is excluded with callgrind's
//! `--toggle-collect='paillier::keys::PrivateKey::decrypt_raw'` (or `*owner_obfuscator*`);
//! `PAILLIER_KERNEL=portable|adx` picks the kernel.

use std::hint::black_box;

use paillier::PrivateKey;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bits: u64 = args.next().ok_or("bits")?.parse()?;
    let op = args.next().ok_or("operation")?;
    let count: usize = args.next().ok_or("count")?.parse()?;
    let key = PrivateKey::generate(bits)?;
    let c = key.encrypt_f64(5.4)?;
    for _ in 0..count {
        match op.as_str() {
            "decrypt" => {
                black_box(key.decrypt_f64(&c)?);
            }
            "encrypt_owner" => {
                black_box(key.encrypt_f64(5.4)?);
            }
            other => return Err(format!("unknown operation {other}").into()),
        }
    }
    Ok(())
}
