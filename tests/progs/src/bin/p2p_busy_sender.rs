//! A large message read while its sender is itself to read one of the receiver's: rank
//! 1 starts sending rank 0 a large message that rank 0 receives only later, and then
//! receives rank 0's, sent meanwhile; rank 0 then receives rank 1's. Over shared memory
//! the copy of rank 0's message is not shared with rank 0 (it has a message of rank
//! 1's to read, and helping would hold up both), unless `OXMPI_SHM_SPLIT` is set;
//! rank 1's message, read once rank 0 has nothing of its own out, is. Each rank prints
//! how it received its message (`oxmpi::large_receives`).
//!
//! Argument: the message length (default 262144 bytes, long enough to share).

use oxmpi_testprogs::{arg, check, pattern, seed};

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let rank = world.rank();
    assert_eq!(world.size(), 2, "p2p_busy_sender runs on 2 ranks");
    let len: usize = arg(1, "262144").parse().expect("a message length");
    let mine = pattern(seed(rank, 1 - rank, len, 0), len);
    let theirs = pattern(seed(1 - rank, rank, len, 0), len);
    let mut got = vec![0u8; len];
    let before = oxmpi::large_receives();
    if rank == 0 {
        world.send(&mine, 1, 0)?;
        world.recv(&mut got, 1, 1)?;
    } else {
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let out = world.isend(s, &mine, 0, 1)?;
            world.recv(&mut got, 0, 0)?;
            out.wait().map(drop)
        })?;
    }
    check(&world, got == theirs, || "wrong data".into());
    let after = oxmpi::large_receives();
    println!(
        "rank {rank}: single copy {}, split {}, permitted {}",
        after.single_copy - before.single_copy,
        after.split - before.split,
        after.single_copy_permitted
    );
    world.barrier()?;
    if rank == 0 {
        println!("busy_sender ok");
    }
    universe.finalize()
}
