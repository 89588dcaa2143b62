//! Blocking receives, which take a plain eager message off the ring themselves where
//! they can (`src/engine/blocking_recv.rs`), and every way they hand over to the usual
//! path: a message for another receive at the ring's head, a synchronous send, a
//! rendezvous, payloads that wrap around the ring's end (with tiny rings), wildcards,
//! truncation. Rank 2k talks to rank 2k+1; with an odd rank count the last rank talks
//! to itself (a message to itself keeps the short way off).

use oxmpi::{ANY_SOURCE, ANY_TAG, Error};
use oxmpi_testprogs::{check, partner, pattern};

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let peer = partner(rank, size);
    let first = rank <= peer;

    // 1. Ping-pong of every size from 0 to 700 bytes: each answer is taken off the
    //    ring, whether it is there already or arrives while the receiver watches;
    //    with tiny rings some wrap around the ring's end.
    for len in 0..=700usize {
        let msg = pattern(len as u64, len);
        let mut got = vec![0u8; len];
        if first {
            world.send(&msg, peer, 1)?;
            let st = world.recv(&mut got, peer, 1)?;
            check(&world, st.bytes == len && got == msg, || {
                format!("ping-pong of {len} bytes came back as {} bytes", st.bytes)
            });
        } else {
            let st = world.recv(&mut got, peer, 1)?;
            check(&world, st.bytes == len && got == msg, || {
                format!("ping of {len} bytes arrived as {} bytes", st.bytes)
            });
            world.send(&got, peer, 1)?;
        }
    }

    // 2. The head of the ring holds a message for a later receive: tag 2 is asked
    //    for first, tag 3 then comes from the unexpected queue.
    world.barrier()?;
    if first {
        world.send(&[3u32; 3], peer, 3)?;
        world.send(&[2u32; 2], peer, 2)?;
    }
    if !first || peer == rank {
        let mut two = [0u32; 2];
        let mut three = [0u32; 3];
        world.recv(&mut two, peer, 2)?;
        world.recv(&mut three, peer, 3)?;
        check(&world, two == [2; 2] && three == [3; 3], || {
            format!("out-of-order tags: {two:?} {three:?}")
        });
    }

    // 3. A synchronous send, a rendezvous and a plain message, in that order, received
    //    by blocking receives: the first two go the usual way.
    world.barrier()?;
    let big = pattern(99, 300_000);
    if first {
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let a = world.issend(s, &[11u64], peer, 4)?;
            let b = world.isend(s, &big, peer, 4)?;
            let c = world.isend(s, &[13u64], peer, 4)?;
            if peer == rank {
                receive_mixed(&world, peer, &big)?;
            }
            oxmpi::wait_all(vec![a, b, c]).map(drop)
        })?;
    } else {
        receive_mixed(&world, peer, &big)?;
    }

    // 4. Wildcards keep the sender's order.
    world.barrier()?;
    if first {
        for tag in 5..8 {
            world.send(&[tag], peer, tag)?;
        }
    }
    if !first || peer == rank {
        for tag in 5..8 {
            let mut got = [0i32];
            let st = world.recv(&mut got, ANY_SOURCE, ANY_TAG)?;
            check(
                &world,
                got == [tag] && st.tag == tag && st.source == peer,
                || {
                    format!(
                        "wildcard receive {tag} got {got:?} from {} tag {}",
                        st.source, st.tag
                    )
                },
            );
        }
    }

    // 5. A message too long for the buffer is consumed and reported; the next arrives.
    world.barrier()?;
    if first {
        world.send(&pattern(5, 100), peer, 9)?;
        world.send(&[42u8; 8], peer, 9)?;
    }
    if !first || peer == rank {
        let mut small = [0xAAu8; 10];
        match world.recv(&mut small, peer, 9) {
            Err(Error::Truncated {
                message_bytes: 100,
                buffer_bytes: 10,
                ..
            }) => {}
            other => check(&world, false, || {
                format!("expected truncation, got {other:?}")
            }),
        }
        check(&world, small == [0xAA; 10], || {
            "truncation wrote the buffer".into()
        });
        let mut next = [0u8; 8];
        world.recv(&mut next, peer, 9)?;
        check(&world, next == [42; 8], || {
            format!("after truncation got {next:?}")
        });
    }

    world.barrier()?;
    if rank == 0 {
        println!("blocking_recv ok on {size} ranks");
    }
    universe.finalize()
}

/// Receives the synchronous, the rendezvous and the plain message of step 3 in order.
fn receive_mixed(world: &oxmpi::Comm, peer: i32, big: &[u8]) -> oxmpi::Result<()> {
    let mut sync = [0u64];
    world.recv(&mut sync, peer, 4)?;
    let mut large = vec![0u8; big.len()];
    world.recv(&mut large, peer, 4)?;
    let mut plain = [0u64];
    world.recv(&mut plain, peer, 4)?;
    check(world, sync == [11] && large == big && plain == [13], || {
        format!(
            "mixed protocols arrived as {sync:?}, {} bytes, {plain:?}",
            large.len()
        )
    });
    Ok(())
}
