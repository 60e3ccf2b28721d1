//! `uae export`: a finished run as a Hugging Face model directory that
//! `uae embed` and sentence-transformers load. The directory gets a marker,
//! `uae_export.json`, naming the run: a later export may replace a folder
//! holding one, but no other non-empty folder (such as the base model's)
//! without --force.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use uae_data::atomic::write_file_atomically;
use uae_data::lock::{Lock, claim_folder};

/// Arguments of `uae export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The run directory written by `uae train`.
    #[arg(long)]
    run: PathBuf,
    /// The model directory to write: a new or empty folder, or an earlier
    /// export to replace.
    #[arg(long)]
    out: PathBuf,
    /// Write into --out even when it is a folder of other files (any of the
    /// model's own file names there, such as model.safetensors, is replaced).
    #[arg(long)]
    force: bool,
}

/// The file that marks a folder as written by `uae export`.
const MARKER: &str = "uae_export.json";

/// Runs `uae export`.
pub fn run(args: ExportArgs) -> Result<()> {
    if let (Ok(run), Ok(out)) = (args.run.canonicalize(), args.out.canonicalize())
        && out.starts_with(&run)
    {
        bail!("--out {} is inside the run --run {}, whose files it would overwrite", args.out.display(), args.run.display());
    }
    // The run's lock keeps `uae train` from rewriting it while it is read.
    let _locks = (Lock::acquire(&args.run)?, Lock::acquire(&args.out)?);
    let marker = args.out.join(MARKER);
    claim_folder(&args.out, &marker, "a model export", args.force)?;
    uae_train::export::export(&args.run, &args.out)?;
    write_file_atomically(&marker, serde_json::to_string_pretty(&serde_json::json!({"run": args.run}))?.as_bytes())?;
    eprintln!("exported {} to {}", args.run.display(), args.out.display());
    Ok(())
}
