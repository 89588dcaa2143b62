//! Collectives among other traffic: nonblocking collectives overlapped with
//! point-to-point messages on the same communicator and mixed with them in
//! `wait_any`/`wait_all`, several collectives in flight at once, collectives on
//! duplicated and split communicators, and the argument errors a caller can make.

use oxmpi::{Collective, Comm, Error, Op};

/// Nonblocking allreduce and alltoall in flight while the same ranks exchange
/// point-to-point messages on the same communicator, completed through wait_any.
fn overlap(world: &Comm) {
    let (rank, size) = (world.rank(), world.size());
    let (right, left) = ((rank + 1) % size, (rank + size - 1) % size);
    for n in [1usize, 1000, 300_000] {
        let mine = vec![rank as u64 + 1; n];
        let mut sum = vec![0u64; n];
        let ring_out = vec![rank as u32; n];
        let mut ring_in = vec![0u32; n];
        let to_all: Vec<i32> = (0..size)
            .flat_map(|j| std::iter::repeat_n(rank * 1000 + j, 3))
            .collect();
        let mut from_all = vec![0i32; to_all.len()];
        let mut first = vec![0u64; n];
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let mut reqs = vec![
                Some(world.iallreduce(s, &mine, &mut sum, Op::Sum)?),
                Some(world.irecv(s, &mut ring_in, left, 5)?),
                Some(world.ialltoall(s, &to_all, &mut from_all)?),
                Some(world.isend(s, &ring_out, right, 5)?),
                Some(world.ibcast(s, &mut first, 0)?),
            ];
            let mut done = 0;
            while oxmpi::wait_any(&mut reqs)?.is_some() {
                done += 1;
            }
            assert_eq!(done, 5);
            Ok(())
        })
        .expect("overlapped requests");
        let total = (size as u64) * (size as u64 + 1) / 2;
        assert!(sum.iter().all(|&x| x == total), "allreduce beside p2p x{n}");
        assert!(
            ring_in.iter().all(|&x| x == left as u32),
            "p2p beside collectives x{n}"
        );
        let want: Vec<i32> = (0..size)
            .flat_map(|i| std::iter::repeat_n(i * 1000 + rank, 3))
            .collect();
        assert_eq!(from_all, want, "alltoall beside p2p x{n}");
    }
}

/// Collectives on a duplicate and on the halves of a split, interleaved with the
/// parent's, with every algorithm of allreduce.
fn subcommunicators(world: &Comm) {
    let rank = world.rank();
    let dup = world.dup().expect("dup");
    let half = world
        .split(rank % 2, -rank)
        .expect("split")
        .expect("a color");
    for alg in Collective::Allreduce.algorithms() {
        oxmpi::set_algorithm(Collective::Allreduce, Some(alg)).expect("algorithm");
        let mut a = [rank as i64; 5];
        let mut b = [1i64; 5];
        let mut c = [half.rank() as i64; 5];
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let r1 = world.iallreduce_in_place(s, &mut a, Op::Sum)?;
            let r2 = dup.iallreduce_in_place(s, &mut b, Op::Sum)?;
            half.allreduce_in_place(&mut c, Op::Max)?;
            oxmpi::wait_all(vec![r2, r1])?;
            Ok(())
        })
        .expect("collectives on three communicators");
        let n = world.size() as i64;
        assert_eq!(a, [n * (n - 1) / 2; 5], "world [{alg}]");
        assert_eq!(b, [n; 5], "dup [{alg}]");
        assert_eq!(c, [half.size() as i64 - 1; 5], "split [{alg}]");
        // Split ordered by descending key: rank order reversed within each half.
        let mut members = vec![0i32; half.size() as usize];
        half.allgather(&[rank], &mut members)
            .expect("allgather on split");
        assert!(
            members.windows(2).all(|w| w[0] > w[1]),
            "split order {members:?}"
        );
    }
    oxmpi::set_algorithm(Collective::Allreduce, None).expect("auto");
    node_halves(world);
}

/// Blocking collectives on the halves of the world in rank blocks: with oxrun
/// `--simulate-nodes 2` each half is one node's ranks, so they meet in that node's
/// shared-memory area while the world's collectives and a point-to-point ring cross
/// nodes over TCP (a waiting rank sleeps in its poller and is woken by either).
fn node_halves(world: &Comm) {
    let (rank, size) = (world.rank(), world.size());
    let node = world
        .split(rank * 2 / size, rank)
        .expect("split")
        .expect("a color");
    let (r, n) = (node.rank(), node.size());
    for round in 0..50i64 {
        let mut x = [r as i64 + round; 3];
        node.allreduce_in_place(&mut x, Op::Sum)
            .expect("node allreduce");
        let n64 = n as i64;
        assert_eq!(x, [n64 * (n64 - 1) / 2 + n64 * round; 3], "node allreduce");
        let mut b = [if r == 0 { round } else { -1 }; 5];
        node.bcast(&mut b, 0).expect("node bcast");
        assert_eq!(b, [round; 5], "node bcast");
        let out: Vec<i32> = (0..n).map(|j| r * 100 + j).collect();
        let mut got = vec![0; n as usize];
        node.alltoall(&out, &mut got).expect("node alltoall");
        let want: Vec<i32> = (0..n).map(|j| j * 100 + r).collect();
        assert_eq!(got, want, "node alltoall");
        let mut w = [1u32];
        world
            .allreduce_in_place(&mut w, Op::Sum)
            .expect("world allreduce");
        assert_eq!(w[0], size as u32);
        let mut token = [0u8];
        world
            .sendrecv(
                &[1u8],
                (rank + 1) % size,
                9,
                &mut token,
                (rank + size - 1) % size,
                9,
            )
            .expect("ring");
        node.barrier().expect("node barrier");
    }
}

