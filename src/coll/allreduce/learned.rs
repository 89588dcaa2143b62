//! Which way a 2-rank allreduce of 16 KiB or more goes, learned while the job runs:
//! through the node's area (whole, or in pieces beyond a slot) or as messages (the
//! selection's algorithm).
//!
//! Why: which is faster depends on the machine's phase. Where a cache line crosses
//! between the cores in 0.06 us, recursive doubling's messages took 1.21-1.34x the
//! time of the pieces; where it takes 0.13-0.15 us, 0.62-0.78x at 64-512 KiB, and
//! 0.56-1.02x whole vectors of 16 KiB (docs/collectives.md). Rank 0 times each such
//! allreduce with an estimator per size class (`engine/two_ways.rs`, the area
//! first) and says which way this one goes in a short meeting before it: every rank
//! writes one word (rank 0 its choice) under the operation's shape and reads the
//! others', so ranks that disagree on the counts fail there together, as they would
//! in the area.

use std::time::Instant;

use crate::coll::select::Collective;
use crate::coll::shared_memory::{Meeting, Venue};
use crate::comm::Comm;
use crate::engine::{self, two_ways::Choice};
use crate::error::Result;

/// Rank 0's word when the allreduce goes through the area.
const AREA: u64 = 1;
/// Its word when it goes as messages.
const MESSAGES: u64 = 2;

/// How one learned allreduce goes, and (on rank 0) what to time.
pub(crate) struct Way {
    /// Through the area (else as messages).
    pub area: bool,
    /// Rank 0's choice and when the allreduce started.
    timed: Option<(Choice, Instant)>,
    bytes: usize,
}

impl Comm {
    /// Agrees with the other ranks at `venue` on how an allreduce of `bytes` in
    /// elements of `esz` bytes goes (rank 0 chooses).
    pub(crate) fn allreduce_way(&self, venue: Venue<'_>, bytes: usize, esz: usize) -> Result<Way> {
        let start = Instant::now();
        let choice = if self.rank() == 0 {
            Some(engine::with(|e| Ok(e.allreduce_ways.choose(bytes)))?)
        } else {
            None
        };
        let note = match choice {
            Some(c) if !c.first => MESSAGES,
            Some(_) => AREA,
            None => 0,
        };
        let word = self.meet(Collective::Allreduce, venue.small(), |m| {
            agree(m, bytes, esz, note)
        })?;
        Ok(Way {
            area: word != MESSAGES,
            timed: choice.map(|c| (c, start)),
            bytes,
        })
    }
}

impl Way {
    /// The allreduce went this way with `outcome`: rank 0 learns from its time.
    pub(crate) fn done(self, outcome: &Result<()>) {
        if let Some((c, start)) = self.timed.filter(|(c, _)| c.record && outcome.is_ok()) {
            let ns = start.elapsed().as_nanos() as f64;
            // Only rank 0 learns, and the engine is there while the job runs.
            let _ = engine::with(|e| {
                e.allreduce_ways.record(self.bytes, c.first, ns);
                Ok(())
            });
        }
    }
}

/// Every rank writes `note` (rank 0's choice, or 0) as an operation of `bytes` in
/// elements of `esz` bytes, and reads every other rank's: rank 0's word.
fn agree(m: &mut Meeting<'_>, bytes: usize, esz: usize, note: u64) -> Result<u64> {
    const WORD: usize = size_of::<u64>();
    // The operation's own shape: a rank that meets in the area with its vector (or a
    // piece of it) instead writes another length under it, or another shape, and
    // both fail reading each other.
    m.set_shape(bytes, esz);
    m.write(WORD, |slot| slot.copy_from_slice(&note.to_le_bytes()))?;
    m.publish(false);
    m.wait_all()?;
    let (rank, size) = m.rank_size();
    let mut word = note;
    for r in (0..size).filter(|&r| r != rank) {
        let theirs = m.read(r, WORD)?;
        if r == 0 {
            word = u64::from_le_bytes(theirs.try_into().expect("one word"));
        }
    }
    Ok(word)
}
