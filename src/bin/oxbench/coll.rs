//! Collective tests, measuring exactly what `shared/tools/mpibench.c` measures: per
//! size, a barrier, warm-up calls, a barrier, then timed calls; each rank's average
//! time per call, and rank 0 prints the largest (as OSU's `osu_allreduce` & co.).
//!
//! Sizes are bytes: allreduce and reduce run `f32` sums of `SIZE / 4` elements from
//! 4 bytes up; reduce_scatter the same vector, `SIZE / 4 / ranks` elements per rank
//! and one more on the first `SIZE / 4 % ranks` ranks (as `osu_reduce_scatter`);
//! bcast the whole buffer; gather, scatter, allgather and alltoall `SIZE` bytes per
//! rank and block; barrier one row. The `i`-prefixed tests start the nonblocking form
//! and wait for it. With `-c` every call's result is checked (the checks are then
//! part of the timings) and a wrong answer fails the run.

use oxmpi::{Comm, Op};

use crate::options::Common;
use crate::pattern;
use crate::table::Table;
use crate::{Failure, buffer};

/// The collective a test measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collective {
    Allreduce,
    Reduce,
    ReduceScatter,
    Bcast,
    Barrier,
    Gather,
    Scatter,
    Allgather,
    Alltoall,
}

impl Collective {
    fn title(self) -> &'static str {
        match self {
            Collective::Allreduce => "Allreduce",
            Collective::Reduce => "Reduce",
            Collective::ReduceScatter => "Reduce_scatter",
            Collective::Bcast => "Broadcast",
            Collective::Barrier => "Barrier",
            Collective::Gather => "Gather",
            Collective::Scatter => "Scatter",
            Collective::Allgather => "Allgather",
            Collective::Alltoall => "All-to-All",
        }
    }

    /// Whether the test reduces `f32` vectors (and so starts at 4 bytes).
    fn reduces(self) -> bool {
        matches!(
            self,
            Collective::Allreduce | Collective::Reduce | Collective::ReduceScatter
        )
    }
}

