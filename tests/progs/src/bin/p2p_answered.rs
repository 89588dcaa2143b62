//! A receive that matches a message already here answers its sender at once, not at
//! the receiver's next call: rank 1 takes the message and then stays out of oxmpi
//! until rank 0 says, through a file, that its send returned. Two ways in:
//! - `recv_vec` of a synchronous send (its acknowledgement);
//! - `irecv` of a message above every eager limit that fits in the transport's
//!   buffers (the single-copy read, or the answer that has it sent).
//!
//! Rank 1 gives up after 30 s outside oxmpi and fails the job: with the answer
//! held back until its next call, rank 0's send never returns before that. Where
//! the protocol itself needs the receiver's next call (a split copy's FIN, a ring
//! too small for the message) the test is not run.
//! Other ranks take no part.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use oxmpi::Comm;
use oxmpi_testprogs::{check, pattern};

/// Above every eager limit (shared memory 8 or 32 KiB, TCP 64 KiB), within a ring of
/// the default size and a socket's buffers, and below the smallest message split by
/// default (128 KiB, `shm::Config::DEFAULT_SPLIT`).
const LARGE: usize = 100_000;

/// The file rank 0 creates once its send of `case` returned.
fn sign(case: &str) -> PathBuf {
    let job = std::env::var("OXMPI_JOB_ID").unwrap_or_else(|_| "alone".into());
    std::env::temp_dir().join(format!("oxmpi-answered-{job}-{case}"))
}

/// Rank 1, outside oxmpi: waits until rank 0's send of `case` returned.
fn wait_outside(world: &Comm, case: &str) {
    let start = Instant::now();
    while !sign(case).exists() {
        check(world, start.elapsed() < Duration::from_secs(30), || {
            format!("{case}: the sender's send did not return while its receiver was out of oxmpi")
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = std::fs::remove_file(sign(case));
}

/// Rank 0: its send of `case` returned.
fn signal(case: &str) {
    std::fs::write(sign(case), b"").expect("a file in the temporary directory");
}

fn main() -> oxmpi::Result<()> {
    let universe = oxmpi::init()?;
    let world = universe.world();
    if world.size() < 2 {
        println!("answered ok on {} ranks", world.size());
        return Ok(());
    }
    let body = pattern(7, LARGE);
    match world.rank() {
        0 => {
            world.ssend(&body[..16], 1, 1)?;
            signal("ssend");
            world.send(&body, 1, 2)?;
            signal("large");
        }
        1 => {
            while world.iprobe(0, 1)?.is_none() {}
            let (got, _) = world.recv_vec::<u8>(0, 1)?;
            check(&world, got == body[..16], || "ssend's content".into());
            wait_outside(&world, "ssend");

            while world.iprobe(0, 2)?.is_none() {}
            let mut got = vec![0u8; LARGE];
            oxmpi::scope(|s| -> oxmpi::Result<()> {
                let req = world.irecv(s, &mut got, 0, 2)?;
                wait_outside(&world, "large");
                req.wait()?;
                Ok(())
            })?;
            check(&world, got == body, || "the large message's content".into());
        }
        _ => {}
    }
    world.barrier()?;
    if world.rank() == 0 {
        println!("answered ok on {} ranks", world.size());
    }
    Ok(())
}
