//! `producer keygen`: a new key pair in the key store.

use anyhow::Context as _;
use paillier::PrivateKey;
use participant::keystore::KeyStore;
use pipeline::ParticipantId;
use pipeline::config::Settings;

/// Arguments of `keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Participant id (letters, digits, '-' and '_').
    #[arg(long)]
    participant: ParticipantId,
    /// Modulus length: 2048, 3072 or 4096.
    /// Default: `[participant] key_bits` of the configuration (3072 unless changed).
    #[arg(long)]
    bits: Option<u64>,
}

/// Generates the key (on a blocking thread: it takes a moment) and stores it.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let store = KeyStore::new(settings.key_store_dir());
    if store.contains(&args.participant) {
        anyhow::bail!(
            "participant {} already has a key in {}",
            args.participant,
            store.dir().display()
        );
    }
    let bits = args.bits.unwrap_or(settings.participant.key_bits);
    let key = tokio::task::spawn_blocking(move || PrivateKey::generate(bits))
        .await
        .context("key generation thread")?
        .context("generating the key")?;
    store
        .save(&args.participant, &key)
        .context("writing the key store")?;
    println!(
        "{} {} bits {} -> {}",
        args.participant,
        key.public_key().bits(),
        key.public_key().fingerprint(),
        store.private_path(&args.participant).display()
    );
    Ok(())
}
