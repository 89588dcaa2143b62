//! One rank's PMI socket as seen by oxrun: nonblocking reads cut into lines, and a
//! queue of reply bytes flushed as the socket accepts them.
//!
//! Invariants: at most [`MAX_LINE`] bytes of an unfinished request are held (a longer
//! line is malformed); the reply queue grows past [`BACKLOG_LIMIT`] only by the replies
//! to requests already read, because the caller stops reading while
//! [`PmiConn::backlogged`] (a rank that never reads its replies cannot make oxrun
//! grow without bound).

use std::io::{self, Read, Write};

use mio::net::UnixStream;
use oxmpi::bootstrap::wire::{Line, MAX_LINE, WireError};

/// Reply bytes queued before oxrun stops reading requests from a rank.
pub const BACKLOG_LIMIT: usize = 64 << 10;

/// The result of asking for the next request.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A complete, parsed request.
    Line(Line),
    /// No complete line yet; wait for readiness.
    WouldBlock,
    /// The rank closed its end (or it broke).
    Closed,
    /// A line that is not PMI; the connection must be dropped.
    Malformed(String),
}

/// oxrun's end of one rank's PMI socket.
#[derive(Debug)]
pub struct PmiConn {
    stream: UnixStream,
    inbuf: Box<[u8; MAX_LINE]>,
    in_len: usize,
    /// Bytes before `in_scan` hold no newline.
    in_scan: usize,
    eof: bool,
    out: Vec<u8>,
    out_pos: usize,
    write_broken: bool,
}

impl PmiConn {
    /// Wraps a nonblocking stream.
    pub fn new(stream: UnixStream) -> PmiConn {
        PmiConn {
            stream,
            inbuf: Box::new([0; MAX_LINE]),
            in_len: 0,
            in_scan: 0,
            eof: false,
            out: Vec::new(),
            out_pos: 0,
            write_broken: false,
        }
    }

    /// The socket, to register with the poller.
    pub fn stream_mut(&mut self) -> &mut UnixStream {
        &mut self.stream
    }

    /// Whether so many replies wait that no more requests should be read for now.
    pub fn backlogged(&self) -> bool {
        self.out.len() - self.out_pos > BACKLOG_LIMIT
    }

    /// Queues one reply and writes what the socket takes.
    pub fn send(&mut self, line: &Line) {
        if self.write_broken {
            return;
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, "{line}");
        self.flush();
    }

    /// Writes queued replies until done or the socket is full. A rank that is gone
    /// just loses its replies.
    pub fn flush(&mut self) {
        while self.out_pos < self.out.len() && !self.write_broken {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => self.write_broken = true,
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.write_broken = true,
            }
        }
        if self.write_broken || self.out_pos == self.out.len() {
            self.out = Vec::new();
            self.out_pos = 0;
        }
    }

    /// The next complete request, reading from the socket as needed.
    pub fn next_line(&mut self) -> Next {
        loop {
            if let Some(next) = self.take_buffered() {
                return next;
            }
            if self.eof {
                return Next::Closed;
            }
            if self.in_len == MAX_LINE {
                return Next::Malformed(format!("line longer than {MAX_LINE} bytes"));
            }
            match self.stream.read(&mut self.inbuf[self.in_len..]) {
                Ok(0) => {
                    self.eof = true;
                    // A last line without newline still counts.
                    let last = parse(&self.inbuf[..self.in_len]);
                    self.in_len = 0;
                    self.in_scan = 0;
                    return last.unwrap_or(Next::Closed);
                }
                Ok(n) => self.in_len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::WouldBlock,
                Err(_) => {
                    self.eof = true;
                    return Next::Closed;
                }
            }
        }
    }

    /// A buffered complete line, if there is one (blank lines are skipped).
    fn take_buffered(&mut self) -> Option<Next> {
        while let Some(i) = self.inbuf[self.in_scan..self.in_len]
            .iter()
            .position(|&b| b == b'\n')
        {
            let end = self.in_scan + i + 1;
            let next = parse(&self.inbuf[..end]);
            self.inbuf.copy_within(end..self.in_len, 0);
            self.in_len -= end;
            self.in_scan = 0;
            if next.is_some() {
                return next;
            }
        }
        self.in_scan = self.in_len;
        None
    }
}

