//! Forwarding the ranks' stdout and stderr to oxrun's own, one whole line at a time.
//!
//! Each rank stream has a [`LineBuffer`] of [`CHUNK`] bytes; complete lines go out
//! whole (with `[R] ` in front under `--tag-output`), and an unfinished line once it
//! has waited [`PARTIAL_WAIT`] for its end (a prompt before the rank reads its
//! input, progress dots). Invariants: a line is never
//! interleaved with another stream's line on the same output; a line longer than
//! [`CHUNK`] is written in pieces of exactly [`CHUNK`] bytes, and when another
//! stream's line has to come between two pieces, a newline is inserted first (so the
//! long line is split only at a multiple of [`CHUNK`] bytes); memory per stream is
//! bounded by [`CHUNK`]. Where stdout and stderr are one file (`2>&1`), both kinds
//! go through the stdout writer, so that a line left unfinished on one (a rank's last
//! line without newline) is ended before the other's next line, in order.

use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Size of a stream's line buffer, and of the pieces an overlong line is cut into.
pub const CHUNK: usize = 64 << 10;

/// How long the unfinished end of a stream waits for its newline, with nothing more
/// in its pipe, before it goes out as it is: another stream's line coming between
/// its parts then ends it on a line of its own (as at a chunk's boundary). Long
/// enough that a writer descheduled in the middle of a line, on a busy machine,
/// seldom has its line cut so.
pub const PARTIAL_WAIT: Duration = Duration::from_millis(500);

/// Which of a rank's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Its stdout, forwarded to oxrun's stdout.
    Stdout = 0,
    /// Its stderr, forwarded to oxrun's stderr.
    Stderr = 1,
}

/// One rank stream's unfinished line.
#[derive(Debug)]
pub struct LineBuffer {
    rank: usize,
    kind: Kind,
    buf: Box<[u8]>,
    len: usize,
    /// Since when the buffer has held an unfinished line with the stream's pipe
    /// empty ([`LineBuffer::drained`]).
    since: Option<Instant>,
}

impl LineBuffer {
    /// An empty buffer for `rank`'s `kind` stream.
    pub fn new(rank: usize, kind: Kind) -> LineBuffer {
        LineBuffer {
            rank,
            kind,
            buf: vec![0; CHUNK].into_boxed_slice(),
            len: 0,
            since: None,
        }
    }

    /// When the unfinished line held here goes out ([`Output::take_stale`]), if any.
    pub fn due(&self) -> Option<Instant> {
        self.since.map(|t| t + PARTIAL_WAIT)
    }

    /// Reads once from `src` into the free part of the buffer (never full when the
    /// buffer was handed to [`Output::take_lines`] after the previous read).
    pub fn read_from(&mut self, src: &mut impl Read) -> io::Result<usize> {
        let n = src.read(&mut self.buf[self.len..])?;
        self.len += n;
        if n > 0 {
            self.since = None;
        }
        Ok(n)
    }

    /// The stream's pipe holds data oxrun leaves there for now (its reader is behind):
    /// an unfinished line held here waits for its end again from the next time the
    /// pipe is found empty ([`LineBuffer::drained`]).
    pub fn more_to_read(&mut self) {
        self.since = None;
    }

    /// The stream's pipe is empty for now (at `now`): an unfinished line held here
    /// starts to wait for its end, unless it waits already.
    pub fn drained(&mut self, now: Instant) {
        if self.len > 0 {
            self.since = self.since.or(Some(now));
        }
    }
}

/// Where oxrun's output goes: `W` is a file descriptor writer in oxrun, a `Vec` in
/// tests.
#[derive(Debug)]
pub struct Output<W: Write> {
    tag: bool,
    /// stdout and stderr are one file: both kinds are written to the stdout sink.
    one_file: bool,
    sinks: [Sink<W>; 2],
}

#[derive(Debug)]
struct Sink<W: Write> {
    writer: W,
    pending: Vec<u8>,
    /// The stream whose line was left unfinished on this output.
    dangling: Option<(usize, Kind)>,
    broken: bool,
}

