//! What the consumer's tests share beyond the test-support crate: the producer binary they
//! enroll with, and a cohort's working files.

use std::path::PathBuf;

use pipeline::config::Settings;
use tokio::process::Command;

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

/// A cohort's files in a temporary directory of their own (CSV, enrollment journal, key store,
/// collect's output), and the environment that points the binaries at the test's broker and
/// topology prefix.
pub struct CohortFiles {
    pub dir: PathBuf,
    pub csv: PathBuf,
    pub journal: PathBuf,
    pub out_file: PathBuf,
    url: String,
    prefix: String,
}

impl CohortFiles {
    /// Writes `cohort` (CSV text) into a new directory named after `name`.
    pub fn new(name: &str, settings: &Settings, cohort: &str) -> CohortFiles {
        let dir = std::env::temp_dir().join(format!("{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("cohort.csv");
        std::fs::write(&csv, cohort).unwrap();
        CohortFiles {
            journal: dir.join("cohort.journal"),
            out_file: dir.join("results.csv"),
            csv,
            dir,
            url: settings.broker.url.clone(),
            prefix: settings.topology.prefix.clone(),
        }
    }

    /// The broker, key store and topology prefix of this cohort, for `cmd`.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("AMQP_URL", &self.url)
            .env("KEY_STORE", self.dir.join("keys"))
            .env("PIPELINE__TOPOLOGY__PREFIX", &self.prefix);
    }

    /// `producer enroll` of the cohort (2048-bit keys, with the journal).
    pub fn enroll_command(&self) -> Command {
        let mut enroll = Command::new(producer_bin());
        enroll
            .args(["enroll", "--bits", "2048", "--csv"])
            .arg(&self.csv);
        enroll.arg("--journal").arg(&self.journal);
        self.env(&mut enroll);
        enroll
    }
}
