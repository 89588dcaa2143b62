//! Matching order across a peer's connections.
//!
//! A pair of ranks that both opened a connection before either hello arrived has two
//! until the higher rank moves to the lower's (see the module documentation of the
//! transport), and MPI matches a peer's messages in the order they were sent whichever
//! connection they took. So a sender numbers every frame but data ([`numbered`]: eager,
//! request to send, clear-to-send, whose refusal completes a send, synchronous-send
//! acknowledgements and credit returns, and the goodbye that must come after all of
//! them, since it fails what still waits for the peer) per receiver, in the header's
//! `seq`, and the receiver hands them on in that order: a frame that overtook an
//! earlier one on the other connection waits here, copied, until the earlier one has
//! arrived. Data is handed on at once (it cannot come before the clear-to-send it
//! answers, and a goodbye does not fail a receive that is taking data).
//!
//! A frame too far ahead stays in its connection instead ([`HOLD_AHEAD`]), which the
//! transport reads again after every progress call's other reads until it moves (its
//! bytes were signalled once; the poller says nothing more of them), or until its
//! wait is a protocol error (`HOLD_TIMEOUT`: the peer skipped numbers). Frames that
//! wait here are the same error once as long passed with none of their peer's frames
//! passed on ([`Order::check_waiting`]), in run time ([`RunClock`]: the time the job
//! was stopped does not count).
//!
//! Bound: what waits here is what one connection got ahead of the other. A rank moves
//! to the lower rank's connection only once nothing waits to be written on its own,
//! and the lower rank reads the higher rank's own connection on every progress call
//! until it closes (the higher rank shuts it once it has moved), so a numbered frame
//! waits at most until the frames before it, already in the kernel's buffers, are
//! read in the same call, in which far fewer than 2^15 small frames can follow it;
//! the sender's eager credit bounds the data among them. (The lower rank once read
//! that connection only when it asked the poller, every 16th call, and a rank that
//! sent 40 000 empty messages after its first while its peer computed had more than
//! 2^15 of them wait here.) In bytes: the only numbered frames with a payload over TCP
//! are eager messages, and those a sender has on their way hold its eager credit at
//! this rank, so their payloads never add up to more than that credit; early frames
//! whose payloads do are a protocol error. So a peer keeps at most its share of the
//! unexpected budget here (however many frames; fewer than [`HOLD_AHEAD`]), not
//! [`HOLD_AHEAD`] frames of up to 1 MiB each. Invariant: numbers are consecutive per
//! (sender, receiver) modulo 2^16; one behind the next expected, more than half the
//! space ahead, or twice the same, is a protocol error.

use std::collections::VecDeque;
use std::time::Duration;

use super::incoming::Frames;
use super::run_clock::RunClock;
use crate::error::{Error, Result};
use crate::transport::Sink;
use crate::transport::frame::{Header, Kind};
use crate::userbuf::UserBufMut;

/// How far ahead of the next expected frame from its peer a frame may be and still be
/// read: one further ahead waits in its connection
/// ([`super::incoming::Pump::Held`]) while the frames before it are read from the
/// other (a higher peer's first frames on its own connection, which this rank may not
/// even have accepted yet when the peer's later frames come on this rank's).
const HOLD_AHEAD: u16 = 1024;

/// A numbered frame that arrived early, with a copy of its payload.
type Early = (Header, Vec<u8>);

/// Whether frames of `kind` are numbered: every frame but data (and unknown kinds,
/// which the engine refuses).
pub(crate) fn numbered(kind: Option<Kind>) -> bool {
    !matches!(kind, None | Some(Kind::Data))
}

/// The numbers of this rank's frames to each peer, and of each peer's frames to it.
pub(crate) struct Order {
    me: usize,
    /// Per peer, the number of this rank's next numbered frame to it.
    next_out: Vec<u16>,
    /// Per peer, the number of the next numbered frame expected from it.
    next_in: Vec<u16>,
    /// Per peer, numbered frames that arrived early: slot `i` holds number
    /// `next_in + i` (slot 0 is always empty: that frame would have been passed on).
    early: Vec<VecDeque<Option<Early>>>,
    /// Per peer, the payload bytes of its early frames.
    early_bytes: Vec<u64>,
    /// The eager credit each peer has at this rank: the most its early frames' payloads
    /// may add up to.
    credit: u64,
    /// Per peer with early frames, since when (in run time) none of its frames was
    /// passed on.
    waiting: Vec<Option<Duration>>,
    /// How many peers have early frames.
    waiters: usize,
    /// The run time their wait counts in: time stopped (Ctrl-Z) is left out.
    clock: RunClock,
}

