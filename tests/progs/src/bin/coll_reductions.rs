//! Checks the reduction collectives against serial references: allreduce, reduce,
//! reduce_scatter, reduce_scatter_block, scan and exscan, each with every algorithm
//! (forced in turn), blocking, in place and nonblocking, at 0, 1, odd and > 1 MiB
//! element counts, with every built-in operation on an integer and a float type,
//! MinLoc/MaxLoc with ties, and commutative and non-commutative user operations.
//! `coll_reductions OP...` runs the named operations (all by default); `copies`
//! prints how rank 0 received the messages of a reduce (2 ranks, binomial forced) and
//! of a plain receive; `learned_ways` checks that a 2-rank allreduce gives the same
//! bits whichever way rank 0 sends each call.

#[path = "../coll_check.rs"]
mod coll_check;

use std::fmt::Debug;

use bytemuck::Pod;
use coll_check::*;
use oxmpi::Op::{self, Arithmetic, Bitwise, Logical, Reduction};
use oxmpi::{Collective, Comm, ValueIndex};

/// One way to call an operation: blocking, in place, or nonblocking.
#[derive(Debug, Clone, Copy)]
enum Form {
    Blocking,
    InPlace,
    Nonblocking,
}

const FORMS: [Form; 3] = [Form::Blocking, Form::InPlace, Form::Nonblocking];

/// The reduction collectives, as one case each: given inputs, this rank's result.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Coll {
    Allreduce,
    Reduce { root: usize },
    ReduceScatter,
    ReduceScatterBlock,
    Scan,
    Exscan,
}

/// Block counts of reduce_scatter: uneven, some empty, `count` in all.
fn rs_counts(count: usize, size: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = (0..size)
        .map(|i| if i % 3 == 1 { 0 } else { count / size })
        .collect();
    counts[0] += count - counts.iter().sum::<usize>();
    counts
}

/// Runs `coll` on `send` with `op` in `form`; returns this rank's meaningful result.
fn run<T: Pod + PartialEq + Debug, O: Reduction<T> + Clone>(
    world: &Comm,
    coll: Coll,
    form: Form,
    send: &[T],
    op: O,
) -> Vec<T> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let n = send.len();
    let sentinel = sentinel::<T>();
    match coll {
        Coll::Allreduce | Coll::Scan | Coll::Exscan => {
            let mut out = vec![sentinel; n];
            match (coll, form) {
                (Coll::Allreduce, Form::Blocking) => world.allreduce(send, &mut out, op),
                (Coll::Scan, Form::Blocking) => world.scan(send, &mut out, op),
                (Coll::Exscan, Form::Blocking) => world.exscan(send, &mut out, op),
                (_, Form::InPlace) => {
                    out.copy_from_slice(send);
                    match coll {
                        Coll::Allreduce => world.allreduce_in_place(&mut out, op),
                        Coll::Scan => world.scan_in_place(&mut out, op),
                        _ => world.exscan_in_place(&mut out, op),
                    }
                }
                (_, _) => oxmpi::scope(|s| {
                    let req = match coll {
                        Coll::Allreduce => world.iallreduce(s, send, &mut out, op),
                        Coll::Scan => world.iscan(s, send, &mut out, op),
                        _ => world.iexscan(s, send, &mut out, op),
                    }?;
                    req.wait().map(|_| ())
                }),
            }
            .expect("collective");
            if coll == Coll::Exscan && rank == 0 {
                // Untouched: the sentinel, or the input in place.
                let kept = if matches!(form, Form::InPlace) {
                    send.to_vec()
                } else {
                    vec![sentinel; n]
                };
                check(&out, &kept, "exscan leaves rank 0's buffer alone");
            }
            out
        }
        Coll::Reduce { root } => {
            let mut out = vec![sentinel; if rank == root { n } else { 0 }];
            match form {
                Form::Blocking => world.reduce(send, &mut out, op, root as i32),
                Form::InPlace => {
                    let mut buf = send.to_vec();
                    world
                        .reduce_in_place(&mut buf, op, root as i32)
                        .expect("reduce_in_place");
                    if rank != root {
                        check(
                            &buf,
                            send,
                            "reduce_in_place leaves non-roots' buffers alone",
                        );
                    }
                    out = if rank == root { buf } else { out };
                    Ok(())
                }
                Form::Nonblocking => oxmpi::scope(|s| {
                    world
                        .ireduce(s, send, &mut out, op, root as i32)?
                        .wait()
                        .map(|_| ())
                }),
            }
            .expect("reduce");
            out
        }
        Coll::ReduceScatter | Coll::ReduceScatterBlock => {
            let counts = match coll {
                Coll::ReduceScatter => rs_counts(n, size),
                _ => vec![n / size; size],
            };
            let send = &send[..counts.iter().sum::<usize>()];
            let mine = counts[rank];
            let mut out = vec![sentinel; mine];
            match (coll, form) {
                (Coll::ReduceScatter, Form::Blocking) => {
                    world.reduce_scatter(send, &mut out, &counts, op)
                }
                (_, Form::Blocking) => world.reduce_scatter_block(send, &mut out, op),
                (_, Form::InPlace) => {
                    let mut buf = send.to_vec();
                    match coll {
                        Coll::ReduceScatter => world.reduce_scatter_in_place(&mut buf, &counts, op),
                        _ => world.reduce_scatter_block_in_place(&mut buf, op),
                    }
                    .expect("in place");
                    out.copy_from_slice(&buf[..mine]);
                    Ok(())
                }
                (_, Form::Nonblocking) => oxmpi::scope(|s| {
                    match coll {
                        Coll::ReduceScatter => {
                            world.ireduce_scatter(s, send, &mut out, &counts, op)
                        }
                        _ => world.ireduce_scatter_block(s, send, &mut out, op),
                    }?
                    .wait()
                    .map(|_| ())
                }),
            }
            .expect("reduce_scatter");
            out
        }
    }
}

