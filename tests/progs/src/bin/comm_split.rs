//! dup and split: a duplicate keeps ranks but has its own channel (a message on one
//! never matches a receive on the other); split by parity with reversed keys reverses
//! the rank order inside each part; undefined color gets no communicator; nested
//! splits and many communicators at once work; `split_shared` groups exactly the
//! ranks that oxrun put on this rank's node.

use oxmpi::{ANY_SOURCE, Color};
use oxmpi_testprogs::check;

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
    // Negative colors are refused.
    check(&world, world.split(-4, 0).is_err(), || {
        "negative color accepted".into()
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
    // A split of a split.
    let quarter = part.split(part.rank() % 2, part.rank())?.expect("color");
    check(&world, quarter.size() >= 1, || "nested split".into());
    if rank == 0 {
        println!("split ok on {size} ranks");
    }
    universe.finalize()
}
