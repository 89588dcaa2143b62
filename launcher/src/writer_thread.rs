//! oxrun's own stdout and stderr, each written by a thread of its own.
//!
//! A reader that stops reading (a paused terminal, a pipe nobody drains) blocks a
//! write for as long as it likes; written from the event loop, that stopped the
//! timeout, the signal forwarding and the teardown with it. The event loop hands
//! finished lines to a [`ThreadWriter`] instead, which never blocks: it takes a batch
//! whole while fewer than [`QUEUE_BYTES`] bytes wait, and says `WouldBlock` otherwise
//! (the loop then stops reading the ranks' output until the writer catches up, so
//! memory stays bounded and the ranks feel the reader's pace as they would without
//! oxrun). When stdout and stderr are the same file (`2>&1`), the two threads take
//! turns batch by batch, so that lines stay whole. Invariant: the loop's thread never
//! waits on the output, except once the job is over ([`ThreadWriter::close`]).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use crate::output::FdWriter;

/// Bytes waiting for the writer thread before `write` says `WouldBlock` (a batch is
/// taken whole while fewer wait).
pub const QUEUE_BYTES: usize = 1 << 20;

/// How often [`ThreadWriter::close`] asks whether to stop waiting.
const CLOSE_TICK: Duration = Duration::from_millis(50);

/// A non-blocking `Write` whose bytes a thread writes to a file descriptor.
#[derive(Debug)]
pub struct ThreadWriter {
    tx: Option<SyncSender<Vec<u8>>>,
    shared: Arc<Shared>,
    /// Disconnected when the thread has written everything and ended.
    finished: Receiver<()>,
}

/// What the event loop and the writer thread share.
#[derive(Debug, Default)]
struct Shared {
    /// Bytes taken and not written yet.
    queued: AtomicUsize,
    /// Set by the thread when a write failed (the reader went away).
    broken: AtomicBool,
}

/// Taken by each write when stdout and stderr are the same file.
pub type Turns = Arc<Mutex<()>>;

