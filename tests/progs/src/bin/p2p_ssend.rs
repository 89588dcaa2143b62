//! A synchronous send does not complete before the matching receive is posted,
//! checked by protocol, not timing: rank 1 confirms the message has arrived and sits
//! unmatched, rank 0 then tests its ssend repeatedly (it must still be pending), and
//! only then lets rank 1 post the receive. Eager and rendezvous sizes. Other ranks
//! (and a lone rank, with itself) run a plain ssend/recv.

use oxmpi_testprogs::{check, pattern};

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    for len in [8usize, 500_000] {
        let body = pattern(len as u64, len);
        if size >= 2 && rank == 0 {
            oxmpi::scope(|s| -> oxmpi::Result<()> {
                let mut req = world.issend(s, &body, 1, 1)?;
                let mut arrived = [0u8];
                world.recv(&mut arrived, 1, 2)?; // rank 1 has seen our message, unmatched
                for _ in 0..1000 {
                    check(&world, req.test()?.is_none(), || {
                        format!("ssend of {len} completed before a receive")
                    });
                }
                world.send(&[1u8], 1, 3)?; // now post it
                req.wait()?;
                Ok(())
            })?;
        } else if size >= 2 && rank == 1 {
            while world.iprobe(0, 1)?.is_none() {}
            world.send(&[1u8], 0, 2)?;
            let mut go = [0u8];
            world.recv(&mut go, 0, 3)?;
            let mut got = vec![0u8; len];
            world.recv(&mut got, 0, 1)?;
            check(&world, got == body, || "ssend content".into());
        } else if size == 1 {
            oxmpi::scope(|s| -> oxmpi::Result<()> {
                let mut req = world.issend(s, &body, 0, 1)?;
                for _ in 0..100 {
                    check(&world, req.test()?.is_none(), || {
                        "self ssend completed early".into()
                    });
                }
                let mut got = vec![0u8; len];
                world.recv(&mut got, 0, 1)?;
                req.wait()?;
                check(&world, got == body, || "self ssend content".into());
                Ok(())
            })?;
        }
    }
    // Everyone: a blocking ssend ring (matched by a posted nonblocking receive).
    let (right, left) = ((rank + 1) % size, (rank + size - 1) % size);
    let mut got = [-1i32];
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let r = world.irecv(s, &mut got, left, 7)?;
        world.ssend(&[rank], right, 7)?;
        r.wait()?;
        Ok(())
    })?;
    check(&world, got[0] == left, || "ssend ring".into());
    if rank == 0 {
        println!("ssend ok on {size} ranks");
    }
    universe.finalize()
}
