//! A blocking call that only the calling rank itself could end fails as a deadlock
//! instead of waiting forever (oxmpi is funneled: nothing else can post the send or
//! receive it waits for): a receive and a probe for a message from itself that it
//! never sent, a send to itself too large to buffer and a synchronous one, with no
//! receive posted, and a receive from any source on a communicator of this rank
//! alone. A failed send leaves nothing behind that a later receive could match, and
//! messages to itself still work afterwards, with the eager credit failed sends
//! spent given back. `wait_any` and `wait_some` fail the same way when every request
//! they wait for is such a one, and wait while one waits for a peer.

use oxmpi::Error;
use oxmpi_testprogs::{check, partner, pattern};

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
    // Thousands of failed synchronous sends to itself give back the credit their
    // messages spent: a short send to itself, received after it, still goes eagerly.
    // (2500 of 60000 bytes: more than the 64 MiB all peers' credit adds up to.)
    for i in 0..2500 {
        deadlock(
            &world,
            world.ssend(&big[..60_000], rank, 6),
            &format!("synchronous send {i} to itself"),
        );
    }
    world.send(&big[..60_000], rank, 7)?;
    world.recv(&mut buf[..60_000], rank, 7)?;
    // wait_any over receives only this rank could satisfy fails as wait does...
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let (first, second) = buf.split_at_mut(8);
        let mut reqs = [
            Some(world.irecv(s, first, rank, 8)?),
            Some(world.irecv(s, &mut second[..8], rank, 9)?),
        ];
        deadlock(&world, oxmpi::wait_any(&mut reqs), "wait_any for itself");
        deadlock(&world, oxmpi::wait_some(&mut reqs), "wait_some for itself");
        Ok(())
    })?;
    // ...but not while one of them waits for a peer, which sends after a pause.
    let peer = partner(rank, size);
    if peer != rank {
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let (first, second) = buf.split_at_mut(8);
            let mut reqs = [
                Some(world.irecv(s, first, rank, 10)?),
                Some(world.irecv(s, &mut second[..8], peer, 10)?),
            ];
            std::thread::sleep(std::time::Duration::from_millis(20));
            world.send(&big[..8], peer, 10)?;
            let got = oxmpi::wait_any(&mut reqs)?;
            check(&world, got.is_some_and(|(i, _)| i == 1), || {
                format!("wait_any beside a peer's message: {got:?}")
            });
            deadlock(
                &world,
                oxmpi::wait_any(&mut reqs),
                "the one left, for itself",
            );
            Ok(())
        })?;
    }
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
