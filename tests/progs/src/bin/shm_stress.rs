//! Stress: every rank sends messages of random sizes (0 B to 4 MiB, mostly small) to
//! random peers, all with the same tag, over several rounds. Every rank derives the
//! whole plan from a shared seed, posts its receives in each sender's order, and
//! checks every byte, so a lost, duplicated, corrupted or reordered message fails.

use oxmpi_testprogs::{check, pattern};

const ROUNDS: u64 = 4;
const PER_RANK: usize = 24;

/// xorshift, seeded per (round, sender).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The messages `sender` sends in `round`: (destination, size).
fn plan(round: u64, sender: i32, size: i32) -> Vec<(i32, usize)> {
    let mut rng = Rng((round + 1) * 0x9e37_79b9 + sender as u64 * 7919 + 1);
    (0..PER_RANK)
        .map(|_| {
            let dest = (rng.next() % size as u64) as i32;
            let len = match rng.next() % 16 {
                0 => (rng.next() % (4 << 20)) as usize,
                1..=3 => (rng.next() % 300_000) as usize,
                4..=7 => (rng.next() % 20_000) as usize,
                _ => (rng.next() % 300) as usize,
            };
            (dest, len)
        })
        .collect()
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    for round in 0..ROUNDS {
        let mine: Vec<Vec<u8>> = plan(round, rank, size)
            .iter()
            .enumerate()
            .map(|(i, &(_, len))| pattern(round << 40 | (rank as u64) << 20 | i as u64, len))
            .collect();
        // What arrives here, in each sender's order.
        let mut expected = Vec::new();
        for s in 0..size {
            for (i, &(dest, len)) in plan(round, s, size).iter().enumerate() {
                if dest == rank {
                    expected.push((s, i, len));
                }
            }
        }
        let mut inboxes: Vec<Vec<u8>> =
            expected.iter().map(|&(_, _, len)| vec![0u8; len]).collect();
        oxmpi::scope(|sc| -> oxmpi::Result<()> {
            let mut reqs = Vec::new();
            for (buf, &(s, _, _)) in inboxes.iter_mut().zip(&expected) {
                reqs.push(world.irecv(sc, buf, s, 0)?);
            }
            for (buf, &(dest, _)) in mine.iter().zip(&plan(round, rank, size)) {
                reqs.push(world.isend(sc, buf, dest, 0)?);
            }
            oxmpi::wait_all(reqs)?;
            Ok(())
        })?;
        for (buf, &(s, i, len)) in inboxes.iter().zip(&expected) {
            check(
                &world,
                *buf == pattern(round << 40 | (s as u64) << 20 | i as u64, len),
                || {
                    format!(
                        "round {round}: message {i} from {s} ({len} bytes) lost, corrupted or reordered"
                    )
                },
            );
        }
        world.dup()?; // everyone finishes the round before the next starts
    }
    if rank == 0 {
        println!("stress ok on {size} ranks");
    }
    universe.finalize()
}
