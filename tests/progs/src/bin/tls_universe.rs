//! A `Universe` kept in a thread-local, dropped when the thread's thread-locals are
//! destroyed: it finalizes as a drop anywhere else does. Mode `thread`: a spawned
//! thread initializes, works and exits; the main thread then finds the process
//! finalized (a second `init` is `Finalized`) and rank 0 prints "tls universe ok on N
//! ranks". Mode `main`: the universe lives in the main thread's thread-local and
//! finalizes at process exit; rank 0 prints the same line before it returns, and
//! oxrun's success says every rank finalized.
//!
//! The universe is stored before any work, so that oxmpi's own thread-locals (the
//! pools of collective temporaries) come to life after it and are destroyed before
//! it: finalize then runs without them (it used to panic there, aborting the rank).
//! Communicators kept in thread-locals on either side of it are dropped before and
//! after it.

use std::cell::RefCell;

use oxmpi::{Comm, Error, Universe};

thread_local! {
    static EARLY_COMM: RefCell<Option<Comm>> = const { RefCell::new(None) };
    static UNIVERSE: RefCell<Option<Universe>> = const { RefCell::new(None) };
    static LATE_COMM: RefCell<Option<Comm>> = const { RefCell::new(None) };
}

/// Collectives whose schedules take temporaries from oxmpi's per-thread pools (short
/// and long ones), blocking and nonblocking, and a ring exchange.
fn work(world: &Comm) -> oxmpi::Result<()> {
    let (rank, size) = (world.rank(), world.size());
    for n in [1usize, 100, 1000, 100_000] {
        let send = vec![rank as u64 + 1; n];
        let mut sum = vec![0u64; n];
        world.allreduce(&send, &mut sum, oxmpi::Op::Sum)?;
        let want = (size as u64) * (size as u64 + 1) / 2;
        assert!(sum.iter().all(|&x| x == want), "allreduce of {n}");
        oxmpi::scope(|s| world.iallreduce(s, &send, &mut sum, oxmpi::Op::Max)?.wait())?;
        assert!(sum.iter().all(|&x| x == size as u64), "iallreduce of {n}");
        let mut all = vec![0u64; n * size as usize];
        world.allgather(&send, &mut all)?;
        assert_eq!(
            all[n * (size as usize - 1)],
            size as u64,
            "allgather of {n}"
        );
    }
    oxmpi_testprogs::ring_exchange(world)
}

/// Initializes, keeps the universe (and two communicators) in this thread's
/// thread-locals, and works. Returns (rank, size).
fn start_and_work() -> oxmpi::Result<(i32, i32)> {
    EARLY_COMM.with(|_| {});
    let universe = oxmpi::init()?;
    let world = universe.world();
    UNIVERSE.with(|u| *u.borrow_mut() = Some(universe));
    EARLY_COMM.with(|c| world.dup().map(|d| *c.borrow_mut() = Some(d)))?;
    LATE_COMM.with(|c| world.dup().map(|d| *c.borrow_mut() = Some(d)))?;
    work(&world)?;
    Ok((world.rank(), world.size()))
}

fn main() -> oxmpi::Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "thread" => {
            let (rank, size) = std::thread::spawn(start_and_work)
                .join()
                .expect("the thread panicked")?;
            // The universe was finalized when the thread ended.
            match oxmpi::init() {
                Err(Error::Finalized) => {}
                other => panic!(
                    "init after the thread's universe was dropped: {:?}",
                    other.map(|_| ())
                ),
            }
            if rank == 0 {
                println!("tls universe ok on {size} ranks");
            }
        }
        "main" => {
            let (rank, size) = start_and_work()?;
            if rank == 0 {
                println!("tls universe ok on {size} ranks");
            }
        }
        other => panic!("unknown mode {other:?}: thread or main"),
    }
    Ok(())
}
