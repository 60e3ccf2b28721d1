//! `uae export`: a finished run as a Hugging Face model directory that
//! `uae embed` and sentence-transformers load.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Arguments of `uae export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The run directory written by `uae train`.
    #[arg(long)]
    run: PathBuf,
    /// The model directory to write.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `uae export`.
pub fn run(args: ExportArgs) -> Result<()> {
    uae_train::export::export(&args.run, &args.out)?;
    eprintln!("exported {} to {}", args.run.display(), args.out.display());
    Ok(())
}
