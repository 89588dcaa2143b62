//! Stress: a long sequence of collectives drawn from a seed every rank shares, so that
//! the ways a collective can go (the selection table's algorithms as messages, the
//! node's area whole and in pieces, lent buffers, the ways rank 0 learns, nonblocking
//! schedules) follow one another in orders no other test makes. Each step is one of
//! the sixteen collectives on one of five communicators (the world, a duplicate,
//! halves from a split, the world reversed by key, this node's ranks in reverse), of
//! a size from empty to past every buffer of the area, blocking or nonblocking, some
//! with point-to-point messages on the same communicator in flight across it (half of
//! them received from any source with any tag, which no collective's message may
//! match). Every rank checks every result against a serial reference; inputs change
//! with the step, so stale data shows.
//! `coll_stress [STEPS] [SEED]`.

#[path = "../coll_check.rs"]
mod coll_check;

use bytemuck::Pod;
use coll_check::*;
use oxmpi::Op::{self, Reduction};
use oxmpi::{ANY_SOURCE, ANY_TAG, Comm, Request, Scope, Status};
use oxmpi_testprogs::{arg, pattern};

/// The step's draws: splitmix64, seeded per step, so that a step whose draws depend
/// on its communicator (the halves of an odd world differ in size) cannot put the
/// ranks out of step for the next.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, step: u64) -> Rng {
        Rng(mix(seed, step, 0x5eed))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Elements of a vector or block: mostly short (within a small slot of the area),
/// some beyond the area's 32 KiB, a few beyond its 512 KiB pieces; `blocks` of them
/// per rank (a gather's or an alltoall's) share the longest sizes out.
fn draw_count(rng: &mut Rng, blocks: usize) -> usize {
    let n = match rng.below(16) {
        0 => 0,
        1..=5 => 1 + rng.below(16),
        6..=9 => 17 + rng.below(1024),
        10..=12 => 1041 + rng.below(9000),
        13..=14 => 10_041 + rng.below(70_000),
        _ => 80_041 + rng.below(220_000),
    };
    if n > 1041 { n / blocks + 1 } else { n }
}

/// What one step runs on, and how.
struct Step<'c> {
    comm: &'c Comm,
    rank: usize,
    size: usize,
    /// Inputs of communicator rank `r` are those of rank `offset + r` of the
    /// references: new at every step.
    offset: usize,
    nonblocking: bool,
    /// Bytes each rank sends its right neighbour beside the collective, if any.
    traffic: Option<usize>,
    /// Its receive takes any source and any tag (only that message may match).
    wildcard: bool,
    what: String,
}

impl Step<'_> {
    /// Element `i` of rank `r`'s data for rank `to`.
    fn val(&self, r: usize, to: usize, i: usize) -> u32 {
        mix((self.offset + r) as u64, to as u64, i as u64) as u32
    }

    fn block(&self, r: usize, to: usize, n: usize) -> Vec<u32> {
        (0..n).map(|i| self.val(r, to, i)).collect()
    }

    /// The step's point-to-point messages, started: a receive from the left
    /// neighbour (or any source, any tag) into `inbox` and a send of `out` to the
    /// right one, if the step has any.
    fn traffic<'s>(
        &self,
        s: &'s Scope<'s, '_>,
        out: &'s [u8],
        inbox: &'s mut [u8],
    ) -> oxmpi::Result<Vec<Request<'s>>> {
        if self.traffic.is_none() {
            return Ok(Vec::new());
        }
        let (right, left) = (
            (self.rank + 1) % self.size,
            (self.rank + self.size - 1) % self.size,
        );
        let recv = if self.wildcard {
            self.comm.irecv(s, inbox, ANY_SOURCE, ANY_TAG)?
        } else {
            self.comm.irecv(s, inbox, left as i32, self.tag())?
        };
        Ok(vec![
            recv,
            self.comm.isend(s, out, right as i32, self.tag())?,
        ])
    }

    /// The tag of the step's point-to-point message.
    fn tag(&self) -> i32 {
        (self.offset / 64 % 1000) as i32
    }

    /// What rank `from` sends beside the collective.
    fn message(&self, from: usize) -> Vec<u8> {
        pattern((self.offset + from) as u64, self.traffic.unwrap_or(0))
    }

    /// Checks what the step's receive got (`status`, `None` without traffic).
    fn check_traffic(&self, inbox: &[u8], status: Option<&Status>) {
        let left = (self.rank + self.size - 1) % self.size;
        assert!(inbox == self.message(left), "{}: point-to-point", self.what);
        if let Some(st) = status {
            assert_eq!(
                (st.source, st.tag),
                (left as i32, self.tag()),
                "{}",
                self.what
            );
        }
    }
}