impl<W: Write> Output<W> {
    /// Output to `stdout` and `stderr`, tagging lines with their rank when `tag`;
    /// `one_file` when the two are the same file (everything then goes to `stdout`).
    pub fn new(tag: bool, one_file: bool, stdout: W, stderr: W) -> Output<W> {
        let sink = |writer| Sink {
            writer,
            pending: Vec::new(),
            dangling: None,
            broken: false,
        };
        Output {
            tag,
            one_file,
            sinks: [sink(stdout), sink(stderr)],
        }
    }

    /// The sink that `kind` is written to.
    fn sink_of(&self, kind: Kind) -> usize {
        if self.one_file {
            Kind::Stdout as usize
        } else {
            kind as usize
        }
    }

    /// Emits every complete line in `lb`, and a full buffer's worth of an overlong
    /// line; keeps the rest for later. Call after each [`LineBuffer::read_from`].
    pub fn take_lines(&mut self, lb: &mut LineBuffer) {
        let mut start = 0;
        while let Some(i) = lb.buf[start..lb.len].iter().position(|&b| b == b'\n') {
            let end = start + i + 1;
            self.emit(lb.rank, lb.kind, &lb.buf[start..end], true);
            start = end;
        }
        if start == 0 && lb.len == lb.buf.len() {
            self.emit(lb.rank, lb.kind, &lb.buf[..], false);
            start = lb.len;
        }
        lb.buf.copy_within(start..lb.len, 0);
        lb.len -= start;
    }

    /// Emits the unfinished line in `lb` if it is due at `now` ([`LineBuffer::due`]);
    /// the rest of that line follows it on the same output line unless another
    /// stream's line comes between.
    pub fn take_stale(&mut self, lb: &mut LineBuffer, now: Instant) {
        if lb.due().is_some_and(|due| due <= now) {
            self.emit(lb.rank, lb.kind, &lb.buf[..lb.len], false);
            lb.len = 0;
            lb.since = None;
        }
    }

    /// Emits what is left in `lb` at end of file: a last line without newline goes
    /// out as it is.
    pub fn finish(&mut self, lb: &mut LineBuffer) {
        self.take_lines(lb);
        if lb.len > 0 {
            self.emit(lb.rank, lb.kind, &lb.buf[..lb.len], false);
            lb.len = 0;
            lb.since = None;
        }
    }

    /// Writes one of oxrun's own lines to stderr (a newline is added).
    pub fn message(&mut self, text: &str) {
        let sink = &mut self.sinks[self.sink_of(Kind::Stderr)];
        if sink.dangling.take().is_some() {
            sink.pending.push(b'\n');
        }
        sink.pending.extend_from_slice(text.as_bytes());
        sink.pending.push(b'\n');
        self.flush();
    }

    fn emit(&mut self, rank: usize, kind: Kind, bytes: &[u8], complete: bool) {
        let sink = &mut self.sinks[self.sink_of(kind)];
        if sink.dangling != Some((rank, kind)) {
            if sink.dangling.is_some() {
                sink.pending.push(b'\n');
            }
            if self.tag {
                // Writing into a Vec cannot fail.
                let _ = write!(sink.pending, "[{rank}] ");
            }
        }
        sink.pending.extend_from_slice(bytes);
        sink.dangling = if complete { None } else { Some((rank, kind)) };
    }

    /// Whether oxrun's own output for `kind` failed (say, the reader of a pipe went
    /// away); the ranks' streams of that kind should then be closed too, so they see
    /// the broken pipe themselves, as they would without oxrun in between.
    pub fn broken(&self, kind: Kind) -> bool {
        self.sinks[self.sink_of(kind)].broken
    }