/// Ranks that disagree on a count (rank 0 contributes fewer elements) in collectives
/// that meet in the node's shared-memory area: every rank that sees the difference
/// gets an error naming it, nobody waits forever, and the area stays usable.
fn disagreeing_counts(world: &Comm) {
    let rank = world.rank();
    let n = if rank == 0 { 2 } else { 3 };
    let expect_disagree = |r: oxmpi::Result<()>, what: &str| match r {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("disagree"), "{what}: {msg}"),
        other => panic!("{what}: rank {rank} expected a disagreement error, got {other:?}"),
    };
    for coll in [
        Collective::Allreduce,
        Collective::Bcast,
        Collective::Allgather,
        Collective::Alltoall,
    ] {
        oxmpi::set_algorithm(coll, Some("shared_memory")).expect("algorithm");
    }
    expect_disagree(
        world.allreduce(&vec![1u32; n], &mut vec![0u32; n], Op::Sum),
        "allreduce",
    );
    let mut buf = vec![7u8; n];
    let r = world.bcast(&mut buf, 0);
    if rank == 0 {
        r.expect("the root has nothing to compare");
    } else {
        expect_disagree(r, "bcast");
    }
    expect_disagree(
        world.allgather(&vec![1u16; n], &mut vec![0u16; n * world.size() as usize]),
        "allgather",
    );
    // Vectors that go in pieces (of a 512 KiB large buffer at most): the ranks
    // disagree on how many pieces there are.
    let long = if rank == 0 { 1_200_000 } else { 600_000 };
    let mut buf = vec![7u8; long];
    let r = world.bcast(&mut buf, 0);
    if rank == 0 {
        r.expect("the root has nothing to compare");
    } else {
        expect_disagree(r, "bcast in pieces");
    }
    let long = if rank == 0 { 100_000 } else { 150_000 };
    expect_disagree(
        world.allreduce(&vec![1.5f64; long], &mut vec![0.0; long], Op::Sum),
        "allreduce in pieces",
    );
    // A vector that fits the area beside longer ones.
    let long = if rank == 0 { 3_000 } else { 30_000 };
    expect_disagree(
        world.allreduce(&vec![1.5f64; long], &mut vec![0.0; long], Op::Sum),
        "allreduce through the area and in pieces",
    );
    // The same bytes in elements of other sizes: the pieces' segments would differ.
    let r = if rank == 0 {
        world.allreduce(&vec![1u64; 10_000], &mut vec![0u64; 10_000], Op::Sum)
    } else {
        world.allreduce(&vec![1u32; 20_000], &mut vec![0u32; 20_000], Op::Sum)
    };
    expect_disagree(r, "allreduce with elements of other sizes");
    // Alltoalls through the area (up to 128 KiB per rank) and too large for it (on 8
    // ranks here), where ranks lend their buffers (3 ranks and more): ranks in the
    // area that disagree on the block size, lenders that do (whatever its size: no
    // rank may go to messages while others meet in the area), and one rank whose
    // blocks fit the area among lenders.
    let size = world.size() as usize;
    for (first, others, what) in [
        (10_000, 12_000, "alltoall, through the area"),
        (36_000, 40_000, "alltoall, lent"),
        (4_000, 20_000, "alltoall, through the area and lent"),
    ] {
        let block = if rank == 0 { first } else { others };
        expect_disagree(
            world.alltoall(&vec![1u8; block * size], &mut vec![0u8; block * size]),
            what,
        );
    }
    // Ranks on either side of the size from which an allreduce's pieces go round two
    // large buffers instead of four (2 MiB together, from 3 ranks): rank 0 in four.
    let edge = (2 << 20) / size / size_of::<f64>();
    let long = if rank == 0 {
        edge * 4 / 5
    } else {
        edge * 6 / 5
    };
    expect_disagree(
        world.allreduce(&vec![1.5f64; long], &mut vec![0.0; long], Op::Sum),
        "allreduce in pieces, in two buffers and in four",
    );
    // Still in step: collectives of every kind agree again.
    let mut x = [1u64];
    world
        .allreduce_in_place(&mut x, Op::Sum)
        .expect("agreeing allreduce");
    assert_eq!(x[0], world.size() as u64);
    // Two pieces each (from 3 ranks going round two buffers), twice: the second
    // call's pieces take the first's buffers.
    for call in 1..=2 {
        let mut sums = vec![0.0; 100_000];
        world
            .allreduce(&vec![call as f64; sums.len()], &mut sums, Op::Sum)
            .expect("agreeing allreduce in pieces");
        assert!(sums.iter().all(|&v| v == (call * size) as f64));
    }
    let mut long = vec![if rank == 0 { 3u32 } else { 0 }; 50_000];
    world.bcast(&mut long, 0).expect("agreeing bcast in pieces");
    assert!(long.iter().all(|&v| v == 3));
    // Allgathers of blocks too large for the area (3 ranks and more lend them).
    if size >= 3 {
        for (first, others, what) in [
            (40_000, 50_000, "allgather, lent"),
            (20_000, 40_000, "allgather, through the area and lent"),
        ] {
            let block = if rank == 0 { first } else { others };
            expect_disagree(
                world.allgather(&vec![1u8; block], &mut vec![0u8; block * size]),
                what,
            );
        }
        let block = 40_000;
        let mine: Vec<u8> = (0..block).map(|i| (i % 251) as u8 ^ rank as u8).collect();
        let mut all = vec![0u8; block * size];
        world
            .allgather(&mine, &mut all)
            .expect("agreeing lent allgather");
        for (r, got) in all.chunks(block).enumerate() {
            assert!(
                got.iter()
                    .enumerate()
                    .all(|(i, &v)| v == (i % 251) as u8 ^ r as u8)
            );
        }
    }
    for block in [10_000, 20_000, 40_000] {
        let send: Vec<u8> = (0..block * size)
            .map(|i| (i / block * 7 + rank as usize) as u8)
            .collect();
        let mut recv = vec![0u8; block * size];
        world.alltoall(&send, &mut recv).expect("agreeing alltoall");
        for (r, got) in recv.chunks(block).enumerate() {
            assert!(got.iter().all(|&v| v == (rank as usize * 7 + r) as u8));
        }
    }
    stale_slots(world);
    different_collectives(world);
    if rank == 0 {
        println!("ok disagree");
    }
}

