//! The read side of one TCP connection: the peer's hello, then frames (on a connection
//! this rank opened, the peer says hello only if it answers there). Frames go to the
//! sink.
//!
//! Invariants: nothing but the hello is read until it has proved the other end
//! belongs to the job (and, on a connection this rank opened, is the rank it called;
//! on one a peer opened, is a rank that has opened none to this rank before);
//! no frame other than [`Kind::Data`] may carry more than [`MAX_INLINE`] bytes (so a
//! bad length can never make us allocate without bound); data frames are read straight into the receive buffer the sink names,
//! never staged whole.

use std::io::{self, Read};

use super::hello::{HELLO_LEN, Hello};
use crate::error::{Error, Result};
use crate::transport::Sink;
use crate::transport::frame::{HEADER_LEN, Header, Kind};

/// Largest payload of a frame other than data (bounds eager limits too).
pub(crate) const MAX_INLINE: usize = 1 << 20;
/// Size of the read buffer small frames are parsed from.
const READ_BUF: usize = 128 * 1024;

enum State {
    Hello,
    Header,
    Body(Header),
    Data { hdr: Header, done: usize },
}

/// Why [`Incoming::pump`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pump {
    /// The socket has nothing more right now.
    Drained,
    /// The peer closed the connection.
    Closed,
    /// The next frame waits in the connection: it is too far ahead of its peer's
    /// frames on another connection ([`Frames::hold`]).
    Held,
}

/// Where a connection's frames go.
pub(crate) trait Frames: Sink {
    /// Whether the frame `hdr` from `peer` should stay in its connection for now
    /// (read again on a later call).
    fn hold(&self, _peer: usize, _hdr: &Header) -> bool {
        false
    }
}

pub(crate) struct Incoming {
    pub(crate) stream: mio::net::TcpStream,
    pub(crate) peer: Option<usize>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    state: State,
    /// The last read emptied the socket (saves the read that would return EAGAIN).
    emptied: bool,
    /// The poller said the peer's end was reached or the socket failed
    /// ([`Incoming::ended`]).
    ended: bool,
}

enum Fill {
    Got,
    WouldBlock,
    Eof,
}

impl Incoming {
    /// A connection a peer opened: it must say hello first.
    pub(crate) fn new(stream: mio::net::TcpStream) -> Incoming {
        Incoming {
            stream,
            peer: None,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            state: State::Hello,
            emptied: false,
            ended: false,
        }
    }

    /// A connection this rank opened to `peer`: if the peer answers on it, it says
    /// hello first.
    pub(crate) fn opened_to(stream: mio::net::TcpStream, peer: usize) -> Incoming {
        Incoming {
            peer: Some(peer),
            ..Incoming::new(stream)
        }
    }

    /// Notes that the poller reported the end of the peer's stream (or an error) with
    /// the socket's last readiness event: a read that empties the socket of data then
    /// is not the last one, since only a further read returns the end, and no later
    /// event would say it is there (edge-triggered). Reads go on until they see it.
    pub(crate) fn ended(&mut self) {
        self.ended = true;
    }

    fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Reads more into the buffer, making room for at least `want` bytes in all.
    fn fill(&mut self, want: usize) -> io::Result<Fill> {
        if self.start > 0 && (self.end == self.buf.len() || self.start + want > self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if want > self.buf.len() {
            self.buf.resize(want, 0);
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(n) => {
                    // A read that did not fill the buffer emptied the socket: more data
                    // will come with a new readiness event (edge-triggered).
                    self.emptied = self.end + n < self.buf.len();
                    self.end += n;
                    return Ok(Fill::Got);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Fill::WouldBlock),
                Err(e) => return Err(e),
            }
        }
    }

