//! Over TCP, rank 0 first takes a message from every rank from 3 on, so that it holds
//! more connections than it reads on every progress call (src/transport/tcp,
//! `DIRECT_READS`). Then ranks 0 and 1 both send to each other at a moment rank 2
//! names, so that each opens a connection before the other's hello arrives; rank 1
//! moves to rank 0's connection and sends a backlog of short messages while rank 0
//! does not call oxmpi for 300 ms. Rank 0 reads its own connection first, where the
//! backlog's later frames wait until the earlier ones, on rank 1's connection, are
//! read: the waiting ones must be read again then. Needs 4 ranks or more.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oxmpi_testprogs::check;

const BACKLOG: u32 = 1100;

fn now_ns() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.expect("a clock after 1970").as_nanos() as u64
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    assert!(size >= 4, "needs 4 ranks or more");
    let mut word = [0u64];
    match rank {
        0 => {
            world.recv(&mut word, 2, 4)?;
            for other in 3..size {
                world.recv(&mut [0u64], other, 3)?;
            }
        }
        1 => drop(world.recv(&mut word, 2, 4)?),
        2 => {
            // The same clock for every rank: they all run on this machine.
            word = [now_ns() + 1_000_000_000];
            world.send(&word, 1, 4)?;
            world.send(&word, 0, 4)?;
        }
        _ => world.send(&[rank as u64], 0, 3)?,
    }
    if rank < 2 {
        let peer = 1 - rank;
        std::thread::sleep(Duration::from_nanos(word[0].saturating_sub(now_ns())));
        world.send(&[7u32], peer, 1)?;
        let mut got = [0u32];
        // Rank 1 gives rank 0's hello time to arrive, so that its backlog takes rank
        // 0's connection; rank 0 is away meanwhile, and longer.
        let away = if rank == 0 { 500 } else { 100 };
        std::thread::sleep(Duration::from_millis(away));
        world.recv(&mut got, peer, 1)?;
        for i in 0..BACKLOG {
            if rank == 0 {
                world.recv(&mut got, 1, 2)?;
                check(&world, got == [i], || {
                    format!("message {i} arrived as {got:?}")
                });
            } else {
                world.send(&[i], 0, 2)?;
            }
        }
    }
    world.barrier()?;
    if rank == 0 {
        println!("crowded ok on {size} ranks");
    }
    universe.finalize()
}
