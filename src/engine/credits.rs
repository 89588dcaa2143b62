//! Eager credits: how much unexpected data a sender may push at a receiver.
//!
//! Every peer may have at most `per_peer` bytes (payload plus a fixed per-message
//! charge) of eager messages outstanding at this rank. A sender spends credit when it
//! sends eagerly and, when it has none left, announces the message by rendezvous
//! instead (a small RTS that waits for the receiver). The receiver returns credit in
//! batches once it has matched the messages. Invariant: unexpected eager data held
//! here never exceeds `per_peer` times the number of peers, yet the transports never
//! hold frames back, so control frames are never stuck behind data.

/// What one eager message costs beyond its payload (queue entry, allocation).
const PER_MESSAGE: u64 = 64;

/// Credit this rank holds towards each peer, and owes to each peer.
pub(crate) struct Credits {
    per_peer: u64,
    /// Bytes we may still send eagerly to each peer.
    avail: Vec<u64>,
    /// Bytes of each peer's eager messages we matched but have not given back yet.
    owed: Vec<u64>,
}

fn cost(len: usize) -> u64 {
    len as u64 + PER_MESSAGE
}

impl Credits {
    /// `peers` peers, each allowed `per_peer` bytes outstanding.
    pub(crate) fn new(peers: usize, per_peer: u64) -> Credits {
        Credits {
            per_peer,
            avail: vec![per_peer; peers],
            owed: vec![0; peers],
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

    /// Records that an eager message of `len` bytes from `peer` was matched. Returns
    /// the credit to give back now, if enough has piled up.
    pub(crate) fn matched(&mut self, peer: usize, len: usize) -> Option<u64> {
        self.owed[peer] += cost(len);
        if self.owed[peer] >= self.per_peer / 4 {
            return Some(std::mem::take(&mut self.owed[peer]));
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

    #[test]
    fn spend_until_empty_then_refill() {
        let mut c = Credits::new(2, 1000);
        assert!(c.spend(1, 400)); // 464
        assert!(c.spend(1, 400)); // 928
        assert!(!c.spend(1, 100));
        assert!(c.spend(0, 100), "peers are independent");
        assert!(c.returned(1, 464));
        assert!(c.spend(1, 100));
        assert!(!c.returned(1, 10_000), "cannot return more than was spent");
    }

    #[test]
    fn receiver_returns_in_batches() {
        let mut c = Credits::new(1, 1000);
        assert_eq!(c.matched(0, 100), None); // 164 < 250
        assert_eq!(c.matched(0, 100), Some(328));
        assert_eq!(c.matched(0, 0), None);
    }
}
