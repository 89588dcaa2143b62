//! Checks the data-movement collectives against serial references: barrier, bcast,
//! gather(v), scatter(v), allgather(v) and alltoall(v), each with every algorithm
//! (forced in turn), blocking, in place and nonblocking, at 0, 1, odd and > 1 MiB
//! sizes, every root kind, and v-variant layouts with empty blocks and gaps.
//! `coll_data OP...` runs the named operations (all by default).

#[path = "../coll_check.rs"]
mod coll_check;

use coll_check::*;
use oxmpi::{Collective, Comm};

/// Rank `r`'s element `i` of the message for rank `to`.
fn val(r: usize, to: usize, i: usize) -> u32 {
    mix(r as u64, to as u64, i as u64) as u32
}

/// Block sizes for v-variants: some empty, the rest uneven.
fn vcounts(n: usize, size: usize, salt: usize) -> Vec<usize> {
    (0..size)
        .map(|i| {
            if (i + salt) % 3 == 1 {
                0
            } else {
                n / size.max(1) + (i * 7 + salt) % 5
            }
        })
        .collect()
}

/// Displacements that place the blocks in reverse rank order with one-element gaps,
/// and the empty blocks far past the end of the buffer (they touch no memory, so MPI
/// takes any displacement there).
fn vdispls(counts: &[usize]) -> (Vec<usize>, usize) {
    let mut displs = vec![0; counts.len()];
    let mut at = 0;
    for i in (0..counts.len()).rev() {
        displs[i] = at;
        at += counts[i] + 1;
    }
    for (d, _) in displs.iter_mut().zip(counts).filter(|(_, c)| **c == 0) {
        *d = at + 1_000_000;
    }
    (displs, at)
}

/// Where block `count` elements at `displ` lie (nowhere, for an empty block).
fn place(displ: usize, count: usize) -> std::ops::Range<usize> {
    if count == 0 {
        0..0
    } else {
        displ..displ + count
    }
}

/// The per-rank block sizes a case runs at: the usual counts, the big one split so
/// the whole buffer is just over 1 MiB.
fn blocks(size: usize) -> Vec<usize> {
    counts(true)
        .into_iter()
        .map(|n| if n > 100_000 { n / size + 1 } else { n })
        .collect()
}

fn bcast(world: &Comm, alg: &str) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    for n in counts(true) {
        for root in [0, size - 1, size / 2] {
            let want: Vec<u32> = (0..n).map(|i| val(root, 0, i)).collect();
            let mut buf = if rank == root {
                want.clone()
            } else {
                vec![0; n]
            };
            world.bcast(&mut buf, root as i32).expect("bcast");
            check(&buf, &want, &format!("bcast [{alg}] x{n} root {root}"));
            let mut buf = if rank == root {
                want.clone()
            } else {
                vec![0; n]
            };
            oxmpi::scope(|s| world.ibcast(s, &mut buf, root as i32)?.wait()).expect("ibcast");
            check(&buf, &want, &format!("ibcast [{alg}] x{n} root {root}"));
        }
    }
}

fn gather(world: &Comm, alg: &str) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    for n in blocks(size) {
        for root in [0, size - 1, size / 2] {
            let mine: Vec<u32> = (0..n).map(|i| val(rank, root, i)).collect();
            let want: Vec<u32> = (0..size)
                .flat_map(|r| (0..n).map(move |i| val(r, root, i)))
                .collect();
            let what = format!("gather [{alg}] x{n} root {root}");
            let mut all = vec![0; if rank == root { n * size } else { 0 }];
            world.gather(&mine, &mut all, root as i32).expect("gather");
            if rank == root {
                check(&all, &want, &what);
            }
            let mut all = vec![0; n * size];
            oxmpi::scope(|s| world.igather(s, &mine, &mut all, root as i32)?.wait())
                .expect("igather");
            if rank == root {
                check(&all, &want, &format!("i{what}"));
            }
            let mut buf = if rank == root {
                vec![0; n * size]
            } else {
                mine.clone()
            };
            if rank == root {
                buf[root * n..(root + 1) * n].copy_from_slice(&mine);
            }
            world
                .gather_in_place(&mut buf, root as i32)
                .expect("gather_in_place");
            if rank == root {
                check(&buf, &want, &format!("{what} in place"));
            }
        }
    }
}

