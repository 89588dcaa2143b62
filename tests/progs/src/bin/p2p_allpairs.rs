//! Every pair of ranks exchanges messages of sizes 0, 1, 7, 4096, 65537 and 8 MiB in
//! both directions, nonblocking and then blocking (sendrecv), checking every byte.
//! Each rank then prints how many large messages it received each way.

use oxmpi_testprogs::{check, pattern, seed};

const SIZES: [usize; 6] = [0, 1, 7, 4096, 65537, 8 << 20];

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    for &len in &SIZES {
        let outgoing: Vec<Vec<u8>> = (0..size)
            .map(|d| pattern(seed(rank, d, len, 0), len))
            .collect();
        let mut incoming: Vec<Vec<u8>> = (0..size).map(|_| vec![0u8; len]).collect();
        oxmpi::scope(|s| -> oxmpi::Result<()> {
            let mut reqs = Vec::new();
            for (src, buf) in incoming.iter_mut().enumerate() {
                reqs.push(world.irecv(s, buf, src as i32, 1)?);
            }
            for (dst, buf) in outgoing.iter().enumerate() {
                reqs.push(world.isend(s, buf, dst as i32, 1)?);
            }
            let statuses = oxmpi::wait_all(reqs)?;
            for (src, st) in statuses[..size as usize].iter().enumerate() {
                check(
                    &world,
                    st.source == src as i32 && st.tag == 1 && st.bytes == len,
                    || format!("status {st:?} for a {len}-byte message from {src}"),
                );
            }
            Ok(())
        })?;
        for (src, buf) in incoming.iter().enumerate() {
            check(
                &world,
                *buf == pattern(seed(src as i32, rank, len, 0), len),
                || format!("wrong content in the {len}-byte message from rank {src}"),
            );
        }
        // Blocking: pair up by distance so every pair talks once per distance.
        for dist in 1..size {
            let to = (rank + dist) % size;
            let from = (rank + size - dist) % size;
            let out = pattern(seed(rank, to, len, 1), len);
            let mut got = vec![0u8; len];
            let st = world.sendrecv(&out, to, 2, &mut got, from, 2)?;
            check(
                &world,
                st.bytes == len && got == pattern(seed(from, rank, len, 1), len),
                || format!("sendrecv of {len} bytes from {from} delivered wrong data"),
            );
        }
    }
    // Which way its large messages (65537 B and 8 MiB, from every rank, itself
    // included) came, for the test to check against the variant.
    let ways = oxmpi::large_receives();
    println!(
        "large receives of rank {rank}: single copy {}, split {}, streamed {}, permitted {}",
        ways.single_copy,
        ways.split,
        ways.streamed,
        u8::from(ways.single_copy_permitted)
    );
    if rank == 0 {
        println!("allpairs ok on {size} ranks");
    }
    universe.finalize()
}
