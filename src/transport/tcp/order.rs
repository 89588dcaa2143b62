//! Matching order across a peer's connections.
//!
//! A pair of ranks that both opened a connection before either hello arrived has two
//! until the higher rank moves to the lower's (see the module documentation of the
//! transport), and MPI matches a peer's messages in the order they were sent whichever
//! connection they took. So a sender numbers every frame that takes part in matching or
//! must not be overtaken ([`numbered`]: eager, request to send, clear-to-send, whose
//! refusal completes a send, and the goodbye that must come after all of them) per
//! receiver, in the header's `seq`, and the receiver hands them on in that order: a
//! frame that overtook an earlier one on the other connection waits here, copied,
//! until the earlier one has arrived. Data, synchronous-send acknowledgements and
//! credit returns are handed on at once (none of them can come before the numbered
//! frame it follows from).
//!
//! Bound: what waits here is what one connection got ahead of the other. A rank moves
//! to the lower rank's connection only once nothing waits to be written on its own, so
//! a numbered frame waits at most for the kernel's socket buffers to drain, a few
//! milliseconds, in which far fewer than 2^15 small frames can follow it; the sender's
//! eager credit bounds the data among them. Invariant: numbers are consecutive per
//! (sender, receiver) modulo 2^16; one behind the next expected, more than half the
//! space ahead, or twice the same, is a protocol error.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::transport::Sink;
use crate::transport::frame::{Header, Kind};
use crate::userbuf::UserBufMut;

/// A numbered frame that arrived early, with a copy of its payload.
type Early = (Header, Vec<u8>);

/// Whether frames of `kind` are numbered.
pub(crate) fn numbered(kind: Option<Kind>) -> bool {
    matches!(kind, Some(Kind::Eager | Kind::Rts | Kind::Cts | Kind::Bye))
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
}

impl Order {
    pub(crate) fn new(me: usize, size: usize) -> Order {
        Order {
            me,
            next_out: vec![0; size],
            next_in: vec![0; size],
            early: (0..size).map(|_| VecDeque::new()).collect(),
        }
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
            early[at] = Some((*hdr, payload.to_vec()));
            return Ok(());
        }
        o.advance(peer);
        self.sink.frame(peer, hdr, payload)?;
        // Frames that waited for this one: each in turn is now at the front.
        while let Some((h, p)) = self.order.early[peer].front_mut().and_then(Option::take) {
            self.order.advance(peer);
            self.sink.frame(peer, &h, &p)?;
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
        let mut sender = Order::new(1, 2);
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
        let mut order = Order::new(0, 2);
        let mut sink = Recorder::default();
        // 3 and 2 overtake 0 and 1; 6 overtakes 4 and 5 (with a hole at 5 for a while).
        deliver(&mut order, &mut sink, &frames, &[3, 2]);
        assert!(sink.0.is_empty());
        deliver(&mut order, &mut sink, &frames, &[0]);
        assert_eq!(sink.0.len(), 1);
        deliver(&mut order, &mut sink, &frames, &[1, 6, 4]);
        assert_eq!(sink.0.len(), 5, "0-4 passed on, 6 waits for 5");
        deliver(&mut order, &mut sink, &frames, &[5]);
        let tags: Vec<u8> = sink.0.iter().map(|f| f.3[0]).collect();
        assert_eq!(tags, [0, 1, 2, 3, 4, 5, 6]);
        assert!(order.early[1].is_empty());
    }

    #[test]
    fn a_goodbye_does_not_overtake_a_refusal() {
        // The receiver of a long message refuses it (a clear-to-send that truncates,
        // on its own connection), then finalizes (goodbye on the sender's, which it
        // has moved to).
        let mut receiver = Order::new(1, 2);
        let mut cts = Header::new(Kind::Cts);
        let mut bye = Header::new(Kind::Bye);
        receiver.stamp(0, &mut cts);
        receiver.stamp(0, &mut bye);
        let mut order = Order::new(0, 2);
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
        let mut order = Order::new(0, 2);
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
        let mut order = Order::new(0, 2);
        let mut sink = Recorder::default();
        deliver(&mut order, &mut sink, &frames, &[1]);
        let credit = Header::new(Kind::Credit);
        order.ordering(&mut sink).frame(1, &credit, &[]).unwrap();
        assert_eq!(sink.0.len(), 1, "a credit return does not wait");
        deliver(&mut order, &mut sink, &frames, &[0]);
        let again = order.ordering(&mut sink).frame(1, &frames[0], &[]);
        assert!(again.is_err(), "a number from the past");
        let frames = stamped(4);
        let mut order = Order::new(0, 2);
        deliver(&mut order, &mut sink, &frames, &[2]);
        let twice = order.ordering(&mut sink).frame(1, &frames[2], &[]);
        assert!(twice.is_err(), "an early number twice");
    }
}
