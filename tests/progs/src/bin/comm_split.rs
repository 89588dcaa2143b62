//! dup and split: a duplicate keeps ranks but has its own channel (a message on one
//! never matches a receive on the other); split by parity with reversed keys reverses
//! the rank order inside each part; undefined color gets no communicator; nested
//! splits and many communicators at once work, and ids come back from communicators
//! dropped on other threads; `split_shared` groups exactly the
//! ranks that oxrun put on this rank's node.

use oxmpi::{ANY_SOURCE, Color};
use oxmpi_testprogs::check;

/// A communicator freed with a synchronous send to this rank unreceived: nothing can
/// receive it any more, so it is dropped and its sender completes.
fn freed_with_a_message_unreceived(world: &oxmpi::Comm) -> oxmpi::Result<()> {
    let rank = world.rank();
    let old = world.dup()?;
    if rank == 1 {
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let r = old.issend(s, &[5u32], 0, 9)?;
            // Sent after it on the same pair of ranks: once rank 0 has this, it has the
            // synchronous send too.
            world.send(&[0u8], 0, 9)?;
            drop(old);
            r.wait()?;
            Ok(())
        })?;
    } else {
        if rank == 0 {
            world.recv(&mut [0u8], 1, 9)?;
        }
        drop(old);
    }
    world.barrier()
}

/// A communicator freed while a receive on it is pending: the receive completes on
/// it, and a communicator made after it (here among ranks 0 and 1, both of which
/// dropped it) does not get its context ids, whose receive would take its messages.
fn freed_with_a_receive_pending(world: &oxmpi::Comm) -> oxmpi::Result<()> {
    let rank = world.rank();
    let pair = world
        .split(if rank < 2 { 0 } else { 1 }, rank)?
        .expect("color");
    let old = world.dup()?;
    let mut late = [0u32];
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let pending = if rank == 0 {
            Some(old.irecv(s, &mut late, ANY_SOURCE, 0)?)
        } else {
            None
        };
        let old = if rank < 2 {
            drop(old);
            None
        } else {
            Some(old)
        };
        if rank < 2 {
            let new = pair.dup()?;
            if rank == 1 {
                new.send(&[222u32], 0, 0)?;
            } else {
                let mut got = [0u32];
                new.recv(&mut got, 1, 0)?;
                check(world, got == [222], || {
                    format!("the new communicator's receive got {got:?}")
                });
            }
        }
        world.barrier()?;
        if rank == 2 {
            old.expect("kept").send(&[111u32], 0, 0)?;
        }
        if let Some(r) = pending {
            r.wait()?;
        }
        Ok(())
    })?;
    check(world, rank != 0 || late == [111], || {
        format!("the freed communicator's receive got {late:?}")
    });
    Ok(())
}

