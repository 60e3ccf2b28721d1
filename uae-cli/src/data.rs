//! `uae data`: data-set conversion. `uae data qasper` turns AllenAI's QASPER
//! JSON files into a BEIR folder whose `pools.jsonl` ranks each question
//! among its own paper's paragraphs, so every other command (and
//! `uae quickstart --data`) can use it.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use uae_data::DataSet;
use uae_data::beir::POOLS;
use uae_data::lock::{Lock, check_name, claim_folder};

/// Arguments of `uae data`.
#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Convert QASPER JSON files into a BEIR folder with per-paper pools.
    Qasper(QasperArgs),
}

#[derive(Args)]
struct QasperArgs {
    /// A split and its file as SPLIT=FILE, e.g. train=qasper-train-v0.3.json; repeat per split.
    #[arg(long = "split", required = true)]
    splits: Vec<String>,
    /// The BEIR folder to write: a new or empty folder, or an earlier
    /// conversion's (it has pools.jsonl) to replace.
    #[arg(long)]
    out: PathBuf,
    /// Write into --out even when it is a folder of other files (a data set
    /// there would have its corpus, queries and qrels replaced).
    #[arg(long)]
    force: bool,
}

/// Runs `uae data`.
pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Qasper(a) => {
            let mut files = Vec::new();
            for spec in &a.splits {
                let Some((split, file)) = spec.split_once('=') else {
                    bail!("--split {spec:?}: expected SPLIT=FILE, e.g. train=qasper-train-v0.3.json");
                };
                // The split names a file, qrels/<split>.tsv.
                check_name(&format!("--split {spec}"), split)?;
                files.push((split, PathBuf::from(file)));
            }
            let _lock = Lock::acquire(&a.out)?;
            claim_folder(&a.out, &a.out.join(POOLS), "a converted data set", a.force)?;
            let (data, report) = DataSet::from_qasper(&files)?;
            data.write_beir(&a.out)?;
            eprintln!("{report}");
            eprintln!(
                "wrote {} passages, {} queries and {} splits to {}",
                data.corpus.len(),
                data.queries.len(),
                data.qrels.len(),
                a.out.display()
            );
            Ok(())
        }
    }
}