/// Ranks that disagree where a rank enters a collective without writing for it read
/// its slot, which still holds what it wrote a lap of the area's slots earlier (128
/// collectives): they fail instead of taking that for data or for a loan.
fn stale_slots(world: &Comm) {
    let (rank, size) = (world.rank(), world.size() as usize);
    // Bcast goes through the area already (`disagreeing_counts`).
    for coll in [Collective::Barrier, Collective::Gather] {
        oxmpi::set_algorithm(coll, Some("shared_memory")).expect("algorithm");
    }
    let barriers = |n: usize| (0..n).for_each(|_| world.barrier().expect("barrier"));
    // A broadcast from rank 1 at collective s, then one at s + 128 whose ranks
    // disagree on the root: rank 0 names rank 1, the others rank 0.
    let mut old = [if rank == 1 { 0xAAAA_u32 } else { 0 }; 4];
    world.bcast(&mut old, 1).expect("agreeing bcast");
    barriers(127);
    let root = if rank == 0 { 1 } else { 0 };
    let mut buf = [if rank == root { 0x5555_u32 } else { 0 }; 4];
    let r = world.bcast(&mut buf, root);
    if rank == root && rank != 0 {
        r.expect("a root reads nothing");
    } else {
        assert!(
            matches!(&r, Err(Error::InvalidArgument(m)) if m.contains("disagree")),
            "bcast with disagreeing roots on rank {rank}: {r:?}, {buf:x?}"
        );
    }
    // An allgather whose ranks lend their buffers at collective s (3 ranks and more)
    // and close the loan at s + 1, then a gather at s + 128 to which rank 1
    // contributes another count: the root, finding it, must not take its own slot
    // for a loan to release (it would move on alone, and later results be wrong).
    if size >= 3 {
        let block = 40_000;
        let mut all = vec![0u8; block * size];
        world
            .allgather(&vec![rank as u8; block], &mut all)
            .expect("agreeing lent allgather");
        barriers(126);
        let send = vec![rank as u32; if rank == 1 { 2 } else { 1 }];
        let mut recv = vec![0u32; if rank == 0 { size } else { 0 }];
        let r = world.gather(&send, &mut recv, 0);
        if rank == 0 {
            assert!(
                matches!(&r, Err(Error::InvalidArgument(m)) if m.contains("disagree")),
                "gather with disagreeing counts on the root: {r:?}"
            );
        }
    }
    for i in 1..=4u64 {
        let mut x = [rank as u64 * 1000 + i];
        world
            .allreduce_in_place(&mut x, Op::Sum)
            .expect("agreeing allreduce");
        let want: u64 = (0..size as u64).map(|r| r * 1000 + i).sum();
        assert_eq!(x[0], want, "allreduce {i} after the disagreements");
    }
    oxmpi::set_algorithm(Collective::Barrier, None).expect("auto");
    oxmpi::set_algorithm(Collective::Gather, None).expect("auto");
}

/// Ranks that call different collectives at the same point, over the node's area:
/// every rank that reads or waits for one that entered another collective gets an
/// error naming both (a rank that reads nobody may not notice), nobody waits forever,
/// and, as these collectives take one step of the area each, the ranks stay in step.
fn different_collectives(world: &Comm) {
    let (rank, size) = (world.rank(), world.size());
    for coll in [Collective::Barrier, Collective::Reduce] {
        oxmpi::set_algorithm(coll, Some("shared_memory")).expect("algorithm");
    }
    // `must`: this rank reads or waits for a rank in the other collective.
    let outcome = |r: oxmpi::Result<()>, must: bool, what: &str| match r {
        Err(Error::InvalidArgument(msg)) if msg.contains(" calls ") => {}
        Ok(()) if !must => {}
        other => panic!("{what}: rank {rank} expected a mismatch error, got {other:?}"),
    };
    let mut small = [rank as u32; 3];
    // Rank 0 in a barrier, the others in a bcast from the last rank: rank 0 sees the
    // bcast; the bcast's readers read only its root, which is in the bcast too.
    let root = size - 1;
    let r = if rank == 0 {
        world.barrier()
    } else {
        world.bcast(&mut small, root)
    };
    outcome(r, rank == 0, "barrier beside bcast");
    // The other way round: every rank in the barrier sees the root's bcast.
    let r = if rank == 0 {
        world.bcast(&mut small, 0)
    } else {
        world.barrier()
    };
    outcome(r, rank != 0, "bcast beside barrier");
    // Reductions of the same shape: the allreduce reads every rank, the reduce's root
    // reads rank 0.
    let mut out = [0u32; 3];
    let r = if rank == 0 {
        world.allreduce(&[1u32; 3], &mut out, Op::Sum)
    } else {
        world.reduce(&[1u32; 3], &mut out, Op::Sum, root)
    };
    outcome(r, rank == 0 || rank == root, "allreduce beside reduce");
    // Then collectives agree again.
    let mut x = [1u64];
    world
        .allreduce_in_place(&mut x, Op::Sum)
        .expect("agreeing allreduce");
    assert_eq!(x[0], size as u64);
    world.barrier().expect("agreeing barrier");
}

