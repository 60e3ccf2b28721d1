//! `uae`: utility-aligned embeddings from one binary. This file parses the
//! command line and dispatches; the work is done in the library crates.

mod data;
mod device;
mod embed;
mod eval;
mod export;
mod generate;
mod index;
mod label;
mod logprob;
mod mine;
mod progress;
mod quickstart;
mod serve;
mod stdout;
mod synth;
mod train;

/// Burn's flex backend has no memory pool: each op's output is a fresh
/// allocation, and glibc gives every block above its 32 MiB mmap ceiling
/// fresh zeroed pages from the kernel. mimalloc keeps freed blocks for
/// reuse: one training step of the benchmark in BENCHMARKS.md went from 59 s
/// to 42 s (minor page faults 45 million to 0.3 million).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`,
/// mimalloc.h of the v3 sources that libmimalloc-sys 0.1.49 builds; the
/// crate has no constant for it). A unit test checks it against the
/// option's default.
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never hand freed memory back to the OS. mimalloc purges memory that has
/// been free for `purge_delay` (1 s), and every batch of a model run frees
/// and reallocates the same large activation blocks, seconds apart, so each
/// batch faulted in fresh zeroed pages again: scoring 48 items with
/// SmolLM2 spent 3.2-6.7 s in the kernel (54k-59k minor faults) and 0.6-1.0 s
/// (2.6k) without purging, 12-15% faster, for 40 MB more peak RSS
/// (BENCHMARKS.md). A user's `MIMALLOC_PURGE_DELAY` still wins.
#[cfg(feature = "mimalloc")]
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is thread-safe in mimalloc and takes
        // effect on the next purge decision.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Train retrieval embeddings that predict what helps an LLM answer.
#[derive(Parser)]
#[command(name = "uae", version, about)]
struct Cli {
    /// Where tensors run: cpu, vulkan, metal, wgpu or cuda, optionally with a
    /// GPU index (cuda:1). Only the backends this binary was built with work.
    #[arg(long, global = true, env = "BURN_DEVICE", default_value = "cpu")]
    device: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert data sets (QASPER) into the BEIR layout.
    Data(data::DataArgs),
    /// Embed texts from a JSONL file with a bi-encoder.
    Embed(embed::EmbedArgs),
    /// Compare retrieval systems end to end and write a report, or score a
    /// TREC run against relevance judgements (`uae eval metrics`).
    Eval(eval::EvalArgs),
    /// Build or extend an on-disk vector index of a corpus.
    Index(index::IndexArgs),
    /// Search an index with text queries.
    Search(index::SearchArgs),
    /// Serve embeddings, search and teacher log-probabilities over HTTP.
    Serve(serve::ServeArgs),
    /// Mine candidate passages per query for the teacher to label.
    Mine(mine::MineArgs),
    /// Log-likelihood of continuations given prompts under a teacher LLM.
    Logprob(logprob::LogprobArgs),
    /// Label candidates with the teacher's perplexity-reduction utility.
    Label(label::LabelCommand),
    /// Generate text greedily with the teacher LLM.
    Generate(generate::GenerateArgs),
    /// Write synthetic training questions for a corpus with the teacher.
    Synth(synth::SynthArgs),
    /// Distil teacher utilities into a bi-encoder.
    Train(train::TrainArgs),
    /// Write a trained run as a Hugging Face model directory.
    Export(export::ExportArgs),
    /// Run the whole pipeline (index, mine, label, train, evaluate) on the
    /// embedded defaults and write a report; finished stages are reused.
    Quickstart(quickstart::QuickstartArgs),
}

fn main() {
    #[cfg(feature = "mimalloc")]
    keep_freed_memory();
    let cli = Cli::parse();
    if let Err(err) = run(cli) {
        if stdout::is_closed(&err) {
            // The reader of standard output has gone (`uae ... | head`): end
            // quietly, with the status of a process killed by SIGPIPE.
            std::process::exit(141);
        }
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    // Parsed only by the commands that run a model, so that `uae eval` works
    // whatever BURN_DEVICE says.
    let device = || device::parse_device(&cli.device);
    match cli.command {
        Command::Data(args) => data::run(args),
        Command::Embed(args) => embed::run(args, &device()?),
        Command::Eval(args) => eval::run(args, device),
        Command::Index(args) => index::run_index(args, &device()?),
        Command::Search(args) => index::run_search(args, &device()?),
        Command::Serve(args) => serve::run(args, device()?),
        Command::Mine(args) => mine::run(args, &device()?),
        Command::Logprob(args) => logprob::run(args, &device()?),
        Command::Label(args) => label::run(args, &device()?),
        Command::Generate(args) => generate::run(args, &device()?),
        Command::Synth(args) => synth::run(args, &device()?),
        Command::Train(args) => train::run(args, &device()?),
        Command::Export(args) => export::run(args),
        Command::Quickstart(args) => quickstart::run(args, &device()?),
    }
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    /// The hard-coded option is mimalloc's purge delay: before anything sets
    /// it, that option holds v3's default of 1,000 ms (no neighbouring option
    /// defaults to that).
    #[test]
    fn purge_delay_option_is_mimallocs() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reading an option is thread-safe in mimalloc.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}