/// Parses one line; `None` for a blank line.
fn parse(bytes: &[u8]) -> Option<Next> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Some(Next::Malformed("line is not UTF-8".to_owned()));
    };
    if text.trim().is_empty() {
        return None;
    }
    Some(match Line::parse(text) {
        Ok(line) if line.cmd().is_empty() || line.cmd().contains('=') => {
            Next::Malformed(format!("{:?} has a bad command", shorten(text)))
        }
        Ok(line) => Next::Line(line),
        Err(e) => {
            let why = match e {
                WireError::NoCmd(_) => "does not start with cmd=",
                WireError::BadPair(_) => "has a word without '='",
                WireError::BadToken(_) => "has a bad key or value",
                WireError::TooLong => "is too long",
            };
            Next::Malformed(format!("{:?} {why}", shorten(text)))
        }
    })
}

/// A line cut to a length fit for an error message.
fn shorten(text: &str) -> String {
    let text = text.trim_end();
    match text.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream as StdStream;

    fn pair() -> (PmiConn, StdStream) {
        let (a, b) = StdStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (PmiConn::new(UnixStream::from_std(a)), b)
    }

    #[test]
    fn lines_split_across_reads() {
        let (mut c, mut peer) = pair();
        assert_eq!(c.next_line(), Next::WouldBlock);
        peer.write_all(b"cmd=init pmi_vers").unwrap();
        assert_eq!(c.next_line(), Next::WouldBlock);
        peer.write_all(b"ion=1 pmi_subversion=1\n\ncmd=get_maxes\ncmd=barr")
            .unwrap();
        match c.next_line() {
            Next::Line(l) => assert_eq!(l.get("pmi_version"), Some("1")),
            other => panic!("{other:?}"),
        }
        match c.next_line() {
            Next::Line(l) => assert_eq!(l.cmd(), "get_maxes"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.next_line(), Next::WouldBlock);
        peer.write_all(b"ier_in").unwrap();
        drop(peer);
        match c.next_line() {
            Next::Line(l) => assert_eq!(l.cmd(), "barrier_in"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.next_line(), Next::Closed);
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            &b"hello\n"[..],
            b"cmd=put key\n",
            b"\xff\xfe\n",
            b"cmd= x=1\n",
        ] {
            let (mut c, mut peer) = pair();
            peer.write_all(bad).unwrap();
            assert!(matches!(c.next_line(), Next::Malformed(_)), "{bad:?}");
        }
    }

    #[test]
    fn overlong_line_is_malformed_without_growing() {
        let (mut c, mut peer) = pair();
        let big = vec![b'a'; MAX_LINE + 100];
        std::thread::spawn(move || {
            let _ = peer.write_all(&big);
        });
        let mut n = 0;
        loop {
            match c.next_line() {
                Next::WouldBlock => std::thread::yield_now(),
                Next::Malformed(m) => {
                    assert!(m.contains("longer"), "{m}");
                    break;
                }
                other => panic!("{other:?}"),
            }
            n += 1;
            assert!(n < 10_000_000);
        }
    }

    #[test]
    fn replies_queue_and_flush() {
        let (mut c, mut peer) = pair();
        let line = Line::parse("cmd=barrier_out rc=0").unwrap();
        // Fill the socket until replies queue up.
        let mut sent = 0;
        while !c.backlogged() {
            c.send(&line);
            sent += 1;
        }
        let expected = sent * line.to_string().len();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        peer.set_nonblocking(true).unwrap();
        while total < expected {
            match peer.read(&mut buf) {
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.flush(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(total, expected);
        assert!(!c.backlogged());
        // A peer that is gone drops replies instead of queueing them.
        drop(peer);
        for _ in 0..100_000 {
            c.send(&line);
        }
        assert!(!c.backlogged());
    }
}