/// `call!(x, || COLL, |s| ICOLL)` runs the blocking call `COLL` or its nonblocking
/// form `ICOLL` as step `x` says, with the step's point-to-point messages in flight
/// across it, and checks those.
macro_rules! call {
    ($x:expr, || $coll:expr, |$s:ident| $icoll:expr $(,)?) => {{
        let x: &Step = $x;
        let out = x.message(x.rank);
        let mut inbox = vec![0u8; out.len()];
        let statuses = oxmpi::scope(|$s| -> oxmpi::Result<Vec<Status>> {
            let mut reqs = x.traffic($s, &out, &mut inbox)?;
            if x.nonblocking {
                reqs.push($icoll?);
            } else {
                $coll?;
            }
            oxmpi::wait_all(reqs)
        })
        .unwrap_or_else(|e| panic!("{}: {e}", x.what));
        x.check_traffic(&inbox, x.traffic.and(statuses.first()));
    }};
}

/// Per-rank counts of a v-collective: some empty, the rest uneven, from `n`.
fn vcounts(x: &Step, n: usize, salt: usize) -> Vec<usize> {
    (0..x.size)
        .map(|r| match mix(x.offset as u64, r as u64, salt as u64) % 4 {
            0 => 0,
            k => n * k as usize / 3 + r % 2,
        })
        .collect()
}

/// Where the blocks of `counts` lie, packed in rank order, and their total.
fn packed(counts: &[usize]) -> (Vec<usize>, usize) {
    let mut at = 0;
    let displs = counts
        .iter()
        .map(|&c| {
            at += c;
            at - c
        })
        .collect();
    (displs, at)
}

fn data_step(x: &Step, rng: &mut Rng, which: usize) {
    let (rank, size, comm) = (x.rank, x.size, x.comm);
    let root = rng.below(size);
    let what = &x.what;
    match which {
        0 => call!(x, || comm.barrier(), |s| comm.ibarrier(s)),
        1 => {
            let n = draw_count(rng, 1);
            let want = x.block(root, 0, n);
            let mut buf = if rank == root {
                want.clone()
            } else {
                vec![0; n]
            };
            call!(x, || comm.bcast(&mut buf, root as i32), |s| comm.ibcast(
                s,
                &mut buf,
                root as i32
            ));
            check(&buf, &want, what);
        }
        2 => {
            let n = draw_count(rng, size);
            let mine = x.block(rank, root, n);
            let mut all = vec![0; if rank == root { n * size } else { 0 }];
            call!(x, || comm.gather(&mine, &mut all, root as i32), |s| comm
                .igather(s, &mine, &mut all, root as i32));
            if rank == root {
                let want: Vec<u32> = (0..size).flat_map(|r| x.block(r, root, n)).collect();
                check(&all, &want, what);
            }
        }
        3 => {
            let n = draw_count(rng, size);
            let all: Vec<u32> = if rank == root {
                (0..size).flat_map(|to| x.block(root, to, n)).collect()
            } else {
                Vec::new()
            };
            let mut mine = vec![0; n];
            call!(x, || comm.scatter(&all, &mut mine, root as i32), |s| comm
                .iscatter(s, &all, &mut mine, root as i32));
            check(&mine, &x.block(root, rank, n), what);
        }
        4 => {
            let n = draw_count(rng, size);
            let mine = x.block(rank, 0, n);
            let want: Vec<u32> = (0..size).flat_map(|r| x.block(r, 0, n)).collect();
            let mut all = vec![0; n * size];
            if rng.below(2) == 0 {
                call!(x, || comm.allgather(&mine, &mut all), |s| comm
                    .iallgather(s, &mine, &mut all));
            } else {
                all[rank * n..(rank + 1) * n].copy_from_slice(&mine);
                call!(x, || comm.allgather_in_place(&mut all), |s| comm
                    .iallgather_in_place(s, &mut all));
            }
            check(&all, &want, what);
        }
        5 => {
            let n = draw_count(rng, size);
            let mine: Vec<u32> = (0..size).flat_map(|to| x.block(rank, to, n)).collect();
            let want: Vec<u32> = (0..size).flat_map(|r| x.block(r, rank, n)).collect();
            let mut all = vec![0; n * size];
            if rng.below(2) == 0 {
                call!(x, || comm.alltoall(&mine, &mut all), |s| comm
                    .ialltoall(s, &mine, &mut all));
            } else {
                all.copy_from_slice(&mine);
                call!(x, || comm.alltoall_in_place(&mut all), |s| comm
                    .ialltoall_in_place(s, &mut all));
            }
            check(&all, &want, what);
        }
        6 => {
            let counts = vcounts(x, draw_count(rng, size), 6);
            let (displs, total) = packed(&counts);
            let mine = x.block(rank, root, counts[rank]);
            let mut all = vec![0; if rank == root { total } else { 0 }];
            call!(
                x,
                || comm.gatherv(&mine, &mut all, &counts, &displs, root as i32),
                |s| comm.igatherv(s, &mine, &mut all, &counts, &displs, root as i32)
            );
            if rank == root {
                let want: Vec<u32> = (0..size)
                    .flat_map(|r| x.block(r, root, counts[r]))
                    .collect();
                check(&all, &want, what);
            }
        }
        7 => {
            let counts = vcounts(x, draw_count(rng, size), 7);
            let (displs, total) = packed(&counts);
            let mine = x.block(rank, 0, counts[rank]);
            let mut all = vec![0; total];
            call!(
                x,
                || comm.allgatherv(&mine, &mut all, &counts, &displs),
                |s| comm.iallgatherv(s, &mine, &mut all, &counts, &displs)
            );
            let want: Vec<u32> = (0..size).flat_map(|r| x.block(r, 0, counts[r])).collect();
            check(&all, &want, what);
        }
        8 => {
            // Rank r sends rank t a block of (r + 2 t) % 3 thirds of n elements.
            let n = draw_count(rng, size);
            let count = |r: usize, t: usize| n * ((r + 2 * t) % 3) / 2;
            let sends: Vec<usize> = (0..size).map(|t| count(rank, t)).collect();
            let recvs: Vec<usize> = (0..size).map(|r| count(r, rank)).collect();
            let ((sdispls, _), (rdispls, rtotal)) = (packed(&sends), packed(&recvs));
            let mine: Vec<u32> = (0..size).flat_map(|t| x.block(rank, t, sends[t])).collect();
            let mut all = vec![0; rtotal];
            call!(
                x,
                || comm.alltoallv(&mine, &sends, &sdispls, &mut all, &recvs, &rdispls),
                |s| comm.ialltoallv(s, &mine, &sends, &sdispls, &mut all, &recvs, &rdispls)
            );
            let want: Vec<u32> = (0..size).flat_map(|r| x.block(r, rank, recvs[r])).collect();
            check(&all, &want, what);
        }
        9 => {
            let counts = vcounts(x, draw_count(rng, size), 9);
            let (displs, _) = packed(&counts);
            let all: Vec<u32> = if rank == root {
                (0..size)
                    .flat_map(|to| x.block(root, to, counts[to]))
                    .collect()
            } else {
                Vec::new()
            };
            let mut mine = vec![0; counts[rank]];
            call!(
                x,
                || comm.scatterv(&all, &counts, &displs, &mut mine, root as i32),
                |s| comm.iscatterv(s, &all, &counts, &displs, &mut mine, root as i32)
            );
            check(&mine, &x.block(root, rank, counts[rank]), what);
        }
        _ => unreachable!("{which}"),
    }
}

