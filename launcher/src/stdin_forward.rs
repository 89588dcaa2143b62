//! oxrun's stdin goes to rank 0, as it arrives, from a small thread of its own.
//!
//! A thread, not the event loop: stdin may be a terminal or a regular file, which
//! epoll cannot watch, and making a shared terminal nonblocking would leak into the
//! user's shell. Invariants: the thread only ever blocks in `read` or in a `write` to
//! rank 0; end of input (or any read error) closes rank 0's stdin; a rank 0 that
//! stopped reading ends the thread; a background job (stdin is a terminal owned by
//! another process group) never reads the terminal, so it is never stopped by SIGTTIN.

use std::io::{self, Read, Write};
use std::process::ChildStdin;

/// Starts forwarding oxrun's stdin to `rank0`. Call after all ranks are spawned.
pub fn start(rank0: ChildStdin) -> io::Result<()> {
    if in_background() {
        // rank 0 sees end of file at once, like a non-interactive background job.
        return Ok(());
    }
    std::thread::Builder::new()
        .name("oxrun-stdin".to_owned())
        .spawn(move || forward(io::stdin().lock(), rank0))?;
    Ok(())
}

fn forward(mut from: impl Read, mut to: ChildStdin) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Whether stdin is a terminal whose foreground process group is not ours.
fn in_background() -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp only take plain integers.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) != libc::getpgrp() }
}
