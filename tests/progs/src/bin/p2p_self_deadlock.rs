//! A blocking call that only the calling rank itself could end fails as a deadlock
//! instead of waiting forever (oxmpi is funneled: nothing else can post the send or
//! receive it waits for): a receive and a probe for a message from itself that it
//! never sent, a send to itself too large to buffer and a synchronous one, with no
//! receive posted, and a receive from any source on a communicator of this rank
//! alone. A failed send leaves nothing behind that a later receive could match, and
//! messages to itself still work afterwards. Each rank on its own.

use oxmpi::Error;
use oxmpi_testprogs::{check, pattern};

fn deadlock<T: std::fmt::Debug>(world: &oxmpi::Comm, r: oxmpi::Result<T>, what: &str) {
    check(world, matches!(r, Err(Error::Deadlock(_))), || {
        format!("{what}: expected a deadlock error, got {r:?}")
    });
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let mut buf = vec![0u8; 1 << 20];
    deadlock(
        &world,
        world.recv(&mut buf[..8], rank, 1),
        "receive from itself",
    );
    deadlock(&world, world.probe(rank, 1), "probe for itself");
    let big = pattern(3, 1 << 20);
    deadlock(&world, world.send(&big, rank, 2), "1 MiB send to itself");
    deadlock(
        &world,
        world.ssend(&big[..8], rank, 3),
        "synchronous send to itself",
    );
    // The failed sends are gone: nothing matches their tags.
    check(&world, world.iprobe(rank, 2)?.is_none(), || {
        "a failed send left a message".into()
    });
    check(&world, world.iprobe(rank, 3)?.is_none(), || {
        "a failed ssend left a message".into()
    });
    let alone = world.split(rank, 0)?.expect("every rank has a color");
    deadlock(
        &world,
        alone.recv(&mut buf[..8], oxmpi::ANY_SOURCE, 4),
        "receive from any source, alone",
    );
    // Messages to itself with the receive posted first still work, at any size.
    let mut back = vec![0u8; big.len()];
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let r = world.irecv(s, &mut back, rank, 5)?;
        world.send(&big, rank, 5)?;
        r.wait().map(drop)
    })?;
    check(&world, back == big, || {
        "a message to itself came back wrong".into()
    });
    world.barrier()?;
    if rank == 0 {
        println!("self ok on {size} ranks");
    }
    universe.finalize()
}
