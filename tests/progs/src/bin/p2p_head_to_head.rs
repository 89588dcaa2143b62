//! Head-to-head blocking sends: both ranks of a pair send, then receive. MPI calls
//! the exchange unsafe, yet it works wherever messages go eagerly, and programs rely
//! on that: a send of at most the eager limit must complete without its receive
//! posted, whichever way its data travels (over shared memory a receiver may ask for
//! mid-size messages to be offered for reading, and the answer changes as it learns).
//! Each size runs many rounds so that such a change happens within it.
//! Rank 2k pairs with rank 2k+1; with an odd rank count the last rank sends to itself.

use oxmpi_testprogs::{check, partner, pattern, seed};

/// Sizes up to the smallest default eager limit (8 KiB over shared memory), around
/// the 4 KiB where mid sizes begin, then the default limit of the job's transport and
/// one byte less ([`default_limit`]); those above the eager limit the environment
/// sets (`OXMPI_EAGER_LIMIT`, or half of `OXMPI_SHM_RING_KB`'s ring) are left out:
/// beyond it such an exchange waits for ever, as MPI's would.
const SIZES: [usize; 9] = [0, 1, 100, 4096, 4097, 5000, 6000, 7777, 8192];

/// The default eager limit of the job's ranks (README): over TCP everywhere 64 KiB
/// less a frame header, else shared memory's, 32 KiB on an oversubscribed node and
/// 8 KiB otherwise (pairs on different simulated nodes go by TCP, whose limit is
/// higher).
fn default_limit() -> usize {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("OXMPI_TRANSPORT") == "tcp" {
        64 * 1024 - 40
    } else if var("OXMPI_OVERSUBSCRIBED") == "1" {
        32 * 1024
    } else {
        8 * 1024
    }
}
const ROUNDS: u64 = 100;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let peer = partner(rank, size);
    let env = |var: &str| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let limit = env("OXMPI_EAGER_LIMIT")
        .unwrap_or(usize::MAX)
        .min(env("OXMPI_SHM_RING_KB").map_or(usize::MAX, |kb| kb * 1024 / 2));
    let mut got = Vec::new();
    let at_limit = [default_limit() - 1, default_limit()];
    for len in SIZES
        .into_iter()
        .chain(at_limit)
        .filter(|&len| len <= limit)
    {
        for round in 0..ROUNDS {
            let out = pattern(seed(rank, peer, len, round), len);
            world.send(&out, peer, 3)?;
            got.resize(len, 0);
            let status = world.recv(&mut got, peer, 3)?;
            let want = pattern(seed(peer, rank, len, round), len);
            check(&world, status.bytes == len && got == want, || {
                format!(
                    "round {round} of {len} B from rank {peer}: {} B, wrong data",
                    status.bytes
                )
            });
        }
    }
    world.barrier()?;
    if rank == 0 {
        println!("head_to_head ok on {size} ranks");
    }
    Ok(())
}