/// Usage errors come back as clear errors, before anything is sent.
fn errors(world: &Comm) {
    let size = world.size();
    let expect_invalid = |r: oxmpi::Result<()>, what: &str, needle: &str| match r {
        Err(Error::InvalidArgument(msg)) => assert!(
            msg.contains(needle),
            "{what}: message {msg:?} lacks {needle:?}"
        ),
        Err(Error::InvalidRank { .. }) if needle == "rank" => {}
        other => panic!("{what}: expected an invalid-argument error, got {other:?}"),
    };
    expect_invalid(
        world.allreduce(&[1u32, 2], &mut [0u32; 3], Op::Sum),
        "allreduce lengths",
        "3 elements, needs 2",
    );
    expect_invalid(world.bcast(&mut [0u8], size), "bcast root", "rank");
    expect_invalid(
        world.reduce(&[1u8], &mut [0u8], Op::Sum, -1),
        "reduce root",
        "rank",
    );
    expect_invalid(
        world.alltoall(&[1u8; 3], &mut [0u8; 2]),
        "alltoall lengths",
        "must be equal",
    );
    if size > 1 {
        let (ones, zeros) = (vec![1; size as usize], vec![0; size as usize]);
        expect_invalid(
            world.allgatherv(&[1u8], &mut [0u8; 1], &ones, &zeros),
            "allgatherv overlap",
            "overlap",
        );
    }
    let too_many = vec![0; size as usize + 1];
    expect_invalid(
        world.allgatherv(&[0u8; 0], &mut [], &too_many, &too_many),
        "allgatherv counts",
        "one of each per rank",
    );
    {
        // This rank sends itself 2 elements but expects 1 from itself.
        let n = size as usize;
        let (mut scounts, rcounts) = (vec![1; n], vec![1; n]);
        scounts[world.rank() as usize] = 2;
        let sdispls: Vec<usize> = (0..n).map(|r| r * 2).collect();
        let rdispls: Vec<usize> = (0..n).collect();
        expect_invalid(
            world.alltoallv(
                &vec![1u8; 2 * n],
                &scounts,
                &sdispls,
                &mut vec![0u8; n],
                &rcounts,
                &rdispls,
            ),
            "alltoallv self counts",
            "expects 1 from itself",
        );
    }
    if size > 1 {
        // Counts whose sum wraps around to the send buffer's length.
        let mut wrapping = vec![0; size as usize];
        wrapping[0] = usize::MAX;
        wrapping[size as usize - 1] = 2;
        expect_invalid(
            world.reduce_scatter(&[1u32], &mut [0u32; 2], &wrapping, Op::Sum),
            "reduce_scatter counts that overflow",
            "add up to more",
        );
    }
    match oxmpi::set_algorithm(Collective::Bcast, Some("telepathy")) {
        Err(Error::InvalidArgument(msg)) => {
            assert!(msg.contains("binomial, scatter_allgather"), "{msg}")
        }
        other => panic!("unknown algorithm accepted: {other:?}"),
    }
    called_from_inside_a_reduction(world);
    retried_on_one_rank(world);
    // Still in step after the refusals: a collective works.
    let mut sum = [0u32];
    world
        .allreduce(&[1], &mut sum, Op::Sum)
        .expect("allreduce after errors");
    assert_eq!(sum[0], size as u32, "in step after the errors");
}

/// Rank 1 alone passes arguments that fail their checks (it takes no part), then
/// retries with right ones: the others, waiting in the collective, meet the retry.
fn retried_on_one_rank(world: &Comm) {
    let (rank, size) = (world.rank(), world.size() as usize);
    let mut sum = [0u32; 2];
    if rank == 1 {
        let r = world.allreduce(&[1u32, 2], &mut [0u32; 3], Op::Sum);
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    }
    world
        .allreduce(&[1, 2], &mut sum, Op::Sum)
        .expect("allreduce retried on rank 1");
    assert_eq!(sum, [size as u32, 2 * size as u32]);
    let counts = vec![1; size];
    let displs: Vec<usize> = (0..size).collect();
    let mut all = vec![0u8; size];
    if rank == 1 {
        let r = world.allgatherv(&[1u8], &mut all, &counts, &vec![0; size]);
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    }
    world
        .allgatherv(&[rank as u8], &mut all, &counts, &displs)
        .expect("allgatherv retried on rank 1");
    assert_eq!(all, (0..size as u8).collect::<Vec<_>>());
    // reduce_scatter_block takes no counts: its message says what the length is from.
    let mut mine = [0u32; 2];
    if rank == 1 {
        let r = world.reduce_scatter_block(&vec![1u32; 2 * size + 1], &mut mine, Op::Sum);
        match r {
            Err(Error::InvalidArgument(msg))
                if msg.contains("the receive buffer's length times the ranks") => {}
            other => panic!("reduce_scatter_block with a wrong send length: {other:?}"),
        }
    }
    world
        .reduce_scatter_block(&vec![1u32; 2 * size], &mut mine, Op::Sum)
        .expect("reduce_scatter_block retried on rank 1");
    assert_eq!(mine, [size as u32; 2]);
}

