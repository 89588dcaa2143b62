//! Two threads of every rank call `oxmpi::init` at the same moment: exactly one gets
//! the universe (the other `AlreadyInitialized`, or `Finalized` if it came that
//! late), and the job then works as usual: a ring exchange and a barrier. Prints
//! "init race ok on N ranks" from rank 0.

use std::sync::{Arc, Barrier};

use oxmpi::Error;

/// Calls init once `start` lets it; on success runs the job's work and finalizes.
/// Returns whether this thread got the universe.
fn contender(start: &Barrier) -> oxmpi::Result<bool> {
    start.wait();
    let universe = match oxmpi::init() {
        Ok(u) => u,
        // The other thread is in init or holds the universe, or (it was quicker
        // still) has finalized it already.
        Err(Error::AlreadyInitialized | Error::Finalized) => return Ok(false),
        Err(e) => return Err(e),
    };
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    oxmpi_testprogs::ring_exchange(&world)?;
    if rank == 0 {
        println!("init race ok on {size} ranks");
    }
    universe.finalize()?;
    Ok(true)
}

fn main() -> oxmpi::Result<()> {
    let start = Arc::new(Barrier::new(2));
    let other = {
        let start = Arc::clone(&start);
        std::thread::spawn(move || contender(&start))
    };
    let mine = contender(&start)?;
    let theirs = other.join().expect("the other thread panicked")?;
    assert!(mine != theirs, "both or neither thread got the universe");
    Ok(())
}