    /// Writes what the writers take of everything emitted so far; a writer that
    /// would block keeps the rest for the next call. An output that fails (say, a
    /// closed pipe) is dropped for the rest of the job rather than stopping it.
    pub fn flush(&mut self) {
        for sink in &mut self.sinks {
            while !sink.pending.is_empty() && !sink.broken {
                match sink.writer.write(&sink.pending) {
                    Ok(0) => sink.broken = true,
                    Ok(n) => drop(sink.pending.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => sink.broken = true,
                }
            }
            if sink.broken {
                sink.pending.clear();
            }
        }
    }

    /// Whether an output holds more than [`BACKLOG`] bytes its writer has not taken
    /// (its reader is slow or stopped): the ranks' streams should wait.
    pub fn backlogged(&self) -> bool {
        self.sinks.iter().any(|s| s.pending.len() > BACKLOG)
    }

    /// Flushes until the writers took everything, or `stop` says to give up (asked
    /// every millisecond meanwhile); returns the writers.
    pub fn into_writers(mut self, stop: &mut impl FnMut() -> bool) -> [W; 2] {
        self.flush();
        while self.sinks.iter().any(|s| !s.pending.is_empty()) && !stop() {
            std::thread::sleep(std::time::Duration::from_millis(1));
            self.flush();
        }
        self.sinks.map(|s| s.writer)
    }
}

/// Bytes an output may hold beyond what its writer took before the ranks' streams
/// wait for it (see [`Output::backlogged`]).
pub const BACKLOG: usize = 4 * CHUNK;

/// A `Write` to a file descriptor oxrun does not own (its stdout or stderr), which
/// waits when the descriptor was left nonblocking by someone else. Only a
/// [`crate::writer_thread::ThreadWriter`]'s thread uses it: it may block.
#[derive(Debug)]
pub struct FdWriter(pub RawFd);

impl Write for FdWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `data` is a valid readable slice of the length passed.
            let n = unsafe { libc::write(self.0, data.as_ptr().cast(), data.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    let mut pfd = libc::pollfd {
                        fd: self.0,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: `pfd` is one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, -1) };
                }
                _ => return Err(err),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(tag: bool) -> Output<Vec<u8>> {
        Output::new(tag, false, Vec::new(), Vec::new())
    }

    fn feed(o: &mut Output<Vec<u8>>, lb: &mut LineBuffer, mut data: &[u8]) {
        while !data.is_empty() {
            let n = lb.read_from(&mut data).unwrap();
            assert!(n > 0);
            o.take_lines(lb);
        }
        o.flush();
    }

    fn stdout(o: &Output<Vec<u8>>) -> String {
        String::from_utf8(o.sinks[0].writer.clone()).unwrap()
    }

    #[test]
    fn whole_lines_and_tags() {
        let mut o = out(true);
        let mut a = LineBuffer::new(0, Kind::Stdout);
        let mut b = LineBuffer::new(1, Kind::Stdout);
        feed(&mut o, &mut a, b"hello wo");
        feed(&mut o, &mut b, b"one\ntw");
        feed(&mut o, &mut a, b"rld\n");
        feed(&mut o, &mut b, b"o\n");
        assert_eq!(stdout(&o), "[1] one\n[0] hello world\n[1] two\n");
    }

    #[test]
    fn final_partial_line_comes_out_whole() {
        let mut o = out(false);
        let mut a = LineBuffer::new(0, Kind::Stdout);
        feed(&mut o, &mut a, b"x\nno newline");
        o.finish(&mut a);
        o.flush();
        assert_eq!(stdout(&o), "x\nno newline");
        // Another stream's line after it starts on a line of its own.
        let mut b = LineBuffer::new(1, Kind::Stdout);
        feed(&mut o, &mut b, b"next\n");
        assert_eq!(stdout(&o), "x\nno newline\nnext\n");
    }

    #[test]
    fn long_line_alone_is_byte_exact() {
        let mut o = out(false);
        let mut a = LineBuffer::new(0, Kind::Stdout);
        let line: Vec<u8> = (0..100_000).map(|i| b'a' + (i % 26) as u8).collect();
        feed(&mut o, &mut a, &line);
        feed(&mut o, &mut a, b"\n");
        assert_eq!(o.sinks[0].writer.len(), line.len() + 1);
        assert_eq!(&o.sinks[0].writer[..line.len()], &line[..]);
    }