/// A collective called from inside a reduction's closure, or from another thread, is
/// refused (oxmpi is not re-entrant, and funneled) and uses up nothing: ranks whose
/// closure ran (the reduce's inner nodes) stay in step with those whose closure did
/// not. On 2 ranks also after thousands of 16 KiB allreduces, which then go the way
/// rank 0 learned in runs of calls decided at once, refused once at each place of a
/// run (a refused call took the run's next call on its rank alone, and a later
/// allreduce ended the job blaming the counts).
fn called_from_inside_a_reduction(world: &Comm) {
    use std::cell::RefCell;
    thread_local! {
        static INSIDE: RefCell<Option<Comm>> = const { RefCell::new(None) };
    }
    const LEARNED: usize = 4096;
    fn refused_inside(what: &str, r: oxmpi::Result<()>) {
        match r {
            Err(Error::InvalidArgument(msg)) if msg.contains("inside") => {}
            other => panic!("{what} inside a reduction: {other:?}"),
        }
    }
    INSIDE.with(|c| *c.borrow_mut() = Some(world.clone()));
    let op = Op::commutative(|a: &[u32], b: &mut [u32]| {
        INSIDE.with(|c| {
            if let Some(c) = c.borrow().as_ref() {
                refused_inside("a barrier", c.barrier());
                let mut out = [0f32; LEARNED];
                refused_inside(
                    "an allreduce",
                    c.allreduce(&[1f32; LEARNED], &mut out, Op::Sum),
                );
            }
        });
        for (y, x) in b.iter_mut().zip(a) {
            *y += x;
        }
    });
    let (rank, size) = (world.rank(), world.size());
    let mine = vec![rank as f32 + 1.0; LEARNED];
    let mut out = vec![0f32; LEARNED];
    let mut learned_allreduce = || {
        world
            .allreduce(&mine, &mut out, Op::Sum)
            .expect("allreduce");
        assert!(out.iter().all(|&x| x == 3.0), "{:?}", &out[..4]);
    };
    // One rank alone is refused in each round: rank 1 from another thread, then the
    // reduce's root in its closure, once at each place of a run on 2 ranks.
    let rounds = if size == 2 {
        for _ in 0..3000 {
            learned_allreduce();
        }
        17
    } else {
        1
    };
    for _ in 0..rounds {
        if rank == 1 {
            let other = world.clone();
            let from_thread = std::thread::spawn(move || {
                other.allreduce(&[1f32; LEARNED], &mut [0f32; LEARNED], Op::Sum)
            })
            .join()
            .expect("thread");
            assert!(
                matches!(from_thread, Err(Error::WrongThread)),
                "{from_thread:?}"
            );
        }
        if size == 2 {
            learned_allreduce();
        }
    }
    for _ in 0..rounds {
        let mut sum = [0u32];
        world
            .reduce(&[1u32], &mut sum, op.clone(), 0)
            .expect("reduce whose closure calls oxmpi");
        if rank == 0 {
            assert_eq!(sum[0], size as u32);
        }
        if size == 2 {
            learned_allreduce();
        }
    }
    INSIDE.with(|c| c.borrow_mut().take());
}

/// Collectives as messages where the last rank passes longer vectors than the
/// others and every rank carries on after an error: each collective fails on at
/// least one rank, no rank waits forever, and later collectives stay in step.
fn disagreeing_counts_on_messages(world: &Comm) -> oxmpi::Result<()> {
    let (rank, size) = (world.rank(), world.size() as usize);
    let n = if rank + 1 == size as i32 { 3 } else { 2 };
    let mut noticed = 0u32;
    let mut note = |bit: u32, r: oxmpi::Result<()>| match r {
        Ok(()) => {}
        Err(Error::InvalidArgument(msg)) if msg.contains("do not agree") => noticed |= bit,
        Err(e) => panic!("rank {rank}: expected a disagreement error, got {e:?}"),
    };
    note(1, world.bcast(&mut vec![7u32; n], 0));
    note(2, world.allreduce(&vec![1u32; n], &mut vec![0; n], Op::Sum));
    note(4, world.allgather(&vec![1u16; n], &mut vec![0; n * size]));
    note(8, world.scan(&vec![1u32; n], &mut vec![0; n], Op::Sum));
    let mut all = [0u32];
    world.allreduce(&[noticed], &mut all, Op::BitOr)?;
    assert_eq!(all[0], 15, "some collective failed on no rank");
    let mut sum = [0u32];
    world.allreduce(&[1], &mut sum, Op::Sum)?;
    assert_eq!(sum[0], size as u32, "in step after the errors");
    Ok(())
}

/// Checks that the call `what`, which returned `r` here, failed on some rank with a
/// disagreement and that the ranks are still in step after it. A fatal error (the
/// counts put the ranks on both sides of a limit of the selection table, the area and
/// messages or two algorithms, and the job ends with the report; a rank may first see
/// a peer that left) is returned.
fn failed_somewhere_in_step(world: &Comm, r: oxmpi::Result<()>, what: &str) -> oxmpi::Result<()> {
    let noticed = match r {
        Ok(()) => 0u32,
        Err(Error::InvalidArgument(msg)) if msg.contains("agree") => 1,
        Err(e) if e.is_fatal() => return Err(e),
        Err(e) => panic!(
            "rank {}, {what}: expected a disagreement, got {e:?}",
            world.rank()
        ),
    };
    let mut any = [0u32];
    world.allreduce(&[noticed], &mut any, Op::BitOr)?;
    assert_eq!(any[0], 1, "{what} failed on no rank");
    let mut sum = [0u32; 3];
    world.allreduce(&[1; 3], &mut sum, Op::Sum)?;
    assert_eq!(
        sum,
        [world.size() as u32; 3],
        "{what}: in step after the error"
    );
    Ok(())
}

/// Collective `op` (allreduce, reduce or bcast) as messages by an algorithm that
/// splits the vector into a block per rank, which the test forces through
/// `OXMPI_COLL_<OP>`, where the last rank's count differs from the others': fewer
/// elements than ranks on one side, so some of its blocks are empty where the
/// others' are not, then the other way round, and once with long vectors (sent by
/// rendezvous) against one element. See [`disagree_each`].
fn disagreeing_split_blocks(world: &Comm, op: &str) -> oxmpi::Result<()> {
    let size = world.size() as usize;
    let cases = [
        (1, 2 * size + 1),
        (2 * size + 1, 1),
        (size.max(2) - 1, size + 1),
        (1, 100_000),
        (100_000, 1),
    ];
    disagree_each(world, op, &cases, size as i32 / 2)
}

