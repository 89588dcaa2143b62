//! Ordering: 10 000 same-tag messages arrive in the order sent, across eager and
//! rendezvous sizes, and mid-size ones as their way changes; messages with different
//! tags are matched out of order.
//! Rank 2k sends to rank 2k+1; with an odd rank count the last rank talks to itself.

use oxmpi::ANY_TAG;
use oxmpi_testprogs::{check, partner, pattern};

const COUNT: u64 = 10_000;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let peer = partner(rank, size);
    // The lower of a pair sends; a rank paired with itself does both.
    let (sender, receiver) = (rank <= peer, rank >= peer);

    // 1. Same tag, in order: small messages carrying their sequence number.
    let seqs: Vec<[u64; 1]> = (0..COUNT).map(|i| [i]).collect();
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let mut sends = Vec::new();
        if sender {
            for m in &seqs {
                sends.push(world.isend(s, m, peer, 5)?);
            }
        }
        if receiver {
            for i in 0..COUNT {
                let mut got = [u64::MAX];
                world.recv(&mut got, peer, 5)?;
                check(&world, got[0] == i, || {
                    format!("message {i} arrived as {}", got[0])
                });
            }
        }
        oxmpi::wait_all(sends)?;
        Ok(())
    })?;

    // 2. Same tag, mixed protocols: small and large alternate and must not overtake.
    let sizes: Vec<usize> = (0..40)
        .map(|i| if i % 3 == 0 { 300_000 } else { 8 + i })
        .collect();
    let bodies: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| pattern(i as u64, n))
        .collect();
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let mut sends = Vec::new();
        if sender {
            for b in &bodies {
                sends.push(world.isend(s, b, peer, 6)?);
            }
        }
        if receiver {
            for (i, b) in bodies.iter().enumerate() {
                let (got, st) = world.recv_vec::<u8>(peer, 6)?;
                check(&world, got == *b && st.bytes == b.len(), || {
                    format!("mixed message {i} out of order")
                });
            }
        }
        oxmpi::wait_all(sends)?;
        Ok(())
    })?;

    // 3. Mid-size messages (4-8 KiB, two size classes), whose way a receiver with a
    // core of its own learns: its first three of a class come eagerly, the next ones
    // offered for reading until two reads are timed, then either way with bursts of the
    // other. Received in the order sent, some into receives posted ahead, some taken
    // as they come.
    let mids: Vec<Vec<u8>> = (0..600u64)
        .map(|i| pattern(1000 + i, 4097 + (i as usize * 977) % 4096))
        .collect();
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let mut sends = Vec::new();
        if sender {
            for m in &mids {
                sends.push(world.isend(s, m, peer, 7)?);
            }
        }
        if receiver {
            for (batch, group) in mids.chunks(10).enumerate() {
                let mut got: Vec<Vec<u8>> = group.iter().map(|m| vec![0u8; m.len()]).collect();
                if batch % 2 == 0 {
                    for (m, g) in group.iter().zip(&mut got) {
                        let st = world.recv(g, peer, 7)?;
                        check(&world, st.bytes == m.len(), || "mid-size length".into());
                    }
                } else {
                    oxmpi::scope(|r| {
                        let recvs = got
                            .iter_mut()
                            .map(|g| world.irecv(r, g, peer, 7))
                            .collect::<oxmpi::Result<Vec<_>>>()?;
                        oxmpi::wait_all(recvs).map(drop)
                    })?;
                }
                for (i, (m, g)) in group.iter().zip(&got).enumerate() {
                    check(&world, m == g, || {
                        format!("mid-size message {} out of order", batch * 10 + i)
                    });
                }
            }
        }
        oxmpi::wait_all(sends)?;
        Ok(())
    })?;

    // 4. Different tags matched out of order (eager and rendezvous sizes).
    for len in [16usize, 200_000] {
        let msgs: Vec<Vec<u8>> = (1..=10).map(|t| pattern(100 + t, len)).collect();
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let mut sends = Vec::new();
            if sender {
                for (t, m) in msgs.iter().enumerate() {
                    sends.push(world.isend(s, m, peer, t as i32 + 1)?);
                }
            }
            if receiver {
                for t in (1..=10).rev() {
                    let mut got = vec![0u8; len];
                    let st = world.recv(&mut got, peer, t)?;
                    check(&world, st.tag == t && got == msgs[t as usize - 1], || {
                        format!("tag {t} ({len} bytes) matched the wrong message")
                    });
                }
            }
            oxmpi::wait_all(sends)?;
            Ok(())
        })?;
    }
    // Nothing left over (the senders send nothing after the last round).
    if receiver {
        check(&world, world.iprobe(peer, ANY_TAG)?.is_none(), || {
            "stray message".into()
        });
    }
    if rank == 0 {
        println!("order ok on {size} ranks");
    }
    universe.finalize()
}