fn gatherv(world: &Comm) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    for n in counts(true) {
        for root in [0, size - 1] {
            let counts = vcounts(n, size, root);
            let (displs, len) = vdispls(&counts);
            let mine: Vec<u32> = (0..counts[rank]).map(|i| val(rank, root, i)).collect();
            let mut want = vec![7u32; len];
            for r in 0..size {
                for i in 0..counts[r] {
                    want[displs[r] + i] = val(r, root, i);
                }
            }
            let what = format!("gatherv x{n} root {root}");
            let mut all = vec![7u32; len];
            world
                .gatherv(&mine, &mut all, &counts, &displs, root as i32)
                .expect("gatherv");
            if rank == root {
                check(&all, &want, &what);
            }
            let mut all = vec![7u32; len];
            oxmpi::scope(|s| {
                world
                    .igatherv(s, &mine, &mut all, &counts, &displs, root as i32)?
                    .wait()
            })
            .expect("igatherv");
            if rank == root {
                check(&all, &want, &format!("i{what}"));
            }
            let mut buf = if rank == root {
                vec![7u32; len]
            } else {
                mine.clone()
            };
            if rank == root {
                buf[place(displs[root], counts[root])].copy_from_slice(&mine);
            }
            world
                .gatherv_in_place(&mut buf, &counts, &displs, root as i32)
                .expect("gatherv_in_place");
            if rank == root {
                check(&buf, &want, &format!("{what} in place"));
            }
        }
    }
}

fn scatter(world: &Comm, alg: &str) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    for n in blocks(size) {
        for root in [0, size - 1, size / 2] {
            let all: Vec<u32> = (0..size)
                .flat_map(|r| (0..n).map(move |i| val(root, r, i)))
                .collect();
            let want: Vec<u32> = (0..n).map(|i| val(root, rank, i)).collect();
            let what = format!("scatter [{alg}] x{n} root {root}");
            let send = if rank == root { all.clone() } else { vec![] };
            let mut mine = vec![0; n];
            world
                .scatter(&send, &mut mine, root as i32)
                .expect("scatter");
            check(&mine, &want, &what);
            let mut mine = vec![0; n];
            oxmpi::scope(|s| world.iscatter(s, &send, &mut mine, root as i32)?.wait())
                .expect("iscatter");
            check(&mine, &want, &format!("i{what}"));
            let mut buf = if rank == root {
                all.clone()
            } else {
                vec![0; n]
            };
            world
                .scatter_in_place(&mut buf, root as i32)
                .expect("scatter_in_place");
            let got = if rank == root {
                &buf[root * n..(root + 1) * n]
            } else {
                &buf[..]
            };
            check(got, &want, &format!("{what} in place"));
        }
    }
}

fn scatterv(world: &Comm) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    for n in counts(true) {
        for root in [0, size - 1] {
            let counts = vcounts(n, size, root + 1);
            let (displs, len) = vdispls(&counts);
            let mut all = vec![0u32; len];
            for r in 0..size {
                for i in 0..counts[r] {
                    all[displs[r] + i] = val(root, r, i);
                }
            }
            let want: Vec<u32> = (0..counts[rank]).map(|i| val(root, rank, i)).collect();
            let what = format!("scatterv x{n} root {root}");
            let mut mine = vec![0; counts[rank]];
            world
                .scatterv(&all, &counts, &displs, &mut mine, root as i32)
                .expect("scatterv");
            check(&mine, &want, &what);
            let mut mine = vec![0; counts[rank]];
            oxmpi::scope(|s| {
                world
                    .iscatterv(s, &all, &counts, &displs, &mut mine, root as i32)?
                    .wait()
            })
            .expect("iscatterv");
            check(&mine, &want, &format!("i{what}"));
            let mut buf = if rank == root {
                all.clone()
            } else {
                vec![0; counts[rank]]
            };
            world
                .scatterv_in_place(&mut buf, &counts, &displs, root as i32)
                .expect("scatterv_in_place");
            let got = if rank == root {
                &buf[place(displs[root], counts[root])]
            } else {
                &buf[..]
            };
            check(got, &want, &format!("{what} in place"));
        }
    }
}

