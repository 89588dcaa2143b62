//! Context ids: which communicator a message belongs to.
//!
//! Each communicator owns a pair of ids, `2p` for point-to-point and `2p + 1` for its
//! collectives, so user messages and collective traffic never match each other. Pairs
//! are chosen without a central server: the ranks of the parent communicator combine
//! their free masks with a bitwise AND and take the lowest pair free everywhere
//! (MPICH's scheme). Invariant: a pair is claimed locally before first use and released
//! only when the last handle to its communicator is dropped.

/// Number of id pairs (communicators alive at once in one process).
pub(crate) const PAIRS: usize = 1024;
/// Words of a free mask.
pub(crate) const MASK_WORDS: usize = PAIRS / 64;

/// The free id pairs of this process.
pub(crate) struct ContextIds {
    free: [u64; MASK_WORDS],
}

impl ContextIds {
    /// All pairs free but pair 0, which the world communicator holds.
    pub(crate) fn new() -> ContextIds {
        let mut free = [u64::MAX; MASK_WORDS];
        free[0] &= !1;
        ContextIds { free }
    }

    /// This process's free mask, to be combined with the other ranks'.
    pub(crate) fn mask(&self) -> [u64; MASK_WORDS] {
        self.free
    }

    /// The lowest pair free in `mask` (an AND of every rank's mask).
    pub(crate) fn lowest(mask: &[u64; MASK_WORDS]) -> Option<u32> {
        mask.iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| (i * 64 + w.trailing_zeros() as usize) as u32)
    }

    pub(crate) fn claim(&mut self, pair: u32) {
        self.free[pair as usize / 64] &= !(1u64 << (pair % 64));
    }

    pub(crate) fn release(&mut self, pair: u32) {
        self.free[pair as usize / 64] |= 1u64 << (pair % 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agree_on_lowest_common_pair() {
        let mut a = ContextIds::new();
        let mut b = ContextIds::new();
        a.claim(1);
        b.claim(2);
        let both: [u64; MASK_WORDS] = std::array::from_fn(|i| a.mask()[i] & b.mask()[i]);
        assert_eq!(ContextIds::lowest(&both), Some(3));
        a.release(1);
        let both: [u64; MASK_WORDS] = std::array::from_fn(|i| a.mask()[i] & b.mask()[i]);
        assert_eq!(ContextIds::lowest(&both), Some(1));
        let mut full = ContextIds::new();
        for p in 1..PAIRS as u32 {
            full.claim(p);
        }
        assert_eq!(ContextIds::lowest(&full.mask()), None);
    }
}