/// What rank `rank` should hold after `coll` when rank `r` contributes `vector(r)`,
/// given the serial reduction `fold(range)` over a range of ranks.
fn expected<T: Clone>(
    world: &Comm,
    coll: Coll,
    n: usize,
    fold: impl Fn(std::ops::Range<usize>) -> Vec<T>,
) -> Vec<T> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    match coll {
        Coll::Allreduce => fold(0..size),
        Coll::Reduce { root } => {
            if rank == root {
                fold(0..size)
            } else {
                vec![]
            }
        }
        Coll::Scan => fold(0..rank + 1),
        Coll::Exscan => {
            if rank == 0 {
                vec![]
            } else {
                fold(0..rank)
            }
        }
        Coll::ReduceScatter | Coll::ReduceScatterBlock => {
            let counts = if coll == Coll::ReduceScatter {
                rs_counts(n, size)
            } else {
                vec![n / size; size]
            };
            let all = fold(0..size);
            let first: usize = counts[..rank].iter().sum();
            all[first..first + counts[rank]].to_vec()
        }
    }
}

fn builtin<T: Num, O: Reduction<T> + Clone>(
    world: &Comm,
    coll: Coll,
    kind: Kind,
    op: O,
    n: usize,
    forms: &[Form],
    what: &str,
) {
    let rank = world.rank() as usize;
    let send = vector::<T>(kind, rank, n);
    let want = expected(world, coll, n, |r| reference::<T>(kind, r, n));
    for &form in forms {
        let mut got = run(world, coll, form, &send, op.clone());
        if coll == Coll::Exscan && rank == 0 {
            got.clear();
        }
        check(
            &got,
            &want,
            &format!("{what} {kind:?} on {} x{n} {form:?}", T::NAME),
        );
    }
}

fn arithmetic<T: Num + Arithmetic + Logical>(
    world: &Comm,
    coll: Coll,
    n: usize,
    forms: &[Form],
    what: &str,
) {
    for kind in ARITH_AND_LOGICAL {
        match kind {
            Kind::Sum => builtin::<T, _>(world, coll, kind, Op::Sum, n, forms, what),
            Kind::Prod => builtin::<T, _>(world, coll, kind, Op::Prod, n, forms, what),
            Kind::Min => builtin::<T, _>(world, coll, kind, Op::Min, n, forms, what),
            Kind::Max => builtin::<T, _>(world, coll, kind, Op::Max, n, forms, what),
            Kind::LAnd => builtin::<T, _>(world, coll, kind, Op::LogicalAnd, n, forms, what),
            Kind::LOr => builtin::<T, _>(world, coll, kind, Op::LogicalOr, n, forms, what),
            _ => builtin::<T, _>(world, coll, kind, Op::LogicalXor, n, forms, what),
        }
    }
}

