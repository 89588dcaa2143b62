//! The write side of one TCP connection: a FIFO of frames written with vectored
//! writes (the stream itself belongs to the connection's read side).
//!
//! Invariant: frames leave in the order they were pushed, and a frame's payload is
//! read from the user's buffer until its last byte is written, after which its token
//! is reported exactly once. A frame written whole by [`Outgoing::push`] is never
//! queued and its token never reported (the caller learns it from the return value).

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use crate::transport::frame::{HEADER_LEN, OutFrame};

/// Most slices handed to one `writev`.
const MAX_IOV: usize = 64;

#[derive(Default)]
pub(crate) struct Outgoing {
    queue: VecDeque<OutFrame>,
    /// Bytes of the front frame (header and payload) already written.
    head_done: usize,
    /// Whether the poller reports writability (only while frames wait).
    pub(crate) watching_writable: bool,
}

/// Writes what `stream` takes of `iov` now (0 when it is full). `sendmsg` with
/// `MSG_NOSIGNAL` rather than `writev`: writing to a connection its peer has closed
/// is an error to report (or, while finalizing, to ignore), never a SIGPIPE that
/// kills a program which left that signal at its default action.
fn write_some(stream: &mut mio::net::TcpStream, iov: &[IoSlice<'_>]) -> io::Result<usize> {
    let socket = socket2::SockRef::from(&*stream);
    loop {
        match socket.send_vectored_with_flags(iov, libc::MSG_NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}

impl Outgoing {
    /// Writes `frame` to `stream` now if nothing is queued ahead of it, else queues
    /// it. Returns true when it was written whole.
    pub(crate) fn push(
        &mut self,
        stream: &mut mio::net::TcpStream,
        frame: OutFrame,
    ) -> io::Result<bool> {
        if self.queue.is_empty() {
            let hdr = bytemuck::bytes_of(&frame.hdr);
            let body = frame.payload.bytes();
            let n = write_some(stream, &[IoSlice::new(hdr), IoSlice::new(body)])?;
            if n == hdr.len() + body.len() {
                return Ok(true);
            }
            self.head_done = n;
        }
        self.queue.push_back(frame);
        Ok(false)
    }

    /// Whether frames wait to be written.
    pub(crate) fn has_queue(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Sets the token of the last queued frame.
    pub(crate) fn tag_last(&mut self, token: u64) {
        if let Some(f) = self.queue.back_mut() {
            f.token = Some(token);
        }
    }

    /// Writes queued frames to `stream` until it is full or the queue empty, calling
    /// `sent` with the token of each frame that finished.
    pub(crate) fn flush(
        &mut self,
        stream: &mut mio::net::TcpStream,
        sent: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        while !self.queue.is_empty() {
            let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(MAX_IOV);
            let mut skip = self.head_done;
            for f in self.queue.iter() {
                for part in [bytemuck::bytes_of(&f.hdr), f.payload.bytes()] {
                    if skip >= part.len() {
                        skip -= part.len();
                        continue;
                    }
                    iov.push(IoSlice::new(&part[skip..]));
                    skip = 0;
                }
                if iov.len() + 2 > MAX_IOV {
                    break;
                }
            }
            let mut n = write_some(stream, &iov)?;
            drop(iov);
            if n == 0 {
                return Ok(());
            }
            while n > 0 {
                let front = self
                    .queue
                    .front()
                    .expect("bytes written belong to a queued frame");
                let left = HEADER_LEN + front.payload.len() - self.head_done;
                if n < left {
                    self.head_done += n;
                    break;
                }
                n -= left;
                self.head_done = 0;
                if let Some(token) = self.queue.pop_front().and_then(|f| f.token) {
                    sent(token);
                }
            }
        }
        Ok(())
    }
}