/// Dups `world` until every context id is taken, checks that the dup after that
/// fails as it should, sends a message round on each communicator made, and drops
/// them all on another thread; returns how many were made.
fn live_dups(world: &oxmpi::Comm, round: u64) -> oxmpi::Result<usize> {
    let (rank, size) = (world.rank(), world.size());
    let (right, left) = ((rank + 1) % size, (rank + size - 1) % size);
    let mut comms = Vec::new();
    let refused = loop {
        match world.dup() {
            Ok(c) => comms.push(c),
            Err(e) => break e,
        }
    };
    check(
        world,
        matches!(refused, oxmpi::Error::TooManyCommunicators { limit: 4096 }),
        || format!("dup {} gave {refused:?}", comms.len()),
    );
    for (i, c) in comms.iter().enumerate() {
        c.send(&[i as u64 + round], right, 2)?;
    }
    for (i, c) in comms.iter().enumerate().rev() {
        let mut v = [0u64];
        c.recv(&mut v, left, 2)?;
        check(world, v[0] == i as u64 + round, || {
            format!("communicator {i} of round {round} got {}", v[0])
        });
    }
    let made = comms.len();
    std::thread::spawn(move || drop(comms))
        .join()
        .expect("dropping communicators on another thread");
    Ok(made)
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let (right, left) = ((rank + 1) % size, (rank + size - 1) % size);

    let dup = world.dup()?;
    check(&world, dup.rank() == rank && dup.size() == size, || {
        "dup changed ranks".into()
    });
    // Same tag, same peers, different communicators: each receive gets its own.
    world.send(&[1u32], right, 0)?;
    dup.send(&[2u32], right, 0)?;
    let mut a = [0u32];
    let mut b = [0u32];
    dup.recv(&mut b, left, 0)?;
    world.recv(&mut a, left, 0)?;
    check(&world, a == [1] && b == [2], || {
        format!("dup leaked messages: world got {a:?}, dup got {b:?}")
    });

    // Split by parity, keys reversed.
    let part = world
        .split(rank % 2, -rank)?
        .expect("every rank has a color");
    let members: Vec<i32> = (0..size).filter(|r| r % 2 == rank % 2).collect();
    let expected_rank = members.iter().rev().position(|&r| r == rank).unwrap() as i32;
    check(
        &world,
        part.size() == members.len() as i32 && part.rank() == expected_rank,
        || {
            format!(
                "split gave rank {} of {}, expected {expected_rank} of {}",
                part.rank(),
                part.size(),
                members.len()
            )
        },
    );
    // Talk inside the part: everyone sends its world rank to part rank 0.
    if part.rank() == 0 {
        let mut seen = vec![];
        for _ in 1..part.size() {
            let mut w = [0i32];
            let st = part.recv(&mut w, ANY_SOURCE, 5)?;
            check(&world, w[0] % 2 == rank % 2, || {
                format!("part got world rank {} from the other parity", w[0])
            });
            check(
                &world,
                members[members.len() - 1 - st.source as usize] == w[0],
                || "source numbering".into(),
            );
            seen.push(w[0]);
        }
        seen.sort();
        let mut others = members.clone();
        others.retain(|&r| r != rank);
        check(&world, seen == others, || {
            format!("part rank 0 saw {seen:?}")
        });
    } else {
        part.send(&[rank], 0, 5)?;
    }

    // Undefined color.
    let color = if rank == 0 {
        Color::Undefined
    } else {
        Color::Of(0)
    };
    let rest = world.split(color, rank)?;
    check(&world, rest.is_none() == (rank == 0), || {
        "undefined color".into()
    });
    if let Some(rest) = &rest {
        check(
            &world,
            rest.size() == size - 1 && rest.rank() == rank - 1,
            || "split without rank 0".into(),
        );
    }
    // Negative colors are refused, on every rank where one rank gives one (the others
    // would wait for it in the split otherwise), and nothing is left half done.
    check(&world, world.split(-4, 0).is_err(), || {
        "negative color accepted".into()
    });
    let bad = size - 1;
    let got = world.split(if rank == bad { -7 } else { 0 }, 0);
    let named = format!("rank {bad} gave color -7");
    check(
        &world,
        matches!(&got, Err(oxmpi::Error::InvalidArgument(m)) if m.contains(&named)),
        || format!("one rank's negative color: {got:?}"),
    );
    check(&world, world.dup()?.size() == size, || {
        "a split after a refused one".into()
    });

    // Many communicators alive at once, then dropped, then more: ids are reused.
    for round in 0..3 {
        let comms: Vec<_> = (0..20).map(|_| world.dup()).collect::<oxmpi::Result<_>>()?;
        for (i, c) in comms.iter().enumerate() {
            c.send(&[i as u64 + round], right, 1)?;
        }
        for (i, c) in comms.iter().enumerate().rev() {
            let mut v = [0u64];
            c.recv(&mut v, left, 1)?;
            check(&world, v[0] == i as u64 + round, || {
                format!("communicator {i} got {}", v[0])
            });
        }
    }
    // As many communicators alive as there are context ids: the next dup fails on
    // every rank. Dropped on another thread (`Comm` is `Send`), they give their ids
    // back, and the same number can be made again (each carries its own messages).
    let before = live_dups(&world, 0)?;
    check(&world, before > 4000, || {
        format!("only {before} communicators could be made")
    });
    let again = live_dups(&world, 1)?;
    check(&world, again == before, || {
        format!("{before} communicators made, then only {again}")
    });
    // The ranks of this node, as the launcher numbers nodes (OXMPI_NODE_ID), in
    // reverse order of world rank.
    let node: i32 = std::env::var("OXMPI_NODE_ID")
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("OXMPI_NODE_ID");
    let mut nodes = vec![0i32; size as usize];
    world.allgather(&[node], &mut nodes)?;
    let neighbours: Vec<i32> = (0..size).filter(|&r| nodes[r as usize] == node).collect();
    let local = world.split_shared(-rank)?;
    let expected_rank = neighbours.iter().rev().position(|&r| r == rank).unwrap() as i32;
    let mut seen = vec![0i32; local.size() as usize];
    local.allgather(&[rank], &mut seen)?;
    let mut reversed = neighbours.clone();
    reversed.reverse();
    check(
        &world,
        local.rank() == expected_rank && seen == reversed,
        || format!("split_shared on node {node} gave ranks {seen:?}, expected {reversed:?}"),
    );
    // A split of a split: the part's ranks of one parity, in the part's order.
    let quarter = part.split(part.rank() % 2, part.rank())?.expect("color");
    let part_members: Vec<i32> = members.iter().rev().copied().collect();
    let want: Vec<i32> = part_members
        .iter()
        .enumerate()
        .filter(|&(i, _)| i as i32 % 2 == part.rank() % 2)
        .map(|(_, &r)| r)
        .collect();
    let mut seen = vec![-1i32; quarter.size() as usize];
    quarter.allgather(&[rank], &mut seen)?;
    check(
        &world,
        seen == want && want[quarter.rank() as usize] == rank,
        || format!("nested split gave {seen:?}, expected {want:?}"),
    );
    if size >= 2 {
        freed_with_a_message_unreceived(&world)?;
    }
    if size >= 3 {
        freed_with_a_receive_pending(&world)?;
    }
    if rank == 0 {
        println!("split ok on {size} ranks");
    }
    universe.finalize()
}
