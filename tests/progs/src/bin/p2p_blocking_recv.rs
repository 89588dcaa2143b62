//! Blocking receives, which take a plain eager message off the ring themselves where
//! they can (`src/engine/blocking_recv.rs`), and every way they hand over to the usual
//! path: a message for another receive at the ring's head, a synchronous send, a
//! rendezvous, payloads that wrap around the ring's end (with tiny rings), wildcards,
//! truncation; and offers of a single copy, which a blocking receive reads itself
//! where it can, and whose FIN a blocking send takes off the ring itself, also from
//! several senders to a wildcard receive. Rank 2k
//! talks to rank 2k+1; with an odd rank count the last rank talks to itself (a
//! message to itself keeps the short way off).

use oxmpi::{ANY_SOURCE, ANY_TAG, Error};
use oxmpi_testprogs::{check, partner, pattern, seed};

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

    // 6-9: messages offered for a single copy (rendezvous, and mid-size ones where
    //    the receiver asks), which a blocking receive reads itself where the offer is
    //    at the ring's head, and whose FIN a blocking send takes off the ring itself,
    //    leaving the answer behind it (`src/engine/blocking_send.rs`). A rank that
    //    talks to itself sits them out (a blocking send to itself never completes).
    world.barrier()?;
    if peer != rank {
        offers(&world, peer, first)?;
    }

    // 10. Every other rank sends rank 0 messages of every protocol, some synchronous,
    //     received with wildcards: each sender's come in its order whatever the
    //     others', and the answers rank 0 sends back now and then have their FINs
    //     arrive among the other senders' offers.
    world.barrier()?;
    many_to_one(&world)?;

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

/// How long a receiver of steps 7 and 8 leaves its ring alone before receiving.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// Steps 6-9 with `peer` (`first` starts each exchange).
fn offers(world: &oxmpi::Comm, peer: i32, first: bool) -> oxmpi::Result<()> {
    // 6. Ping-pong of mid-size and large messages, new contents every time, enough of
    //    each that the receivers' learners also stream some (their bursts).
    for len in [4097usize, 8192, 16_384, 65_536, 100_003, 127 * 1024] {
        for i in 0..100u64 {
            let msg = pattern(len as u64 * 1000 + i, len);
            let mut got = vec![0u8; len];
            if first {
                world.send(&msg, peer, 20)?;
                let st = world.recv(&mut got, peer, 20)?;
                check(world, st.bytes == len && got == msg, || {
                    format!(
                        "ping-pong {i} of {len} bytes came back as {} bytes",
                        st.bytes
                    )
                });
            } else {
                let st = world.recv(&mut got, ANY_SOURCE, ANY_TAG)?;
                check(
                    world,
                    st.bytes == len && st.source == peer && st.tag == 20 && got == msg,
                    || format!("ping {i} of {len} bytes arrived as {} bytes", st.bytes),
                );
                world.send(&got, peer, 20)?;
            }
        }
    }

    // 7. The offer at the head is for a later receive: tag 22 is asked for first. The
    //    receiver lets the offers arrive before it looks (a rank that progresses
    //    takes them into its unexpected queue; the order is right either way).
    let (a, b) = (pattern(21, 50_000), pattern(22, 60_000));
    if first {
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let x = world.isend(s, &a, peer, 21)?;
            let y = world.isend(s, &b, peer, 22)?;
            oxmpi::wait_all(vec![x, y]).map(drop)
        })?;
    } else {
        let (mut got_b, mut got_a) = (vec![0u8; b.len()], vec![0u8; a.len()]);
        std::thread::sleep(SETTLE);
        world.recv(&mut got_b, peer, 22)?;
        world.recv(&mut got_a, peer, 21)?;
        check(world, got_a == a && got_b == b, || {
            "offers out of tag order".into()
        });
    }

    // 8. An offer too long for the buffer (at the head, as in 7) is reported, writes
    //    nothing and completes its sender; the next offer arrives whole.
    let (long, next) = (pattern(23, 40_000), pattern(24, 30_000));
    if first {
        world.send(&long, peer, 23)?;
        world.send(&next, peer, 23)?;
    } else {
        let mut small = vec![0xAAu8; 20_000];
        std::thread::sleep(SETTLE);
        match world.recv(&mut small, peer, 23) {
            Err(Error::Truncated {
                message_bytes: 40_000,
                buffer_bytes: 20_000,
                ..
            }) => {}
            other => check(world, false, || {
                format!("expected truncation of an offer, got {other:?}")
            }),
        }
        check(world, small.iter().all(|&b| b == 0xAA), || {
            "a truncated offer wrote the buffer".into()
        });
        let mut got = vec![0u8; next.len()];
        world.recv(&mut got, peer, 23)?;
        check(world, got == next, || "the offer after a truncation".into());
    }

    // 9. A blocking send whose FIN comes after another message: the message waits in
    //    the unexpected queue for its receive.
    let big = pattern(25, 70_000);
    if first {
        world.send(&big, peer, 25)?;
        let mut small = [0u64; 4];
        world.recv(&mut small, peer, 26)?;
        check(world, small == [26; 4], || {
            format!("message before a FIN: {small:?}")
        });
    } else {
        let mut got = vec![0u8; big.len()];
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let x = world.isend(s, &[26u64; 4], peer, 26)?;
            world.recv(&mut got, peer, 25)?;
            x.wait().map(drop)
        })?;
        check(world, got == big, || "the send beside a message".into());
    }
    Ok(())
}

