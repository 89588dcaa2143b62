//! Point-to-point tests between ranks 0 and 1, measuring exactly what
//! `shared/tools/mpibench.c` (and OSU's `osu_latency`/`osu_bw`) measure. Other ranks
//! wait in a blocking receive until rank 0 releases them at the end, so
//! `oxrun -n 16 oxbench latency` measures a pair while 14 ranks sleep in receives.
//!
//! - `latency`: ping-pong of blocking send/recv; the table shows half the average
//!   round trip in microseconds.
//! - `bw`: rank 0 starts a window of 64 nonblocking sends, waits for them, then for a
//!   4-byte acknowledgement from rank 1, which posts 64 receives per window. One
//!   untimed window first; bandwidth is bytes sent over time in MB/s (1 MB = 1e6
//!   bytes).
//!
//! One difference the safe API imposes: receives in flight together need distinct
//! buffers (MPI codes may let them all write into one). Rank 1 therefore receives a
//! window in batches into packed slots of at most 1 MiB in all, so its buffers stay in
//! cache as mpibench's one buffer does; with `-c` every message gets its own slot.

use oxmpi::{Comm, Rank};

use crate::options::{Common, Counts};
use crate::pattern;
use crate::table::Table;
use crate::{Failure, buffer};

/// Messages in flight per window of the bandwidth test.
const WINDOW: usize = 64;
/// Bytes of receive slots a bandwidth window uses at once without validation.
const RECV_CACHE: usize = 1 << 20;
const PING: i32 = 1;
const DATA: i32 = 2;
const ACK: i32 = 3;
const END: i32 = 4;

/// The other rank of the measured pair, or `None` on a rank that sits the test out.
fn partner(world: &Comm, test: &str) -> Result<Option<Rank>, Failure> {
    match (world.size(), world.rank()) {
        (size, _) if size < 2 => Err(Failure::Usage(format!(
            "{test} needs at least 2 ranks (it runs between ranks 0 and 1), not {size}: start it with `oxrun -n 2`"
        ))),
        (_, 0) => Ok(Some(1)),
        (_, 1) => Ok(Some(0)),
        _ => Ok(None),
    }
}

/// On a rank outside the measured pair: sleeps in a receive until rank 0 is done.
fn wait_for_end(world: &Comm) -> Result<(), Failure> {
    world.recv::<u8>(&mut [], 0, END)?;
    Ok(())
}

/// On rank 0 after the measurements: releases the ranks outside the pair.
fn release_bystanders(world: &Comm) -> Result<(), Failure> {
    if world.rank() == 0 {
        for r in 2..world.size() {
            world.send::<u8>(&[], r, END)?;
        }
    }
    Ok(())
}

/// Ping-pong latency: half the round trip, in microseconds.
pub fn latency(world: &Comm, opts: &Common) -> Result<(), Failure> {
    let partner = partner(world, "latency")?;
    let table = Table::new(
        world,
        "Latency Test",
        &[opts.describe_counts()],
        "Latency (us)",
    );
    let Some(partner) = partner else {
        return wait_for_end(world);
    };
    let pinger = world.rank() == 0;
    let mut out = buffer(Some(opts.sizes.max), 1u8)?;
    let mut inbox = buffer(Some(opts.sizes.max), 0u8)?;
    for n in opts.sizes.sizes(1) {
        let counts = opts.counts(n);
        let (out, inbox) = (&mut out[..n], &mut inbox[..n]);
        // Seeds: 2*step for the ping, 2*step + 1 for the pong.
        let seconds = counts.time(|step| {
            let step = step as u64;
            if pinger {
                if opts.validate {
                    pattern::fill(out, 2 * step);
                }
                world.send(out, partner, PING)?;
                let got = world.recv(inbox, partner, PING)?;
                if opts.validate {
                    pattern::check_len(got.bytes, n, "pong")?;
                    pattern::check(inbox, 2 * step + 1, "pong")?;
                }
            } else {
                let got = world.recv(inbox, partner, PING)?;
                if opts.validate {
                    pattern::check_len(got.bytes, n, "ping")?;
                    pattern::check(inbox, 2 * step, "ping")?;
                    pattern::fill(out, 2 * step + 1);
                }
                world.send(out, partner, PING)?;
            }
            Ok(())
        })?;
        table.row(n, seconds / counts.iters as f64 / 2.0 * 1e6);
    }
    release_bystanders(world)
}