/// The reduction collectives of one step, on `T` with `op` (an `oxmpi` operation
/// made fresh for each use) and `fold` (the same, serial: `fold(ranks, n)` is the
/// reduction in rank order over the references' ranks `ranks` of `vector(r, n)`).
fn reduction_step<T: Pod + std::fmt::Debug, O: Reduction<T>>(
    x: &Step,
    rng: &mut Rng,
    which: usize,
    op: impl Fn() -> O,
    vector: impl Fn(usize, usize) -> Vec<T>,
    fold: impl Fn(std::ops::Range<usize>, usize) -> Vec<T>,
) {
    let (rank, size, comm, o) = (x.rank, x.size, x.comm, x.offset);
    let what = &x.what;
    let n = draw_count(rng, if which >= 3 { size } else { 1 });
    let mut out = vec![sentinel::<T>(); n];
    match which {
        0 => {
            let mine = vector(o + rank, n);
            if rng.below(2) == 0 {
                call!(x, || comm.allreduce(&mine, &mut out, op()), |s| comm
                    .iallreduce(s, &mine, &mut out, op()));
            } else {
                out.copy_from_slice(&mine);
                call!(x, || comm.allreduce_in_place(&mut out, op()), |s| comm
                    .iallreduce_in_place(s, &mut out, op()));
            }
            check(&out, &fold(o..o + size, n), what);
        }
        1 => {
            let root = rng.below(size);
            let mine = vector(o + rank, n);
            call!(x, || comm.reduce(&mine, &mut out, op(), root as i32), |s| {
                comm.ireduce(s, &mine, &mut out, op(), root as i32)
            });
            if rank == root {
                check(&out, &fold(o..o + size, n), what);
            }
        }
        2 => {
            let mine = vector(o + rank, n);
            let exclusive = rng.below(2) == 0;
            if exclusive {
                call!(x, || comm.exscan(&mine, &mut out, op()), |s| comm.iexscan(
                    s,
                    &mine,
                    &mut out,
                    op()
                ));
            } else {
                call!(x, || comm.scan(&mine, &mut out, op()), |s| comm.iscan(
                    s,
                    &mine,
                    &mut out,
                    op()
                ));
            }
            // An exclusive scan leaves rank 0's output undefined.
            if !(exclusive && rank == 0) {
                check(&out, &fold(o..o + rank + 1 - exclusive as usize, n), what);
            }
        }
        3 => {
            let mine = vector(o + rank, n * size);
            call!(
                x,
                || comm.reduce_scatter_block(&mine, &mut out, op()),
                |s| comm.ireduce_scatter_block(s, &mine, &mut out, op())
            );
            let whole = fold(o..o + size, n * size);
            check(&out, &whole[rank * n..(rank + 1) * n], what);
        }
        4 => {
            let counts = vcounts(x, n, 4);
            let (displs, total) = packed(&counts);
            let mine = vector(o + rank, total);
            out.resize(counts[rank], sentinel::<T>());
            call!(
                x,
                || comm.reduce_scatter(&mine, &mut out, &counts, op()),
                |s| comm.ireduce_scatter(s, &mine, &mut out, &counts, op())
            );
            let whole = fold(o..o + size, total);
            check(
                &out,
                &whole[displs[rank]..displs[rank] + counts[rank]],
                what,
            );
        }
        _ => unreachable!("{which}"),
    }
}