    /// Processes everything the socket holds. `me`, `size` and `secret` check the
    /// hello, and so does `callers` on a connection a peer opened (per peer, whether
    /// it opened one to this rank before: a second is refused); frames go to `sink`.
    pub(crate) fn pump(
        &mut self,
        me: usize,
        size: usize,
        secret: &[u8; 16],
        callers: &[bool],
        sink: &mut dyn Frames,
    ) -> Result<(Pump, bool)> {
        let mut moved = false;
        let protocol = |peer: Option<usize>, detail: String| Error::Protocol {
            rank: me as i32,
            peer: peer.map_or(-1, |p| p as i32),
            detail,
        };
        self.emptied = false;
        loop {
            let need = match &self.state {
                State::Hello => HELLO_LEN,
                State::Header => HEADER_LEN,
                State::Body(h) => h.payload as usize,
                State::Data { .. } => 0,
            };
            if self.buffered() < need {
                if self.emptied && !self.ended {
                    return Ok((Pump::Drained, moved));
                }
                match self.fill(need).map_err(|e| self.io_error(me, e))? {
                    Fill::Got => continue,
                    Fill::WouldBlock => return Ok((Pump::Drained, moved)),
                    Fill::Eof => {
                        if matches!(self.state, State::Header | State::Hello)
                            && self.buffered() == 0
                        {
                            return Ok((Pump::Closed, moved));
                        }
                        return Err(self.lost(me, "connection closed in the middle of a frame"));
                    }
                }
            }
            let moved_before = moved;
            moved = true;
            match std::mem::replace(&mut self.state, State::Header) {
                State::Hello => {
                    let bytes = &self.buf[self.start..self.start + HELLO_LEN];
                    let peer = Hello::verify(bytes, secret, me, size).map_err(|why| {
                        protocol(self.peer, format!("rejected a TCP connection: {why}"))
                    })?;
                    match self.peer {
                        Some(called) if called != peer => {
                            return Err(protocol(
                                self.peer,
                                format!("rank {peer} answered a connection to rank {called}"),
                            ));
                        }
                        None if callers[peer] => {
                            return Err(protocol(
                                None,
                                format!(
                                    "rejected a TCP connection: rank {peer} has opened one to this rank already"
                                ),
                            ));
                        }
                        _ => {}
                    }
                    self.peer = Some(peer);
                    self.start += HELLO_LEN;
                }
                State::Header => {
                    let hdr: Header = bytemuck::pod_read_unaligned(
                        &self.buf[self.start..self.start + HEADER_LEN],
                    );
                    self.start += HEADER_LEN;
                    match hdr.kind() {
                        None => {
                            return Err(protocol(
                                self.peer,
                                format!("unknown frame kind {}", hdr.kind),
                            ));
                        }
                        Some(Kind::Data) => self.state = State::Data { hdr, done: 0 },
                        Some(_) if hdr.payload as usize > MAX_INLINE => {
                            return Err(protocol(
                                self.peer,
                                format!(
                                    "frame of {} bytes exceeds the {MAX_INLINE}-byte limit",
                                    hdr.payload
                                ),
                            ));
                        }
                        Some(_) => self.state = State::Body(hdr),
                    }
                }
                State::Body(hdr) => {
                    let peer = self.peer.expect("hello precedes frames");
                    if sink.hold(peer, &hdr) {
                        self.state = State::Body(hdr);
                        // A frame read by an earlier call that stays held is no
                        // progress: a rank that waits for it sleeps until the frames
                        // before it arrive, instead of spinning.
                        return Ok((Pump::Held, moved_before));
                    }
                    let len = hdr.payload as usize;
                    sink.frame(peer, &hdr, &self.buf[self.start..self.start + len])?;
                    self.start += len;
                }
                State::Data { hdr, mut done } => {
                    let peer = self.peer.expect("hello precedes frames");
                    let total = hdr.payload as usize;
                    let dest = sink.data_dest(peer, &hdr)?;
                    let dest = dest.as_mut_slice();
                    let take = self.buffered().min(total - done);
                    dest[done..done + take]
                        .copy_from_slice(&self.buf[self.start..self.start + take]);
                    self.start += take;
                    done += take;
                    while done < total {
                        match self.stream.read(&mut dest[done..]) {
                            Ok(0) => {
                                return Err(
                                    self.lost(me, "connection closed in the middle of a message")
                                );
                            }
                            Ok(n) => {
                                let short = done + n < total;
                                done += n;
                                if short && !self.ended {
                                    // The socket is empty; wait for its next event.
                                    self.state = State::Data { hdr, done };
                                    return Ok((Pump::Drained, true));
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                self.state = State::Data { hdr, done };
                                return Ok((Pump::Drained, true));
                            }
                            Err(e) => return Err(self.io_error(me, e)),
                        }
                    }
                    sink.data_done(peer, &hdr)?;
                }
            }
        }
    }

    fn lost(&self, me: usize, detail: &str) -> Error {
        Error::PeerLost {
            rank: me as i32,
            peer: self.peer.map_or(-1, |p| p as i32),
            detail: detail.into(),
        }
    }

    fn io_error(&self, me: usize, e: io::Error) -> Error {
        self.lost(me, &format!("reading its connection failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frame::Kind;
    use crate::userbuf::UserBufMut;
    use std::io::Write;

    /// Records what arrives.
    #[derive(Default)]
    struct Recorder {
        frames: Vec<(usize, Header, Vec<u8>)>,
    }

    impl Frames for Recorder {}

    impl Sink for Recorder {
        fn frame(&mut self, peer: usize, hdr: &Header, payload: &[u8]) -> Result<()> {
            self.frames.push((peer, *hdr, payload.to_vec()));
            Ok(())
        }
        fn data_dest(&mut self, _: usize, _: &Header) -> Result<UserBufMut> {
            Err(Error::Protocol {
                rank: 0,
                peer: 1,
                detail: "no receive".into(),
            })
        }
        fn data_done(&mut self, _: usize, _: &Header) -> Result<()> {
            Ok(())
        }
        fn sent(&mut self, _: u64) -> Result<()> {
            Ok(())
        }
    }

    const SECRET: [u8; 16] = [5; 16];

    /// An accepted connection and the writer's end.
    fn pair() -> (Incoming, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let writer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        (
            Incoming::new(mio::net::TcpStream::from_std(accepted)),
            writer,
        )
    }

    /// Pumps until the connection has nothing more (or fails).
    fn pump_all(conn: &mut Incoming, sink: &mut Recorder) -> Result<Pump> {
        for _ in 0..1000 {
            let (p, _) = conn.pump(0, 4, &SECRET, &[false; 4], sink)?;
            if p == Pump::Closed {
                return Ok(p);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            if !sink.frames.is_empty() {
                return Ok(p);
            }
        }
        Ok(Pump::Drained)
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut h = Header::new(Kind::Eager);
        h.tag = 9;
        h.payload = payload.len() as u64;
        let mut out = bytemuck::bytes_of(&h).to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn frames_after_a_good_hello_arrive_whole_even_byte_by_byte() {
        let (mut conn, mut w) = pair();
        let mut bytes = bytemuck::bytes_of(&Hello::new(SECRET, 2, 4)).to_vec();
        bytes.extend(frame(b"hello"));
        for b in bytes {
            w.write_all(&[b]).unwrap();
        }
        let mut sink = Recorder::default();
        pump_all(&mut conn, &mut sink).unwrap();
        assert_eq!(sink.frames.len(), 1);
        let (peer, hdr, payload) = &sink.frames[0];
        assert_eq!((*peer, hdr.tag, &payload[..]), (2, 9, &b"hello"[..]));
    }

    #[test]
    fn on_a_connection_we_opened_only_the_called_rank_may_answer() {
        // Here the "accepted" end plays the rank we called (2) answering.
        for (hello, ok) in [
            (Hello::new(SECRET, 2, 4), true),
            (Hello::new(SECRET, 3, 4), false),
        ] {
            let (conn, mut w) = pair();
            let mut conn = Incoming::opened_to(conn.stream, 2);
            w.write_all(bytemuck::bytes_of(&hello)).unwrap();
            w.write_all(&frame(b"answer")).unwrap();
            let mut sink = Recorder::default();
            let got = pump_all(&mut conn, &mut sink);
            assert_eq!(got.is_ok(), ok, "{got:?}");
            assert_eq!(sink.frames.len(), usize::from(ok));
        }
        // A frame without a hello is refused.
        let (conn, mut w) = pair();
        let mut conn = Incoming::opened_to(conn.stream, 2);
        w.write_all(&frame(b"no hello")).unwrap();
        assert!(pump_all(&mut conn, &mut Recorder::default()).is_err());
    }

    #[test]
    fn a_wrong_secret_is_refused_before_any_frame() {
        let (mut conn, mut w) = pair();
        w.write_all(bytemuck::bytes_of(&Hello::new([6; 16], 2, 4)))
            .unwrap();
        w.write_all(&frame(b"sneaky")).unwrap();
        let mut sink = Recorder::default();
        let err = pump_all(&mut conn, &mut sink).unwrap_err();
        assert!(err.to_string().contains("secret"), "{err}");
        assert!(sink.frames.is_empty());
    }

    #[test]
    fn garbage_oversized_and_truncated_frames_are_errors_not_panics() {
        // Unknown kind.
        let (mut conn, mut w) = pair();
        w.write_all(bytemuck::bytes_of(&Hello::new(SECRET, 1, 4)))
            .unwrap();
        w.write_all(&[0xEE; HEADER_LEN]).unwrap();
        let err = pump_all(&mut conn, &mut Recorder::default()).unwrap_err();
        assert!(err.to_string().contains("unknown frame kind"), "{err}");

        // A length far beyond the limit: refused without allocating it.
        let (mut conn, mut w) = pair();
        w.write_all(bytemuck::bytes_of(&Hello::new(SECRET, 1, 4)))
            .unwrap();
        let mut h = Header::new(Kind::Eager);
        h.payload = u64::MAX / 2;
        w.write_all(bytemuck::bytes_of(&h)).unwrap();
        let err = pump_all(&mut conn, &mut Recorder::default()).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");

        // Closed in the middle of a frame.
        let (mut conn, mut w) = pair();
        w.write_all(bytemuck::bytes_of(&Hello::new(SECRET, 1, 4)))
            .unwrap();
        w.write_all(&frame(b"cut short")[..HEADER_LEN + 3]).unwrap();
        drop(w);
        let err = pump_all(&mut conn, &mut Recorder::default()).unwrap_err();
        assert!(err.to_string().contains("closed in the middle"), "{err}");

        // A data frame naming no receive.
        let (mut conn, mut w) = pair();
        w.write_all(bytemuck::bytes_of(&Hello::new(SECRET, 1, 4)))
            .unwrap();
        let mut h = Header::new(Kind::Data);
        h.payload = 10;
        w.write_all(bytemuck::bytes_of(&h)).unwrap();
        assert!(pump_all(&mut conn, &mut Recorder::default()).is_err());
    }

    #[test]
    fn a_clean_close_between_frames_is_reported_as_closed() {
        let (mut conn, mut w) = pair();
        w.write_all(bytemuck::bytes_of(&Hello::new(SECRET, 3, 4)))
            .unwrap();
        drop(w);
        let mut sink = Recorder::default();
        let mut last = Pump::Drained;
        for _ in 0..100 {
            last = conn.pump(0, 4, &SECRET, &[false; 4], &mut sink).unwrap().0;
            if last == Pump::Closed {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(last, Pump::Closed);
        assert_eq!(conn.peer, Some(3));
    }
}