fn allgather(world: &Comm, alg: &str) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    for n in blocks(size) {
        let mine: Vec<u32> = (0..n).map(|i| val(rank, 0, i)).collect();
        let want: Vec<u32> = (0..size)
            .flat_map(|r| (0..n).map(move |i| val(r, 0, i)))
            .collect();
        let what = format!("allgather [{alg}] x{n}");
        let mut all = vec![0; n * size];
        world.allgather(&mine, &mut all).expect("allgather");
        check(&all, &want, &what);
        let mut all = vec![0; n * size];
        oxmpi::scope(|s| world.iallgather(s, &mine, &mut all)?.wait()).expect("iallgather");
        check(&all, &want, &format!("i{what}"));
        let mut buf = vec![0; n * size];
        buf[rank * n..(rank + 1) * n].copy_from_slice(&mine);
        world
            .allgather_in_place(&mut buf)
            .expect("allgather_in_place");
        check(&buf, &want, &format!("{what} in place"));
    }
}

fn allgatherv(world: &Comm, alg: &str) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    for n in counts(true) {
        let counts = vcounts(n, size, 2);
        // Both a packed, in-order layout and a reversed one with gaps.
        let packed: Vec<usize> = (0..size).map(|i| counts[..i].iter().sum()).collect();
        for (displs, len) in [(packed, counts.iter().sum()), vdispls(&counts)] {
            let mine: Vec<u32> = (0..counts[rank]).map(|i| val(rank, 0, i)).collect();
            let mut want = vec![9u32; len];
            for r in 0..size {
                for i in 0..counts[r] {
                    want[displs[r] + i] = val(r, 0, i);
                }
            }
            let what = format!("allgatherv [{alg}] x{n}");
            let mut all = vec![9u32; len];
            world
                .allgatherv(&mine, &mut all, &counts, &displs)
                .expect("allgatherv");
            check(&all, &want, &what);
            let mut all = vec![9u32; len];
            oxmpi::scope(|s| {
                world
                    .iallgatherv(s, &mine, &mut all, &counts, &displs)?
                    .wait()
            })
            .expect("iallgatherv");
            check(&all, &want, &format!("i{what}"));
            let mut buf = vec![9u32; len];
            buf[place(displs[rank], counts[rank])].copy_from_slice(&mine);
            world
                .allgatherv_in_place(&mut buf, &counts, &displs)
                .expect("allgatherv_in_place");
            check(&buf, &want, &format!("{what} in place"));
        }
    }
}

fn alltoall(world: &Comm, alg: &str) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    // About 800 KB per rank: through the node's area (forced) in two pieces of at most
    // a 512 KiB large buffer, the last shorter, where nothing is lent (1 and 2 ranks,
    // or no single copies).
    let pieces = 200_001 / size + 1;
    for n in blocks(size).into_iter().chain([pieces]) {
        let send: Vec<u32> = (0..size)
            .flat_map(|to| (0..n).map(move |i| val(rank, to, i)))
            .collect();
        let want: Vec<u32> = (0..size)
            .flat_map(|from| (0..n).map(move |i| val(from, rank, i)))
            .collect();
        let what = format!("alltoall [{alg}] x{n}");
        let mut got = vec![0; n * size];
        world.alltoall(&send, &mut got).expect("alltoall");
        check(&got, &want, &what);
        let mut got = vec![0; n * size];
        oxmpi::scope(|s| world.ialltoall(s, &send, &mut got)?.wait()).expect("ialltoall");
        check(&got, &want, &format!("i{what}"));
        let mut buf = send.clone();
        world
            .alltoall_in_place(&mut buf)
            .expect("alltoall_in_place");
        check(&buf, &want, &format!("{what} in place"));
    }
}

