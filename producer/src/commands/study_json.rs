//! `producer study-json`: the study as JSON, for a participant-facing page (the contract is
//! [`pipeline::published::PublishedStudy`]). Reads only the configuration: no broker, no keys.

use std::path::PathBuf;

use anyhow::Context as _;
use pipeline::config::Settings;
use pipeline::published::PublishedStudy;

/// Arguments of `study-json`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the JSON to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Writes the published study.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let json = PublishedStudy::from_settings(settings).to_json_pretty();
    match args.output {
        Some(path) => {
            std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{json}"),
    }
    Ok(())
}
