//! ANY_SOURCE / ANY_TAG: every worker sends rank 0 a run of messages with varying tags;
//! rank 0 takes them with wildcards and checks that each sender's messages arrive in
//! the order sent and that every message arrives exactly once. Then a master-worker
//! round: rank 0 hands out tasks to whoever asks. Last, once every other rank has
//! finalized, rank 0 waits (`wait_any`) with a receive from any source among its
//! requests that only its own later message matches: that must not fail.

use oxmpi::{ANY_SOURCE, ANY_TAG};
use oxmpi_testprogs::check;

const PER_WORKER: u64 = 200;

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    if rank == 0 {
        let mut next = vec![0u64; size as usize];
        for _ in 0..PER_WORKER * (size as u64 - 1) {
            let mut msg = [0u64; 2];
            let st = world.recv(&mut msg, ANY_SOURCE, ANY_TAG)?;
            let src = st.source as usize;
            check(&world, src != 0 && msg[0] == src as u64, || {
                format!("message {msg:?} claims source {src}")
            });
            check(&world, msg[1] == next[src], || {
                format!("from {src}: got #{} expected #{}", msg[1], next[src])
            });
            check(&world, st.tag == (msg[1] % 7) as i32, || {
                format!("tag {} for #{}", st.tag, msg[1])
            });
            next[src] += 1;
        }
        check(&world, world.iprobe(ANY_SOURCE, ANY_TAG)?.is_none(), || {
            "extra message".into()
        });
    } else {
        for i in 0..PER_WORKER {
            world.send(&[rank as u64, i], 0, (i % 7) as i32)?;
        }
    }

    // Master-worker on its own communicator (so early askers cannot be mistaken for
    // phase-one messages): tasks go to whichever worker asks first.
    let world = world.dup()?;
    const ASK: i32 = 1;
    const TASK: i32 = 2;
    const DONE: i32 = 3;
    let tasks = 50 * (size as u64 - 1).max(1);
    if rank == 0 {
        let mut handed = 0u64;
        let mut sum = 0u64;
        let mut active = size - 1;
        while active > 0 {
            let mut result = [0u64];
            let st = world.recv(&mut result, ANY_SOURCE, ASK)?;
            sum += result[0];
            if handed < tasks {
                world.send(&[handed], st.source, TASK)?;
                handed += 1;
            } else {
                world.send::<u64>(&[], st.source, DONE)?;
                active -= 1;
            }
        }
        if size > 1 {
            check(
                &world,
                sum == (0..tasks).map(|t| t * t).sum::<u64>(),
                || format!("task sum {sum}"),
            );
        }
        println!("wildcards ok on {size} ranks");
    } else {
        let mut result = 0u64;
        loop {
            world.send(&[result], 0, ASK)?;
            let mut task = [0u64];
            let st = world.recv(&mut task, 0, ANY_TAG)?;
            if st.tag == DONE {
                check(&world, st.bytes == 0, || "DONE carries data".into());
                break;
            }
            result = task[0] * task[0];
        }
    }
    world.barrier()?;
    if rank == 0 {
        alone_with_any_source(&world)?;
    }
    universe.finalize()
}

/// After the other ranks finalized: a receive from any source may still be matched
/// by a message of this rank to itself, so waiting for other requests beside it (a
/// large message to itself, which takes several progress passes) must not fail it.
fn alone_with_any_source(world: &oxmpi::Comm) -> oxmpi::Result<()> {
    // Time for the others' goodbyes to arrive, then take them in.
    std::thread::sleep(std::time::Duration::from_millis(100));
    world.iprobe(ANY_SOURCE, ANY_TAG)?;
    let mut small = [0u8; 4];
    let mut big_in = vec![0u8; 1 << 20];
    let big_out = vec![7u8; 1 << 20];
    let first = oxmpi::scope(|s| -> oxmpi::Result<usize> {
        let mut reqs = vec![
            Some(world.irecv(s, &mut small, ANY_SOURCE, 5)?),
            Some(world.irecv(s, &mut big_in, 0, 7)?),
            Some(world.isend(s, &big_out, 0, 7)?),
        ];
        let (first, _) = oxmpi::wait_any(&mut reqs)?.expect("requests in flight");
        world.send(&[1u8, 2, 3, 4], 0, 5)?;
        while oxmpi::wait_any(&mut reqs)?.is_some() {}
        Ok(first)
    })?;
    check(world, first != 0, || {
        "the any-source receive finished first".into()
    });
    check(world, small == [1, 2, 3, 4], || format!("got {small:?}"));
    check(world, big_in.iter().all(|&b| b == 7), || {
        "large message".into()
    });
    Ok(())
}