/// An alltoallv whose counts disagree on one block: rank 0 sends rank 1 two elements
/// where rank 1's counts expect none (an empty block, which sends and expects no
/// message). Then rank 1 starts a barrier, which the others never join, and waits
/// for a message from rank 0, which waits for one from rank 1, as do the others:
/// rank 1 must find the message in the later collective, or the job hangs.
/// `nonblocking`: rank 1 starts the alltoallv and the barrier both and waits for
/// them, and rank 2 sends its block late, so that rank 1 likely sees rank 0's while
/// the alltoallv still runs, and must look at it again once it has ended.
fn dropped_alltoallv_block(world: &Comm, nonblocking: bool) -> oxmpi::Result<()> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let sends = vec![2usize; size];
    let mut recvs = vec![2usize; size];
    if rank == 1 {
        recvs[0] = 0;
    }
    let displs: Vec<usize> = (0..size).map(|j| 2 * j).collect();
    let out = vec![rank as u32; 2 * size];
    let mut got = vec![0u32; 2 * size];
    if nonblocking && rank == 1 {
        return oxmpi::scope(|s| -> oxmpi::Result<()> {
            let a = world.ialltoallv(s, &out, &sends, &displs, &mut got, &recvs, &displs)?;
            let b = world.ibarrier(s)?;
            oxmpi::wait_all(vec![a, b]).map(drop)
        });
    }
    if nonblocking && rank == 2 {
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    world.alltoallv(&out, &sends, &displs, &mut got, &recvs, &displs)?;
    if rank == 1 {
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let _barrier = world.ibarrier(s)?;
            world.recv(&mut [0u8], 0, 77).map(drop)
        })
    } else {
        world.recv(&mut [0u8], 1, 77).map(drop)
    }
}

/// Collective `op` (one with a single count, not a v-variant: see
/// `Schedule::skip_empty_transfers`) where the last rank's count is 0 and the others'
/// is not, then the other way round, short and long (sent by rendezvous). See
/// [`disagree_each`].
fn disagreeing_on_zero(world: &Comm, op: &str) -> oxmpi::Result<()> {
    disagree_each(world, op, &[(0, 3), (3, 0), (0, 100_000), (100_000, 0)], 0)
}

/// Collective `op`, rooted at `root`, once per case `(theirs, ours)`: the last rank's
/// count is `theirs`, the others' `ours`. Every rank carries on after an error: each
/// call fails on some rank, none waits for a message that never comes, and later
/// collectives stay in step, unless the counts put the ranks on different algorithms,
/// where the job ends with a report naming the disagreement.
fn disagree_each(world: &Comm, op: &str, cases: &[(usize, usize)], root: i32) -> oxmpi::Result<()> {
    let (rank, size) = (world.rank(), world.size() as usize);
    for (call, &(theirs, ours)) in cases.iter().enumerate() {
        let n = if rank as usize + 1 == size {
            theirs
        } else {
            ours
        };
        let r = match op {
            "bcast" => world.bcast(&mut vec![7u8; n], root),
            "reduce" => world.reduce(&vec![1u32; n], &mut vec![0; n], Op::Sum, root),
            "allreduce" => world.allreduce(&vec![1u32; n], &mut vec![0; n], Op::Sum),
            "scan" => world.scan(&vec![1u32; n], &mut vec![0; n], Op::Sum),
            "exscan" => world.exscan(&vec![1u32; n], &mut vec![0; n], Op::Sum),
            "gather" => world.gather(&vec![1u32; n], &mut vec![0; n * size], root),
            "scatter" => world.scatter(&vec![1u32; n * size], &mut vec![0; n], root),
            "allgather" => world.allgather(&vec![1u32; n], &mut vec![0; n * size]),
            "alltoall" => world.alltoall(&vec![1u32; n * size], &mut vec![0; n * size]),
            "reduce_scatter_block" => {
                world.reduce_scatter_block(&vec![1u32; n * size], &mut vec![0; n], Op::Sum)
            }
            // The counts arrays: every rank's own entry is its count, the others' are
            // `ours`, so the last rank's entry is where the ranks disagree.
            _ => {
                let mut counts = vec![ours; size];
                counts[rank as usize] = n;
                let displs: Vec<usize> = (0..size).map(|i| counts[..i].iter().sum()).collect();
                let total = counts.iter().sum();
                match op {
                    "gatherv" => {
                        world.gatherv(&vec![1u32; n], &mut vec![0; total], &counts, &displs, root)
                    }
                    "scatterv" => {
                        world.scatterv(&vec![1u32; total], &counts, &displs, &mut vec![0; n], root)
                    }
                    "allgatherv" => {
                        world.allgatherv(&vec![1u32; n], &mut vec![0; total], &counts, &displs)
                    }
                    "reduce_scatter" => {
                        world.reduce_scatter(&vec![1u32; total], &mut vec![0; n], &counts, Op::Sum)
                    }
                    _ => panic!("unknown collective {op}"),
                }
            }
        };
        failed_somewhere_in_step(
            world,
            r,
            &format!("{op} call {call} ({theirs} against {ours})"),
        )?;
    }
    Ok(())
}

/// Two ranks through hundreds of 64 KiB allreduces whose way rank 0 learns (its
/// decisions come in runs of calls once both ways are settled, which the ranks take
/// in step without meeting), every result checked; then a call on which they disagree
/// on the count, out of step with each other's runs: an error, or the job ends (where
/// the ranks land on either side of the area), never a wait.
fn disagreeing_counts_in_learned_allreduces(world: &Comm) -> oxmpi::Result<()> {
    let rank = world.rank();
    let n = 16_384;
    let mine = vec![rank as u32 + 1; n];
    let mut out = vec![0u32; n];
    for call in 0..400 {
        world.allreduce(&mine, &mut out, Op::Sum)?;
        assert!(out.iter().all(|&x| x == 3), "call {call}: {:?}", &out[..4]);
    }
    let m = if rank == 0 { n } else { 12_000 };
    match world.allreduce(&mine[..m], &mut out[..m], Op::Sum) {
        Ok(()) => panic!("rank {rank}: the ranks disagree on the count, yet no error"),
        Err(e) => println!("rank {rank}: {e}"),
    }
    Ok(())
}