fn bitwise<T: Num + Bitwise>(world: &Comm, coll: Coll, n: usize, forms: &[Form], what: &str) {
    builtin::<T, _>(world, coll, Kind::BAnd, Op::BitAnd, n, forms, what);
    builtin::<T, _>(world, coll, Kind::BOr, Op::BitOr, n, forms, what);
    builtin::<T, _>(world, coll, Kind::BXor, Op::BitXor, n, forms, what);
}

/// MinLoc and MaxLoc on values with many ties and NaNs: of equal values the lowest
/// index must win, any number wins over a NaN, and the result is one pair whole.
fn located(world: &Comm, coll: Coll, n: usize, what: &str) {
    let rank = world.rank() as usize;
    let pair = |r: usize, i: usize| {
        let v = match mix(r as u64, i as u64, 9) % 4 {
            3 => f64::NAN,
            v => v as f64,
        };
        ValueIndex::new(v, r as i32)
    };
    let send: Vec<ValueIndex<f64>> = (0..n).map(|i| pair(rank, i)).collect();
    for (name, min) in [("MinLoc", true), ("MaxLoc", false)] {
        let fold = |ranks: std::ops::Range<usize>| -> Vec<ValueIndex<f64>> {
            (0..n)
                .map(|i| {
                    // Ranks in order: `a` has the smaller index, so keeps a tie.
                    ranks
                        .clone()
                        .map(|r| pair(r, i))
                        .reduce(|a, b| {
                            let (va, vb) = (a.value, b.value);
                            let b_wins = if va.is_nan() {
                                !vb.is_nan()
                            } else if min {
                                vb < va
                            } else {
                                vb > va
                            };
                            if b_wins { b } else { a }
                        })
                        .expect("non-empty")
                })
                .collect()
        };
        let want = expected(world, coll, n, fold);
        let mut got = if min {
            run(world, coll, Form::Blocking, &send, Op::MinLoc)
        } else {
            run(world, coll, Form::Blocking, &send, Op::MaxLoc)
        };
        if coll == Coll::Exscan && rank == 0 {
            got.clear();
        }
        check(&got, &want, &format!("{what} {name} x{n}"));
    }
}

/// User operations: a commutative sum and the non-commutative composition of affine maps.
fn user(world: &Comm, coll: Coll, n: usize, forms: &[Form], what: &str) {
    let rank = world.rank() as usize;
    let add = Op::commutative(|a: &[u64], b: &mut [u64]| {
        for (y, x) in b.iter_mut().zip(a) {
            *y = y.wrapping_add(*x);
        }
    });
    builtin::<u64, _>(
        world,
        coll,
        Kind::Sum,
        add,
        n,
        forms,
        &format!("{what} user-commutative"),
    );
    let send = Affine::vector(rank, n);
    let want = expected(world, coll, n, |r| Affine::reference(r, n));
    for &form in forms {
        let mut got = run(world, coll, form, &send, compose());
        if coll == Coll::Exscan && rank == 0 {
            got.clear();
        }
        check(
            &got,
            &want,
            &format!("{what} non-commutative x{n} {form:?}"),
        );
    }
}

/// Every case of `coll` under the currently forced algorithm.
fn cases(world: &Comm, coll: Coll, alg: &str) {
    let size = world.size() as usize;
    for n in counts(true) {
        // Block variants need a multiple of the size; keep the sizes odd elsewhere.
        let n = if coll == Coll::ReduceScatterBlock {
            n.div_ceil(size.max(1)) * size
        } else {
            n
        };
        let what = format!("{coll:?} [{alg}] on {size} ranks");
        if n > 100_000 {
            builtin::<f32, _>(world, coll, Kind::Sum, Op::Sum, n, &FORMS, &what);
            user(world, coll, n, &[Form::Blocking], &what);
            continue;
        }
        arithmetic::<i32>(world, coll, n, &FORMS, &what);
        arithmetic::<f64>(world, coll, n, &FORMS, &what);
        arithmetic::<i8>(world, coll, n, &[Form::Blocking], &what);
        arithmetic::<f32>(world, coll, n, &[Form::Blocking], &what);
        bitwise::<u64>(world, coll, n, &FORMS, &what);
        bitwise::<i8>(world, coll, n, &[Form::Blocking], &what);
        located(world, coll, n, &what);
        user(world, coll, n, &FORMS, &what);
    }
}

