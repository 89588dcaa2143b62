//! Mid-size messages whose receives are posted late: rank 0 sends rank 1 rounds of
//! messages, each of which arrives before its receive is posted (rank 1 answers each
//! once `iprobe` has found it, and receives a round only when all of it is there).
//! Over shared memory a receiver may ask for a size class to be offered for reading,
//! and it reads an offered message that finds no receive into its unexpected queue at
//! once; it must learn from those reads as from any other, and try the eager way in
//! bursts, so that the class is not offered for good. Rank 1 prints how many of each
//! round's messages it read (`oxmpi::large_receives`); other ranks only wait.
//!
//! Arguments: the message length (default 6000 bytes, mid-size under the default
//! eager limit), the rounds (default 40).

use oxmpi_testprogs::{arg, check, pattern, seed};

/// Messages per round, each with a tag of its own (its index).
const PER_ROUND: i32 = 8;
/// The tag of rank 1's answers.
const FOUND: i32 = 100;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let len: usize = arg(1, "6000").parse().expect("a message length");
    let rounds: u64 = arg(2, "40").parse().expect("a number of rounds");
    let mut reads = Vec::new();
    // Read so far; a message read after its round's answers counts in the next round.
    let mut read = oxmpi::large_receives().single_copy;
    for round in 0..rounds {
        let msgs: Vec<Vec<u8>> = (0..PER_ROUND)
            .map(|i| pattern(seed(0, 1, len, round * 1000 + i as u64), len))
            .collect();
        match rank {
            0 if size > 1 => oxmpi::scope(|s| -> oxmpi::Result<()> {
                let mut sends = Vec::new();
                for (tag, msg) in msgs.iter().enumerate() {
                    sends.push(world.isend(s, msg, 1, tag as i32)?);
                    world.recv(&mut [0u8; 0], 1, FOUND)?;
                }
                oxmpi::wait_all(sends)?;
                Ok(())
            })?,
            1 => {
                for tag in 0..PER_ROUND {
                    while world.iprobe(0, tag)?.is_none() {}
                    world.send(&[0u8; 0], 0, FOUND)?;
                }
                let now = oxmpi::large_receives().single_copy;
                reads.push(now - read);
                read = now;
                let mut got = vec![0u8; len];
                for (tag, want) in msgs.iter().enumerate() {
                    let status = world.recv(&mut got, 0, tag as i32)?;
                    check(&world, status.bytes == len && got == *want, || {
                        format!(
                            "round {round}, message {tag}: {} B, wrong data",
                            status.bytes
                        )
                    });
                }
            }
            _ => {}
        }
    }
    if rank == 1 {
        let reads: Vec<String> = reads.iter().map(u64::to_string).collect();
        println!("read per round of {PER_ROUND}: {}", reads.join(" "));
    }
    world.barrier()?;
    if rank == 0 {
        println!("late_receives ok on {size} ranks");
    }
    universe.finalize()
}