fn alltoallv(world: &Comm, alg: &str) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    // What rank `from` sends rank `to`: a count every rank can compute.
    let count = |n: usize, from: usize, to: usize| {
        if (from + to) % 3 == 1 {
            0
        } else {
            n / size + (from * 3 + to) % 4
        }
    };
    for n in counts(true) {
        let send_counts: Vec<usize> = (0..size).map(|to| count(n, rank, to)).collect();
        let recv_counts: Vec<usize> = (0..size).map(|from| count(n, from, rank)).collect();
        let (send_displs, send_len) = vdispls(&send_counts);
        let (recv_displs, recv_len) = vdispls(&recv_counts);
        let mut send = vec![0u32; send_len];
        for to in 0..size {
            for i in 0..send_counts[to] {
                send[send_displs[to] + i] = val(rank, to, i);
            }
        }
        let mut want = vec![5u32; recv_len];
        for from in 0..size {
            for i in 0..recv_counts[from] {
                want[recv_displs[from] + i] = val(from, rank, i);
            }
        }
        let what = format!("alltoallv [{alg}] x{n}");
        let mut got = vec![5u32; recv_len];
        world
            .alltoallv(
                &send,
                &send_counts,
                &send_displs,
                &mut got,
                &recv_counts,
                &recv_displs,
            )
            .expect("alltoallv");
        check(&got, &want, &what);
        let mut got = vec![5u32; recv_len];
        oxmpi::scope(|s| {
            world
                .ialltoallv(
                    s,
                    &send,
                    &send_counts,
                    &send_displs,
                    &mut got,
                    &recv_counts,
                    &recv_displs,
                )?
                .wait()
        })
        .expect("ialltoallv");
        check(&got, &want, &format!("i{what}"));
        // In place: both directions use one layout, so use symmetric counts.
        let sym: Vec<usize> = (0..size)
            .map(|p| count(n, rank.min(p), rank.max(p)))
            .collect();
        let (displs, len) = vdispls(&sym);
        let mut buf = vec![5u32; len];
        let mut want = vec![5u32; len];
        for p in 0..size {
            for i in 0..sym[p] {
                buf[displs[p] + i] = val(rank, p, i);
                want[displs[p] + i] = val(p, rank, i);
            }
        }
        world
            .alltoallv_in_place(&mut buf, &sym, &displs)
            .expect("alltoallv_in_place");
        check(&buf, &want, &format!("{what} in place"));
    }
}

/// Barriers synchronise: a rank that enters late (each in turn, after a pause) leaves
/// a file behind first, and every rank finds it once its own barrier returns. (A file,
/// as ranks on simulated nodes share the file system but no memory.)
fn barrier(world: &Comm) {
    let (rank, size) = (world.rank(), world.size());
    let job = std::env::var("OXMPI_JOB_ID").unwrap_or_else(|_| std::process::id().to_string());
    for late in 0..size.min(4) {
        let marker =
            |kind: &str| std::env::temp_dir().join(format!("oxmpi-test-{job}-{kind}-{late}"));
        for (kind, nonblocking) in [("barrier", false), ("ibarrier", true)] {
            if rank == late {
                std::thread::sleep(std::time::Duration::from_millis(10));
                std::fs::write(marker(kind), b"").expect("writing the marker");
            }
            if nonblocking {
                oxmpi::scope(|s| world.ibarrier(s)?.wait()).expect("ibarrier");
            } else {
                world.barrier().expect("barrier");
            }
            assert!(
                marker(kind).exists(),
                "rank {rank} left the {kind} before rank {late} entered it"
            );
        }
        // Every rank has looked: the late one removes its markers.
        world.barrier().expect("barrier");
        if rank == late {
            for kind in ["barrier", "ibarrier"] {
                std::fs::remove_file(marker(kind)).expect("removing the marker");
            }
        }
    }
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let mut ops: Vec<String> = std::env::args().skip(1).collect();
    if ops.is_empty() {
        ops = [
            "barrier",
            "bcast",
            "gather",
            "gatherv",
            "scatter",
            "scatterv",
            "allgather",
            "allgatherv",
            "alltoall",
            "alltoallv",
        ]
        .map(String::from)
        .to_vec();
    }
    for op in &ops {
        match op.as_str() {
            "barrier" => each_algorithm(Collective::Barrier, |_| barrier(&world)),
            "bcast" => each_algorithm(Collective::Bcast, |alg| bcast(&world, alg)),
            "gather" => each_algorithm(Collective::Gather, |alg| gather(&world, alg)),
            "gatherv" => gatherv(&world),
            "scatter" => each_algorithm(Collective::Scatter, |alg| scatter(&world, alg)),
            "scatterv" => scatterv(&world),
            "allgather" => each_algorithm(Collective::Allgather, |alg| allgather(&world, alg)),
            "allgatherv" => each_algorithm(Collective::Allgatherv, |alg| allgatherv(&world, alg)),
            "alltoall" => each_algorithm(Collective::Alltoall, |alg| alltoall(&world, alg)),
            "alltoallv" => each_algorithm(Collective::Alltoallv, |alg| alltoallv(&world, alg)),
            other => panic!("unknown operation {other}"),
        }
    }
    if world.rank() == 0 {
        println!("ok {}", ops.join(" "));
    }
    universe.finalize()
}