/// Allreduce results are the same bits on every rank and on a second run, with
/// inputs whose sums round, and NaNs of every rank's own sign and payload (a NaN
/// plus a NaN may pass on either operand's).
fn bit_identical(world: &Comm) {
    let rank = world.rank() as usize;
    let nan = f32::from_bits(0x7fc0_0000 | (rank as u32 % 2) << 31 | (rank as u32 + 1));
    for alg in Collective::Allreduce.algorithms() {
        oxmpi::set_algorithm(Collective::Allreduce, Some(alg)).expect("algorithm");
        for n in [1usize, 1001, 100_003] {
            let send: Vec<f32> = (0..n)
                .map(|i| match i % 97 {
                    1 => nan,
                    2 if i % 5 == rank % 5 => nan,
                    _ => (mix(rank as u64, i as u64, 5) % 1_000_003) as f32 * 1.0e-3 + 1.0 / 3.0,
                })
                .collect();
            let mut first = vec![0f32; n];
            let mut second = vec![0f32; n];
            world
                .allreduce(&send, &mut first, Op::Sum)
                .expect("allreduce");
            world
                .allreduce(&send, &mut second, Op::Sum)
                .expect("allreduce");
            let bits = |v: &[f32]| v.iter().fold(0u64, |h, x| mix(h, x.to_bits() as u64, 1));
            assert_eq!(
                bits(&first),
                bits(&second),
                "allreduce [{alg}] x{n}: two runs differ"
            );
            let mut everyone = vec![0u64; world.size() as usize];
            world
                .allgather(&[bits(&first)], &mut everyone)
                .expect("allgather");
            assert!(
                everyone.iter().all(|&h| h == everyone[0]),
                "allreduce [{alg}] x{n}: ranks differ: {everyone:?}"
            );
        }
    }
    oxmpi::set_algorithm(Collective::Allreduce, None).expect("auto");
}

/// Rank 0 receives 128 KiB and 2 MiB through a reduce (its operands), then 128 KiB
/// through a receive, printing after each how many large messages it has received
/// by a single copy of its own and by a copy shared with the sender.
fn copies(world: &Comm) -> oxmpi::Result<()> {
    let rank = world.rank();
    let report = |what: &str| {
        let ways = oxmpi::large_receives();
        if rank == 0 {
            println!(
                "after {what}: single copy {}, split {}",
                ways.single_copy, ways.split
            );
        }
    };
    for bytes in [128 << 10, 2 << 20] {
        let send = vec![1.0f32; bytes / 4];
        let mut recv = vec![0.0f32; if rank == 0 { bytes / 4 } else { 0 }];
        oxmpi::set_algorithm(Collective::Reduce, Some("binomial")).expect("binomial");
        world.reduce(&send, &mut recv, Op::Sum, 0)?;
        oxmpi::set_algorithm(Collective::Reduce, None).expect("auto");
        check(
            &recv,
            &vec![2.0; recv.len()],
            &format!("reduce of {bytes} bytes"),
        );
        report(&format!("reduce of {bytes} bytes"));
    }
    let mut got = vec![0u8; 128 << 10];
    match rank {
        0 => {
            world.recv(&mut got, 1, 7)?;
        }
        _ => world.send(&got, 0, 7)?,
    }
    report("receive of 131072 bytes");
    Ok(())
}

