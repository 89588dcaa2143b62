//! Two ranks that both send first, so that over TCP each opens a connection before the
//! other's hello arrives; the higher rank then moves to the lower rank's connection
//! (src/transport/tcp). After that first exchange the higher rank sends 40 000 short
//! messages while the lower one does not call oxmpi for 300 ms; they arrive in order,
//! its first frames on its own connection, the rest on the lower rank's (which the
//! lower rank reads first: it has not even accepted the other connection then).
//! Rank 2k pairs with rank 2k+1; a last rank of an odd count waits in the barrier.

use oxmpi_testprogs::{check, partner};

const SHORT: u32 = 40_000;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let peer = partner(rank, size);
    if peer != rank {
        let lower = rank < peer;
        let mut got = [0u32];
        world.send(&[7u32], peer, 1)?;
        if lower {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        world.recv(&mut got, peer, 1)?;
        for i in 0..SHORT {
            if lower {
                world.recv(&mut got, peer, 2)?;
                check(&world, got == [i], || {
                    format!("message {i} arrived as {got:?}")
                });
            } else {
                world.send(&[i], peer, 2)?;
            }
        }
    }
    world.barrier()?;
    if rank == 0 {
        println!("crossing ok on {size} ranks");
    }
    universe.finalize()
}