impl Order {
    /// Rank `me` of `size`, which gives each peer `credit` bytes of eager credit.
    pub(crate) fn new(me: usize, size: usize, credit: u64) -> Order {
        Order {
            me,
            next_out: vec![0; size],
            next_in: vec![0; size],
            early: (0..size).map(|_| VecDeque::new()).collect(),
            early_bytes: vec![0; size],
            credit,
            waiting: vec![None; size],
            waiters: 0,
            clock: RunClock::new(),
        }
    }

    /// Whether frames that arrived early wait for one before them.
    pub(crate) fn holds_early(&self) -> bool {
        self.waiters > 0
    }

    /// Fails when a peer's early frames have waited `timeout` with none of its frames
    /// passed on: the frame they wait for never came (the peer skipped a number). A
    /// frame far ahead waits in its connection instead (see `HOLD_TIMEOUT`).
    pub(crate) fn check_waiting(&mut self, timeout: Duration) -> Result<()> {
        if self.waiters == 0 {
            return Ok(());
        }
        let now = self.clock.now();
        for (peer, since) in self.waiting.iter().enumerate() {
            if since.is_some_and(|t| now - t >= timeout) {
                let first = self.early[peer].iter().flatten().next();
                return Err(Error::Protocol {
                    rank: self.me as i32,
                    peer: peer as i32,
                    detail: format!(
                        "frame number {} waited {:.0} s for number {} before it, which never came",
                        first.map_or(0, |(h, _)| h.seq),
                        timeout.as_secs_f64(),
                        self.next_in[peer]
                    ),
                });
            }
        }
        Ok(())
    }

    /// Numbers `hdr` if its kind takes part in matching, as the next frame to `peer`.
    pub(crate) fn stamp(&mut self, peer: usize, hdr: &mut Header) {
        if numbered(hdr.kind()) {
            hdr.seq = self.next_out[peer];
            self.next_out[peer] = self.next_out[peer].wrapping_add(1);
        }
    }

    /// `sink`, with frames from peers put back in order on the way.
    pub(crate) fn ordering<'a>(&'a mut self, sink: &'a mut dyn Sink) -> Ordered<'a> {
        Ordered { order: self, sink }
    }
}

/// A sink that receives frames as they come off the connections and passes them on
/// in each sender's order.
pub(crate) struct Ordered<'a> {
    order: &'a mut Order,
    sink: &'a mut dyn Sink,
}

impl Order {
    /// The frame numbered `next_in` from `peer` is being passed on: expect the next
    /// (its slot, empty, goes; the next number's slot is at the front).
    fn advance(&mut self, peer: usize) {
        self.next_in[peer] = self.next_in[peer].wrapping_add(1);
        self.early[peer].pop_front();
    }
}

impl Frames for Ordered<'_> {
    fn hold(&self, peer: usize, hdr: &Header) -> bool {
        numbered(hdr.kind()) && {
            let ahead = hdr.seq.wrapping_sub(self.order.next_in[peer]);
            (HOLD_AHEAD..1 << 15).contains(&ahead)
        }
    }
}