/// Ranks through `calls` alltoalls of 64 KiB blocks, which they lend or pass in pieces
/// through the area as rank 0's runs of calls say (`coll/alltoall/shared_memory.rs`:
/// both ways while rank 0 learns, and calls its runs send in pieces without waiting
/// for the loans; the first run is 4 lent calls, the second 4 in pieces), every
/// result checked; then a call in which rank 0's blocks are `other` bytes: few enough
/// to go through the area without lending, or of the same size class as the others'
/// (all take their runs' next call), or of another (rank 0 lends to decide a run
/// where the others take theirs). Every rank gets the disagreement as an error, none
/// waits, and they stay in step.
fn disagreeing_counts_in_alltoall_runs(
    world: &Comm,
    other: usize,
    calls: usize,
) -> oxmpi::Result<()> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let block = 65_536;
    let send: Vec<u8> = (0..block * size)
        .map(|i| (rank * 7 + i / block + i % block % 13) as u8)
        .collect();
    let mut recv = vec![0u8; block * size];
    // The first rank whose block in `recv` is wrong, if any.
    let wrong = |recv: &[u8]| {
        recv.chunks(block).enumerate().position(|(r, got)| {
            !got.iter()
                .enumerate()
                .all(|(i, &v)| v == (r * 7 + rank + i % 13) as u8)
        })
    };
    for call in 0..calls {
        recv.fill(0);
        world.alltoall(&send, &mut recv)?;
        if let Some(r) = wrong(&recv) {
            panic!("rank {rank}, call {call}: block of rank {r} wrong");
        }
    }
    let mine = if rank == 0 { other } else { block };
    let (odd_send, mut odd_recv) = (vec![1u8; mine * size], vec![0u8; mine * size]);
    // As messages where the node allows no single copies: nothing is lent there.
    let disagree = |msg: &str| {
        msg.contains("the ranks disagree on the counts")
            || msg.contains("do not agree across ranks")
    };
    match world.alltoall(&odd_send, &mut odd_recv) {
        Err(Error::InvalidArgument(msg)) if disagree(&msg) => println!("rank {rank}: {msg}"),
        other => panic!("rank {rank}: expected a disagreement, got {other:?}"),
    }
    let mut sum = [0u32];
    world.allreduce(&[1], &mut sum, Op::Sum)?;
    assert_eq!(sum[0], size as u32, "in step after the errors");
    // The runs may now be out of step (ranks that took a call of theirs and ranks
    // that did not): each call fails on every rank or succeeds on every rank with
    // every block right, and once the longest run is spent (16 calls) all agree.
    let mut last_failed = None;
    for call in 0..48 {
        recv.fill(0);
        let ok = match world.alltoall(&send, &mut recv) {
            Ok(()) => wrong(&recv).is_none(),
            Err(Error::InvalidArgument(msg)) if msg.contains("the ranks disagree") => false,
            Err(e) => panic!("rank {rank}, call {call} after: {e}"),
        };
        let mut oks = [0u32];
        world.allreduce(&[u32::from(ok)], &mut oks, Op::Sum)?;
        assert!(
            oks[0] == 0 || oks[0] == size as u32,
            "call {call} after: {} of {size} ranks succeeded",
            oks[0]
        );
        if oks[0] == 0 {
            last_failed = Some(call);
        }
    }
    assert!(
        last_failed.is_none_or(|c| c < 24),
        "still out of step at call {last_failed:?} after"
    );
    Ok(())
}

/// Two ranks that call learned collectives (2-rank, beyond the table's limits) for
/// the first time with different counts, each of a size class it has no run of: both
/// meet to have rank 0 decide, and both get the disagreement as an error there,
/// where one decision for both had them run messages of different lengths. Then
/// they are still in step.
fn disagreeing_counts_in_first_learned_calls(world: &Comm) -> oxmpi::Result<()> {
    let rank = world.rank();
    let n = if rank == 0 { 16_384 } else { 12_000 };
    let calls: [(&str, oxmpi::Result<()>); 3] = [
        (
            "allreduce",
            world.allreduce(&vec![1u32; n], &mut vec![0; n], Op::Sum),
        ),
        ("bcast", world.bcast(&mut vec![1u32; n], 0)),
        (
            "alltoall",
            world.alltoall(&vec![1u32; 2 * n], &mut vec![0; 2 * n]),
        ),
    ];
    for (op, r) in calls {
        match r {
            Err(Error::InvalidArgument(msg))
                if msg.starts_with(op) && msg.contains("the ranks disagree on the counts") => {}
            other => panic!("rank {rank}, {op}: expected a disagreement, got {other:?}"),
        }
    }
    let mut sum = [0u32];
    world.allreduce(&[1], &mut sum, Op::Sum)?;
    assert_eq!(sum[0], 2, "in step after the errors");
    Ok(())
}

/// Collective `op` as messages where the last rank's count (20000 bytes) puts it on
/// another algorithm than the others' (12000 bytes; over TCP on 4 ranks: allreduce
/// by Rabenseifner against recursive doubling, allgather by the ring against Bruck),
/// then one the ranks agree on. Each would wait for messages the other never sends:
/// the job must end with a report naming both algorithms instead.
fn disagreeing_algorithms(world: &Comm, op: &str) -> oxmpi::Result<()> {
    let (rank, size) = (world.rank(), world.size() as usize);
    let n = if rank + 1 == size as i32 { 5000 } else { 3000 };
    let r = match op {
        "allreduce" => world.allreduce(&vec![1u32; n], &mut vec![0; n], Op::Sum),
        "allgather" => world.allgather(&vec![1u32; n], &mut vec![0; n * size]),
        _ => panic!("unknown collective {op}"),
    };
    println!("rank {rank}: {r:?}");
    let mut sum = [0u32];
    world.allreduce(&[1], &mut sum, Op::Sum)?;
    Ok(())
}