/// Sizes of step 10: eager, mid-size (offered where the receiver asks) and large.
const MANY_SIZES: [usize; 8] = [0, 8, 3000, 4097, 8192, 12_000, 33_000, 70_000];
/// Messages each sender sends rank 0 in step 10; every fourth is answered.
const MANY_ROUNDS: u64 = 24;

/// The size of message `i` of step 10 from `src` (the answer's: `src` 0).
fn many_size(src: i32, i: u64) -> usize {
    MANY_SIZES[((i + src as u64) % MANY_SIZES.len() as u64) as usize]
}

/// Step 10.
fn many_to_one(world: &oxmpi::Comm) -> oxmpi::Result<()> {
    let (rank, size) = (world.rank(), world.size());
    let mut buf = vec![0u8; 70_000];
    if rank == 0 {
        let mut next = vec![0u64; size as usize];
        for _ in 0..MANY_ROUNDS * (size as u64 - 1) {
            let st = world.recv(&mut buf, ANY_SOURCE, ANY_TAG)?;
            let src = st.source;
            let i = next[src as usize];
            next[src as usize] += 1;
            let len = many_size(src, i);
            let ok = st.bytes == len
                && st.tag == 30 + (i % 3) as i32
                && buf[..len] == pattern(seed(src, 0, len, i), len)[..];
            check(world, ok, || {
                format!(
                    "message {i} from {src} should be {len} B with tag {}, got {} B tag {}",
                    30 + i % 3,
                    st.bytes,
                    st.tag
                )
            });
            if i % 4 == 3 {
                let len = many_size(0, i / 4 + src as u64);
                world.send(&pattern(seed(0, src, len, i), len), src, 33)?;
            }
        }
    } else {
        for i in 0..MANY_ROUNDS {
            let len = many_size(rank, i);
            let msg = pattern(seed(rank, 0, len, i), len);
            let tag = 30 + (i % 3) as i32;
            if i % 5 == 2 {
                world.ssend(&msg, 0, tag)?;
            } else {
                world.send(&msg, 0, tag)?;
            }
            if i % 4 == 3 {
                let len = many_size(0, i / 4 + rank as u64);
                let st = world.recv(&mut buf, 0, 33)?;
                check(
                    world,
                    st.bytes == len && buf[..len] == pattern(seed(0, rank, len, i), len)[..],
                    || format!("answer {i} of {len} B came as {} B", st.bytes),
                );
            }
        }
    }
    Ok(())
}
