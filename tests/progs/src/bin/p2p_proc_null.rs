//! `PROC_NULL` as a peer, as at the edges of a line of ranks that does not wrap
//! around: every kind of send to it and receive or probe from it completes at once,
//! moves nothing and leaves the buffer as it was; a receive's status says source
//! `PROC_NULL`, tag -1, 0 bytes. Shifts along the line carry the real messages
//! beside them (small and large), with `sendrecv`, with `sendrecv_replace` and with
//! nonblocking requests completed by `wait_all`. A bad tag is still an error.

use oxmpi::{Error, PROC_NULL, Status};
use oxmpi_testprogs::{check, pattern};

fn null_status(status: &Status) -> bool {
    (status.source, status.tag, status.bytes) == (PROC_NULL, -1, 0)
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let right = if rank + 1 < size { rank + 1 } else { PROC_NULL };
    let left = if rank > 0 { rank - 1 } else { PROC_NULL };

    // Alone with the null rank.
    world.send(&[1u8; 8], PROC_NULL, 3)?;
    world.ssend(&[1u8; 8], PROC_NULL, 3)?;
    let mut buf = [7u8; 8];
    let status = world.recv(&mut buf, PROC_NULL, 3)?;
    check(&world, null_status(&status) && buf == [7; 8], || {
        format!("recv from PROC_NULL: {status:?}, {buf:?}")
    });
    let status = world.recv(&mut buf, PROC_NULL, oxmpi::ANY_TAG)?;
    check(&world, null_status(&status), || format!("{status:?}"));
    let (v, status) = world.recv_vec::<u32>(PROC_NULL, 3)?;
    check(&world, v.is_empty() && null_status(&status), || {
        "recv_vec from PROC_NULL".into()
    });
    let status = world.probe(PROC_NULL, 3)?;
    check(&world, null_status(&status), || "probe".into());
    let status = world.iprobe(PROC_NULL, 3)?;
    check(&world, status.as_ref().is_some_and(null_status), || {
        "iprobe".into()
    });
    let bad = world.send(&[1u8], PROC_NULL, -5);
    check(
        &world,
        matches!(bad, Err(Error::InvalidTag { tag: -5 })),
        || format!("a bad tag to PROC_NULL: {bad:?}"),
    );
    let bad = world.recv(&mut buf, PROC_NULL, -5);
    check(
        &world,
        matches!(bad, Err(Error::InvalidTag { tag: -5 })),
        || format!("a bad tag from PROC_NULL: {bad:?}"),
    );

    // Shifts to the right, small and large (rendezvous) messages.
    for len in [4usize, 300_000] {
        let mine = pattern(rank as u64, len);
        let want = if rank > 0 {
            pattern(rank as u64 - 1, len)
        } else {
            vec![9u8; len]
        };
        let mut got = vec![9u8; len];
        let status = world.sendrecv(&mine, right, 1, &mut got, left, 1)?;
        check(&world, got == want, || format!("sendrecv of {len}"));
        check(&world, (rank == 0) == null_status(&status), || {
            format!("sendrecv status {status:?}")
        });

        let mut buf = mine.clone();
        let status = world.sendrecv_replace(&mut buf, right, 2, left, 2)?;
        let want_replaced = if rank > 0 { want.clone() } else { mine.clone() };
        check(&world, buf == want_replaced, || {
            format!("sendrecv_replace of {len}")
        });
        check(&world, (rank == 0) == null_status(&status), || {
            format!("sendrecv_replace status {status:?}")
        });

        let mut got = vec![9u8; len];
        let statuses = oxmpi::scope(|s| {
            let reqs = vec![
                world.irecv(s, &mut got, left, 3)?,
                world.isend(s, &mine, right, 3)?,
                world.issend(s, &mine[..1], PROC_NULL, 4)?,
            ];
            oxmpi::wait_all(reqs)
        })?;
        check(&world, got == want, || format!("irecv of {len}"));
        check(&world, (rank == 0) == null_status(&statuses[0]), || {
            format!("irecv status {:?}", statuses[0])
        });
    }
    world.barrier()?;
    if rank == 0 {
        println!("proc_null ok on {size} ranks");
    }
    Ok(())
}
