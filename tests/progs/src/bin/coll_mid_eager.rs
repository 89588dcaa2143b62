//! Collectives' mid-size messages go eagerly whatever the receiver asks: rank 0 sends
//! rank 1 a mid-size message by point to point, then the two run an alltoall and a
//! scatter of blocks of the same size (which 2 ranks run as messages), many times.
//! Over shared memory rank 1 learns how point-to-point messages of that size should
//! come, and asks for them to be offered for reading part of the time (always while
//! it tries that way); a collective's message sent then must still come eagerly.
//! Rank 1 prints how many of each kind it read (`oxmpi::large_receives`).
//!
//! Arguments: the block length (default 8192 bytes, mid-size under the default eager
//! limit), the rounds (default 300).

use oxmpi_testprogs::{arg, check, pattern, seed};

/// The tag of rank 1's word that rank 0 may send the next round's message.
const GO: i32 = 1;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    assert_eq!(size, 2, "coll_mid_eager runs on 2 ranks");
    let len: usize = arg(1, "8192").parse().expect("a block length");
    let rounds: u64 = arg(2, "300").parse().expect("a number of rounds");
    let (mut p2p_reads, mut coll_reads) = (0, 0);
    let reads = || oxmpi::large_receives().single_copy;
    let mut got = vec![0u8; 2 * len];
    if rank == 1 {
        world.send(&[0u8; 0], 0, GO)?;
    }
    for round in 0..rounds {
        let msg = pattern(seed(0, 1, len, round), len);
        let before = reads();
        if rank == 0 {
            // Sent once rank 1 has counted the last round's reads: an offer that came
            // during its collectives would be read there, into its unexpected queue.
            world.recv(&mut [0u8; 0], 1, GO)?;
            world.send(&msg, 1, 0)?;
        } else {
            world.recv(&mut got[..len], 0, 0)?;
            check(&world, got[..len] == msg, || {
                format!("round {round}: message")
            });
        }
        let between = reads();
        // Every rank sends the same blocks: block `r` to rank `r`.
        let send: Vec<u8> = [msg.clone(), pattern(seed(1, 0, len, round), len)].concat();
        let mine = &send[rank as usize * len..][..len];
        world.alltoall(&send, &mut got)?;
        check(&world, got.chunks(len).all(|b| b == mine), || {
            format!("round {round}: alltoall")
        });
        // Only the root's send buffer is read.
        world.scatter(&send, &mut got[..len], 0)?;
        check(&world, got[..len] == *mine, || {
            format!("round {round}: scatter")
        });
        p2p_reads += between - before;
        coll_reads += reads() - between;
        if rank == 1 {
            world.send(&[0u8; 0], 0, GO)?;
        }
    }
    if rank == 1 {
        println!("point-to-point reads {p2p_reads}, collectives' reads {coll_reads}");
    }
    world.barrier()?;
    if rank == 0 {
        println!("coll_mid_eager ok");
    }
    universe.finalize()
}
