//! Probe then receive messages of unknown size: rank 0 sends each other rank messages
//! of sizes it does not announce (eager and rendezvous); receivers use probe + recv,
//! iprobe polling, and recv_vec.

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
    if rank == 0 {
        println!("probe ok on {size} ranks");
    }
    universe.finalize()
}