    #[test]
    fn long_line_split_only_at_chunk_boundaries() {
        let mut o = out(true);
        let mut a = LineBuffer::new(0, Kind::Stdout);
        let mut b = LineBuffer::new(1, Kind::Stdout);
        let long = vec![b'L'; CHUNK + 10];
        feed(&mut o, &mut a, &long[..CHUNK + 5]);
        feed(&mut o, &mut b, b"short\n");
        feed(&mut o, &mut a, &long[CHUNK + 5..]);
        feed(&mut o, &mut a, b"\n");
        let text = stdout(&o);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), 4 + CHUNK);
        assert_eq!(lines[1], "[1] short");
        assert_eq!(lines[2], "[0] LLLLLLLLLL");
    }

    #[test]
    fn an_unfinished_line_goes_out_once_it_waited() {
        let mut o = out(true);
        let mut a = LineBuffer::new(0, Kind::Stdout);
        let mut b = LineBuffer::new(1, Kind::Stdout);
        feed(&mut o, &mut a, b"prompt: ");
        assert_eq!(a.due(), None, "its pipe may hold more");
        a.drained(Instant::now());
        let due = a.due().expect("an unfinished line waits");
        o.take_stale(&mut a, due - Duration::from_millis(1));
        o.flush();
        assert_eq!(stdout(&o), "");
        o.take_stale(&mut a, due);
        o.flush();
        assert_eq!(stdout(&o), "[0] prompt: ");
        assert_eq!(a.due(), None);
        // Its end follows on the same line, with no tag.
        feed(&mut o, &mut a, b"42\n");
        assert_eq!(stdout(&o), "[0] prompt: 42\n");
        // Another stream's line between the parts ends the first part's line.
        feed(&mut o, &mut a, b"more ");
        a.drained(Instant::now());
        // More of the line resets the wait; then the pipe is empty again.
        feed(&mut o, &mut a, b"and ");
        assert_eq!(a.due(), None);
        a.drained(Instant::now());
        // Not while more of it is left in the pipe (oxrun's reader was behind).
        a.drained(Instant::now());
        a.more_to_read();
        assert_eq!(a.due(), None);
        a.drained(Instant::now());
        let due = a.due().unwrap();
        o.take_stale(&mut a, due);
        feed(&mut o, &mut b, b"other\n");
        feed(&mut o, &mut a, b"dots\n");
        assert_eq!(
            stdout(&o),
            "[0] prompt: 42\n[0] more and \n[1] other\n[0] dots\n"
        );
    }

    #[test]
    fn messages_end_a_dangling_line() {
        let mut o = out(false);
        let mut a = LineBuffer::new(0, Kind::Stderr);
        feed(&mut o, &mut a, b"partial");
        o.finish(&mut a);
        o.message("oxrun: done");
        assert_eq!(
            String::from_utf8(o.sinks[1].writer.clone()).unwrap(),
            "partial\noxrun: done\n"
        );
    }

    /// Where stdout and stderr are one file, a rank's last stdout line without
    /// newline ends before another rank's stderr line and before oxrun's own (both
    /// were written right after it on the same line).
    #[test]
    fn one_file_ends_a_dangling_line_of_the_other_kind() {
        let mut o = Output::new(true, true, Vec::new(), Vec::new());
        let mut a = LineBuffer::new(0, Kind::Stdout);
        let mut b = LineBuffer::new(1, Kind::Stderr);
        feed(&mut o, &mut a, b"partial");
        o.finish(&mut a);
        feed(&mut o, &mut b, b"error\n");
        let mut c = LineBuffer::new(2, Kind::Stdout);
        feed(&mut o, &mut c, b"last");
        o.finish(&mut c);
        o.message("oxrun: done");
        assert_eq!(
            stdout(&o),
            "[0] partial\n[1] error\n[2] last\noxrun: done\n"
        );
        assert!(o.sinks[1].writer.is_empty());
    }
}
