//! oxbench: OSU-style micro-benchmarks for oxmpi, run through oxrun, e.g.
//! `oxrun -n 2 target/release/oxbench latency -m 4096`.
//!
//! This file holds the command line and the dispatch to the tests; each family of
//! tests lives in its own module ([`p2p`]), sharing the flags and timed loop of
//! [`options`], the result tables of [`table`] and the validation patterns of
//! [`pattern`]. Rank 0 prints an OSU-format table that `shared/tools/compare-mpi`
//! reads side by side with `shared/tools/mpibench.c` under Open MPI and MPICH, and
//! each test measures exactly what mpibench measures.
//!
//! Invariant: every rank parses the same arguments, so a usage error is found on all
//! ranks at once: rank 0 explains it, every rank finalizes, and the job exits 2.
//! A failure while measuring aborts the job with status 1.

mod options;
mod p2p;
mod pattern;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oxmpi::{Comm, Universe};

use crate::options::Common;

const AFTER_HELP: &str = "\
Run under oxrun; only rank 0 prints. Examples:
  oxrun -n 2 target/release/oxbench latency
  oxrun -n 2 target/release/oxbench bw -m 4096:1048576 -i 1000 -c

Iteration counts match shared/tools/mpibench.c, which compare-mpi runs under Open
MPI and MPICH: sizes above 64 KiB run ITERS/10+1 iterations.";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "oxbench",
    version,
    about = "OSU-style micro-benchmarks for oxmpi",
    after_help = AFTER_HELP,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    test: Test,
}

/// The tests, one subcommand each.
#[derive(Debug, Subcommand)]
enum Test {
    /// Ping-pong latency between ranks 0 and 1: half the round trip in us (osu_latency)
    Latency(Common),
    /// Bandwidth from rank 0 to rank 1 in windows of 64 messages, in MB/s (osu_bw)
    ///
    /// Rank 0 sends a window of 64 messages, rank 1 answers with a 4-byte ack, as in
    /// mpibench: each size runs ITERS/20+2 timed windows (ITERS as reduced above 64
    /// KiB) after one untimed window (or WARMUP windows). 1 MB is 1e6 bytes.
    Bw(Common),
    // Collective tests (coll.rs) go here, with their dispatch lines in `run`.
}

/// Why a test stopped early.
#[derive(Debug)]
pub enum Failure {
    /// Arguments that cannot work, found alike on every rank (e.g. too few ranks).
    Usage(String),
    /// Something went wrong on this rank while measuring (a library error, data that
    /// failed validation).
    Run(String),
}

impl From<oxmpi::Error> for Failure {
    fn from(e: oxmpi::Error) -> Failure {
        Failure::Run(e.to_string())
    }
}

/// Runs the chosen test on this rank.
fn run(test: &Test, world: &Comm) -> Result<(), Failure> {
    match test {
        Test::Latency(opts) => p2p::latency(world, opts),
        Test::Bw(opts) => p2p::bw(world, opts),
    }
}

fn main() -> ExitCode {
    let universe = match oxmpi::init() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("oxbench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let world = universe.world();
    let is_root = world.rank() == 0;
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are "errors" too, printed on stdout with status 0.
            if is_root {
                let _ = e.print();
            }
            return finish(universe, e.exit_code());
        }
    };
    match run(&cli.test, &world) {
        Ok(()) => finish(universe, 0),
        Err(Failure::Usage(msg)) => {
            if is_root {
                eprintln!("oxbench: {msg}");
            }
            finish(universe, 2)
        }
        Err(Failure::Run(msg)) => {
            eprintln!("oxbench: rank {}: {msg}", world.rank());
            world.abort(1)
        }
    }
}

/// Finalizes this rank; rank 0 then exits with `code` (the others with 0, so that
/// the job reports a usage error once).
fn finish(universe: Universe, code: i32) -> ExitCode {
    let is_root = universe.world().rank() == 0;
    if let Err(e) = universe.finalize() {
        eprintln!("oxbench: {e}");
        return ExitCode::FAILURE;
    }
    match (is_root, u8::try_from(code)) {
        (false, _) | (true, Ok(0)) => ExitCode::SUCCESS,
        (true, Ok(code)) => ExitCode::from(code),
        (true, Err(_)) => ExitCode::FAILURE,
    }
}