impl Sink for Ordered<'_> {
    fn frame(&mut self, peer: usize, hdr: &Header, payload: &[u8]) -> Result<()> {
        if !numbered(hdr.kind()) {
            return self.sink.frame(peer, hdr, payload);
        }
        let o = &mut *self.order;
        let ahead = hdr.seq.wrapping_sub(o.next_in[peer]);
        if ahead >= 1 << 15 {
            return Err(Error::Protocol {
                rank: o.me as i32,
                peer: peer as i32,
                detail: format!(
                    "frame number {} where {} was next (a frame came twice, or from the past)",
                    hdr.seq, o.next_in[peer]
                ),
            });
        }
        if ahead > 0 {
            let early = &mut o.early[peer];
            let at = usize::from(ahead);
            if early.len() <= at {
                early.resize(at + 1, None);
            }
            if early[at].is_some() {
                return Err(Error::Protocol {
                    rank: o.me as i32,
                    peer: peer as i32,
                    detail: format!("frame number {} came twice", hdr.seq),
                });
            }
            let bytes = o.early_bytes[peer] + payload.len() as u64;
            if bytes > o.credit {
                return Err(Error::Protocol {
                    rank: o.me as i32,
                    peer: peer as i32,
                    detail: format!(
                        "frames kept aside until number {} comes would hold {bytes} bytes, \
                         more than its {} bytes of eager credit",
                        o.next_in[peer], o.credit
                    ),
                });
            }
            o.early_bytes[peer] = bytes;
            early[at] = Some((*hdr, payload.to_vec()));
            if o.waiting[peer].is_none() {
                o.waiting[peer] = Some(o.clock.now());
                o.waiters += 1;
            }
            return Ok(());
        }
        o.advance(peer);
        self.sink.frame(peer, hdr, payload)?;
        // Frames that waited for this one: each in turn is now at the front.
        while let Some((h, p)) = self.order.early[peer].front_mut().and_then(Option::take) {
            self.order.advance(peer);
            self.order.early_bytes[peer] -= p.len() as u64;
            self.sink.frame(peer, &h, &p)?;
        }
        // A frame passed on: those still early wait afresh, for the next hole.
        let o = &mut *self.order;
        if o.waiting[peer].is_some() {
            if o.early[peer].is_empty() {
                o.waiting[peer] = None;
                o.waiters -= 1;
            } else {
                o.waiting[peer] = Some(o.clock.now());
            }
        }
        Ok(())
    }

    fn data_dest(&mut self, peer: usize, hdr: &Header) -> Result<UserBufMut> {
        self.sink.data_dest(peer, hdr)
    }

    fn data_done(&mut self, peer: usize, hdr: &Header) -> Result<()> {
        self.sink.data_done(peer, hdr)
    }

    fn sent(&mut self, token: u64) -> Result<()> {
        self.sink.sent(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eager credit per peer: more than any test here keeps aside.
    const CREDIT: u64 = 1 << 20;

    /// Records the frames passed on: (peer, kind, number, payload).
    #[derive(Default)]
    struct Recorder(Vec<(usize, u8, u16, Vec<u8>)>);

    impl Sink for Recorder {
        fn frame(&mut self, peer: usize, hdr: &Header, payload: &[u8]) -> Result<()> {
            self.0.push((peer, hdr.kind, hdr.seq, payload.to_vec()));
            Ok(())
        }
        fn data_dest(&mut self, _: usize, _: &Header) -> Result<UserBufMut> {
            unreachable!("no data frames here")
        }
        fn data_done(&mut self, _: usize, _: &Header) -> Result<()> {
            Ok(())
        }
        fn sent(&mut self, _: u64) -> Result<()> {
            Ok(())
        }
    }

    /// `n` numbered frames from rank 1 to rank 0, stamped as the sender would.
    fn stamped(n: usize) -> Vec<Header> {
        let mut sender = Order::new(1, 2, CREDIT);
        (0..n)
            .map(|i| {
                let mut h = Header::new(if i % 3 == 2 { Kind::Rts } else { Kind::Eager });
                h.tag = i as i32;
                sender.stamp(0, &mut h);
                h
            })
            .collect()
    }

    fn deliver(order: &mut Order, sink: &mut Recorder, frames: &[Header], arrival: &[usize]) {
        for &i in arrival {
            let h = frames[i];
            order
                .ordering(sink)
                .frame(1, &h, &[i as u8])
                .expect("in the window");
        }
    }

    #[test]
    fn frames_that_overtook_others_wait_for_them() {
        let frames = stamped(7);
        let mut order = Order::new(0, 2, CREDIT);
        let mut sink = Recorder::default();
        // 3 and 2 overtake 0 and 1; 6 overtakes 4 and 5 (with a hole at 5 for a while).
        deliver(&mut order, &mut sink, &frames, &[3, 2]);
        assert!(sink.0.is_empty());
        assert_eq!(order.waiters, 1);
        deliver(&mut order, &mut sink, &frames, &[0]);
        assert_eq!(sink.0.len(), 1);
        deliver(&mut order, &mut sink, &frames, &[1, 6, 4]);
        assert_eq!(sink.0.len(), 5, "0-4 passed on, 6 waits for 5");
        deliver(&mut order, &mut sink, &frames, &[5]);
        let tags: Vec<u8> = sink.0.iter().map(|f| f.3[0]).collect();
        assert_eq!(tags, [0, 1, 2, 3, 4, 5, 6]);
        assert!(order.early[1].is_empty() && order.early_bytes[1] == 0);
        assert_eq!((order.waiters, order.waiting[1]), (0, None));
    }

    #[test]
    fn early_frames_past_the_credit_are_an_error() {
        let frames = stamped(5);
        let mut order = Order::new(0, 2, 1000);
        let mut sink = Recorder::default();
        // 1 overtakes 0 with 600 bytes; once both are passed on, 3 may keep as many
        // aside, but not 4 as well.
        let mut early =
            |order: &mut Order, i: usize| order.ordering(&mut sink).frame(1, &frames[i], &[0; 600]);
        early(&mut order, 1).unwrap();
        order
            .ordering(&mut Recorder::default())
            .frame(1, &frames[0], &[])
            .unwrap();
        assert_eq!(order.early_bytes[1], 0);
        early(&mut order, 3).unwrap();
        match early(&mut order, 4) {
            Err(Error::Protocol {
                rank: 0,
                peer: 1,
                detail,
            }) => assert!(detail.contains("would hold 1200 bytes"), "{detail}"),
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn a_goodbye_does_not_overtake_an_acknowledgement_or_a_credit_return() {
        // The higher rank acknowledges a synchronous send and returns credit on its own
        // connection behind a backlog, then finalizes on the lower rank's: its goodbye
        // would fail the synchronous send still waiting for the acknowledgement.
        let mut higher = Order::new(1, 2, CREDIT);
        let mut frames = [Kind::Eager, Kind::SyncAck, Kind::Credit, Kind::Bye].map(Header::new);
        for h in &mut frames {
            higher.stamp(0, h);
        }
        let mut order = Order::new(0, 2, CREDIT);
        let mut sink = Recorder::default();
        order.ordering(&mut sink).frame(1, &frames[3], &[]).unwrap();
        assert!(sink.0.is_empty(), "the goodbye waits");
        for h in &frames[..3] {
            order.ordering(&mut sink).frame(1, h, &[]).unwrap();
        }
        let kinds: Vec<u8> = sink.0.iter().map(|f| f.1).collect();
        assert_eq!(kinds, frames.map(|h| h.kind));
    }

    #[test]
    fn a_frame_far_ahead_waits_in_its_connection() {
        let frames = stamped(HOLD_AHEAD as usize + 2);
        let mut order = Order::new(0, 2, CREDIT);
        let mut sink = Recorder::default();
        let ordered = order.ordering(&mut sink);
        assert!(!ordered.hold(1, &frames[0]) && !ordered.hold(1, &frames[HOLD_AHEAD as usize - 1]));
        assert!(ordered.hold(1, &frames[HOLD_AHEAD as usize]));
        assert!(
            !ordered.hold(1, &Header::new(Kind::Data)),
            "data is not numbered"
        );
        deliver(&mut order, &mut sink, &frames, &[0]);
        assert!(
            !order
                .ordering(&mut sink)
                .hold(1, &frames[HOLD_AHEAD as usize])
        );
    }

    #[test]
    fn a_goodbye_does_not_overtake_a_refusal() {
        // The receiver of a long message refuses it (a clear-to-send that truncates,
        // on its own connection), then finalizes (goodbye on the sender's, which it
        // has moved to).
        let mut receiver = Order::new(1, 2, CREDIT);
        let mut cts = Header::new(Kind::Cts);
        let mut bye = Header::new(Kind::Bye);
        receiver.stamp(0, &mut cts);
        receiver.stamp(0, &mut bye);
        let mut order = Order::new(0, 2, CREDIT);
        let mut sink = Recorder::default();
        order.ordering(&mut sink).frame(1, &bye, &[]).unwrap();
        assert!(sink.0.is_empty(), "the goodbye waits");
        order.ordering(&mut sink).frame(1, &cts, &[]).unwrap();
        let kinds: Vec<u8> = sink.0.iter().map(|f| f.1).collect();
        assert_eq!(kinds, [Kind::Cts as u8, Kind::Bye as u8]);
    }

    #[test]
    fn numbers_wrap_around() {
        let frames = stamped(70_000);
        let mut order = Order::new(0, 2, CREDIT);
        let mut sink = Recorder::default();
        // Pairs swapped all the way through 2^16 and beyond.
        let arrival: Vec<usize> = (0..70_000).map(|i| i ^ 1).collect();
        deliver(&mut order, &mut sink, &frames, &arrival);
        assert_eq!(sink.0.len(), 70_000);
        assert!(sink.0.iter().enumerate().all(|(i, f)| f.3[0] == i as u8));
    }

    #[test]
    fn unnumbered_frames_pass_at_once_and_repeats_are_errors() {
        let frames = stamped(2);
        let mut order = Order::new(0, 2, CREDIT);
        let mut sink = Recorder::default();
        deliver(&mut order, &mut sink, &frames, &[1]);
        let data = Header::new(Kind::Data);
        order.ordering(&mut sink).frame(1, &data, &[]).unwrap();
        assert_eq!(sink.0.len(), 1, "data does not wait");
        deliver(&mut order, &mut sink, &frames, &[0]);
        let again = order.ordering(&mut sink).frame(1, &frames[0], &[]);
        assert!(again.is_err(), "a number from the past");
        let frames = stamped(4);
        let mut order = Order::new(0, 2, CREDIT);
        deliver(&mut order, &mut sink, &frames, &[2]);
        let twice = order.ordering(&mut sink).frame(1, &frames[2], &[]);
        assert!(twice.is_err(), "an early number twice");
    }
}
