//! Large single-copy messages copied by both ends at once.
//!
//! A receiver that reads a large message straight from its sender's memory (see
//! [`super::cma`]) leaves a core idle: the sender's, waiting for the copy to finish.
//! With a split copy the receiver cuts the message into chunks, reads a first page to
//! see that the kernel allows it, opens the claim word in its control page and sends
//! the sender a [`Kind::Help`](crate::transport::frame::Kind::Help) frame. From then on both ends
//! claim chunks with compare-and-swap until none is left: the receiver reads its
//! chunks (`process_vm_readv`), the sender writes its own into the receiver's buffer
//! (`process_vm_writev`) and reports how many in one
//! [`Kind::Helped`](crate::transport::frame::Kind::Helped) frame. The receive
//! completes when the receiver's chunks and the reported ones make the whole message;
//! only then does the receiver send the FIN that frees the sender's buffer.
//!
//! Several messages from one sender, read in one pass (a bandwidth test's window), may
//! share one copy: their chunks are numbered one after the other, a whole message
//! each, and each message gets a Help frame naming its first chunk; the sender claims
//! chunks of the messages whose frames it has read, in order, and reports them
//! together.
//!
//! The claim word holds the copy's generation in its high 32 bits and the next
//! unclaimed chunk in its low 32. Invariants: every chunk is claimed exactly once; a
//! claim names its generation, so a helper whose Help frame arrives late (after the
//! receiver claimed every chunk, or reopened the word for its next message) claims
//! nothing; a receiver runs one split copy at a time and claims until none is left
//! (or closes the word, on an error) before it opens the word again, so one word per
//! rank is enough. A sender busy
//! elsewhere costs the receiver nothing but the frame: it copies every chunk itself.

use std::sync::atomic::{AtomicU64, Ordering};

/// Opens `word` for the copy of generation `generation`, every chunk unclaimed.
pub(crate) fn open(word: &AtomicU64, generation: u32) {
    word.store(u64::from(generation) << 32, Ordering::Release);
}

/// Ends the copy of generation `generation` early: nobody claims another chunk.
pub(crate) fn close(word: &AtomicU64, generation: u32) {
    word.store(
        (u64::from(generation) << 32) | u64::from(u32::MAX),
        Ordering::Release,
    );
}

/// Claims the next chunk of the copy of generation `generation` (of `chunks` chunks):
/// its index, or `None` when every chunk is taken or the word has moved on to another
/// copy.
pub(crate) fn claim(word: &AtomicU64, generation: u32, chunks: u32) -> Option<u32> {
    let mut now = word.load(Ordering::Acquire);
    loop {
        let next = now as u32;
        if (now >> 32) as u32 != generation || next >= chunks {
            return None;
        }
        match word.compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(next),
            Err(seen) => now = seen,
        }
    }
}

/// Byte range of chunk `i` of a `len`-byte message cut into `chunk`-byte chunks.
pub(crate) fn range(i: u32, chunk: usize, len: usize) -> std::ops::Range<usize> {
    let start = i as usize * chunk;
    start..(start + chunk).min(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn two_claimers_take_every_chunk_once() {
        let word = AtomicU64::new(0);
        for generation in 1..200u32 {
            let chunks = generation % 37 + 1;
            open(&word, generation);
            let taken: Vec<AtomicU32> = (0..chunks).map(|_| AtomicU32::new(0)).collect();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        while let Some(i) = claim(&word, generation, chunks) {
                            taken[i as usize].fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            assert!(taken.iter().all(|t| t.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn a_late_helper_claims_nothing() {
        let word = AtomicU64::new(0);
        open(&word, 7);
        while claim(&word, 7, 4).is_some() {}
        assert_eq!(
            claim(&word, 7, 4),
            None,
            "every chunk of generation 7 is taken"
        );
        open(&word, 8);
        assert_eq!(
            claim(&word, 7, 4),
            None,
            "the word moved on to generation 8"
        );
        assert_eq!(claim(&word, 8, 4), Some(0));
        close(&word, 8);
        assert_eq!(claim(&word, 8, 4), None, "generation 8 was closed");
    }

    #[test]
    fn ranges_cover_the_message() {
        assert_eq!(range(0, 10, 25), 0..10);
        assert_eq!(range(2, 10, 25), 20..25);
        assert_eq!(range(0, 10, 5), 0..5);
    }
}
