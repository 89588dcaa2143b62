//! A token travels around all ranks: rank 0 starts it, every rank adds its rank
//! number and passes it on, and rank 0 checks the sum when it comes back.
//! `oxrun -n 4 target/release/examples/ring [LAPS]`

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let laps: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let (left, right) = ((rank + size - 1) % size, (rank + 1) % size);
    let mut token = [0u64];
    for _ in 0..laps {
        if rank == 0 {
            world.send(&token, right, 0)?;
            world.recv(&mut token, left, 0)?;
        } else {
            world.recv(&mut token, left, 0)?;
            token[0] += rank as u64;
            world.send(&token, right, 0)?;
        }
    }
    if rank == 0 {
        let expected = laps * (size as u64) * (size as u64 - 1) / 2;
        println!(
            "ring: token {} after {laps} laps of {size} ranks (expected {expected})",
            token[0]
        );
        if token[0] != expected {
            world.abort(1);
        }
    }
    universe.finalize()
}
