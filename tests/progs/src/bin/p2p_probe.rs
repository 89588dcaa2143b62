//! Probe then receive messages of unknown size: rank 0 sends each other rank messages
//! of sizes it does not announce (eager and rendezvous); receivers use probe + recv,
//! iprobe polling, and recv_vec; then matched probes (mprobe, improbe) around a ring.

use oxmpi::{ANY_SOURCE, ANY_TAG};
use oxmpi_testprogs::{check, pattern};

fn sizes(rank: i32) -> Vec<usize> {
    vec![0, 3 + rank as usize, 70_000 + 13 * rank as usize, 1 << 20]
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let bodies: Vec<Vec<Vec<u8>>> = (0..size)
        .map(|r| {
            sizes(r)
                .iter()
                .map(|&n| pattern(r as u64 * 31 + n as u64, n))
                .collect()
        })
        .collect();
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let mut sends = Vec::new();
        if rank == 0 {
            for (dst, msgs) in bodies.iter().enumerate() {
                for (i, m) in msgs.iter().enumerate() {
                    sends.push(world.isend(s, m, dst as i32, 10 + i as i32)?);
                }
            }
        }
        let mine = &bodies[rank as usize];
        // 1. probe, allocate, receive.
        let st = world.probe(0, 10)?;
        check(
            &world,
            st.bytes == mine[0].len() && st.source == 0 && st.tag == 10,
            || format!("probe {st:?}"),
        );
        let mut buf = vec![0u8; st.count::<u8>()];
        world.recv(&mut buf, st.source, st.tag)?;
        check(&world, buf == mine[0], || "probe+recv content".into());
        // 2. iprobe until it shows up, with wildcards.
        let st = loop {
            if let Some(st) = world.iprobe(ANY_SOURCE, 11)? {
                break st;
            }
        };
        let mut buf = vec![0u8; st.bytes];
        world.recv(&mut buf, ANY_SOURCE, 11)?;
        check(&world, buf == mine[1], || "iprobe+recv content".into());
        // 3. recv_vec of a large and a medium message, in reverse tag order.
        let (big, st) = world.recv_vec::<u8>(0, 13)?;
        check(&world, big == mine[3] && st.tag == 13, || {
            "recv_vec large".into()
        });
        let (mid, st) = world.recv_vec::<u8>(ANY_SOURCE, ANY_TAG)?;
        check(&world, mid == mine[2] && st.tag == 12, || {
            format!("recv_vec wildcard got tag {}", st.tag)
        });
        oxmpi::wait_all(sends)?;
        Ok(())
    })?;

    // (Not before every rank's wildcard receive above has taken its message.)
    world.barrier()?;
    // Matched probes: a message mprobe took is out of reach of every other receive
    // and probe; one dropped unreceived still lets its sender finish (a synchronous
    // one and a large one); PROC_NULL gives a message of nothing.
    let (right, left) = ((rank + 1) % size, (rank + size - 1) % size);
    let (first, second, large) = (
        pattern(rank as u64 + 100, 5),
        pattern(rank as u64 + 200, 9),
        pattern(rank as u64 + 300, 300_000),
    );
    oxmpi::scope(|s| -> oxmpi::Result<()> {
        let sends = vec![
            world.isend(s, &first, right, 40)?,
            world.isend(s, &second, right, 40)?,
            world.issend(s, &first, right, 41)?,
            world.isend(s, &large, right, 42)?,
        ];
        let (message, st) = world.mprobe(ANY_SOURCE, 40)?;
        check(&world, st.source == left && st.bytes == 5, || {
            format!("mprobe {st:?}")
        });
        // The next receive of that tag gets the second message.
        let (next, st2) = world.recv_vec::<u8>(ANY_SOURCE, 40)?;
        check(
            &world,
            next == pattern(left as u64 + 200, 9) && st2.bytes == 9,
            || "a receive after mprobe took its message".into(),
        );
        let mut buf = vec![0u8; st.bytes];
        message.recv(&mut buf)?;
        check(&world, buf == pattern(left as u64 + 100, 5), || {
            "mprobe's message".into()
        });
        for tag in [41, 42] {
            let found = loop {
                if let Some(found) = world.improbe(left, tag)? {
                    break found;
                }
            };
            check(&world, world.iprobe(left, tag)?.is_none(), || {
                "improbe left its message for others".into()
            });
            drop(found);
        }
        oxmpi::wait_all(sends)?;
        let (nothing, st) = world.mprobe(oxmpi::PROC_NULL, 0)?;
        let mut untouched = [7u8];
        nothing.recv(&mut untouched)?;
        check(
            &world,
            st.source == oxmpi::PROC_NULL && untouched == [7],
            || "mprobe of PROC_NULL".into(),
        );
        Ok(())
    })?;
    if rank == 0 {
        println!("probe ok on {size} ranks");
    }
    universe.finalize()
}