/// Collective `op` where rank 1's arguments fail their checks on it alone (it takes
/// no part), while the others wait in `op` for it. Rank 1 goes on to another
/// collective: where `op` never meets in the node's area (allgatherv, scan), a short
/// allreduce, which does; where `op` meets there (allreduce), a nonblocking barrier,
/// which goes as messages. Either way one side waits in the area for ranks that wait
/// for its messages: the job must end with a report naming both collectives.
fn one_rank_argument_error(world: &Comm, op: &str) -> oxmpi::Result<()> {
    let (rank, size) = (world.rank(), world.size() as usize);
    let bad = rank == 1;
    let r = match op {
        "allgatherv" => {
            let displs: Vec<usize> = (0..size).map(|i| if bad { 0 } else { i }).collect();
            world.allgatherv(&[1u8], &mut vec![0u8; size], &vec![1; size], &displs)
        }
        "scan" => world.scan(&[1u32], &mut vec![0; if bad { 2 } else { 1 }], Op::Sum),
        "allreduce" => world.allreduce(&[1u32], &mut vec![0; if bad { 2 } else { 1 }], Op::Sum),
        _ => panic!("unknown collective {op}"),
    };
    println!("rank {rank}: {op}: {r:?}");
    if op == "allreduce" {
        oxmpi::scope(|s| world.ibarrier(s)?.wait())?;
    } else {
        world.allreduce(&[1u32], &mut [0], Op::Sum)?;
    }
    Ok(())
}

/// Collective `op` as the last call before finalize, entered at staggered times
/// (`reversed`: the last rank first): ranks that finish early finalize while others
/// still wait in the same collective for a late one, which must not be taken for a
/// rank that left without doing its part.
fn staggered_last(world: &Comm, op: &str, reversed: bool) -> oxmpi::Result<()> {
    let (rank, size) = (world.rank(), world.size());
    let run = |n: usize| -> oxmpi::Result<()> {
        let mine = vec![rank as u32 + 1; n];
        let mut out = vec![0u32; n * size as usize];
        match op {
            "bcast" => world.bcast(&mut out[..n], 0),
            "allreduce" => world.allreduce(&mine, &mut out[..n], Op::Sum),
            "reduce" => world.reduce(&mine, &mut out[..n], Op::Sum, size - 1),
            "gather" => world.gather(&mine, &mut out, 0),
            "allgather" => world.allgather(&mine, &mut out),
            "alltoall" => world.alltoall(&out.clone(), &mut out),
            "barrier" => world.barrier(),
            _ => panic!("unknown collective {op}"),
        }
    };
    // Long then short: the short one (last) meets in the area where there is one.
    for n in [300_000, 2] {
        run(n)?;
        let late = if reversed { size - 1 - rank } else { rank };
        std::thread::sleep(std::time::Duration::from_millis(25 * late as u64));
        run(n)?;
    }
    Ok(())
}

/// Collective number 0 of a communicator made by `dup` and freed, then of the next
/// one given the same context ids, each with a rank late long enough for the others
/// to tell the launcher what they wait in: a barrier, then an allreduce. The words
/// about the first must not be taken for a disagreement in the second. Twice: the
/// second communicator a dup of the world's first child (made as the world's first
/// collective), then a dup of the world again.
fn late_in_reused_contexts(world: &Comm) -> oxmpi::Result<()> {
    let rank = world.rank();
    let late = |who| {
        if rank == who {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    let child = world.dup()?;
    child.barrier()?;
    for parent in [&child, world] {
        let first = world.dup()?;
        late(0);
        first.barrier()?;
        drop(first);
        let second = parent.dup()?;
        late(1);
        let mut sum = [0u32];
        second.allreduce(&[1u32], &mut sum, Op::Sum)?;
        assert_eq!(sum[0], world.size() as u32);
    }
    Ok(())
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("late_reused") {
        late_in_reused_contexts(&world)?;
        println!("ok late_reused");
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("disagree") {
        disagreeing_counts(&world);
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("disagree_learned") {
        disagreeing_counts_in_learned_allreduces(&world)?;
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("disagree_alltoall_runs") {
        let number = |i: usize| args.get(i).and_then(|a| a.parse().ok());
        let other = number(2).expect("rank 0's block size");
        let calls = number(3).expect("agreeing calls before");
        disagreeing_counts_in_alltoall_runs(&world, other, calls)?;
        println!("ok disagree_alltoall_runs");
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("disagree_learned_fresh") {
        disagreeing_counts_in_first_learned_calls(&world)?;
        println!("ok disagree_learned_fresh");
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("disagree_messages") {
        disagreeing_counts_on_messages(&world)?;
        if world.rank() == 0 {
            println!("ok disagree_messages");
        }
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("disagree_split") {
        disagreeing_split_blocks(&world, &args[2])?;
        if world.rank() == 0 {
            println!("ok disagree_split");
        }
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("alltoallv_dropped") {
        dropped_alltoallv_block(&world, args.get(2).is_some_and(|a| a == "nonblocking"))?;
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("disagree_zero") {
        disagreeing_on_zero(&world, &args[2])?;
        if world.rank() == 0 {
            println!("ok disagree_zero");
        }
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("disagree_algorithms") {
        disagreeing_algorithms(&world, &args[2])?;
        if world.rank() == 0 {
            println!("ok disagree_algorithms");
        }
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("one_rank_error") {
        one_rank_argument_error(&world, &args[2])?;
        return universe.finalize();
    }
    if args.get(1).map(String::as_str) == Some("stagger") {
        staggered_last(&world, &args[2], args.len() > 3)?;
        if world.rank() == 0 {
            println!("ok stagger");
        }
        return universe.finalize();
    }
    if let Err(e) = oxmpi::set_algorithm(Collective::Barrier, None) {
        // A bad OXMPI_COLL_* variable: report it as a user would see it.
        eprintln!("coll_mixed: {e}");
        std::process::exit(2);
    }
    overlap(&world);
    subcommunicators(&world);
    errors(&world);
    if world.rank() == 0 {
        println!("ok mixed");
    }
    universe.finalize()
}