impl ThreadWriter {
    /// Starts the thread that writes to `fd` (1 or 2: not owned, never closed),
    /// holding `turns` for each batch when given.
    pub fn start(fd: i32, turns: Option<Turns>) -> io::Result<ThreadWriter> {
        // Batches are counted in bytes; the channel only needs room for them.
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE_BYTES / 4096);
        let shared = Arc::new(Shared::default());
        let (done, finished) = mpsc::channel();
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("oxrun-out{fd}"))
            .spawn(move || write_all_of(rx, FdWriter(fd), &s, turns, done))?;
        Ok(ThreadWriter {
            tx: Some(tx),
            shared,
            finished,
        })
    }

    /// Stops taking bytes and waits until the thread has written what it holds, or
    /// its reader went away, however slowly the reader reads (a rank writing itself
    /// would wait as long), unless `stop` says to give up (asked every
    /// [`CLOSE_TICK`]). Returns whether everything was written.
    pub fn close(mut self, stop: &mut impl FnMut() -> bool) -> bool {
        self.tx = None;
        loop {
            // Ends as soon as the thread does (its sender goes), not at a tick.
            match self.finished.recv_timeout(CLOSE_TICK) {
                Err(RecvTimeoutError::Disconnected) => {
                    return !self.shared.broken.load(Ordering::Acquire);
                }
                Ok(()) | Err(RecvTimeoutError::Timeout) if stop() => return false,
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

/// The thread: writes every batch (holding `turns` meanwhile, when given), then drops
/// `done`.
fn write_all_of(
    rx: Receiver<Vec<u8>>,
    mut out: FdWriter,
    shared: &Shared,
    turns: Option<Turns>,
    done: Sender<()>,
) {
    for batch in rx {
        if !shared.broken.load(Ordering::Relaxed) {
            let turn = turns
                .as_ref()
                .map(|t| t.lock().unwrap_or_else(PoisonError::into_inner));
            if out.write_all(&batch).is_err() {
                shared.broken.store(true, Ordering::Release);
            }
            drop(turn);
        }
        shared.queued.fetch_sub(batch.len(), Ordering::Release);
    }
    drop(done);
}

impl Write for ThreadWriter {
    /// Takes all of `data` or nothing (`WouldBlock` while the queue is full).
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.shared.broken.load(Ordering::Acquire) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let Some(tx) = &self.tx else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        if self.shared.queued.load(Ordering::Acquire) >= QUEUE_BYTES {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.shared.queued.fetch_add(data.len(), Ordering::AcqRel);
        match tx.try_send(data.to_vec()) {
            Ok(()) => Ok(data.len()),
            Err(e) => {
                self.shared.queued.fetch_sub(data.len(), Ordering::AcqRel);
                match e {
                    TrySendError::Full(_) => Err(io::ErrorKind::WouldBlock.into()),
                    TrySendError::Disconnected(_) => Err(io::ErrorKind::BrokenPipe.into()),
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether descriptors `a` and `b` are the same open file or the same file (a
/// terminal, a pipe, a regular file reached both ways).
pub fn same_file(a: i32, b: i32) -> bool {
    let stat = |fd| {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes a whole `stat` into the buffer when it returns 0.
        (unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0).then(|| {
            // SAFETY: fstat returned 0, so it filled `st`.
            let st = unsafe { st.assume_init() };
            (st.st_dev, st.st_ino)
        })
    };
    matches!((stat(a), stat(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::time::Instant;

    /// A pipe: (read end as a file, write end's descriptor, left open).
    fn pipe() -> (std::fs::File, i32) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe returns.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: pipe just opened fds[0] and nothing else owns it.
        (unsafe { std::fs::File::from_raw_fd(fds[0]) }, fds[1])
    }

    /// Writes `data` whole, waiting while the writer's queue is full.
    fn write_waiting(w: &mut ThreadWriter, data: &[u8]) {
        loop {
            match w.write(data) {
                Ok(n) => return assert_eq!(n, data.len()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn a_reader_that_never_reads_does_not_block_the_writer() {
        // A pipe whose read end stays open and unread: the thread blocks, the
        // writer fills its queue and then says WouldBlock instead of blocking.
        let (_unread, fd) = pipe();
        let mut w = ThreadWriter::start(fd, None).unwrap();
        let batch = vec![b'x'; 64 << 10];
        let mut taken = 0;
        let would_block = loop {
            match w.write(&batch) {
                Ok(n) => taken += n,
                Err(e) => break e.kind() == io::ErrorKind::WouldBlock,
            }
            assert!(taken <= 2 * QUEUE_BYTES, "the queue never filled");
        };
        assert!(would_block);
        assert!(
            taken >= QUEUE_BYTES - batch.len(),
            "took only {taken} bytes"
        );
        let t0 = Instant::now();
        assert!(!w.close(&mut || t0.elapsed() > Duration::from_millis(100)));
        // The blocked thread stays blocked on the pipe; the test process ends it.
    }

    #[test]
    fn closing_waits_for_a_slow_reader_to_take_everything() {
        let (mut rx, fd) = pipe();
        let reader = std::thread::spawn(move || {
            // Slower than the writer: the queue fills and empties several times.
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            loop {
                std::thread::sleep(Duration::from_micros(50));
                match rx.read(&mut buf).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        let mut w = ThreadWriter::start(fd, None).unwrap();
        let data: Vec<u8> = (0..3 * QUEUE_BYTES).map(|i| (i % 251) as u8).collect();
        for batch in data.chunks(100_000) {
            write_waiting(&mut w, batch);
        }
        assert!(w.close(&mut || false), "close gave up");
        // SAFETY: `fd` is the pipe's write end, which the thread no longer uses.
        unsafe { libc::close(fd) };
        assert!(reader.join().unwrap() == data, "bytes lost or reordered");
    }

    #[test]
    fn writers_to_the_same_file_take_turns_by_batch() {
        let (mut rx, fd) = pipe();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            rx.read_to_end(&mut all).unwrap();
            all
        });
        let turns = Turns::default();
        let mut out = ThreadWriter::start(fd, Some(Arc::clone(&turns))).unwrap();
        let mut err = ThreadWriter::start(fd, Some(turns)).unwrap();
        // Batches far above PIPE_BUF, which the kernel writes in pieces.
        let lines = |c: u8| -> Vec<u8> {
            let line: Vec<u8> = std::iter::repeat_n(c, 99).chain([b'\n']).collect();
            line.repeat(2000)
        };
        let (a, b) = (lines(b'a'), lines(b'b'));
        for _ in 0..10 {
            write_waiting(&mut out, &a);
            write_waiting(&mut err, &b);
        }
        assert!(out.close(&mut || false) && err.close(&mut || false));
        // SAFETY: `fd` is the pipe's write end, which neither thread uses now.
        unsafe { libc::close(fd) };
        let all = reader.join().unwrap();
        assert_eq!(all.len(), 2 * 10 * a.len());
        for line in all.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            assert!(
                line.len() == 99 && line.iter().all(|&c| c == line[0]),
                "a line mixed from both writers"
            );
        }
    }

    #[test]
    fn the_same_file_is_told_apart_from_another() {
        let ((_rx, fd), (_other_rx, other)) = (pipe(), pipe());
        // SAFETY: dup of a descriptor this test owns.
        let dup = unsafe { libc::dup(fd) };
        assert!(same_file(fd, dup));
        assert!(!same_file(fd, other));
        assert!(!same_file(fd, -1));
        // SAFETY: the descriptors belong to this test.
        unsafe {
            libc::close(dup);
            libc::close(fd);
            libc::close(other);
        }
    }
}
