//! oxrun's own stdout and stderr, each written by a thread of its own.
//!
//! A reader that stops reading (a paused terminal, a pipe nobody drains) blocks a
//! write for as long as it likes; written from the event loop, that stopped the
//! timeout, the signal forwarding and the teardown with it. The event loop hands
//! finished lines to a [`ThreadWriter`] instead, which never blocks: it takes a batch
//! whole while fewer than [`QUEUE`] batches wait, and says `WouldBlock` otherwise (the
//! loop then stops reading the ranks' output until the writer catches up, so memory
//! stays bounded and the ranks feel the reader's pace as they would without oxrun).
//! Invariant: the loop's thread never waits on the output, except up to a deadline
//! once the job is over ([`ThreadWriter::close`]).

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel};
use std::time::Instant;

use crate::output::FdWriter;

/// Batches waiting for the writer thread before `write` says `WouldBlock`.
pub const QUEUE: usize = 64;

/// A non-blocking `Write` whose bytes a thread writes to a file descriptor.
#[derive(Debug)]
pub struct ThreadWriter {
    tx: Option<SyncSender<Vec<u8>>>,
    /// Set by the thread when a write failed (the reader went away).
    broken: Arc<AtomicBool>,
    /// Disconnected when the thread has written everything and ended.
    finished: Receiver<()>,
}

impl ThreadWriter {
    /// Starts the thread that writes to `fd` (1 or 2: not owned, never closed).
    pub fn start(fd: i32) -> io::Result<ThreadWriter> {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let broken = Arc::new(AtomicBool::new(false));
        let (done, finished) = channel();
        let b = Arc::clone(&broken);
        std::thread::Builder::new()
            .name(format!("oxrun-out{fd}"))
            .spawn(move || write_all_of(rx, FdWriter(fd), &b, done))?;
        Ok(ThreadWriter {
            tx: Some(tx),
            broken,
            finished,
        })
    }

    /// Stops taking bytes and waits until the thread has written what it holds, or
    /// until `until` (a reader that never reads must not keep oxrun alive).
    pub fn close(mut self, until: Instant) {
        self.tx = None;
        // Ends as soon as the thread does (its sender goes), not at a polling tick.
        let _ = self
            .finished
            .recv_timeout(until.saturating_duration_since(Instant::now()));
    }
}

/// The thread: writes every batch, then drops `done`.
fn write_all_of(rx: Receiver<Vec<u8>>, mut out: FdWriter, broken: &AtomicBool, done: Sender<()>) {
    for batch in rx {
        if !broken.load(Ordering::Relaxed) && out.write_all(&batch).is_err() {
            broken.store(true, Ordering::Release);
        }
    }
    drop(done);
}

impl Write for ThreadWriter {
    /// Takes all of `data` or nothing (`WouldBlock` while the queue is full).
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.broken.load(Ordering::Acquire) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let Some(tx) = &self.tx else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        match tx.try_send(data.to_vec()) {
            Ok(()) => Ok(data.len()),
            Err(TrySendError::Full(_)) => Err(io::ErrorKind::WouldBlock.into()),
            Err(TrySendError::Disconnected(_)) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_reader_that_never_reads_does_not_block_the_writer() {
        // A pipe whose read end stays open and unread: the thread blocks, the
        // writer fills its queue and then says WouldBlock instead of blocking.
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe returns.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let mut w = ThreadWriter::start(fds[1]).unwrap();
        let batch = vec![b'x'; 64 << 10];
        let mut would_block = false;
        for _ in 0..10 * QUEUE {
            match w.write(&batch) {
                Ok(n) => assert_eq!(n, batch.len()),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    would_block = true;
                    break;
                }
            }
        }
        assert!(would_block, "the queue never filled");
        let t0 = Instant::now();
        w.close(t0 + Duration::from_millis(50));
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "close waited past its deadline"
        );
        // The blocked thread stays blocked on the pipe; the test process ends it.
    }
}
