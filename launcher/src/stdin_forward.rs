//! oxrun's stdin goes to rank 0, as it arrives, from a small thread of its own.
//!
//! A thread, not the event loop: stdin may be a terminal or a regular file, which
//! epoll cannot watch, and making a shared terminal nonblocking would leak into the
//! user's shell. Invariants: the thread only ever blocks in `read`, in a `write` to
//! rank 0, or in a short sleep while oxrun is a background job; end of input (or any
//! other read error) closes rank 0's stdin; a rank 0 that stopped reading ends the
//! thread; oxrun is never stopped by SIGTTIN. A job started in the background never
//! reads the terminal (rank 0 sees end of file at once, as in a non-interactive
//! background job); one sent there later (Ctrl-Z, then `bg`) keeps running and reads
//! again once it is back in the foreground (`fg`). That takes SIGTTIN blocked in this
//! thread alone: a read of the terminal from the background then fails with EIO
//! instead of stopping the whole process (which a read already waiting when the job
//! was stopped would do as it restarts); the ranks, started before this thread from
//! the main thread, and given an empty mask anyway, never see the change.

use std::io::{self, Read, Write};
use std::process::ChildStdin;
use std::time::Duration;

use crate::signals;

/// How often a background job looks whether it is in the foreground again.
const BACKGROUND_POLL: Duration = Duration::from_millis(100);

/// Starts forwarding oxrun's stdin to `rank0`. Call after all ranks are spawned.
pub fn start(rank0: ChildStdin) -> io::Result<()> {
    if in_background() {
        // rank 0 sees end of file at once, like a non-interactive background job.
        return Ok(());
    }
    std::thread::Builder::new()
        .name("oxrun-stdin".to_owned())
        .spawn(move || {
            // Should this ever fail, a background read stops oxrun as it did before.
            let _ = signals::block_in_this_thread(libc::SIGTTIN);
            forward(io::stdin().lock(), rank0);
        })?;
    Ok(())
}

fn forward(mut from: impl Read, mut to: ChildStdin) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        while in_background() {
            std::thread::sleep(BACKGROUND_POLL);
        }
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Sent to the background between the check and the read: wait again.
            Err(e) if e.raw_os_error() == Some(libc::EIO) && in_background() => continue,
            Err(_) => return,
        };
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Whether stdin is the controlling terminal of oxrun's session and its foreground
/// process group is another one (a background job, which reading would stop).
fn in_background() -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp only take plain integers.
    unsafe {
        if libc::isatty(0) != 1 {
            return false;
        }
        // -1 (ENOTTY): not the controlling terminal, so reading it stops no one; a
        // hung-up terminal's reads end the forwarding.
        let foreground = libc::tcgetpgrp(0);
        foreground != -1 && foreground != libc::getpgrp()
    }
}
