//! Requests freed without being waited for, in one long-lived scope (fire and
//! forget, `MPI_Request_free`): each rank sends itself 500 000 synchronous messages,
//! frees each request and receives the message, which completes it. Memory stays
//! flat: the engine forgets a freed request once it completes (a dropped one is kept,
//! about 62 bytes, until the scope ends). Then 2000 short scopes each drop 200
//! completed receive requests, more than a scope lists before it forgets finished
//! operations: each scope's end collects its own, so memory stays flat again.

use oxmpi_testprogs::{check, max_rss_kib};

const MESSAGES: u32 = 500_000;
/// Every message's content (a send's buffer outlives its scope).
const SEVEN: [u32; 1] = [7];

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let mut got = [0u32];
    let mut grown_kib = 0;
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        // Warm up: the tables reach their working size.
        for _ in 0..1000 {
            world.issend(s, &SEVEN, rank, 0)?.free();
            world.recv(&mut got, rank, 0)?;
        }
        let before = max_rss_kib();
        for i in 0..MESSAGES {
            world.issend(s, &SEVEN, rank, 0)?.free();
            world.recv(&mut got, rank, 0)?;
            check(&world, got == SEVEN, || {
                format!("message {i} arrived as {got:?}")
            });
        }
        grown_kib = max_rss_kib() - before;
        Ok(())
    })?;
    check(&world, grown_kib < 8 * 1024, || {
        format!("{MESSAGES} freed requests grew memory by {grown_kib} KiB")
    });
    let before = max_rss_kib();
    let mut slots = [0u32; 200];
    for scope in 0..2000 {
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            for (slot, i) in slots.iter_mut().zip(0..) {
                drop(world.irecv(s, std::slice::from_mut(slot), rank, 1)?);
                world.send(&[scope * 1000 + i], rank, 1)?;
            }
            Ok(())
        })?;
        check(
            &world,
            slots.iter().zip(0..).all(|(&x, i)| x == scope * 1000 + i),
            || format!("scope {scope} received {:?}", &slots[..4]),
        );
    }
    let grown_kib = max_rss_kib() - before;
    check(&world, grown_kib < 8 * 1024, || {
        format!("400 000 dropped requests grew memory by {grown_kib} KiB")
    });
    world.barrier()?;
    if rank == 0 {
        println!("freed ok on {size} ranks");
    }
    universe.finalize()
}
