//! Eager credits: how much unexpected data a sender may push at a receiver.
//!
//! Every peer may have at most `per_peer` bytes (payload plus a fixed per-message
//! charge) of eager messages outstanding at this rank. A sender spends credit when it
//! sends eagerly and, when it has none left, announces the message by rendezvous
//! instead (a small RTS that waits for the receiver). The receiver returns credit in
//! batches once it has matched the messages. Invariant: unexpected eager data held
//! here never exceeds `per_peer` times the number of peers, yet the transports never
//! hold frames back, so control frames are never stuck behind data. The receiver
//! counts what arrives against what it gave back, so a peer that sends past its
//! credit (only a broken or hostile one can) is caught at the message that does.

/// What one eager message costs beyond its payload: its entry in the unexpected queue
/// (with its arrival number, as the queue's bins keep it), which also holds a payload
/// of up to 48 bytes inline. (A flat 64 bytes charged an empty message about half its
/// entry, so a flood of them held up to twice the budget.)
const PER_MESSAGE: u64 = size_of::<(u64, super::matching::Unexpected)>() as u64;

/// Credit this rank holds towards each peer, and owes to each peer.
pub(crate) struct Credits {
    per_peer: u64,
    /// Bytes we may still send eagerly to each peer.
    avail: Vec<u64>,
    /// Bytes of each peer's eager messages we matched but have not given back yet.
    owed: Vec<u64>,
    /// Bytes of each peer's eager messages that arrived here and whose credit has not
    /// gone back yet (never more than `per_peer`).
    held: Vec<u64>,
}

/// What an eager message of `len` bytes costs its sender's credit. Saturating: a
/// buffered offer's size is the sender's word.
pub(crate) fn cost(len: usize) -> u64 {
    (len as u64).saturating_add(PER_MESSAGE)
}

impl Credits {
    /// `peers` peers, each allowed `per_peer` bytes outstanding.
    pub(crate) fn new(peers: usize, per_peer: u64) -> Credits {
        Credits {
            per_peer,
            avail: vec![per_peer; peers],
            owed: vec![0; peers],
            held: vec![0; peers],
        }
    }

    /// Spends credit for an eager message of `len` bytes to `peer`; false if there is
    /// not enough (send it by rendezvous instead).
    pub(crate) fn spend(&mut self, peer: usize, len: usize) -> bool {
        let c = cost(len);
        if self.avail[peer] < c {
            return false;
        }
        self.avail[peer] -= c;
        true
    }

    /// Records that an eager message of `len` bytes from `peer` arrived; false if the
    /// peer had not that much credit left (a protocol error).
    #[inline]
    pub(crate) fn arrived(&mut self, peer: usize, len: usize) -> bool {
        let held = self.held[peer].saturating_add(cost(len));
        if held > self.per_peer {
            return false;
        }
        self.held[peer] = held;
        true
    }

    /// Why an eager message of `len` bytes from `peer` was refused by
    /// [`Credits::arrived`].
    #[cold]
    pub(crate) fn overdrawn(&self, peer: usize, len: usize) -> String {
        format!(
            "an eager message of {len} bytes went past its credit: {} of the {} bytes it was \
             given were still spent (do all ranks have the same OXMPI_UNEXPECTED_BYTES?)",
            self.held[peer], self.per_peer
        )
    }

    /// Records that an eager message of `len` bytes from `peer` was matched. Returns
    /// the credit to give back now, if enough has piled up.
    pub(crate) fn matched(&mut self, peer: usize, len: usize) -> Option<u64> {
        self.owed[peer] += cost(len);
        if self.owed[peer] >= self.per_peer / 4 {
            let amount = std::mem::take(&mut self.owed[peer]);
            self.held[peer] = self.held[peer].saturating_sub(amount);
            return Some(amount);
        }
        None
    }

    /// `peer` gave back `amount` bytes of credit. False if that is more than it could
    /// owe us (a protocol error).
    pub(crate) fn returned(&mut self, peer: usize, amount: u64) -> bool {
        match self.avail[peer].checked_add(amount) {
            Some(v) if v <= self.per_peer => {
                self.avail[peer] = v;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A credit of room for two 400-byte messages and a bit.
    const PER_PEER: u64 = 2 * (400 + PER_MESSAGE) + 50;

    #[test]
    fn spend_until_empty_then_refill() {
        let mut c = Credits::new(2, PER_PEER);
        assert!(c.spend(1, 400));
        assert!(c.spend(1, 400));
        assert!(!c.spend(1, 100), "{} left", PER_PEER - 2 * cost(400));
        assert!(c.spend(0, 100), "peers are independent");
        assert!(c.returned(1, cost(400)));
        assert!(c.spend(1, 100));
        assert!(
            !c.returned(1, 10 * PER_PEER),
            "cannot return more than was spent"
        );
    }

    #[test]
    fn arrivals_past_the_credit_given_are_refused() {
        let mut c = Credits::new(2, PER_PEER);
        assert!(c.arrived(1, 400) && c.arrived(1, 400));
        assert!(!c.arrived(1, 100), "past the credit");
        assert!(c.arrived(0, 100), "peers are independent");
        assert_eq!(c.matched(1, 400), Some(cost(400)), "given back");
        assert!(c.arrived(1, 100));
        assert!(!c.arrived(1, usize::MAX), "a size that overflows");
    }

    #[test]
    fn receiver_returns_in_batches() {
        // A quarter of the credit is more than one message costs, less than two.
        let mut c = Credits::new(1, 4 * cost(100) + 4);
        assert_eq!(c.matched(0, 100), None);
        assert_eq!(c.matched(0, 100), Some(2 * cost(100)));
        assert_eq!(c.matched(0, 0), None);
    }

    #[test]
    fn a_message_is_charged_its_queue_entry() {
        assert!(PER_MESSAGE >= size_of::<super::super::matching::Unexpected>() as u64);
    }
}
