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

mod coll;
mod options;
mod p2p;
mod pattern;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oxmpi::{Comm, Universe};

use crate::coll::Collective as Coll;
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
    /// Allreduce of f32 sums, from 4 bytes (osu_allreduce)
    Allreduce(Common),
    /// Nonblocking allreduce, started and waited for (osu_iallreduce)
    Iallreduce(Common),
    /// Reduce of f32 sums to rank 0, from 4 bytes (osu_reduce)
    Reduce(Common),
    /// Nonblocking reduce (osu_ireduce)
    Ireduce(Common),
    /// Reduce-scatter of an f32 vector of SIZE bytes, the remainder to the first ranks (osu_reduce_scatter)
    ReduceScatter(Common),
    /// Nonblocking reduce-scatter (osu_ireduce_scatter)
    IreduceScatter(Common),
    /// Broadcast of SIZE bytes from rank 0 (osu_bcast)
    Bcast(Common),
    /// Nonblocking broadcast (osu_ibcast)
    Ibcast(Common),
    /// Barrier latency (osu_barrier)
    Barrier(Common),
    /// Nonblocking barrier (osu_ibarrier)
    Ibarrier(Common),
    /// Gather of SIZE bytes per rank to rank 0 (osu_gather)
    Gather(Common),
    /// Nonblocking gather (osu_igather)
    Igather(Common),
    /// Scatter of SIZE bytes per rank from rank 0 (osu_scatter)
    Scatter(Common),
    /// Nonblocking scatter (osu_iscatter)
    Iscatter(Common),
    /// Allgather of SIZE bytes per rank (osu_allgather)
    Allgather(Common),
    /// Nonblocking allgather (osu_iallgather)
    Iallgather(Common),
    /// All-to-all of SIZE bytes per pair (osu_alltoall)
    Alltoall(Common),
    /// Nonblocking all-to-all (osu_ialltoall)
    Ialltoall(Common),
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

/// A buffer of `len` copies of `value` (`None`: a length that overflowed), or a
/// clear error where the sizes asked for cannot be had.
pub fn buffer<T: Clone>(len: Option<usize>, value: T) -> Result<Vec<T>, Failure> {
    let len = len.ok_or_else(|| {
        Failure::Usage("the message sizes (-m) are too large for this test".into())
    })?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        let bytes = len as u128 * std::mem::size_of::<T>() as u128;
        Failure::Run(format!(
            "cannot allocate a {bytes}-byte buffer (-m too large?)"
        ))
    })?;
    v.resize(len, value);
    Ok(v)
}

/// Runs the chosen test on this rank.
fn run(test: &Test, world: &Comm) -> Result<(), Failure> {
    match test {
        Test::Latency(opts) => p2p::latency(world, opts),
        Test::Bw(opts) => p2p::bw(world, opts),
        Test::Allreduce(opts) => coll::run(world, Coll::Allreduce, false, opts),
        Test::Iallreduce(opts) => coll::run(world, Coll::Allreduce, true, opts),
        Test::Reduce(opts) => coll::run(world, Coll::Reduce, false, opts),
        Test::Ireduce(opts) => coll::run(world, Coll::Reduce, true, opts),
        Test::ReduceScatter(opts) => coll::run(world, Coll::ReduceScatter, false, opts),
        Test::IreduceScatter(opts) => coll::run(world, Coll::ReduceScatter, true, opts),
        Test::Bcast(opts) => coll::run(world, Coll::Bcast, false, opts),
        Test::Ibcast(opts) => coll::run(world, Coll::Bcast, true, opts),
        Test::Barrier(opts) => coll::run(world, Coll::Barrier, false, opts),
        Test::Ibarrier(opts) => coll::run(world, Coll::Barrier, true, opts),
        Test::Gather(opts) => coll::run(world, Coll::Gather, false, opts),
        Test::Igather(opts) => coll::run(world, Coll::Gather, true, opts),
        Test::Scatter(opts) => coll::run(world, Coll::Scatter, false, opts),
        Test::Iscatter(opts) => coll::run(world, Coll::Scatter, true, opts),
        Test::Allgather(opts) => coll::run(world, Coll::Allgather, false, opts),
        Test::Iallgather(opts) => coll::run(world, Coll::Allgather, true, opts),
        Test::Alltoall(opts) => coll::run(world, Coll::Alltoall, false, opts),
        Test::Ialltoall(opts) => coll::run(world, Coll::Alltoall, true, opts),
    }
}

fn main() -> ExitCode {
    sigpipe_ends_the_rank();
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

/// Gives SIGPIPE back its default action (a Rust program starts with it ignored), so
/// that rank 0 printing into a pipe nobody reads any more (`oxrun ... oxbench | head`)
/// ends as `yes` does, killed by the signal, which oxrun reports in one line, rather
/// than by a panic on "failed printing to stdout". oxmpi's connections between ranks
/// never raise it (they send with `MSG_NOSIGNAL`); its launcher's socket does only
/// once the launcher is gone, which ends the job all the same.
fn sigpipe_ends_the_rank() {
    // SAFETY: sets the disposition of one signal to its default, before any other
    // thread exists; no handler of this program is replaced.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
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