/// Element `j` of rank `rank`'s vector in call `call` of a reduction test: a hash of
/// all three below 4096, so that an element summed from the wrong place or left from
/// an earlier call shows, and sums are exact in `f32` whatever the order (on up to
/// 4096 ranks).
fn element(call: usize, rank: usize, j: usize) -> f32 {
    let mut x = (call as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (rank as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ^ (j as u64).wrapping_mul(0x1656_67b1_9e37_79f9);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 29;
    (x % 4096) as f32
}

/// What a validated call's byte buffers hold before the call: nothing it could
/// produce (patterns hold bytes below 251; 0xa5 was one of them, so a block that never
/// arrived passed for one seed in 251).
const POISON: u8 = 0xff;

/// Checks `got` (elements `first..` of the reduced vector) against the sum over
/// `ranks` ranks.
fn check_sum(
    got: &[f32],
    first: usize,
    call: usize,
    ranks: usize,
    what: &str,
) -> Result<(), Failure> {
    for (k, &g) in got.iter().enumerate() {
        let want: f32 = (0..ranks).map(|r| element(call, r, first + k)).sum();
        if g != want {
            return Err(Failure::Run(format!(
                "validation failed: {what}: element {} is {g}, expected {want}",
                first + k
            )));
        }
    }
    Ok(())
}

/// The buffers of one test, sized for its largest call.
struct Buffers {
    send: Vec<u8>,
    recv: Vec<u8>,
    fsend: Vec<f32>,
    frecv: Vec<f32>,
    /// A reduce-scatter's elements per rank at the size being run
    /// ([`reduce_scatter_counts`]).
    counts: Vec<usize>,
}

/// Elements per rank of a reduce-scatter of `count` elements among `size` ranks, as
/// `osu_reduce_scatter` hands them out: the same to each, and one more to each of the
/// first `count % size` ranks.
fn reduce_scatter_counts(count: usize, size: usize) -> Vec<usize> {
    (0..size)
        .map(|r| count / size + usize::from(r < count % size))
        .collect()
}

/// Runs the collective test `which` (its nonblocking form if `nonblocking`).
pub fn run(
    world: &Comm,
    which: Collective,
    nonblocking: bool,
    opts: &Common,
) -> Result<(), Failure> {
    let size = world.size() as usize;
    let prefix = if nonblocking { "Non-blocking " } else { "" };
    let title = format!("{prefix}{} Latency Test", which.title());
    let table = Table::new(world, &title, &[opts.describe_counts()], "Avg Latency(us)");
    let sizes = match which {
        Collective::Barrier => vec![1],
        c if c.reduces() => opts.sizes.sizes(4),
        _ => opts.sizes.sizes(1),
    };
    let max = sizes.iter().copied().max().unwrap_or(0);
    let per_rank = matches!(
        which,
        Collective::Gather | Collective::Scatter | Collective::Allgather | Collective::Alltoall
    );
    let bytes = if per_rank {
        max.checked_mul(size)
    } else {
        Some(max)
    };
    let floats = if which.reduces() { max / 4 } else { 0 };
    let mut bufs = Buffers {
        send: buffer(bytes, 1)?,
        recv: buffer(bytes, 0)?,
        fsend: buffer(Some(floats), 1.0)?,
        frecv: buffer(Some(floats), 0.0)?,
        counts: Vec::new(),
    };
    for n in sizes {
        bufs.counts = reduce_scatter_counts(n / 4, size);
        let counts = opts.counts(n);
        world.barrier()?;
        let mut start = oxmpi::wtime();
        for call in 0..counts.warmup + counts.iters {
            if call == counts.warmup {
                world.barrier()?;
                start = oxmpi::wtime();
            }
            step(world, which, nonblocking, opts.validate, n, call, &mut bufs)?;
        }
        let local = (oxmpi::wtime() - start) / counts.iters as f64 * 1e6;
        let mut slowest = [0.0f64];
        world.reduce(&[local], &mut slowest, Op::Max, 0)?;
        table.row(n, slowest[0]);
    }
    Ok(())
}

/// One call of the test at `n` bytes, validated if `check`.
fn step(
    world: &Comm,
    which: Collective,
    nonblocking: bool,
    check: bool,
    n: usize,
    call: usize,
    bufs: &mut Buffers,
) -> Result<(), Failure> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let seed = |from: usize, to: usize| ((call * size + from) * size + to) as u64;
    // Named only when validating: formatting is not part of the timed work.
    let what = if check {
        format!("{which:?} of {n} bytes, call {call}")
    } else {
        String::new()
    };
    match which {
        Collective::Allreduce | Collective::Reduce | Collective::ReduceScatter => {
            let count = n / 4;
            let (send, recv) = (&mut bufs.fsend[..count], &mut bufs.frecv[..count]);
            if check {
                for (j, x) in send.iter_mut().enumerate() {
                    *x = element(call, rank, j);
                }
                recv.fill(f32::NAN);
            }
            let blocks = &bufs.counts;
            let first: usize = blocks[..rank].iter().sum();
            let recv = match which {
                Collective::ReduceScatter => &mut recv[..blocks[rank]],
                _ => recv,
            };
            let send = &*send;
            match (which, nonblocking) {
                (Collective::Allreduce, false) => world.allreduce(send, recv, Op::Sum)?,
                (Collective::Allreduce, true) => {
                    oxmpi::scope(|s| world.iallreduce(s, send, recv, Op::Sum)?.wait().map(drop))?
                }
                (Collective::Reduce, false) => world.reduce(send, recv, Op::Sum, 0)?,
                (Collective::Reduce, true) => {
                    oxmpi::scope(|s| world.ireduce(s, send, recv, Op::Sum, 0)?.wait().map(drop))?
                }
                (_, false) => world.reduce_scatter(send, recv, blocks, Op::Sum)?,
                (_, true) => oxmpi::scope(|s| {
                    world
                        .ireduce_scatter(s, send, recv, blocks, Op::Sum)?
                        .wait()
                        .map(drop)
                })?,
            }
            if check {
                match which {
                    Collective::Reduce if rank != 0 => {}
                    Collective::ReduceScatter => check_sum(recv, first, call, size, &what)?,
                    _ => check_sum(recv, 0, call, size, &what)?,
                }
            }
        }
        Collective::Barrier => {
            if nonblocking {
                oxmpi::scope(|s| world.ibarrier(s)?.wait().map(drop))?;
            } else {
                world.barrier()?;
            }
        }
        Collective::Bcast => {
            let buf = &mut bufs.send[..n];
            if check {
                match rank {
                    0 => pattern::fill(buf, seed(0, 0)),
                    _ => buf.fill(POISON),
                }
            }
            if nonblocking {
                oxmpi::scope(|s| world.ibcast(s, buf, 0)?.wait().map(drop))?;
            } else {
                world.bcast(buf, 0)?;
            }
            if check {
                pattern::check(buf, seed(0, 0), &what)?;
            }
        }
        Collective::Gather | Collective::Allgather => {
            let (send, recv) = (&mut bufs.send[..n], &mut bufs.recv[..n * size]);
            if check {
                pattern::fill(send, seed(rank, 0));
                recv.fill(POISON);
            }
            let send = &*send;
            match (which, nonblocking) {
                (Collective::Gather, false) => world.gather(send, recv, 0)?,
                (Collective::Gather, true) => {
                    oxmpi::scope(|s| world.igather(s, send, recv, 0)?.wait().map(drop))?
                }
                (_, false) => world.allgather(send, recv)?,
                (_, true) => oxmpi::scope(|s| world.iallgather(s, send, recv)?.wait().map(drop))?,
            }
            if check && (which == Collective::Allgather || rank == 0) {
                for (from, block) in recv.chunks(n.max(1)).enumerate() {
                    pattern::check(block, seed(from, 0), &what)?;
                }
            }
        }
        Collective::Scatter | Collective::Alltoall => {
            let (send, recv) = (&mut bufs.send[..n * size], &mut bufs.recv[..n * size]);
            let from_root = which == Collective::Scatter;
            if check && (rank == 0 || !from_root) {
                for (to, block) in send.chunks_mut(n.max(1)).enumerate() {
                    pattern::fill(block, seed(rank, to));
                }
            }
            if check {
                recv.fill(POISON);
            }
            let send = &*send;
            match (which, nonblocking) {
                (Collective::Scatter, false) => world.scatter(send, &mut recv[..n], 0)?,
                (Collective::Scatter, true) => {
                    oxmpi::scope(|s| world.iscatter(s, send, &mut recv[..n], 0)?.wait().map(drop))?
                }
                (_, false) => world.alltoall(send, recv)?,
                (_, true) => oxmpi::scope(|s| world.ialltoall(s, send, recv)?.wait().map(drop))?,
            }
            if check {
                if from_root {
                    pattern::check(&recv[..n], seed(0, rank), &what)?;
                } else {
                    for (from, block) in recv.chunks(n.max(1)).enumerate() {
                        pattern::check(block, seed(from, rank), &what)?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validation tells blocks, calls and ranks apart: no shift of a vector by a
    /// block, no earlier call's result and no other rank's vector passes for the
    /// right one.
    #[test]
    fn reduction_elements_have_no_short_period() {
        let vector = |call, rank| {
            (0..4096)
                .map(|j| element(call, rank, j))
                .collect::<Vec<_>>()
        };
        let v = vector(3, 1);
        for shift in [1, 2, 4, 64, 256, 1024] {
            assert_ne!(v[shift..], v[..4096 - shift], "shifted by {shift}");
        }
        assert_ne!(v, vector(2, 1));
        assert_ne!(v, vector(3, 0));
        assert!(v.iter().all(|&x| x < 4096.0 && x.fract() == 0.0));
    }
}
