//! How a rank asks the ranks of its node to send it mid-size messages (above
//! [`READ_FROM`](super::READ_FROM) up to the eager limit): eagerly, or offered for
//! reading. The receiver learns which way is faster (`engine::rendezvous`); a sender
//! decides each message by two words on the receiver's control page, on the doorbell's
//! line, which it reads after every send anyway (bit `c` of each: messages of `2^c` to
//! `2^(c+1) - 1` bytes):
//!
//! - the ask word (`segment::ctl::READ_CLASSES`): set, offer the class's messages for
//!   reading; clear, send them eagerly. The receiver keeps it at the way it finds
//!   faster.
//! - the explore word (`segment::ctl::EXPLORE_CLASSES`): set, the next [`EXPLORED`]
//!   messages of the class go the way the ask word does not say. The first sender to
//!   see it clears it (claims it) and sends that many in a row the other way, so that
//!   the receiver can time the way it does not take.
//!
//! Why a claim: a sender reads the ask word as it is when it sends, and a benchmark's
//! window sends its 64 messages before the receiver has taken the first of them. A
//! receiver that flipped the ask word for three arrivals to explore the other way got
//! the whole next window that way wherever the flip fell at a window's end; and since
//! it counts its uses per arrival and explored every 32 (or 256) of them, every
//! burst fell there again. `oxbench bw` of 8 KiB read 1088 of 1292 messages it timed
//! where eager copies were 1.5 times as fast (docs/shared-memory.md).

use std::sync::atomic::Ordering;

use super::ring::Inbox;

/// Messages of a size class sent in a row the way the ask word does not say, per
/// claimed exploring ask. At least 2: the receiver times a message only where the one
/// before it in its class came the same way (what the first leaves in the caches
/// differs).
pub(crate) const EXPLORED: u8 = 3;

/// The bit of `len` bytes' size class (as `engine::two_ways::class` counts it).
fn class_bit(len: usize) -> u64 {
    1 << len.checked_ilog2().unwrap_or(0)
}

/// The receiver's side: its two words (see the module documentation) and the sizes it
/// may ask for.
#[derive(Clone, Copy)]
pub(crate) struct ReadRequests {
    pub(super) inbox: Inbox,
    pub(super) eager_limit: usize,
}

impl ReadRequests {
    /// The largest message sent eagerly: mid sizes are above
    /// [`READ_FROM`](super::READ_FROM) up to it.
    pub(crate) fn eager_limit(&self) -> usize {
        self.eager_limit
    }

    /// Asks for messages of the size classes `classes` to be offered for reading, the
    /// others to come eagerly.
    pub(crate) fn ask(&self, classes: u64) {
        self.inbox.read_classes().store(classes, Ordering::Relaxed);
    }

    /// Asks for the next [`EXPLORED`] messages of `len` bytes' size class to come the
    /// way [`ReadRequests::ask`] does not say (once: a sender claims it).
    pub(crate) fn explore(&self, len: usize) {
        self.inbox
            .explore_classes()
            .fetch_or(class_bit(len), Ordering::Relaxed);
    }
}

/// A sender's side: per local peer and size class, the messages still to send the
/// explored way.
pub(crate) struct Bursts {
    left: Vec<[u8; usize::BITS as usize]>,
}

impl Bursts {
    /// No bursts yet, for `local_ranks` ranks.
    pub(crate) fn new(local_ranks: usize) -> Bursts {
        Bursts {
            left: vec![[0; usize::BITS as usize]; local_ranks],
        }
    }

    /// Whether a mid-size message of `len` bytes to the rank of local index `local`,
    /// whose control page `inbox` holds its words, is to be offered for reading. Counts
    /// the message in a burst this sender claimed.
    #[inline]
    pub(crate) fn offers(&mut self, local: usize, inbox: &Inbox, len: usize) -> bool {
        let bit = class_bit(len);
        let asked = inbox.read_classes().load(Ordering::Relaxed) & bit != 0;
        let explore = inbox.explore_classes();
        offered(
            &mut self.left[local][bit.trailing_zeros() as usize],
            asked,
            || {
                explore.load(Ordering::Relaxed) & bit != 0
                    && explore.fetch_and(!bit, Ordering::Relaxed) & bit != 0
            },
        )
    }
}

/// Whether a message goes offered where the receiver's ask word says `asked` and
/// `left` messages of a claimed burst are still to go the other way; `claim` claims
/// an exploring ask of the class, if there is one.
pub(crate) fn offered(left: &mut u8, asked: bool, claim: impl FnOnce() -> bool) -> bool {
    if *left == 0 && claim() {
        *left = EXPLORED;
    }
    if *left == 0 {
        return asked;
    }
    *left -= 1;
    !asked
}

#[cfg(test)]
mod tests {
    use super::super::ring::tests::local;
    use super::*;

    #[test]
    fn a_claimed_exploring_ask_sends_a_burst_the_other_way_once() {
        let receiver = local(64);
        let requests = ReadRequests {
            inbox: receiver.inbox,
            eager_limit: 16384,
        };
        let (mut a, mut b) = (Bursts::new(2), Bursts::new(2));
        let ways = |s: &mut Bursts, len: usize, n: usize| -> Vec<bool> {
            (0..n).map(|_| s.offers(1, &receiver.inbox, len)).collect()
        };
        assert_eq!(ways(&mut a, 8192, 2), [false; 2], "eager unless asked");
        requests.explore(8192);
        // One sender claims it: its next three go offered, then eager again; the
        // other sender saw no ask left.
        assert_eq!(ways(&mut a, 8192, 5), [true, true, true, false, false]);
        assert_eq!(ways(&mut b, 8192, 2), [false; 2]);
        // Asked to offer: a burst goes eagerly. Another class (5000 bytes) is not
        // touched by 8 KiB's asks, and another peer's bursts are its own.
        requests.ask(class_bit(8192));
        requests.explore(8192);
        assert_eq!(ways(&mut b, 5000, 1), [false]);
        assert_eq!(ways(&mut b, 8192, 5), [false, false, false, true, true]);
        assert_eq!(a.left[0], [0; usize::BITS as usize]);
        assert_eq!(receiver.inbox.explore_classes().load(Ordering::Relaxed), 0);
    }
}
