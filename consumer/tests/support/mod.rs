//! What the consumer's tests share beyond pipeline/tests/common: the producer binary they
//! enroll with.

use std::path::PathBuf;

/// The producer binary, built next to the consumer's (`cargo test -p producer -p consumer`).
pub fn producer_bin() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_consumer")).with_file_name("producer");
    assert!(
        path.exists(),
        "{} missing: build it first (cargo build -p producer)",
        path.display()
    );
    path
}