/// A reduction step on one of the element types and operations, drawn.
fn reductions(x: &Step, rng: &mut Rng, which: usize) {
    fn built_in<T: Num, O: Reduction<T> + Copy>(
        x: &Step,
        rng: &mut Rng,
        which: usize,
        kind: Kind,
        op: O,
    ) {
        let vector = |r, n| coll_check::vector::<T>(kind, r, n);
        let fold = |ranks, n| reference::<T>(kind, ranks, n);
        reduction_step(x, rng, which, || op, vector, fold);
    }
    match rng.below(6) {
        0 => built_in::<i32, _>(x, rng, which, Kind::Sum, Op::Sum),
        1 => built_in::<f64, _>(x, rng, which, Kind::Sum, Op::Sum),
        2 => built_in::<f32, _>(x, rng, which, Kind::Max, Op::Max),
        3 => built_in::<u64, _>(x, rng, which, Kind::BXor, Op::BitXor),
        4 => built_in::<i8, _>(x, rng, which, Kind::Min, Op::Min),
        _ => reduction_step(x, rng, which, compose, Affine::vector, Affine::reference),
    }
}

/// The steps' collectives: those that move data, then the reductions (scan and
/// exscan are one step that draws which).
const NAMES: [&str; 15] = [
    "barrier",
    "bcast",
    "gather",
    "scatter",
    "allgather",
    "alltoall",
    "gatherv",
    "allgatherv",
    "alltoallv",
    "scatterv",
    "allreduce",
    "reduce",
    "scan or exscan",
    "reduce_scatter_block",
    "reduce_scatter",
];
const DATA: usize = 10;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let steps: u64 = arg(1, "300").parse().expect("STEPS");
    let seed: u64 = arg(2, "1").parse().expect("SEED");
    let (rank, size) = (world.rank(), world.size());
    let dup = world.dup()?;
    let half = world
        .split(rank % 2, rank)?
        .expect("every rank has a color");
    let reversed = world.split(0, -rank)?.expect("every rank has a color");
    let node = world.split_shared(-rank)?;
    let comms = [
        (&world, "world"),
        (&dup, "dup"),
        (&half, "half"),
        (&reversed, "reversed"),
        (&node, "node"),
    ];
    for step in 0..steps {
        let mut rng = Rng::new(seed, step);
        let (comm, name) = comms[rng.below(comms.len())];
        let nonblocking = rng.below(4) == 0;
        let traffic = (rng.below(3) == 0).then(|| draw_count(&mut rng, 1) * 3);
        let wildcard = rng.below(2) == 0;
        let which = rng.below(NAMES.len());
        let mut x = Step {
            comm,
            rank: comm.rank() as usize,
            size: comm.size() as usize,
            offset: step as usize * 64,
            nonblocking,
            traffic,
            wildcard,
            what: String::new(),
        };
        x.what = format!(
            "step {step} (seed {seed}): {} on {name} (rank {} of {}), {}, p2p {traffic:?} (wildcard {wildcard})",
            NAMES[which],
            x.rank,
            x.size,
            if nonblocking {
                "nonblocking"
            } else {
                "blocking"
            },
        );
        if which < DATA {
            data_step(&x, &mut rng, which);
        } else {
            reductions(&x, &mut rng, which - DATA);
        }
    }
    world.barrier()?;
    if rank == 0 {
        println!("coll stress ok on {size} ranks ({steps} steps)");
    }
    Ok(())
}