/// Unidirectional bandwidth with windows of [`WINDOW`] messages, in MB/s.
pub fn bw(world: &Comm, opts: &Common) -> Result<(), Failure> {
    let partner = partner(world, "bw")?;
    let notes = [format!(
        "window {WINDOW} messages + 4-byte ack; windows per size ITERS/20+2 with the counts of -i \
         (ITERS {}), warm-up {} window(s){}",
        opts.iters,
        opts.warmup.unwrap_or(1),
        if opts.validate {
            ", validating data"
        } else {
            ""
        }
    )];
    let table = Table::new(world, "Bandwidth Test", &notes, "Bandwidth (MB/s)");
    let Some(partner) = partner else {
        return wait_for_end(world);
    };
    let sender = world.rank() == 0;
    // A sender sends every message from one slot, unless it validates (distinct
    // contents); a receiver needs a slot per receive in flight: the whole window when
    // validating, else batches of at most RECV_CACHE bytes (see `recv_window`). Slots
    // are at least a byte apart so that size 0 needs no special case.
    let slot = opts.sizes.max.max(1);
    let window = WINDOW.checked_mul(slot);
    let len = match (sender, opts.validate) {
        (_, true) => window,
        (true, false) => Some(slot),
        (false, false) => Some(window.unwrap_or(usize::MAX).min(RECV_CACHE.max(slot))),
    };
    let mut buf = buffer(len, u8::from(sender))?;
    for n in opts.sizes.sizes(1) {
        let counts = Counts {
            warmup: opts.warmup.unwrap_or(1),
            iters: opts.counts(n).iters / 20 + 2,
        };
        let seconds = counts.time(|window| {
            if sender {
                send_window(world, partner, &mut buf, slot, n, window, opts.validate)
            } else {
                recv_window(world, partner, &mut buf, slot, n, window, opts.validate)
            }
        })?;
        table.row(n, (n * WINDOW * counts.iters) as f64 / seconds / 1e6);
    }
    release_bystanders(world)
}

/// The seed of message `w` of window `window`.
fn seed(window: usize, w: usize) -> u64 {
    (window * WINDOW + w) as u64
}

/// Sends one window of `n`-byte messages from `buf`, then waits for the ack. Without
/// validation every message comes from the first slot (as in mpibench).
fn send_window(
    world: &Comm,
    to: Rank,
    buf: &mut [u8],
    slot: usize,
    n: usize,
    window: usize,
    validate: bool,
) -> Result<(), Failure> {
    if validate {
        for (w, msg) in buf.chunks_mut(slot).enumerate() {
            pattern::fill(&mut msg[..n], seed(window, w));
        }
    }
    let buf = &*buf;
    oxmpi::scope(|s| {
        // A plain loop into a window-sized vector, as mpibench fills its request array:
        // collecting an iterator of `Result`s cost the harness a tenth or more of the
        // message rate at 1-8 B (docs/benchmarks.md).
        let mut sends = Vec::with_capacity(WINDOW);
        for w in 0..WINDOW {
            let at = if validate { w * slot } else { 0 };
            sends.push(world.isend(s, &buf[at..at + n], to, DATA)?);
        }
        oxmpi::wait_all(sends)
    })?;
    world.recv(&mut [0u8; 4], to, ACK)?;
    Ok(())
}

/// Receives one window of `n`-byte messages into the slots of `buf`, then sends the
/// ack.
fn recv_window(
    world: &Comm,
    from: Rank,
    buf: &mut [u8],
    slot: usize,
    n: usize,
    window: usize,
    validate: bool,
) -> Result<(), Failure> {
    if validate {
        // Every message of the window in its own slot, checked afterwards.
        let statuses = oxmpi::scope(|s| {
            let mut recvs = Vec::with_capacity(WINDOW);
            for msg in buf.chunks_mut(slot) {
                recvs.push(world.irecv(s, &mut msg[..n], from, DATA)?);
            }
            oxmpi::wait_all(recvs)
        })?;
        for (w, (msg, status)) in buf.chunks(slot).zip(&statuses).enumerate() {
            let what = format!("message {w} of window {window}");
            pattern::check_len(status.bytes, n, &what)?;
            pattern::check(&msg[..n], seed(window, w), &what)?;
        }
    } else {
        // OSU receives the whole window into one buffer. Safe Rust cannot have two
        // receives write one buffer at once, so the window is received in batches into
        // packed slots that together stay cache-sized, as that one buffer does.
        let batch = (RECV_CACHE / n.max(1)).clamp(1, WINDOW);
        let mut left = WINDOW;
        while left > 0 {
            let count = batch.min(left);
            oxmpi::scope(|s| {
                let mut recvs = Vec::with_capacity(count);
                for msg in buf.chunks_mut(n.max(1)).take(count) {
                    recvs.push(world.irecv(s, &mut msg[..n], from, DATA)?);
                }
                oxmpi::wait_all(recvs)
            })?;
            left -= count;
        }
    }
    world.send(&[0u8; 4], from, ACK)?;
    Ok(())
}