/// A 2-rank allreduce of 16 KiB or more goes through the area or as messages, as rank
/// 0 learns which is faster (its first three calls of a size through the area, the
/// next two as messages, then the faster with bursts of the other), so identical
/// calls go either way: each must give the same bits. Floats whose result depends on
/// the operands' order or on which NaN passes on: Min of a NaN and a number, of +0
/// and -0, and sums of NaNs of either sign, from 16 KiB (recursive doubling as
/// messages) and from 1 MiB (the ring).
fn learned_ways_agree(world: &Comm) {
    const CALLS: u32 = 6;
    let rank = world.rank() as usize;
    let cases: [(&str, f32, f32, bool); 4] = [
        ("min nan 1", f32::NAN, 1.0, true),
        ("min +0 -0", 0.0, -0.0, true),
        ("sum -nan nan", -f32::NAN, f32::NAN, false),
        ("sum 1 -nan", 1.0, -f32::NAN, false),
    ];
    // 16 KiB and 1 MiB (and a little more): each case in a size class of its own,
    // whose first calls go both ways.
    for first_n in [4096usize, (1 << 18) + 3] {
        for (k, (what, x0, x1, min)) in cases.into_iter().enumerate() {
            let n = first_n << k;
            let send: Vec<f32> = (0..n)
                .map(|i| match (i % 3, rank) {
                    (0, 0) => x0,
                    (0, _) => x1,
                    _ => 0.25,
                })
                .collect();
            let mut first: Option<Vec<u32>> = None;
            let messages_before = messages_taken();
            for call in 0..CALLS {
                let mut out = vec![0f32; n];
                if min {
                    world
                        .allreduce(&send, &mut out, Op::Min)
                        .expect("allreduce");
                } else {
                    world
                        .allreduce(&send, &mut out, Op::Sum)
                        .expect("allreduce");
                }
                let bits: Vec<u32> = out.iter().map(|x| x.to_bits()).collect();
                match &first {
                    None => first = Some(bits),
                    Some(f) => {
                        if let Some(i) = (0..n).find(|&i| f[i] != bits[i]) {
                            panic!(
                                "allreduce {what} x{n}: call {call} gives {:#x} at {i}, call 0 gave {:#x}",
                                bits[i], f[i]
                            );
                        }
                    }
                }
            }
            // Rank 0 decides the ways, so its count tells for both ranks.
            let messages = messages_taken() - messages_before;
            if rank == 0 {
                assert!(
                    (1..CALLS).contains(&messages),
                    "allreduce {what} x{n}: {messages} of {CALLS} calls as messages, not both ways"
                );
            }
        }
    }
}

/// Allreduces run so far as messages (by any algorithm).
fn messages_taken() -> u32 {
    let coll = Collective::Allreduce;
    ["recursive_doubling", "rabenseifner", "ring", "linear"]
        .iter()
        .map(|a| coll.runs(a))
        .sum()
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let size = world.size() as usize;
    let mut ops: Vec<String> = std::env::args().skip(1).collect();
    if ops.is_empty() {
        ops = [
            "allreduce",
            "reduce",
            "reduce_scatter",
            "reduce_scatter_block",
            "scan",
            "exscan",
        ]
        .map(String::from)
        .to_vec();
    }
    for op in &ops {
        match op.as_str() {
            "allreduce" => {
                each_algorithm(Collective::Allreduce, |alg| {
                    cases(&world, Coll::Allreduce, alg)
                });
                bit_identical(&world);
            }
            "reduce" => each_algorithm(Collective::Reduce, |alg| {
                for root in [0, size - 1, size / 2] {
                    cases(&world, Coll::Reduce { root }, alg);
                }
            }),
            "reduce_scatter" => each_algorithm(Collective::ReduceScatter, |alg| {
                cases(&world, Coll::ReduceScatter, alg)
            }),
            "reduce_scatter_block" => each_algorithm(Collective::ReduceScatterBlock, |alg| {
                cases(&world, Coll::ReduceScatterBlock, alg)
            }),
            "scan" => each_algorithm(Collective::Scan, |alg| cases(&world, Coll::Scan, alg)),
            "exscan" => each_algorithm(Collective::Exscan, |alg| cases(&world, Coll::Exscan, alg)),
            "copies" => copies(&world)?,
            "learned_ways" => learned_ways_agree(&world),
            other => panic!("unknown operation {other}"),
        }
    }
    if world.rank() == 0 {
        println!("ok {}", ops.join(" "));
    }
    universe.finalize()
}
