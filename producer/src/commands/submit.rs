//! `producer submit`: encrypt readings and publish them with a confirm.

use anyhow::Context as _;
use participant::keystore::KeyStore;
use participant::{Client, readings};
use pipeline::ParticipantId;
use pipeline::config::Settings;

/// Arguments of `submit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Participant id whose key encrypts the readings.
    #[arg(long)]
    participant: ParticipantId,
    /// A reading, METRIC=VALUE (e.g. glucose=5.4); repeat a metric for a series.
    #[arg(long = "reading", value_name = "METRIC=VALUE", required = true)]
    readings: Vec<String>,
}

/// Everything that can fail without the broker is checked first, so a typo publishes nothing.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let readings = args
        .readings
        .iter()
        .map(|r| readings::parse_reading(r))
        .collect::<Result<Vec<_>, _>>()?;
    let grouped = readings::group_readings(&settings.study, readings)?;
    let store = KeyStore::new(settings.key_store_dir());
    let key = store.load_private(&args.participant)?;
    let participant = args.participant.clone();
    let study = settings.study.clone();
    let submission = tokio::task::spawn_blocking(move || {
        readings::encrypt_submission(&study, &participant, &key, &grouped)
    })
    .await
    .context("encryption thread")??;

    let client = Client::connect(settings, "producer").await?;
    client
        .submit(&submission)
        .await
        .context("publishing the submission")?;
    client.close().await;
    println!("{}", submission.submission_id);
    Ok(())
}
